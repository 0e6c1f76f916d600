"""Training and inference time of the top-down (hierarchical) net against the stacked LSTM.

Usage::

    python benchmarks/training_speed.py [--repeats 3] [--output FILE]

Set-up (issue 15): random data, 2,000 sequences of 28 steps x 28 features, 10 classes,
``RNNClassifier(cell="lstm", num_layers=2, hidden_size=H, max_epochs=2, n_threads=1)``
with ``top_down=False`` (torch's fused ``nn.LSTM``) and ``top_down=True``
(:class:`~latticeprune.nets.HierarchicalRNN`, through its compiled kernel, and again on torch's
eager ops with ``LATTICEPRUNE_TOP_DOWN_KERNEL=0``), for ``H`` in 128 and 512. The nets are
trained in turn (``repeats`` rounds, so a change in the load of the shared machine hits all
alike); each sample is the wall time of one ``fit`` (2 epochs) and of one ``predict`` on the
2,000 sequences. The table gives medians and the ratios to the stacked net.

A second table looks for the floor at module level (batch 64, no gradient, one thread,
median of 31 warm calls): the stacked ``nn.LSTM`` and its products alone (each layer's input
projection one GEMM over all steps, then one ``addmm`` per layer and step: how close oneDNN's
fused layer gets to its GEMMs); the top-down net (also inside ``frozen_weights``, as the
estimators predict: its weights concatenated and packed once) and its step products alone,
issued as its layers issue them (``torch.lstm_cell`` runs two ``addmm`` per layer and step:
bottom-up with top-down, and recurrent), as one oneDNN GEMM per layer and step over the
concatenated inputs (the inputs converted to oneDNN tensors each step), and in the best
formulation found (the bottom layer's input projection hoisted out of the time loop, one
``addmm`` per layer and step over ``[above, h]`` / ``[below, h]`` with the weights transposed
once, contiguous), the products as the net's kernel issues them (MKL's packed GEMM, one per
layer and step, the bottom layer's over ``[x_t, h, above]``); the net on torch's eager ops;
then a whole top-down forward in the hoisted formulation with torch's eager gate arithmetic,
as a Python loop, in TorchScript and through ``torch.compile`` (inductor), each checked
against the net's output. Where the
products alone already take more than 1.5x the stacked module, no formulation on those GEMMs
gets the top-down net within 1.5x; where they take less, the rest of the distance is the gate
arithmetic between them.
"""

import argparse
import contextlib
import os
import platform
import statistics
import sys
from pathlib import Path
import time
from typing import List

import numpy as np
import torch

from latticeprune import RNNClassifier
from latticeprune.top_down_kernel import SWITCH, frozen_weights
from latticeprune.utils import format_table

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import SETTINGS_0_1  # noqa: E402

SIZES = (128, 512)
N_SEQUENCES, STEPS, FEATURES, CLASSES = 2000, 28, 28, 10
COLUMNS = ["hidden", "task", "stacked (s)", "top-down (s)", "ratio", "eager ops (s)",
           "ratio (eager)"]
OUTPUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results", "training_speed.txt")


def timed(func):
    start = time.perf_counter()
    func()
    return time.perf_counter() - start


def median_time(func, repeats=31):
    func()
    return float(np.median([timed(func) for _ in range(repeats)]))


def top_down_loop(projected: torch.Tensor, bottom_weight: torch.Tensor,
                  top_weight: torch.Tensor, top_bias: torch.Tensor, hidden: int):
    """A 2-layer top-down LSTM forward, written so that TorchScript and ``torch.compile`` take
    it as it is: per step one addmm per layer over ``[above, h]`` (bottom, whose input
    projection ``projected`` is done) and ``[below, h]``."""
    batch, steps = projected.shape[0], projected.shape[1]
    h0 = torch.zeros(batch, hidden)
    h1, c0, c1 = torch.zeros_like(h0), torch.zeros_like(h0), torch.zeros_like(h0)
    outputs: List[torch.Tensor] = []
    for t in range(steps):
        gates = torch.addmm(projected[:, t], torch.cat([h1, h0], 1), bottom_weight)
        i, f, g, o = gates.chunk(4, 1)
        c0 = torch.sigmoid(f) * c0 + torch.sigmoid(i) * torch.tanh(g)
        h0 = torch.sigmoid(o) * torch.tanh(c0)
        i, f, g, o = torch.addmm(top_bias, torch.cat([h0, h1], 1), top_weight).chunk(4, 1)
        c1 = torch.sigmoid(f) * c1 + torch.sigmoid(i) * torch.tanh(g)
        h1 = torch.sigmoid(o) * torch.tanh(c1)
        outputs.append(h1)
    return torch.stack(outputs, 1)


scripted_top_down = torch.jit.script(top_down_loop)


