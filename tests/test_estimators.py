"""RNNClassifier / RNNRegressor: shapes, cells, determinism, sklearn integration."""

import pickle

import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from conftest import WORKER_PROCESSES
from latticeprune import RNNClassifier, RNNRegressor
from latticeprune import nets
from latticeprune.nets import CELLS, HierarchicalRNN

FAST = dict(hidden_size=12, max_epochs=2, random_state=0)


def test_defaults_reach_090_on_digits_in_20_epochs(digits):
    """The default learning rate, clipping and automatic batch within a short budget (the
    automatic 137 epochs reach 0.98: benchmarks/results/dense_baselines.txt)."""
    X, y = digits
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.25, stratify=y,
                                                        random_state=0)
    clf = RNNClassifier(max_epochs=20, random_state=0).fit(X_train, y_train)
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
@pytest.mark.parametrize("onednn", [False, True])
def test_top_down_net_equals_the_stepwise_loop(cell, num_layers, onednn, monkeypatch):
    # every step GEMM on oneDNN (forward and backward), or none
    monkeypatch.setattr(nets, "ONEDNN_MIN_MACS", 0 if onednn else float("inf"))
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
    with torch.no_grad():
        torch.testing.assert_close(net(x)[0], stepwise_top_down(net.layers, x), rtol=1e-5,
                                   atol=1e-6)


# -- issue 12: behave like a scikit-learn estimator ------------------------------------------
TINY = dict(hidden_size=4, max_epochs=2, random_state=0)


def _binary(small_digits):
    X, y = small_digits
    return X, (y >= 5).astype(int)


def test_binary_decision_function_is_one_column_and_ranking_scores_work(small_digits):
    from sklearn.model_selection import cross_val_score
    X, y = _binary(small_digits)
    clf = RNNClassifier(**TINY).fit(X, y)
    scores = clf.decision_function(X)
    assert scores.shape == (len(X),)
    proba = clf.predict_proba(X)
    assert proba.shape == (len(X), 2)
    np.testing.assert_array_equal(clf.predict(X), clf.classes_[(scores > 0).astype(int)])
    np.testing.assert_allclose(scores, np.log(proba[:, 1]) - np.log(proba[:, 0]), atol=1e-4)
    for scoring in ("roc_auc", "average_precision", "neg_log_loss"):
        assert np.all(np.isfinite(cross_val_score(RNNClassifier(**TINY), X, y, cv=2,
                                                  scoring=scoring)))
    multi = RNNClassifier(**TINY).fit(*small_digits).decision_function(X[:5])
    assert multi.shape == (5, 10)


def test_n_features_in_is_enforced_at_prediction(small_digits):
    X, y = small_digits
    flat = RNNClassifier(**TINY).fit(X.reshape(len(X), 64), y)
    for method in ("predict", "predict_proba", "decision_function", "transform"):
        with pytest.raises(ValueError, match="X has 10 features, but RNNClassifier is "
                                             "expecting 64 features as input"):
            getattr(flat, method)(X.reshape(len(X), 64)[:, :10])
    with pytest.raises(ValueError, match="X has 10 features"):
        flat.score(X.reshape(len(X), 64)[:, :10], y)
    steps = RNNClassifier(**TINY).fit(X, y)
    with pytest.raises(ValueError, match="X has 5 features per step, but RNNClassifier is "
                                         "expecting 8 features per step"):
        steps.predict(X[:, :, :5])
    with pytest.raises(ValueError, match="X has 10 features"):
        steps.predict(X.reshape(len(X), 64)[:, :10])
    reg = RNNRegressor(**TINY).fit(X, y.astype(float))
    with pytest.raises(ValueError, match="features per step"):
        reg.predict(X[:, :, :5])


def test_transformer_and_regressor_conventions(small_digits):
    from sklearn.utils import get_tags
    X, y = small_digits
    assert get_tags(RNNClassifier()).transformer_tags is not None
    assert get_tags(RNNRegressor()).target_tags.multi_output
    assert not hasattr(RNNRegressor(), "decision_function")
    with pytest.raises(ValueError, match="requires y to be passed, but the target y is None"):
        RNNRegressor(**TINY).fit(X, None)
    with pytest.raises(ValueError, match="requires y to be passed"):
        RNNClassifier(**TINY).fit(X)
    clf = RNNClassifier(**TINY)
    hidden = clf.fit_transform(X, y)
    np.testing.assert_allclose(hidden, clf.transform(X), rtol=1e-5, atol=1e-6)
    flat = X.reshape(len(X), 64)
    clf = RNNClassifier(**TINY).fit(flat, y)
    with pytest.raises(ValueError, match="X has 63 features"):
        clf.partial_fit(flat[:, :-1], y)


