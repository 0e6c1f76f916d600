"""Dense baselines: RNNClassifier's defaults on digits and an LSTM-128 on MNIST (rows as steps),
each beside the defaults before issue 26 (batch 64, 20 epochs, Adam at 0.01, no clipping);
one torch thread.

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
from latticeprune.autosize import auto_batch_size
from latticeprune.datasets import load_digits_sequences, load_mnist

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import SETTINGS_0_1  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def run(name, settings, clf, X_train, X_test, y_train, y_test):
    start = time.perf_counter()
    clf.fit(X_train, y_train)
    seconds = time.perf_counter() - start
    batch = (auto_batch_size(len(X_train)) if clf.batch_size == "auto" else clf.batch_size)
    row = {"data": name, "model": f"{clf.cell}-{clf.hidden_size}", "settings": settings,
           "epochs": len(clf.history), "batch": batch, "lr": clf.lr,
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
    mnist = load_mnist(args.mnist, return_X_y=True)
    for settings, params in (("defaults", {}), ("defaults before", dict(SETTINGS_0_1,
                                                                        max_epochs=20))):
        rows.append(run("digits (stratified 75/25)", settings,
                        RNNClassifier(random_state=0, **params), *split))
        rows.append(run("mnist-10k", settings,
                        RNNClassifier(hidden_size=128, random_state=0, **params), *mnist))
    table = format_table(rows, list(rows[0]))
    header = (f"# command: python benchmarks/dense_baselines.py\n"
              f"# machine: {platform.machine()}, torch {torch.__version__}, "
              "1 torch thread (n_threads=1)\n")
    Path(args.output).write_text(header + table + "\n")
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
