"""The estimators inside aeon (latticeprune.aeon_estimators): aeon's own estimator checks, its
pipelines on an unequal-length multivariate set, the wrapped estimator left as it was. Run
in the ``aeon`` extra's environment (``.ci/run``'s third step); skipped without aeon."""

import importlib.util

import numpy as np
import pytest
import torch

from latticeprune import LatticePruner, RNNClassifier, RNNRegressor, SequenceScaler

from latticeprune.neuron_graph import NeuronGraph

HAS_AEON = importlib.util.find_spec("aeon") is not None
requires_aeon = pytest.mark.skipif(not HAS_AEON, reason="aeon is not installed "
                                                        "(pip install 'latticeprune[aeon]')")

if HAS_AEON:
    from aeon.testing.estimator_checking import parametrize_with_checks

    from latticeprune.aeon_estimators import AeonClassifier, AeonRegressor

    # aeon's checks, every one expected to pass (none is excluded)
    checked = parametrize_with_checks([AeonClassifier, AeonRegressor])
else:
    checked = pytest.mark.parametrize("check", [pytest.param(None, marks=requires_aeon)])


@pytest.mark.skipif(HAS_AEON, reason="aeon is installed")
def test_without_aeon_the_import_says_what_to_install():
    with pytest.raises(ImportError, match=r"pip install 'latticeprune\[aeon\]'"):
        import latticeprune.aeon_estimators  # noqa: F401


@checked
def test_aeon_estimator_checks(check):
    check()


def japanese_vowels():
    """aeon's copy of JapaneseVowels (in its wheel): 12 channels, 7-29 time points."""
    from aeon.datasets import load_classification
    X_train, y_train = load_classification("JapaneseVowels", split="train")
    X_test, y_test = load_classification("JapaneseVowels", split="test")
    return X_train, y_train, X_test, y_test


@requires_aeon
def test_a_pruned_net_in_aeons_pipeline_on_unequal_length_multivariate_data():
    from aeon.pipeline import make_pipeline
    from aeon.transformations.collection import Normalizer
    X_train, y_train, X_test, y_test = japanese_vowels()
    assert len({x.shape[1] for x in X_train}) > 1 and X_train[0].shape[0] == 12
    net = RNNClassifier(hidden_size=16, max_epochs=15, batch_size=16, lr=0.01, random_state=0)
    pruner = LatticePruner(net, granularity="unit", sparsity=0.5, n_rounds=1, random_state=0)
    before = dict(pruner.get_params(deep=False)), dict(net.get_params(deep=False))
    # aeon's Normalizer z-normalises each case's channels over its own time points
    pipe = make_pipeline(Normalizer(), AeonClassifier(pruner)).fit(X_train, y_train)
    proba = pipe.predict_proba(X_test)
    classes = np.unique(y_train)  # string labels "1" ... "9", aeon's column order
    assert proba.shape == (len(X_test), 9)
    np.testing.assert_allclose(proba.sum(axis=1), 1, atol=1e-5)
    np.testing.assert_array_equal(pipe.predict(X_test), classes[proba.argmax(axis=1)])
    assert np.mean(pipe.predict(X_test) == y_test) > 0.5  # 9 classes: chance is 0.11
    fitted = pipe.steps_[-1][1]
    kept = [layer.size for layer in NeuronGraph(fitted.estimator_.net_.module_).layers]
    assert kept == [8]  # half of the 16 units removed: a smaller net
    # the user's estimators are left as they were: same parameters, never fitted
    assert (pruner.get_params(deep=False), net.get_params(deep=False)) == before
    assert not hasattr(pruner, "net_") and not net.initialized_
    # scaled over the whole training set instead (each channel's level kept): far better
    scaled = AeonClassifier(make_scaled(pruner)).fit(X_train, y_train)
    assert np.mean(scaled.predict(X_test) == y_test) > 0.9


class SixChannelGRU(torch.nn.Module):
    """A user's own module (not latticeprune's): a bidirectional GRU, mean pooling, LayerNorm
    and a linear head for BasicMotions' 6 channels and 4 classes."""

    def __init__(self, hidden=16):
        super().__init__()
        self.gru = torch.nn.GRU(6, hidden, batch_first=True, bidirectional=True)
        self.norm = torch.nn.LayerNorm(2 * hidden)
        self.fc = torch.nn.Linear(2 * hidden, 4)

    def forward(self, x):
        return self.fc(self.norm(self.gru(x)[0].mean(dim=1)))


@requires_aeon
def test_a_users_skorch_net_pruned_inside_aeon_on_string_labels():
    from aeon.datasets import load_classification
    from skorch import NeuralNetClassifier
    X_train, y_train = load_classification("BasicMotions", split="train")  # float64, strings
    X_test, y_test = load_classification("BasicMotions", split="test")
    torch.manual_seed(0)
    net = NeuralNetClassifier(SixChannelGRU, criterion=torch.nn.CrossEntropyLoss, max_epochs=30,
                              lr=0.01, batch_size=8, train_split=None,
                              optimizer=torch.optim.Adam, verbose=0)
    pruner = LatticePruner(net, granularity="unit", sparsity=0.5, n_rounds=1, random_state=0)
    clf = AeonClassifier(pruner).fit(X_train, y_train)
    predicted = clf.predict(X_test)
    assert set(predicted) <= set(y_train)  # the labels themselves, not indices
    np.testing.assert_array_equal(predicted, clf.classes_[clf.predict_proba(X_test).argmax(1)])
    assert np.mean(predicted == y_test) > 0.8  # 4 classes: chance is 0.25
    small = clf.estimator_.net_.module_
    assert type(small) is SixChannelGRU and small.gru.hidden_size == 8  # both directions halved


@requires_aeon
def test_layouts_agree_with_the_estimator_on_our_layout():
    rng = np.random.default_rng(0)
    cube = rng.normal(size=(30, 3, 6)).astype(np.float32)  # aeon: (cases, channels, points)
    y = np.array(["b", "a", "c"] * 10)
    net = RNNClassifier(hidden_size=5, max_epochs=3, random_state=0)
    ours = RNNClassifier(**net.get_params()).fit(cube.transpose(0, 2, 1), y)
    wrapped = AeonClassifier(net).fit(cube, y)
    np.testing.assert_array_equal(wrapped.classes_, ["a", "b", "c"])
    np.testing.assert_allclose(wrapped.predict_proba(cube),
                               ours.predict_proba(cube.transpose(0, 2, 1)), atol=1e-6)
    ragged = [x[:, :n] for x, n in zip(cube, rng.integers(3, 7, size=30))]
    reg = AeonRegressor(RNNRegressor(hidden_size=4, max_epochs=2, random_state=0))
    assert reg.fit(ragged, cube[:, 0, 0]).predict(ragged).shape == (30,)


def make_scaled(net):
    from sklearn.pipeline import make_pipeline
    return make_pipeline(SequenceScaler(), net)


@requires_aeon
def test_a_non_estimator_is_refused_by_name():
    with pytest.raises(ValueError, match="The 'estimator' parameter of AeonClassifier must be "
                                         "None or an object implementing 'fit' and 'predict'. "
                                         "Got 'lstm' instead."):
        AeonClassifier(estimator="lstm").fit(np.zeros((4, 1, 5)), np.array([0, 1, 0, 1]))
