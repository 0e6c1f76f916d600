"""The demo's grid search with and without the sparsifiers' ``memory``: same scores, less time.

Usage::

    python benchmarks/grid_memory.py [--repeats 2]

The grid of ``latticeprune demo`` on the embedded digits (its defaults: a SequenceScaler and
an LSTM-64, 15 epochs, 3 folds; units removed 0.5 / 0.75 by the lattice and the magnitude
rankers, weights by magnitude and connections by the lattice at 0.8 / 0.9: 8 candidates, 24
fits), fitted with ``memory=None`` and with a fresh cache folder each time, at ``n_jobs=1``
and ``n_jobs=2``; wall times (median of ``--repeats``) and whether every split score is equal
to the last bit. With ``memory`` the eight candidates of a fold share one dense fit.
"""

import argparse
import tempfile
import time

import numpy as np
from sklearn.model_selection import GridSearchCV, StratifiedKFold

from latticeprune import RNNClassifier
from latticeprune.cli import demo_search
from latticeprune.utils import format_table

from common import SETTINGS_0_1, command_line, demo_split


def run(memory, n_jobs, X, y):
    net = RNNClassifier(cell="lstm", hidden_size=64, max_epochs=15, random_state=0,
                        **SETTINGS_0_1)
    pipe, grid = demo_search(net, [0.5, 0.75], [0.8, 0.9], 0, memory=memory)
    search = GridSearchCV(pipe, grid, cv=StratifiedKFold(3), n_jobs=n_jobs, refit=False)
    start = time.perf_counter()
    search.fit(X, y)
    seconds = time.perf_counter() - start
    scores = np.column_stack([search.cv_results_[f"split{k}_test_score"] for k in range(3)])
    return seconds, scores


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args(argv)
    print(command_line("grid_memory.py", argv))
    X_train, _, y_train, _ = demo_split()
    rows = []
    for n_jobs in (1, 2):
        results = {}
        for label in ("without memory", "with memory"):
            times, scores = [], None
            for _ in range(args.repeats):
                with tempfile.TemporaryDirectory() as cache:
                    seconds, got = run(cache if label == "with memory" else None, n_jobs,
                                       X_train, y_train)
                times.append(seconds)
                scores = got
            results[label] = (float(np.median(times)), scores)
        plain, cached = results["without memory"], results["with memory"]
        rows.append({"n_jobs": n_jobs, "without memory s": f"{plain[0]:.1f}",
                     "with memory s": f"{cached[0]:.1f}",
                     "speed-up": f"{plain[0] / cached[0]:.2f}x",
                     "same split scores": str(bool(np.array_equal(plain[1], cached[1])))})
    print(format_table(rows, ["n_jobs", "without memory s", "with memory s", "speed-up",
                              "same split scores"]))


if __name__ == "__main__":
    main()
