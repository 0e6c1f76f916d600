"""The Hasse diagram of a fitted LatticePruner's backbone poset, meet-irreducible neurons marked.

Rows: depth in the cover relation (``lattice.reachability.dag_depth``); in a row, components sit
at the barycentre of their lower covers, so cover lines stay short."""
import numpy as np

from ..lattice.reachability import dag_depth
from .axes import find_fitted, new_axes

__all__ = ["plot_hasse_diagram"]


def plot_hasse_diagram(pruner, *, ax=None, annotate=None):
    """The backbone poset of a fitted :class:`~latticeprune.LatticePruner`, irreducibles marked.

    The reachability order of the last round's backbone, condensed: a box per strongly connected
    component holding its neurons' dots, a line to each component covering it (drawn above).
    Meet-irreducible neurons (``meet_irreducible_``, protected by the lattice rule): red stars.

    Parameters
    ----------
    pruner : fitted LatticePruner (or a sparsifier wrapping one)
    ax : matplotlib Axes or None, default=None
    annotate : bool or None, default=None
        Write the neuron indices by the dots; None: when there are at most 40 neurons.

    Returns
    -------
    ax : matplotlib Axes
        ``ax.collections``: the cover lines (a LineCollection), then the dots of the other
        neurons and of the meet-irreducible ones; ``ax.patches``: one box per component.

    Examples
    --------
    >>> from latticeprune import LatticePruner, RNNClassifier, datasets
    >>> digits = datasets.load_digits_sequences()
    >>> net = RNNClassifier(cell="gru", hidden_size=5, max_epochs=1, random_state=0)
    >>> pruner = LatticePruner(net, sparsity=0.4, n_rounds=1, fine_tune_epochs=0)
    >>> pruner = pruner.fit(digits.data[:80], digits.target[:80])
    >>> len(plot_hasse_diagram(pruner).patches) == pruner.lattice_["n_components"]
    True
    """
    from matplotlib.collections import LineCollection
    from matplotlib.patches import FancyBboxPatch

    fitted = find_fitted(pruner, "lattice_", "plot_hasse_diagram", "LatticePruner")
    lattice = fitted.lattice_
    labels = np.asarray(lattice["component_labels"], dtype=int)
    edges = np.asarray(lattice["hasse_edges"], dtype=int).reshape(-1, 2)
    k = int(lattice["n_components"])
    irreducible = np.concatenate([np.asarray(v, dtype=bool) for v in fitted.meet_irreducible_])
    if len(irreducible) != len(labels):
        raise ValueError(f"meet_irreducible_ covers {len(irreducible)} neurons, "
                         f"component_labels {len(labels)}.")
    depth = dag_depth(k, edges)
    top = int(depth.max()) if k else 0

    sizes = np.bincount(labels, minlength=k)
    left, centre = np.zeros(k), np.zeros(k)
    for row in range(top + 1):
        members = np.flatnonzero(depth == row)
        below = [edges[edges[:, 1] == c, 0] for c in members]
        members = members[np.argsort([centre[b].mean() if len(b) else c
                                      for c, b in zip(members, below)], kind="stable")]
        widths = sizes[members] + 1.0  # a gap of 1 after each box
        left[members] = np.cumsum(widths) - widths - (widths.sum() - 1.0) / 2
        centre[members] = left[members] + sizes[members] / 2
    neuron_x = np.empty(len(labels))
    for c in range(k):
        members = np.flatnonzero(labels == c)
        neuron_x[members] = left[c] + 0.5 + np.arange(len(members))
    neuron_y = depth[labels].astype(float)

    ax = new_axes(ax)
    h = 0.18  # half the height of a box
    ax.add_collection(LineCollection([[(centre[lo], depth[lo] + h), (centre[up], depth[up] - h)]
                                      for lo, up in edges], colors="0.35", linewidths=1.0,
                                     zorder=1))
    for c in range(k):
        ax.add_patch(FancyBboxPatch((left[c] + 0.1, depth[c] - h), sizes[c] - 0.2, 2 * h,
                                    boxstyle="round,pad=0.05", facecolor="0.93",
                                    edgecolor="0.45", zorder=2))
    ax.scatter(neuron_x[~irreducible], neuron_y[~irreducible], s=30, color="0.55", zorder=3,
               label=f"other neurons ({int((~irreducible).sum())})")
    ax.scatter(neuron_x[irreducible], neuron_y[irreducible], s=90, marker="*", color="crimson",
               zorder=4, label=f"meet-irreducible ({int(irreducible.sum())})")
    if (len(labels) <= 40) if annotate is None else annotate:
        for i, xy in enumerate(zip(neuron_x, neuron_y)):
            ax.annotate(str(i), xy, xytext=(0, 7), textcoords="offset points", ha="center",
                        fontsize=7)
    half_width = float(np.abs(neuron_x).max()) + 1.0 if len(labels) else 1.0
    ax.set(xlim=(-half_width, half_width), ylim=(-0.6, top + 0.6), xticks=[],
           yticks=range(top + 1), ylabel="depth in the poset",
           title=f"Backbone poset (quantile {lattice['backbone']:g}, {k} components)\n"
                 f"{int(irreducible.sum())} of {len(labels)} neurons meet-irreducible")
    ax.legend(loc="best", fontsize="small")
    return ax
