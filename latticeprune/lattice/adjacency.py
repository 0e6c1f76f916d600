"""Binary adjacency on a backbone of the strongest connections, and its filtration.

A connection ``i -> j`` with strength ``strength[i, j] > 0`` *exists*; a zero strength
is an absent connection and is never an edge, at any backbone level.  The backbone
threshold is a quantile of the strengths of the existing connections only, so the
binary adjacency keeps about a fraction ``1 - backbone`` of them whatever the density
of the weight matrix (docs/methods/lattice.md section 2).
"""

import numbers

import numpy as np
import scipy.sparse

__all__ = [
    "DEFAULT_FILTRATION_HIGH",
    "DEFAULT_FILTRATION_LOW",
    "binary_adjacency",
    "check_adjacency",
    "check_strength",
    "filtration_levels",
    "irreducibility_persistence",
]

#: Lowest default filtration level.  docs/methods/lattice.md section 6: on a trained LSTM-128 the
#: binary adjacency is strongly connected with pairwise incomparable extents (every
#: neuron meet-irreducible) up to backbone 0.8; structure appears from about 0.9.
DEFAULT_FILTRATION_LOW = 0.9
#: Highest default filtration level: at 0.99 about 1% of the connections survive
#: (52/128 meet-irreducible, 107 strongly connected components in section 6).
DEFAULT_FILTRATION_HIGH = 0.99


def _as_dense(matrix):
    if scipy.sparse.issparse(matrix):
        return matrix.toarray()
    return np.asarray(matrix)


def _check_square(matrix, name):
    if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1]:
        raise ValueError(
            f"`{name}` must be a square 2-D matrix (neurons x neurons); got shape "
            f"{matrix.shape}."
        )
    if matrix.dtype.kind not in "biuf":
        raise ValueError(f"`{name}` must be numeric or boolean; got dtype {matrix.dtype}.")
    if matrix.dtype.kind == "f" and not np.all(np.isfinite(matrix)):
        raise ValueError(f"`{name}` must be finite (no NaN or inf).")


def check_adjacency(adjacency, name="adjacency"):
    """Validate a binary adjacency matrix and return it as a boolean array.

    Parameters
    ----------
    adjacency : array-like or scipy sparse matrix of shape (n, n)
        ``adjacency[i, j] = 1`` (or ``True``) for a connection ``i -> j``; only the
        values 0 and 1 are allowed.
    name : str, default="adjacency"
        Parameter name used in error messages.

    Returns
    -------
    ndarray of bool, shape (n, n)

    Raises
    ------
    ValueError
        If the matrix is not square and 2-D, not finite, or has values other than 0/1.
    """
    matrix = _as_dense(adjacency)
    _check_square(matrix, name)
    if matrix.dtype == bool:
        return matrix
    if not np.all((matrix == 0) | (matrix == 1)):
        bad = np.unique(matrix[(matrix != 0) & (matrix != 1)])[:5]
        raise ValueError(
            f"`{name}` must be a 0/1 (or boolean) matrix; found values such as "
            f"{bad.tolist()}. Use binary_adjacency(strength, backbone) to threshold "
            "connection strengths."
        )
    return matrix == 1


def check_strength(strength, name="strength"):
    """Validate a connection-strength matrix and return it as a float array.

    Parameters
    ----------
    strength : array-like or scipy sparse matrix of shape (n, n)
        ``strength[i, j] >= 0`` is the strength of the connection ``i -> j``; zero
        means the connection is absent.
    name : str, default="strength"
        Parameter name used in error messages.

    Returns
    -------
    ndarray of float64, shape (n, n)

    Raises
    ------
    ValueError
        If the matrix is not square and 2-D, not finite, or has negative entries.
    """
    matrix = _as_dense(strength)
    _check_square(matrix, name)
    matrix = matrix.astype(np.float64, copy=False)
    if np.any(matrix < 0):
        raise ValueError(
            f"`{name}` must be non-negative (connection strengths are norms); found "
            f"minimum {matrix.min()!r}."
        )
    return matrix


