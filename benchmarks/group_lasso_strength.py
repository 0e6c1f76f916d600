"""The strength of ``LatticePruner(strategy="group_lasso")``: a sweep on the embedded digits.

Usage::

    python benchmarks/group_lasso_strength.py [--seeds 5]

A SequenceScaler and an LSTM-32 (10 epochs) on sklearn's digits (1347 train / 450 test, the
demo's split), half of its units removed in 2 rounds with 2 fine-tuning epochs each, for
``lasso_strength`` in {0, 1e-4, 1e-3, 1e-2, 3e-2}, beside the magnitude ranker (same rounds
and epochs, no penalty epochs before round 1) and a dense LSTM-32 trained for the same total
epochs (10 + 2 + 2 x 2 = 16); ``--seeds`` initialisations each. Columns: test accuracy mean and
standard deviation, how many initialisations beat the magnitude ranker's (paired: same
seed), and the penalty over the task loss in the first penalised epoch. Strength 0 is the
penalty's epochs without the penalty: the magnitude ranker with two more epochs.
"""

import argparse

import numpy as np
from sklearn.pipeline import make_pipeline

from latticeprune import LatticePruner, RNNClassifier, SequenceScaler
from latticeprune.utils import format_table

from common import SETTINGS_0_1, command_line, demo_split

STRENGTHS = (0.0, 1e-4, 1e-3, 1e-2, 3e-2)
EPOCHS, ROUNDS, TUNE = 10, 2, 2


def fit(seed, X_train, y_train, X_test, y_test, strategy=None, strength=0.0):
    """``(test accuracy, penalty / loss in the first penalised epoch or None)``."""
    if strategy is None:  # dense, as many epochs as the pruned nets train in all
        model = make_pipeline(SequenceScaler(), RNNClassifier(
            hidden_size=32, max_epochs=EPOCHS + TUNE + ROUNDS * TUNE, random_state=seed,
            **SETTINGS_0_1))
        return model.fit(X_train, y_train).score(X_test, y_test), None
    pruner = LatticePruner(RNNClassifier(hidden_size=32, max_epochs=EPOCHS, random_state=seed,
                                         **SETTINGS_0_1),
                           strategy=strategy, granularity="unit", sparsity=0.5,
                           n_rounds=ROUNDS, fine_tune_epochs=TUNE, lasso_strength=strength,
                           random_state=seed)
    model = make_pipeline(SequenceScaler(), pruner).fit(X_train, y_train)
    history = model[-1].estimator_.history
    ratio = next((row["group_lasso"] / row["train_loss"] for row in history
                  if "group_lasso" in row), None)
    return model.score(X_test, y_test), ratio


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=5)
    args = parser.parse_args(argv)
    print(command_line("group_lasso_strength.py", argv))
    X_train, X_test, y_train, y_test = demo_split()
    split = (X_train, y_train, X_test, y_test)
    seeds = range(args.seeds)
    runs = {"dense (16 epochs)": [fit(s, *split) for s in seeds],
            "magnitude": [fit(s, *split, strategy="magnitude") for s in seeds]}
    for strength in STRENGTHS:
        runs[f"group_lasso {strength:g}"] = [fit(s, *split, "group_lasso", strength)
                                             for s in seeds]
    reference = np.array([score for score, _ in runs["magnitude"]])
    rows = []
    for name, results in runs.items():
        scores = np.array([score for score, _ in results])
        ratios = [ratio for _, ratio in results if ratio is not None]
        rows.append({"model": name, "test accuracy": f"{scores.mean():.4f}",
                     "sd": f"{scores.std(ddof=1):.4f}",
                     "beats magnitude": ("" if name == "magnitude"
                                         else f"{int((scores > reference).sum())}/{len(scores)}"),
                     "penalty / loss": f"{np.mean(ratios):.3f}" if ratios else ""})
    print(format_table(rows, ["model", "test accuracy", "sd", "beats magnitude",
                              "penalty / loss"]))


if __name__ == "__main__":
    main()
