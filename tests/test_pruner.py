"""LatticePruner: the sklearn meta-transformer around the lattice engine."""

import copy
import inspect
import pickle

import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils import get_tags
from skorch import NeuralNetClassifier
from torch import nn

from latticeprune import LatticePruner, RNNClassifier, RNNRegressor
from latticeprune.callbacks import LatticePruning
from latticeprune.callbacks.connectivity import input_reaches_readout
from latticeprune import rules
from latticeprune.callbacks.lattice_pruning import analyse
from latticeprune.datasets import make_adding_problem
from latticeprune.neuron_graph import NeuronGraph, pruned_count

NET = dict(hidden_size=12, max_epochs=2, random_state=0)
ONE_SHOT = dict(n_rounds=1, fine_tune_epochs=0)


@pytest.fixture(scope="module")
def fitted_net(small_digits):
    X, y = small_digits
    return RNNClassifier(cell="lstm", **NET).fit(X, y)


def _gates(pruner):
    return max(t.n_gates for t in pruner.neuron_graph().tensors)


@pytest.mark.parametrize("strategy,adjacency", [("lattice", "binary"),
                                                ("lattice", "continuous"),
                                                ("magnitude", "binary"), ("random", "binary")])
@pytest.mark.parametrize("scope", ["recurrent", "all"])
def test_achieved_sparsity_is_the_target_within_one_connection(fitted_net, small_digits,
                                                              strategy, adjacency, scope):
    X, y = small_digits
    pruner = LatticePruner(fitted_net, prefit=True, sparsity=0.7, strategy=strategy,
                           adjacency=adjacency, scope=scope, random_state=0, **ONE_SHOT)
    pruner.fit(X, y)
    graph = pruner.neuron_graph()
    total = sum(t.weight.numel() for t in graph.tensors_in(scope))
    achieved = pruner.sparsity_["overall"]
    # the one rounding rule: at least pruned_count(0.7, total) zero entries, at most one
    # connection (n_gates entries) more
    assert pruned_count(0.7, total) / total <= achieved <= 0.7 + _gates(pruner) / total + 1e-12
    assert set(pruner.masks_) == {t.name for t in graph.tensors_in(scope)}


@pytest.mark.parametrize("cell,layers,top_down", [("gru", 2, False), ("rnn_tanh", 3, True)])
def test_multilayer_and_top_down_nets_are_pruned_as_one_graph(small_digits, cell, layers,
                                                             top_down):
    X, y = small_digits
    net = RNNClassifier(cell=cell, num_layers=layers, top_down=top_down, **NET)
    pruner = LatticePruner(net, sparsity=0.6, random_state=0, n_rounds=2,
                           fine_tune_epochs=1).fit(X, y)
    assert len(pruner.meet_irreducible_) == layers
    assert pruner.lattice_["n_neurons"] == 12 * layers
    names = set(pruner.masks_)
    assert any("weight_hh" in n for n in names)
    assert any("weight_td" in n for n in names) == top_down
    assert pruner.sparsity_["overall"] == pytest.approx(0.6, abs=3 / 144)


def test_pruned_weights_stay_zero_through_fine_tuning_rounds(small_digits):
    X, y = small_digits
    pruner = LatticePruner(RNNClassifier(cell="gru", **NET), sparsity=0.8, n_rounds=3,
                           fine_tune_epochs=1, random_state=0).fit(X, y)
    targets = [r["target"] for r in pruner.rounds_]
    np.testing.assert_allclose(targets, [0.8 / 3, 1.6 / 3, 0.8])
    achieved = [r["achieved"] for r in pruner.rounds_]
    assert achieved == sorted(achieved)
    assert len(pruner.net_.history) == 2 + 3  # fit epochs + one per round
    for t in pruner.neuron_graph().tensors_in("recurrent"):
        assert (t.weight.detach().numpy()[~pruner.masks_[t.name]] == 0).all()
    assert pruner.sparsity_["overall"] == pytest.approx(0.8, abs=3 / 144)


def test_lattice_rule_prunes_non_irreducible_neurons_first(fitted_net, small_digits):
    X, y = small_digits
    pruner = LatticePruner(fitted_net, prefit=True, sparsity=0.1, random_state=0,
                           **ONE_SHOT).fit(X, y)
    (verdict,) = pruner.meet_irreducible_
    assert 0 < verdict.sum() < 12
    mask = pruner.masks_["encoder.weight_hh_l0"][:12]  # first gate block: rows = dst, cols = src
    pruned_sources = np.flatnonzero((~mask).any(axis=0))
    if (~verdict).sum() * 12 * 4 >= 0.1 * mask.size * 4:
        assert not verdict[pruned_sources].any()


