"""The neuron-graph adapter: discovery, strengths, masks, sparsity."""

import copy

import numpy as np
import pytest
import torch
from torch import nn

from latticeprune import RNNClassifier
from latticeprune.nets import RecurrentNet
from latticeprune.dependency import trace
from latticeprune.neuron_graph import NeuronGraph


def test_lstm_strengths_match_hand_computed_gate_rms():
    lstm = nn.LSTM(input_size=1, hidden_size=2, batch_first=True)
    w = torch.zeros(8, 2)  # 4 gate blocks (i, f, g, o) of 2 rows; column = presynaptic unit
    # connection 0 -> 1 lives in rows g*2 + 1, column 0: values 1, 2, 2, 4 -> norm 5
    w[1, 0], w[3, 0], w[5, 0], w[7, 0] = 1.0, 2.0, 2.0, 4.0
    # connection 1 -> 0 lives in rows g*2 + 0, column 1: only the forget gate, 3 -> norm 3
    w[2, 1] = 3.0
    # self-connection 1 -> 1: rows g*2 + 1, column 1: 0, 0, 6, 8 -> norm 10
    w[5, 1], w[7, 1] = 6.0, 8.0
    with torch.no_grad():
        lstm.weight_hh_l0.copy_(w)
    graph = NeuronGraph(lstm)
    expected = np.array([[0.0, 5.0], [3.0, 10.0]]) / np.sqrt(4)  # RMS over the 4 gate blocks
    np.testing.assert_allclose(graph.layer_strengths(0), expected)
    np.testing.assert_allclose(graph.strength_matrix(), expected)


def test_gru_and_elman_gate_counts():
    assert NeuronGraph(nn.GRU(3, 4)).layers[0].n_gates == 3
    assert NeuronGraph(nn.RNN(3, 4, nonlinearity="relu")).layers[0].n_gates == 1


@pytest.mark.parametrize("top_down", [False, True])
def test_stacked_nets_form_one_graph(top_down):
    net = RecurrentNet(input_size=3, output_size=2, hidden_size=4, num_layers=3, cell="gru",
                       top_down=top_down)
    graph = NeuronGraph(net)
    assert graph.n_neurons == 12
    kinds = sorted(t.kind for t in graph.tensors)
    assert kinds.count("recurrent") == 3 and kinds.count("feedforward") == 2
    assert kinds.count("top_down") == (2 if top_down else 0)
    S = graph.strength_matrix()
    block = lambda a, b: S[4 * a:4 * a + 4, 4 * b:4 * b + 4]  # noqa: E731
    assert (block(0, 1) > 0).all() and (block(1, 2) > 0).all()  # bottom-up
    assert (block(1, 0) > 0).all() == top_down  # top-down feedback
    assert not block(0, 2).any()  # no skip connections


class TwoRNNsAndAHead(nn.Module):
    def __init__(self):
        super().__init__()
        self.first = nn.GRU(5, 6, batch_first=True)
        self.second = nn.LSTM(6, 3, num_layers=2, batch_first=True)
        self.head = nn.Sequential(nn.Linear(3, 7), nn.ReLU(), nn.Linear(7, 2))

    def forward(self, x):
        return self.head(self.second(self.first(x)[0])[0][:, -1])


def test_third_party_module_with_two_rnns_and_a_head_is_read_from_its_trace():
    module = TwoRNNsAndAHead()
    trace(module, torch.zeros(2, 4, 5))
    graph = NeuronGraph(module)
    assert [layer.size for layer in graph.layers] == [6, 3, 3]
    kinds = {t.name: t.kind for t in graph.tensors}
    assert kinds["first.weight_ih_l0"] == "input"
    assert kinds["second.weight_ih_l0"] == "feedforward"
    assert kinds["head.0.weight"] == "readout"  # reads the units; head.2 reads head.0
    assert "head.2.weight" not in kinds
    assert len(graph.tensors_in("all")) == len(graph.tensors) == 7
    assert len(graph.tensors_in("recurrent")) == 3


def test_an_untraced_module_is_read_as_far_as_its_recurrent_modules_go():
    graph = NeuronGraph(TwoRNNsAndAHead())  # no example input: nothing outside is known
    assert not graph.dependencies.complete
    assert {t.kind for t in graph.tensors} == {"input", "recurrent", "feedforward"}


