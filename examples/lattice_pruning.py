"""Lattice pruning against its baselines on the embedded digits data.

Run: python examples/lattice_pruning.py
"""

from sklearn.model_selection import train_test_split

from latticeprune import LatticePruner, RNNClassifier, SequenceScaler
from latticeprune.datasets import load_digits_sequences

X, y = load_digits_sequences(return_X_y=True)  # (n, 8 steps, 8 features)
X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.25, stratify=y,
                                                    random_state=0)
scaler = SequenceScaler().fit(X_train)  # each feature over all steps of the training set
X_train, X_test = scaler.transform(X_train), scaler.transform(X_test)
net = RNNClassifier(cell="lstm", hidden_size=32, max_epochs=15, random_state=0)
dense = net.fit(X_train, y_train)
print(f"dense: {dense.score(X_test, y_test):.3f}")

for strategy in ("lattice", "magnitude", "random"):
    pruner = LatticePruner(dense, prefit=True, sparsity=0.8, strategy=strategy, n_rounds=3,
                           random_state=0).fit(X_train, y_train)
    print(f"{strategy:9s} at sparsity {pruner.sparsity_['overall']:.2f}: "
          f"{pruner.score(X_test, y_test):.3f} "
          f"({pruner.meet_irreducible_[0].sum()} of 32 neurons meet-irreducible)")
