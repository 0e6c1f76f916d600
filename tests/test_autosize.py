"""The automatic batch size and epochs (``batch_size="auto"``, ``max_epochs="auto"``) and
gradient clipping by default: the rules against their definition, what ``fit`` trains, the
sparsifiers that count epochs, and small data that the old fixed defaults underfit."""

import math

import numpy as np
import pytest
from skorch import NeuralNetClassifier
from skorch.callbacks import GradientNormClipping

from latticeprune import LatticePruner, ModuliRegularizer, RNNClassifier, RNNRegressor
from latticeprune.autosize import AUTO_STEPS, auto_batch_size, auto_epochs, training_epochs
from latticeprune.callbacks import GradualMagnitudePruning


def waves(n_samples, n_steps=30, seed=0):
    """Two classes of noisy sine waves that differ in frequency (generated here, not data a
    package ships): ``(n_samples, n_steps, 1)`` and labels."""
    rng = np.random.RandomState(seed)
    y = np.arange(n_samples) % 2
    t = np.arange(n_steps)
    phase = rng.uniform(0, 2 * np.pi, (n_samples, 1))
    X = np.sin((0.25 + 0.25 * y[:, None]) * t + phase) + 0.3 * rng.randn(n_samples, n_steps)
    return X[:, :, None].astype(np.float32), y