def test_sparsity_none_lets_the_structure_decide(fitted_net, small_digits):
    X, y = small_digits
    pruner = LatticePruner(fitted_net, prefit=True, sparsity=None, centrality_quantile=0.5,
                           random_state=0, **ONE_SHOT).fit(X, y)
    (verdict,) = pruner.meet_irreducible_
    (rank,) = pruner.centrality_
    expected_sources = np.flatnonzero(~verdict & (rank < np.quantile(rank, 0.5)))
    mask = pruner.masks_["encoder.weight_hh_l0"][:12]
    pruned_sources = np.flatnonzero((~mask).all(axis=0))
    np.testing.assert_array_equal(pruned_sources, expected_sources)
    assert pruner.sparsity_["overall"] == pytest.approx(len(expected_sources) / 12)


def test_same_random_state_same_masks_and_predictions(small_digits):
    X, y = small_digits
    make = lambda seed, strategy: LatticePruner(  # noqa: E731
        RNNClassifier(hidden_size=12, max_epochs=2), sparsity=0.5, strategy=strategy,
        n_rounds=2, fine_tune_epochs=1, random_state=seed).fit(X, y)
    a, b = make(0, "lattice"), make(0, "lattice")
    for name in a.masks_:
        np.testing.assert_array_equal(a.masks_[name], b.masks_[name])
    np.testing.assert_array_equal(a.predict_proba(X), b.predict_proba(X))
    r0, r0b, r1 = make(0, "random"), make(0, "random"), make(1, "random")
    name = next(iter(r0.masks_))
    np.testing.assert_array_equal(r0.masks_[name], r0b.masks_[name])
    assert not np.array_equal(r0.masks_[name], r1.masks_[name])


def test_user_estimator_is_never_mutated(fitted_net, small_digits):
    X, y = small_digits
    unfitted = RNNClassifier(hidden_size=12, max_epochs=2)
    plain = lambda est: {k: v for k, v in est.get_params(deep=False).items()  # noqa: E731
                         if not k.startswith("callbacks")}
    params = plain(unfitted)
    LatticePruner(unfitted, sparsity=0.5, random_state=3, **ONE_SHOT).fit(X, y)
    assert not unfitted.initialized_ and plain(unfitted) == params
    assert unfitted.random_state is None
    before = fitted_net.predict_proba(X)
    LatticePruner(fitted_net, prefit=True, sparsity=0.9, **ONE_SHOT).fit(X, y)
    np.testing.assert_array_equal(fitted_net.predict_proba(X), before)
    assert NeuronGraph(fitted_net).sparsity()["overall"] == 0


def test_delegation_and_transform(fitted_net, small_digits):
    X, y = small_digits
    pruner = LatticePruner(fitted_net, prefit=True, sparsity=0.5, **ONE_SHOT).fit(X, y)
    assert pruner.predict_proba(X[:5]).shape == (5, 10)
    assert pruner.decision_function(X[:5]).shape == (5, 10)
    assert pruner.transform(X[:5]).shape == (5, 12)
    np.testing.assert_array_equal(pruner.classes_, fitted_net.classes_)
    assert pruner.score(X, y) == pytest.approx(np.mean(pruner.predict(X) == y))
    X_add, y_add = make_adding_problem(100, 8, random_state=0)
    reg = LatticePruner(RNNRegressor(cell="rnn_tanh", **NET), sparsity=0.5, **ONE_SHOT)
    assert not hasattr(reg, "predict_proba")
    reg.fit(X_add, y_add)
    assert reg.predict(X_add).shape == (100,)
    with pytest.raises(NotFittedError):
        LatticePruner(RNNClassifier()).predict(X)


def test_clone_and_pickle(small_digits):
    X, y = small_digits
    pruner = LatticePruner(RNNClassifier(**NET), sparsity=0.7, adjacency="continuous",
                           n_rounds=2, fine_tune_epochs=1, random_state=0)
    assert clone(pruner).get_params()["estimator__hidden_size"] == 12
    pruner.fit(X, y)
    restored = pickle.loads(pickle.dumps(pruner))
    np.testing.assert_array_equal(restored.predict_proba(X), pruner.predict_proba(X))
    assert restored.sparsity_ == pruner.sparsity_
    assert restored.neuron_graph().sparsity()["overall"] == pytest.approx(
        pruner.sparsity_["overall"])


