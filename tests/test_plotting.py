"""Every plot rendered headless (Agg), checking what is drawn."""

import copy
import sys
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import Pipeline

from latticeprune import LatticePruner, ModuliRegularizer, RNNClassifier
from latticeprune.datasets import make_navigation_task, place_cell_codes
from latticeprune.moduli import Klein, Torus, get_space
from latticeprune.neuron_graph import NeuronGraph

try:
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt
except ImportError:  # the plots are an optional extra
    plt = None

from latticeprune import plotting  # noqa: E402  (imports without matplotlib too)
from latticeprune.plotting.embedding import flat_segments  # noqa: E402

needs_matplotlib = pytest.mark.skipif(plt is None, reason="matplotlib is not installed "
                                                           "(pip install latticeprune[plots])")


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread():
    """Tiny nets: one intra-op thread is fastest, and far faster on a busy machine."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(autouse=True)
def render_and_close_figures():
    """Every figure a test made must render; then it is closed."""
    yield
    if plt is not None:
        for number in plt.get_fignums():
            plt.figure(number).canvas.draw()
        plt.close("all")


@pytest.fixture(scope="module")
def pruner(small_digits):
    net = RNNClassifier(hidden_size=8, num_layers=2, cell="rnn_tanh", max_epochs=2)
    return LatticePruner(net, sparsity=0.6, backbone=0.85, n_rounds=1, fine_tune_epochs=1,
                         random_state=0).fit(*small_digits)


def fit_regularizer(data, moduli, hidden_size=10, **params):
    net = RNNClassifier(hidden_size=hidden_size, max_epochs=2)
    return ModuliRegularizer(net, moduli=moduli, target_sparsity=0.8, random_state=0,
                             **params).fit(*data)


@pytest.fixture(scope="module")
def regularizers(small_digits):
    return {m: fit_regularizer(small_digits, m) for m in ("circle", "torus", "klein", "sphere")}


def test_missing_matplotlib_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.setitem(sys.modules, "matplotlib.pyplot", None)
    task = make_navigation_task(2, n_steps=3, n_place_cells=4, random_state=0)
    with pytest.raises(ImportError, match=r"pip install latticeprune\[plots\]"):
        plotting.plot_trajectories(task)


# -- accuracy against sparsity --------------------------------------------------------------------
class Constant(ClassifierMixin, BaseEstimator):
    """Learns nothing, predicts class 0; subclasses define a known ``score``."""

    def fit(self, X, y):
        self.classes_ = np.unique(y)
        return self

    def predict(self, X):
        return np.zeros(len(X), dtype=int)


class FixedScore(Constant):
    """Scores 1 - sparsity * cost[strategy], whatever the data: known curves."""

    cost = {"lattice": 0.1, "magnitude": 0.3}

    def __init__(self, sparsity=0.5, strategy="lattice"):
        self.sparsity = sparsity
        self.strategy = strategy

    def score(self, X, y):
        return 1.0 - (self.sparsity or 0.0) * self.cost[self.strategy]


class FixedScoreModuli(FixedScore):
    def __init__(self, target_sparsity=0.9):
        self.target_sparsity = target_sparsity

    def score(self, X, y):
        return 0.5 + 0.1 * self.target_sparsity


@pytest.fixture(scope="module")
def fixed_search():
    grid = [{"step": [FixedScore()], "step__sparsity": [0.8, 0.2, 0.5],
             "step__strategy": ["lattice", "magnitude"]},
            {"step": [FixedScoreModuli()], "step__target_sparsity": [0.9, 0.5]}]
    X, y = np.zeros((20, 2)), np.arange(20) % 2
    return GridSearchCV(Pipeline([("step", FixedScore())]), grid, cv=2).fit(X, y)


def curves_by_label(ax):
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    return {label: container.lines[0] for label, container in zip(labels, ax.containers)}


@needs_matplotlib
def test_sparsity_curves_one_per_strategy_with_nested_names(fixed_search):
    ax = plotting.plot_sparsity_curves(fixed_search)
    curves = curves_by_label(ax)
    assert set(curves) == {"step=FixedScore, strategy=lattice",
                           "step=FixedScore, strategy=magnitude", "step=FixedScoreModuli"}
    for strategy, cost in FixedScore.cost.items():
        line = curves[f"step=FixedScore, strategy={strategy}"]
        np.testing.assert_array_equal(line.get_xdata(), [0.2, 0.5, 0.8])
        np.testing.assert_allclose(line.get_ydata(), 1 - np.array([0.2, 0.5, 0.8]) * cost)
    moduli = curves["step=FixedScoreModuli"]
    np.testing.assert_array_equal(moduli.get_xdata(), [0.5, 0.9])
    np.testing.assert_allclose(moduli.get_ydata(), [0.55, 0.59])
    assert ax.get_xlabel().startswith("sparsity / target_sparsity")
    assert "score" in ax.get_ylabel()


@needs_matplotlib
def test_sparsity_curves_group_by_takes_the_best_candidate_per_sparsity(fixed_search):
    with pytest.warns(UserWarning, match="2 of 8 candidates"):
        ax = plotting.plot_sparsity_curves(fixed_search, sparsity_param="step__sparsity",
                                           group_by="step")
    (label, line), = curves_by_label(ax).items()
    assert label == "FixedScore"
    np.testing.assert_allclose(line.get_ydata(), 1 - np.array([0.2, 0.5, 0.8]) * 0.1)


@needs_matplotlib
def test_sparsity_curves_bad_arguments(fixed_search):
    with pytest.raises(ValueError, match="metric='accuracy' is not in the results"):
        plotting.plot_sparsity_curves(fixed_search, metric="accuracy")
    with pytest.raises(ValueError, match="not a searched parameter"):
        plotting.plot_sparsity_curves(fixed_search, sparsity_param="sparsity")
    with pytest.raises(ValueError, match="group_by names"):
        plotting.plot_sparsity_curves(fixed_search, group_by=["strategy"])
    results = {k: v for k, v in fixed_search.cv_results_.items() if "sparsity" not in k}
    results["params"] = [{k: v for k, v in p.items() if "sparsity" not in k}
                         for p in results["params"]]
    with pytest.raises(ValueError, match="No searched parameter is named sparsity"):
        plotting.plot_sparsity_curves(results)
    with pytest.raises(TypeError, match="GridSearchCV"):
        plotting.plot_sparsity_curves(FixedScore())


@needs_matplotlib
def test_sparsity_curves_from_a_real_search_of_the_pruner(small_digits):
    pruner = LatticePruner(RNNClassifier(hidden_size=6, max_epochs=1), n_rounds=1,
                           fine_tune_epochs=0, random_state=0)
    search = GridSearchCV(pruner, {"sparsity": [0.3, 0.7], "strategy": ["lattice", "random"]},
                          cv=2, scoring={"acc": "accuracy", "bal": "balanced_accuracy"},
                          refit="bal").fit(*small_digits)
    ax = plotting.plot_sparsity_curves(search)
    assert ax.get_legend().get_title().get_text() == "strategy"
    curves = curves_by_label(ax)
    assert set(curves) == {"lattice", "random"}
    results = search.cv_results_
    for strategy, line in curves.items():
        rows = [i for i, p in enumerate(results["params"]) if p["strategy"] == strategy]
        np.testing.assert_allclose(line.get_ydata(), results["mean_test_bal"][rows])
    assert "bal" in ax.get_ylabel()
    acc = plotting.plot_sparsity_curves(search, metric="acc")
    assert "acc" in acc.get_ylabel()


class Wrapper(Constant):
    """A meta-estimator: its repr nests the wrapped estimator's."""

    def __init__(self, estimator=None, sparsity=0.5, adjacency="binary"):
        self.estimator = estimator
        self.sparsity = sparsity
        self.adjacency = adjacency

    def score(self, X, y):
        return 1.0 - self.sparsity * (0.1 if self.adjacency == "binary" else 0.2)


