"""Fast inference forms (compaction, CSR step loop) against the masked dense net they come from."""

import pickle
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.base import is_classifier, is_regressor
from sklearn.exceptions import NotFittedError
from torch.nn.utils import prune

from latticeprune import LatticePruner, RNNClassifier, RNNRegressor
from latticeprune.datasets import load_digits_sequences, make_adding_problem
from latticeprune.inference import FastRecurrentNet, compact, to_inference
from latticeprune.nets import CELLS, RecurrentNet
from latticeprune.neuron_graph import NeuronGraph

ATOL = 1e-5
ENGINES = ["auto", "sparse", "dense"]
ARCHITECTURES = {"single": (1, False), "stacked-2": (2, False), "stacked-3": (3, False),
                 "top-down-2": (2, True), "top-down-3": (3, True)}


@pytest.fixture(autouse=True)
def one_torch_thread():
    """Tiny nets: a second OpenMP thread only adds synchronisation (slow on a busy machine)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def random_masks(net, sparsity, seed):
    """Random unstructured masks on every weight tensor of the net (scope "all")."""
    rng = np.random.default_rng(seed)
    graph = NeuronGraph(net)
    graph.apply_masks({t.name: rng.random(tuple(t.weight.shape)) >= sparsity
                       for t in graph.tensors})
    return net.eval()


def reference(net, x):
    """Outputs and final top-layer states of the masked dense net."""
    with torch.no_grad():
        return net(x).numpy(), net.encode(x)[1].numpy()


def make_net(cell, architecture, hidden_size=10, seed=0, **kwargs):
    num_layers, top_down = ARCHITECTURES[architecture]
    torch.manual_seed(seed)
    return RecurrentNet(input_size=4, output_size=3, hidden_size=hidden_size,
                        num_layers=num_layers, cell=cell, top_down=top_down, **kwargs)


# -- every cell, architecture, engine and batch size --------------------------------------------
@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("architecture", list(ARCHITECTURES))
@pytest.mark.parametrize("cell", CELLS)
def test_fast_forms_match_masked_dense_net(cell, architecture, engine):
    net = random_masks(make_net(cell, architecture), sparsity=0.8, seed=1)
    fast = to_inference(net, engine=engine)
    for batch in (1, 5):
        x = torch.randn(batch, 7, 4)
        outputs, hidden = reference(net, x)
        np.testing.assert_allclose(fast.forward(x).numpy(), outputs, atol=ATOL)
        np.testing.assert_allclose(fast.encode(x)[1].numpy(), hidden, atol=ATOL)


@pytest.mark.parametrize("cell", CELLS)
def test_auto_engine_runs_large_sparse_layers_as_csr(cell):
    torch.manual_seed(0)
    net = RecurrentNet(input_size=4, output_size=3, hidden_size=512, cell=cell).eval()
    rng = np.random.default_rng(0)
    weight = net.encoder.weight_hh_l0
    prune.custom_from_mask(net.encoder, "weight_hh_l0",
                           torch.as_tensor(rng.random(tuple(weight.shape)) >= 0.98))
    fast = to_inference(net)
    assert fast.layer_engines == ["sparse"]
    assert fast.weight_nbytes < fast.dense_weight_nbytes
    for batch in (1, 2):  # matrix-vector and matrix-matrix products
        x = torch.randn(batch, 5, 4)
        np.testing.assert_allclose(fast.forward(x).numpy(), reference(net, x)[0], atol=ATOL)


@pytest.mark.parametrize("cell, sparsity", [("lstm", 0.98), ("lstm", 0.99), ("rnn_tanh", 0.95)])
def test_auto_engine_switches_by_batch_size(cell, sparsity, monkeypatch):
    """A small sparse layer's engine depends on the batch size; outputs do not. A layer that is
    sparse at batch 1 and for large batches is sparse for every batch (no dense copy)."""
    from latticeprune.inference import sparse

    torch.manual_seed(0)
    net = RecurrentNet(input_size=4, output_size=3, hidden_size=128, cell=cell).eval()
    weight = net.encoder.weight_hh_l0
    mask = np.random.default_rng(0).random(tuple(weight.shape)) >= sparsity
    prune.custom_from_mask(net.encoder, "weight_hh_l0", torch.as_tensor(mask))
    fast = to_inference(net)
    at_one, threshold = sparse.sparse_batches(read_layer(net))
    assert threshold is not None and 2 <= threshold <= 64
    if at_one:
        assert threshold == 2 and fast.layer_engines == ["sparse"]
    else:
        assert threshold > 2
        assert fast.layer_engines == [
            f"dense at batch 1, dense for batches below {threshold}, sparse from it"]
    calls = []
    original = sparse.SparseRecurrentNet.encode_time_major
    monkeypatch.setattr(sparse.SparseRecurrentNet, "encode_time_major",
                        lambda self, *a, **k: calls.append(1) or original(self, *a, **k))
    for batch, csr in ((1, at_one), (2, at_one), (threshold - 1, at_one), (threshold, True),
                       (100, True)):
        calls.clear()
        x = torch.randn(batch, 5, 4)
        np.testing.assert_allclose(fast.forward(x).numpy(), reference(net, x)[0], atol=ATOL)
        assert bool(calls) == csr, batch


@pytest.mark.parametrize("hidden, sparsity", [(64, 0.5), (64, 0.98), (128, 0.98), (256, 0.98)])
def test_auto_engine_runs_a_top_down_net_jointly_by_batch_size(hidden, sparsity, monkeypatch):
    """A top-down net's layers step jointly: auto runs all of them through torch (the top-down
    kernel) or all through the CSR loop, CSR only where it pays for every layer."""
    from latticeprune.inference import sparse
    from latticeprune.inference.compact import compact_weights, read_weights

    torch.manual_seed(0)
    net = RecurrentNet(input_size=4, output_size=3, hidden_size=hidden, num_layers=2,
                       top_down=True).eval()
    rng = np.random.default_rng(0)
    for layer in net.encoder.layers:
        for name in ("weight_hh", "weight_td"):
            if getattr(layer, name) is not None:
                mask = rng.random(tuple(getattr(layer, name).shape)) >= sparsity
                prune.custom_from_mask(layer, name, torch.as_tensor(mask))
    fast = to_inference(net)
    plans = [sparse.sparse_batches(layer)
             for layer in compact_weights(read_weights(net), "outputs")[0].layers]
    starts = [start for _, start in plans]
    if all(at_one for at_one, _ in plans):  # 256 units at 0.98: the CSR loop for every batch
        assert hidden == 256 and fast.layer_engines == ["sparse", "sparse"]
        threshold = 1
    elif None in starts:  # 64 units: a layer that never pays keeps the whole net on torch
        assert hidden == 64 and fast.layer_engines == ["dense", "dense"]
        threshold = None
    else:  # 128 units at 0.98: torch below the larger of the two layers' thresholds
        threshold = max(starts)
        assert hidden == 128 and min(starts) < threshold
        assert fast.layer_engines == [
            f"dense at batch 1, dense for batches below {threshold}, sparse from it"] * 2
    calls = []
    original = sparse.SparseRecurrentNet.encode_time_major
    monkeypatch.setattr(sparse.SparseRecurrentNet, "encode_time_major",
                        lambda self, *a, **k: calls.append(1) or original(self, *a, **k))
    for batch in (1, 3) + ((threshold - 1, threshold) if threshold not in (None, 1) else ()):
        calls.clear()
        x = torch.randn(batch, 5, 4)
        np.testing.assert_allclose(fast.forward(x).numpy(), reference(net, x)[0], atol=ATOL)
        assert bool(calls) == (threshold is not None and batch >= threshold), batch


def measured_crossovers():
    """``(cell, hidden, sparsity, batch, dense/sparse)`` of the committed inference benchmark's
    rows (sections latency, crossover and small nets) with sparsity at least MIN_SPARSITY."""
    from latticeprune.inference.sparse import MIN_SPARSITY
    path = Path(__file__).resolve().parents[1] / "benchmarks" / "results" / "inference_speed.txt"
    rows, section, header = [], None, None
    for line in path.read_text().splitlines():
        if line.startswith("## "):
            section = line.split(".")[0][3:]
            continue
        fields = re.split(r"\s{2,}", line.strip())
        if fields[0] == "cell":
            header = fields
        elif (section in ("1", "2", "5") and fields[0] in CELLS
              and fields[2][0].isdigit() and float(fields[2]) >= MIN_SPARSITY):
            rows.append((fields[0], int(fields[1]), float(fields[2]), int(fields[3]),
                         float(fields[header.index("dense/sparse")])))
    return rows


def test_auto_engine_follows_the_measured_crossovers():
    """``auto``'s cost model (``sparse_batches``) picks the engine the committed benchmark
    measured faster, wherever one is more than 20% faster (single-layer nets, 100 steps; two
    runs of the benchmark on one machine differed by up to 22% in a row's ratio): refit its
    constants when a rerun on new kernels or a new machine moves a crossover."""
    from latticeprune.inference.sparse import runs_sparse, sparse_batches
    from latticeprune.inference.compact import LayerWeights
    from latticeprune.nets import N_GATES
    from latticeprune.neuron_graph import pruned_count

    rows = [row for row in measured_crossovers() if not 1 / 1.2 <= row[4] <= 1.2]
    assert len(rows) > 20
    wrong = []
    for cell, hidden, sparsity, batch, ratio in rows:
        size = N_GATES[cell] * hidden * hidden
        weight = np.ones(size, dtype=np.float32)
        weight[:pruned_count(sparsity, size)] = 0
        weight = weight.reshape(-1, hidden)
        layer = LayerWeights(cell, weight[:, :4], weight, None, weight[:, 0], weight[:, 0],
                             np.arange(hidden))
        if runs_sparse(sparse_batches(layer), batch) != (ratio > 1):
            wrong.append((cell, hidden, sparsity, batch, ratio))
    assert not wrong, wrong


@pytest.mark.parametrize("engine", ["auto", "dense"])
def test_dense_fallback_forward_stays_in_torch(engine):
    """Where every layer runs dense, a tensor goes through torch only; same numbers as numpy."""
    net = random_masks(make_net("lstm", "stacked-2"), 0.5, seed=3)
    fast = to_inference(net, engine=engine)
    assert fast._runner.runs_dense(4)
    x = torch.randn(4, 6, 4, requires_grad=True)
    out = fast.forward(x)
    assert not out.requires_grad
    np.testing.assert_allclose(out.numpy(), reference(net, x.detach())[0], atol=ATOL)
    np.testing.assert_allclose(out.numpy(), fast.forward(x.detach().numpy()).numpy(), atol=ATOL)


@pytest.mark.parametrize("architecture", ["single", "stacked-2", "top-down-2"])
@pytest.mark.parametrize("cell", CELLS)
def test_mkl_matrix_vector_path_matches(cell, architecture):
    """Every product through MKL's CSR kernels (torch views made once per call), batch 1 and 3."""
    net = random_masks(make_net(cell, architecture), 0.8, seed=4)
    fast = to_inference(net, engine="sparse")
    layers = fast._runner.layers
    if architecture != "top-down-2":  # a stack of one-layer engines
        layers = [engine.layers[0] for _, _, engine in layers]
    assert all(layer.w_hh.tensor.layout == torch.sparse_csr for layer in layers)
    for batch in (1, 3):
        x = torch.randn(batch, 6, 4)
        outputs, hidden = reference(net, x)
        np.testing.assert_allclose(fast.forward(x).numpy(), outputs, atol=ATOL)
        np.testing.assert_allclose(fast.encode(x)[1].numpy(), hidden, atol=ATOL)


def test_pruning_amount_counts_as_that_sparsity():
    """prune "0.9" of 256 x 256 zeroes round(0.9 n) entries, a fraction short of 0.9 n."""
    torch.manual_seed(0)
    rnn = torch.nn.RNN(4, 256, batch_first=True)
    prune.random_unstructured(rnn, "weight_hh_l0", amount=0.9)
    assert (rnn.weight_hh_l0 == 0).float().mean().item() < 0.9
    fast = to_inference(rnn)
    assert fast.layer_engines[0].startswith("sparse")  # at batch 1 at least
    x = torch.randn(1, 5, 4)
    with torch.no_grad():
        np.testing.assert_allclose(fast.forward(x).numpy(), rnn(x)[0].numpy(), atol=ATOL)


def read_layer(net):
    from latticeprune.inference.compact import read_weights

    return read_weights(net).layers[0]


def test_sequence_output_is_read_out_at_every_step():
    net = random_masks(make_net("gru", "stacked-2", sequence_output=True), 0.7, seed=2)
    x = torch.randn(3, 6, 4)
    for engine in ENGINES:
        out = to_inference(net, engine=engine).forward(x).numpy()
        assert out.shape == (3, 6, 3)
        np.testing.assert_allclose(out, reference(net, x)[0], atol=ATOL)


# -- compaction --------------------------------------------------------------------------------
def test_nothing_pruned_round_trips():
    net = make_net("lstm", "stacked-2").eval()
    small, report = compact(net)
    assert report.compact_sizes == report.original_sizes == [10, 10]
    assert all(len(r) == 0 for r in report.removed)
    x = torch.randn(4, 6, 4)
    with torch.no_grad():
        np.testing.assert_allclose(small(x).numpy(), net(x).numpy(), atol=ATOL)
    fast = to_inference(net)
    assert fast.layer_engines == ["dense", "dense"]
    np.testing.assert_allclose(fast.forward(x).numpy(), reference(net, x)[0], atol=ATOL)


@pytest.mark.parametrize("architecture", ["single", "stacked-2", "top-down-2"])
@pytest.mark.parametrize("cell", CELLS)
def test_units_without_outgoing_connections_are_removed(cell, architecture):
    net = make_net(cell, architecture, hidden_size=8)
    graph = NeuronGraph(net)
    dead = [1, 6]  # in the top layer: no read-out column, no recurrent column
    masks = {}
    for t in graph.tensors:
        keep = np.ones(tuple(t.weight.shape), dtype=bool)
        if t.kind == "readout" or (t.kind == "recurrent" and t.dst == len(graph.layers) - 1):
            keep[:, dead] = False
        if t.kind == "top_down":  # nothing from the top layer's dead units feeds back
            keep[:, dead] = False
        masks[t.name] = keep
    graph.apply_masks(masks)
    net.eval()
    small, report = compact(net)
    assert list(report.removed[-1]) == dead
    assert report.compact_sizes[-1] == 6
    x = torch.randn(3, 5, 4)
    with torch.no_grad():
        np.testing.assert_allclose(small(x).numpy(), net(x).numpy(), atol=ATOL)
    for engine in ENGINES:
        fast = to_inference(net, engine=engine)
        assert fast.hidden_sizes[-1] == 6
        outputs, hidden = reference(net, x)
        np.testing.assert_allclose(fast.forward(x).numpy(), outputs, atol=ATOL)
        # transform exposes every top-layer unit, the removed ones included
        np.testing.assert_allclose(fast.encode(x)[1].numpy(), hidden, atol=ATOL)


@pytest.mark.parametrize("cell", CELLS)
def test_units_with_all_incoming_pruned_keep_their_bias_driven_trajectory(cell):
    """Such a unit is input-independent but not constant (it starts at zero); it must be kept."""
    net = make_net(cell, "single", hidden_size=6)
    rows = np.arange(net.encoder.weight_hh_l0.shape[0]).reshape(-1, 6)[:, 2]  # unit 2, all gates
    keep_hh = np.ones(tuple(net.encoder.weight_hh_l0.shape), dtype=bool)
    keep_hh[rows] = False
    keep_hh[:, 2] = False
    keep_hh[rows[0], 2] = True  # a self-connection: its own past is its only input
    keep_ih = np.ones(tuple(net.encoder.weight_ih_l0.shape), dtype=bool)
    keep_ih[rows] = False
    NeuronGraph(net).apply_masks({"encoder.weight_hh_l0": keep_hh,
                                  "encoder.weight_ih_l0": keep_ih})
    net.eval()
    x = torch.randn(4, 9, 4)
    with torch.no_grad():
        trajectory = net.encode(x)[0][:, :, 2].numpy()
    np.testing.assert_allclose(trajectory, trajectory[[0]].repeat(4, 0), atol=1e-6)
    assert np.ptp(trajectory[0]) > 1e-4  # it moves over time, so it cannot be folded into a bias
    small, report = compact(net)
    assert list(report.undriven[0]) == [2] and report.compact_sizes == [6]
    for engine in ENGINES:
        np.testing.assert_allclose(to_inference(net, engine=engine).forward(x).numpy(),
                                   reference(net, x)[0], atol=ATOL)


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("cell", CELLS)
def test_all_pruned_layer(cell, engine):
    # Stacked: layer 0 fully pruned and nothing feeds forward from it: it is removed whole and
    # layer 1 runs on biases alone.
    net = make_net(cell, "stacked-2")
    graph = NeuronGraph(net)
    graph.apply_masks({t.name: np.zeros(tuple(t.weight.shape), dtype=bool)
                       for t in graph.tensors if t.dst == 0 or t.kind == "feedforward"})
    net.eval()
    fast = to_inference(net, engine=engine)
    assert fast.hidden_sizes == [0, 10]
    x = torch.randn(3, 5, 4)
    outputs, hidden = reference(net, x)
    np.testing.assert_allclose(fast.forward(x).numpy(), outputs, atol=ATOL)
    np.testing.assert_allclose(fast.encode(x)[1].numpy(), hidden, atol=ATOL)
    # Top-down: the recurrent and top-down weights of every layer fully pruned.
    net = make_net(cell, "top-down-3")
    graph = NeuronGraph(net)
    graph.apply_masks({t.name: np.zeros(tuple(t.weight.shape), dtype=bool)
                       for t in graph.tensors_in("recurrent")})
    net.eval()
    np.testing.assert_allclose(to_inference(net, engine=engine).forward(x).numpy(),
                               reference(net, x)[0], atol=ATOL)


def test_fully_pruned_readout_leaves_a_constant_net():
    net = make_net("lstm", "stacked-2")
    NeuronGraph(net).apply_masks({"readout.weight": np.zeros((3, 10), dtype=bool)})
    net.eval()
    x = torch.randn(4, 5, 4)
    for engine in ENGINES:
        fast = to_inference(net, engine=engine)
        assert fast.hidden_sizes == [0, 0]
        np.testing.assert_allclose(fast.forward(x).numpy(), reference(net, x)[0], atol=ATOL)
        # transform still returns every top-layer unit, from the uncompacted top layer
        np.testing.assert_allclose(fast.encode(x)[1].numpy(), reference(net, x)[1], atol=ATOL)


# -- estimators and sparsifiers ----------------------------------------------------------------
@pytest.fixture(scope="module")
def digits_pruner():
    """A lattice-pruned digits classifier (scope "all", so compaction has work) and its outputs."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    X, y = load_digits_sequences(return_X_y=True)
    X, y = X[:600], y[:600]
    labels = np.array([f"digit-{k}" for k in y])  # classes_ must map indices back to labels
    pruner = LatticePruner(RNNClassifier(hidden_size=24, max_epochs=3, random_state=0),
                           sparsity=0.9, n_rounds=2, fine_tune_epochs=1, scope="all",
                           random_state=0).fit(X, labels)
    expected = {"predict": pruner.predict(X), "predict_proba": pruner.predict_proba(X),
                "decision_function": pruner.decision_function(X),
                "transform": pruner.transform(X)}
    torch.set_num_threads(threads)
    return pruner, X, expected


@pytest.mark.parametrize("engine", ENGINES)
def test_pruner_to_inference_predicts_like_the_pruner(digits_pruner, engine):
    pruner, X, expected = digits_pruner
    fast = pruner.to_inference(engine=engine)
    np.testing.assert_array_equal(fast.classes_, pruner.classes_)
    np.testing.assert_array_equal(fast.predict(X), expected["predict"])
    np.testing.assert_allclose(fast.predict_proba(X), expected["predict_proba"], atol=1e-5)
    np.testing.assert_allclose(fast.decision_function(X), expected["decision_function"],
                               atol=1e-4)
    np.testing.assert_allclose(fast.transform(X), expected["transform"], atol=1e-5)
    flat = X.reshape(len(X), -1)  # the estimator's 2-D form, (n_samples, n_steps * n_features)
    np.testing.assert_array_equal(fast.predict(flat), expected["predict"])


def test_to_inference_is_a_prediction_copy_of_the_net(digits_pruner):
    """Same class and parameters, its own predict and score; the source is left as it was."""
    pruner, X, expected = digits_pruner
    net = pruner.net_
    module, history = net.module_, len(net.history_)
    state = {key: value.clone() for key, value in module.state_dict().items()}
    fast = pruner.to_inference()
    assert type(fast) is type(net) and is_classifier(fast)
    assert isinstance(fast.module_, FastRecurrentNet) and fast.module_ is not module
    assert len(fast.module_.layer_engines) == len(fast.module_.hidden_sizes) == 1
    assert fast.get_params()["hidden_size"] == net.hidden_size == 24
    y = np.roll(expected["predict"], 1)
    assert fast.score(X, y) == pruner.score(X, y) < 1.0 == fast.score(X, expected["predict"])
    with pytest.raises(RuntimeError, match="cannot continue training"):
        fast.partial_fit(X[:20], expected["predict"][:20])
    assert net.module_ is module and len(net.history_) == history
    assert net.optimizer_ is not None and fast.optimizer_ is None
    assert module.state_dict().keys() == state.keys()
    for key, value in module.state_dict().items():
        assert torch.equal(value, state[key]), key
    np.testing.assert_array_equal(pruner.predict(X), expected["predict"])


def test_small_chunks_give_the_same_predictions(digits_pruner):
    pruner, X, expected = digits_pruner
    np.testing.assert_array_equal(to_inference(pruner, batch_size=7).predict(X[:50]),
                                  expected["predict"][:50])


def test_skorch_regressor():
    X, y = make_adding_problem(120, 8, random_state=0)
    reg = RNNRegressor(cell="rnn_tanh", hidden_size=12, max_epochs=2, random_state=0).fit(X, y)
    graph = NeuronGraph(reg.module_)
    graph.apply_masks({t.name: np.random.default_rng(0).random(tuple(t.weight.shape)) > 0.5
                       for t in graph.tensors_in("recurrent")})
    fast = to_inference(reg, engine="sparse")
    assert type(fast) is RNNRegressor and is_regressor(fast)
    assert fast.predict(X).shape == reg.predict(X).shape == (120,)
    np.testing.assert_allclose(fast.predict(X), reg.predict(X), atol=1e-5)
    assert fast.score(X, y) == pytest.approx(reg.score(X, y), abs=1e-5)
    with pytest.raises(AttributeError, match="predict_proba"):
        fast.predict_proba(X)
    copied = pickle.loads(pickle.dumps(fast))
    np.testing.assert_array_equal(copied.predict(X), fast.predict(X))
    # fit starts over, as for any estimator: a dense net trained from the parameters
    assert isinstance(fast.fit(X, y).module_, RecurrentNet)


# -- third-party torch modules -----------------------------------------------------------------
@pytest.mark.parametrize("engine", ENGINES)
def test_third_party_torch_lstm(engine):
    torch.manual_seed(0)
    lstm = torch.nn.LSTM(4, 12, num_layers=2)  # sequence-first, as torch's default
    prune.l1_unstructured(lstm, "weight_hh_l0", amount=0.9)
    prune.random_unstructured(lstm, "weight_ih_l1", amount=0.5)
    x = torch.randn(7, 3, 4)  # (steps, batch, features)
    with torch.no_grad():
        expected = lstm(x)[0].numpy()
    fast = to_inference(lstm, engine=engine)
    np.testing.assert_allclose(fast.forward(x).numpy(), expected, atol=ATOL)
    np.testing.assert_allclose(fast.encode(x)[1].numpy(), expected[-1],
                               atol=ATOL)
    with pytest.raises(AttributeError, match="forward"):
        fast.predict(x.numpy())


def test_third_party_gru_without_bias():
    torch.manual_seed(1)
    gru = torch.nn.GRU(3, 9, batch_first=True, bias=False)
    prune.random_unstructured(gru, "weight_hh_l0", amount=0.95)
    x = torch.randn(2, 6, 3)
    with torch.no_grad():
        expected = gru(x)[0].numpy()
    for engine in ENGINES:
        np.testing.assert_allclose(to_inference(gru, engine=engine).forward(x).numpy(),
                                   expected, atol=ATOL)


# -- bad input ---------------------------------------------------------------------------------
def test_unfitted_objects_raise_not_fitted():
    with pytest.raises(NotFittedError):
        to_inference(RNNClassifier())
    with pytest.raises(NotFittedError):
        LatticePruner(RNNClassifier()).to_inference()


def test_bad_arguments_and_modules():
    net = make_net("lstm", "single")
    with pytest.raises(ValueError, match="engine='fast' is not valid"):
        to_inference(net, engine="fast")
    with pytest.raises(ValueError, match="batch_size"):
        to_inference(net, batch_size=0)
    with pytest.raises(TypeError, match="Linear"):
        to_inference(torch.nn.Linear(3, 2))
    with pytest.raises(TypeError, match="str"):
        to_inference("net")
    with pytest.raises(ValueError, match="[Bb]idirectional"):
        to_inference(torch.nn.LSTM(3, 4, bidirectional=True))


def test_bad_input_is_rejected_like_the_estimator(digits_pruner):
    pruner, X, _ = digits_pruner
    fast = pruner.to_inference()
    for bad in (X[:, :, :5], X[:4].reshape(4, -1)[:, :-3], X[:2, None], np.zeros((0, 8, 8))):
        with pytest.raises(ValueError) as expected:
            pruner.predict(bad)
        with pytest.raises(ValueError) as got:
            fast.predict(bad)
        assert str(got.value) == str(expected.value)
    nan = X[:3].copy()
    nan[0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        fast.predict(nan)
    with pytest.raises(ValueError, match="3-D input with 8 features"):
        fast.forward(torch.zeros(2, 8, 5))


def test_every_estimator_has_to_inference(small_digits):
    from sklearn.exceptions import NotFittedError
    from latticeprune import RNNClassifier
    X, y = small_digits
    with pytest.raises(NotFittedError):
        RNNClassifier().to_inference()
    dense = RNNClassifier(hidden_size=6, max_epochs=1, random_state=0).fit(X, y)
    fast = dense.to_inference(engine="dense", batch_size=50)
    assert type(fast.module_).__name__ == "FastRecurrentNet" and fast.batch_size == 50
    np.testing.assert_allclose(fast.predict_proba(X), dense.predict_proba(X), atol=1e-5)
