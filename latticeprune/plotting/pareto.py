"""Accuracy against latency: which pruned forms are worth deploying (the demo's figure)."""

import numpy as np

from .axes import new_axes

__all__ = ["plot_accuracy_latency", "pareto_front"]


def pareto_front(latency, accuracy):
    """Indices of the points no other point beats on both (lower latency, higher accuracy),
    by increasing latency."""
    order = np.lexsort((-np.asarray(accuracy), np.asarray(latency)))
    front, best = [], -np.inf
    for i in order:
        if accuracy[i] > best:
            front.append(int(i))
            best = accuracy[i]
    return front


def plot_accuracy_latency(rows, latency="batch 1 ms", accuracy="test accuracy", group="kind",
                          label="name", reference="dense", ax=None):
    """Scatter of ``rows`` (dicts): ``accuracy`` against ``latency``, a colour per ``group``
    value, the ``reference`` row (the dense net) as a black star, the Pareto front (the forms
    nothing beats on both) as a line; each point labelled with its ``label``.

    Examples
    --------
    >>> rows = [{"name": "dense", "kind": "dense", "batch 1 ms": 1.0, "test accuracy": 0.95},
    ...         {"name": "units 0.5", "kind": "unit", "batch 1 ms": 0.6, "test accuracy": 0.93}]
    >>> ax = plot_accuracy_latency(rows)
    >>> [t.get_text() for t in ax.get_legend().get_texts()]
    ['dense', 'unit', 'Pareto front']
    """
    ax = new_axes(ax)
    x = np.array([row[latency] for row in rows], dtype=float)
    y = np.array([row[accuracy] for row in rows], dtype=float)
    groups = list(dict.fromkeys(row[group] for row in rows))
    for g in groups:
        index = [i for i, row in enumerate(rows) if row[group] == g]
        if g == reference:
            ax.scatter(x[index], y[index], marker="*", s=220, color="black", zorder=3, label=g)
        else:
            ax.scatter(x[index], y[index], s=50, zorder=2, label=g)
    front = pareto_front(x, y)
    ax.plot(x[front], y[front], color="0.5", linestyle="--", zorder=1, label="Pareto front")
    for i, row in enumerate(rows):
        ax.annotate(str(row[label]), (x[i], y[i]), textcoords="offset points", xytext=(5, 4),
                    fontsize=8)
    ax.set_xlabel(f"latency, {latency} (lower is better)")
    ax.set_ylabel(f"{accuracy} (higher is better)")
    ax.grid(alpha=0.3)
    ax.margins(x=0.2, y=0.08)  # room for the labels, which sit right of their points
    ax.legend(loc="best", fontsize=8)  # where it covers no point
    return ax
