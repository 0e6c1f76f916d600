"""Structured pruning: granularity, unit rankers, physical removal, ONNX export (issue 13;
variable-length input, issue 14)."""

import copy
import pickle

import numpy as np
import pytest
import torch
from skorch import NeuralNetClassifier

from conftest import onnx_session
from latticeprune import LatticePruner, ModuliRegularizer, RNNClassifier, RNNRegressor, export_onnx
from latticeprune import rules, units
from latticeprune.nets import CELLS, RecurrentNet, StackedRNN
from latticeprune.neuron_graph import NeuronGraph


@pytest.fixture(scope="module")
def data():
    rng = np.random.RandomState(0)
    X = rng.randn(40, 5, 3).astype(np.float32)
    return X, (X[:, :, 0].sum(axis=1) > 0).astype(int)


def masked_and_removed(module, fraction, ranker="magnitude"):
    """Mask ``fraction`` of the units of every layer of ``module``; the smaller net too."""
    graph = NeuronGraph(module)
    groups = rules.Units(graph, graph.tensors)
    removed = units.next_removals(graph, rules.get_ranker(ranker).order(groups, random_state=0),
                                  np.zeros(graph.n_neurons, dtype=bool), fraction)
    graph.apply_masks(units.unit_masks(graph, removed))
    keep = [np.flatnonzero(~removed[graph.layer_slice(i)]) for i in range(len(graph.layers))]
    return units.remove_units(module, keep), keep


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("layers, top_down", [(1, False), (2, False), (3, True)])
def test_removed_net_equals_masked_net(cell, layers, top_down):
    torch.manual_seed(0)
    net = RecurrentNet(3, 4, hidden_size=6, num_layers=layers, cell=cell, top_down=top_down)
    small, keep = masked_and_removed(net, 0.5)
    x = torch.randn(5, 7, 3)
    assert [len(k) for k in keep] == [3] * layers
    assert NeuronGraph(small).masks() == {}
    assert type(small.encoder) is type(net.encoder)
    torch.testing.assert_close(small(x), net(x), atol=1e-6, rtol=1e-5)


def test_zero_units_round_trips_and_all_but_one_works():
    torch.manual_seed(0)
    net = RecurrentNet(3, 4, hidden_size=5, num_layers=2, cell="gru", top_down=True)
    x = torch.randn(2, 6, 3)
    same = units.remove_units(net, [np.arange(5), np.arange(5)])
    assert same.state_dict().keys() == net.state_dict().keys()
    for key, value in net.state_dict().items():
        assert torch.equal(same.state_dict()[key], value)
    small, keep = masked_and_removed(net, 0.8)  # round(0.8 * 5) = 4 of 5 units
    assert [len(k) for k in keep] == [1, 1]
    torch.testing.assert_close(small(x), net(x), atol=1e-6, rtol=1e-5)


def test_layers_of_different_sizes_are_fused_modules():
    net = RecurrentNet(3, 2, hidden_size=(4, 6), num_layers=2, cell="lstm")
    assert isinstance(net.encoder, StackedRNN)
    assert [layer.size for layer in NeuronGraph(net).layers] == [4, 6]
    assert net(torch.zeros(2, 3, 3)).shape == (2, 2)
    small, _ = masked_and_removed(net, 0.5)
    assert [layer.size for layer in NeuronGraph(small).layers] == [2, 3]
    with pytest.raises(ValueError, match="2 sizes for num_layers=3"):
        RecurrentNet(3, 2, hidden_size=(4, 6), num_layers=3)


@pytest.mark.parametrize("strategy", ["lattice", "magnitude", "random"])
def test_unit_pruner_yields_ordinary_smaller_estimator(data, strategy):
    X, y = data
    pruner = LatticePruner(RNNClassifier(hidden_size=8, num_layers=2, max_epochs=1),
                           sparsity=0.5, strategy=strategy, granularity="unit", n_rounds=2,
                           random_state=0).fit(X, y)
    est = pruner.estimator_
    assert type(est) is RNNClassifier and est.hidden_size == 4
    assert isinstance(est.module_.encoder, torch.nn.LSTM) and est.module_.encoder.hidden_size == 4
    assert pruner.masks_ == {} and [len(k) for k in pruner.units_] == [4, 4]
    assert pruner.sparsity_["units"] == pruner.sparsity_["overall"] == 0.5
    assert pruner.sparsity_["weights"] == pytest.approx(0.75)  # W_hh is 4 x 4 of 8 x 8
    assert [r["removed"] for r in pruner.rounds_] == [4, 4]  # 2 units per layer per round
    before = est.predict_proba(X)
    np.testing.assert_allclose(pruner.predict_proba(X), before)
    clone = pickle.loads(pickle.dumps(est))
    np.testing.assert_allclose(clone.predict_proba(X), before, atol=1e-6)
    est.set_params(device="cpu").partial_fit(X, y, epochs=1)  # trains further, same size
    assert est.module_.encoder.hidden_size == 4
    assert next(est.module_.parameters()).device.type == "cpu"
    assert not np.allclose(est.predict_proba(X), before)