def _check_quantile(value, name, *, upper_open):
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"`{name}` must be a real number; got {value!r}.")
    value = float(value)
    upper_ok = value < 1.0 if upper_open else value <= 1.0
    if not (value >= 0.0 and upper_ok):
        interval = "[0, 1)" if upper_open else "[0, 1]"
        raise ValueError(f"`{name}` must be in {interval}; got {value!r}.")
    return value


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
    q = _check_quantile(backbone, "backbone", upper_open=True)
    existing = matrix > 0
    if not existing.any():
        return existing
    tau = np.quantile(matrix[existing], q)
    return existing & (matrix >= tau)


def filtration_levels(
    n_levels=10, low=DEFAULT_FILTRATION_LOW, high=DEFAULT_FILTRATION_HIGH
):
    """Backbone quantiles of the continuous filtration, evenly spaced in log-density.

    Level ``k`` keeps a density ``(1 - low) * ((1 - high) / (1 - low)) ** (k / (K - 1))``
    of the existing connections, so consecutive levels keep the same fraction fewer
    connections and more levels sit at the high end, where docs/methods/lattice.md section 6 shows
    the structure changing fastest (meet-irreducible 122/128 at 0.9, 109 at 0.95, 52
    at 0.99).  The defaults 0.9 and 0.99 bracket that informative range; below 0.9 the
    trained LSTM-128 graph is strongly connected and every neuron is irreducible.

    Parameters
    ----------
    n_levels : int, default=10
        Number of levels ``K >= 1``. ``K = 1`` gives ``[low]``.
    low : float in [0, 1), default=0.9
        First (lowest) backbone quantile.
    high : float in [0, 1), default=0.99
        Last (highest) backbone quantile; must exceed ``low`` when ``K > 1``.

    Returns
    -------
    ndarray of float64, shape (n_levels,)
        Strictly increasing backbone quantiles from ``low`` to ``high``.
    """
    if isinstance(n_levels, bool) or not isinstance(n_levels, numbers.Integral) or n_levels < 1:
        raise ValueError(f"`n_levels` must be an integer >= 1; got {n_levels!r}.")
    low = _check_quantile(low, "low", upper_open=True)
    high = _check_quantile(high, "high", upper_open=True)
    if n_levels == 1:
        return np.array([low])
    if not low < high:
        raise ValueError(f"`low` must be smaller than `high`; got low={low!r}, high={high!r}.")
    density = np.geomspace(1.0 - low, 1.0 - high, int(n_levels))
    levels = 1.0 - density
    levels[0], levels[-1] = low, high
    return levels


def irreducibility_persistence(strength, levels=None, order="context"):
    """Fraction of filtration levels at which each neuron is meet-irreducible.

    The graded ("continuous-valued adjacency") counterpart of the binary verdict
    (docs/methods/lattice.md section 2): at every backbone level the binary adjacency is built and
    :func:`~latticeprune.lattice.meet_irreducible` is evaluated.

    Parameters
    ----------
    strength : array-like of shape (n, n)
        Non-negative connection strengths, ``strength[i, j]`` for ``i -> j``.
    levels : array-like of float in [0, 1), optional
        Backbone quantiles; default :func:`filtration_levels` ``()``.
    order : {"context", "reachability"}, default="context"
        Lattice in which irreducibility is evaluated.

    Returns
    -------
    ndarray of float64, shape (n,)
        Persistence in ``[0, 1]``.
    """
    from .context import meet_irreducible  # deferred: context.py imports this module

    matrix = check_strength(strength)
    if levels is None:
        levels = filtration_levels()
    levels = np.atleast_1d(np.asarray(levels, dtype=np.float64))
    if levels.ndim != 1 or levels.size == 0:
        raise ValueError("`levels` must be a non-empty 1-D sequence of backbone quantiles.")
    if not np.all((levels >= 0) & (levels < 1)):
        raise ValueError(f"`levels` must lie in [0, 1); got {levels.tolist()}.")
    counts = np.zeros(matrix.shape[0], dtype=np.int64)
    for level in levels:
        counts += meet_irreducible(binary_adjacency(matrix, float(level)), order=order)
    return counts / levels.size