def frozen_time(func, repeats=31):
    """:func:`median_time` of ``func`` inside :func:`~latticeprune.top_down_kernel.frozen_weights`
    (the scope of the estimators' predictions)."""
    with frozen_weights():
        return median_time(func, repeats)


@contextlib.contextmanager
def kernel_off():
    """The top-down kernel turned off (torch's eager ops) inside."""
    os.environ[SWITCH] = "0"
    try:
        yield
    finally:
        del os.environ[SWITCH]


def eager_time(func, repeats=31):
    """:func:`median_time` of ``func`` with the top-down kernel turned off."""
    with kernel_off():
        return median_time(func, repeats)


def floor_rows(hidden, batch=64):
    """Module-level times (ms) of the stacked LSTM, the top-down net and its products alone."""
    from latticeprune.nets import HierarchicalRNN
    torch.manual_seed(0)
    x = torch.randn(batch, STEPS, FEATURES)
    stacked = torch.nn.LSTM(FEATURES, hidden, 2, batch_first=True)
    net = HierarchicalRNN(FEATURES, hidden, 2, "lstm")
    bottom, top = net.layers
    bottom_in = torch.cat([bottom.weight_ih, bottom.weight_td], 1)
    h, below = torch.randn(batch, hidden), torch.randn(batch, FEATURES + hidden)

    def mkl_products():
        for _ in range(STEPS):
            torch.addmm(bottom.bias_ih, below, bottom_in.t())
            torch.addmm(bottom.bias_hh, h, bottom.weight_hh.t())
            torch.addmm(top.bias_ih, h, top.weight_ih.t())
            torch.addmm(top.bias_hh, h, top.weight_hh.t())

    weights = [torch.cat([bottom.weight_ih, bottom.weight_hh, bottom.weight_td], 1).to_mkldnn(),
               torch.cat([top.weight_ih, top.weight_hh], 1).to_mkldnn()]
    inputs = [torch.randn(batch, FEATURES + 2 * hidden), torch.randn(batch, 2 * hidden)]

    def onednn_products():
        for _ in range(STEPS):
            for weight, step_input in zip(weights, inputs):
                torch.nn.functional.linear(step_input.to_mkldnn(), weight).to_dense()

    # The best formulation on torch's GEMMs: the bottom layer's input projection one GEMM over
    # all steps, then one addmm per layer and step over [above, h] / [below, h].
    step_weights = [torch.cat([bottom.weight_td, bottom.weight_hh], 1).t().contiguous(),
                    torch.cat([top.weight_ih, top.weight_hh], 1).t().contiguous()]
    step_bias = top.bias_ih + top.bias_hh
    concatenated = torch.randn(batch, 2 * hidden)

    def project():  # the bottom layer's input projection, one GEMM over all steps
        return torch.addmm(bottom.bias_ih + bottom.bias_hh, x.reshape(-1, FEATURES),
                           bottom.weight_ih.t()).view(batch, STEPS, -1)

    def hoisted_products():
        projected = project()
        for t in range(STEPS):
            torch.addmm(projected[:, t], concatenated, step_weights[0])
            torch.addmm(step_bias, concatenated, step_weights[1])

    # The stacked module's own products, as its layers can issue them: each layer's input
    # projection one GEMM over all steps, then one addmm per layer and step.
    layer_weights = [(getattr(stacked, f"weight_ih_l{k}"), getattr(stacked, f"weight_hh_l{k}"),
                      getattr(stacked, f"bias_ih_l{k}") + getattr(stacked, f"bias_hh_l{k}"))
                     for k in range(2)]
    layer_inputs = [x.reshape(-1, FEATURES), torch.randn(batch * STEPS, hidden)]

    def stacked_products():
        for (weight_ih, weight_hh, bias), layer_input in zip(layer_weights, layer_inputs):
            torch.addmm(bias, layer_input, weight_ih.t())
            for _ in range(STEPS):
                torch.addmm(bias, h, weight_hh.t())

    def looped(loop):
        return loop(project(), step_weights[0], step_weights[1], step_bias, hidden)

    # The products as the net's kernel issues them for float32: MKL's packed GEMM, each weight
    # packed once per sequence (torch's mkl ops), the bottom layer's input inside its step
    # GEMM, over [x_t, h, above] and [below, h].
    kernel_weights = [torch.cat([bottom.weight_ih, bottom.weight_hh, bottom.weight_td], 1),
                      torch.cat([top.weight_ih, top.weight_hh], 1)]
    kernel_inputs = [torch.randn(batch, FEATURES + 2 * hidden), concatenated]

    def packed_products():
        packed = [torch.ops.mkl._mkl_reorder_linear_weight(w, batch) for w in kernel_weights]
        for _ in range(STEPS):
            for weight, packed_weight, step_input in zip(kernel_weights, packed, kernel_inputs):
                torch.ops.mkl._mkl_linear(step_input, packed_weight, weight, None, batch)

    compiled = torch.compile(top_down_loop)
    with torch.no_grad():
        start = time.perf_counter()
        torch.testing.assert_close(looped(compiled), net(x)[0])
        compile_seconds = time.perf_counter() - start
        torch.testing.assert_close(looped(scripted_top_down), net(x)[0])
        times = [median_time(lambda: stacked(x)), median_time(stacked_products),
                 median_time(lambda: net(x)), frozen_time(lambda: net(x)),
                 median_time(mkl_products),
                 median_time(onednn_products), median_time(hoisted_products),
                 median_time(packed_products), eager_time(lambda: net(x)),
                 median_time(lambda: looped(top_down_loop)),
                 median_time(lambda: looped(scripted_top_down)),
                 median_time(lambda: looped(compiled))]
    names = ["stacked nn.LSTM",
             "its products alone (inputs hoisted, one addmm per layer and step)",
             "top-down net",
             "top-down net inside frozen_weights (weights packed once, as in predict)",
             "its products alone (addmm, as torch.lstm_cell)",
             "its products alone (one oneDNN GEMM per layer and step)",
             "its products alone (bottom inputs hoisted, one addmm per layer and step)",
             "its products on MKL's packed GEMM, as the net's kernel issues them",
             f"top-down net on torch's eager ops ({SWITCH}=0)",
             "top-down forward as one eager loop (hoisted, one addmm per layer and step)",
             "the same loop in TorchScript",
             f"the same loop through torch.compile (inductor; first call {compile_seconds:.0f} s)"]
    return [{"hidden": hidden, "module": name, "ms": f"{1e3 * t:.2f}",
             "ratio": f"{t / times[0]:.2f}x"} for name, t in zip(names, times)]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--output", default=OUTPUT)
    args = parser.parse_args(argv)
    load_at_start = os.getloadavg()[0]
    rng = np.random.default_rng(0)
    X = rng.standard_normal((N_SEQUENCES, STEPS * FEATURES)).astype(np.float32)
    y = rng.integers(0, CLASSES, N_SEQUENCES)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # one thread, as the fits (n_threads=1)
    floors = [row for hidden in SIZES for row in floor_rows(hidden)]  # first: a quiet process
    torch.set_num_threads(threads)
    rows = []
    for hidden in SIZES:
        samples = {}
        for _ in range(args.repeats):
            for net in ("stacked", "top-down", "eager"):
                clf = RNNClassifier(cell="lstm", hidden_size=hidden, num_layers=2,
                                    top_down=net != "stacked", input_size=FEATURES,
                                    max_epochs=2, n_threads=1, random_state=0, **SETTINGS_0_1)
                with kernel_off() if net == "eager" else contextlib.nullcontext():
                    fit = timed(lambda: clf.fit(X, y))
                    with torch.inference_mode():
                        predict = timed(lambda: clf.predict(X))
                samples.setdefault(net, []).append((fit, predict))
        medians = {key: np.median(np.array(value), axis=0) for key, value in samples.items()}
        for task, column in (("train (2 epochs)", 0), ("inference", 1)):
            stacked, top, eager = (medians[net][column]
                                   for net in ("stacked", "top-down", "eager"))
            rows.append(dict(zip(COLUMNS, (hidden, task, f"{stacked:.2f}", f"{top:.2f}",
                                           f"{top / stacked:.2f}x", f"{eager:.2f}",
                                           f"{eager / stacked:.2f}x"))))
        print(rows[-2], rows[-1], flush=True)
    lines = [
        "python " + " ".join(sys.argv),
        "# Stacked fused LSTM vs top-down HierarchicalRNN, 2 layers: median wall time (s) of "
        f"{args.repeats} alternated runs, one thread",
        f"# Data: {N_SEQUENCES} random sequences of {STEPS} x {FEATURES}, {CLASSES} classes; "
        "fit = 2 epochs (batch 64), inference = predict on all sequences",
        f"# Machine: {platform.machine()}, {os.cpu_count()} CPUs; Python "
        f"{platform.python_version()}, torch {torch.__version__}",
        f"# 1-min load average at start / end: {load_at_start:.2f} / {os.getloadavg()[0]:.2f}"
        " (the machine is shared; timings are medians)",
        "",
        format_table(rows, COLUMNS),
        "",
        "Floor at module level: forward of batch 64, no gradient, one thread, median of 31 "
        "warm calls, measured before the fits (ms; ratio to the stacked module)",
        "",
        format_table(floors, ["hidden", "module", "ms", "ratio"]),
    ]
    os.makedirs(os.path.dirname(args.output), exist_ok=True)
    with open(args.output, "w") as handle:
        handle.write("\n".join(lines) + "\n")
    print("\n".join(lines[1:]))
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
