"""ModuliRegularizer and its skorch callbacks: schedule, masks, penalty gradients, sklearn API."""

import inspect
import pickle

import numpy as np
import pytest
import torch
from skorch import NeuralNetClassifier
from skorch.callbacks import Callback, EarlyStopping
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.validation import check_is_fitted
from torch import nn

from latticeprune import LatticePruner, ModuliRegularizer, RNNClassifier
from latticeprune.callbacks import FitDivergedError, GradualMagnitudePruning, ModuliPenalty
from latticeprune.datasets import load_digits_sequences
from latticeprune.moduli import SPACE_NAMES, penalty_from_points
from latticeprune.neuron_graph import NeuronGraph

TINY = dict(hidden_size=8, max_epochs=3, batch_size=64)


@pytest.fixture(scope="module")
def data():
    X, y = load_digits_sequences(return_X_y=True)
    return X[:240], y[:240]


def expected_sparsity(epoch, n_epochs, target, schedule, total):
    """Closed form of the schedule, in whole entries."""
    if epoch >= n_epochs:
        fraction = target
    elif schedule == "linear":
        fraction = target * epoch / n_epochs
    else:
        fraction = target * (1 - (1 - epoch / n_epochs) ** 3)
    return round(fraction * total) / total


# -- schedule and masks ----------------------------------------------------------------------
@pytest.mark.parametrize("schedule", ["linear", "cubic"])
def test_schedule_reaches_target_exactly_at_last_pruning_epoch(data, schedule):
    X, y = data
    reg = ModuliRegularizer(RNNClassifier(cell="lstm", hidden_size=8, max_epochs=6),
                            target_sparsity=0.9, schedule=schedule, recovery_epochs=2,
                            random_state=0).fit(X, y)
    total = 4 * 8 * 8
    expected = [expected_sparsity(epoch, 4, 0.9, schedule, total) for epoch in range(1, 7)]
    assert [row["sparsity"] for row in reg.history_] == expected
    assert expected[3] == round(0.9 * total) / total  # target at epoch 4, not before
    assert expected[2] < expected[3]
    assert [row["phase"] for row in reg.history_] == ["prune"] * 4 + ["recovery"] * 2
    assert reg.sparsity_["overall"] == expected[-1]
    assert int((~reg.masks_["encoder.weight_hh_l0"]).sum()) == round(0.9 * total)


def test_pruning_callback_alone_prunes_through_max_epochs(data):
    X, y = data
    net = RNNClassifier(cell="rnn_tanh", hidden_size=10, max_epochs=5, random_state=0,
                        callbacks=[GradualMagnitudePruning(0.5, schedule="cubic")]).fit(X, y)
    expected = [expected_sparsity(e, 5, 0.5, "cubic", 100) for e in range(1, 6)]
    assert net.history[:, "sparsity"] == expected
    net.partial_fit(X, y, epochs=2)  # past the schedule: masks fixed
    assert net.history[:, "sparsity"][-2:] == [0.5, 0.5]


class ZeroWatcher(Callback):
    """After every optimiser step: the entries of pruned tensors that the forward pass sees as 0."""

    def initialize(self):
        self.zeros = []
        return self

    def on_batch_end(self, net, batch=None, training=None, **kwargs):
        if not training:
            return
        graph = NeuronGraph(net.module_)
        # What the next forward pass uses: the prune pre-hooks recompute orig * mask.
        with torch.no_grad():
            net.module_(torch.zeros(1, 8, 8))
        self.zeros.append({t.name: (t.weight.detach() == 0).clone()
                           for t in graph.tensors_in("all") if t.is_pruned})


def test_pruned_weights_stay_exactly_zero_after_every_optimizer_step(data):
    X, y = data
    watcher = ZeroWatcher()
    reg = ModuliRegularizer(RNNClassifier(cell="gru", hidden_size=8, max_epochs=5, batch_size=32,
                                          callbacks=[("watcher", watcher)]),
                            target_sparsity=0.8, prune_scope="all", recovery_epochs=2,
                            random_state=0).fit(X, y)
    watcher = dict(reg.estimator_.callbacks_)["watcher"]
    assert len(watcher.zeros) == 5 * 8  # every step of every epoch was checked
    steps_pruned = [z for z in watcher.zeros if z]
    assert len(steps_pruned) == 4 * 8  # pruning starts at the end of epoch 1
    for before, after in zip(steps_pruned, steps_pruned[1:]):
        for name, zero in before.items():
            assert after[name][zero].all(), name  # once zero, zero after every later step
    final_masks = reg.masks_
    for name, zero in steps_pruned[-1].items():
        np.testing.assert_array_equal(zero.numpy(), ~final_masks[name])