def test_pipeline_and_grid_search_over_sparsity_and_adjacency(small_digits):
    X, y = small_digits
    X2 = X.reshape(len(X), -1)
    pipe = Pipeline([("scale", StandardScaler()),
                     ("prune", LatticePruner(RNNClassifier(input_size=8, **NET),
                                             random_state=0, **ONE_SHOT))])
    search = GridSearchCV(pipe, {"prune__sparsity": [0.5, 0.9],
                                 "prune__adjacency": ["binary", "continuous"],
                                 "prune__estimator__hidden_size": [8]}, cv=2)
    search.fit(X2, y)
    assert len(search.cv_results_["params"]) == 4
    assert np.isfinite(search.cv_results_["mean_test_score"]).all()
    best = search.best_estimator_[-1]
    assert best.sparsity_["overall"] == pytest.approx(search.best_params_["prune__sparsity"],
                                                      abs=4 / 64)


def test_third_party_skorch_net(small_digits):
    X, y = small_digits

    class GRUHead(nn.Module):
        def __init__(self):
            super().__init__()
            self.gru = nn.GRU(8, 10, batch_first=True)
            self.out = nn.Linear(10, 10)

        def forward(self, x):
            return self.out(self.gru(x)[0][:, -1])

    torch.manual_seed(0)
    net = NeuralNetClassifier(GRUHead, criterion=nn.CrossEntropyLoss, max_epochs=1,
                              train_split=None, lr=0.1)
    pruner = LatticePruner(net, sparsity=0.5, scope="all", n_rounds=2,
                           fine_tune_epochs=1).fit(X, y)
    assert set(pruner.masks_) == {"gru.weight_ih_l0", "gru.weight_hh_l0", "out.weight"}
    assert pruner.sparsity_["overall"] == pytest.approx(0.5, abs=3 / 580)


@pytest.mark.parametrize("params,match", [
    ({"sparsity": 1.0}, "sparsity"),
    ({"sparsity": -0.1}, "sparsity"),
    ({"strategy": "smallest"}, "lattice"),
    ({"adjacency": "weighted"}, "continuous"),
    ({"order": "dominance"}, "reachability"),
    ({"centrality": "betweenness"}, "pagerank"),
    ({"scope": "input"}, "recurrent"),
    ({"backbone": 1.0}, "backbone"),
    ({"n_rounds": 0}, "n_rounds"),
    ({"strategy": "magnitude", "sparsity": None}, "strategy='lattice'"),
])
def test_bad_parameters(small_digits, params, match):
    X, y = small_digits
    with pytest.raises(ValueError, match=match):
        LatticePruner(RNNClassifier(**NET), **{**ONE_SHOT, **params}).fit(X, y)


def test_estimator_without_recurrent_layers_and_unfitted_prefit(small_digits):
    X, y = small_digits
    mlp = NeuralNetClassifier(nn.Sequential(nn.Flatten(), nn.Linear(64, 10)),
                              criterion=nn.CrossEntropyLoss, max_epochs=1, train_split=None)
    with pytest.raises(ValueError, match="no recurrent layers"):
        LatticePruner(mlp, **ONE_SHOT).fit(X, y)
    with pytest.raises(NotFittedError, match="prefit=True"):
        LatticePruner(RNNClassifier(), prefit=True).fit(X, y)


def test_lattice_pruning_callback_prunes_in_rounds_while_training(small_digits):
    X, y = small_digits
    pruning = LatticePruning(sparsity=0.6, n_rounds=2, epochs_per_round=2, start_epoch=2)
    net = RNNClassifier(cell="gru", callbacks=[pruning], **{**NET, "max_epochs": 4}).fit(X, y)
    assert [r["round"] for r in pruning.rounds_] == [1, 2]
    assert [r["target"] for r in pruning.rounds_] == [0.3, 0.6]
    graph = NeuronGraph(net)
    assert graph.sparsity()["overall"] == pytest.approx(0.6, abs=3 / 432)
    assert len(pruning.analysis_.verdict) == graph.n_neurons
    with pytest.raises(ValueError, match="levels"):
        LatticePruning(levels=[0.5, 1.0]).initialize()


