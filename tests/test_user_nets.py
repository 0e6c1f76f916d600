"""Any skorch RNN, not only ours (issue 24): the zoo of tests/user_nets.py, each module as a
user writes it, through the dependency trace, every granularity of LatticePruner, the
moduli sparsifier, unit removal to a smaller module of the user's own class, persistence and
ONNX export."""

import copy
import inspect
import pickle

import numpy as np
import pytest
import torch
from skorch import NeuralNetClassifier
from sklearn.model_selection import GridSearchCV, KFold

from latticeprune import LatticePruner, ModuliRegularizer, units
from latticeprune.dependency import trace, trace_net
from latticeprune.neuron_graph import NeuronGraph
from latticeprune.persistence import load_weights, save_weights
from user_nets import ZOO, BiGRUPool, FinalState, LastStep, TimeMajor, TwoModules, zoo_data

IDS = [cls.__name__ for cls in ZOO]


def user_net(module_class, **params):
    """The user's skorch classifier: their module, plain skorch settings."""
    torch.manual_seed(0)
    return NeuralNetClassifier(module_class, criterion=torch.nn.CrossEntropyLoss,
                               max_epochs=2, lr=0.05, batch_size=16, train_split=None,
                               optimizer=torch.optim.Adam, **params)


def hidden_of(module_class):
    return inspect.signature(module_class).parameters["hidden"].default


#: What the trace must find in each module: {tensor name: (kind, segments as (layer name or
#: None, size))}, for the tensors outside the recurrent modules' own wiring.
READERS = {
    LastStep: {"fc.weight": ("readout", [("lstm.l1", 16)])},
    BiGRUPool: {"fc.weight": ("readout", [("gru.l0", 12), ("gru.l0_reverse", 12)])},
    FinalState: {"gru.weight_ih_l1_reverse": ("feedforward", [("gru.l0", 8),
                                                              ("gru.l0_reverse", 8)]),
                 "fc.weight": ("readout", [("gru.l1", 8), ("gru.l1_reverse", 8)])},
    TimeMajor: {"fc.weight": ("readout", [("lstm.l0", 12), (None, 6)])},
    TwoModules: {"second.weight_ih_l0": ("feedforward", [("first.l0", 12)]),
                 "fc.weight": ("readout", [("second.l0", 12), ("second.l1", 12)])},
}


@pytest.mark.parametrize("module_class", ZOO, ids=IDS)
def test_the_trace_finds_who_reads_the_units(module_class):
    X, y = zoo_data(module_class)
    net = user_net(module_class).fit(X, y)
    graph = NeuronGraph(net.module_)
    assert not graph.dependencies.complete  # the fitted net alone: recurrent wiring only
    trace_net(net, X)
    graph = NeuronGraph(net.module_)
    names = [layer.name for layer in graph.layers]
    found = {t.name: (t.kind, [(None if b is None else names[b], s) for b, s in t.segments])
             for t in graph.tensors}
    for name, expected in READERS.get(module_class, {}).items():
        assert found[name] == expected
    assert sum(t.kind == "readout" for t in graph.tensors) == 1  # the head's second Linear: not
    norms = {r.path for r in graph.dependencies.norms}
    assert norms == {BiGRUPool: {"norm.weight", "norm.bias"},
                     TimeMajor: {"norm.weight", "norm.bias", "norm.running_mean",
                                 "norm.running_var"}}.get(module_class, set())


