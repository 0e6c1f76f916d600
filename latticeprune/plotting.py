"""Pictures for notebooks: sparsity curves, connectivity, lattice, moduli embedding, navigation.

Needs matplotlib (``pip install latticeprune[plots]``), imported when a function is called.
Every function draws into the ``ax`` (or ``fig``) it is given, or into a new figure, and
returns the matplotlib Axes or Figure so that it can be styled further or saved.

* :func:`plot_sparsity_curves`: mean CV score against sparsity, one curve per strategy, from
  a fitted ``GridSearchCV``.
* :func:`plot_connectivity`: neuron-to-neuron connection strengths before and after pruning,
  neurons ordered by lattice role or by position in the moduli space (see :func:`neuron_order`).
* :func:`plot_hasse_diagram`: the backbone poset of a :class:`~latticeprune.LatticePruner`, with
  its meet-irreducible neurons marked.
* :func:`plot_moduli_embedding`: the neurons of a :class:`~latticeprune.ModuliRegularizer` at
  their points of the space, with the surviving connections drawn on it.
* :func:`plot_trajectories`, :func:`plot_place_cell_fields`: the navigation task.
"""

import copy
import numbers
import warnings

import numpy as np

from .datasets import decode_position, place_cell_codes
from .moduli import get_space
from .neuron_graph import NeuronGraph

__all__ = [
    "neuron_order",
    "plot_sparsity_curves",
    "plot_connectivity",
    "plot_hasse_diagram",
    "plot_moduli_embedding",
    "plot_trajectories",
    "plot_place_cell_fields",
]

#: Parameter names (after the last ``__``) read as the sparsity of a grid-search candidate.
SPARSITY_PARAMS = ("sparsity", "target_sparsity")
#: Spaces :func:`plot_moduli_embedding` can draw.
DRAWABLE_SPACES = ("circle", "klein", "sphere", "torus", "torus6")

_IRREDUCIBLE_COLOR = "crimson"
_NEURON_COLOR = "0.55"


def _pyplot():
    try:
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise ImportError("latticeprune.plotting needs matplotlib, an optional dependency: "
                          "pip install latticeprune[plots]  (or: pip install matplotlib)") from exc
    return plt


def _axes(ax, **subplot_kw):
    if ax is not None:
        return ax
    _, ax = _pyplot().subplots(subplot_kw=subplot_kw or None)
    return ax


def _find(obj, attribute, needed_by, hint):
    """``obj`` or the first ``estimator_`` inside it that has ``attribute``."""
    current = obj
    for _ in range(20):
        if current is None:
            break
        if hasattr(current, attribute):
            return current
        current = getattr(current, "estimator_", None)
    raise TypeError(f"{needed_by} needs a fitted {hint} (an object with {attribute}); got "
                    f"{type(obj).__name__}" + ("" if hasattr(obj, "estimator_") else
                                               " (is it fitted?)") + ".")


# -- accuracy against sparsity --------------------------------------------------------------------
def _short(name):
    return name.rsplit("__", 1)[-1]


