"""JapaneseVowels (UEA archive, variable-length): dense LSTM and each sparsifier, three seeds.

Usage::

    python benchmarks/japanese_vowels.py [--data ../shared/data/uea] [--seeds 0 1 2]
                                         [--output FILE]

Data (issue 14): the UEA archive's ``JapaneseVowels`` ``.ts`` files, read by aeon's own loader
(:func:`latticeprune.datasets.load_uea`; needs ``pip install latticeprune[aeon]``): 9 speakers,
12 LPC cepstrum coefficients per step, 7-29 steps, the standard 270 train / 370 test split.
Each feature is standardised with the mean and sd of the training steps. The sequences go to
the estimators as a list of ``(n_steps_i, 12)`` arrays (each batch cut to its longest
sequence, the state taken at each end: no padding reaches a result).

Models: ``RNNClassifier(cell="lstm", hidden_size=100, lr=0.003, batch_size=16, max_epochs=80,
n_threads=1)``. At sparsity 0.5 / 0.8 / 0.9: ``LatticePruner`` on the fitted dense net
(``prefit=True``, 5 rounds of 5 fine-tuning epochs) with the lattice rule at its default
connection granularity (fraction of recurrent weights), at ``granularity="unit"`` (fraction of
hidden units removed; the net is then smaller) and ``strategy="magnitude"`` (single weights),
and ``ModuliRegularizer(moduli="torus")`` training the same net from scratch with its pruning
schedule. The column "weights removed" is the fraction of recurrent weight entries removed. Seeds 0, 1, 2 (the net's
``random_state`` and the sparsifier's). Test accuracy: mean ± sd over the seeds, and each
sparse net's ``to_inference()`` form is checked to predict the same labels.

Fit time: dense fits (seed 0) on the list (variable-length batches) against fits on the same
data zero-padded to the longest sequence, 29 steps, as a plain 3-D array (the padding is then
read as data), three alternating pairs on the shared machine; the median ratio.
"""

import argparse
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

from latticeprune import LatticePruner, ModuliRegularizer, RNNClassifier
from latticeprune.datasets import load_uea
from latticeprune.inference import to_inference
from latticeprune.utils import format_table

ROOT = Path(__file__).resolve().parents[1]
SPARSITIES = (0.5, 0.8, 0.9)
NET = dict(cell="lstm", hidden_size=100, lr=0.003, batch_size=16, max_epochs=80, n_threads=1,
           max_grad_norm=None)
PRUNE = dict(prefit=True, n_rounds=5, fine_tune_epochs=5)


def load(folder):
    X_train, y_train = load_uea("JapaneseVowels", split="train", data_home=folder,
                                return_X_y=True)
    X_test, y_test = load_uea("JapaneseVowels", split="test", data_home=folder, return_X_y=True)
    steps = np.concatenate(X_train)
    mean, sd = steps.mean(axis=0), steps.std(axis=0)
    scale = lambda X: [((x - mean) / sd).astype(np.float32) for x in X]  # noqa: E731
    return scale(X_train), y_train, scale(X_test), y_test


def padded(X, steps):
    out = np.zeros((len(X), steps, X[0].shape[1]), dtype=np.float32)
    for i, x in enumerate(X):
        out[i, :len(x)] = x
    return out


def timed_fit(estimator, X, y):
    start = time.perf_counter()
    estimator.fit(X, y)
    return time.perf_counter() - start