# -- the penalty -----------------------------------------------------------------------------
def numerical_gradient(f, W, eps=1e-6):
    grad = np.zeros_like(W)
    for index in np.ndindex(W.shape):
        step = np.zeros_like(W)
        step[index] = eps
        grad[index] = (f(W + step) - f(W - step)) / (2 * eps)
    return grad


@pytest.mark.parametrize("cell,n_gates", [("gru", 3), ("rnn_tanh", 1)])
@pytest.mark.parametrize("norm", [1, 2])
@pytest.mark.parametrize("permute", [False, True])
def test_penalty_gradient_matches_finite_differences(data, cell, n_gates, norm, permute):
    X, y = data
    strength, input_l1, n = 0.3, 0.05, 5
    penalty = ModuliPenalty(strength, moduli="klein", norm=norm, permute=permute,
                            input_l1=input_l1, random_state=0)
    net = RNNClassifier(cell=cell, hidden_size=n, max_epochs=1, random_state=0,
                        callbacks=[("penalty", penalty)]).fit(X, y)
    R = penalty.penalty_["encoder.l0"]
    assert not permute or not np.allclose(R, R.T)  # orientation matters for the check

    def objective(W):  # R[i, j] weighs W[g * n + j, i], the connection i -> j
        total = sum(R[i, j] * abs(W[g * n + j, i]) ** norm
                    for g in range(n_gates) for i in range(n) for j in range(n))
        return strength * total / (n_gates * n * n)

    net.module_.zero_grad()
    net.history.new_epoch()
    net.history.new_batch()
    penalty.on_grad_computed(net, named_parameters=None, training=True)
    rnn = net.module_.encoder
    W = rnn.weight_hh_l0.detach().double().numpy()
    np.testing.assert_allclose(rnn.weight_hh_l0.grad.double().numpy(),
                               numerical_gradient(objective, W), rtol=1e-4, atol=1e-7)
    W_ih = rnn.weight_ih_l0.detach().double().numpy()
    np.testing.assert_allclose(rnn.weight_ih_l0.grad.double().numpy(),
                               input_l1 * np.sign(W_ih) / W_ih.size, rtol=1e-5)
    assert rnn.bias_hh_l0.grad is None or not rnn.bias_hh_l0.grad.any()
    recorded = net.history[-1, "batches", -1, "moduli_penalty"]
    expected = objective(W) + input_l1 * np.abs(W_ih).mean() + input_l1 * np.abs(
        net.module_.readout.weight.detach().double().numpy()).mean()
    assert recorded == pytest.approx(expected, rel=1e-5)


def test_pruned_entries_get_no_penalty_gradient(data):
    X, y = data
    reg = ModuliRegularizer(RNNClassifier(cell="lstm", **TINY), target_sparsity=0.7,
                            random_state=0).fit(X, y)
    net = reg.estimator_
    penalty = dict(net.callbacks_)["moduli_penalty"]
    penalty.on_train_begin(net)
    net.module_.zero_grad()
    net.history.new_epoch()
    net.history.new_batch()
    penalty.on_grad_computed(net, named_parameters=None, training=True)
    grad = net.module_.encoder.weight_hh_l0_orig.grad
    kept = torch.as_tensor(reg.masks_["encoder.weight_hh_l0"])
    assert (grad[~kept] == 0).all() and (grad[kept] != 0).any()


