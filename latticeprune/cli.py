"""Command line: ``latticeprune demo`` (also ``python -m latticeprune demo``), the project's main job.

The demo trains a recurrent classifier on the embedded digits data (or an MNIST folder),
grid-searches sparsity x method (lattice pruning with binary and continuous adjacency, the
magnitude baseline, moduli regularisation on a torus) with cross-validation, printing one line
per candidate, then prints a results table (with the epochs each net trained) and writes the
accuracy-vs-sparsity plot and a JSON of the results to an output folder.

Every argument is checked before any training: a bad one ends the run with argparse's one-line
usage error and exit status 2.
"""

import argparse
import json
import numbers
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from joblib import effective_n_jobs
from sklearn.metrics import check_scoring
from sklearn.model_selection import GridSearchCV, ParameterGrid, StratifiedKFold, train_test_split
from sklearn.pipeline import Pipeline
from sklearn.utils import check_scalar

from . import LatticePruner, ModuliRegularizer, RNNClassifier
from .datasets import load_digits_sequences, load_mnist
from .neuron_graph import NeuronGraph, find_net
from .utils import format_table

#: The demo's methods: (label, sparsifier factory, name of its sparsity parameter).
METHODS = [
    ("lattice binary", lambda net, seed: LatticePruner(net, adjacency="binary",
                                                       random_state=seed), "sparsity"),
    ("lattice continuous", lambda net, seed: LatticePruner(net, adjacency="continuous",
                                                           random_state=seed), "sparsity"),
    ("magnitude", lambda net, seed: LatticePruner(net, strategy="magnitude",
                                                  random_state=seed), "sparsity"),
    ("moduli torus", lambda net, seed: ModuliRegularizer(net, moduli="torus",
                                                         random_state=seed), "target_sparsity"),
]

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


def _grid(net, sparsities, seed):
    return [{"sparsify": [make(net, seed)], f"sparsify__{param}": list(sparsities)}
            for _, make, param in METHODS]


def _method_label(params):
    sparsifier = params["sparsify"]
    for label, make, _ in METHODS:
        reference = make(sparsifier.estimator, sparsifier.random_state)
        if type(reference) is type(sparsifier) and all(
                getattr(reference, key) == getattr(sparsifier, key)
                for key in ("adjacency", "strategy", "moduli") if hasattr(reference, key)):
            return label
    return type(sparsifier).__name__


def _sparsity(params):
    return params.get("sparsify__sparsity", params.get("sparsify__target_sparsity"))


def _count(value):
    """A mean epoch count as printed: an int when whole."""
    value = float(value)
    return int(value) if value.is_integer() else round(value, 1)


def _epochs(estimator, X, y):
    """Epochs the fitted net inside a pipeline trained (read as a 'score' of each CV fit)."""
    return len(find_net(estimator[-1]).history)


class _ProgressSearch(GridSearchCV):
    """``GridSearchCV`` that prints one line per evaluated candidate to ``out``.

    Candidates are evaluated in the grid's order in batches just large enough to keep
    ``n_jobs`` workers busy (``n_jobs // n_splits`` candidates), so ``cv_results_`` and the
    refitted best estimator are those of ``GridSearchCV``.
    """

    def __init__(self, estimator, param_grid, *, cv, n_jobs, out):
        super().__init__(estimator, param_grid,
                         scoring={"score": check_scoring(estimator), "epochs": _epochs},
                         refit="score", cv=cv, n_jobs=n_jobs)
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


