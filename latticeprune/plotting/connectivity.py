"""Connectivity before and after pruning (:meth:`NeuronGraph.strength_matrix`, rows presynaptic),
neurons ordered by lattice role or by position in the moduli space."""


import numpy as np

from ..moduli import get_space
from ..neuron_graph import NeuronGraph
from .axes import find_fitted, pyplot

__all__ = ["neuron_order", "plot_connectivity"]


def neuron_order(sparsifier, by="lattice"):
    """A permutation of ``range(n_neurons)`` for pictures of the connectivity; layers stay
    contiguous, bottom layer first.

    Parameters
    ----------
    sparsifier : fitted sparsifier (or a net, with ``by=None``)
    by : {"lattice", "moduli"} or None, default="lattice"
        ``"lattice"`` (a fitted LatticePruner inside): in each layer the meet-irreducible neurons
        first, each group by decreasing centrality. ``"moduli"`` (a fitted ModuliRegularizer
        inside): by azimuth on the circle and the sphere, by coordinates on the flat spaces.
        None: as numbered.

    Examples
    --------
    >>> from latticeprune import LatticePruner, RNNClassifier, datasets
    >>> X, y = datasets.load_digits_sequences(return_X_y=True)
    >>> pruner = LatticePruner(RNNClassifier(hidden_size=6, max_epochs=1), n_rounds=1,
    ...                        fine_tune_epochs=0, random_state=0).fit(X[:100], y[:100])
    >>> sorted(neuron_order(pruner)) == list(range(6))
    True
    """
    graph = NeuronGraph(sparsifier)
    if by is None:
        return np.arange(graph.n_neurons)
    if by == "lattice":
        fitted = find_fitted(sparsifier, "meet_irreducible_", "neuron_order(by='lattice')",
                             "LatticePruner")
        per_layer = [np.lexsort((-np.asarray(cen, dtype=float), ~np.asarray(irr, dtype=bool)))
                     for irr, cen in zip(fitted.meet_irreducible_, fitted.centrality_)]
    elif by == "moduli":
        fitted = find_fitted(sparsifier, "embedding_", "neuron_order(by='moduli')",
                             "ModuliRegularizer")
        round_space = get_space(fitted.moduli, **(fitted.space_params or {})).name in (
            "circle", "sphere")
        points = [np.asarray(p[0] if isinstance(p, tuple) else p, dtype=float)
                  for p in (fitted.embedding_[layer.name] for layer in graph.layers)]
        per_layer = [np.argsort(np.arctan2(p[:, 1], p[:, 0]), kind="stable") if round_space
                     else np.lexsort(p.T[::-1]) for p in points]
    else:
        raise ValueError(f"by={by!r} is not valid; use 'lattice', 'moduli' or None.")
    if len(per_layer) != len(graph.layers):
        raise ValueError(f"The sparsifier describes {len(per_layer)} layers; the net has "
                         f"{len(graph.layers)}.")
    return np.concatenate([layer.offset + order for layer, order in zip(graph.layers, per_layer)])


def plot_connectivity(sparsifier, *, before=None, order="lattice", show_before=True, cmap="magma",
                      fig=None):
    """Heat maps of the connection strengths from neuron ``i`` (row) to ``j`` (column), before and
    after pruning, on one colour scale (pruned connections go dark).

    Parameters
    ----------
    sparsifier : fitted sparsifier, e.g. LatticePruner or ModuliRegularizer
    before : fitted net or sparsifier or None, default=None
        The dense net to compare with (same architecture). None: the pruned net with its masks
        lifted, each removed weight at its value when pruned.
    order : {"lattice", "moduli"} or None or array-like of int, default="lattice"
        Order of the neurons on both axes (:func:`neuron_order`), or a permutation. Solid lines
        separate layers; with ``"lattice"`` dashed ones close the meet-irreducible blocks.
    show_before : bool, default=True
    cmap : str, default="magma"
    fig : matplotlib Figure or None, default=None

    Returns
    -------
    fig : matplotlib Figure
        The heat maps ("before", "after") in ``fig.axes``, then their colour bar.

    Examples
    --------
    >>> from latticeprune import ModuliRegularizer, RNNClassifier, datasets
    >>> X, y = datasets.load_digits_sequences(return_X_y=True)
    >>> reg = ModuliRegularizer(RNNClassifier(hidden_size=6, max_epochs=1), moduli="circle",
    ...                         random_state=0).fit(X[:100], y[:100])
    >>> [ax.get_title().split(" (")[0] for ax in plot_connectivity(reg, order="moduli").axes[:2]]
    ['before pruning', 'after pruning']
    """
    graph = NeuronGraph(sparsifier)
    after = graph.strength_matrix()
    if before is None:
        dense = graph.strength_matrix(unmasked=True)
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
    closing = []  # (offset of the layer, its number of meet-irreducible neurons)
    if isinstance(order, str) and order == "lattice":
        fitted = find_fitted(sparsifier, "meet_irreducible_", "plot_connectivity", "LatticePruner")
        closing = [(layer.offset, int(np.sum(v))) for layer, v in
                   zip(graph.layers, fitted.meet_irreducible_) if 0 < np.sum(v) < layer.size]
    panels = ([("before pruning", dense)] if show_before else []) + [("after pruning", after)]

    if fig is None:
        fig = pyplot().figure(figsize=(4.6 * len(panels) + 0.8, 4.4), layout="constrained")
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    vmax = max(float(dense.max()), float(after.max())) or 1.0
    n_possible = max(int(((dense > 0) | (after > 0)).sum()), 1)
    for ax, (title, matrix) in zip(axes, panels):
        image = ax.imshow(matrix[np.ix_(permutation, permutation)], cmap=cmap, vmin=0.0,
                          vmax=vmax, interpolation="nearest")
        ax.set(title=f"{title} ({1.0 - (matrix > 0).sum() / n_possible:.0%} of connections "
               "removed)", xlabel="to neuron (postsynaptic)", ylabel="from neuron (presynaptic)")
        for line in (ax.axhline, ax.axvline):
            for layer in graph.layers[1:]:
                line(layer.offset - 0.5, color="white", linewidth=1.2)
            for offset, k in closing:
                line(offset + k - 0.5, color="cyan", linestyle="--", linewidth=1.0)
    fig.colorbar(image, ax=list(axes), label="connection strength (RMS over gates)",
                 shrink=0.85)
    return fig