@pytest.mark.parametrize("n_samples", [1, 15, 16, 67, 255, 256, 512, 1023, 1024, 8000, 10**5])
def test_rules_follow_their_definition(n_samples):
    batch = auto_batch_size(n_samples)
    assert batch == min(64, max(16, n_samples // 16))
    epochs = auto_epochs(n_samples)
    steps = math.ceil(n_samples / batch)
    # the fewest epochs with AUTO_STEPS optimiser steps, clipped to [20, 150]
    fewest = next(e for e in range(1, 10**6) if e * steps >= AUTO_STEPS)
    assert epochs == min(150, max(20, fewest))
    assert auto_epochs(n_samples, batch_size=-1) == min(150, max(20, AUTO_STEPS))
    assert auto_epochs(n_samples, batch_size=8) == min(
        150, max(20, math.ceil(AUTO_STEPS / math.ceil(n_samples / 8))))


def test_training_epochs_of_any_skorch_net():
    assert training_epochs(RNNClassifier(max_epochs=7), 10) == 7
    assert training_epochs(RNNClassifier(), 67) == 150
    assert training_epochs(RNNClassifier(batch_size=64), 8000) == 24
    user = NeuralNetClassifier(object, max_epochs="auto", batch_size=-1)
    assert training_epochs(user, 500) == 150


def test_fit_trains_the_auto_epochs_in_auto_batches():
    X, y = waves(40)
    clf = RNNClassifier(hidden_size=4, random_state=0).fit(X, y)
    assert len(clf.history) == 150
    # 40 samples in batches of 16: 16 + 16 + 8
    assert [b["train_batch_size"] for b in clf.history[-1, "batches"]] == [16, 16, 8]
    assert clf.batch_size == "auto" and clf.max_epochs == "auto"  # parameters unchanged
    clf.partial_fit(X, y, epochs=2)
    assert len(clf.history) == 152
    reg = RNNRegressor(hidden_size=4, batch_size=-1, random_state=0).fit(X, y.astype(float))
    assert len(reg.history) == 150 and len(reg.history[-1, "batches"]) == 1


def test_predictions_do_not_depend_on_the_auto_batch_size():
    X, y = waves(40)
    clf = RNNClassifier(hidden_size=4, max_epochs=3, random_state=0).fit(X, y)
    fixed = RNNClassifier(hidden_size=4, max_epochs=3, batch_size=16, random_state=0).fit(X, y)
    np.testing.assert_allclose(clf.predict_proba(X), fixed.predict_proba(X), atol=1e-6)
    np.testing.assert_allclose(clf.predict_proba(X[:3]), clf.predict_proba(X)[:3], atol=1e-6)


def test_gradients_are_clipped_by_default():
    X, y = waves(20)
    clf = RNNClassifier(hidden_size=4, max_epochs=1, random_state=0).fit(X, y)
    clipping = dict(clf.callbacks_)["gradient_clipping"]
    assert isinstance(clipping, GradientNormClipping) and clipping.gradient_clip_value == 1.0
    plain = RNNClassifier(hidden_size=4, max_epochs=1, max_grad_norm=None).fit(X, y)
    assert "gradient_clipping" not in dict(plain.callbacks_)
    # a tight bound changes the training: every step's update is smaller
    tight = RNNClassifier(hidden_size=4, max_epochs=1, max_grad_norm=1e-6,
                          random_state=0).fit(X, y)
    assert not np.allclose(tight.predict_proba(X), clf.predict_proba(X))


@pytest.mark.parametrize("param,value,message", [
    ("max_epochs", "many", "'max_epochs' parameter of RNNClassifier must be"),
    ("batch_size", "big", "'batch_size' parameter of RNNClassifier must be"),
    ("max_grad_norm", 0, "'max_grad_norm' parameter of RNNClassifier must be"),
])
def test_bad_values_name_the_parameter(param, value, message):
    X, y = waves(20)
    with pytest.raises(ValueError, match=message) as error:
        RNNClassifier(hidden_size=4, **{param: value}).fit(X, y)
    if param != "max_grad_norm":
        assert "'auto'" in str(error.value)


def test_moduli_schedule_spans_the_auto_epochs():
    X, y = waves(24, n_steps=8)
    reg = ModuliRegularizer(RNNClassifier(hidden_size=6, batch_size=-1, random_state=0),
                            target_sparsity=0.5, recovery_epochs=10, random_state=0).fit(X, y)
    assert len(reg.estimator_.history) == 150
    pruning = [row["sparsity"] for row in reg.estimator_.history]
    assert pruning[138] < 0.5 and pruning[139] == pytest.approx(0.5, abs=0.02)
    with pytest.raises(ValueError, match=r"max_epochs=150 \(auto\)"):
        ModuliRegularizer(RNNClassifier(batch_size=-1), recovery_epochs=150).fit(X, y)


def test_magnitude_schedule_callback_resolves_auto_epochs():
    X, y = waves(24, n_steps=8)
    net = RNNClassifier(hidden_size=6, batch_size=-1, random_state=0,
                        callbacks=[GradualMagnitudePruning(0.6, start_epoch=1)]).fit(X, y)
    sparsity = [row["sparsity"] for row in net.history]
    assert sparsity[-1] == pytest.approx(0.6, abs=0.02)
    assert sparsity[74] == pytest.approx(0.3, abs=0.03)  # linear over the 150 epochs


def test_pruner_on_a_default_estimator_fine_tunes_its_rounds():
    X, y = waves(24, n_steps=8)
    pruner = LatticePruner(RNNClassifier(hidden_size=6, random_state=0), granularity="unit",
                           strategy="magnitude", n_rounds=2, random_state=0).fit(X, y)
    assert len(pruner.net_.history) == 150 + 2


def test_small_data_trains_with_the_defaults_not_with_the_old_ones():
    """48 training sequences of three classes (noisy steps around -0.5, 0, 0.5): batch 64 x
    20 epochs (the defaults before the automatic rules, 20 optimiser steps at lr 0.01)
    underfits; the defaults (150 epochs of 3 batches, clipped, lr 0.003) fit the training set
    and score higher on new data."""
    def steps(n_samples, seed):
        rng = np.random.RandomState(seed)
        y = np.arange(n_samples) % 3
        return ((y[:, None] - 1) * 0.5 + rng.randn(n_samples, 20))[:, :, None], y

    X, y = steps(48, 0)
    X_test, y_test = steps(300, 1)
    old = RNNClassifier(lr=0.01, batch_size=64, max_epochs=20, max_grad_norm=None,
                        hidden_size=16, random_state=0).fit(X, y)
    new = RNNClassifier(hidden_size=16, random_state=0).fit(X, y)
    assert old.score(X, y) < 0.8 and new.score(X, y) > 0.95
    assert new.score(X_test, y_test) > old.score(X_test, y_test) + 0.03