def test_trainable_embedding_moves_points_and_stays_finite(data):
    X, y = data
    params = dict(moduli="torus", space_params={"dim": 3}, target_sparsity=0.5, random_state=0)
    fixed = ModuliRegularizer(RNNClassifier(cell="rnn_tanh", **TINY), **params).fit(X, y)
    trained = ModuliRegularizer(RNNClassifier(cell="rnn_tanh", **TINY), train_embedding=True,
                                embedding_lr=0.05, **params).fit(X, y)
    before, after = fixed.embedding_["encoder.l0"], trained.embedding_["encoder.l0"]
    assert before.shape == after.shape == (8, 3)
    assert np.isfinite(after).all() and np.isfinite(trained.penalty_["encoder.l0"]).all()
    assert np.abs(after - before).max() > 0.05
    np.testing.assert_allclose(trained.penalty_["encoder.l0"],
                               penalty_from_points(after, "torus", dim=3), rtol=1e-4, atol=1e-4)
    assert all(np.isfinite(row["penalty"]) for row in trained.history_)


def test_permuted_control_keeps_the_multiset_of_R(data):
    X, y = data
    kwargs = dict(moduli="torus", target_sparsity=0.5, random_state=3)
    geometric = ModuliRegularizer(RNNClassifier(**TINY), **kwargs).fit(X, y)
    control = ModuliRegularizer(RNNClassifier(**TINY), permute=True, **kwargs).fit(X, y)
    R, P = geometric.penalty_["encoder.l0"], control.penalty_["encoder.l0"]
    np.testing.assert_array_equal(np.sort(R, axis=None), np.sort(P, axis=None))
    assert not np.array_equal(R, P)
    np.testing.assert_array_equal(geometric.embedding_["encoder.l0"],
                                  control.embedding_["encoder.l0"])


# -- estimator behaviour ---------------------------------------------------------------------
def test_same_random_state_same_masks_and_predictions(data):
    X, y = data

    def fit(seed):
        return ModuliRegularizer(RNNClassifier(**TINY), moduli="sphere", target_sparsity=0.8,
                                 random_state=seed).fit(X, y)

    first, second, other = fit(0), fit(0), fit(1)
    for name in first.masks_:
        np.testing.assert_array_equal(first.masks_[name], second.masks_[name])
    np.testing.assert_array_equal(first.predict_proba(X), second.predict_proba(X))
    np.testing.assert_array_equal(first.embedding_["encoder.l0"], second.embedding_["encoder.l0"])
    assert any(not np.array_equal(first.masks_[n], other.masks_[n]) for n in first.masks_)
    assert not np.array_equal(first.predict_proba(X), other.predict_proba(X))


def test_users_estimator_is_never_modified(data):
    X, y = data

    class Marker(Callback):
        pass

    user = RNNClassifier(callbacks=[("marker", Marker())], **TINY)
    params_before = user.get_params(deep=False)
    reg = ModuliRegularizer(user, target_sparsity=0.5, random_state=0).fit(X, y)
    params_after = user.get_params(deep=False)
    assert params_after.keys() == params_before.keys()
    for key, value in params_before.items():
        assert params_after[key] is value or params_after[key] == value, key
    assert user.callbacks == params_before["callbacks"] and len(user.callbacks) == 1
    assert user.random_state is None
    assert not user.initialized_
    with pytest.raises(NotFittedError):
        user.predict(X)
    names = [name for name, _ in reg.estimator_.callbacks_]
    assert {"marker", "moduli_penalty", "gradual_magnitude_pruning"} <= set(names)


def test_prefit_continues_a_fitted_net_and_leaves_it_alone(data):
    X, y = data
    user = RNNClassifier(random_state=0, **TINY).fit(X, y)
    weights = user.module_.encoder.weight_hh_l0.detach().clone()
    reg = ModuliRegularizer(user, prefit=True, target_sparsity=0.6, random_state=0).fit(X, y)
    assert torch.equal(user.module_.encoder.weight_hh_l0, weights)
    assert len(user.history) == 3 and len(reg.history_) == 3
    assert reg.sparsity_["overall"] == pytest.approx(0.6, abs=1 / 256)
    with pytest.raises(NotFittedError):
        ModuliRegularizer(RNNClassifier(**TINY), prefit=True).fit(X, y)


