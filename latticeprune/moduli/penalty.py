"""The moduli penalty: the matrix ``R`` of a layer and the loss term it defines.

Orientation.  ``R[i, j]`` is the weight of the connection from presynaptic unit
``i`` to postsynaptic unit ``j``.  PyTorch recurrent weights ``W_hh`` have shape
``(n_gates * n, n)`` and compute ``W_hh @ h``, so ``W_hh[g * n + j, i]`` connects
unit ``i`` to unit ``j`` in gate block ``g`` (RNN 1 block, GRU 3, LSTM 4).
Hence ``R[i, j]`` multiplies ``W_hh[g * n + j, i]`` for every ``g``: the matrix
laid over ``W_hh`` is ``R.T`` stacked ``n_gates`` times.  For a single
embedding and no permutation ``R`` is symmetric and this is moot; with
``permute=True`` or ``two_embeddings=True`` it is not.
"""

import numpy as np
import torch
from sklearn.utils import check_random_state

from . import inhibitors
from .spaces import check_integer, get_space

__all__ = ["penalty_matrix", "penalty_from_points", "moduli_penalty"]


def _check_bool(value, name):
    if not isinstance(value, (bool, np.bool_)):
        raise ValueError(f"{name} must be True or False; got {value!r}.")
    return bool(value)


def penalty_from_points(points, space="torus", inhibitor="DoG", invert=True, *,
                        post_points=None, **space_params):
    """Penalty matrix ``R[i, j] = f(d(points[i], post_points[j]))`` from given points.

    Works on NumPy arrays and on torch tensors; with tensors (e.g. trainable
    points, ``requires_grad=True``) autograd differentiates through the metric,
    the inhibitor and ``invert``.

    Parameters
    ----------
    points : array-like or Tensor of shape (n, point_dim)
        Points of the presynaptic units.
    space : str or Space, default="torus"
        Moduli space (see ``get_space``).
    inhibitor : {"DoG", "gauss", "ripple", "square"}, default="DoG"
    invert : bool, default=True
        Replace ``R`` by ``max(R) - R``.
    post_points : array-like or Tensor of shape (m, point_dim), default=None
        Points of the postsynaptic units; ``None`` uses ``points`` (one embedding).
    **space_params
        Parameters of the space when ``space`` is a name.

    Returns
    -------
    R : ndarray or Tensor of shape (n, m)
        For ``space="standard"`` all ones, whatever ``inhibitor`` and ``invert``.
    """
    space = get_space(space, **space_params)
    inhibit = inhibitors.get_inhibitor(inhibitor)
    invert = _check_bool(invert, "invert")
    distances = space.pairwise(points, post_points)
    if space.name == "standard":
        return (torch if isinstance(distances, torch.Tensor) else np).ones_like(distances)
    R = inhibit(distances)
    return inhibitors.invert(R) if invert else R


def penalty_matrix(n, moduli="torus", inhibitor="DoG", invert=True, permute=False,
                   random_state=None, *, two_embeddings=False, return_points=False,
                   **space_params):
    """Sample an embedding of ``n`` units and return their penalty matrix ``R``.

    Steps: sample points uniformly (``random_state``), ``R_ij = f(d(p_i, q_j))``,
    then ``max(R) - R`` if ``invert``, then shuffle all entries if ``permute``
    (the shuffle draws from the same generator, after the points).

    Parameters
    ----------
    n : int
        Number of hidden units, >= 1.
    moduli : str, default="torus"
        One of ``SPACE_NAMES``.
    inhibitor : {"DoG", "gauss", "ripple", "square"}, default="DoG"
    invert : bool, default=True
    permute : bool, default=False
        Control: shuffle the entries of ``R`` keeping their multiset.
    random_state : int, RandomState instance or None
    two_embeddings : bool, default=False
        Sample separate presynaptic points ``p`` and postsynaptic points ``q``
        (docs/methods/moduli.md section 1); by default ``q = p``.
    return_points : bool, default=False
        Also return the points.
    **space_params
        Space parameters, e.g. ``dim`` for ``torus``.

    Returns
    -------
    R : ndarray of shape (n, n)
        ``R[i, j]`` weighs the connection from unit ``i`` to unit ``j``.  For
        ``moduli="standard"`` all ones (plain L1 / L2) regardless of
        ``inhibitor``, ``invert`` and ``permute``.
    points : ndarray of shape (n, point_dim), or tuple (pre, post)
        Only if ``return_points``; a tuple if ``two_embeddings``.
    """
    n = check_integer(n, "n", 1)
    space = get_space(moduli, **space_params)
    permute = _check_bool(permute, "permute")
    two_embeddings = _check_bool(two_embeddings, "two_embeddings")
    rng = check_random_state(random_state)
    pre = space.sample(n, rng)
    post = space.sample(n, rng) if two_embeddings else None
    R = penalty_from_points(pre, space, inhibitor, invert, post_points=post)
    if permute and space.name != "standard":
        R = inhibitors.permute(R, rng)
    if not return_points:
        return R
    return R, ((pre, post) if two_embeddings else pre)


def moduli_penalty(weight, R, n_gates=1, norm=1):
    """Moduli penalty of one recurrent weight: ``mean(R_tiled * |W|^norm)``.

    Parameters
    ----------
    weight : Tensor of shape (n_gates * n, n)
        Recurrent weight ``W_hh`` in PyTorch layout (rows: gate blocks of
        postsynaptic units; columns: presynaptic units).
    R : array-like or Tensor of shape (n, n)
        Penalty matrix, ``R[i, j]`` for the connection from unit ``i`` to ``j``;
        a tensor keeps its autograd graph (trainable points).
    n_gates : int, default=1
        Gate blocks in ``weight``: 1 (Elman RNN), 3 (GRU), 4 (LSTM).
    norm : {1, 2}, default=1
        Exponent k of ``|W|^k``.

    Returns
    -------
    penalty : Tensor of shape ()
        ``sum_{g, i, j} R[i, j] |W[g n + j, i]|^k / (n_gates n^2)``.
    """
    if not isinstance(weight, torch.Tensor) or weight.ndim != 2:
        raise ValueError("weight must be a 2-D torch.Tensor of shape (n_gates * n, n).")
    n_gates = check_integer(n_gates, "n_gates (1 RNN, 3 GRU, 4 LSTM)", 1)
    if isinstance(norm, bool) or norm not in (1, 2):
        raise ValueError(f"norm must be 1 or 2; got {norm!r}.")
    R = torch.as_tensor(R if isinstance(R, torch.Tensor) else np.asarray(R, dtype=float))
    R = R.to(weight)
    if R.ndim != 2 or R.shape[0] != R.shape[1]:
        raise ValueError(f"R must be a square (n, n) matrix; got shape {tuple(R.shape)}.")
    n = R.shape[0]
    if tuple(weight.shape) != (n_gates * n, n):
        raise ValueError(
            f"weight must have shape (n_gates * n, n) = ({n_gates * n}, {n}) for R of "
            f"shape ({n}, {n}) and n_gates={n_gates}; got {tuple(weight.shape)}."
        )
    magnitude = weight.abs() if norm == 1 else weight * weight
    # Row g*n + j, column i of the tiled matrix holds R[i, j].
    tiled = R.T.repeat(n_gates, 1)
    return (tiled * magnitude).mean()
