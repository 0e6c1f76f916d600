"""Centrality of neurons in the weighted, directed connection graph (docs/methods/lattice.md section 4).

``weights[i, j] >= 0`` is the weight of the connection ``i -> j``.  Every kind returns a
non-negative vector summing to 1, finite and deterministic on every graph, including
disconnected graphs, graphs with dangling neurons (no outgoing weight) and the
all-zero matrix (uniform).
"""

import math

import numpy as np
import scipy.sparse
from scipy.sparse.csgraph import connected_components

from .validation import check_number, check_strength

__all__ = ["CENTRALITIES", "centrality"]

#: Valid values of the ``kind`` parameter.
CENTRALITIES = ("pagerank", "degree", "eigenvector")

_TOL = 1e-12
_EIGENVECTOR_MAX_ITER = 1000


def _operator(matrix):
    """The transposed matrix as a fast mat-vec operand (sparse when mostly zero)."""
    if np.count_nonzero(matrix) < 0.1 * matrix.size:
        return scipy.sparse.csr_array(matrix.T)
    return np.ascontiguousarray(matrix.T)


def _pagerank(weights, damping):
    n = weights.shape[0]
    out_strength = weights.sum(axis=1)
    dangling = out_strength == 0
    transition = weights / np.where(dangling, 1.0, out_strength)[:, None]
    transposed = _operator(transition)
    x = np.full(n, 1.0 / n)
    if damping == 0.0:
        return x
    # The L1 error contracts by `damping` per step from at most 2: this bounds the steps.
    max_iter = math.ceil(math.log(_TOL / 2.0) / math.log(damping)) + 1
    for _ in range(max_iter):
        previous = x
        x = damping * (transposed @ x + previous[dangling].sum() / n) + (1.0 - damping) / n
        x /= x.sum()
        if np.abs(x - previous).sum() < _TOL:
            break
    return x


def _degree(weights):
    total = weights.sum(axis=0) + weights.sum(axis=1)
    if total.sum() == 0:
        return np.full(weights.shape[0], 1.0 / weights.shape[0])
    return total / total.sum()


def _has_cycle(weights):
    if np.any(np.diag(weights) > 0):
        return True
    k, _ = connected_components(
        scipy.sparse.csr_array(weights > 0), directed=True, connection="strong"
    )
    return k < weights.shape[0]


def _eigenvector(weights):
    n = weights.shape[0]
    if not _has_cycle(weights):  # nilpotent: no principal eigenvector, all equal
        return np.full(n, 1.0 / n)
    # Perron bound rho <= min(max row sum, max column sum): shift by it, iterate I + W^T/s.
    scale = min(weights.sum(axis=0).max(), weights.sum(axis=1).max())
    transposed = _operator(weights / scale)
    x = np.full(n, 1.0 / n)
    for _ in range(_EIGENVECTOR_MAX_ITER):
        previous = x
        x = previous + transposed @ previous
        x /= x.sum()
        if np.abs(x - previous).sum() < _TOL:
            break
    return x


def centrality(weights, kind="pagerank", damping=0.85):
    """Centrality of every neuron of a weighted directed graph.

    Parameters
    ----------
    weights : array-like of shape (n, n)
        Non-negative weights, ``weights[i, j]`` for the connection ``i -> j``.
    kind : {"pagerank", "degree", "eigenvector"}, default="pagerank"
        ``"pagerank"``: PageRank with out-weight-normalised transitions; dangling
        neurons jump uniformly (as ``networkx.pagerank``). ``"degree"``: weighted
        in-degree plus out-degree. ``"eigenvector"``: principal left eigenvector
        (``x_j`` proportional to ``sum_i x_i w_ij``), by power iteration of the shifted
        matrix from the uniform vector; unique on strongly connected graphs, on other
        graphs the deterministic limit (at most 1000 steps), uniform on acyclic ones.
    damping : float in [0, 1), default=0.85
        PageRank damping factor; ignored by the other kinds.

    Returns
    -------
    ndarray of float64, shape (n,)
        Non-negative, summing to 1; uniform on the all-zero matrix.

    Raises
    ------
    ValueError
        If ``kind`` is unknown, ``damping`` is outside [0, 1), or ``weights`` is not a
        finite, non-negative square matrix.
    """
    if not isinstance(kind, str) or kind not in CENTRALITIES:
        raise ValueError(f"`kind` must be one of {list(CENTRALITIES)}; got {kind!r}.")
    damping = check_number(damping, "damping", 0.0, 1.0, closed="left")
    matrix = check_strength(weights, name="weights")
    if matrix.shape[0] == 0:
        return np.zeros(0)
    if kind == "pagerank":
        return _pagerank(matrix, float(damping))
    if kind == "degree":
        return _degree(matrix)
    return _eigenvector(matrix)