def _label(value):
    if hasattr(value, "get_params"):
        return type(value).__name__
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def plot_sparsity_curves(search, *, sparsity_param=None, group_by=None, metric=None, ax=None):
    """Mean cross-validated score against sparsity, one curve per strategy.

    Parameters
    ----------
    search : fitted ``GridSearchCV`` / ``RandomizedSearchCV``, or its ``cv_results_`` dict
    sparsity_param : str or list of str or None, default=None
        Parameter(s) holding a candidate's sparsity, e.g. ``"sparsity"`` or
        ``"prune__target_sparsity"``. None: every parameter named ``sparsity`` or
        ``target_sparsity`` after its last ``__`` (so a grid over both sparsifiers works: each
        candidate takes the first one it has). Candidates without a sparsity value (the
        parameter is absent or None) are left out with a ``UserWarning``.
    group_by : list of str or None, default=None
        Parameters whose values make a curve (its label reads ``name=value``). None: every
        other parameter whose value varies over the candidates, e.g. ``strategy``,
        ``adjacency``, or a pipeline step that is searched over (labelled by class name). When
        parameters outside ``group_by`` vary too, each point is the best candidate at that
        sparsity.
    metric : str or None, default=None
        Scorer name for multi-metric searches (``mean_test_<metric>``). None: ``"score"``, or
        the search's ``refit`` metric.
    ax : matplotlib Axes or None, default=None

    Returns
    -------
    ax : matplotlib Axes
        One errorbar container per curve (mean +- standard deviation over the CV splits),
        in ``ax.containers``.

    Examples
    --------
    >>> from sklearn.model_selection import GridSearchCV
    >>> from latticeprune import LatticePruner, RNNClassifier
    >>> from latticeprune.datasets import load_digits_sequences
    >>> from latticeprune.plotting import plot_sparsity_curves
    >>> X, y = load_digits_sequences(return_X_y=True)
    >>> pruner = LatticePruner(RNNClassifier(hidden_size=8, max_epochs=1), n_rounds=1,
    ...                        fine_tune_epochs=0, random_state=0)
    >>> search = GridSearchCV(pruner, {"sparsity": [0.3, 0.6], "strategy": ["lattice", "random"]},
    ...                       cv=2).fit(X[:200], y[:200])
    >>> ax = plot_sparsity_curves(search)
    >>> sorted(text.get_text() for text in ax.get_legend().get_texts())
    ['lattice', 'random']
    """
    results = getattr(search, "cv_results_", search)
    if not isinstance(results, dict) or "params" not in results:
        raise TypeError("plot_sparsity_curves needs a fitted GridSearchCV/RandomizedSearchCV "
                        f"or its cv_results_ dict; got {type(search).__name__}.")
    metric = _metric(search, results, metric)
    names = [key[len("param_"):] for key in results if key.startswith("param_")]
    sparsity_names = _sparsity_names(names, sparsity_param)

    candidates = results["params"]
    x = [next((params[n] for n in sparsity_names if params.get(n) is not None), None)
         for params in candidates]
    kept = [i for i, value in enumerate(x) if value is not None]
    if len(kept) < len(candidates):
        warnings.warn(f"{len(candidates) - len(kept)} of {len(candidates)} candidates have no "
                      f"value for {sparsity_names} and are not drawn.", UserWarning, stacklevel=2)
    if not kept:
        raise ValueError(f"No candidate has a value for {sparsity_names}.")

    others = [n for n in names if n not in sparsity_names]
    if group_by is None:
        group_by = [n for n in others
                    if len({repr(candidates[i].get(n)) for i in kept}) > 1]
    else:
        group_by = [group_by] if isinstance(group_by, str) else list(group_by)
        unknown = sorted(set(group_by) - set(others))
        if unknown:
            raise ValueError(f"group_by names {unknown} are not searched parameters (other than "
                             f"the sparsity); searched: {others}.")

    mean = np.asarray(results[f"mean_test_{metric}"], dtype=float)
    std = np.asarray(results[f"std_test_{metric}"], dtype=float)
    curves = {}
    for i in kept:
        key = tuple(repr(candidates[i].get(n, None)) for n in group_by)
        curves.setdefault(key, []).append(i)

    lines = []
    for key, members in curves.items():
        best = {}
        for i in members:  # the best candidate at each sparsity
            s = float(x[i])
            if s not in best or mean[i] > mean[best[s]]:
                best[s] = i
        xs = sorted(best)
        lines.append((xs, [best[s] for s in xs], candidates[members[0]]))
    labels = [_curve_label(params, group_by, metric, _label) for _, _, params in lines]
    if len(set(labels)) < len(labels):  # e.g. two differently configured LatticePruner steps
        labels = [_curve_label(params, group_by, metric, repr) for _, _, params in lines]

    ax = _axes(ax)
    for (xs, idx, _), label in zip(lines, labels):
        ax.errorbar(xs, mean[idx], yerr=std[idx], marker="o", capsize=3, label=label)
    ax.set_xlabel(f"{' / '.join(_short(n) for n in dict.fromkeys(sparsity_names))} "
                  "(fraction of pruned weights)")
    ax.set_ylabel(f"mean test {metric} (cross-validation)")
    title = ", ".join(_short(n) for n in group_by) if len(group_by) == 1 else None
    ax.legend(title=title)
    ax.grid(True, alpha=0.3)
    return ax


def _curve_label(params, group_by, metric, fmt):
    present = [n for n in group_by if n in params]
    if not group_by:
        return f"mean test {metric}"
    if len(group_by) == 1:
        return fmt(params[present[0]]) if present else "(not set)"
    return ", ".join(f"{_short(n)}={fmt(params[n])}" for n in present) or "(not set)"


def _metric(search, results, metric):
    available = sorted(key[len("mean_test_"):] for key in results if key.startswith("mean_test_"))
    if metric is None:
        refit = getattr(search, "refit", None)
        metric = "score" if "score" in available else (refit if isinstance(refit, str) else None)
    if metric not in available:
        raise ValueError(f"metric={metric!r} is not in the results; available: {available}.")
    return metric


def _sparsity_names(names, sparsity_param):
    if sparsity_param is None:
        found = [n for n in names if _short(n) in SPARSITY_PARAMS]
        if not found:
            raise ValueError(f"No searched parameter is named {' or '.join(SPARSITY_PARAMS)}; "
                             f"pass sparsity_param (searched: {names}).")
        return found
    found = [sparsity_param] if isinstance(sparsity_param, str) else list(sparsity_param)
    unknown = sorted(set(found) - set(names))
    if unknown:
        raise ValueError(f"sparsity_param {unknown} is not a searched parameter; searched: "
                         f"{names}.")
    return found