@needs_matplotlib
def test_sparsity_curve_labels_never_hold_an_estimator_repr():
    """Two configurations of one class read as the class and what differs, not as reprs."""
    grid = {"step": [Wrapper(FixedScore(strategy="lattice"), adjacency="binary"),
                     Wrapper(FixedScore(strategy="magnitude"), adjacency="continuous"),
                     FixedScoreModuli()],
            "step__sparsity": [0.2, 0.8]}
    grid = [dict(grid, step=grid["step"][:2]),
            {"step": grid["step"][2:], "step__target_sparsity": [0.5, 0.9]}]
    X, y = np.zeros((20, 2)), np.arange(20) % 2
    search = GridSearchCV(Pipeline([("step", FixedScore())]), grid, cv=2).fit(X, y)
    ax = plotting.plot_sparsity_curves(search)
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels == ["Wrapper adjacency=binary strategy=lattice",
                      "Wrapper adjacency=continuous strategy=magnitude", "FixedScoreModuli"]
    assert not any("(" in label for label in labels)
    assert ax.get_legend().get_title().get_text() == "step"
    ax.figure.canvas.draw()
    assert ax.get_legend().get_window_extent().width < ax.figure.bbox.width


# -- connectivity ---------------------------------------------------------------------------------
def irreducible_first(pruner):
    order = plotting.neuron_order(pruner, by="lattice")
    verdict = np.concatenate(pruner.meet_irreducible_)
    centrality = np.concatenate(pruner.centrality_)
    for layer, irreducible in zip(NeuronGraph(pruner).layers, pruner.meet_irreducible_):
        block = order[layer.offset:layer.offset + layer.size]
        k = int(irreducible.sum())
        assert verdict[block[:k]].all() and not verdict[block[k:]].any()
        for group in (block[:k], block[k:]):
            assert np.all(np.diff(centrality[group]) <= 0)
    return order


