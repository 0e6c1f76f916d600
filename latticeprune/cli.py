"""The ``latticeprune`` command (also ``python -m latticeprune``).

``latticeprune demo``: train a recurrent classifier on digits (or an MNIST folder), grid-search
sparsity x method (lattice pruning, binary and continuous; magnitude; moduli on a torus) with
cross-validation, one line per candidate; print the results table, write the
accuracy-vs-sparsity plot and a JSON. Every argument is checked before any training: a bad one
exits with argparse's usage error (status 2).

``latticeprune build-kernel``: compile the top-down LSTM kernel now (a container image, a
read-only deployment) or print where it is; exit status 1 and the reason where it cannot.
"""

import argparse
import json
import numbers
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from joblib import effective_n_jobs
from sklearn.metrics import check_scoring
from sklearn.model_selection import GridSearchCV, ParameterGrid, StratifiedKFold, train_test_split
from sklearn.pipeline import Pipeline
from sklearn.utils import check_scalar

from . import LatticePruner, ModuliRegularizer, RNNClassifier
from .datasets import load_digits_sequences, load_mnist
from .kernel_build import KernelBuildError, build
from .neuron_graph import NeuronGraph, find_net
from .top_down_kernel import CAPABILITY_FLAGS, kernel_extension
from .utils import format_table

#: Capabilities ``build-kernel --capability`` accepts: torch's names (``ATEN_CPU_CAPABILITY``).
KERNEL_CAPABILITIES = {"DEFAULT", *CAPABILITY_FLAGS}

#: The demo's methods: (sparsifier class, its parameters); labelled by ``_method_label``.
METHODS = [(LatticePruner, {"adjacency": "binary"}), (LatticePruner, {"adjacency": "continuous"}),
           (LatticePruner, {"strategy": "magnitude"}), (ModuliRegularizer, {"moduli": "torus"})]

NEEDS_DATA = "--dataset mnist needs --data PATH (an MNIST IDX folder such as mnist-10k/)"
COLUMNS = ["method", "sparsity", "cv accuracy", "test accuracy", "epochs", "fit seconds"]
EPOCHS_NOTE = ("epochs: each net's training epochs, the pruned nets' fine-tuning included "
               "(cv rows: fold mean)")


def load_data(args):
    """``X_train, X_test, y_train, y_test`` of ``args.dataset`` (digits: stratified 75/25 split)."""
    if args.dataset == "digits":
        X, y = load_digits_sequences(return_X_y=True)
        return train_test_split(X, y, test_size=0.25, stratify=y, random_state=args.random_state)
    if args.data is None:
        raise SystemExit(NEEDS_DATA)
    return load_mnist(args.data, return_X_y=True)


def _method_label(params):
    s = params["sparsify"]
    return (f"moduli {s.moduli}" if isinstance(s, ModuliRegularizer)
            else f"lattice {s.adjacency}" if s.strategy == "lattice" else s.strategy)


def _sparsity(params):
    return params.get("sparsify__sparsity", params.get("sparsify__target_sparsity"))


def _epochs(estimator, X, y):
    """Epochs the fitted net inside a pipeline trained (read as a 'score' of each CV fit)."""
    return len(find_net(estimator[-1]).history)


