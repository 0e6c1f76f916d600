"""
Variable-length sequences
=========================

The estimators take a list of sequences of different lengths (or a ``PaddedSequences``, or a
3-D array padded with NaN): each sequence is read up to its own end, and its output is the
same alone as inside a padded batch. Here the digits are cut to 3-8 rows at random, a net
is fitted and pruned on the ragged list, and the accuracy is read by length.
"""

import matplotlib.pyplot as plt
import numpy as np
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline

from latticeprune import LatticePruner, RNNClassifier, SequenceScaler
from latticeprune.datasets import load_digits_sequences

X, y = load_digits_sequences(return_X_y=True)
rng = np.random.default_rng(0)
lengths = rng.integers(3, 9, size=len(X))
sequences = [x[:n] for x, n in zip(X, lengths)]  # a list of (n_steps_i, 8) arrays
train, test = train_test_split(np.arange(len(X)), test_size=0.25, stratify=y, random_state=0)
pick = lambda rows: [sequences[i] for i in rows]  # noqa: E731

pipe = make_pipeline(SequenceScaler(),
                     LatticePruner(RNNClassifier(hidden_size=32, max_epochs=15,
                                                 lr=0.01, random_state=0),
                                   sparsity=0.8, random_state=0))
pipe.fit(pick(train), y[train])
predicted = pipe.predict(pick(test))
print("test accuracy", round(float((predicted == y[test]).mean()), 3),
      "at sparsity", round(pipe[-1].sparsity_["overall"], 2))
alone = pipe.predict_proba(pick(test[:1]))
together = pipe.predict_proba(pick(test))[:1]
print("a sequence alone and inside the batch: largest difference",
      float(np.abs(alone - together).max()))

# %%
# Accuracy against the number of rows the sequence kept:
by_length = [(n, (predicted == y[test])[lengths[test] == n].mean()) for n in range(3, 9)]
fig, ax = plt.subplots(figsize=(5, 3))
ax.plot(*zip(*by_length), marker="o")
ax.set_xlabel("rows kept (steps)")
ax.set_ylabel("test accuracy")
ax.set_ylim(0, 1)
fig.tight_layout()
