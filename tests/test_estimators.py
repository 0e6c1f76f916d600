"""RNNClassifier / RNNRegressor: shapes, cells, determinism, sklearn integration."""

import pickle

import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from latticeprune import RNNClassifier, RNNRegressor
from latticeprune.nets import CELLS, HierarchicalRNN

FAST = dict(hidden_size=12, max_epochs=2, random_state=0)


def test_defaults_reach_090_on_digits(digits):
    X, y = digits
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.25, stratify=y,
                                                        random_state=0)
    clf = RNNClassifier(random_state=0).fit(X_train, y_train)
    assert clf.score(X_test, y_test) >= 0.90


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("layers,top_down", [(1, False), (2, False), (2, True)])
def test_every_cell_and_topology_fits_and_predicts(small_digits, cell, layers, top_down):
    X, y = small_digits
    clf = RNNClassifier(cell=cell, num_layers=layers, top_down=top_down, **FAST).fit(X, y)
    assert isinstance(clf.module_.encoder, HierarchicalRNN) == top_down
    proba = clf.predict_proba(X[:7])
    assert proba.shape == (7, 10)
    np.testing.assert_allclose(proba.sum(axis=1), 1, rtol=1e-5)
    assert clf.transform(X[:7]).shape == (7, 12)
    assert set(clf.predict(X)) <= set(y)


def test_2d_and_3d_inputs_give_the_same_net(small_digits):
    X, y = small_digits
    clf3 = RNNClassifier(**FAST).fit(X, y)
    clf2 = RNNClassifier(input_size=8, **FAST).fit(X.reshape(len(X), 64), y)
    np.testing.assert_allclose(clf3.predict_proba(X), clf2.predict_proba(X.reshape(-1, 64)),
                               rtol=1e-5, atol=1e-6)
    assert (clf2.input_size_, clf2.n_steps_, clf2.n_features_in_) == (8, 8, 64)
    # 2-D without input_size: one feature per column, 64 steps
    clf1 = RNNClassifier(**FAST).fit(X.reshape(len(X), 64), y)
    assert (clf1.input_size_, clf1.n_steps_) == (1, 64)


def test_labels_of_any_type_and_classes_(small_digits):
    X, y = small_digits
    names = np.array(["zero", "one", "two", "three", "four", "five", "six", "seven", "eight",
                      "nine"])
    clf = RNNClassifier(**FAST).fit(X, names[y])
    assert list(clf.classes_) == sorted(names)
    assert set(clf.predict(X[:20])) <= set(names)


def test_same_random_state_same_predictions(small_digits):
    X, y = small_digits
    a = RNNClassifier(cell="gru", **FAST).fit(X, y).predict_proba(X)
    b = RNNClassifier(cell="gru", **FAST).fit(X, y).predict_proba(X)
    c = RNNClassifier(cell="gru", hidden_size=12, max_epochs=2, random_state=1).fit(X, y)
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c.predict_proba(X))


def test_fit_leaves_torch_global_rng_alone(small_digits):
    import torch
    X, y = small_digits
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    RNNClassifier(**FAST).fit(X, y)
    np.testing.assert_array_equal(torch.rand(3), expected)


def test_clone_and_pickle_round_trip(small_digits):
    X, y = small_digits
    clf = RNNClassifier(cell="gru", num_layers=2, top_down=True, **FAST)
    cloned = clone(clf)
    assert cloned.get_params()["hidden_size"] == 12 and cloned.top_down
    clf.fit(X, y)
    restored = pickle.loads(pickle.dumps(clf))
    np.testing.assert_array_equal(restored.predict_proba(X), clf.predict_proba(X))
    np.testing.assert_array_equal(restored.classes_, clf.classes_)


def test_pipeline_after_standard_scaler_and_set_params(small_digits):
    X, y = small_digits
    pipe = make_pipeline(StandardScaler(), RNNClassifier(input_size=8, **FAST))
    pipe.set_params(rnnclassifier__hidden_size=9, rnnclassifier__cell="rnn_tanh")
    pipe.fit(X.reshape(len(X), -1), y)
    net = pipe[-1]
    assert net.module_.encoder.hidden_size == 9 and net.module_.encoder.mode == "RNN_TANH"
    assert pipe.score(X.reshape(len(X), -1), y) > 0.3