def test_unit_pruned_equals_its_masked_form(data):
    """Without fine-tuning the removed net reproduces the dense net with the units masked."""
    X, y = data
    dense = RNNRegressor(hidden_size=6, num_layers=2, top_down=True, cell="rnn_tanh",
                         max_epochs=1, random_state=0).fit(X, y.astype(float))
    pruner = LatticePruner(dense, prefit=True, sparsity=0.5, granularity="unit", n_rounds=1,
                           fine_tune_epochs=0).fit(X, y)
    masked = copy.deepcopy(dense)
    graph = NeuronGraph(masked.module_)
    removed = np.ones(graph.n_neurons, dtype=bool)
    for i, kept in enumerate(pruner.units_):
        removed[graph.layer_slice(i).start + kept] = False
    graph.apply_masks(units.unit_masks(graph, removed))
    np.testing.assert_allclose(pruner.predict(X), masked.predict(X), atol=1e-5)


def test_unit_pruned_estimator_can_be_wrapped_again(data):
    X, y = data
    first = LatticePruner(RNNClassifier(hidden_size=8, max_epochs=1), sparsity=0.5,
                          granularity="unit", n_rounds=1, random_state=0).fit(X, y)
    again = LatticePruner(first.estimator_, prefit=True, sparsity=0.5, granularity="unit",
                          n_rounds=1, random_state=0).fit(X, y)
    assert again.estimator_.module_.encoder.hidden_size == 2
    moduli = ModuliRegularizer(first.estimator_, moduli="circle", target_sparsity=0.5,
                               recovery_epochs=0, random_state=0).fit(X, y)
    assert NeuronGraph(moduli.net_.module_).layers[0].size == 4
    nested = LatticePruner(ModuliRegularizer(RNNClassifier(hidden_size=8, max_epochs=1),
                                             moduli="circle", target_sparsity=0.3,
                                             recovery_epochs=0),
                           sparsity=0.5, granularity="unit", n_rounds=1, random_state=0).fit(X, y)
    assert nested.net_.module_.encoder.hidden_size == 4
    assert nested.predict(X).shape == (len(X),)


def test_connection_granularity_removes_whole_connections(data):
    X, y = data
    for strategy in ("magnitude", "random"):
        pruner = LatticePruner(RNNClassifier(hidden_size=6, cell="gru", max_epochs=1),
                               sparsity=0.5, strategy=strategy, granularity="connection",
                               n_rounds=1, fine_tune_epochs=0, random_state=0).fit(X, y)
        mask = pruner.masks_["encoder.weight_hh_l0"].reshape(3, 6, 6)
        assert (mask == mask[0]).all()  # every gate entry of a connection goes together
        assert pruner.sparsity_["overall"] == pytest.approx(0.5, abs=3 / 108)
    weight = LatticePruner(RNNClassifier(hidden_size=6, cell="gru", max_epochs=1),
                           sparsity=0.5, strategy="magnitude", n_rounds=1, fine_tune_epochs=0,
                           random_state=0).fit(X, y)
    mask = weight.masks_["encoder.weight_hh_l0"].reshape(3, 6, 6)
    assert not (mask == mask[0]).all()  # default for the baselines: single entries