def test_pickle_and_clone_round_trips(data):
    X, y = data
    reg = ModuliRegularizer(RNNClassifier(cell="gru", **TINY), moduli="circle",
                            target_sparsity=0.7, random_state=0).fit(X, y)
    restored = pickle.loads(pickle.dumps(reg))
    np.testing.assert_array_equal(restored.predict_proba(X), reg.predict_proba(X))
    np.testing.assert_array_equal(restored.transform(X), reg.transform(X))
    for name, mask in reg.masks_.items():
        np.testing.assert_array_equal(restored.masks_[name], mask)
        np.testing.assert_array_equal(restored.neuron_graph().masks()[name].numpy(), mask)
    restored.partial_fit(X, y, epochs=1)  # the restored net still trains with its masks
    for name, mask in reg.masks_.items():
        np.testing.assert_array_equal(restored.masks_[name], mask)
    assert restored.history_[-1]["phase"] == "partial_fit"

    refit = clone(reg)
    with pytest.raises(NotFittedError):
        check_is_fitted(refit)
    refit.fit(X, y)
    np.testing.assert_array_equal(refit.predict_proba(X), reg.predict_proba(X))


def test_partial_fit_keeps_masks_and_the_penalty(data):
    X, y = data
    reg = ModuliRegularizer(RNNClassifier(**TINY), target_sparsity=0.75, random_state=0)
    reg.fit(X, y)
    masks = {name: mask.copy() for name, mask in reg.masks_.items()}
    proba = reg.predict_proba(X)
    reg.partial_fit(X, y, epochs=2)
    assert [row["phase"] for row in reg.history_] == ["prune"] * 3 + ["partial_fit"] * 2
    assert all(row["penalty"] > 0 for row in reg.history_)
    for name, mask in masks.items():
        np.testing.assert_array_equal(reg.masks_[name], mask)
    assert not np.allclose(reg.predict_proba(X), proba)


def test_lottery_ticket_reinitialises_and_keeps_the_masks(data):
    X, y = data
    reg = ModuliRegularizer(RNNClassifier(cell="lstm", **TINY), target_sparsity=0.8,
                            lottery_ticket=True, random_state=0).fit(X, y)
    before = NeuronGraph(reg.pruned_estimator_)
    after = reg.neuron_graph()
    for name, mask in before.masks().items():
        np.testing.assert_array_equal(mask.numpy(), reg.masks_[name])
    w_before = before.tensors_in()[0].weight.detach()
    w_after = after.tensors_in()[0].weight.detach()
    assert torch.equal(w_before == 0, w_after == 0)
    kept = w_before != 0
    assert not torch.allclose(w_before[kept], w_after[kept], atol=1e-2)
    phases = [row["phase"] for row in reg.history_]
    assert phases == ["prune"] * 3 + ["lottery"] * 3
    scores = [row["score"] for row in reg.history_]
    assert scores[2] == pytest.approx(reg.pruned_estimator_.score(X, y))
    assert scores[5] == pytest.approx(reg.score(X, y))
    assert all(row["sparsity"] == reg.sparsity_["overall"] for row in reg.history_[3:])


class GRUNet(nn.Module):
    """A module that is not ours: a GRU and a linear head (module level, so it pickles)."""

    def __init__(self, hidden=12):
        super().__init__()
        self.gru = nn.GRU(8, hidden, batch_first=True)
        self.head = nn.Linear(hidden, 10)

    def forward(self, x):
        return self.head(self.gru(x)[0][:, -1])


def test_plain_skorch_net_with_a_gru(data):
    X, y = data

    net = NeuralNetClassifier(GRUNet, criterion=nn.CrossEntropyLoss,
                              optimizer=torch.optim.Adam, lr=0.01, max_epochs=3,
                              train_split=None, batch_size=64)
    reg = ModuliRegularizer(net, moduli="klein", target_sparsity=0.9, lottery_ticket=True,
                            random_state=0).fit(X, y.astype(np.int64))
    assert set(reg.masks_) == {"gru.weight_hh_l0"}
    assert reg.masks_["gru.weight_hh_l0"].shape == (36, 12)
    assert reg.sparsity_["overall"] == round(0.9 * 432) / 432
    assert reg.penalty_["gru.l0"].shape == (12, 12)
    assert reg.predict(X[:5]).shape == (5,)
    assert not hasattr(reg, "transform")  # the plain net has no transform
    again = ModuliRegularizer(net, moduli="klein", target_sparsity=0.9, lottery_ticket=True,
                              random_state=0).fit(X, y.astype(np.int64))
    np.testing.assert_array_equal(again.predict_proba(X), reg.predict_proba(X))


