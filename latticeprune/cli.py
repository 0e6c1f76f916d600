"""The ``latticeprune`` command (also ``python -m latticeprune``).

``latticeprune demo``: on digits (or an MNIST folder), a :class:`~latticeprune.SequenceScaler`
and a dense recurrent classifier; then a cross-validated grid over what pruning removes (whole
units, lattice and magnitude rankers; single weights by magnitude; connections by the lattice),
one line per candidate, each fold's dense net fitted once (``memory``); every candidate
refitted on the training set and timed as it deploys (unit removal: the smaller net on torch's
kernels; weights and connections: ``to_inference()``), at batch 1 and 256 against the dense
net; the table, the chosen model (best cross-validated accuracy) exported to ONNX and checked
in ONNX Runtime, ``results.json`` (numbers) and the accuracy-against-latency figure. Every
argument is checked before any training: a bad one exits with argparse's usage error (status
2).

``latticeprune build-kernel``: compile the top-down LSTM kernel now (a container image, a
read-only deployment) or print where it is; exit status 1 and the reason where it cannot.
"""

import argparse
import copy
import json
import numbers
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import sklearn
import skorch
import torch
from joblib import effective_n_jobs
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV, ParameterGrid, StratifiedKFold, train_test_split
from sklearn.pipeline import Pipeline
from sklearn.utils import check_scalar

from . import LatticePruner, RNNClassifier, SequenceScaler, __version__, export_onnx
from .datasets import load_digits_sequences, load_mnist
from .kernel_build import KernelBuildError, build
from .neuron_graph import NeuronGraph, find_net, make_permanent
from .top_down_kernel import CAPABILITY_FLAGS, kernel_extension
from .utils import format_table, torch_threads

#: Capabilities ``build-kernel --capability`` accepts: torch's names (``ATEN_CPU_CAPABILITY``).
KERNEL_CAPABILITIES = {"DEFAULT", *CAPABILITY_FLAGS}

NEEDS_DATA = "--dataset mnist needs --data PATH (an MNIST IDX folder such as mnist-10k/)"
#: The table's columns (rows hold numbers; the table formats them).
COLUMNS = ["candidate", "cv accuracy", "test", "parameters", "batch 1", "batch 256"]
#: Timing samples per form and batch size (their median), and the time one sample spans.
REPEATS, SAMPLE_SECONDS = 9, 0.01


def load_data(args):
    """``X_train, X_test, y_train, y_test`` of ``args.dataset`` (digits: stratified 75/25 split)."""
    if args.dataset == "digits":
        X, y = load_digits_sequences(return_X_y=True)
        return train_test_split(X, y, test_size=0.25, stratify=y, random_state=args.random_state)
    if args.data is None:
        raise SystemExit(NEEDS_DATA)
    return load_mnist(args.data, return_X_y=True)


def demo_search(net, units, sparsities, random_state, memory=None):
    """``(pipeline, grid)`` of the demo: a :class:`~latticeprune.SequenceScaler` and a
    :class:`~latticeprune.LatticePruner` of ``net`` (its fits cached in ``memory``), over whole
    units removed (``units``, lattice and magnitude rankers), single weights by magnitude and
    connections by the lattice (``sparsities``)."""
    pipe = Pipeline([("scale", SequenceScaler()),
                     ("prune", LatticePruner(net, n_rounds=3, random_state=random_state,
                                             memory=memory))])
    grid = [{"prune__granularity": ["unit"], "prune__strategy": ["lattice", "magnitude"],
             "prune__sparsity": list(units)},
            {"prune__granularity": ["weight"], "prune__strategy": ["magnitude"],
             "prune__sparsity": list(sparsities)},
            {"prune__granularity": ["connection"], "prune__strategy": ["lattice"],
             "prune__sparsity": list(sparsities)}]
    return pipe, grid


def label(params):
    """``"unit lattice 0.5"``: granularity, ranker, fraction or sparsity of a candidate."""
    return (f"{params['prune__granularity']} {params['prune__strategy']} "
            f"{params['prune__sparsity']:g}")