# -- neuron order and connectivity ----------------------------------------------------------------
def neuron_order(sparsifier, by="lattice"):
    """An order of all hidden neurons for pictures of the connectivity, layer by layer.

    Parameters
    ----------
    sparsifier : fitted sparsifier (or a net, with ``by=None``)
    by : {"lattice", "moduli"} or None, default="lattice"
        ``"lattice"`` (a fitted :class:`~latticeprune.LatticePruner`, possibly wrapping other
        sparsifiers): in each layer the meet-irreducible neurons first, each group by
        decreasing centrality. ``"moduli"`` (a fitted :class:`~latticeprune.ModuliRegularizer`
        inside): in each layer by position in the space; the azimuth on the circle and the
        sphere, the first coordinate (then the next) on the flat spaces. None: as numbered.

    Returns
    -------
    order : ndarray of int
        A permutation of ``range(n_neurons)``; layers stay contiguous, bottom layer first.

    Examples
    --------
    >>> from latticeprune import LatticePruner, RNNClassifier
    >>> from latticeprune.datasets import load_digits_sequences
    >>> from latticeprune.plotting import neuron_order
    >>> X, y = load_digits_sequences(return_X_y=True)
    >>> pruner = LatticePruner(RNNClassifier(hidden_size=6, max_epochs=1), n_rounds=1,
    ...                        fine_tune_epochs=0, random_state=0).fit(X[:100], y[:100])
    >>> sorted(neuron_order(pruner)) == list(range(6))
    True
    """
    graph = NeuronGraph(sparsifier)
    if by is None:
        return np.arange(graph.n_neurons)
    if by == "lattice":
        fitted = _find(sparsifier, "meet_irreducible_", "neuron_order(by='lattice')",
                       "LatticePruner")
        keys = [(~np.asarray(irr, dtype=bool), -np.asarray(cen, dtype=float))
                for irr, cen in zip(fitted.meet_irreducible_, fitted.centrality_)]
        per_layer = [np.lexsort((central, not_irreducible)) for not_irreducible, central in keys]
    elif by == "moduli":
        fitted = _find(sparsifier, "embedding_", "neuron_order(by='moduli')", "ModuliRegularizer")
        space = get_space(fitted.moduli, **(fitted.space_params or {}))
        per_layer = []
        for layer in graph.layers:
            points = fitted.embedding_[layer.name]
            points = np.asarray(points[0] if isinstance(points, tuple) else points, dtype=float)
            per_layer.append(_position_order(points, space.name))
    else:
        raise ValueError(f"by={by!r} is not valid; use 'lattice', 'moduli' or None.")
    if len(per_layer) != len(graph.layers):
        raise ValueError(f"The sparsifier describes {len(per_layer)} layers; the net has "
                         f"{len(graph.layers)}.")
    return np.concatenate([layer.offset + order for layer, order in zip(graph.layers, per_layer)])


def _position_order(points, space_name):
    if space_name in ("circle", "sphere"):
        return np.argsort(np.arctan2(points[:, 1], points[:, 0]), kind="stable")
    return np.lexsort(points.T[::-1])


def _dense_strengths(graph):
    """Strengths of ``graph``'s net with every mask lifted: the weights as they were when pruned."""
    graph.freeze()
    dense = NeuronGraph(copy.deepcopy(graph.module))
    import torch

    with torch.no_grad():
        for t in dense.tensors:
            if t.is_pruned:
                getattr(t.owner, t.param + "_mask").fill_(1)
    return dense.freeze().strength_matrix()


def plot_connectivity(sparsifier, *, before=None, order="lattice", show_before=True, cmap="magma",
                      fig=None):
    """Heat maps of the neuron-to-neuron connection strengths before and after pruning.

    Entry ``[i, j]`` is the strength of the connection from neuron ``i`` (row) to neuron ``j``
    (column): the L2 norm over gate blocks of the weights, recurrent, layer-to-layer and
    top-down connections together (as :meth:`NeuronGraph.strength_matrix` computes them). Both
    maps share one colour scale, so pruned connections go dark.

    Parameters
    ----------
    sparsifier : fitted sparsifier
        E.g. a :class:`~latticeprune.LatticePruner` or :class:`~latticeprune.ModuliRegularizer`.
    before : fitted net or sparsifier or None, default=None
        The dense net to compare with (same architecture), e.g. the net given to the sparsifier
        with ``prefit=True``. None: the pruned net's own weights with the masks lifted, i.e.
        each removed weight at its value when it was pruned (fine-tuning has moved the others).
    order : {"lattice", "moduli"} or None or array-like of int, default="lattice"
        Order of the neurons on both axes (see :func:`neuron_order`), or an explicit
        permutation. With ``"lattice"`` a dashed line closes the block of meet-irreducible
        neurons in each layer. Solid lines separate layers.
    show_before : bool, default=True
        False draws the pruned net only.
    cmap : str, default="magma"
    fig : matplotlib Figure or None, default=None

    Returns
    -------
    fig : matplotlib Figure
        Axes ``fig.axes[:n]`` are the heat maps ("before", "after"), then their colour bar.

    Examples
    --------
    >>> from latticeprune import LatticePruner, RNNClassifier
    >>> from latticeprune.datasets import load_digits_sequences
    >>> from latticeprune.plotting import plot_connectivity
    >>> X, y = load_digits_sequences(return_X_y=True)
    >>> pruner = LatticePruner(RNNClassifier(hidden_size=6, max_epochs=1), n_rounds=1,
    ...                        fine_tune_epochs=0, random_state=0).fit(X[:100], y[:100])
    >>> fig = plot_connectivity(pruner)
    >>> [ax.get_title().split(" (")[0] for ax in fig.axes[:2]]
    ['before pruning', 'after pruning']
    """
    plt = _pyplot()
    graph = NeuronGraph(sparsifier)
    after = graph.strength_matrix()
    if before is None:
        dense = _dense_strengths(graph)
    else:
        dense = NeuronGraph(before).strength_matrix()
        if dense.shape != after.shape:
            raise ValueError(f"before has {dense.shape[0]} neurons, the sparsifier's net "
                             f"{after.shape[0]}; they must share the architecture.")
    if isinstance(order, str) or order is None:
        permutation = neuron_order(sparsifier, by=order)
    else:
        permutation = np.asarray(order)
        if sorted(permutation.tolist()) != list(range(graph.n_neurons)):
            raise ValueError(f"order must be a permutation of range({graph.n_neurons}).")
    panels = [("before pruning", dense)] if show_before else []
    panels.append(("after pruning", after))

    if fig is None:
        fig = plt.figure(figsize=(4.6 * len(panels) + 0.8, 4.4), layout="constrained")
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    vmax = max(float(dense.max()), float(after.max())) or 1.0
    connected = np.zeros_like(after, dtype=bool)
    for matrix in (dense, after):
        connected |= matrix > 0
    n_possible = max(int(connected.sum()), 1)
    for ax, (title, matrix) in zip(axes, panels):
        shown = matrix[np.ix_(permutation, permutation)]
        image = ax.imshow(shown, cmap=cmap, vmin=0.0, vmax=vmax, interpolation="nearest")
        removed = 1.0 - (matrix > 0).sum() / n_possible
        ax.set_title(f"{title} ({removed:.0%} of connections removed)")
        ax.set_xlabel("to neuron (postsynaptic)")
        ax.set_ylabel("from neuron (presynaptic)")
        _draw_boundaries(ax, graph, sparsifier, order)
    fig.colorbar(image, ax=list(axes), label="connection strength (L2 norm over gates)",
                 shrink=0.85)
    return fig


