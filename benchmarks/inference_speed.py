"""Inference speed of pruned recurrent nets: the dense ``torch.nn`` module against ``to_inference``.

Usage::

    python benchmarks/inference_speed.py [--threads 1] [--output FILE]
    python benchmarks/inference_speed.py --quick        # a small smoke run, nothing written

Every row times the dense torch module (``nn.RNN`` / ``nn.LSTM`` holding the pruned weights,
what a user would otherwise run) and the fast forms on the same input in the same run:
repeats are interleaved (dense, auto, sparse, then the next repeat in the reverse order).
Times are medians over repeats; a ratio ``dense / fast`` is the median over repeats of the
two timings of the same round (above 1: the fast form is faster).
Inputs: 100 steps of 32 features, batch 1 (streaming) and 256 (batched). Recurrent weights get
random unstructured masks (the input weights stay dense, as with ``scope="recurrent"``); one
more row prunes an LSTM-1024 with :class:`~latticeprune.LatticePruner` itself.

Sections of the output:

1. ``latency``: the issue's grid (hidden 256 / 1024, Elman and LSTM, sparsity 0.5 / 0.9 /
   0.95 / 0.98). ``auto`` is ``to_inference(module)``; ``sparse`` forces the CSR step loop
   (``engine="sparse"``), which shows where sparse stops paying. ``noise`` times a copy of
   the dense module against it: ratios that close to 1 are within the resolution. Calls
   are timed warm (an untimed call of the same form right before each timed one).
2. ``crossover``: forced sparse against dense at sparsity 0.7 / 0.8 / 0.85 (and GRU at batch
   1), to place ``latticeprune.inference.sparse.MIN_SPARSITY``.
3. ``engines``: how the step loop was chosen: the engine (numpy element-wise, products as in
   section 4), a loop of torch ops over torch's sparse CSR (MKL), and that loop compiled with
   TorchScript, at sparsity 0.95.
4. ``products``: the kernel of one step's product, ``out += W @ x``: scipy's public CSR
   product (``csr_array @ x``) against MKL's through ``torch.sparse`` on the same buffers
   (what the engine uses), by matrix size and batch.
5. ``small nets``: hidden 64 and 128 at batch 1 to 256, where ``auto`` switches engine by
   batch size (``latticeprune.inference.sparse.sparse_batches``): it should never be slower
   than dense beyond the noise.

Weights memory is the recurrent layers' weights and biases: dense float32 against what the
fast form holds (CSR values, column indices and row pointers, or dense arrays).
"""

import argparse
import copy
import os
import platform
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import scipy.sparse
import torch
from threadpoolctl import threadpool_limits
from torch.nn.utils import prune

from latticeprune import LatticePruner, RNNClassifier
from latticeprune.utils import format_table
from latticeprune.inference import to_inference
from latticeprune.neuron_graph import NeuronGraph

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import SETTINGS_0_1  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
STEPS, FEATURES = 100, 32
CELLS = {"rnn_tanh": torch.nn.RNN, "lstm": torch.nn.LSTM, "gru": torch.nn.GRU}
MAIN_CELLS = ("rnn_tanh", "lstm")


def dense_module(cell, hidden, sparsity, seed=0):
    """A one-layer torch RNN/LSTM whose recurrent matrix has ``sparsity`` zeros (masks removed)."""
    torch.manual_seed(seed)
    module = CELLS[cell](FEATURES, hidden, batch_first=True)
    if sparsity:
        prune.random_unstructured(module, "weight_hh_l0", amount=sparsity)
        prune.remove(module, "weight_hh_l0")
        module._flat_weights = [getattr(module, name) for name in module._flat_weights_names]
    return module.eval()


def interleaved_times(functions, repeats, warm_below=float("inf")):
    """Seconds of each function per repeat, repeats interleaved (order reversed every other round).

    A function whose warm-up call took less than ``warm_below`` seconds (by default: every
    function) is called once more, untimed, right before each timed call: its weights then sit
    in cache as in steady use, not wherever the previous function left them, and a slow
    predecessor does not bias whoever follows it (measured: after one call of the forced-CSR
    form of a 50%-sparse Elman-1024 at batch 256, the next call of the dense module itself is
    7-10% slower).
    """
    names = list(functions)
    cheap = {}
    for name in names:  # warm-up
        start = time.perf_counter()
        functions[name]()
        cheap[name] = time.perf_counter() - start < warm_below
    times = {name: [] for name in names}
    for repeat in range(repeats):
        for name in (names if repeat % 2 == 0 else names[::-1]):
            if cheap[name]:
                functions[name]()
            start = time.perf_counter()
            functions[name]()
            times[name].append(time.perf_counter() - start)
    return {name: np.asarray(values) for name, values in times.items()}


