"""Command line: ``latticeprune demo`` (also ``python -m latticeprune demo``), the project's main job.

The demo trains a recurrent classifier on the embedded digits data (or an MNIST folder),
grid-searches sparsity x method (lattice pruning with binary and continuous adjacency, the
magnitude baseline, moduli regularisation on a torus) with cross-validation, prints a results
table, and writes the accuracy-vs-sparsity plot and a JSON of the results to an output folder.
"""

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
from sklearn.model_selection import GridSearchCV, StratifiedKFold, train_test_split
from sklearn.pipeline import Pipeline

from . import LatticePruner, ModuliRegularizer, RNNClassifier
from .datasets import load_digits_sequences, load_mnist
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


def _load(dataset, path, random_state):
    if dataset == "digits":
        X, y = load_digits_sequences(return_X_y=True)
        return train_test_split(X, y, test_size=0.25, stratify=y, random_state=random_state)
    if path is None:
        raise SystemExit("--dataset mnist needs --data PATH (an MNIST IDX folder such as "
                         "mnist-10k/)")
    return load_mnist(path, return_X_y=True)


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


def run_demo(args, out=sys.stdout):
    """Grid-search sparsity x method, print the table, write the plot and the JSON; return the rows."""
    X_train, X_test, y_train, y_test = _load(args.dataset, args.data, args.random_state)
    print(f"{args.dataset}: {len(X_train)} train / {len(X_test)} test sequences of "
          f"{X_train.shape[1]} steps x {X_train.shape[2]} features", file=out)
    net = RNNClassifier(cell=args.cell, hidden_size=args.hidden_size, max_epochs=args.epochs,
                        random_state=args.random_state)
    start = time.perf_counter()
    dense = net.fit(X_train, y_train)
    dense_row = {"method": "dense", "sparsity": 0.0, "cv accuracy": "",
                 "test accuracy": f"{dense.score(X_test, y_test):.4f}",
                 "fit seconds": f"{time.perf_counter() - start:.1f}"}
    print(f"dense {args.cell}-{args.hidden_size}: test accuracy {dense_row['test accuracy']}",
          file=out)

    n_candidates = len(METHODS) * len(args.sparsities)
    print(f"grid search: {n_candidates} candidates x {args.cv} folds = "
          f"{n_candidates * args.cv} fits", file=out, flush=True)
    search = GridSearchCV(Pipeline([("sparsify", METHODS[0][1](net, args.random_state))]),
                          _grid(net, args.sparsities, args.random_state),
                          cv=StratifiedKFold(args.cv), n_jobs=args.n_jobs, verbose=2,
                          refit=True)
    search.fit(X_train, y_train)

    results = search.cv_results_
    rows = [dense_row]
    for i, params in enumerate(results["params"]):
        level = params.get("sparsify__sparsity", params.get("sparsify__target_sparsity"))
        rows.append({"method": _method_label(params), "sparsity": level,
                     "cv accuracy": f"{results['mean_test_score'][i]:.4f} "
                                    f"+- {results['std_test_score'][i]:.4f}",
                     "fit seconds": f"{results['mean_fit_time'][i]:.1f}"})
    best = search.best_estimator_[-1]
    best_row = {"method": f"best: {_method_label(search.best_params_)}",
                "sparsity": round(best.sparsity_["overall"], 4),
                "cv accuracy": f"{search.best_score_:.4f}",
                "test accuracy": f"{search.score(X_test, y_test):.4f}"}
    rows.append(best_row)
    print(format_table(rows, ["method", "sparsity", "cv accuracy", "test accuracy",
                              "fit seconds"]), file=out)
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
        ax = plot_sparsity_curves(search)
        ax.figure.savefig(folder / "accuracy_vs_sparsity.png", dpi=120, bbox_inches="tight")
        written.append(folder / "accuracy_vs_sparsity.png")
    except ImportError:
        print("matplotlib is not installed: no plot (pip install latticeprune[plots])", file=out)
    print("wrote " + ", ".join(str(path) for path in written), file=out)


def build_parser():
    parser = argparse.ArgumentParser(prog="latticeprune",
                                     description="Sparsify recurrent neural networks.")
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser(
        "demo", help="grid-search sparsity x method on the embedded digits data (or MNIST), "
                     "print the results table, write a plot and a JSON")
    demo.add_argument("--dataset", choices=["digits", "mnist"], default="digits")
    demo.add_argument("--data", default=None, help="MNIST IDX folder for --dataset mnist")
    demo.add_argument("--cell", choices=["rnn_tanh", "rnn_relu", "lstm", "gru"], default="lstm")
    demo.add_argument("--hidden-size", type=int, default=32)
    demo.add_argument("--epochs", type=int, default=15)
    demo.add_argument("--sparsities", type=float, nargs="+", default=[0.5, 0.8, 0.9])
    demo.add_argument("--cv", type=int, default=3)
    demo.add_argument("--n-jobs", type=int, default=1)
    demo.add_argument("--random-state", type=int, default=0)
    demo.add_argument("--output", default="latticeprune-output",
                      help="folder for results.json and accuracy_vs_sparsity.png")
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    np.set_printoptions(precision=4)
    if args.command == "demo":
        run_demo(args)
    return 0
