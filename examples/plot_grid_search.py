"""
Pruning in a pipeline, tuned with a grid search
===============================================

A sparsifier is one step of a scikit-learn pipeline, so the method, its strategy and its
sparsity are hyper-parameters like any other: here ``GridSearchCV`` compares the lattice
strategy with the magnitude baseline at two sparsities, then the moduli regulariser, in one
grid. ``SequenceScaler`` standardises each feature over all steps of the training sequences.
"""

from sklearn.model_selection import GridSearchCV, StratifiedKFold, train_test_split
from sklearn.pipeline import Pipeline

from latticeprune import LatticePruner, ModuliRegularizer, RNNClassifier, SequenceScaler
from latticeprune.datasets import load_digits_sequences
from latticeprune.plotting import plot_sparsity_curves

X, y = load_digits_sequences(return_X_y=True)  # (n, 8 steps, 8 features)
X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.25, stratify=y,
                                                    random_state=0)
net = RNNClassifier(cell="lstm", hidden_size=16, max_epochs=8, lr=0.01, random_state=0)
pipe = Pipeline([("scale", SequenceScaler()), ("prune", LatticePruner(net))])
grid = [
    {"prune": [LatticePruner(net, n_rounds=2, random_state=0)],
     "prune__sparsity": [0.5, 0.9], "prune__strategy": ["lattice", "magnitude"]},
    {"prune": [ModuliRegularizer(net, moduli="torus", random_state=0)],
     "prune__target_sparsity": [0.5, 0.9]},
]
search = GridSearchCV(pipe, grid, cv=StratifiedKFold(2)).fit(X_train, y_train)
for params, score in zip(search.cv_results_["params"], search.cv_results_["mean_test_score"]):
    method = type(params["prune"]).__name__, params.get("prune__strategy", "torus")
    level = params.get("prune__sparsity", params.get("prune__target_sparsity"))
    print(f"{method[0]:17s} {method[1]:9s} sparsity {level}: {score:.3f}")
print("chosen:", search.best_params_["prune"].__class__.__name__,
      "test accuracy", round(search.score(X_test, y_test), 3))

# %%
# Cross-validated accuracy against sparsity, one line per method:
plot_sparsity_curves(search)
