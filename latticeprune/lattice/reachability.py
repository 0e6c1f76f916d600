"""The reachability order: condensation, closure, Hasse diagram, irreducible elements.

``order="reachability"`` (docs/methods/lattice.md 3(b)): ``i <= j`` iff ``j`` is reachable from
``i`` (reflexive-transitive closure of the adjacency).  Neurons in one strongly
connected component are one element, so the order lives on the condensation, a DAG.
Components are numbered in a topological order (by longest-path depth from a source,
ties by smallest neuron index), so every condensation edge goes from a smaller to a
larger component index.

The closure is computed with bitsets, one depth layer at a time (a layer's successors
all lie in deeper layers), so the cost is ``O(edges * components / 8)`` bytes of
vectorised OR work.  An element ``x`` is meet-irreducible in the Dedekind-MacNeille
completion iff the common lower bounds of ``U_x = {y : y > x}`` differ from the
down-set of ``x``; every ``y > x`` lies above an upper cover of ``x``, so that set of
common lower bounds is the intersection of the down-sets of the upper covers only.
A maximal ``x`` (no cover) is meet-irreducible unless it is the only maximal element
(the top).  Join-irreducibility is the same test on the reversed graph.
"""

from typing import NamedTuple

import numpy as np
import scipy.sparse
from scipy.sparse.csgraph import connected_components

from .adjacency import check_adjacency

__all__ = [
    "HasseDiagram",
    "dag_depth",
    "hasse_diagram",
    "join_irreducible_reachability",
    "meet_irreducible_reachability",
    "reachability_closure",
]

# Largest block of gathered bitset rows materialised at once (bytes).
_BLOCK_BYTES = 1 << 26


class HasseDiagram(NamedTuple):
    """Cover relation of the condensed reachability poset.

    Attributes
    ----------
    edges : ndarray of int64, shape (n_edges, 2)
        Rows ``(x, y)``: component ``y`` covers component ``x`` (``x < y`` with nothing
        in between), sorted lexicographically; ``x < y`` as integers too.
    labels : ndarray of int64, shape (n,)
        Component index of every neuron.
    n_components : int
        Number of strongly connected components (poset elements).
    """

    edges: np.ndarray
    labels: np.ndarray
    n_components: int


class _CondensedPoset(NamedTuple):
    labels: np.ndarray  # (n,) component of every neuron, topologically numbered
    n_components: int
    indptr: np.ndarray  # condensation DAG in CSR form (no self-loops, no duplicates)
    indices: np.ndarray
    reach: np.ndarray  # (k, ceil(k/64)) uint64 bitsets: bit y of row x iff x <= y
    cover: np.ndarray  # (n_dag_edges,) bool: is the DAG edge a cover?


def _csr_from_edges(sources, targets, n):
    """Sorted CSR of the edge set (duplicates merged); k <= n so k x k bytes is affordable."""
    dense = np.zeros((n, n), dtype=bool)
    dense[sources, targets] = True
    sources, targets = np.nonzero(dense)
    indptr = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(np.bincount(sources, minlength=n), out=indptr[1:])
    return indptr, targets.astype(np.int64)


def _gather_rows(indptr, indices, rows):
    starts = indptr[rows]
    counts = indptr[rows + 1] - starts
    offsets = np.repeat(starts - np.cumsum(counts) + counts, counts)
    return indices[offsets + np.arange(counts.sum())]


def _depth_layers(indptr, indices, n):
    """Longest-path depth from a source for every node of a DAG (Kahn, by layers)."""
    indegree = np.bincount(indices, minlength=n)
    depth = np.empty(n, dtype=np.int64)
    frontier = np.flatnonzero(indegree == 0)
    level = 0
    while frontier.size:
        depth[frontier] = level
        targets = _gather_rows(indptr, indices, frontier)
        np.subtract.at(indegree, targets, 1)
        ready = np.zeros(n, dtype=bool)
        ready[targets[indegree[targets] == 0]] = True
        frontier = np.flatnonzero(ready)
        level += 1
    return depth


