"""The lattice pruning rule as pure functions on strengths (docs/methods/lattice.md section 5).

Connections are addressed by flat indices into ``strength.ravel()`` (C order): index
``i * n + j`` is the connection ``i -> j``.  Only existing connections
(``strength > 0``) are ever returned.
"""

import numpy as np

from .validation import check_number, check_strength, check_values

__all__ = ["removal_order", "structural_removals", "structural_neurons"]


def _check_protected_mask(protected, n):
    protected = check_values(protected, "protected", (n,))
    if not np.all((protected == 0) | (protected == 1)):
        raise ValueError("`protected` must be a boolean mask (meet-irreducible neurons) when "
                         "graded=False; for persistence values in [0, 1] pass graded=True.")
    return protected == 1


def _check_centrality(centrality, n):
    centrality = check_values(centrality, "centrality", (n,)).astype(np.float64)
    if np.any(centrality < 0):
        raise ValueError("`centrality` must be non-negative.")
    return centrality


def _existing_connections(strength):
    flat = strength.ravel()
    index = np.flatnonzero(flat > 0)
    return index, index // strength.shape[0], flat[index]


def removal_order(strength, protected, centrality, graded=False):
    """Existing connections sorted by removal priority, first removed first.

    Parameters
    ----------
    strength : array-like of shape (n, n)
        Non-negative strengths, ``strength[i, j]`` for ``i -> j``; zero = absent.
    protected : array-like of shape (n,)
        ``graded=False``: boolean mask of meet-irreducible neurons.
        ``graded=True``: irreducibility persistence in [0, 1].
    centrality : array-like of shape (n,)
        Non-negative centrality of every neuron.
    graded : bool, default=False
        Binary rule: first the outgoing connections of neurons that are *not*
        protected, lowest ``centrality[i] * strength[i, j]`` first, then all the others
        by strength. Graded rule: lexicographic by (persistence of ``i``, centrality of
        ``i``, strength). Remaining ties: lower strength, then lower flat index.

    Returns
    -------
    ndarray of int64, shape (n_existing,)
        A permutation of the flat indices of the connections with ``strength > 0``.
    """
    if not isinstance(graded, (bool, np.bool_)):
        raise ValueError(f"`graded` must be True or False; got {graded!r}.")
    strength = check_strength(strength)
    n = strength.shape[0]
    centrality = _check_centrality(centrality, n)
    index, source, value = _existing_connections(strength)
    if graded:
        persistence = check_values(protected, "protected", (n,)).astype(np.float64)
        if np.any((persistence < 0) | (persistence > 1)):
            raise ValueError("`protected` must be persistence values in [0, 1] when graded=True.")
        keys = (index, value, centrality[source], persistence[source])
    else:
        mask = _check_protected_mask(protected, n)
        kept_group = mask[source]
        primary = np.where(kept_group, value, centrality[source] * value)
        keys = (index, value, primary, kept_group)
    return index[np.lexsort(keys)].astype(np.int64)


def structural_removals(strength, protected, centrality, centrality_quantile):
    """Connections removed when the structure decides the sparsity (``sparsity=None``).

    Exactly the existing outgoing connections of the neurons that are not protected
    and whose centrality is strictly below the ``centrality_quantile``-quantile of the
    centralities of all neurons.

    Parameters
    ----------
    strength : array-like of shape (n, n)
        Non-negative strengths, ``strength[i, j]`` for ``i -> j``; zero = absent.
    protected : array-like of bool, shape (n,)
        Meet-irreducible neurons (never pruned by this rule).
    centrality : array-like of shape (n,)
        Non-negative centrality of every neuron.
    centrality_quantile : float in [0, 1]
        Quantile (linear interpolation) of all neurons' centralities used as the
        threshold; 0 removes nothing.

    Returns
    -------
    ndarray of int64
        Sorted flat indices into ``strength.ravel()``.
    """
    quantile = check_number(centrality_quantile, "centrality_quantile", 0.0, 1.0)
    strength = check_strength(strength)
    n = strength.shape[0]
    centrality = _check_centrality(centrality, n)
    mask = _check_protected_mask(protected, n)
    index, source, _ = _existing_connections(strength)
    if n == 0:
        return index.astype(np.int64)
    pruned_neuron = structural_neurons(mask, centrality, quantile)
    return index[pruned_neuron[source]].astype(np.int64)


def structural_neurons(protected, centrality, centrality_quantile):
    """The neurons whose outgoing connections :func:`structural_removals` removes (or that
    unit pruning removes whole when the structure decides): not protected, and with a
    centrality strictly below the ``centrality_quantile``-quantile of all neurons'.

    Returns
    -------
    ndarray of bool, shape (n,)
    """
    quantile = check_number(centrality_quantile, "centrality_quantile", 0.0, 1.0)
    n = len(np.atleast_1d(centrality))
    centrality = _check_centrality(centrality, n)
    mask = _check_protected_mask(protected, n)
    if n == 0:
        return mask
    return ~mask & (centrality < np.quantile(centrality, float(quantile)))