def test_validation_split_and_early_stopping_work(small_digits):
    from skorch.callbacks import EarlyStopping
    from skorch.dataset import ValidSplit
    X, y = small_digits
    names = np.array(list("abcdefghij"))[y]
    clf = RNNClassifier(hidden_size=8, max_epochs=8, lr=0.02, random_state=0,
                        train_split=ValidSplit(0.2), callbacks=[EarlyStopping()])
    clf.fit(X, names)
    assert {"valid_acc", "valid_loss"} <= set(clf.history[-1])
    # valid_acc compares labels in one space: here it is well above chance (0.1).
    assert max(clf.history[:, "valid_acc"]) > 0.3
    reg = RNNRegressor(train_split=ValidSplit(0.2), callbacks=[EarlyStopping(patience=1)],
                       **{**TINY, "max_epochs": 20})
    reg.fit(X, y.astype(float))
    assert "valid_loss" in reg.history[-1]


def test_partial_fit_honours_classes(small_digits):
    X, y = small_digits
    clf = RNNClassifier(**TINY)
    first = y < 5
    clf.partial_fit(X[first], y[first], classes=np.arange(10))
    np.testing.assert_array_equal(clf.classes_, np.arange(10))
    assert clf.predict_proba(X[:3]).shape == (3, 10)
    clf.partial_fit(X[~first], y[~first])  # labels 5..9: in classes
    with pytest.raises(ValueError, match="not in classes"):
        clf.partial_fit(X[:3], np.array([1, 2, 11]))
    with pytest.raises(ValueError, match="classes"):
        clf.partial_fit(X[:3], y[:3], classes=np.arange(3))


def test_get_params_and_repr_show_parameters_only():
    clf = RNNClassifier(hidden_size=8, max_epochs=3)
    params = clf.get_params()
    assert not [key for key in params if key.startswith("_")]
    assert repr(clf) == "RNNClassifier(hidden_size=8, max_epochs=3)"
    assert repr(RNNRegressor()) == "RNNRegressor()"
    html = clf._repr_html_()
    assert html.count("<tr") <= 30 and "object at 0x" not in html  # no callbacks__* rows


def test_feature_names_and_set_output(small_digits):
    pd = pytest.importorskip("pandas")
    X, y = small_digits
    frame = pd.DataFrame(X.reshape(len(X), 64), columns=[f"px{i}" for i in range(64)])
    clf = RNNClassifier(input_size=8, **TINY).fit(frame, y)
    np.testing.assert_array_equal(clf.feature_names_in_, frame.columns)
    names = clf.get_feature_names_out()
    assert list(names) == [f"rnnclassifier{i}" for i in range(4)]
    out = clf.set_output(transform="pandas").transform(frame)
    assert isinstance(out, pd.DataFrame) and list(out.columns) == list(names)
    assert isinstance(clf.fit_transform(frame, y), pd.DataFrame)


def _full_batch(**kwargs):
    return dict(hidden_size=6, max_epochs=5, batch_size=-1, lr=0.02, random_state=0, **kwargs)


def test_sample_weight_acts_like_repeating_or_dropping_samples(small_digits):
    X, y = small_digits[0][:120], small_digits[1][:120]
    weight = np.ones(len(X))
    weight[:30] = 2
    doubled = RNNClassifier(**_full_batch()).fit(np.concatenate([X, X[:30]]),
                                                 np.concatenate([y, y[:30]]))
    weighted = RNNClassifier(**_full_batch()).fit(X, y, sample_weight=weight)
    plain = RNNClassifier(**_full_batch()).fit(X, y)
    gap = np.abs(weighted.predict_proba(X) - doubled.predict_proba(X)).max()
    assert gap < 0.1 * np.abs(plain.predict_proba(X) - doubled.predict_proba(X)).max()
    weight = np.ones(len(X))
    weight[:40] = 0
    dropped = RNNRegressor(**_full_batch()).fit(X[40:], y[40:].astype(float))
    zeroed = RNNRegressor(**_full_batch()).fit(X, y.astype(float), sample_weight=weight)
    plain = RNNRegressor(**_full_batch()).fit(X, y.astype(float))
    gap = np.abs(zeroed.predict(X) - dropped.predict(X)).max()
    assert gap < 0.1 * np.abs(plain.predict(X) - dropped.predict(X)).max()
    with pytest.raises(ValueError, match="inconsistent numbers of samples"):
        RNNClassifier(**TINY).fit(X, y, sample_weight=np.ones(3))
    with pytest.raises(ValueError, match="non-zero"):
        RNNClassifier(**TINY).fit(X, y, sample_weight=np.zeros(len(X)))
    with pytest.raises(ValueError, match="(?i)negative"):
        RNNClassifier(**TINY).fit(X, y, sample_weight=-np.ones(len(X)))


