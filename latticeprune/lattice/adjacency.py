"""Binary adjacency on a backbone of the strongest connections, and its filtration levels.

A connection ``i -> j`` with strength ``strength[i, j] > 0`` *exists*; a zero strength
is an absent connection and is never an edge, at any backbone level.  The backbone
threshold is a quantile of the strengths of the existing connections only, so the
binary adjacency keeps about a fraction ``1 - backbone`` of them whatever the density
of the weight matrix (docs/methods/lattice.md section 2).  Cost: one quantile of the
existing strengths, ``O(n^2)``.
"""

import numbers

import numpy as np

from .validation import check_number, check_strength

__all__ = [
    "DEFAULT_FILTRATION_HIGH",
    "DEFAULT_FILTRATION_LOW",
    "backbone_of",
    "binary_adjacency",
    "check_levels",
    "filtration_levels",
]

#: Lowest default filtration level (measured: see docs/experiments.md).
DEFAULT_FILTRATION_LOW = 0.9
#: Highest default filtration level (measured: see docs/experiments.md).
DEFAULT_FILTRATION_HIGH = 0.99


def binary_adjacency(strength, backbone):
    """Keep the strongest connections: ``A[i, j] = s_ij >= tau`` with ``s_ij > 0``.

    Parameters
    ----------
    strength : array-like of shape (n, n)
        Non-negative connection strengths, ``strength[i, j]`` for ``i -> j``.
        Zero means absent: a zero strength is never an edge.
    backbone : float in [0, 1)
        Quantile ``q``: ``tau`` is the ``q``-quantile (linear interpolation) of the
        strictly positive strengths, so about a fraction ``1 - q`` of the existing
        connections is kept (within one connection for distinct strengths; ties at
        ``tau`` are all kept). ``backbone=0`` keeps every existing connection.

    Returns
    -------
    ndarray of bool, shape (n, n)
        The binary adjacency; all ``False`` when no strength is positive.
    """
    matrix = check_strength(strength)
    return backbone_of(matrix, check_number(backbone, "backbone", 0.0, 1.0, closed="left"))


def backbone_of(strength, backbone):
    """:func:`binary_adjacency` of an already validated float matrix (no checks)."""
    existing = strength > 0
    if not existing.any():
        return existing
    return existing & (strength >= np.quantile(strength[existing], backbone))


def filtration_levels(
    n_levels=10, low=DEFAULT_FILTRATION_LOW, high=DEFAULT_FILTRATION_HIGH
):
    """Backbone quantiles of the continuous filtration, evenly spaced in log-density.

    Level ``k`` keeps a density ``(1 - low) * ((1 - high) / (1 - low)) ** (k / (K - 1))``
    of the existing connections, so consecutive levels keep the same fraction fewer
    connections and more levels sit at the high end.

    Parameters
    ----------
    n_levels : int, default=10
        Number of levels ``K >= 1``. ``K = 1`` gives ``[low]``.
    low : float in [0, 1), default=0.9
        First (lowest) backbone quantile (measured: see docs/experiments.md).
    high : float in [0, 1), default=0.99
        Last (highest) backbone quantile; must exceed ``low`` when ``K > 1``
        (measured: see docs/experiments.md).

    Returns
    -------
    ndarray of float64, shape (n_levels,)
        Strictly increasing backbone quantiles from ``low`` to ``high``.
    """
    n_levels = check_number(n_levels, "n_levels", 1, None, closed="left", kind=numbers.Integral)
    low = check_number(low, "low", 0.0, 1.0, closed="left")
    high = check_number(high, "high", 0.0, 1.0, closed="left")
    if n_levels == 1:
        return np.array([float(low)])
    if not low < high:
        raise ValueError(f"`low` must be smaller than `high`; got low={low!r}, high={high!r}.")
    levels = 1.0 - np.geomspace(1.0 - low, 1.0 - high, int(n_levels))
    levels[0], levels[-1] = low, high
    return levels


def check_levels(levels):
    """Validate backbone quantiles: ``levels`` (a non-empty 1-D sequence of floats in
    [0, 1), or None for :func:`filtration_levels` ``()``) as a float64 array.

    Raises a ValueError naming ``levels`` and the range when they are empty, not 1-D,
    not numeric or outside [0, 1).
    """
    if levels is None:
        return filtration_levels()
    try:
        values = np.atleast_1d(np.asarray(levels, dtype=np.float64))
    except (TypeError, ValueError):
        values = np.array([np.nan])
    if values.ndim != 1 or values.size == 0 or not np.all((values >= 0) & (values < 1)):
        raise ValueError("`levels` must be a non-empty 1-D sequence of backbone quantiles in "
                         f"[0, 1); got {levels!r}.")
    return values
