"""The neurons of a ModuliRegularizer at their points of the space, surviving connections drawn.

Circle: chords. Torus, Klein bottle: the square, each connection along its shortest path; the
path's images under the group (``Space.images`` of the flat spaces) clipped to the square by
matplotlib (``Path.clip_to_bbox``) are its pieces. Sphere: great-circle arcs (scipy's
``geometric_slerp``), in 3-D or longitude / latitude.
"""
import numbers

import numpy as np
from scipy.spatial import geometric_slerp

from ..moduli import Torus, get_space
from ..neuron_graph import NeuronGraph
from .axes import find_fitted, new_axes, pyplot

__all__ = ["DRAWABLE_SPACES", "flat_segments", "plot_moduli_embedding"]

#: Spaces :func:`plot_moduli_embedding` can draw.
DRAWABLE_SPACES = ("circle", "klein", "sphere", "torus", "torus6")


def plot_moduli_embedding(regularizer, *, layer=0, max_connections=None, projection="3d",
                          dims=(0, 1), ax=None):
    """The neurons of a layer at their points of the moduli space, surviving connections drawn.

    A connection ``i -> j`` (not ``i -> i``) is drawn when its strength in the pruned net is
    non-zero, wider and more opaque the stronger it is.

    Parameters
    ----------
    regularizer : fitted ModuliRegularizer (or a sparsifier wrapping one)
    layer : int or str, default=0
        Recurrent layer, by index or by name (the keys of ``embedding_``).
    max_connections : int or None, default=None
        Draw only the strongest ones.
    projection : {"3d", "equirectangular"}, default="3d"
        Sphere only; an ``ax`` given for "3d" must be made with ``projection="3d"``.
    dims : pair of int, default=(0, 1)
        Torus coordinates to draw.
    ax : matplotlib Axes or None, default=None

    Returns
    -------
    ax : matplotlib Axes
        ``ax.collections``: the connections (a LineCollection, one line per piece), then the
        neurons (with ``two_embeddings``: presynaptic points, then postsynaptic points).

    Examples
    --------
    >>> from latticeprune import ModuliRegularizer, RNNClassifier, datasets
    >>> X, y = datasets.load_digits_sequences(return_X_y=True)
    >>> reg = ModuliRegularizer(RNNClassifier(hidden_size=8, max_epochs=2), moduli="circle",
    ...                         target_sparsity=0.8, random_state=0).fit(X[:100], y[:100])
    >>> len(plot_moduli_embedding(reg).collections[1].get_offsets())
    8
    """
    from matplotlib.collections import LineCollection
    from mpl_toolkits.mplot3d.art3d import Line3DCollection

    fitted = find_fitted(regularizer, "embedding_", "plot_moduli_embedding", "ModuliRegularizer")
    space = get_space(fitted.moduli, **(fitted.space_params or {}))
    if space.name not in DRAWABLE_SPACES:
        raise ValueError(f"moduli={space.name!r} has no geometry to draw; drawable spaces: "
                         f"{list(DRAWABLE_SPACES)}.")
    graph = NeuronGraph(fitted)
    names = [l.name for l in graph.layers]
    index = names.index(layer) if layer in names else layer
    if not isinstance(index, numbers.Integral) or not -len(names) <= index < len(names):
        raise ValueError(f"layer={layer!r} is not a recurrent layer; layers: {names}." if
                         isinstance(layer, str) else f"layer={layer!r} is out of range for "
                         f"{len(names)} layers {names}.")
    index = int(index) % len(names)
    points = fitted.embedding_[names[index]]
    two = isinstance(points, tuple)
    pre, post = (np.asarray(p, dtype=float) for p in (points if two else (points, points)))
    strength = graph.layer_strengths(index)
    np.fill_diagonal(strength, 0.0)
    pairs = np.argwhere(strength > 0)
    pairs = pairs[np.argsort(-strength[tuple(pairs.T)], kind="stable")[:max_connections]]
    weight = strength[tuple(pairs.T)] / (strength.max() or 1.0)

    three_d, outline, frame, owners = False, None, {}, np.arange(len(pairs))
    if space.name in ("circle", "sphere"):
        pre, post = (p / np.linalg.norm(p, axis=1, keepdims=True) for p in (pre, post))
    if space.name == "sphere":
        if projection not in ("3d", "equirectangular"):
            raise ValueError(f"projection={projection!r} is not valid; use '3d' or "
                             "'equirectangular'.")
        segments = [geometric_slerp(pre[i], post[j], np.linspace(0, 1, 32)) for i, j in pairs]
        three_d = projection == "3d"
        if not three_d:  # longitude / latitude, arcs cut where they cross the antimeridian
            pieces = [np.split(arc, np.flatnonzero(np.abs(np.diff(arc[:, 0])) > 180) + 1)
                      for arc in map(_lon_lat, segments)]
            pieces = [[p for p in arc if len(p) > 1] for arc in pieces]
            owners = np.repeat(owners, [len(arc) for arc in pieces]).astype(int)
            segments = [p for arc in pieces for p in arc]
            pre, post = _lon_lat(pre), _lon_lat(post)
            frame = dict(xlim=(-180, 180), ylim=(-90, 90), xlabel="longitude (degrees)",
                         ylabel="latitude (degrees)")
    elif space.name == "circle":
        pre, post = pre * space.radius, post * space.radius
        segments = np.stack([pre[pairs[:, 0]], post[pairs[:, 1]]], axis=1)
        outline = pyplot().Circle((0, 0), space.radius, fill=False, color="0.6")
        frame = dict(xlim=(-1.1 * space.radius, 1.1 * space.radius),
                     ylim=(-1.1 * space.radius, 1.1 * space.radius))
    else:
        dims = list(dims)
        if space.name == "klein" and dims != [0, 1]:
            raise ValueError("The Klein bottle is 2-D: dims must be (0, 1).")
        if len(dims) != 2 or max(dims) >= pre.shape[1] or len(set(dims)) != 2:
            raise ValueError(f"dims={tuple(dims)} must be two different coordinates of the "
                             f"{pre.shape[1]}-D {space.name}.")
        plane = space if space.name == "klein" else Torus(dim=2, side=space.side)
        pre, post = (plane.reduce(p[:, dims]) for p in (pre, post))
        segments, owners = flat_segments(plane, pre, post, pairs)
        outline = pyplot().Rectangle((0, 0), space.side, space.side, fill=False, color="0.6")
        frame = dict(xlim=(0, space.side), ylim=(0, space.side), xlabel=f"coordinate {dims[0]}",
                     ylabel=f"coordinate {dims[1]}")

    ax = new_axes(ax, **({"projection": "3d"} if three_d else {}))
    if three_d and ax.name != "3d":
        raise ValueError("projection='3d' needs an Axes made with projection='3d'.")
    ax.add_collection((Line3DCollection if three_d else LineCollection)(
        segments, linewidths=0.4 + 2.0 * weight[owners], zorder=1,
        colors=[(0.1, 0.3, 0.7, 0.25 + 0.6 * w) for w in weight[owners]]))
    kwargs = {"depthshade": False} if three_d else {}
    ax.scatter(*pre.T, s=30, color="black", zorder=3, label="presynaptic points", **kwargs)
    if two:
        ax.scatter(*post.T, s=30, marker="^", color="darkorange", zorder=3,
                   label="postsynaptic points", **kwargs)
        ax.legend(loc="upper right", fontsize="small")
    if three_d:
        u, v = np.meshgrid(np.linspace(0, 2 * np.pi, 25), np.linspace(0, np.pi, 13))
        ax.plot_wireframe(np.cos(u) * np.sin(v), np.sin(u) * np.sin(v), np.cos(v),
                          color="0.85", linewidth=0.4)
        ax.set(xlim=(-1, 1), ylim=(-1, 1), zlim=(-1, 1), box_aspect=(1, 1, 1))
    else:
        if outline is not None:
            ax.add_patch(outline)
        ax.set(aspect="equal", **frame)
    ax.set_title(f"{names[index]} on the {space.name}: {len(pairs)} connections drawn of "
                 f"{len(pre) * (len(pre) - 1)} possible")
    return ax