def test_class_weight(small_digits):
    from sklearn.utils.class_weight import compute_sample_weight
    X, y = _binary(small_digits)
    X, y = X[:150], np.where(np.arange(150) < 130, 0, 1)  # imbalanced
    balanced = RNNClassifier(**_full_batch(class_weight="balanced")).fit(X, y)
    by_hand = RNNClassifier(**_full_batch()).fit(
        X, y, sample_weight=compute_sample_weight("balanced", y))
    np.testing.assert_allclose(balanced.predict_proba(X), by_hand.predict_proba(X), atol=1e-5)
    plain = RNNClassifier(**_full_batch()).fit(X, y)
    assert balanced.predict_proba(X)[:, 1].mean() > plain.predict_proba(X)[:, 1].mean()
    heavy = RNNClassifier(**_full_batch(class_weight={0: 1, 1: 20})).fit(X, y)
    assert heavy.predict_proba(X)[:, 1].mean() > plain.predict_proba(X)[:, 1].mean()
    with pytest.raises(ValueError, match="class_weight"):
        RNNClassifier(**_full_batch(class_weight="heavy")).fit(X, y)


def test_batches_are_shuffled_and_seeded(small_digits):
    X, y = small_digits
    order = np.argsort(y, kind="stable")  # sorted by class: unshuffled batches train badly
    assert RNNClassifier().get_params()["iterator_train__shuffle"] is True
    kwargs = dict(hidden_size=16, max_epochs=3, batch_size=32, lr=0.02, random_state=0)
    shuffled = RNNClassifier(**kwargs).fit(X[order], y[order])
    in_order = RNNClassifier(iterator_train__shuffle=False, **kwargs).fit(X[order], y[order])
    assert shuffled.score(X, y) > in_order.score(X, y) + 0.1
    again = RNNClassifier(**kwargs).fit(X[order], y[order])
    np.testing.assert_array_equal(shuffled.predict_proba(X), again.predict_proba(X))


@pytest.mark.xdist_group(WORKER_PROCESSES)
def test_same_seed_same_net_under_joblib_workers(small_digits):
    from sklearn.model_selection import cross_val_score
    X, y = small_digits
    clf = RNNClassifier(hidden_size=4, max_epochs=1, batch_size=32, random_state=0)
    serial = cross_val_score(clf, X, y, cv=2)
    parallel = cross_val_score(clf, X, y, cv=2, n_jobs=2)
    np.testing.assert_array_equal(serial, parallel)


def test_negative_stride_views(small_digits):
    X, y = small_digits
    reversed_steps = X[:, ::-1]
    clf = RNNClassifier(**TINY).fit(reversed_steps, y)
    np.testing.assert_array_equal(clf.predict(reversed_steps),
                                  clf.predict(np.ascontiguousarray(reversed_steps)))
    reg = RNNRegressor(**TINY).fit(X[::-1], y[::-1].astype(float))
    assert reg.predict(X[:, :, ::-1]).shape == (len(X),)


def _flushes_denormals():
    return (torch.tensor([1e-40]) * 1.0).item() == 0.0


def test_fit_and_predict_flush_denormals_and_restore_the_mode(small_digits):
    """Denormals (vanishing gradients of saturated gates) slow MKL's products by ~10x: the
    estimators compute with them flushed, and leave the thread's mode as they found it."""
    from skorch.callbacks import Callback
    from latticeprune.utils import flush_denormals

    seen = []

    class Probe(Callback):
        def on_batch_end(self, net, **kwargs):
            seen.append(_flushes_denormals())

    X, y = small_digits
    clf = RNNClassifier(hidden_size=4, max_epochs=1, top_down=True, num_layers=2,
                        callbacks=[Probe()], random_state=0).fit(X, y)
    assert seen and all(seen)
    assert not _flushes_denormals()
    clf.predict(X[:3])
    assert not _flushes_denormals()
    torch.set_flush_denormal(True)
    try:
        with flush_denormals():
            pass
        assert _flushes_denormals()  # a mode the user set survives
    finally:
        torch.set_flush_denormal(False)


def test_a_fitted_net_is_left_in_evaluation_mode_and_predicting_changes_nothing(small_digits):
    import joblib
    X, y = small_digits
    clf = RNNClassifier(hidden_size=4, max_epochs=1, random_state=0).fit(X, y)
    assert not clf.module_.training and not clf.criterion_.training
    before = joblib.hash(clf.module_)
    clf.predict_proba(X)
    assert joblib.hash(clf.module_) == before
    clf.partial_fit(X, y)  # trains in training mode, ends in evaluation mode again
    assert not clf.module_.training