class _ProgressSearch(GridSearchCV):
    """``GridSearchCV`` printing one line per candidate to ``out``, in batches of
    ``n_jobs // n_splits`` candidates (so ``cv_results_`` are ``GridSearchCV``'s)."""

    def __init__(self, estimator, param_grid, *, cv, n_jobs, out):
        super().__init__(estimator, param_grid, refit="score", cv=cv, n_jobs=n_jobs,
                         scoring={"score": check_scoring(estimator), "epochs": _epochs})
        self.out = out

    def _run_search(self, evaluate_candidates):
        candidates = list(ParameterGrid(self.param_grid))
        step = max(1, effective_n_jobs(self.n_jobs) // self.cv.get_n_splits())
        start = time.perf_counter()
        for first in range(0, len(candidates), step):
            results = evaluate_candidates(candidates[first:first + step])
            for i in range(first, min(first + step, len(candidates))):
                params = results["params"][i]
                print(f"[{i + 1}/{len(candidates)}] {_method_label(params)} @ {_sparsity(params)}"
                      f": cv accuracy {results['mean_test_score'][i]:.4f} "
                      f"({time.perf_counter() - start:.0f} s)", file=self.out, flush=True)


def demo_grid(net, sparsities, random_state, memory=None):
    """The demo's parameter grid: one entry per method of :data:`METHODS`, each over
    ``sparsities``; the sparsifiers wrap ``net`` and cache its fits in ``memory``."""
    grid = []
    for cls, kwargs in METHODS:
        sparsifier = cls(net, random_state=random_state, memory=memory, **kwargs)
        name = "target_sparsity" if cls is ModuliRegularizer else "sparsity"
        grid.append({"sparsify": [sparsifier], f"sparsify__{name}": list(sparsities)})
    return grid


def run_demo(args, out=sys.stdout, data=None):
    """Grid-search, print the table, write the plot and JSON; the rows (``data``: preloaded)."""
    X_train, X_test, y_train, y_test = load_data(args) if data is None else data
    print(f"{args.dataset}: {len(X_train)} train / {len(X_test)} test sequences of "
          f"{X_train.shape[1]} steps x {X_train.shape[2]} features", file=out)
    net = RNNClassifier(cell=args.cell, hidden_size=args.hidden_size, max_epochs=args.epochs,
                        random_state=args.random_state)
    start = time.perf_counter()
    dense = net.fit(X_train, y_train)
    dense_row = {"method": "dense", "sparsity": 0.0, "cv accuracy": "",
                 "test accuracy": f"{dense.score(X_test, y_test):.4f}",
                 "epochs": len(dense.history), "fit seconds": f"{time.perf_counter() - start:.1f}"}
    layers = ", ".join(f"{layer.cell} {layer.size} units" for layer in NeuronGraph(dense).layers)
    print(f"dense net ({layers}; {dense_row['epochs']} epochs): test accuracy "
          f"{dense_row['test accuracy']}", file=out)

    cv = StratifiedKFold(args.cv)
    with tempfile.TemporaryDirectory(prefix="latticeprune-fits-") as cache:
        grid = demo_grid(net, args.sparsities, args.random_state, memory=cache)
        search = _ProgressSearch(Pipeline([("sparsify", grid[0]["sparsify"][0])]), grid, cv=cv,
                                 n_jobs=args.n_jobs, out=out)
        n_candidates, n_splits = len(ParameterGrid(grid)), cv.get_n_splits()
        print(f"grid search: {n_candidates} candidates x {n_splits} folds = "
              f"{n_candidates * n_splits} fits (a fold's dense net: fitted once)", file=out,
              flush=True)
        search.fit(X_train, y_train)

    results = search.cv_results_
    rows = [dense_row]
    for i, params in enumerate(results["params"]):
        epochs = float(results["mean_test_epochs"][i])
        rows.append({"method": _method_label(params), "sparsity": _sparsity(params),
                     "cv accuracy": f"{results['mean_test_score'][i]:.4f} "
                                    f"+- {results['std_test_score'][i]:.4f}",
                     "epochs": int(epochs) if epochs.is_integer() else round(epochs, 1),
                     "fit seconds": f"{results['mean_fit_time'][i]:.1f}"})
    best = search.best_estimator_[-1]
    rows.append({"method": f"best: {_method_label(search.best_params_)}",
                 "sparsity": round(best.sparsity_["overall"], 4),
                 "cv accuracy": f"{search.best_score_:.4f}",
                 "test accuracy": f"{search.score(X_test, y_test):.4f}",
                 "epochs": len(find_net(best).history)})
    print(format_table(rows, COLUMNS), file=out)
    print(EPOCHS_NOTE, file=out)
    _write_outputs(Path(args.output), search, rows, args, out)
    return rows


def _write_outputs(folder, search, rows, args, out):
    folder.mkdir(parents=True, exist_ok=True)
    payload = {key: getattr(args, key) for key in ("dataset", "cell", "hidden_size", "epochs",
                                                   "cv", "random_state")} | {"rows": rows}
    (folder / "results.json").write_text(json.dumps(payload, indent=2, default=str))
    written = [folder / "results.json"]
    try:
        import matplotlib
        matplotlib.use("Agg")
        from .plotting import plot_sparsity_curves
        ax = plot_sparsity_curves(search, group_by=["sparsify"])
        ax.figure.savefig(folder / "accuracy_vs_sparsity.png", dpi=120, bbox_inches="tight")
        written.append(folder / "accuracy_vs_sparsity.png")
    except ImportError:
        print("matplotlib is not installed: no plot (pip install latticeprune[plots])", file=out)
    print("wrote " + ", ".join(str(path) for path in written), file=out)


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
    text = "grid-search sparsity x method; print a table, write results.json and a plot"
    demo = commands.add_parser("demo", help=text, description=text)
    demo.set_defaults(error=demo.error)
    add = demo.add_argument
    add("--dataset", choices=["digits", "mnist"], default="digits",
        help="embedded digits, or MNIST from --data (default: %(default)s)")
    add("--data", metavar="PATH", help="MNIST IDX folder; only with --dataset mnist")
    add("--cell", choices=["rnn_tanh", "rnn_relu", "lstm", "gru"], default="lstm",
        help="recurrent cell (default: %(default)s)")
    add("--hidden-size", type=_checked(int, "hidden_size", min_val=1), default=32,
        help="hidden units (default: %(default)s)")
    add("--epochs", type=_checked(int, "epochs", min_val=1), default=15,
        help="training epochs of every net, before fine-tuning (default: %(default)s)")
    add("--sparsities", nargs="+", default=[0.5, 0.8, 0.9], metavar="S",
        type=_checked(float, "sparsity", min_val=0, max_val=1, include_boundaries="left"),
        help="target sparsities in [0, 1) (default: 0.5 0.8 0.9)")
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