@needs_matplotlib
def test_connectivity_before_and_after_in_lattice_order(pruner):
    order = irreducible_first(pruner)
    fig = plotting.plot_connectivity(pruner)
    before_ax, after_ax, colorbar = fig.axes
    graph = NeuronGraph(pruner)
    after = graph.strength_matrix()[np.ix_(order, order)]
    np.testing.assert_array_equal(after_ax.images[0].get_array(), after)
    before = np.asarray(before_ax.images[0].get_array())
    # Before: the kept connections as they are, the pruned ones at their value when pruned
    # (an Elman cell has one weight entry per connection).
    np.testing.assert_array_equal(before[after > 0], after[after > 0])
    n_pruned = sum(int((~mask).sum()) for mask in pruner.masks_.values())
    assert n_pruned > 0
    assert ((before > 0) & (after == 0)).sum() == n_pruned
    assert before_ax.images[0].get_clim() == after_ax.images[0].get_clim()
    assert after_ax.get_title().startswith("after pruning")
    assert after_ax.get_xlabel() == "to neuron (postsynaptic)"
    assert "connection strength" in colorbar.get_ylabel()
    dashed = [l for l in after_ax.lines if l.get_linestyle() == "--"]
    solid = [l for l in after_ax.lines if l.get_linestyle() == "-"]
    closed = [layer for layer in pruner.meet_irreducible_ if 0 < layer.sum() < len(layer)]
    assert len(dashed) == 2 * len(closed)
    assert len(solid) == 2  # one boundary between the two layers, on both axes


@needs_matplotlib
def test_connectivity_against_the_dense_net(small_digits):
    dense = RNNClassifier(hidden_size=8, cell="gru", max_epochs=2, random_state=0)
    dense.fit(*small_digits)
    pruner = LatticePruner(dense, sparsity=0.5, prefit=True, n_rounds=1, fine_tune_epochs=0,
                           strategy="magnitude").fit(*small_digits)
    fig = plotting.plot_connectivity(pruner, before=dense, order=None)
    before = np.asarray(fig.axes[0].images[0].get_array())
    after = np.asarray(fig.axes[1].images[0].get_array())
    np.testing.assert_array_equal(before, NeuronGraph(dense).strength_matrix())
    kept = after > 0
    assert 0 < kept.sum() < kept.size
    # Without fine-tuning, a connection that keeps all its gate entries keeps its strength.
    lifted = np.asarray(plotting.plot_connectivity(pruner, order=None).axes[0].images[0]
                        .get_array())
    np.testing.assert_allclose(lifted, before, rtol=1e-6)
    with pytest.raises(ValueError, match="share the architecture"):
        plotting.plot_connectivity(pruner, before=RNNClassifier(hidden_size=5, max_epochs=1)
                                   .fit(*small_digits))