def test_pipeline_grid_search_on_digits():
    X, y = load_digits_sequences(return_X_y=True, as_2d=True)
    X, y = X[:200], y[:200]
    pipe = make_pipeline(StandardScaler(), ModuliRegularizer(
        RNNClassifier(input_size=8, hidden_size=6, max_epochs=2, batch_size=100),
        random_state=0))
    grid = {"moduliregularizer__moduli": ["torus", "klein"],
            "moduliregularizer__inhibitor": ["DoG", "gauss"],
            "moduliregularizer__target_sparsity": [0.5, 0.9],
            "moduliregularizer__strength": [0.0, 0.1]}
    search = GridSearchCV(pipe, grid, cv=2, error_score="raise").fit(X, y)
    assert len(search.cv_results_["params"]) == 16
    assert np.isfinite(search.cv_results_["mean_test_score"]).all()
    best = search.best_estimator_[-1]
    assert best.sparsity_["overall"] == pytest.approx(best.target_sparsity, abs=1 / 144)
    assert search.predict(X[:4]).shape == (4,)


def test_lattice_pruner_fine_tunes_through_the_regularizer(data):
    X, y = data
    pruner = LatticePruner(ModuliRegularizer(RNNClassifier(**TINY), target_sparsity=0.5),
                           n_rounds=1, fine_tune_epochs=1, random_state=0)
    assert pruner.get_params()["estimator__moduli"] == "torus"
    pruner.set_params(estimator__moduli="klein").fit(X, y)
    inner = pruner.estimator_
    assert inner.moduli == "klein"
    assert inner.history_[-1]["phase"] == "partial_fit"
    assert inner.sparsity_["overall"] >= 0.5
    assert pruner.predict(X[:3]).shape == (3,)


def test_divergence_is_not_swallowed(data):
    X, y = data
    reg = ModuliRegularizer(RNNClassifier(cell="rnn_relu", hidden_size=8, max_epochs=3,
                                          lr=1e12),
                            random_state=0)
    with pytest.raises(FitDivergedError):
        reg.fit(X * 1e6, y)


# -- errors ----------------------------------------------------------------------------------
@pytest.mark.parametrize("params,fragments", [
    ({"moduli": "donut"}, ["moduli", "'donut'", *map(repr, SPACE_NAMES)]),
    ({"inhibitor": "mexican_hat"}, ["inhibitor", "'DoG'", "'gauss'", "'ripple'", "'square'"]),
    ({"target_sparsity": 1.0}, ["target_sparsity", "[0.0, 1.0)"]),
    ({"target_sparsity": -0.1}, ["target_sparsity", "[0.0, 1.0)"]),
    ({"strength": -1.0}, ["strength", "[0.0, inf)"]),
    ({"norm": 3}, ["norm", "1", "2"]),
    ({"schedule": "exponential"}, ["schedule", "'cubic'", "'linear'"]),
    ({"space_params": {"dim": 0}}, ["dim (the torus dimension k) must be an integer >= 1"]),
    ({"train_embedding": True, "moduli": "standard"}, ["train_embedding=True", "'standard'"]),
    ({"recovery_epochs": 3}, ["recovery_epochs=3", "max_epochs=3"]),
])
def test_invalid_parameters_raise_value_errors(data, params, fragments):
    X, y = data
    reg = ModuliRegularizer(RNNClassifier(**TINY), **params)
    with pytest.raises(ValueError) as error:
        reg.fit(X, y)
    for fragment in fragments:
        assert fragment in str(error.value)


def test_callbacks_validate_their_parameters(data):
    X, y = data
    assert "standard" in SPACE_NAMES
    with pytest.raises(ValueError, match=r"moduli.*'torus'|'torus'.*moduli"):
        RNNClassifier(callbacks=[ModuliPenalty(moduli="donut")], **TINY).fit(X, y)
    with pytest.raises(ValueError, match=r"train_embedding=True.*'standard'"):
        RNNClassifier(callbacks=[ModuliPenalty(moduli="standard", train_embedding=True)],
                      **TINY).fit(X, y)
    with pytest.raises(ValueError, match=r"target_sparsity"):
        RNNClassifier(callbacks=[GradualMagnitudePruning(1.5)], **TINY).fit(X, y)
    with pytest.raises(TypeError, match="skorch net"):
        ModuliRegularizer(StandardScaler()).fit(X.reshape(len(X), -1), y)