def checked_score(model, X, y):
    """Test accuracy of ``model``; its ``to_inference()`` form must predict the same labels."""
    predicted = model.predict(X)
    if not np.array_equal(to_inference(model).predict(X), predicted):
        raise AssertionError(f"to_inference of {model!r} predicts other labels")
    return float(np.mean(predicted == y))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "uea"))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--output", default=str(ROOT / "benchmarks" / "results" /
                                                "japanese_vowels.txt"))
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    started = time.perf_counter()
    X_train, y_train, X_test, y_test = load(args.data)
    lengths = [len(x) for x in X_train + X_test]
    scores = {}  # (model, sparsity) -> [accuracy per seed]
    removed = {}  # (model, sparsity) -> [fraction of recurrent weights removed per seed]
    for seed in args.seeds:
        dense = RNNClassifier(random_state=seed, **NET).fit(X_train, y_train)
        scores.setdefault(("dense LSTM", 0.0), []).append(checked_score(dense, X_test, y_test))
        for sparsity in SPARSITIES:
            models = {
                "lattice (connections)": LatticePruner(dense, sparsity=sparsity,
                                                       random_state=seed, **PRUNE),
                "lattice (units)": LatticePruner(dense, sparsity=sparsity, granularity="unit",
                                                 random_state=seed, **PRUNE),
                "magnitude (weights)": LatticePruner(dense, sparsity=sparsity,
                                                     strategy="magnitude", random_state=seed,
                                                     **PRUNE),
                "moduli torus": ModuliRegularizer(RNNClassifier(random_state=seed, **NET),
                                                  moduli="torus", target_sparsity=sparsity,
                                                  random_state=seed),
            }
            for name, model in models.items():
                model.fit(X_train, y_train)
                reached = model.sparsity_.get("units", model.sparsity_["overall"])
                if abs(reached - sparsity) > 0.01:
                    raise AssertionError(f"{name} reached sparsity {reached}, not {sparsity}")
                removed.setdefault((name, sparsity), []).append(
                    model.sparsity_.get("weights", model.sparsity_["overall"]))
                scores.setdefault((name, sparsity), []).append(
                    checked_score(model, X_test, y_test))
                print(f"seed {seed} {name} {sparsity}: {scores[(name, sparsity)][-1]:.4f}",
                      flush=True)
    rows = [{"model": name, "sparsity": f"{sparsity:.1f}",
             "weights removed": f"{np.mean(removed.get((name, sparsity), [0.0])):.3f}",
             "test accuracy (mean ± sd)": f"{np.mean(acc):.4f} ± {np.std(acc, ddof=1):.4f}"
             if len(acc) > 1 else f"{acc[0]:.4f}",
             "per seed": " ".join(f"{a:.4f}" for a in acc)}
            for (name, sparsity), acc in scores.items()]
    rows.sort(key=lambda row: (row["sparsity"], row["model"] != "dense LSTM", row["model"]))

    longest = max(lengths)
    ragged_seconds, padded_seconds = [], []
    for _ in range(3):
        ragged = RNNClassifier(random_state=0, **NET)
        ragged_seconds.append(timed_fit(ragged, X_train, y_train))
        pad = RNNClassifier(random_state=0, **NET)
        padded_seconds.append(timed_fit(pad, padded(X_train, longest), y_train))
    ratio = float(np.median(np.divide(ragged_seconds, padded_seconds)))
    timing = [{"input": "list, variable-length batches",
               "fit seconds": " ".join(f"{t:.2f}" for t in ragged_seconds),
               "test accuracy": f"{ragged.score(X_test, y_test):.4f}"},
              {"input": f"zero-padded to {longest} steps (3-D array)",
               "fit seconds": " ".join(f"{t:.2f}" for t in padded_seconds),
               "test accuracy": f"{pad.score(padded(X_test, longest), y_test):.4f}"}]
    header = (
        "# command: python benchmarks/japanese_vowels.py\n"
        f"# machine: {platform.machine()}, torch {torch.__version__}, numpy {np.__version__}, "
        f"1 torch thread (n_threads=1); wall time {time.perf_counter() - started:.0f} s\n"
        f"# data: JapaneseVowels {len(X_train)} train / {len(X_test)} test, 12 features, "
        f"{min(lengths)}-{longest} steps (mean {np.mean(lengths):.1f}), standardised\n"
        f"# net: {NET}; pruners: {PRUNE}; seeds {args.seeds}\n")
    text = (header + format_table(rows, list(rows[0])) + "\n\n"
            + format_table(timing, list(timing[0]))
            + f"\nfit time ratio variable-length / padded (median of 3 pairs): {ratio:.2f}\n")
    Path(args.output).write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