@needs_matplotlib
def test_connectivity_in_moduli_order_and_explicit_order(regularizers):
    reg = regularizers["torus"]
    order = plotting.neuron_order(reg, by="moduli")
    first_coordinate = reg.embedding_["encoder.l0"][order, 0]
    assert np.all(np.diff(first_coordinate) >= 0)
    fig = plotting.plot_connectivity(reg, order="moduli", show_before=False)
    assert len(fig.axes) == 2  # the map and its colour bar
    np.testing.assert_array_equal(fig.axes[0].images[0].get_array(),
                                  NeuronGraph(reg).strength_matrix()[np.ix_(order, order)])
    circle = regularizers["circle"]
    points = circle.embedding_["encoder.l0"]
    angles = np.arctan2(points[:, 1], points[:, 0])[plotting.neuron_order(circle, by="moduli")]
    assert np.all(np.diff(angles) >= 0)
    reverse = np.arange(10)[::-1]
    fig = plotting.plot_connectivity(reg, order=reverse, show_before=False)
    np.testing.assert_array_equal(fig.axes[0].images[0].get_array(),
                                  NeuronGraph(reg).strength_matrix()[::-1, ::-1])
    with pytest.raises(ValueError, match="permutation"):
        plotting.plot_connectivity(reg, order=[0, 0, 1])
    with pytest.raises(TypeError, match="LatticePruner"):
        plotting.plot_connectivity(reg, order="lattice")
    with pytest.raises(ValueError, match="by='position'"):
        plotting.neuron_order(reg, by="position")


# -- Hasse diagram --------------------------------------------------------------------------------
def hasse_parts(ax):
    from matplotlib.collections import LineCollection, PathCollection

    lines = [c for c in ax.collections if isinstance(c, LineCollection)]
    dots = [c for c in ax.collections if isinstance(c, PathCollection)]
    return lines[0], dots[0], dots[1]


@needs_matplotlib
def test_hasse_diagram_marks_the_irreducible_neurons(pruner):
    ax = plotting.plot_hasse_diagram(pruner)
    lattice = pruner.lattice_
    edges_drawn, others, irreducible = hasse_parts(ax)
    n_irreducible = int(sum(v.sum() for v in pruner.meet_irreducible_))
    assert len(irreducible.get_offsets()) == n_irreducible
    assert len(others.get_offsets()) == lattice["n_neurons"] - n_irreducible
    assert len(ax.patches) == lattice["n_components"]
    assert len(edges_drawn.get_segments()) == len(lattice["hasse_edges"])
    for segment in edges_drawn.get_segments():
        assert segment[1][1] > segment[0][1]  # the covering component is drawn above
    assert f"{n_irreducible} of {lattice['n_neurons']}" in ax.get_title()
    assert any("meet-irreducible" in t.get_text() for t in ax.get_legend().get_texts())


@needs_matplotlib
def test_hasse_diagram_layout_of_a_known_poset():
    # Components: {0, 1} below both {2} and {3, 4, 5}; {2} below {6}.
    fake = SimpleNamespace(
        lattice_={"component_labels": np.array([0, 0, 1, 2, 2, 2, 3]), "n_components": 4,
                  "hasse_edges": np.array([[0, 1], [0, 2], [1, 3]]), "backbone": 0.9,
                  "n_neurons": 7},
        meet_irreducible_=[np.array([True, False, False, True, True, False]),
                           np.array([True])])
    ax = plotting.plot_hasse_diagram(fake, annotate=True)
    _, others, irreducible = hasse_parts(ax)
    stars = np.asarray(irreducible.get_offsets())
    np.testing.assert_array_equal(np.sort(stars[:, 1]), [0, 1, 1, 2])  # neurons 0, 3, 4, 6
    dots = np.asarray(others.get_offsets())
    np.testing.assert_array_equal(np.sort(dots[:, 1]), [0, 1, 1])  # neurons 1, 2, 5
    assert [t.get_text() for t in ax.texts] == [str(i) for i in range(7)]
    assert len(ax.patches) == 4
    cyclic = copy.deepcopy(fake)
    cyclic.lattice_["hasse_edges"] = np.array([[0, 1], [1, 0]])
    with pytest.raises(ValueError, match="cycle"):
        plotting.plot_hasse_diagram(cyclic)
    with pytest.raises(TypeError, match="LatticePruner"):
        plotting.plot_hasse_diagram(RNNClassifier())


def test_dag_depth_is_the_longest_chain_and_refuses_cycles():
    from latticeprune.lattice.reachability import dag_depth

    np.testing.assert_array_equal(dag_depth(5, [[0, 1], [1, 2], [0, 2], [3, 2]]), [0, 1, 2, 0, 0])
    np.testing.assert_array_equal(dag_depth(2, np.zeros((0, 2))), [0, 0])
    for cycle in ([[0, 1], [1, 0]], [[1, 1]]):
        with pytest.raises(ValueError, match="cycle"):
            dag_depth(2, cycle)