def median_ratio(times, numerator, denominator):
    """Median over repeats of the ratio of two functions timed side by side in the same round.

    Pairing each repeat's two timings cancels load changes between rounds, which on a shared
    machine move a ratio of medians far more than the engines differ.
    """
    return float(np.median(times[numerator] / times[denominator]))


def repeats_for(batch, hidden, base):
    """Fewer repeats for the slow batched hidden-1024 rows (seconds per forward pass)."""
    return max(3, base // 3) if batch > 1 and hidden >= 1024 else base


def latency_row(cell, hidden, sparsity, batch, repeats, label=None, module=None, auto=True):
    """Dense module against the fast forms; ``dense/dense'`` (the module timed twice) is the noise."""
    module = module if module is not None else dense_module(cell, hidden, sparsity)
    x = torch.randn(batch, STEPS, FEATURES)
    forms = {"sparse": to_inference(module, engine="sparse")}
    if auto:
        forms["auto"] = to_inference(module, engine="auto")
    with torch.inference_mode():
        reference = module(x)
        reference = (reference[0] if isinstance(reference, tuple) else reference).numpy()
        for fast in forms.values():
            error = float(np.abs(fast.forward(x).numpy() - reference).max())
            assert error < 1e-3, f"fast form disagrees with the dense module: {error}"
        functions = {"dense": lambda: module(x)}
        if auto:
            twin = copy.deepcopy(module)  # the noise control: the same net, its own weights
            functions["dense again"] = lambda: twin(x)
        functions.update({name: (lambda fast=fast: fast.forward(x))
                          for name, fast in forms.items()})
        times = interleaved_times(functions, repeats)
    ms = {name: f"{np.median(values) * 1e3:.1f}" for name, values in times.items()}
    row = {"cell": cell, "hidden": hidden, "sparsity": label or f"{sparsity:.2f}",
           "batch": batch, "dense ms": ms["dense"]}
    if auto:
        row.update({"auto ms": ms["auto"],
                    "dense/auto": f"{median_ratio(times, 'dense', 'auto'):.2f}",
                    "auto engine": ",".join(forms["auto"].layer_engines)})
    row.update({"sparse ms": ms["sparse"],
                "dense/sparse": f"{median_ratio(times, 'dense', 'sparse'):.2f}"})
    if auto:
        row["noise dense/dense'"] = f"{median_ratio(times, 'dense', 'dense again'):.2f}"
    row["weights dense"] = _kib(forms["sparse"].dense_weight_nbytes)
    if auto:
        row["weights auto"] = _kib(forms["auto"].weight_nbytes)
    row["weights sparse"] = _kib(forms["sparse"].weight_nbytes)
    return row


def _kib(nbytes):
    return f"{nbytes / 1024:.0f} KiB"


def lattice_module(hidden, sparsity):
    """A RecurrentNet LSTM pruned by LatticePruner (untrained; one round, no fine-tuning)."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(64, STEPS, FEATURES)).astype(np.float32)
    y = np.arange(64) % 4
    clf = RNNClassifier(hidden_size=hidden, cell="lstm", max_epochs=0, random_state=0,
                        **SETTINGS_0_1)
    pruner = LatticePruner(clf.fit(X, y), prefit=True, sparsity=sparsity, n_rounds=1,
                           fine_tune_epochs=0, random_state=0).fit(X, y)
    module = copy.deepcopy(pruner.net_.module_)
    NeuronGraph(module).remove_masks()
    return module.eval(), pruner.sparsity_["overall"]


# -- section 3: candidate engines --------------------------------------------------------------
# Each candidate returns every step's state batch-first, as the dense module and the engine do.
def torch_csr_loop(weight_csr, gate_inputs, cell, hidden):
    """The step loop with torch's sparse CSR product (MKL) and torch element-wise ops."""
    h = torch.zeros(hidden, gate_inputs.shape[2])
    c = torch.zeros_like(h)
    outputs = []
    for t in range(gate_inputs.shape[0]):
        gates = torch.addmm(gate_inputs[t], weight_csr, h)
        if cell == "lstm":
            i, f, g, o = gates.chunk(4, 0)
            c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
            h = torch.sigmoid(o) * torch.tanh(c)
        else:
            h = torch.tanh(gates)
        outputs.append(h)
    return torch.stack(outputs).permute(2, 0, 1).contiguous()


@torch.jit.script
def scripted_lstm_loop(weight: torch.Tensor, gate_inputs: torch.Tensor, hidden: int):
    h = torch.zeros(hidden, gate_inputs.shape[2])
    c = torch.zeros(hidden, gate_inputs.shape[2])
    outputs = []
    for t in range(gate_inputs.shape[0]):
        i, f, g, o = torch.addmm(gate_inputs[t], weight, h).chunk(4, 0)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        h = torch.sigmoid(o) * torch.tanh(c)
        outputs.append(h)
    return torch.stack(outputs).permute(2, 0, 1).contiguous()


@torch.jit.script
def scripted_elman_loop(weight: torch.Tensor, gate_inputs: torch.Tensor, hidden: int):
    h = torch.zeros(hidden, gate_inputs.shape[2])
    outputs = []
    for t in range(gate_inputs.shape[0]):
        h = torch.tanh(torch.addmm(gate_inputs[t], weight, h))
        outputs.append(h)
    return torch.stack(outputs).permute(2, 0, 1).contiguous()


def engines_row(cell, hidden, batch, repeats, sparsity=0.95):
    module = dense_module(cell, hidden, sparsity)
    x = torch.randn(batch, STEPS, FEATURES)
    weight_csr = module.weight_hh_l0.detach().to_sparse_csr()
    gate_inputs = (x @ module.weight_ih_l0.detach().T + module.bias_ih_l0.detach()
                   + module.bias_hh_l0.detach()).permute(1, 2, 0).contiguous()
    scripted = scripted_lstm_loop if cell == "lstm" else scripted_elman_loop
    engine = to_inference(module, engine="sparse")
    with torch.inference_mode():
        t = interleaved_times({
            "dense": lambda: module(x),
            "engine (numpy + CSR products)": lambda: engine.forward(x),
            "torch CSR loop": lambda: torch_csr_loop(weight_csr, gate_inputs, cell, hidden),
            "TorchScript CSR loop": lambda: scripted(weight_csr, gate_inputs, hidden)},
            repeats)
    row = {"cell": cell, "hidden": hidden, "sparsity": sparsity, "batch": batch,
           "dense ms": f"{np.median(t['dense']) * 1e3:.1f}"}
    row.update({f"{name} ms (dense/it)": f"{np.median(seconds) * 1e3:.1f} "
                                         f"({median_ratio(t, 'dense', name):.2f})"
                for name, seconds in t.items() if name != "dense"})
    return row


# -- section 4: product kernels -----------------------------------------------------------------
def product_row(rows, columns, batch, repeats, sparsity=0.95):
    """``out += W @ x`` with scipy's public CSR product against MKL through torch.sparse (us)."""
    rng = np.random.default_rng(0)
    weight = (rng.standard_normal((rows, columns))
              * (rng.random((rows, columns)) >= sparsity)).astype(np.float32)
    csr = scipy.sparse.csr_array(weight)
    tensor = torch.sparse_csr_tensor(torch.from_numpy(csr.indptr), torch.from_numpy(csr.indices),
                                     torch.from_numpy(csr.data), size=csr.shape)
    x = rng.random((columns, batch)).astype(np.float32)
    out = np.zeros((rows, batch), dtype=np.float32)
    x_t, out_t = torch.from_numpy(x), torch.from_numpy(out)
    x_v, out_v = torch.from_numpy(x.reshape(-1)), torch.from_numpy(out.reshape(-1))
    functions = {
        "scipy": lambda: out.__iadd__(csr @ x),
        "torch/MKL": ((lambda: torch.addmv(out_v, tensor, x_v, out=out_v)) if batch == 1
                      else (lambda: torch.addmm(out_t, tensor, x_t, out=out_t)))}
    loops = max(1, 2000 // (batch * max(1, csr.nnz // 20_000)))

    def repeated(function):
        return lambda: [function() for _ in range(loops)]

    t = interleaved_times({name: repeated(f) for name, f in functions.items()}, repeats)
    return {"matrix": f"{rows}x{columns}", "sparsity": sparsity, "non-zeros": csr.nnz,
            "batch": batch, "scipy us": f"{np.median(t['scipy']) / loops * 1e6:.1f}",
            "torch/MKL us": f"{np.median(t['torch/MKL']) / loops * 1e6:.1f}",
            "scipy/MKL": f"{median_ratio(t, 'scipy', 'torch/MKL'):.2f}"}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=1,
                        help="torch and BLAS threads for every engine (default 1: the machine "
                             "is shared, and spinning OpenMP threads on busy cores distort "
                             "the dense timings)")
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--quick", action="store_true", help="small smoke run, nothing written")
    parser.add_argument("--output", default=str(ROOT / "benchmarks" / "results" /
                                                "inference_speed.txt"))
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
    torch.set_num_threads(args.threads)
    hiddens, sparsities, crossover = [256, 1024], [0.5, 0.9, 0.95, 0.98], [0.7, 0.8, 0.85]
    batches, repeats = [1, 256], args.repeats
    if args.quick:
        hiddens, sparsities, crossover, batches, repeats = [64], [0.5, 0.95], [0.8], [1, 8], 3
    load_start = os.getloadavg()
    started = time.perf_counter()
    sections = []
    with threadpool_limits(args.threads):
        rows = []
        for batch in batches:
            for cell in MAIN_CELLS:
                for hidden in hiddens:
                    for sparsity in sparsities:
                        rows.append(latency_row(cell, hidden, sparsity, batch,
                                                repeats_for(batch, hidden, repeats)))
                        print(rows[-1], flush=True)
            if not args.quick:
                module, achieved = lattice_module(1024, 0.95)
                rows.append(latency_row("lstm", 1024, achieved, batch,
                                        repeats_for(batch, 1024, repeats),
                                        label=f"lattice {achieved:.2f}", module=module))
                print(rows[-1], flush=True)
        sections.append(("1. latency (100 steps): dense torch.nn module vs to_inference "
                         "(auto) and forced CSR (sparse); ratio > 1 = faster than dense; "
                         "noise = the dense module against a copy of itself", rows))
        rows = []
        for batch in batches:
            for cell in CELLS if batch == 1 else MAIN_CELLS:  # GRU too where it is cheap
                for hidden in hiddens:
                    for sparsity in crossover + ([0.9, 0.95] if cell == "gru" else []):
                        rows.append(latency_row(cell, hidden, sparsity, batch,
                                                repeats_for(batch, hidden, repeats),
                                                auto=False))
                        print(rows[-1], flush=True)
        sections.append(("2. crossover: forced CSR (dense/sparse) below sparsity 0.9 "
                         "(and GRU at batch 1)", rows))
        rows = []
        for batch in batches:
            for cell in MAIN_CELLS:
                hidden = hiddens[-1]
                rows.append(engines_row(cell, hidden, batch, repeats_for(batch, hidden, repeats)))
                print(rows[-1], flush=True)
        sections.append(("3. engines: candidate CSR step loops at sparsity 0.95 (ms, medians; "
                         "in brackets the paired ratio dense / loop)", rows))
        rows = [product_row(rows_, columns, batch, repeats)
                for rows_, columns in ([(256, 256), (1024, 256), (1024, 1024), (4096, 1024)]
                                       if not args.quick else [(256, 64)])
                for batch in ([1, 2, 8, 256] if not args.quick else [1, 8])]
        for row in rows:
            print(row, flush=True)
        sections.append(("4. products out += W @ x at sparsity 0.95 (us per product): scipy's "
                         "csr_array @ x vs MKL through torch.sparse on the same buffers", rows))
        rows = []
        for cell in MAIN_CELLS:
            for hidden in ([64, 128] if not args.quick else [32]):
                for sparsity in (0.95, 0.98):
                    for batch in ([1, 8, 32, 256] if not args.quick else [1, 8]):
                        rows.append(latency_row(cell, hidden, sparsity, batch, repeats))
                        print(rows[-1], flush=True)
        sections.append(("5. small nets: auto's engine by batch size (same columns as section 1)",
                         rows))
    load_end = os.getloadavg()
    header = (f"# command: python benchmarks/inference_speed.py"
              f"{'' if args.threads == 1 else f' --threads {args.threads}'}\n"
              f"# machine: {platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}, "
              f"scipy {scipy.__version__}, numpy {np.__version__}; {args.threads} thread(s) "
              f"for torch and BLAS\n"
              f"# {STEPS} steps x {FEATURES} features; {repeats} interleaved repeats "
              f"({max(3, repeats // 3)} for batch 256 at hidden 1024); wall time "
              f"{time.perf_counter() - started:.0f} s\n"
              f"# load average (1/5/15 min) at start {load_start[0]:.2f}/{load_start[1]:.2f}/"
              f"{load_start[2]:.2f}, at end {load_end[0]:.2f}/{load_end[1]:.2f}/"
              f"{load_end[2]:.2f} on a shared machine\n")
    text = header + "".join(f"\n## {title}\n{format_table(rows, list(rows[0]))}\n"
                            for title, rows in sections)
    print(text)
    if not args.quick:
        Path(args.output).write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
