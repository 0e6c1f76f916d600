"""
The lattice of a trained net, and lattice pruning against its baselines
=======================================================================

``LatticePruner`` orders the hidden neurons of a trained net by their strongest connections
(the backbone), finds the meet-irreducible neurons of that order, and prunes the outgoing
connections of the others first. Here it prunes a trained LSTM to 80% beside the magnitude
and random baselines, then draws what it found: the connectivity before and after, neurons
ordered by their role in the lattice, and the Hasse diagram of the backbone.
"""

from sklearn.model_selection import train_test_split

from latticeprune import LatticePruner, RNNClassifier, SequenceScaler
from latticeprune.datasets import load_digits_sequences
from latticeprune.plotting import plot_connectivity, plot_hasse_diagram

X, y = load_digits_sequences(return_X_y=True)  # (n, 8 steps, 8 features)
X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.25, stratify=y,
                                                    random_state=0)
scaler = SequenceScaler().fit(X_train)  # each feature over all steps of the training set
X_train, X_test = scaler.transform(X_train), scaler.transform(X_test)
net = RNNClassifier(cell="lstm", hidden_size=32, max_epochs=15, lr=0.01, random_state=0)
dense = net.fit(X_train, y_train)
print(f"dense: {dense.score(X_test, y_test):.3f}")

pruners = {}
for strategy in ("lattice", "magnitude", "random"):
    pruners[strategy] = LatticePruner(dense, prefit=True, sparsity=0.8, strategy=strategy,
                                      n_rounds=3, random_state=0).fit(X_train, y_train)
    pruner = pruners[strategy]
    print(f"{strategy:9s} at sparsity {pruner.sparsity_['overall']:.2f}: "
          f"{pruner.score(X_test, y_test):.3f} "
          f"({pruner.meet_irreducible_[0].sum()} of 32 neurons meet-irreducible)")

# %%
# The recurrent connectivity before and after lattice pruning, the neurons in lattice order:
plot_connectivity(pruners["lattice"], order="lattice")

# %%
# The Hasse diagram of the backbone poset, the meet-irreducible neurons marked:
plot_hasse_diagram(pruners["lattice"])