def test_unit_granularity_errors(data):
    X, y = data
    net = RNNClassifier(hidden_size=4, num_layers=2, max_epochs=1)
    with pytest.raises(ValueError, match="removes all 4 units of layer encoder.l0"):
        LatticePruner(net, sparsity=0.9, granularity="unit").fit(X, y)
    with pytest.raises(ValueError, match="not single weights"):
        LatticePruner(net, granularity="weight").fit(X, y)
    with pytest.raises(ValueError, match="sparsity=None .* needs strategy='lattice' at "
                                         "granularity='connection' or 'unit'; got "
                                         "strategy='magnitude'"):
        LatticePruner(net, sparsity=None, strategy="magnitude", granularity="unit").fit(X, y)
    with pytest.raises(ValueError, match="granularity"):
        LatticePruner(net, granularity="layer").fit(X, y)



class OwnInitialState(torch.nn.Module):
    def __init__(self, hidden=4):
        super().__init__()
        self.hidden = hidden
        self.rnn = torch.nn.GRU(3, hidden, batch_first=True)
        self.out = torch.nn.Linear(hidden, 2)

    def forward(self, x):
        h0 = torch.zeros(1, x.shape[0], self.hidden)
        return self.out(self.rnn(x, h0)[0][:, -1])


class ReturnsStates(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.rnn = torch.nn.RNN(3, 4, batch_first=True)

    def forward(self, x):
        return self.rnn(x)[0][:, -1]


class TiedWeights(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.embedding = torch.nn.Embedding(10, 4)
        self.rnn = torch.nn.LSTM(4, 4, batch_first=True)
        self.decoder = torch.nn.Linear(4, 10)
        self.decoder.weight = self.embedding.weight

    def forward(self, x):
        return self.decoder(self.rnn(self.embedding(x.long()))[0])


@pytest.mark.parametrize("module, x, message", [
    (OwnInitialState(), torch.zeros(2, 5, 3), "passes its own initial state to rnn"),
    (ReturnsStates(), torch.zeros(2, 5, 3), "returns the hidden units of rnn.l0 without a "
                                            "read-out"),
    (TiedWeights(), torch.zeros(2, 5), "decoder.weight is shared with another module"),
])
def test_units_of_a_net_whose_forward_fixes_their_number_are_not_removed(module, x, message):
    from latticeprune.dependency import trace
    with pytest.raises(ValueError, match="computation was not traced"):
        units.check_removable(copy.deepcopy(module))  # a copy has no trace
    trace(module, x)
    with pytest.raises(ValueError, match=f"Cannot remove units .granularity='unit'.: .*{message}"):
        units.check_removable(module)
    graph = NeuronGraph(module)  # masks still apply
    graph.apply_masks(units.unit_masks(graph, np.arange(graph.n_neurons) < 2))


class BidirectionalHead(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.rnn = torch.nn.GRU(3, 4, num_layers=2, bidirectional=True, batch_first=True)
        self.out = torch.nn.Linear(8, 2)

    def forward(self, x):
        return self.out(self.rnn(x)[0][:, -1])


def test_the_directions_of_a_layer_keep_equally_many_units():
    from latticeprune.dependency import trace
    module = BidirectionalHead()
    trace(module, torch.zeros(1, 2, 3))
    with pytest.raises(ValueError, match="The two directions of layer 1 of rnn keep .2, 3. "
                                         "units: a bidirectional layer has one hidden_size"):
        units.remove_units(module, [[0, 1], [2, 3], [0, 1, 2], [1, 3]])


class ThreeLayersReadTwice(torch.nn.Module):
    def __init__(self, joined=False):
        super().__init__()
        self.joined = joined
        self.lstm = torch.nn.LSTM(3, 6, num_layers=3, batch_first=True, bidirectional=True,
                                  dropout=0.1)
        self.fc = torch.nn.Linear(36 if joined else 12, 2)

    def forward(self, x):
        out, (h, _) = self.lstm(x)
        if self.joined:  # the final state read as one tensor: every layer's rows at once
            return self.fc(h.transpose(0, 1).reshape(x.shape[0], -1))
        return self.fc(torch.cat([h[-2], h[-1]], dim=1)) + self.fc(out[:, -1])


def test_layers_keeping_different_numbers_of_units_become_a_layer_stack():
    from latticeprune.dependency import trace
    from latticeprune.nets import LayerStack
    torch.manual_seed(0)
    module, x = ThreeLayersReadTwice().eval(), torch.randn(4, 5, 3)
    trace(module, x)
    graph = NeuronGraph(module)
    keep = [np.arange(k) for k in (5, 5, 3, 3, 2, 2)]
    removed = np.ones(graph.n_neurons, dtype=bool)
    for i, kept in enumerate(keep):
        removed[graph.layer_slice(i).start + kept] = False
    small = units.remove_units(module, keep).eval()
    graph.apply_masks(units.unit_masks(graph, removed))
    assert isinstance(small.lstm, LayerStack) and small.lstm.hidden_sizes == [5, 3, 2]
    torch.testing.assert_close(small(x), module(x), atol=1e-6, rtol=1e-5)
    trace(small, x)  # the stack's final states are rows, as the fused module's
    assert [t.segments for t in NeuronGraph(small).tensors if t.name == "fc.weight"] == [
        ((4, 2), (5, 2))]
    smaller = units.remove_units(small, [np.arange(k) for k in (4, 4, 1, 1, 1, 1)])
    assert smaller.lstm.hidden_sizes == [4, 1, 1] and smaller(x).shape == (4, 2)
    joined = ThreeLayersReadTwice(joined=True)
    trace(joined, x)
    with pytest.raises(ValueError, match="final state the forward reads as one tensor .* must "
                                         r"keep equally many units; got \[5, 5, 3, 3, 2, 2\]"):
        units.remove_units(joined, keep)
    assert units.remove_units(joined, [np.arange(3)] * 6).fc.in_features == 18


@pytest.mark.exports
def test_export_onnx_matches_torch(data, tmp_path):
    X, y = data
    pruner = LatticePruner(RNNClassifier(hidden_size=6, num_layers=2, top_down=True,
                                         max_epochs=1), sparsity=0.5, granularity="unit",
                           n_rounds=1, random_state=0).fit(X, y)
    masked = LatticePruner(RNNClassifier(hidden_size=6, cell="gru", max_epochs=1),
                           sparsity=0.8, n_rounds=1, random_state=0).fit(X, y)
    x = np.random.RandomState(1).randn(9, 8, 3).astype(np.float32)
    # the top-down net's steps are fixed (at n_steps, 3 here: each step is unrolled into the
    # graph), the GRU's dynamic (8 steps here)
    for name, model, steps in [("unit", pruner, 3), ("masked", masked, 8)]:
        path = export_onnx(model, tmp_path / f"{name}.onnx", n_steps=3)
        session = onnx_session(path)
        assert session.get_inputs()[0].shape == ["batch", 3 if name == "unit" else "steps", 3]
        assert [o.name for o in session.get_outputs()] == ["label", "probabilities"]
        label, proba = session.run(None, {"x": x[:, :steps]})
        np.testing.assert_allclose(proba, model.predict_proba(x[:, :steps]), atol=1e-5)
        np.testing.assert_array_equal(label, model.predict(x[:, :steps]))
    raw = onnx_session(export_onnx(masked, tmp_path / "raw.onnx", raw_scores=True))
    with torch.no_grad():  # raw_scores: the module's forward, logits
        logits = masked.net_.module_(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(raw.run(None, {"x": x})[0], logits, atol=1e-5)
    assert NeuronGraph(masked.net_.module_).masks()  # the fitted net keeps its masks


def ragged_sequences(n, low, high, seed=0):
    """``n`` sequences of ``low .. high - 1`` steps and 3 features, and binary labels."""
    rng = np.random.default_rng(seed)
    X = [rng.normal(size=(rng.integers(low, high), 3)).astype(np.float32) for _ in range(n)]
    return X, np.array([int(x[:, 0].mean() > 0) for x in X])


def padded_feed(X, n_steps, fill=5.0):
    """The ONNX inputs of ``X`` padded to ``n_steps`` with ``fill`` (which must not matter)."""
    data = np.full((len(X), n_steps, X[0].shape[1]), fill, dtype=np.float32)
    for i, x in enumerate(X):
        data[i, :len(x)] = x
    return {"x": data, "lengths": np.array([len(x) for x in X], dtype=np.int64)}


@pytest.mark.exports
def test_export_onnx_variable_length_matches_the_estimators(tmp_path):

    X, y = ragged_sequences(24, 2, 6)
    longest = max(len(x) for x in X)
    lstm = RNNClassifier(hidden_size=6, max_epochs=1, random_state=0).fit(X, y)
    assert lstm.n_steps_ == longest  # the default n_steps of the export
    gru = LatticePruner(RNNClassifier(hidden_size=[6, 4], num_layers=2, cell="gru",
                                      max_epochs=1, random_state=0),
                        sparsity=0.4, granularity="unit", n_rounds=1, random_state=0).fit(X, y)
    assert isinstance(gru.net_.module_.encoder, StackedRNN)  # one torch GRU per layer
    assert sum(layer.size for layer in NeuronGraph(gru.net_.module_).layers) < 10
    top_down = RNNRegressor(hidden_size=5, num_layers=2, top_down=True, cell="rnn_tanh",
                            sequence_output=True, max_epochs=1,
                            random_state=0).fit(X, [x.sum(axis=1) for x in X])
    # top-down (the existing export test has a top-down LSTM): the steps fixed at n_steps_
    cases = [(lstm, longest + 3, "steps"), (gru, longest + 3, "steps"),
             (top_down, longest, longest)]
    for index, (model, steps, steps_dim) in enumerate(cases):
        path = export_onnx(model, tmp_path / f"{index}.onnx", variable_length=True)
        session = onnx_session(path)
        assert session.get_inputs()[0].shape == ["batch", steps_dim, 3]
        assert session.get_inputs()[1].shape == ["batch"]
        feed = padded_feed(X, steps)
        out = session.run(None, feed)[-1]  # probabilities, or a regressor's predictions
        if model is top_down:  # per-step outputs, cut at each end
            for i, (x, pred) in enumerate(zip(X, top_down.predict(X))):
                np.testing.assert_allclose(out[i, :len(x), 0], pred, atol=1e-5)
        else:
            np.testing.assert_allclose(out, model.predict_proba(X), atol=1e-5)
            np.testing.assert_array_equal(session.run(None, feed)[0], model.predict(X))
        for i in range(3):  # a sequence alone, unpadded where the steps are dynamic
            alone = padded_feed(X[i:i + 1], len(X[i]) if steps_dim == "steps" else steps)
            np.testing.assert_allclose(session.run(None, alone)[-1][0, :len(X[i])],
                                       out[i, :len(X[i])], atol=1e-6)
        bad = dict(feed, lengths=feed["lengths"].copy())
        bad["lengths"][:3] = [0, steps + 1, -2]  # out of range: NaN for those sequences only
        wrong = session.run(None, bad)
        assert np.isnan(wrong[-1][:3]).all()
        np.testing.assert_array_equal(wrong[-1][3:], out[3:])
        if model is not top_down:  # and no label
            np.testing.assert_array_equal(wrong[0][:3], -1)


def test_export_onnx_rejects_bad_parameters(tmp_path):
    net = RecurrentNet(3, 2, hidden_size=4)
    for kwargs, message in [({"variable_length": "yes"}, "'variable_length' parameter"),
                            ({"variable_length": np.array([5, 3])}, "'variable_length' parameter"),
                            ({"n_steps": 0}, "'n_steps' parameter"),
                            ({"n_steps": 2.5}, "'n_steps' parameter")]:
        with pytest.raises(ValueError, match=message):
            export_onnx(net, tmp_path / "m.onnx", **kwargs)
    with pytest.raises(ValueError, match="n_steps is needed.*fixed number of steps"):
        export_onnx(RecurrentNet(3, 2, hidden_size=4, cell="rnn_tanh"), tmp_path / "m.onnx")

    class NoLengths(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.rnn = torch.nn.GRU(3, 4, batch_first=True)

        def forward(self, x):
            return self.rnn(x)[0][:, -1]

    with pytest.raises(ValueError, match="variable_length=True needs a module whose forward "
                                         "takes lengths"):
        export_onnx(NoLengths(), tmp_path / "m.onnx", variable_length=True)


def test_unit_pruned_pruner_saves_and_loads_weights_without_pickle(data, tmp_path):
    from sklearn.base import clone

    from latticeprune.persistence import load_weights, save_weights

    X, y = data
    pruner = LatticePruner(RNNClassifier(hidden_size=8, num_layers=2, max_epochs=1),
                           sparsity=0.5, granularity="unit", n_rounds=1,
                           random_state=0).fit(X, y)
    restored = load_weights(clone(pruner), save_weights(pruner, tmp_path / "w"))
    assert restored.estimator_.hidden_size == pruner.estimator_.hidden_size
    np.testing.assert_array_equal(restored.predict_proba(X), pruner.predict_proba(X))
    assert restored.sparsity_["hidden_sizes"] == [4, 4]