# -- moduli embedding -----------------------------------------------------------------------------
def surviving_pairs(reg):
    strength = NeuronGraph(reg).layer_strengths(0)
    np.fill_diagonal(strength, 0)
    return np.argwhere(strength > 0)


def segment_lengths(collection):
    return np.array([np.linalg.norm(np.diff(s, axis=0), axis=1).sum()
                     for s in collection.get_segments()])


@needs_matplotlib
def test_embedding_on_the_circle(regularizers):
    reg = regularizers["circle"]
    ax = plotting.plot_moduli_embedding(reg)
    connections, neurons = ax.collections[:2]
    pairs = surviving_pairs(reg)
    assert 0 < len(pairs) < 90
    assert len(connections.get_segments()) == len(pairs)
    np.testing.assert_allclose(np.linalg.norm(neurons.get_offsets(), axis=1), 5.0)
    assert len(neurons.get_offsets()) == 10
    strongest = plotting.plot_moduli_embedding(reg, max_connections=5,
                                               ax=plt.figure().add_subplot())
    assert len(strongest.collections[0].get_segments()) == 5
    assert f"{len(pairs)} connections drawn" in ax.get_title()


@needs_matplotlib
@pytest.mark.parametrize("moduli", ["torus", "klein"])
def test_embedding_on_flat_spaces_follows_the_shortest_paths(regularizers, moduli):
    reg = regularizers[moduli]
    ax = plotting.plot_moduli_embedding(reg)
    connections = ax.collections[0]
    pairs = surviving_pairs(reg)
    pieces = connections.get_segments()
    assert len(pieces) > len(pairs)  # some paths wrap around
    ends = np.concatenate(pieces)
    assert ends.min() >= -1e-9 and ends.max() <= 10 + 1e-9
    # The pieces of every path add up to the distance in the space.
    points = reg.embedding_["encoder.l0"]
    distance = get_space(moduli).pairwise(points)
    np.testing.assert_allclose(segment_lengths(connections).sum(),
                               distance[pairs[:, 0], pairs[:, 1]].sum(), rtol=1e-9)
    assert ax.get_xlabel() == "coordinate 0"


def test_flat_paths_cross_the_sides_as_the_space_glues_them():
    pairs = np.array([[0, 0]])
    start, end = np.array([[9.5, 2.0]]), np.array([[0.5, 7.5]])
    torus, owners = flat_segments(Torus(), start, end, pairs)
    # On the torus the shortest path leaves through the bottom, then the right side: three pieces.
    assert len(torus) == 3 and (owners == 0).all()
    lengths = np.linalg.norm(torus[:, 1] - torus[:, 0], axis=1)
    np.testing.assert_allclose(lengths.sum(), np.hypot(1.0, 4.5))
    np.testing.assert_allclose(torus[-1][1], [0.5, 7.5])
    klein, _ = flat_segments(Klein(), start, end, pairs)
    # On the Klein bottle (x = 10 glued to x = 0 with y flipped) the image (10.5, 2.5) is nearer.
    assert sorted(map(tuple, np.round(np.concatenate(klein), 9))) == [
        (0.0, 7.75), (0.5, 7.5), (9.5, 2.0), (10.0, 2.25)]


@needs_matplotlib
def test_embedding_on_the_sphere(regularizers):
    reg = regularizers["sphere"]
    pairs = surviving_pairs(reg)
    ax = plotting.plot_moduli_embedding(reg)
    assert ax.name == "3d"
    ax.figure.canvas.draw()  # 3-D lines are projected when drawn
    assert len(ax.collections[0].get_segments()) == len(pairs)
    flat = plotting.plot_moduli_embedding(reg, projection="equirectangular")
    assert len(flat.collections[0].get_segments()) >= len(pairs)
    lon_lat = np.asarray(flat.collections[1].get_offsets())
    assert len(lon_lat) == 10 and np.all(np.abs(lon_lat[:, 0]) <= 180)
    assert flat.get_xlabel() == "longitude (degrees)"
    with pytest.raises(ValueError, match="projection='3d' needs"):
        plotting.plot_moduli_embedding(reg, ax=plt.figure().add_subplot())
    with pytest.raises(ValueError, match="projection='mercator'"):
        plotting.plot_moduli_embedding(reg, projection="mercator")