def _draw_boundaries(ax, graph, sparsifier, order):
    for layer in graph.layers[1:]:
        for line in (ax.axhline, ax.axvline):
            line(layer.offset - 0.5, color="white", linewidth=1.2)
    if isinstance(order, str) and order == "lattice":
        fitted = _find(sparsifier, "meet_irreducible_", "plot_connectivity", "LatticePruner")
        for layer, verdict in zip(graph.layers, fitted.meet_irreducible_):
            k = int(np.sum(verdict))
            if 0 < k < layer.size:
                for line in (ax.axhline, ax.axvline):
                    line(layer.offset + k - 0.5, color="cyan", linestyle="--", linewidth=1.0)


# -- the Hasse diagram ----------------------------------------------------------------------------
def _depths(n_components, edges):
    """Longest-path depth of every component in the cover relation (minimal elements: 0)."""
    depth = np.zeros(n_components, dtype=int)
    children = [[] for _ in range(n_components)]
    indegree = np.zeros(n_components, dtype=int)
    for lower, upper in edges:
        children[lower].append(upper)
        indegree[upper] += 1
    ready = [c for c in range(n_components) if indegree[c] == 0]
    seen = 0
    while ready:
        c = ready.pop()
        seen += 1
        for up in children[c]:
            depth[up] = max(depth[up], depth[c] + 1)
            indegree[up] -= 1
            if indegree[up] == 0:
                ready.append(up)
    if seen != n_components:
        raise ValueError("hasse_edges contain a cycle; they are not the cover relation of a poset.")
    return depth


def _layered_layout(labels, depth, edges, gap=1.0):
    """x of every neuron, left end, size and centre of every component: rows by depth."""
    n_components = len(depth)
    sizes = np.bincount(labels, minlength=n_components)
    lower_covers = [[] for _ in range(n_components)]
    for lower, upper in edges:
        lower_covers[upper].append(lower)
    centre = np.zeros(n_components)
    left = np.zeros(n_components)
    for row in range(int(depth.max()) + 1 if n_components else 0):
        members = np.flatnonzero(depth == row)
        # Barycentre of the lower covers keeps edges short (one downward sweep).
        key = [np.mean(centre[lower_covers[c]]) if lower_covers[c] else c for c in members]
        members = members[np.argsort(key, kind="stable")]
        width = sizes[members].sum() + gap * (len(members) - 1)
        x = -width / 2
        for c in members:
            left[c] = x
            centre[c] = x + sizes[c] / 2
            x += sizes[c] + gap
    neuron_x = np.zeros(len(labels))
    for c in range(n_components):
        members = np.flatnonzero(labels == c)
        neuron_x[members] = left[c] + 0.5 + np.arange(len(members))
    return neuron_x, left, sizes, centre