def _segment_reduce(ufunc, bits, indptr, indices, start, stop):
    """``ufunc``-reduce ``bits[indices[indptr[r]:indptr[r + 1]]]`` for rows in [start, stop).

    Returns the rows with at least one entry and their reduced bitsets.
    """
    rows = np.flatnonzero(np.diff(indptr[start : stop + 1])) + start
    out = np.empty((rows.size, bits.shape[1]), dtype=bits.dtype)
    if rows.size == 0:
        return rows, out
    starts, ends = indptr[rows], indptr[rows + 1]
    max_entries = max(1, _BLOCK_BYTES // max(1, bits.shape[1] * bits.itemsize))
    i = 0
    while i < rows.size:
        j = max(i + 1, int(np.searchsorted(ends, starts[i] + max_entries, side="right")))
        block = bits[indices[starts[i] : ends[j - 1]]]
        out[i:j] = ufunc.reduceat(block, starts[i:j] - starts[i], axis=0)
        i = j
    return rows, out


def _bitsets(k):
    """Zeroed (k, k)-bit sets as uint64 words (fast OR/AND); bits addressed via uint8."""
    return np.zeros((k, 8 * ((k + 63) // 64)), dtype=np.uint8).view(np.uint64)


def _test_bits(words, rows, columns):
    bits = words.view(np.uint8)
    return ((bits[rows, columns >> 3] >> (columns & 7).astype(np.uint8)) & 1).astype(bool)


def _condense(matrix):
    """Condensation, closure and cover relation of a validated boolean adjacency."""
    n = matrix.shape[0]
    graph = scipy.sparse.csr_array(matrix)
    k, raw = connected_components(graph, directed=True, connection="strong")
    src, dst = graph.nonzero()
    src, dst = raw[src], raw[dst]
    between = src != dst
    indptr, indices = _csr_from_edges(src[between], dst[between], k)

    # Number components topologically: by depth, then by smallest neuron index.
    depth = _depth_layers(indptr, indices, k)
    smallest = np.full(k, n, dtype=np.int64)
    np.minimum.at(smallest, raw, np.arange(n))
    order = np.lexsort((smallest, depth))
    rank = np.empty(k, dtype=np.int64)
    rank[order] = np.arange(k)
    labels = rank[raw]
    edge_src = np.repeat(np.arange(k), np.diff(indptr))
    indptr, indices = _csr_from_edges(rank[edge_src], rank[indices], k)
    depth = depth[order]

    # Reflexive-transitive closure, deepest layer first.
    nodes = np.arange(k)
    reach = _bitsets(k)
    reach.view(np.uint8)[nodes, nodes >> 3] = (1 << (nodes & 7)).astype(np.uint8)
    strict = np.zeros_like(reach)  # strict[x]: elements strictly above x
    bounds = np.concatenate(([0], np.flatnonzero(np.diff(depth)) + 1, [k]))
    for start, stop in zip(bounds[-2::-1], bounds[:0:-1]):
        rows, above = _segment_reduce(np.bitwise_or, reach, indptr, indices, start, stop)
        strict[rows] = above
        reach[rows] |= above

    # A DAG edge x -> y is a cover iff y is not strictly above another successor of x.
    rows, implied = _segment_reduce(np.bitwise_or, strict, indptr, indices, 0, k)
    redundant = np.zeros_like(reach)
    redundant[rows] = implied
    edge_src = np.repeat(nodes, np.diff(indptr))
    cover = ~_test_bits(redundant, edge_src, indices)
    return _CondensedPoset(labels, k, indptr, indices, reach, cover)


def _meet_irreducible_elements(poset):
    k = poset.n_components
    edge_src = np.repeat(np.arange(k), np.diff(poset.indptr))
    cover_src = edge_src[poset.cover]
    cover_indices = poset.indices[poset.cover]
    cover_indptr = np.zeros(k + 1, dtype=np.int64)
    np.cumsum(np.bincount(cover_src, minlength=k), out=cover_indptr[1:])

    # down[x] = bitset of {z : z <= x}, the transpose of the closure.
    closure = np.unpackbits(poset.reach.view(np.uint8), axis=1, count=k, bitorder="little")
    down = _bitsets(k)
    packed = np.packbits(closure.T, axis=1, bitorder="little")
    down.view(np.uint8)[:, : packed.shape[1]] = packed
    del closure, packed

    verdict = np.zeros(k, dtype=bool)
    maximal = cover_indptr[1:] == cover_indptr[:-1]
    verdict[maximal] = np.count_nonzero(maximal) > 1  # a unique maximal is the top
    rows, lower_bounds = _segment_reduce(
        np.bitwise_and, down, cover_indptr, cover_indices, 0, k
    )
    verdict[rows] = np.any(lower_bounds != down[rows], axis=1)
    return verdict


def meet_irreducible_reachability(adjacency):
    """Meet-irreducible neurons in the completion of the reachability poset.

    Parameters
    ----------
    adjacency : array-like of shape (n, n)
        Binary adjacency, ``adjacency[i, j] = 1`` for a connection ``i -> j``.

    Returns
    -------
    ndarray of bool, shape (n,)
        Verdict of each neuron's strongly connected component in the
        Dedekind-MacNeille completion (exactly one upper cover).
    """
    matrix = check_adjacency(adjacency)
    if matrix.shape[0] == 0:
        return np.zeros(0, dtype=bool)
    poset = _condense(matrix)
    return _meet_irreducible_elements(poset)[poset.labels]


def join_irreducible_reachability(adjacency):
    """Join-irreducible neurons in the completion of the reachability poset.

    Parameters
    ----------
    adjacency : array-like of shape (n, n)
        Binary adjacency, ``adjacency[i, j] = 1`` for a connection ``i -> j``.

    Returns
    -------
    ndarray of bool, shape (n,)
        Verdict of each neuron's strongly connected component (exactly one lower
        cover): the completion of the reversed order is the dual lattice.
    """
    matrix = check_adjacency(adjacency)
    return meet_irreducible_reachability(np.ascontiguousarray(matrix.T))


def hasse_diagram(adjacency):
    """Cover relation of the condensed reachability poset.

    Parameters
    ----------
    adjacency : array-like of shape (n, n)
        Binary adjacency, ``adjacency[i, j] = 1`` for a connection ``i -> j``.

    Returns
    -------
    HasseDiagram
        ``edges`` (component pairs ``(x, y)`` with ``y`` covering ``x``), ``labels``
        (component of each neuron, topologically numbered) and ``n_components``.
    """
    matrix = check_adjacency(adjacency)
    if matrix.shape[0] == 0:
        return HasseDiagram(np.zeros((0, 2), dtype=np.int64), np.zeros(0, dtype=np.int64), 0)
    poset = _condense(matrix)
    edge_src = np.repeat(np.arange(poset.n_components), np.diff(poset.indptr))
    edges = np.column_stack((edge_src[poset.cover], poset.indices[poset.cover]))
    return HasseDiagram(edges.astype(np.int64), poset.labels, int(poset.n_components))


def reachability_closure(adjacency):
    """Reflexive-transitive closure of the condensation.

    Parameters
    ----------
    adjacency : array-like of shape (n, n)
        Binary adjacency, ``adjacency[i, j] = 1`` for a connection ``i -> j``.

    Returns
    -------
    closure : ndarray of bool, shape (k, k)
        ``closure[x, y]`` iff component ``y`` is reachable from component ``x``
        (``x <= y``); upper triangular with a true diagonal.
    labels : ndarray of int64, shape (n,)
        Component index of every neuron (as in :func:`hasse_diagram`).
    """
    matrix = check_adjacency(adjacency)
    if matrix.shape[0] == 0:
        return np.zeros((0, 0), dtype=bool), np.zeros(0, dtype=np.int64)
    poset = _condense(matrix)
    k = poset.n_components
    closure = np.unpackbits(poset.reach.view(np.uint8), axis=1, count=k, bitorder="little")
    closure = closure.astype(bool)
    return closure, poset.labels


def dag_depth(n_nodes, edges):
    """Longest-path depth of every node of a DAG (nodes without a predecessor: 0).

    Parameters
    ----------
    n_nodes : int
    edges : array-like of int, shape (n_edges, 2)
        Rows ``(x, y)`` for an edge ``x -> y``.

    Returns
    -------
    depth : ndarray of int64, shape (n_nodes,)

    Raises
    ------
    ValueError
        If the edges contain a cycle (strong components of ``scipy.sparse.csgraph``).
    """
    edges = np.asarray(edges, dtype=np.int64).reshape(-1, 2)
    graph = scipy.sparse.coo_array(
        (np.ones(len(edges)), (edges[:, 0], edges[:, 1])), shape=(n_nodes, n_nodes)
    )
    n_strong = connected_components(graph, directed=True, connection="strong")[0]
    if n_strong < n_nodes or np.any(edges[:, 0] == edges[:, 1]):
        raise ValueError("The edges contain a cycle; they are not the edges of a DAG.")
    return _depth_layers(*_csr_from_edges(edges[:, 0], edges[:, 1], n_nodes), n_nodes)