def run_demo(args, out=sys.stdout, data=None):
    """Grid-search sparsity x method, print the table, write the plot and the JSON; return the rows.

    ``data``: ``load_data(args)`` if already loaded.
    """
    X_train, X_test, y_train, y_test = load_data(args) if data is None else data
    print(f"{args.dataset}: {len(X_train)} train / {len(X_test)} test sequences of "
          f"{X_train.shape[1]} steps x {X_train.shape[2]} features", file=out)
    net = RNNClassifier(cell=args.cell, hidden_size=args.hidden_size, max_epochs=args.epochs,
                        random_state=args.random_state)
    start = time.perf_counter()
    dense = net.fit(X_train, y_train)
    dense_row = {"method": "dense", "sparsity": 0.0, "cv accuracy": "",
                 "test accuracy": f"{dense.score(X_test, y_test):.4f}",
                 "epochs": len(dense.history),
                 "fit seconds": f"{time.perf_counter() - start:.1f}"}
    layers = ", ".join(f"{layer.cell} {layer.size} units" for layer in NeuronGraph(dense).layers)
    print(f"dense net ({layers}; {dense_row['epochs']} epochs): test accuracy "
          f"{dense_row['test accuracy']}", file=out)

    cv = StratifiedKFold(args.cv)
    search = _ProgressSearch(Pipeline([("sparsify", METHODS[0][1](net, args.random_state))]),
                             _grid(net, args.sparsities, args.random_state), cv=cv,
                             n_jobs=args.n_jobs, out=out)
    n_candidates = len(ParameterGrid(search.param_grid))
    print(f"grid search: {n_candidates} candidates x {cv.get_n_splits()} folds = "
          f"{n_candidates * cv.get_n_splits()} fits", file=out, flush=True)
    search.fit(X_train, y_train)

    results = search.cv_results_
    rows = [dense_row]
    for i, params in enumerate(results["params"]):
        rows.append({"method": _method_label(params), "sparsity": _sparsity(params),
                     "cv accuracy": f"{results['mean_test_score'][i]:.4f} "
                                    f"+- {results['std_test_score'][i]:.4f}",
                     "epochs": _count(results["mean_test_epochs"][i]),
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
    payload = {"dataset": args.dataset, "cell": args.cell, "hidden_size": args.hidden_size,
               "epochs": args.epochs, "cv": args.cv, "random_state": args.random_state,
               "rows": rows}
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
def _number(kind, name, **bounds):
    """An argparse ``type``: parse ``kind`` and check it with sklearn's ``check_scalar``."""
    def parse(text):
        try:
            value = kind(text)
            if value != value:  # NaN passes every comparison in check_scalar
                raise ValueError
        except ValueError:
            raise argparse.ArgumentTypeError(f"invalid {kind.__name__} value: {text!r}") from None
        try:
            check_scalar(value, name, numbers.Real, **bounds)
        except ValueError as error:
            raise argparse.ArgumentTypeError(str(error)) from None
        return value
    return parse


def _n_jobs(text):
    value = _number(int, "n_jobs")(text)
    try:
        effective_n_jobs(value)
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"{error}: give a positive number of jobs, or -1 for "
                                         "all cores (-2 all but one, as joblib)") from None
    return value


def _folder(text):
    if not Path(text).is_dir():
        raise argparse.ArgumentTypeError(f"no such folder: {text!r}")
    return text


def build_parser():
    """The ``latticeprune`` parser; each argument's ``type`` checks its own value."""
    parser = argparse.ArgumentParser(prog="latticeprune",
                                     description="Sparsify recurrent neural networks.")
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser(
        "demo", help="grid-search sparsity x method on the embedded digits data (or MNIST), "
                     "print the results table, write a plot and a JSON",
        description="Train a dense recurrent classifier, then grid-search sparsity x method "
                    "(lattice pruning with binary and continuous adjacency, magnitude pruning, "
                    "moduli regularisation on a torus) with cross-validation; print one line per "
                    "candidate and a results table, write results.json and "
                    "accuracy_vs_sparsity.png.")
    demo.set_defaults(error=demo.error)
    demo.add_argument("--dataset", choices=["digits", "mnist"], default="digits",
                      help="digits: the embedded digits (rows as steps); mnist: an MNIST folder "
                           "given by --data (default: %(default)s)")
    demo.add_argument("--data", type=_folder, default=None, metavar="PATH",
                      help="MNIST IDX folder (the four standard files, gzip or plain); only with "
                           "--dataset mnist")
    demo.add_argument("--cell", choices=["rnn_tanh", "rnn_relu", "lstm", "gru"], default="lstm",
                      help="recurrent cell of the net (default: %(default)s)")
    demo.add_argument("--hidden-size", type=_number(int, "hidden_size", min_val=1), default=32,
                      help="hidden units of the net (default: %(default)s)")
    demo.add_argument("--epochs", type=_number(int, "epochs", min_val=1), default=15,
                      help="training epochs of the dense net and of every net in the search; "
                           "the lattice pruners add their fine-tuning epochs (default: "
                           "%(default)s)")
    demo.add_argument("--sparsities", nargs="+", default=[0.5, 0.8, 0.9], metavar="S",
                      type=_number(float, "sparsity", min_val=0, max_val=1,
                                   include_boundaries="left"),
                      help="target sparsities in [0, 1) searched for every method "
                           "(default: 0.5 0.8 0.9)")
    demo.add_argument("--cv", "--folds", dest="cv", type=_number(int, "folds", min_val=2),
                      default=3, help="cross-validation folds, at least 2 (default: %(default)s)")
    demo.add_argument("--n-jobs", type=_n_jobs, default=1,
                      help="parallel fits in the grid search: a positive number, or -1 for all "
                           "cores (default: %(default)s)")
    demo.add_argument("--random-state", type=_number(int, "random_state", min_val=0,
                                                     max_val=2**32 - 1), default=0,
                      help="seed of the split, the nets and the sparsifiers; same seed, same "
                           "results (default: %(default)s)")
    demo.add_argument("--output", default="latticeprune-output", metavar="FOLDER",
                      help="folder for results.json and accuracy_vs_sparsity.png, created if "
                           "missing (default: %(default)s)")
    return parser


def parse_and_load(argv=None):
    """Parse and check the arguments, load the data; exit 2 with a usage error on a bad one.

    Returns
    -------
    args, data : Namespace and ``load_data(args)``
    """
    args = build_parser().parse_args(argv)
    if args.dataset == "mnist" and args.data is None:
        args.error(f"argument --data: {NEEDS_DATA}")
    if args.dataset != "mnist" and args.data is not None:
        args.error("argument --data: only read with --dataset mnist")
    try:
        data = load_data(args)
    except (OSError, ValueError) as error:
        args.error(f"argument --data: {error}")
    try:
        next(StratifiedKFold(args.cv).split(data[0], data[2]))
    except ValueError as error:
        args.error(f"argument --cv/--folds: {error}")
    folder = Path(args.output)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        tempfile.TemporaryFile(dir=folder).close()
    except OSError as error:
        args.error(f"argument --output: cannot write to folder {args.output!r}: "
                   f"{error.strerror}")
    return args, data


def main(argv=None):
    args, data = parse_and_load(argv)
    np.set_printoptions(precision=4)
    if args.command == "demo":
        run_demo(args, data=data)
    return 0