def plot_hasse_diagram(pruner, *, ax=None, annotate=None):
    """The backbone poset of a fitted :class:`~latticeprune.LatticePruner`, irreducibles marked.

    The poset is the reachability order of the last round's backbone (its strongest
    connections), condensed: each box is a strongly connected component, whose neurons are
    the dots inside it, and each line joins a component to one that covers it (drawn above it).
    Rows are the topological depth (longest chain from a minimal element). Meet-irreducible
    neurons (``meet_irreducible_``, the ones the lattice rule protects) are red stars.

    Parameters
    ----------
    pruner : fitted LatticePruner (or a sparsifier wrapping one)
    ax : matplotlib Axes or None, default=None
    annotate : bool or None, default=None
        Write the neuron indices next to the dots; None: when there are at most 40 neurons.

    Returns
    -------
    ax : matplotlib Axes
        ``ax.collections``: the cover lines (a LineCollection), then the dots of the other
        neurons and of the meet-irreducible ones; ``ax.patches``: one box per component.

    Examples
    --------
    >>> from latticeprune import LatticePruner, RNNClassifier
    >>> from latticeprune.datasets import load_digits_sequences
    >>> from latticeprune.plotting import plot_hasse_diagram
    >>> X, y = load_digits_sequences(return_X_y=True)
    >>> pruner = LatticePruner(RNNClassifier(hidden_size=6, max_epochs=1), n_rounds=1,
    ...                        fine_tune_epochs=0, random_state=0).fit(X[:100], y[:100])
    >>> ax = plot_hasse_diagram(pruner)
    >>> len(ax.patches) == pruner.lattice_["n_components"]
    True
    """
    from matplotlib.collections import LineCollection
    from matplotlib.patches import FancyBboxPatch

    fitted = _find(pruner, "lattice_", "plot_hasse_diagram", "LatticePruner")
    lattice = fitted.lattice_
    labels = np.asarray(lattice["component_labels"], dtype=int)
    edges = np.asarray(lattice["hasse_edges"], dtype=int).reshape(-1, 2)
    n_components = int(lattice["n_components"])
    irreducible = np.concatenate([np.asarray(v, dtype=bool) for v in fitted.meet_irreducible_])
    if len(irreducible) != len(labels):
        raise ValueError(f"meet_irreducible_ covers {len(irreducible)} neurons, "
                         f"component_labels {len(labels)}.")

    depth = _depths(n_components, edges)
    neuron_x, left, sizes, centre = _layered_layout(labels, depth, edges)
    neuron_y = depth[labels].astype(float)
    half_height = 0.18

    ax = _axes(ax)
    segments = [[(centre[lo], depth[lo] + half_height), (centre[up], depth[up] - half_height)]
                for lo, up in edges]
    ax.add_collection(LineCollection(segments, colors="0.35", linewidths=1.0, zorder=1))
    for c in range(n_components):
        ax.add_patch(FancyBboxPatch((left[c] + 0.1, depth[c] - half_height), sizes[c] - 0.2,
                                    2 * half_height, boxstyle="round,pad=0.05",
                                    facecolor="0.93", edgecolor="0.45", zorder=2))
    ax.scatter(neuron_x[~irreducible], neuron_y[~irreducible], s=30, color=_NEURON_COLOR,
               zorder=3, label=f"other neurons ({int((~irreducible).sum())})")
    ax.scatter(neuron_x[irreducible], neuron_y[irreducible], s=90, marker="*",
               color=_IRREDUCIBLE_COLOR, zorder=4,
               label=f"meet-irreducible ({int(irreducible.sum())})")
    if annotate is None:
        annotate = len(labels) <= 40
    if annotate:
        for i, (x, y) in enumerate(zip(neuron_x, neuron_y)):
            ax.annotate(str(i), (x, y), xytext=(0, 7), textcoords="offset points",
                        ha="center", fontsize=7)
    width = max(float(sizes.max()) if n_components else 1.0,
                float(np.abs(neuron_x).max()) * 2 + 1 if len(neuron_x) else 1.0)
    ax.set_xlim(-width / 2 - 0.5, width / 2 + 0.5)
    ax.set_ylim(-0.6, (depth.max() if n_components else 0) + 0.6)
    ax.set_xticks([])
    ax.set_yticks(range(int(depth.max()) + 1 if n_components else 1))
    ax.set_ylabel("depth in the poset")
    ax.set_title(f"Backbone poset (quantile {lattice['backbone']:g}, {n_components} components)\n"
                 f"{int(irreducible.sum())} of {len(labels)} neurons meet-irreducible")
    ax.legend(loc="best", fontsize="small")
    return ax


# -- the moduli embedding -------------------------------------------------------------------------
def _clip_to_box(segments, low, high):
    """Liang-Barsky: the parts of ``segments`` (n, 2, 2) inside ``[low, high]^2``, empty dropped."""
    start = segments[:, 0]
    delta = segments[:, 1] - start
    t_in = np.zeros(len(segments))
    t_out = np.ones(len(segments))
    keep = np.ones(len(segments), dtype=bool)
    with np.errstate(divide="ignore", invalid="ignore"):
        for axis in (0, 1):
            for p, q in ((-delta[:, axis], start[:, axis] - low),
                         (delta[:, axis], high - start[:, axis])):
                keep &= ~((p == 0) & (q < 0))
                ratio = q / p
                t_in = np.where(p < 0, np.maximum(t_in, ratio), t_in)
                t_out = np.where(p > 0, np.minimum(t_out, ratio), t_out)
    keep &= t_in < t_out - 1e-12
    clipped = np.stack([start + t_in[:, None] * delta, start + t_out[:, None] * delta], axis=1)
    return clipped[keep], keep


def _flat_image(points, i, j, side, klein):
    """``(x + i L, s_i(y) + j L)``: ``s_i`` flips y for odd i on the Klein bottle."""
    x = points[..., 0] + i * side
    y = points[..., 1]
    if klein and i % 2:
        y = side - y
    return np.stack([x, y + j * side], axis=-1)


def _flat_inverse_image(points, i, j, side, klein):
    """Inverse of :func:`_flat_image`: ``(x - i L, s_i(y - j L))``."""
    x = points[..., 0] - i * side
    y = points[..., 1] - j * side
    if klein and i % 2:
        y = side - y
    return np.stack([x, y], axis=-1)


_OFFSETS = [(i, j) for i in (-1, 0, 1) for j in (-1, 0, 1)]


def _flat_segments(pre, post, pairs, side, klein):
    """Segments of the shortest paths ``pre[i] -> post[j]`` on the flat torus / Klein bottle,
    cut where they leave the square and continued where they re-enter. Returns the segments
    and, for each, the index of its connection in ``pairs``."""
    a = pre[pairs[:, 0]]
    b = post[pairs[:, 1]]
    images = np.stack([_flat_image(b, i, j, side, klein) for i, j in _OFFSETS])  # (9, n, 2)
    nearest = np.argmin(((images - a[None]) ** 2).sum(-1), axis=0)
    b_star = images[nearest, np.arange(len(a))]
    segments, owners = [], []
    for i, j in _OFFSETS:
        moved = _flat_inverse_image(np.stack([a, b_star], axis=1), i, j, side, klein)
        clipped, keep = _clip_to_box(moved, 0.0, side)
        segments.append(clipped)
        owners.append(np.flatnonzero(keep))
    return np.concatenate(segments), np.concatenate(owners)


