"""Global allocation of removed units across layers (issue 25): ``allocation="global"``."""

import pickle

import numpy as np
import pytest
import torch

from latticeprune import LatticePruner
from latticeprune.callbacks import LatticePruning
from latticeprune.dependency import trace
from latticeprune.nets import LayerStack, RecurrentNet
from latticeprune.neuron_graph import NeuronGraph
from latticeprune.persistence import load_weights, save_weights
from latticeprune.units import equal_count_sets, unit_rms, unit_weights
from test_user_nets import user_net
from user_nets import ZOO, LastStep, Packed, zoo_data


def weak_top_layer():
    """A user's 2-layer LSTM-16 whose second layer's weights (and the read-out) are scaled
    down five-fold: its units are the weaker ones."""
    torch.manual_seed(0)
    module = LastStep()
    trace(module, torch.randn(2, 5, 6))
    with torch.no_grad():
        for name in ("weight_ih_l1", "weight_hh_l1", "bias_ih_l1", "bias_hh_l1"):
            getattr(module.lstm, name).mul_(0.2)
        module.fc.weight.mul_(0.2)
    return module


@pytest.mark.parametrize("allocation, expected", [("per_layer", (8, 8)), ("global", None)])
def test_global_allocation_removes_more_from_the_weaker_layer(allocation, expected):
    pruning = LatticePruning(strategy="magnitude", granularity="unit", sparsity=0.5,
                             n_rounds=1, allocation=allocation).initialize()
    pruning.prune(weak_top_layer())
    removed = pruning.removed_units_
    per_layer = (int(removed[:16].sum()), int(removed[16:].sum()))
    assert sum(per_layer) == 16
    if expected is not None:
        assert per_layer == expected
    else:
        assert per_layer[1] >= 12 and per_layer[0] <= 4  # the weak layer gives most


def test_unit_rms_is_the_root_mean_square_of_each_units_group():
    torch.manual_seed(0)
    module = RecurrentNet(3, 2, hidden_size=[12, 4], num_layers=2, cell="gru")
    trace(module, torch.randn(2, 4, 3))
    graph = NeuronGraph(module)
    brute = [np.sqrt(np.mean(np.square(w.astype(np.float64)))) for w in unit_weights(graph)]
    np.testing.assert_allclose(unit_rms(graph), brute, rtol=1e-10)


@pytest.mark.parametrize("module_class", [m for m in ZOO if m is not Packed],
                         ids=lambda m: m.__name__)
def test_global_allocation_keeps_the_coupled_layers_equal_on_every_zoo_module(module_class):
    X, y = zoo_data(module_class)
    pruner = LatticePruner(user_net(module_class), strategy="magnitude", granularity="unit",
                           sparsity=0.5, allocation="global", n_rounds=2,
                           random_state=0).fit(X, y)
    graph = NeuronGraph(pruner.estimator_.module_)
    kept = [layer.size for layer in graph.layers]
    for group in equal_count_sets(graph):
        assert len({kept[i] for i in group}) == 1
    assert min(kept) >= 1
    total = sum(len(k) for k in pruner.units_)
    assert sum(kept) == total


def test_a_global_pruning_restacks_the_layers_and_round_trips(tmp_path):
    X, y = zoo_data(LastStep)
    params = dict(strategy="magnitude", granularity="unit", sparsity=0.5, allocation="global",
                  n_rounds=2, random_state=0)
    pruner = LatticePruner(user_net(LastStep), **params).fit(X, y)
    small = pruner.estimator_.module_
    assert isinstance(small.lstm, LayerStack)  # the two layers kept different numbers
    assert len(set(small.lstm.hidden_sizes)) == 2 and sum(small.lstm.hidden_sizes) == 16
    proba = pruner.predict_proba(X)
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(pruner)).predict_proba(X), proba)
    restored = load_weights(LatticePruner(user_net(LastStep), **params),
                            save_weights(pruner, tmp_path / "weights"))
    assert isinstance(restored.estimator_.module_.lstm, LayerStack)
    np.testing.assert_allclose(restored.predict_proba(X), proba, atol=1e-6)


def test_allocation_is_validated(small_digits):
    from latticeprune import RNNClassifier
    X, y = small_digits
    with pytest.raises(ValueError, match="The 'allocation' parameter of LatticePruner must be "
                                         "a str among"):
        LatticePruner(RNNClassifier(hidden_size=4, max_epochs=1), granularity="unit",
                      allocation="everywhere").fit(X, y)


# -- sparsity=None at unit level: the lattice decides how many units stay ---------------------
def test_the_structure_decides_removes_exactly_the_units_the_lattice_marks():
    from latticeprune import lattice
    from latticeprune.callbacks.lattice_pruning import analyse
    torch.manual_seed(0)
    module = RecurrentNet(3, 2, hidden_size=16, cell="lstm")
    trace(module, torch.randn(2, 4, 3))
    analysis = analyse(NeuronGraph(module).freeze())
    # the oracle: not meet-irreducible and below the median centrality
    marked = ~analysis.protected & (analysis.rank < np.quantile(analysis.rank, 0.5))
    assert 0 < marked.sum() < 16
    np.testing.assert_array_equal(
        lattice.structural_neurons(analysis.protected, analysis.rank, 0.5), marked)
    pruning = LatticePruning(granularity="unit", sparsity=None, n_rounds=1).initialize()
    record = pruning.prune(module)
    np.testing.assert_array_equal(pruning.removed_units_, marked)
    assert record["target"] is None and record["removed"] == marked.sum()


def test_sparsity_none_at_unit_level_through_the_pruner_on_a_users_net():
    X, y = zoo_data(LastStep)
    pruner = LatticePruner(user_net(LastStep), granularity="unit", sparsity=None, n_rounds=2,
                           random_state=0).fit(X, y)
    kept = [len(k) for k in pruner.units_]
    assert all(1 <= k <= 16 for k in kept) and sum(kept) < 32  # the lattice chose how many
    assert pruner.sparsity_["per_layer"] == {
        "lstm.l0": 1 - kept[0] / 16, "lstm.l1": 1 - kept[1] / 16}
    assert [r["target"] for r in pruner.rounds_] == [None, None]