@needs_matplotlib
def test_embedding_variants_and_errors(small_digits, regularizers):
    two = fit_regularizer(small_digits, "torus", hidden_size=6, two_embeddings=True)
    ax = plotting.plot_moduli_embedding(two)
    pre, post = ax.collections[1:3]
    assert len(pre.get_offsets()) == len(post.get_offsets()) == 6
    torus3 = fit_regularizer(small_digits, "torus", hidden_size=6, space_params={"dim": 3})
    ax = plotting.plot_moduli_embedding(torus3, dims=(0, 2))
    assert ax.get_ylabel() == "coordinate 2"
    with pytest.raises(ValueError, match="dims"):
        plotting.plot_moduli_embedding(torus3, dims=(0, 3))
    wrapped = LatticePruner(regularizers["circle"].estimator, prefit=False)
    wrapped.estimator_ = regularizers["circle"]  # a pruner wrapping the regularizer
    assert len(plotting.plot_moduli_embedding(wrapped).collections[1].get_offsets()) == 10
    standard = fit_regularizer(small_digits, "standard", hidden_size=4)
    with pytest.raises(ValueError, match="no geometry"):
        plotting.plot_moduli_embedding(standard)
    with pytest.raises(ValueError, match="layer=3 is out of range"):
        plotting.plot_moduli_embedding(regularizers["circle"], layer=3)
    with pytest.raises(ValueError, match="not a recurrent layer"):
        plotting.plot_moduli_embedding(regularizers["circle"], layer="top")


# -- navigation -----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def task():
    return make_navigation_task(8, n_steps=15, n_place_cells=32, random_state=0)


@needs_matplotlib
def test_trajectories(task):
    ax = plotting.plot_trajectories(task, n_trajectories=3)
    assert len(ax.lines) == 3
    for k, line in enumerate(ax.lines):
        xy = np.column_stack([line.get_xdata(), line.get_ydata()])
        np.testing.assert_array_equal(xy[0], task.init_positions[k])
        np.testing.assert_array_equal(xy[1:], task.positions[k])
    assert len(ax.collections[-1].get_offsets()) == 3  # start markers
    assert len(ax.patches) == 1 and ax.patches[0].get_width() == task.box_size
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("x (m)", "y (m)")

    both = plotting.plot_trajectories(task, n_trajectories=2, predicted_codes=task.targets,
                                      show_centres=True, ax=plt.figure().add_subplot())
    assert len(both.lines) == 4
    solid, dashed = both.lines[0], both.lines[2]
    assert dashed.get_linestyle() == "--" and dashed.get_color() == solid.get_color()
    assert len(both.collections[0].get_offsets()) == 32  # place-cell centres
    with pytest.raises(ValueError, match="predicted_codes"):
        plotting.plot_trajectories(task, predicted_codes=task.targets[:, :3])
    with pytest.raises(TypeError, match="make_navigation_task"):
        plotting.plot_trajectories({"positions": task.positions})


@needs_matplotlib
def test_place_cell_fields(task):
    fig = plotting.plot_place_cell_fields(task, cells=[3, 7], resolution=20)
    assert len(fig.axes) == 3  # two fields and the colour bar
    grid = np.linspace(-task.box_size / 2, task.box_size / 2, 20)
    xx, yy = np.meshgrid(grid, grid)
    codes = place_cell_codes(np.stack([xx, yy], axis=-1), task.centres,
                             width=task.place_cell_width)
    for ax, cell in zip(fig.axes, [3, 7]):
        np.testing.assert_allclose(ax.images[0].get_array(), codes[..., cell])
        marker = ax.lines[0]
        np.testing.assert_allclose([marker.get_xdata()[0], marker.get_ydata()[0]],
                                   task.centres[cell])
        assert ax.get_title() == f"place cell {cell}"
    spread = plotting.plot_place_cell_fields(task, cells=3)
    assert [ax.get_title() for ax in spread.axes[:3]] == [
        "place cell 0", "place cell 16", "place cell 31"]
    with pytest.raises(ValueError, match="indices"):
        plotting.plot_place_cell_fields(task, cells=[40])
    with pytest.raises(ValueError, match="between 1 and 32"):
        plotting.plot_place_cell_fields(task, cells=0)