def test_the_rules_count_with_the_one_rounding_rule(fitted_net):
    graph = NeuronGraph(copy.deepcopy(fitted_net))
    tensors = graph.tensors_in("all")
    total = sum(t.weight.numel() for t in tensors)
    entries = rules.Entries(graph, tensors)
    for ranker in (rules.MagnitudeRanker(), rules.RandomRanker()):
        masks, _ = entries.prune(ranker.order(entries, random_state=0), 0.55)
        assert set(masks) == {t.name for t in tensors}
        assert sum(int((~m).sum()) for m in masks.values()) == pruned_count(0.55, total)
    draws = [entries.prune(rules.RandomRanker().order(entries, random_state=3), 0.5)[0]
             for _ in range(2)]
    np.testing.assert_array_equal(draws[0][tensors[0].name], draws[1][tensors[0].name])
    analysis = analyse(graph)
    assert analysis.persistence is None and analysis.protected is analysis.verdict
    connections = rules.Connections(graph, tensors)
    masks, removed = connections.prune(rules.LatticeRanker().order(connections, analysis), 0.3)
    graph.apply_masks(masks)
    assert removed > 0
    assert pruned_count(0.3, total) / total <= graph.sparsity("all")["overall"] <= 0.3 + 4 / total


def test_a_users_importance_ranks_the_groups(small_digits):
    X, y = small_digits
    seen = []

    def largest_entry(groups):
        seen.append(groups.kind)
        return [np.abs(values).max() for values in groups.values()]
    pruner = LatticePruner(RNNClassifier(hidden_size=8, num_layers=2, max_epochs=1),
                           strategy=largest_entry, granularity="unit", sparsity=0.5,
                           n_rounds=1, fine_tune_epochs=0, random_state=0).fit(X, y)
    assert seen == ["unit"] and [len(k) for k in pruner.units_] == [4, 4]
    params = dict(granularity="unit", sparsity=0.5, n_rounds=1, fine_tune_epochs=0,
                  random_state=0)
    net = RNNClassifier(hidden_size=8, num_layers=2, max_epochs=1)
    norms = LatticePruner(net, strategy=lambda groups: groups.magnitudes(), **params).fit(X, y)
    magnitude = LatticePruner(net, strategy="magnitude", **params).fit(X, y)
    strongest = LatticePruner(net, strategy=lambda groups: -groups.magnitudes(), **params)
    strongest.fit(X, y)
    for a, b, c in zip(norms.units_, magnitude.units_, strongest.units_):
        np.testing.assert_array_equal(a, b)  # the magnitude ranker, as an importance
        assert not set(a) & set(c)  # the opposite order keeps the other half
    weak = LatticePruner(RNNClassifier(hidden_size=8, num_layers=2, max_epochs=1,
                                       random_state=1), strategy=lambda groups: np.zeros(3),
                         granularity="connection", n_rounds=1, random_state=0)
    with pytest.raises(ValueError, match="must return .* finite scores, one per group of "
                                         "granularity='connection'; got shape .3,."):
        weak.fit(X, y)


# -- issue 12 --------------------------------------------------------------------------------
def test_scope_all_continuous_lstm_keeps_its_input_and_read_out(digits):
    """Issue 12 item 14: input connections used to go first within the top tier (persistence
    1, centrality 0), so the LSTM lost its input and scored at chance level."""
    X, y = digits
    pruner = LatticePruner(RNNClassifier(cell="lstm", hidden_size=16, max_epochs=8, lr=0.01,
                                         random_state=0),
                           scope="all", adjacency="continuous", sparsity=0.9,
                           random_state=0).fit(X[:500], y[:500])
    assert pruner.sparsity_["overall"] == pytest.approx(0.9, abs=4 / 1696)
    assert input_reaches_readout(pruner.neuron_graph())
    assert max(pruner.sparsity_["per_tensor"].values()) < 0.95
    assert pruner.score(X[:500], y[:500]) > 0.15  # chance: 0.1


