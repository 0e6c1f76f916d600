"""Input checks of the lattice functions: each parameter is checked once, errors name it.

Scalars go through :func:`sklearn.utils.check_scalar`; matrices and per-neuron vectors
through :func:`check_values`.  Every failure is a ``ValueError`` naming the parameter.
"""

import numbers

import numpy as np
import scipy.sparse
from sklearn.utils import check_scalar

__all__ = ["check_adjacency", "check_number", "check_strength", "check_values"]


def check_number(value, name, low, high=None, *, closed="both", kind=numbers.Real):
    """``check_scalar(value, name, kind, low, high, closed)``, every failure a ValueError.

    Booleans and NaN, which ``check_scalar`` lets through, are rejected too.
    """
    if isinstance(value, bool) or (isinstance(value, numbers.Real) and value != value):
        raise ValueError(f"`{name}` must be a number; got {value!r}.")
    try:
        return check_scalar(value, f"`{name}`", kind, min_val=low, max_val=high,
                            include_boundaries=closed)
    except TypeError as error:
        raise ValueError(str(error)) from None


def check_values(values, name, shape=None):
    """``values`` as a finite numeric or boolean ndarray of ``shape`` (None: square 2-D)."""
    values = values.toarray() if scipy.sparse.issparse(values) else np.asarray(values)
    square = values.ndim == 2 and values.shape[0] == values.shape[1]
    if not square if shape is None else values.shape != shape:
        want = "a square 2-D matrix (neurons x neurons)" if shape is None else f"of shape {shape}"
        raise ValueError(f"`{name}` must be {want}; got shape {values.shape}.")
    if values.dtype.kind not in "biuf":
        raise ValueError(f"`{name}` must be numeric or boolean; got dtype {values.dtype}.")
    if values.dtype.kind == "f" and not np.all(np.isfinite(values)):
        raise ValueError(f"`{name}` must be finite (no NaN or inf).")
    return values


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
    matrix = check_values(adjacency, name)
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
    """Validate non-negative connection strengths (zero: absent) as a float64 square matrix.

    Like :func:`check_adjacency`, but any finite value ``>= 0`` is allowed.
    """
    matrix = check_values(strength, name).astype(np.float64, copy=False)
    if np.any(matrix < 0):
        raise ValueError(
            f"`{name}` must be non-negative (connection strengths are norms); found "
            f"minimum {matrix.min()!r}."
        )
    return matrix
