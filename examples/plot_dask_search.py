"""
A grid search on a Dask cluster
===============================

The sparsifiers are ordinary scikit-learn estimators, so a grid search runs on a Dask cluster
through joblib's ``dask`` backend, and with the same seeds it gives the same scores as in one
process. Here a local cluster of two worker processes stands in for a real one.
"""

import joblib
import matplotlib.pyplot as plt
import numpy as np
from dask.distributed import Client, LocalCluster
from sklearn.model_selection import GridSearchCV, StratifiedKFold

from latticeprune import LatticePruner, RNNClassifier
from latticeprune.datasets import load_digits_sequences

X, y = load_digits_sequences(return_X_y=True)
pruner = LatticePruner(RNNClassifier(hidden_size=16, max_epochs=10, lr=0.01), n_rounds=1,
                       random_state=0)
grid = {"sparsity": [0.5, 0.9], "strategy": ["lattice", "magnitude"]}
serial = GridSearchCV(pruner, grid, cv=StratifiedKFold(2)).fit(X, y)

if __name__ == "__main__":  # worker processes import this file
    with LocalCluster(n_workers=2, threads_per_worker=1, dashboard_address=None) as cluster, \
            Client(cluster), joblib.parallel_backend("dask"):
        on_dask = GridSearchCV(pruner, grid, cv=StratifiedKFold(2), n_jobs=-1).fit(X, y)
    for params, a, b in zip(serial.cv_results_["params"],
                            serial.cv_results_["mean_test_score"],
                            on_dask.cv_results_["mean_test_score"]):
        print(f"{params['strategy']:9s} {params['sparsity']}: one process {a:.4f}, Dask {b:.4f}")
    print("same scores:", np.array_equal(serial.cv_results_["mean_test_score"],
                                         on_dask.cv_results_["mean_test_score"]))

    # %%
    # Each candidate's cross-validated score in one process against on the cluster: every
    # point on the diagonal.
    fig, ax = plt.subplots(figsize=(4, 4))
    ax.scatter(serial.cv_results_["mean_test_score"], on_dask.cv_results_["mean_test_score"])
    low, high = ax.get_xlim()
    ax.plot([low, high], [low, high], color="grey", linestyle="--", linewidth=1)
    ax.set_xlabel("score, one process")
    ax.set_ylabel("score, Dask")
    fig.tight_layout()