def test_input_reaches_readout_follows_the_non_zero_weights(fitted_net):
    def cut(kind, rows=slice(None)):
        graph = NeuronGraph(copy.deepcopy(fitted_net))
        masks = {}
        for t in graph.tensors:
            mask = torch.ones_like(t.weight)
            if t.kind == kind:
                mask[rows] = 0
            masks[t.name] = mask
        return input_reaches_readout(graph.apply_masks(masks))

    assert input_reaches_readout(NeuronGraph(fitted_net))
    assert not cut("input") and not cut("readout")
    assert cut("recurrent")  # a one-layer net reads its input straight out
    assert cut("input", slice(0, 47))  # one neuron still fed (its gate block's last rows)
    two_layers = RNNClassifier(cell="gru", num_layers=2, hidden_size=4, max_epochs=1,
                               random_state=0).fit(np.zeros((4, 2, 8), np.float32), [0, 1] * 2)
    graph = NeuronGraph(two_layers)
    graph.apply_masks({t.name: torch.zeros_like(t.weight) for t in graph.tensors
                       if t.kind == "feedforward"})
    assert not input_reaches_readout(graph)


def test_a_round_that_cuts_the_input_off_raises(fitted_net, small_digits):
    X, y = small_digits
    with pytest.raises(ValueError, match="cut the net off from its input or read-out"):
        LatticePruner(fitted_net, prefit=True, strategy="random", scope="all", sparsity=0.999,
                      random_state=0, **ONE_SHOT).fit(X, y)
    with pytest.raises(ValueError, match="Round 1 of the magnitude rule"):
        graph = NeuronGraph(copy.deepcopy(fitted_net))
        readout = next(t for t in graph.tensors if t.kind == "readout")
        graph.apply_masks({readout.name: torch.zeros_like(readout.weight)})
        LatticePruning(strategy="magnitude", sparsity=0.1).initialize().prune(graph.module)


def test_verbose_says_round_and_sparsity(small_digits, capsys):
    X, y = small_digits
    LatticePruner(RNNClassifier(**NET), sparsity=0.5, n_rounds=2, random_state=0).fit(X, y)
    assert capsys.readouterr().out == ""
    LatticePruner(RNNClassifier(**NET), sparsity=0.5, n_rounds=2, verbose=1,
                  random_state=0).fit(X, y)
    lines = capsys.readouterr().out.splitlines()
    assert lines == ["round 1/2: target sparsity 0.25, achieved 0.25, fine-tuning 1 epoch",
                     "round 2/2: target sparsity 0.50, achieved 0.50, fine-tuning 1 epoch"]


def test_sample_weight_reaches_fit_and_every_fine_tuning_round(small_digits, weight_spy):
    X, y = small_digits
    weight = np.linspace(0.5, 1.5, len(y))
    LatticePruner(weight_spy(**NET), sparsity=0.5, n_rounds=3).fit(X, y, sample_weight=weight)
    assert [method for method, _ in weight_spy.seen] == ["fit"] + ["partial_fit"] * 3
    assert all(w is weight for _, w in weight_spy.seen)


@pytest.mark.skipif("sample_weight" not in inspect.signature(RNNClassifier.fit).parameters,
                    reason="the estimators' fit takes sample_weight (issue 12, estimators)")
def test_sample_weight_changes_the_sparse_fit_as_sklearn_does(small_digits):
    X, y = small_digits
    make = lambda: LatticePruner(RNNClassifier(**NET), sparsity=0.5, n_rounds=2,  # noqa: E731
                                 random_state=0)
    plain = make().fit(X, y).predict_proba(X)
    np.testing.assert_allclose(make().fit(X, y, sample_weight=np.ones(len(y))).predict_proba(X),
                               plain, atol=1e-6)
    weighted = make().fit(X, y, sample_weight=np.where(y < 5, 0.0, 1.0)).predict_proba(X)
    assert weighted[:, 5:].sum() > plain[:, 5:].sum()


def test_fit_transform_and_tags_follow_the_estimator(small_digits):
    X, y = small_digits
    pruner = LatticePruner(RNNClassifier(**NET), sparsity=0.5, random_state=0, **ONE_SHOT)
    Z = pruner.fit_transform(X, y)
    np.testing.assert_array_equal(Z, pruner.transform(X))
    assert Z.shape == (len(X), 12) and pruner.n_features_in_ == 64
    tags = get_tags(pruner)
    assert tags.estimator_type == "classifier" and tags.transformer_tags is not None
    assert get_tags(LatticePruner(RNNRegressor())).estimator_type == "regressor"
    gru_head = NeuralNetClassifier(nn.GRU, max_epochs=1)
    assert not hasattr(LatticePruner(gru_head), "fit_transform")
    assert get_tags(LatticePruner(gru_head)).transformer_tags is None