def _reduce_flat(points, space):
    if space.name == "klein":
        x, y = space.reduce(points).T
        return np.column_stack([x, y])
    return np.mod(points, space.side)


def _great_circle(a, b, n=32):
    """Points along the shorter great-circle arc between unit vectors a and b."""
    omega = np.arccos(np.clip(np.dot(a, b), -1.0, 1.0))
    t = np.linspace(0.0, 1.0, n)[:, None]
    if omega < 1e-9:
        return np.vstack([a, b])
    return (np.sin((1 - t) * omega) * a + np.sin(t * omega) * b) / np.sin(omega)


def _lon_lat(xyz):
    return np.column_stack([np.degrees(np.arctan2(xyz[:, 1], xyz[:, 0])),
                            np.degrees(np.arcsin(np.clip(xyz[:, 2], -1, 1)))])


def _split_at_antimeridian(lonlat):
    cuts = np.flatnonzero(np.abs(np.diff(lonlat[:, 0])) > 180) + 1
    return [piece for piece in np.split(lonlat, cuts) if len(piece) > 1]


def plot_moduli_embedding(regularizer, *, layer=0, max_connections=None, projection="3d",
                          dims=(0, 1), ax=None):
    """The neurons of a layer at their points of the moduli space, surviving connections drawn.

    A connection ``i -> j`` is drawn when its strength in the pruned net is non-zero (self-
    connections are not drawn); line width and opacity grow with the strength.

    * circle: the neurons on the circle, connections as chords;
    * torus, torus6 and klein: the flat square ``[0, side)^2``, each connection along the
      shortest path of the space: a path leaving the square through one side re-enters through
      the opposite one (the Klein bottle's left / right sides glue with y flipped), so it is
      drawn as several pieces. Tori of dimension > 2 show the coordinates ``dims``;
    * sphere: in 3-D (``projection="3d"``) with great-circle arcs, or flat in longitude /
      latitude (``projection="equirectangular"``), arcs cut at the antimeridian.

    Parameters
    ----------
    regularizer : fitted ModuliRegularizer (or a sparsifier wrapping one)
    layer : int or str, default=0
        Recurrent layer, by index or by name (the keys of ``embedding_``).
    max_connections : int or None, default=None
        Draw only the strongest ones.
    projection : {"3d", "equirectangular"}, default="3d"
        Sphere only.
    dims : pair of int, default=(0, 1)
        Torus coordinates to draw.
    ax : matplotlib Axes or None, default=None
        For the sphere in 3-D, an Axes made with ``projection="3d"``.

    Returns
    -------
    ax : matplotlib Axes
        ``ax.collections``: the connections (a LineCollection, one line per drawn piece), then
        the neurons (with ``two_embeddings``: presynaptic points, then postsynaptic points).

    Examples
    --------
    >>> from latticeprune import ModuliRegularizer, RNNClassifier
    >>> from latticeprune.datasets import load_digits_sequences
    >>> from latticeprune.plotting import plot_moduli_embedding
    >>> X, y = load_digits_sequences(return_X_y=True)
    >>> reg = ModuliRegularizer(RNNClassifier(hidden_size=8, max_epochs=2), moduli="circle",
    ...                         target_sparsity=0.8, random_state=0).fit(X[:100], y[:100])
    >>> ax = plot_moduli_embedding(reg)
    >>> len(ax.collections[1].get_offsets())
    8
    """
    from matplotlib.collections import LineCollection

    fitted = _find(regularizer, "embedding_", "plot_moduli_embedding", "ModuliRegularizer")
    space = get_space(fitted.moduli, **(fitted.space_params or {}))
    if space.name not in DRAWABLE_SPACES:
        raise ValueError(f"moduli={space.name!r} has no geometry to draw; drawable spaces: "
                         f"{list(DRAWABLE_SPACES)}.")
    graph = NeuronGraph(fitted)
    index = _layer_index(graph, layer)
    name = graph.layers[index].name
    points = fitted.embedding_[name]
    two = isinstance(points, tuple)
    pre, post = (np.asarray(p, dtype=float) for p in (points if two else (points, points)))

    strength = graph.layer_strengths(index)
    np.fill_diagonal(strength, 0.0)
    pairs = np.argwhere(strength > 0)
    values = strength[pairs[:, 0], pairs[:, 1]]
    ranked = np.argsort(-values, kind="stable")
    if max_connections is not None:
        ranked = ranked[:max_connections]
    pairs, values = pairs[ranked], values[ranked]
    weight = values / values.max() if len(values) else values
    title = (f"{name} on the {space.name}: {len(pairs)} connections drawn of "
             f"{graph.layers[index].size ** 2 - graph.layers[index].size} possible")

    if space.name == "sphere":
        return _draw_sphere(pre, post, pairs, weight, two, projection, ax, title)

    ax = _axes(ax)
    if space.name == "circle":
        pre_xy = pre / np.linalg.norm(pre, axis=1, keepdims=True) * space.radius
        post_xy = post / np.linalg.norm(post, axis=1, keepdims=True) * space.radius
        segments = np.stack([pre_xy[pairs[:, 0]], post_xy[pairs[:, 1]]], axis=1)
        owners = np.arange(len(pairs))
        outline = _pyplot().Circle((0, 0), space.radius, fill=False, color="0.6")
        limit = space.radius * 1.1
        ax.set_xlim(-limit, limit)
        ax.set_ylim(-limit, limit)
    else:
        dims = list(dims)
        if space.name == "klein" and dims != [0, 1]:
            raise ValueError("The Klein bottle is 2-D: dims must be (0, 1).")
        if len(dims) != 2 or max(dims) >= pre.shape[1] or len(set(dims)) != 2:
            raise ValueError(f"dims={tuple(dims)} must be two different coordinates of the "
                             f"{pre.shape[1]}-D {space.name}.")
        pre_xy = _reduce_flat(pre, space)[:, dims]
        post_xy = _reduce_flat(post, space)[:, dims]
        segments, owners = _flat_segments(pre_xy, post_xy, pairs, space.side,
                                          klein=space.name == "klein")
        outline = _pyplot().Rectangle((0, 0), space.side, space.side, fill=False, color="0.6")
        ax.set_xlim(0, space.side)
        ax.set_ylim(0, space.side)
        ax.set_xlabel(f"coordinate {dims[0]}")
        ax.set_ylabel(f"coordinate {dims[1]}")
    ax.add_patch(outline)
    ax.add_collection(LineCollection(segments, linewidths=0.4 + 2.0 * weight[owners],
                                     colors=[(0.1, 0.3, 0.7, 0.25 + 0.6 * w)
                                             for w in weight[owners]], zorder=1))
    _draw_neurons(ax, pre_xy, post_xy, two)
    ax.set_aspect("equal")
    ax.set_title(title)
    return ax