def flat_segments(space, pre, post, pairs):
    """Pieces, inside the square ``[0, side]^2``, of the shortest paths ``pre[i] -> post[j]``.

    ``space`` is a 2-D :class:`~latticeprune.moduli.Torus` or the Klein bottle, ``pairs`` rows
    ``(i, j)``. Returns the segments ``(n_pieces, 2, 2)``, each path's pieces in order from
    ``pre[i]`` to ``post[j]``, and for each piece the row of its connection in ``pairs``.
    """
    from matplotlib.path import Path
    from matplotlib.transforms import Bbox

    a = space.reduce(pre)[pairs[:, 0]]
    b = space.nearest_image(a, space.reduce(post)[pairs[:, 1]])
    starts, ends = space.images(a), space.images(b)
    near = np.all((np.minimum(starts, ends) < space.side) & (np.maximum(starts, ends) > 0), -1)
    box = Bbox([[0.0, 0.0], [space.side, space.side]])
    pieces, owners, along = [], [], []
    for g, n in zip(*np.nonzero(near)):
        start, delta = starts[g, n], ends[g, n] - starts[g, n]
        clipped = Path([start, ends[g, n], start], closed=True).clip_to_bbox(box).vertices
        t = (clipped - start) @ delta
        if len(t) and t.max() - t.min() > 1e-12 * (delta @ delta):
            pieces.append(clipped[[t.argmin(), t.argmax()]])
            owners.append(n)
            along.append(t.min())
    order = np.lexsort((along, owners))
    return np.reshape(pieces, (-1, 2, 2))[order], np.asarray(owners, dtype=int)[order]


def _lon_lat(xyz):
    return np.column_stack([np.degrees(np.arctan2(xyz[:, 1], xyz[:, 0])),
                            np.degrees(np.arcsin(np.clip(xyz[:, 2], -1, 1)))])