def test_bidirectional_layers_are_two_layers_of_neurons():
    graph = NeuronGraph(nn.LSTM(3, 4, num_layers=2, bidirectional=True))
    assert [layer.name for layer in graph.layers] == ["l0", "l0_reverse", "l1", "l1_reverse"]
    upper = {t.name: t for t in graph.tensors}["weight_ih_l1_reverse"]
    assert upper.segments == ((0, 4), (1, 4)) and upper.dst == 3
    S = graph.strength_matrix()
    assert (S[0:8, 12:16] > 0).all()  # both directions below feed the reverse layer above
    assert not S[0:4, 4:8].any()  # the directions of a layer do not read each other


def test_no_recurrent_layer_and_unsupported_layers_raise():
    with pytest.raises(ValueError, match="no recurrent layers"):
        NeuronGraph(nn.Linear(3, 4))
    with pytest.raises(ValueError, match="proj_size"):
        NeuronGraph(nn.LSTM(3, 4, proj_size=2))
    with pytest.raises(ValueError, match="scope"):
        NeuronGraph(nn.GRU(3, 4)).tensors_in("everything")
    with pytest.raises(TypeError):
        NeuronGraph("not a net")


def test_masks_apply_through_torch_prune_and_match_zeroed_weights():
    torch.manual_seed(0)
    rnn = nn.LSTM(3, 5, num_layers=2, batch_first=True)
    reference = copy.deepcopy(rnn)
    graph = NeuronGraph(rnn)
    keep = np.random.RandomState(0).rand(5, 5) > 0.5
    masks = {t.name: t.weight_mask(keep) for t in graph.tensors_in("recurrent")}
    graph.apply_masks(masks)
    assert hasattr(rnn, "weight_hh_l0_orig") and hasattr(rnn, "weight_hh_l0_mask")
    with torch.no_grad():
        for name in ("weight_hh_l0", "weight_hh_l1"):
            getattr(reference, name).mul_(masks[name])
    x = torch.randn(2, 4, 3)
    torch.testing.assert_close(rnn(x)[0], reference(x)[0])
    # every gate entry of a pruned connection is zero; strengths see the mask
    np.testing.assert_array_equal(graph.layer_strengths(0) > 0, keep)
    expected = 1 - keep.mean()
    assert graph.sparsity()["per_tensor"]["weight_hh_l0"] == pytest.approx(expected)
    assert graph.sparsity()["overall"] == pytest.approx(expected)
    assert graph.sparsity("all")["overall"] < expected
    assert set(graph.masks()) == {"weight_hh_l0", "weight_hh_l1"}


def test_masks_stay_zero_through_skorch_training(small_digits):
    X, y = small_digits
    clf = RNNClassifier(cell="gru", hidden_size=10, num_layers=2, top_down=True, max_epochs=1,
                        random_state=0).fit(X, y)
    graph = NeuronGraph(clf)
    rng = np.random.RandomState(1)
    masks = {t.name: t.weight_mask(rng.rand(*t.strengths().shape) > 0.7)
             for t in graph.tensors_in("all")}
    graph.apply_masks(masks)
    zero_before = {name: ~m.bool() for name, m in masks.items()}
    clf.partial_fit(X, y)
    clf.partial_fit(X, y)
    for t in graph.tensors_in("all"):
        assert (t.weight.detach()[zero_before[t.name]] == 0).all(), t.name
        assert (t.weight.detach()[~zero_before[t.name]] != 0).all(), t.name
    copy.deepcopy(graph.freeze().module)  # copyable after training


def test_masks_compose_and_remove_keeps_zeros():
    rnn = nn.RNN(2, 6)
    graph = NeuronGraph(rnn)
    (t,) = graph.tensors_in("recurrent")
    first = np.ones((6, 6), bool)
    first[0] = False
    second = np.ones((6, 6), bool)
    second[:, 0] = False
    graph.apply_masks({t.name: t.weight_mask(first)})
    graph.apply_masks({t.name: t.weight_mask(second)})
    np.testing.assert_array_equal(graph.layer_strengths(0) > 0, first & second)
    graph.remove_masks()
    assert not hasattr(rnn, "weight_hh_l0_orig")
    assert isinstance(rnn.weight_hh_l0, nn.Parameter)
    np.testing.assert_array_equal(graph.layer_strengths(0) > 0, first & second)


def test_bad_masks_raise():
    graph = NeuronGraph(nn.GRU(2, 3))
    with pytest.raises(ValueError, match="Unknown weight tensors"):
        graph.apply_masks({"nope": torch.ones(9, 3)})
    with pytest.raises(ValueError, match="shape"):
        graph.apply_masks({"weight_hh_l0": torch.ones(3, 3)})
