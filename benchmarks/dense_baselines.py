"""Dense baselines: RNNClassifier defaults on digits and an LSTM-128 on MNIST (rows as steps).

Usage::

    python benchmarks/dense_baselines.py [--mnist ../shared/data/mnist-10k] [--output FILE]

Prints one line per model and writes the same table, headed by the command, to ``--output``.
"""

import argparse
import platform
import sys
import time
from pathlib import Path

import torch
from sklearn.model_selection import train_test_split

from latticeprune import RNNClassifier
from latticeprune.utils import format_table
from latticeprune.datasets import load_digits_sequences, load_mnist

ROOT = Path(__file__).resolve().parents[1]


def run(name, clf, X_train, X_test, y_train, y_test):
    start = time.perf_counter()
    clf.fit(X_train, y_train)
    seconds = time.perf_counter() - start
    row = {"data": name, "model": f"{clf.cell}-{clf.hidden_size}", "epochs": clf.max_epochs,
           "train/test": f"{len(X_train)}/{len(X_test)}",
           "test accuracy": f"{clf.score(X_test, y_test):.4f}", "fit seconds": f"{seconds:.1f}"}
    print(row, flush=True)
    return row


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--mnist", default=str(ROOT.parent / "shared" / "data" / "mnist-10k"))
    parser.add_argument("--output", default=str(ROOT / "benchmarks" / "results" /
                                                "dense_baselines.txt"))
    args = parser.parse_args(argv)
    rows = []
    X, y = load_digits_sequences(return_X_y=True)
    split = train_test_split(X, y, test_size=0.25, stratify=y, random_state=0)
    rows.append(run("digits (stratified 75/25)", RNNClassifier(random_state=0, n_threads=None), *split))
    rows.append(run("mnist-10k", RNNClassifier(cell="lstm", hidden_size=128, random_state=0,
                                  n_threads=None),
                    *load_mnist(args.mnist, return_X_y=True)))
    table = format_table(rows, list(rows[0]))
    header = (f"# command: python benchmarks/dense_baselines.py\n"
              f"# machine: {platform.machine()}, torch {torch.__version__}, "
              f"{torch.get_num_threads()} torch threads\n")
    Path(args.output).write_text(header + table + "\n")
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
