"""Meet- and join-irreducible neurons of the dependency lattice, without enumeration.

``order="context"`` (docs/methods/lattice.md 3(a)): the binary adjacency is the formal context with
objects = postsynaptic neurons, attributes = presynaptic neurons and ``g I m`` iff
``m -> g``.  The extent ``m'`` of attribute ``m`` is row ``m`` of the adjacency.  The
attribute concept of ``m`` is meet-irreducible iff

    m' != intersection of { n' : n' strictly contains m' }    (empty intersection = G),

which is decided with two matrix products over the distinct extents: ``C = E E^T``
counts ``|m' & n'|`` (``n'`` strictly contains ``m'`` iff ``C[m, n] == |m'| < |n'|``),
and ``D = S (1 - E)`` counts, for every object ``g``, the strict supersets of ``m'``
missing ``g``; ``g`` lies in the intersection iff ``D[m, g] == 0``.  Both are float32
BLAS products of 0/1 matrices (integer counts, exact below 2**24); the second is
restricted to the non-empty rows and columns of ``S``, which on sparse backbones is a
small block, so the cost is about one ``n x n x n`` product.  Join-irreducible
postsynaptic neurons are the dual: the same test on the transposed adjacency.

``order="reachability"`` dispatches to :mod:`latticeprune.lattice.reachability`.
:func:`irreducibility_persistence` repeats the verdict at every level of a filtration
(one verdict per level).
"""

import numpy as np

from .adjacency import backbone_of, check_levels
from .reachability import meet_irreducible_components
from .validation import check_adjacency, check_strength

__all__ = ["ORDERS", "irreducibility_persistence", "join_irreducible", "meet_irreducible"]

#: Valid values of the ``order`` parameter.
ORDERS = ("context", "reachability")


def _decider(order):
    if not isinstance(order, str) or order not in ORDERS:
        raise ValueError(f"`order` must be one of {list(ORDERS)}; got {order!r}.")
    return meet_irreducible_components if order == "reachability" else _attribute_meet_irreducible


def _attribute_meet_irreducible(extents):
    """Meet-irreducibility (n_attributes,) of the attribute concepts of a boolean context
    whose row ``m`` is the extent ``m'``."""
    n_attributes, n_objects = extents.shape
    if n_attributes == 0:
        return np.zeros(0, dtype=bool)
    # Equal extents are one attribute concept: decide once per distinct extent.
    packed = np.packbits(extents, axis=1)
    _, first, inverse = np.unique(packed, axis=0, return_index=True, return_inverse=True)
    distinct = extents[first]
    # Products of 0/1 matrices are integer counts <= n: exact in float32 below 2**24.
    dtype = np.float32 if n_objects < 2**24 else np.float64
    E = distinct.astype(dtype)
    size = distinct.sum(axis=1)
    common = E @ E.T  # common[m, n] = |m' & n'|
    strict_superset = (common == size[:, None]) & (size[:, None] < size[None, :])
    del common
    # With no strict superset the intersection is G: irreducible iff m' != G (the top).
    verdict = size < n_objects
    # The second product only involves extents with (rows) or being (columns) strict
    # supersets; on sparse backbones that is a small block of S.
    rows = np.flatnonzero(strict_superset.any(axis=1))
    if rows.size:
        columns = np.flatnonzero(strict_superset[rows].any(axis=0))
        block = strict_superset[np.ix_(rows, columns)].astype(dtype)
        # missing[m, g] = number of strict supersets of m' that do not contain g.
        missing = block @ (1 - E[columns])
        intersection_size = np.count_nonzero(missing == 0, axis=1)
        # m' lies inside the intersection; irreducible iff the intersection is larger.
        verdict[rows] = intersection_size > size[rows]
    return verdict[np.asarray(inverse).reshape(-1)]


def meet_irreducible(adjacency, order="context"):
    """Neurons whose element of the dependency lattice is meet-irreducible.

    Parameters
    ----------
    adjacency : array-like of shape (n, n)
        Binary adjacency, ``adjacency[i, j] = 1`` for a connection ``i -> j``.
    order : {"context", "reachability"}, default="context"
        ``"context"``: attribute concepts of the concept lattice (a presynaptic neuron,
        identified by the set of neurons it drives). ``"reachability"``: the neuron's
        strongly connected component in the Dedekind-MacNeille completion of the
        reachability poset.

    Returns
    -------
    ndarray of bool, shape (n,)
        ``True`` where the neuron's element has exactly one upper cover. Neurons with
        equal extents (context) or in one strongly connected component
        (reachability) share the verdict; the top element is never irreducible.

    Raises
    ------
    ValueError
        If ``order`` is unknown or ``adjacency`` is not a square 0/1 matrix.
    """
    return _decider(order)(check_adjacency(adjacency))


def join_irreducible(adjacency, order="context"):
    """Neurons whose element has exactly one lower cover (the bottom never has).

    The dual of :func:`meet_irreducible`, same parameters and errors: object concepts
    (a postsynaptic neuron, identified by the neurons driving it) for ``"context"``,
    and for ``"reachability"`` the completion of the reversed order, which is the dual
    lattice.  Both are the meet test on the transposed adjacency.
    """
    decide = _decider(order)
    return decide(np.ascontiguousarray(check_adjacency(adjacency).T))


def irreducibility_persistence(strength, levels=None, order="context"):
    """Fraction of filtration levels at which each neuron is meet-irreducible.

    The graded ("continuous-valued adjacency") counterpart of the binary verdict
    (docs/methods/lattice.md section 2): at every backbone level the binary adjacency is
    built and the meet verdict evaluated, so the cost is one verdict per level.

    Parameters
    ----------
    strength : array-like of shape (n, n)
        Non-negative connection strengths, ``strength[i, j]`` for ``i -> j``.
    levels : array-like of float in [0, 1), optional
        Backbone quantiles (:func:`~latticeprune.lattice.check_levels`); default
        :func:`~latticeprune.lattice.filtration_levels` ``()``.
    order : {"context", "reachability"}, default="context"
        Lattice in which irreducibility is evaluated.

    Returns
    -------
    ndarray of float64, shape (n,)
        Persistence in ``[0, 1]``.
    """
    decide = _decider(order)
    matrix = check_strength(strength)
    levels = check_levels(levels)
    counts = np.zeros(matrix.shape[0], dtype=np.int64)
    for level in levels:
        counts += decide(backbone_of(matrix, float(level)))
    return counts / levels.size