def test_module_params_can_override_plain_params(small_digits):
    X, y = small_digits
    clf = RNNClassifier(module__hidden_size=5, **FAST).fit(X, y)
    assert clf.module_.encoder.hidden_size == 5


def test_partial_fit_continues_training(small_digits):
    X, y = small_digits
    clf = RNNClassifier(**FAST).fit(X, y)
    before = clf.module_.readout.weight.detach().clone()
    clf.partial_fit(X, y)
    assert len(clf.history) == 4
    assert not np.allclose(before, clf.module_.readout.weight.detach())


def test_regressor_scalar_and_sequence_targets():
    rng = np.random.RandomState(0)
    X = rng.rand(200, 8, 2).astype(np.float32)
    y = X[:, :, 0].sum(axis=1)
    reg = RNNRegressor(hidden_size=16, random_state=0).fit(X, y)
    assert reg.predict(X).shape == (200,)
    assert reg.score(X, y) > 0.8
    cumulative = np.cumsum(X[:, :, 0], axis=1)
    seq = RNNRegressor(hidden_size=16, max_epochs=10, sequence_output=True,
                       random_state=0).fit(X, cumulative)
    assert seq.predict(X).shape == (200, 8)
    assert np.mean((seq.predict(X) - cumulative) ** 2) < np.var(cumulative)
    multi = RNNRegressor(hidden_size=8, max_epochs=1, sequence_output=True,
                         random_state=0).fit(X, np.stack([cumulative, -cumulative], axis=2))
    assert multi.predict(X).shape == (200, 8, 2)


def test_transform_is_the_readout_input(small_digits):
    X, y = small_digits
    clf = RNNClassifier(**FAST).fit(X, y)
    hidden = clf.transform(X[:10])
    w = clf.module_.readout.weight.detach().numpy()
    b = clf.module_.readout.bias.detach().numpy()
    np.testing.assert_allclose(hidden @ w.T + b, clf.decision_function(X[:10]), rtol=1e-4,
                               atol=1e-5)


def test_every_sequence_estimator_shares_the_base(small_digits):
    from sklearn.exceptions import NotFittedError
    from latticeprune.estimators import SequenceNet
    from latticeprune.tasks import LanguageModel, PathIntegrator
    for cls in (RNNClassifier, RNNRegressor, PathIntegrator, LanguageModel):
        assert issubclass(cls, SequenceNet) and cls().get_params()["n_threads"] == 1
    X, y = small_digits
    clf = RNNClassifier(**FAST)
    with pytest.raises(NotFittedError):
        clf.check_sequences(X)
    checked = clf.fit(X, y).check_sequences(X.reshape(len(X), -1))  # 2-D: input_size_ per step
    assert checked.shape == X.shape and checked.dtype == np.float32
    with pytest.raises(ValueError, match="features per step"):
        clf.check_sequences(X[:, :, :3])


def stepwise_top_down(layers, x):
    """The former top-down loop: every layer called once per step."""
    states = [layer.init_state(x.shape[0], x.dtype, x.device) for layer in layers]
    outputs = []
    for t in range(x.shape[1]):
        previous, below = [state[0] for state in states], x[:, t]
        for index, layer in enumerate(layers):
            above = previous[index + 1] if index + 1 < len(layers) else None
            states[index] = layer(below, states[index], above)
            below = states[index][0]
        outputs.append(below)
    return torch.stack(outputs, dim=1)


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("num_layers", [2, 3])
def test_top_down_net_equals_the_stepwise_loop(cell, num_layers):
    torch.manual_seed(0)
    net = HierarchicalRNN(5, 7, num_layers, cell)
    torch.nn.utils.prune.random_unstructured(net.layers[0], "weight_hh", amount=0.5)
    x = torch.randn(4, 6, 5)
    got, want = net(x)[0], stepwise_top_down(net.layers, x)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)
    grads = [torch.autograd.grad(out.square().sum(), list(net.parameters()))
             for out in (got, want)]
    for a, b in zip(*grads):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)
    # After a change of the unpruned weights the masks still apply (hooks refresh them).
    with torch.no_grad():
        net.layers[0].weight_hh_orig.add_(1.0)
    torch.testing.assert_close(net(x)[0], stepwise_top_down(net.layers, x), rtol=1e-5,
                               atol=1e-6)