def _layer_index(graph, layer):
    names = [l.name for l in graph.layers]
    if isinstance(layer, str):
        if layer not in names:
            raise ValueError(f"layer={layer!r} is not a recurrent layer; layers: {names}.")
        return names.index(layer)
    if not isinstance(layer, numbers.Integral) or not -len(names) <= layer < len(names):
        raise ValueError(f"layer={layer!r} is out of range for {len(names)} layers {names}.")
    return int(layer) % len(names)


def _draw_neurons(ax, pre, post, two, three_d=False):
    kwargs = {"depthshade": False} if three_d else {}
    if two:
        ax.scatter(*pre.T, s=30, color="black", zorder=3, label="presynaptic points", **kwargs)
        ax.scatter(*post.T, s=30, marker="^", color="darkorange", zorder=3,
                   label="postsynaptic points", **kwargs)
        ax.legend(loc="upper right", fontsize="small")
    else:
        ax.scatter(*pre.T, s=30, color="black", zorder=3, **kwargs)


def _draw_sphere(pre, post, pairs, weight, two, projection, ax, title):
    from matplotlib.collections import LineCollection

    pre = pre / np.linalg.norm(pre, axis=1, keepdims=True)
    post = post / np.linalg.norm(post, axis=1, keepdims=True)
    arcs = [_great_circle(pre[i], post[j]) for i, j in pairs]
    colors = [(0.1, 0.3, 0.7, 0.25 + 0.6 * w) for w in weight]
    widths = 0.4 + 2.0 * weight
    if projection == "3d":
        from mpl_toolkits.mplot3d.art3d import Line3DCollection

        ax = _axes(ax, projection="3d")
        if getattr(ax, "name", "") != "3d":
            raise ValueError("projection='3d' needs an Axes made with projection='3d'.")
        ax.add_collection(Line3DCollection(arcs, colors=colors, linewidths=widths))
        _draw_neurons(ax, pre, post, two, three_d=True)
        u, v = np.meshgrid(np.linspace(0, 2 * np.pi, 25), np.linspace(0, np.pi, 13))
        ax.plot_wireframe(np.cos(u) * np.sin(v), np.sin(u) * np.sin(v), np.cos(v),
                          color="0.85", linewidth=0.4)
        for set_lim in (ax.set_xlim, ax.set_ylim, ax.set_zlim):
            set_lim(-1, 1)
        ax.set_box_aspect((1, 1, 1))
    elif projection == "equirectangular":
        ax = _axes(ax)
        pieces, piece_colors, piece_widths = [], [], []
        for arc, color, width in zip(arcs, colors, widths):
            for piece in _split_at_antimeridian(_lon_lat(arc)):
                pieces.append(piece)
                piece_colors.append(color)
                piece_widths.append(width)
        ax.add_collection(LineCollection(pieces, colors=piece_colors, linewidths=piece_widths))
        _draw_neurons(ax, _lon_lat(pre), _lon_lat(post), two)
        ax.set_xlim(-180, 180)
        ax.set_ylim(-90, 90)
        ax.set_xlabel("longitude (degrees)")
        ax.set_ylabel("latitude (degrees)")
    else:
        raise ValueError(f"projection={projection!r} is not valid; use '3d' or 'equirectangular'.")
    ax.set_title(title)
    return ax


# -- the navigation task --------------------------------------------------------------------------
def _check_task(task, needed):
    missing = [key for key in needed if key not in task]
    if missing:
        raise TypeError(f"Expected the Bunch of make_navigation_task; missing {missing}.")


