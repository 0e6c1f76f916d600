"""Command line: ``latticeprune demo`` (also ``python -m latticeprune demo``), the project's main job."""

import argparse
import sys
import time

import numpy as np
from sklearn.model_selection import train_test_split
from skorch.callbacks import ProgressBar

from . import RNNClassifier
from .datasets import load_digits_sequences, load_mnist


def _load(dataset, path, random_state):
    if dataset == "digits":
        X, y = load_digits_sequences(return_X_y=True)
        return train_test_split(X, y, test_size=0.25, stratify=y, random_state=random_state)
    if path is None:
        raise SystemExit("--dataset mnist needs --data PATH (an MNIST IDX folder, e.g. "
                         "../shared/data/mnist-10k)")
    return load_mnist(path, return_X_y=True)


def format_table(rows, columns):
    """Plain-text table of ``rows`` (dicts) with the given ``columns``."""
    cells = [[str(row.get(col, "")) for col in columns] for row in rows]
    widths = [max(len(col), *(len(c[i]) for c in cells)) for i, col in enumerate(columns)]
    line = "  ".join(col.ljust(w) for col, w in zip(columns, widths))
    rule = "  ".join("-" * w for w in widths)
    body = ["  ".join(c.ljust(w) for c, w in zip(cell, widths)) for cell in cells]
    return "\n".join([line, rule, *body])


def run_demo(args, out=sys.stdout):
    """Train a recurrent classifier on the chosen data set and print a results table."""
    X_train, X_test, y_train, y_test = _load(args.dataset, args.data, args.random_state)
    print(f"{args.dataset}: {len(X_train)} train / {len(X_test)} test sequences of "
          f"{X_train.shape[1]} steps x {X_train.shape[2]} features", file=out)
    clf = RNNClassifier(cell=args.cell, hidden_size=args.hidden_size, max_epochs=args.epochs,
                        random_state=args.random_state, callbacks=[ProgressBar()])
    start = time.perf_counter()
    clf.fit(X_train, y_train)
    seconds = time.perf_counter() - start
    rows = [{"model": f"dense {args.cell}-{args.hidden_size}",
             "test accuracy": f"{clf.score(X_test, y_test):.4f}",
             "fit seconds": f"{seconds:.1f}",
             "parameters": sum(p.numel() for p in clf.module_.parameters())}]
    print(format_table(rows, ["model", "test accuracy", "fit seconds", "parameters"]), file=out)
    return rows


def build_parser():
    parser = argparse.ArgumentParser(prog="latticeprune",
                                     description="Sparsify recurrent neural networks.")
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser("demo", help="train on the embedded digits data (or MNIST) and "
                                            "print a results table")
    demo.add_argument("--dataset", choices=["digits", "mnist"], default="digits")
    demo.add_argument("--data", default=None, help="MNIST IDX folder for --dataset mnist")
    demo.add_argument("--cell", choices=["rnn_tanh", "rnn_relu", "lstm", "gru"], default="lstm")
    demo.add_argument("--hidden-size", type=int, default=64)
    demo.add_argument("--epochs", type=int, default=20)
    demo.add_argument("--random-state", type=int, default=0)
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    np.set_printoptions(precision=4)
    if args.command == "demo":
        run_demo(args)
    return 0
