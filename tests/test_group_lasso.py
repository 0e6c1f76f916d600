"""Group lasso on hidden units (issue 25): the penalty, its callback and
``LatticePruner(strategy="group_lasso")``, on our nets and on a user's skorch net."""

import numpy as np
import pytest
import torch
from skorch import NeuralNetClassifier

from latticeprune import LatticePruner, RNNClassifier
from latticeprune.callbacks import GroupLassoPenalty, LatticePruning
from latticeprune.dependency import trace
from latticeprune.neuron_graph import NeuronGraph
from latticeprune.nets import RecurrentNet
from latticeprune.units import group_lasso, unit_norms
from user_nets import LastStep, zoo_data


def test_the_penalty_is_the_sum_of_the_unit_norms_and_differentiable():
    torch.manual_seed(0)
    module = RecurrentNet(3, 2, hidden_size=[5, 4], num_layers=2, cell="gru")
    trace(module, torch.randn(2, 4, 3))
    graph = NeuronGraph(module)
    penalty = group_lasso(graph, eps=0.0)
    np.testing.assert_allclose(float(penalty.detach()), unit_norms(graph).sum(), rtol=1e-5)
    penalty.backward()
    grads = [p.grad for p in module.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)


def unit_norms_after(strength, X, y):
    net = RNNClassifier(hidden_size=12, max_epochs=15, random_state=0,
                        callbacks=[GroupLassoPenalty(strength=strength)]).fit(X, y)
    return np.sort(unit_norms(NeuronGraph(net)))


def test_the_callback_drives_the_weakest_groups_towards_zero(small_digits):
    X, y = small_digits
    plain, penalised = unit_norms_after(0.0, X, y), unit_norms_after(0.02, X, y)
    assert penalised[:3].max() < 0.05 * plain[:3].min()  # the weakest groups all but vanish
    assert penalised[-3:].min() > 0.3 * plain[-3:].min()  # the strongest stay
    assert plain[-1] / plain[0] < 2 < 20 < penalised[-1] / penalised[0]


def test_a_round_removes_the_units_of_weakest_group_norm():
    torch.manual_seed(0)
    module = RecurrentNet(3, 2, hidden_size=8, cell="lstm")
    trace(module, torch.randn(2, 4, 3))
    with torch.no_grad():  # units 2 and 5 all but gone, as the penalty leaves them
        for name in ("weight_ih_l0", "weight_hh_l0"):
            w = getattr(module.encoder, name).view(4, 8, -1)
            w[:, [2, 5]] *= 1e-3
        module.encoder.weight_hh_l0[:, [2, 5]] *= 1e-3
        module.readout.weight[:, [2, 5]] *= 1e-3
    norms = unit_norms(NeuronGraph(module))
    pruning = LatticePruning(strategy="group_lasso", sparsity=0.25, n_rounds=1).initialize()
    assert pruning.granularity_ == "unit" and pruning.penalty_.strength == 1e-3
    pruning.prune(module)
    assert np.flatnonzero(pruning.removed_units_).tolist() == [2, 5]
    assert set(np.argsort(norms)[:2]) == {2, 5}


def test_the_pruner_fine_tunes_under_the_penalty_and_removes_units(small_digits):
    X, y = small_digits
    net = RNNClassifier(hidden_size=12, max_epochs=3, random_state=0)
    pruner = LatticePruner(net, strategy="group_lasso", sparsity=0.5, n_rounds=2,
                           fine_tune_epochs=2, lasso_strength=0.01, random_state=0).fit(X, y)
    history = pruner.estimator_.history
    # 3 epochs of the dense fit, 2 penalised before round 1, 2 after each of the 2 rounds
    assert len(history) == 3 + 2 + 2 * 2
    assert [("group_lasso" in row) for row in history] == [False] * 3 + [True] * 6
    assert pruner.sparsity_["hidden_sizes"] == [6]
    assert all(name != "GroupLassoPenalty" for name, _ in pruner.estimator_.callbacks_)
    again = LatticePruner(net, strategy="group_lasso", sparsity=0.5, n_rounds=2,
                          fine_tune_epochs=2, lasso_strength=0.01, random_state=0).fit(X, y)
    np.testing.assert_array_equal(again.predict_proba(X), pruner.predict_proba(X))


def test_group_lasso_on_a_users_skorch_net():
    X, y = zoo_data(LastStep)
    torch.manual_seed(0)
    net = NeuralNetClassifier(LastStep, criterion=torch.nn.CrossEntropyLoss, max_epochs=2,
                              lr=0.05, batch_size=16, train_split=None,
                              optimizer=torch.optim.Adam)
    pruner = LatticePruner(net, strategy="group_lasso", sparsity=0.5, n_rounds=1,
                           random_state=0).fit(X, y)
    small = pruner.estimator_.module_
    assert type(small) is LastStep and small.lstm.hidden_size == 8  # 16 -> 8 units per layer
    assert "group_lasso" in pruner.estimator_.history[-1]


def test_group_lasso_refuses_other_granularities_and_a_negative_strength(small_digits):
    X, y = small_digits
    net = RNNClassifier(hidden_size=4, max_epochs=1, random_state=0)
    with pytest.raises(ValueError, match="strategy='group_lasso' removes whole units .* use "
                                         "granularity='unit', not 'weight'"):
        LatticePruner(net, strategy="group_lasso", granularity="weight").fit(X, y)
    with pytest.raises(ValueError, match="The 'lasso_strength' parameter of LatticePruner "
                                         "must be a float in the range"):
        LatticePruner(net, strategy="group_lasso", lasso_strength=-1.0).fit(X, y)
    with pytest.raises(ValueError, match="The 'strength' parameter of GroupLassoPenalty"):
        RNNClassifier(hidden_size=4, max_epochs=1,
                      callbacks=[GroupLassoPenalty(strength=-1)]).fit(X, y)