def test_unfitted_regularizer_raises_not_fitted(data):
    X, _ = data
    with pytest.raises(NotFittedError):
        ModuliRegularizer(RNNClassifier(**TINY)).predict(X)


# -- issue 12 --------------------------------------------------------------------------------
def never_improves(patience):
    """skorch's EarlyStopping on the training loss, stopping after ``patience`` epochs (no
    epoch improves on the first by 1.0)."""
    return EarlyStopping(monitor="train_loss", patience=patience, threshold=1.0,
                         threshold_mode="abs")


def test_early_stopping_before_the_target_raises(data):
    """Issue 12 item 3: an early stop used to end at a third of the target, silently."""
    X, y = data
    net = RNNClassifier(callbacks=[never_improves(1)], **{**TINY, "max_epochs": 6})
    with pytest.raises(ValueError, match=r"after 2 of 6 epochs.*target_sparsity=0.9.*is 0\.148"):
        ModuliRegularizer(net, target_sparsity=0.9, random_state=0).fit(X, y)
    # stopping in the recovery epochs is fine: the target was reached
    net.set_params(callbacks=[never_improves(3)])
    reg = ModuliRegularizer(net, target_sparsity=0.9, recovery_epochs=3, random_state=0)
    reg.fit(X, y)
    assert [row["phase"] for row in reg.history_] == ["prune"] * 3 + ["recovery"]
    assert reg.sparsity_["overall"] == pytest.approx(0.9, abs=1 / 256)


def test_verbose_says_each_pruning_step(data, capsys):
    X, y = data
    ModuliRegularizer(RNNClassifier(**TINY), target_sparsity=0.6, lottery_ticket=True,
                      verbose=1, random_state=0).fit(X, y)
    assert capsys.readouterr().out.splitlines() == [
        "pruning step 1/3 (epoch 1): target sparsity 0.20, achieved 0.20",
        "pruning step 2/3 (epoch 2): target sparsity 0.40, achieved 0.40",
        "pruning step 3/3 (epoch 3): target sparsity 0.60, achieved 0.60",
        "lottery ticket: weights re-initialised, 3 epochs at sparsity 0.60"]
    ModuliRegularizer(RNNClassifier(**TINY), random_state=0).fit(X, y)
    assert capsys.readouterr().out == ""


def test_sample_weight_reaches_every_fit_of_the_net(data, weight_spy):
    X, y = data
    weight = np.linspace(0.5, 1.5, len(y))
    reg = ModuliRegularizer(weight_spy(**TINY), lottery_ticket=True, random_state=0)
    reg.fit(X, y, sample_weight=weight)
    reg.partial_fit(X, y, epochs=1, sample_weight=weight)
    prefit = ModuliRegularizer(reg.estimator_, prefit=True, random_state=0)
    prefit.fit(X, y, sample_weight=weight)
    assert [m for m, _ in weight_spy.seen] == ["fit", "partial_fit", "partial_fit", "partial_fit"]
    assert all(w is weight for _, w in weight_spy.seen)


@pytest.mark.skipif("sample_weight" not in inspect.signature(RNNClassifier.fit).parameters,
                    reason="the estimators' fit takes sample_weight (issue 12, estimators)")
def test_sample_weight_changes_the_sparse_fit_as_sklearn_does(data):
    X, y = data
    make = lambda: ModuliRegularizer(RNNClassifier(**TINY), random_state=0)  # noqa: E731
    plain = make().fit(X, y).predict_proba(X)
    np.testing.assert_allclose(make().fit(X, y, sample_weight=np.ones(len(y))).predict_proba(X),
                               plain, atol=1e-6)
    weighted = make().fit(X, y, sample_weight=np.where(y < 5, 0.0, 1.0)).predict_proba(X)
    assert weighted[:, 5:].sum() > plain[:, 5:].sum()


def test_prune_scope_all_never_cuts_the_input_silently(data):
    X, y = data
    with pytest.raises(ValueError, match="cut the net off"):
        ModuliRegularizer(RNNClassifier(**TINY), prune_scope="all", target_sparsity=0.999,
                          random_state=0).fit(X, y)
