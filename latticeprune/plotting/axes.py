"""What every plot shares: matplotlib imported on demand, a new Axes, the fitted part it reads."""

from ..neuron_graph import estimator_chain

__all__ = ["pyplot", "new_axes", "find_fitted"]


def pyplot():
    """``matplotlib.pyplot``; without matplotlib, an ImportError that says how to install it."""
    try:
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise ImportError("latticeprune.plotting needs matplotlib, an optional dependency: "
                          "pip install latticeprune[plots]  (or: pip install matplotlib)") from exc
    return plt


def new_axes(ax=None, **subplot_kw):
    """``ax``, or the Axes of a new figure made with ``subplot_kw`` (e.g. ``projection="3d"``)."""
    return ax if ax is not None else pyplot().subplots(subplot_kw=subplot_kw or None)[1]


def find_fitted(obj, attribute, needed_by, hint):
    """The first estimator of :func:`~latticeprune.neuron_graph.estimator_chain` with
    ``attribute``; if none has it, a TypeError naming ``needed_by`` and ``hint`` (a class name)."""
    found = [e for e in estimator_chain(obj) if hasattr(e, attribute)]
    if not found:
        raise TypeError(f"{needed_by} needs a fitted {hint} (an object with {attribute}); got "
                        f"{type(obj).__name__}" + ("" if hasattr(obj, "estimator_") else
                                                   " (is it fitted?)") + ".")
    return found[0]
