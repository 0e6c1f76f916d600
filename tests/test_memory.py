"""A sparsifier's ``memory``: one dense fit per fold in a grid search over pruning (issue 27)."""

import numpy as np
import pytest
from joblib import Memory
from sklearn.model_selection import GridSearchCV, KFold

from conftest import WORKER_PROCESSES
from latticeprune import LatticePruner, ModuliRegularizer, RNNClassifier

GRID = {"sparsity": [0.5, 0.8], "strategy": ["lattice", "magnitude"]}


class CountingClassifier(RNNClassifier):
    """Counts its fits (class-wide: a cached fit is not run again)."""

    fits = 0

    def fit(self, X, y=None, sample_weight=None, **fit_params):
        type(self).fits += 1
        return super().fit(X, y, sample_weight=sample_weight, **fit_params)


@pytest.fixture
def counting():
    CountingClassifier.fits = 0
    return CountingClassifier(hidden_size=6, max_epochs=2, random_state=0)


def search(estimator, memory, n_jobs=1):
    pruner = LatticePruner(estimator, n_rounds=1, random_state=0, memory=memory)
    return GridSearchCV(pruner, GRID, cv=KFold(3), refit=False, n_jobs=n_jobs)


def test_a_grid_over_pruning_fits_each_folds_estimator_once_with_the_same_scores(
        counting, small_digits, tmp_path):
    X, y = small_digits
    plain = search(counting, None).fit(X, y)
    assert CountingClassifier.fits == 4 * 3  # every candidate, every fold
    CountingClassifier.fits = 0
    cached = search(counting, tmp_path).fit(X, y)
    assert CountingClassifier.fits == 3  # one per fold
    for key in ("split0_test_score", "split1_test_score", "split2_test_score"):
        np.testing.assert_array_equal(cached.cv_results_[key], plain.cv_results_[key])
    CountingClassifier.fits = 0
    again = search(counting, Memory(str(tmp_path), verbose=0)).fit(X, y)
    assert CountingClassifier.fits == 0  # a second search finds every fold's fit
    np.testing.assert_array_equal(again.cv_results_["mean_test_score"],
                                  plain.cv_results_["mean_test_score"])


def test_a_changed_parameter_row_or_weight_is_a_new_entry(counting, small_digits, tmp_path):
    X, y = small_digits
    pruner = LatticePruner(counting, sparsity=0.5, n_rounds=1, random_state=0, memory=tmp_path)
    pruner.fit(X, y)
    assert CountingClassifier.fits == 1
    pruner.set_params(sparsity=0.8).fit(X, y)  # the sparsifier's own parameter: reused
    assert CountingClassifier.fits == 1
    pruner.set_params(estimator__hidden_size=5).fit(X, y)
    assert CountingClassifier.fits == 2
    X_changed = X.copy()
    X_changed[3, 2, 1] += 0.5
    pruner.fit(X_changed, y)
    assert CountingClassifier.fits == 3
    weights = np.ones(len(X))
    pruner.fit(X_changed, y, sample_weight=weights)
    assert CountingClassifier.fits == 4
    weights[7] = 2.0
    pruner.fit(X_changed, y, sample_weight=weights)
    assert CountingClassifier.fits == 5
    pruner.set_params(random_state=1).fit(X_changed, y, sample_weight=weights)
    assert CountingClassifier.fits == 5  # the estimator's own random_state=0 fixes its net
    unseeded = pruner.set_params(estimator__random_state=None)
    unseeded.fit(X_changed, y, sample_weight=weights)
    unseeded.set_params(random_state=2).fit(X_changed, y, sample_weight=weights)
    assert CountingClassifier.fits == 7  # the sparsifier seeds an unseeded clone: new nets


@pytest.mark.xdist_group(WORKER_PROCESSES)
def test_parallel_searches_share_the_cache_and_give_the_same_scores(small_digits, tmp_path):
    X, y = small_digits
    net = RNNClassifier(hidden_size=6, max_epochs=2, random_state=0)
    one = search(net, tmp_path).fit(X, y)
    two = search(net, tmp_path, n_jobs=2).fit(X, y)
    np.testing.assert_array_equal(one.cv_results_["mean_test_score"],
                                  two.cv_results_["mean_test_score"])


def test_the_moduli_regularizer_reuses_only_an_identical_configuration(counting, small_digits,
                                                                       tmp_path):
    X, y = small_digits
    reg = ModuliRegularizer(counting, target_sparsity=0.5, random_state=0, memory=tmp_path)
    first = reg.fit(X, y).predict_proba(X)
    np.testing.assert_array_equal(reg.fit(X, y).predict_proba(X), first)
    assert CountingClassifier.fits == 1
    reg.set_params(target_sparsity=0.6).fit(X, y)  # trains with its schedule: a new fit
    assert CountingClassifier.fits == 2
    no_memory = ModuliRegularizer(counting, target_sparsity=0.5, random_state=0).fit(X, y)
    np.testing.assert_array_equal(no_memory.predict_proba(X), first)


def test_a_dask_search_shares_the_cache_location(dask_cluster, small_digits, tmp_path):
    from joblib import parallel_backend
    X, y = small_digits
    net = RNNClassifier(hidden_size=6, max_epochs=2, random_state=0)
    local = search(net, tmp_path).fit(X, y)
    with parallel_backend("dask"):
        remote = search(net, tmp_path, n_jobs=2).fit(X, y)  # the workers read the entries
    np.testing.assert_array_equal(remote.cv_results_["mean_test_score"],
                                  local.cv_results_["mean_test_score"])