class _ProgressSearch(GridSearchCV):
    """``GridSearchCV`` printing one line per candidate to ``out``, in batches of
    ``n_jobs // n_splits`` candidates (so ``cv_results_`` are ``GridSearchCV``'s)."""

    def __init__(self, estimator, param_grid, *, cv, n_jobs, out):
        super().__init__(estimator, param_grid, cv=cv, n_jobs=n_jobs, refit=False)
        self.out = out

    def _run_search(self, evaluate_candidates):
        candidates = list(ParameterGrid(self.param_grid))
        step = max(1, effective_n_jobs(self.n_jobs) // self.cv.get_n_splits())
        start = time.perf_counter()
        for first in range(0, len(candidates), step):
            results = evaluate_candidates(candidates[first:first + step])
            for i in range(first, min(first + step, len(candidates))):
                print(f"[{i + 1}/{len(candidates)}] {label(results['params'][i])}: cv accuracy "
                      f"{results['mean_test_score'][i]:.4f} "
                      f"({time.perf_counter() - start:.0f} s)", file=self.out, flush=True)


def _nonzero_parameters(module):
    """Non-zero entries of every tensor of ``module``, masked weights as they act."""
    plain = make_permanent(copy.deepcopy(module))  # masked zeros in plain tensors
    return int(sum(int(value.count_nonzero()) for value in plain.state_dict().values()))


def _deployed(pipe):
    """The torch module a fitted candidate deploys: the smaller net after unit removal, the
    ``to_inference()`` form of a masked net, the dense net itself."""
    step = pipe[-1]
    if isinstance(step, LatticePruner) and step.granularity != "unit":
        return step.to_inference().module_
    return find_net(step).module_


def _latencies(forms, shape):
    """``{name: {batch: median ms per call}}`` of ``forms`` (torch modules) at batch 1 and 256
    on random input of ``shape`` (steps, features), one thread, the forms interleaved; a
    sample is the mean of as many calls as fill :data:`SAMPLE_SECONDS`."""
    times = {name: {1: [], 256: []} for name in forms}
    inputs = {batch: torch.randn(batch, *shape) for batch in (1, 256)}
    calls = {}
    with torch.inference_mode(), torch_threads(1):
        for batch, x in inputs.items():
            for name, module in forms.items():  # warm-up, and the calls a sample takes
                start = time.perf_counter()
                module(x)
                calls[name, batch] = max(1, int(SAMPLE_SECONDS / (time.perf_counter() - start)))
        for _ in range(REPEATS):
            for batch, x in inputs.items():
                for name, module in forms.items():
                    n = calls[name, batch]
                    start = time.perf_counter()
                    for _ in range(n):
                        module(x)
                    times[name][batch].append((time.perf_counter() - start) * 1e3 / n)
    return {name: {batch: float(np.median(t)) for batch, t in by_batch.items()}
            for name, by_batch in times.items()}


def run_demo(args, out=sys.stdout, data=None):
    """Grid-search, refit, time, print the table, export the chosen model, write the figure
    and ``results.json``; returns the rows (``data``: preloaded)."""
    started = time.perf_counter()
    X_train, X_test, y_train, y_test = load_data(args) if data is None else data
    shape = tuple(X_train.shape[1:])
    print(f"{args.dataset}: {len(X_train)} train / {len(X_test)} test sequences of "
          f"{shape[0]} steps x {shape[1]} features", file=out)
    # A short fixed budget (--epochs) trains faster at lr 0.01 than at the default 0.003,
    # which goes with the default automatic epochs.
    net = RNNClassifier(cell=args.cell, hidden_size=args.hidden_size, max_epochs=args.epochs,
                        lr=0.01, random_state=args.random_state)
    start = time.perf_counter()
    dense = Pipeline([("scale", SequenceScaler()), ("net", net)]).fit(X_train, y_train)
    dense_seconds = time.perf_counter() - start
    layers = ", ".join(f"{layer.cell} {layer.size} units"
                       for layer in NeuronGraph(dense[-1]).layers)
    print(f"dense net ({layers}; {args.epochs} epochs): test accuracy "
          f"{dense.score(X_test, y_test):.4f}", file=out)
    cv = StratifiedKFold(args.cv)
    with tempfile.TemporaryDirectory(prefix="latticeprune-fits-") as cache:
        pipe, grid = demo_search(net, args.units, args.sparsities, args.random_state, cache)
        search = _ProgressSearch(pipe, grid, cv=cv, n_jobs=args.n_jobs, out=out)
        n_candidates, n_splits = len(ParameterGrid(grid)), cv.get_n_splits()
        print(f"grid search: {n_candidates} candidates x {n_splits} folds (a fold's dense net "
              "fitted once)", file=out, flush=True)
        search.fit(X_train, y_train)
        print(f"refitting the {n_candidates} candidates on the training set, timing each as "
              "deployed (one thread):", file=out, flush=True)
        fitted = {}
        for params in search.cv_results_["params"]:
            start = time.perf_counter()
            fitted[label(params)] = (clone(pipe).set_params(**params).fit(X_train, y_train),
                                     time.perf_counter() - start, params)
    forms = {"dense": _deployed(dense), **{name: _deployed(p) for name, (p, _, _) in
                                            fitted.items()}}
    timed = _latencies(forms, shape)
    results = search.cv_results_
    rows = [_row("dense", "dense", None, dense, X_test, y_test, timed, dense_seconds, {})]
    for i, (name, (model, seconds, params)) in enumerate(fitted.items()):
        folds = [float(results[f"split{k}_test_score"][i]) for k in range(n_splits)]
        rows.append(_row(name, params["prune__granularity"], folds, model, X_test, y_test,
                         timed, seconds, params))
    print(format_table([_printed(row) for row in rows], COLUMNS), file=out)
    chosen = max(rows[1:], key=lambda row: row["cv accuracy"]["mean"])
    onnx = _export(fitted[chosen["name"]][0], X_test, Path(args.output), out, chosen["name"])
    payload = _payload(args, rows, chosen, onnx, time.perf_counter() - started)
    _write_outputs(Path(args.output), payload, rows, out)
    return rows


def _row(name, kind, folds, model, X_test, y_test, timed, seconds, params):
    """One candidate's numbers (JSON-ready)."""
    return {"name": name, "kind": kind,
            "params": {key.split("__", 1)[1]: value for key, value in params.items()},
            "cv accuracy": (None if folds is None else
                            {"mean": float(np.mean(folds)), "std": float(np.std(folds)),
                             "folds": folds}),
            "test accuracy": float(model.score(X_test, y_test)),
            "parameters": _nonzero_parameters(find_net(model[-1]).module_),
            "batch 1 ms": timed[name][1], "batch 256 ms": timed[name][256],
            "speed-up 1": timed["dense"][1] / timed[name][1],
            "speed-up 256": timed["dense"][256] / timed[name][256],
            "fit seconds": seconds}


def _printed(row):
    cv = row["cv accuracy"]
    return {"candidate": row["name"],
            "cv accuracy": "" if cv is None else f"{cv['mean']:.4f} +- {cv['std']:.4f}",
            "test": f"{row['test accuracy']:.4f}",
            "parameters": f"{row['parameters']:,}",
            "batch 1": f"{row['batch 1 ms']:.3f} ms {row['speed-up 1']:.2f}x",
            "batch 256": f"{row['batch 256 ms']:.2f} ms {row['speed-up 256']:.2f}x"}


def _export(model, X_test, folder, out, name):
    """Export the chosen candidate's net to ONNX and, where ONNX Runtime is installed, compare
    its probabilities with ``predict_proba``; ``{"path", "max abs difference"}``."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "chosen.onnx"
    export_onnx(model[-1], path)
    difference = None
    try:
        import onnxruntime
    except ImportError:
        check = "install onnxruntime to check it"
    else:
        scaled = model[0].transform(X_test).astype(np.float32)
        proba = onnxruntime.InferenceSession(str(path)).run(None, {"x": scaled})[1]
        difference = float(np.abs(proba - model.predict_proba(X_test)).max())
        check = f"ONNX Runtime's probabilities within {difference:.1e} of predict_proba"
    print(f"chosen (best cv accuracy): {name}, exported to {path}", file=out)
    print(f"  {check} (its input: SequenceScaler's output)", file=out)
    return {"path": str(path), "max abs difference": difference}


def _payload(args, rows, chosen, onnx, seconds):
    settings = {key: getattr(args, key) for key in ("dataset", "cell", "hidden_size", "epochs",
                                                    "units", "sparsities", "cv", "random_state")}
    return {"settings": settings, "rows": rows, "chosen": chosen["name"], "onnx": onnx,
            "seconds": seconds,
            "software": {"python": platform.python_version(), "latticeprune": __version__,
                         "torch": torch.__version__, "scikit-learn": sklearn.__version__,
                         "skorch": skorch.__version__, "numpy": np.__version__}}


def _write_outputs(folder, payload, rows, out):
    (folder / "results.json").write_text(json.dumps(payload, indent=2))
    written = [folder / "results.json"]
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        from .plotting import plot_accuracy_latency
        figure, axes = plt.subplots(1, 2, figsize=(12, 4.8), sharey=True)
        for ax, batch in zip(axes, ("batch 1 ms", "batch 256 ms")):
            plot_accuracy_latency(rows, latency=batch, ax=ax)
        axes[1].set_ylabel("")
        figure.suptitle(f"{payload['settings']['dataset']}: each pruned form as deployed, "
                        "against the dense net (one thread)")
        figure.savefig(folder / "accuracy_vs_latency.png", dpi=120, bbox_inches="tight")
        plt.close(figure)
        written.append(folder / "accuracy_vs_latency.png")
    except ImportError:
        print("matplotlib is not installed: no plot (pip install latticeprune[plots])", file=out)
    print(f"wrote {', '.join(str(path) for path in written)} ({payload['seconds']:.0f} s in all)",
          file=out)


# -- arguments ---------------------------------------------------------------------------------
def _checked(kind, name, check=None, **bounds):
    """An argparse ``type``: ``kind(text)``, checked by ``check_scalar(**bounds)`` and ``check``."""
    def parse(text):
        try:
            value = kind(text)
            if value != value:  # NaN passes every comparison in check_scalar
                raise ValueError(f"{name} must be a number, got {text!r}.")
            check_scalar(value, name, numbers.Real, **bounds)
            if check is not None:
                check(value)
        except ValueError as error:
            raise argparse.ArgumentTypeError(str(error)) from None
        return value
    return parse


def build_parser():
    """The ``latticeprune`` parser; each argument's ``type`` checks its own value."""
    parser = argparse.ArgumentParser(prog="latticeprune",
                                     description="Sparsify recurrent neural networks.")
    commands = parser.add_subparsers(dest="command", required=True)
    text = ("grid-search what pruning removes (units, weights, connections), time each form "
            "as deployed; print a table, export the chosen model to ONNX, write results.json "
            "and a figure")
    demo = commands.add_parser("demo", help=text, description=text)
    demo.set_defaults(error=demo.error)
    add = demo.add_argument
    add("--dataset", choices=["digits", "mnist"], default="digits",
        help="embedded digits, or MNIST from --data (default: %(default)s)")
    add("--data", metavar="PATH", help="MNIST IDX folder; only with --dataset mnist")
    add("--cell", choices=["rnn_tanh", "rnn_relu", "lstm", "gru"], default="lstm",
        help="recurrent cell (default: %(default)s)")
    add("--hidden-size", type=_checked(int, "hidden_size", min_val=1), default=64,
        help="hidden units (default: %(default)s)")
    add("--epochs", type=_checked(int, "epochs", min_val=1), default=15,
        help="training epochs of the dense net, before pruning (default: %(default)s)")
    add("--units", nargs="+", default=[0.5, 0.75], metavar="F",
        type=_checked(float, "units", min_val=0, max_val=1, include_boundaries="left"),
        help="fractions of every layer's units removed, in [0, 1) (default: 0.5 0.75)")
    add("--sparsities", nargs="+", default=[0.8, 0.9], metavar="S",
        type=_checked(float, "sparsity", min_val=0, max_val=1, include_boundaries="left"),
        help="sparsities of the weight and connection pruning, in [0, 1) (default: 0.8 0.9)")
    add("--cv", "--folds", dest="cv", type=_checked(int, "folds", min_val=2), default=3,
        help="cross-validation folds (default: %(default)s)")
    add("--n-jobs", type=_checked(int, "n_jobs", check=effective_n_jobs), default=1,
        help="parallel fits; -1: all cores (default: %(default)s)")
    add("--random-state", type=_checked(int, "random_state", min_val=0, max_val=2**32 - 1),
        default=0, help="seed of the split, nets and sparsifiers (default: %(default)s)")
    add("--output", default="latticeprune-output", metavar="FOLDER",
        help="folder for the results, created if missing (default: %(default)s)")
    text = ("compile the top-down LSTM kernel for this machine now (or report where it is), "
            "e.g. while building an image; exits 1 with the reason where it cannot")
    kernel = commands.add_parser("build-kernel", help=text, description=text)
    kernel.add_argument("--capability", type=str.upper, choices=sorted(KERNEL_CAPABILITIES),
                        help="torch CPU capability to build for (default: this CPU's, "
                             f"{torch.backends.cpu.get_cpu_capability()})")
    return parser


def check_demo(args):
    """``load_data(args)`` after checking the demo's arguments together; a bad one exits with
    status 2 and a usage error."""
    if (args.dataset == "mnist") != (args.data is not None):
        args.error("argument --data: " + (NEEDS_DATA if args.data is None
                                          else "only read with --dataset mnist"))
    try:
        data = load_data(args)
    except (OSError, ValueError) as error:
        args.error(f"argument --data: {error}")
    try:
        next(StratifiedKFold(args.cv).split(data[0], data[2]))
    except ValueError as error:
        args.error(f"argument --cv/--folds: {error}")
    try:
        Path(args.output).mkdir(parents=True, exist_ok=True)
        tempfile.TemporaryFile(dir=args.output).close()
    except OSError as error:
        args.error(f"argument --output: cannot write to folder {args.output!r}: "
                   f"{error.strerror}")
    return data


def build_kernel(args):
    """Build (or find) the top-down LSTM kernel and print its path; 0, or 1 with the reason
    on stderr."""
    extension = kernel_extension(args.capability)
    try:
        path = build(extension)
    except KernelBuildError as error:
        print(f"latticeprune build-kernel: {error}", file=sys.stderr)
        return 1
    print(f"{extension.description} ({args.capability or 'this CPU'}): {path}")
    return 0


def main(argv=None):
    args = build_parser().parse_args(argv)
    if args.command == "build-kernel":
        return build_kernel(args)
    data = check_demo(args)
    np.set_printoptions(precision=4)
    run_demo(args, data=data)
    return 0