@pytest.mark.parametrize("strategy", ["lattice", "magnitude", "random"])
@pytest.mark.parametrize("module_class", ZOO, ids=IDS)
def test_unit_removal_gives_the_users_class_smaller_and_equal_to_the_masked_net(
        module_class, strategy):
    X, y = zoo_data(module_class)
    dense = user_net(module_class).fit(X, y)
    pruner = LatticePruner(dense, prefit=True, granularity="unit", strategy=strategy,
                           sparsity=0.5, n_rounds=1, fine_tune_epochs=0, random_state=0).fit(X, y)
    small = pruner.net_.module_
    assert type(small) is module_class  # the user's own class, their forward unchanged
    expected = module_class(hidden=hidden_of(module_class) // 2)
    assert {n: p.shape for n, p in small.named_parameters()} == {
        n: p.shape for n, p in expected.named_parameters()}
    # the dense net with the same units masked (and left out of a layer norm) predicts the same
    masked = copy.deepcopy(dense)
    trace_net(masked, X)
    graph = NeuronGraph(masked.module_)
    removed = np.ones(graph.n_neurons, dtype=bool)
    for i, kept in enumerate(pruner.units_):
        removed[graph.layer_slice(i).start + kept] = False
    graph.apply_masks(units.unit_masks(graph, removed))
    units.mask_norms(graph, removed)
    np.testing.assert_allclose(pruner.predict_proba(X), masked.predict_proba(X), atol=1e-5)
    assert pruner.sparsity_["units"] == 0.5


@pytest.mark.parametrize("module_class", ZOO, ids=IDS)
def test_the_smaller_net_trains_further_pickles_and_round_trips_its_weights(module_class,
                                                                           tmp_path):
    X, y = zoo_data(module_class)
    pruner = LatticePruner(user_net(module_class), granularity="unit", sparsity=0.5,
                           n_rounds=2, random_state=0).fit(X, y)
    proba = pruner.predict_proba(X)
    again = pickle.loads(pickle.dumps(pruner))
    np.testing.assert_allclose(again.predict_proba(X), proba, atol=1e-6)
    restored = load_weights(LatticePruner(user_net(module_class), granularity="unit",
                                          sparsity=0.5, n_rounds=2, random_state=0),
                            save_weights(pruner, tmp_path / "weights"))
    assert type(restored.net_.module_) is module_class
    np.testing.assert_allclose(restored.predict_proba(X), proba, atol=1e-6)
    small = pruner.estimator_
    small.partial_fit(X, y, epochs=1)
    assert not np.allclose(small.predict_proba(X), proba)


@pytest.mark.parametrize("granularity,strategy", [("weight", "magnitude"), ("weight", "random"),
                                                  ("connection", "lattice"),
                                                  ("connection", "magnitude")])
@pytest.mark.parametrize("module_class", ZOO, ids=IDS)
def test_weight_and_connection_granularities_mask_the_users_net(module_class, granularity,
                                                                 strategy, tmp_path):
    X, y = zoo_data(module_class)
    pruner = LatticePruner(user_net(module_class), granularity=granularity, strategy=strategy,
                           sparsity=0.6, scope="all", n_rounds=2, random_state=0).fit(X, y)
    assert pruner.sparsity_["overall"] == pytest.approx(0.6, abs=0.05)
    graph = NeuronGraph(pruner.net_.module_)
    assert {t.name for t in graph.tensors_in("all")} == set(pruner.masks_)
    proba = pruner.predict_proba(X)
    assert np.isfinite(proba).all()
    restored = load_weights(LatticePruner(user_net(module_class), granularity=granularity,
                                          strategy=strategy, sparsity=0.6, scope="all",
                                          n_rounds=2, random_state=0),
                            save_weights(pruner, tmp_path / "weights"))
    np.testing.assert_allclose(restored.predict_proba(X), proba, atol=1e-6)
    assert restored.sparsity_["overall"] == pytest.approx(pruner.sparsity_["overall"])


@pytest.mark.parametrize("module_class", [BiGRUPool, FinalState, TwoModules],
                         ids=["BiGRUPool", "FinalState", "TwoModules"])
def test_the_moduli_regularizer_penalises_and_prunes_the_users_net(module_class):
    X, y = zoo_data(module_class)
    reg = ModuliRegularizer(user_net(module_class).set_params(max_epochs=3), moduli="torus",
                            target_sparsity=0.7, random_state=0).fit(X, y)
    assert reg.sparsity_["overall"] == pytest.approx(0.7, abs=0.02)
    graph = NeuronGraph(reg.net_.module_)
    assert set(reg.embedding_) == {layer.name for layer in graph.layers}  # every direction
    assert np.isfinite(reg.predict_proba(X)).all()


def test_a_grid_search_over_granularity_and_strategy_on_a_users_net():
    X, y = zoo_data(BiGRUPool, n=48)
    search = GridSearchCV(LatticePruner(user_net(BiGRUPool), sparsity=0.5, n_rounds=1,
                                        random_state=0),
                          {"granularity": ["weight", "connection", "unit"],
                           "strategy": ["magnitude", "random"]}, cv=KFold(2)).fit(X, y)
    assert len(search.cv_results_["params"]) == 6
    assert np.isfinite(search.cv_results_["mean_test_score"]).all()
    best = search.best_estimator_
    assert type(best.net_.module_) is BiGRUPool


def test_to_inference_of_a_users_net_points_to_unit_removal():
    X, y = zoo_data(LastStep)
    pruner = LatticePruner(user_net(LastStep), sparsity=0.5, n_rounds=1,
                           random_state=0).fit(X, y)
    with pytest.raises(TypeError, match="LastStep.*granularity='unit'"):
        pruner.to_inference()


def test_an_op_the_trace_cannot_follow_is_named_with_its_module():
    class Flattens(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.lstm = torch.nn.LSTM(3, 4, batch_first=True)
            self.head = torch.nn.Linear(20, 2)

        def forward(self, x):
            return self.head(self.lstm(x)[0].flatten(1))

    with pytest.raises(ValueError, match=r"'flatten' from \(2, 5, 4\) to \(2, 20\) mixes the "
                                         r"units' dimension with another in Flattens \(the hidden "
                                         "units of lstm.l0"):
        trace(Flattens(), torch.zeros(2, 5, 3))