def plot_trajectories(task, *, n_trajectories=5, predicted_codes=None, show_centres=False,
                      ax=None):
    """Trajectories of the navigation task in the box, optionally with the decoded predictions.

    Parameters
    ----------
    task : Bunch from :func:`~latticeprune.datasets.make_navigation_task`
    n_trajectories : int, default=5
        The first ones are drawn, each from its start position (a dot).
    predicted_codes : array-like of shape (n_samples, n_steps, n_place_cells) or None
        Place-cell codes (or logits) a net predicted; the positions
        :func:`~latticeprune.datasets.decode_position` reads from them are drawn dashed in the
        colour of the true trajectory.
    show_centres : bool, default=False
        Draw the place-cell centres as small grey crosses.
    ax : matplotlib Axes or None, default=None

    Returns
    -------
    ax : matplotlib Axes
        ``ax.lines``: the true trajectories, then the decoded ones.

    Examples
    --------
    >>> from latticeprune.datasets import make_navigation_task
    >>> from latticeprune.plotting import plot_trajectories
    >>> task = make_navigation_task(10, n_steps=20, random_state=0)
    >>> len(plot_trajectories(task, n_trajectories=3).lines)
    3
    """
    _check_task(task, ("positions", "init_positions", "box_size", "centres"))
    n_available = len(task.positions)
    if not isinstance(n_trajectories, numbers.Integral) or not 1 <= n_trajectories:
        raise ValueError(f"n_trajectories must be a positive int; got {n_trajectories!r}.")
    n = min(int(n_trajectories), n_available)
    ax = _axes(ax)
    half = task.box_size / 2
    ax.add_patch(_pyplot().Rectangle((-half, -half), task.box_size, task.box_size, fill=False,
                                     color="0.3"))
    if show_centres:
        ax.scatter(*np.asarray(task.centres).T, s=6, marker="x", color="0.7", label="place cells")
    colours = []
    for k in range(n):
        path = np.vstack([task.init_positions[k], task.positions[k]])
        (line,) = ax.plot(*path.T, linewidth=1.2)
        colours.append(line.get_color())
    ax.scatter(*np.asarray(task.init_positions[:n]).T, s=25, c=colours, zorder=3, label="start")
    if predicted_codes is not None:
        predicted_codes = np.asarray(predicted_codes)
        if predicted_codes.shape[:2] != task.positions.shape[:2]:
            raise ValueError(f"predicted_codes has shape {predicted_codes.shape}; expected "
                             f"(n_samples, n_steps, n_place_cells) with (n_samples, n_steps) = "
                             f"{task.positions.shape[:2]}.")
        decoded = decode_position(predicted_codes[:n], task.centres)
        for k in range(n):
            ax.plot(*decoded[k].T, linestyle="--", linewidth=1.0, color=colours[k])
    ax.set_xlim(-half * 1.05, half * 1.05)
    ax.set_ylim(-half * 1.05, half * 1.05)
    ax.set_aspect("equal")
    ax.set_xlabel("x (m)")
    ax.set_ylabel("y (m)")
    ax.set_title(f"{n} trajectories" + (" (dashed: decoded from the predictions)"
                                        if predicted_codes is not None else ""))
    return ax


def plot_place_cell_fields(task, cells=4, *, resolution=60, fig=None):
    """Firing fields of place cells: each cell's code over the box, its centre marked.

    Parameters
    ----------
    task : Bunch from :func:`~latticeprune.datasets.make_navigation_task`
    cells : int or array-like of int, default=4
        How many cells (spread evenly over the indices) or which ones.
    resolution : int, default=60
        Grid points per side.
    fig : matplotlib Figure or None, default=None

    Returns
    -------
    fig : matplotlib Figure
        One Axes per cell (an image of shape ``(resolution, resolution)``, row 0 at the
        bottom), then the colour bar.

    Examples
    --------
    >>> from latticeprune.datasets import make_navigation_task
    >>> from latticeprune.plotting import plot_place_cell_fields
    >>> task = make_navigation_task(5, n_steps=5, n_place_cells=64, random_state=0)
    >>> len(plot_place_cell_fields(task, cells=[0, 5]).axes)
    3
    """
    _check_task(task, ("centres", "box_size", "place_cell_width", "dog", "surround_scale"))
    centres = np.asarray(task.centres)
    if isinstance(cells, numbers.Integral):
        if not 1 <= cells <= len(centres):
            raise ValueError(f"cells={cells} must be between 1 and {len(centres)}.")
        cells = np.linspace(0, len(centres) - 1, int(cells)).round().astype(int)
    cells = np.asarray(cells, dtype=int).ravel()
    if cells.size == 0 or cells.min() < 0 or cells.max() >= len(centres):
        raise ValueError(f"cells must be indices in [0, {len(centres)}); got {cells.tolist()}.")
    half = task.box_size / 2
    grid = np.linspace(-half, half, int(resolution))
    xx, yy = np.meshgrid(grid, grid)
    codes = place_cell_codes(np.stack([xx, yy], axis=-1), centres, width=task.place_cell_width,
                             dog=task.dog, surround_scale=task.surround_scale)
    if fig is None:
        fig = _pyplot().figure(figsize=(2.6 * len(cells) + 0.8, 2.8), layout="constrained")
    axes = fig.subplots(1, len(cells), squeeze=False)[0]
    vmax = float(codes[..., cells].max())
    for ax, cell in zip(axes, cells):
        image = ax.imshow(codes[..., cell], origin="lower", extent=(-half, half, -half, half),
                          vmin=0.0, vmax=vmax, cmap="viridis")
        ax.plot(*centres[cell], marker="+", color="white", markersize=8)
        ax.set_title(f"place cell {cell}")
        ax.set_xlabel("x (m)")
    axes[0].set_ylabel("y (m)")
    fig.colorbar(image, ax=list(axes), label="place-cell code", shrink=0.85)
    return fig
