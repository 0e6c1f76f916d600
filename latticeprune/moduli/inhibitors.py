"""Inhibitor functions: turn distances into penalty weights ``R_ij = f(d_ij)``.

Every function accepts a NumPy array (or array-like) or a ``torch.Tensor`` and
returns the same kind, so the torch path stays differentiable.

=========  ===========================================  ==============
name       f(d)                                         f(0)
=========  ===========================================  ==============
square     d^2 (diffusion)                              0
gauss      100 exp(-d^2 / 3)                            100
DoG        100 (exp(-d^2 / 5) - exp(-4 d^2))            0
ripple     100 exp(-d / 5) cos^2(pi d / 5)              100
=========  ===========================================  ==============

``ripple`` (docs/methods/moduli.md leaves it to us) is a decaying sinusoid:
``cos^2(pi d / 5) = (1 + cos(2 pi d / 5)) / 2`` oscillates with period 5 (the round
radius, half the flat side) under an exponential envelope of decay length 5.
It is kept non-negative, like the other inhibitors, so the penalty never rewards
large weights even without ``invert``; it vanishes at ``d = 2.5, 7.5, ...``.
"""

import math

import numpy as np
import torch
from sklearn.utils import check_random_state

__all__ = [
    "INHIBITOR_NAMES",
    "square",
    "gauss",
    "difference_of_gaussians",
    "ripple",
    "get_inhibitor",
    "invert",
    "permute",
]


def _as_array(values):
    """The values as a tensor or float ndarray, and their array library."""
    if isinstance(values, torch.Tensor):
        return values, torch
    return np.asarray(values, dtype=float), np


def square(distances):
    """Diffusion inhibitor ``d^2``."""
    d, _ = _as_array(distances)
    return d * d


def gauss(distances):
    """Gaussian inhibitor ``100 exp(-d^2 / 3)``."""
    d, xp = _as_array(distances)
    return 100.0 * xp.exp(-(d * d) / 3.0)


def difference_of_gaussians(distances):
    """Difference of Gaussians ``100 (exp(-d^2 / 5) - exp(-4 d^2))`` (name ``"DoG"``)."""
    d, xp = _as_array(distances)
    return 100.0 * (xp.exp(-(d * d) / 5.0) - xp.exp(-4.0 * d * d))


def ripple(distances):
    """Decaying sinusoid ``100 exp(-d / 5) cos^2(pi d / 5)`` (non-negative)."""
    d, xp = _as_array(distances)
    wave = xp.cos(math.pi * d / 5.0)
    return 100.0 * xp.exp(-d / 5.0) * wave * wave


_INHIBITORS = {
    "DoG": difference_of_gaussians,
    "gauss": gauss,
    "ripple": ripple,
    "square": square,
}
INHIBITOR_NAMES = tuple(_INHIBITORS)


def get_inhibitor(name):
    """Return the inhibitor function called ``name``.

    Parameters
    ----------
    name : {"DoG", "gauss", "ripple", "square"}

    Returns
    -------
    inhibitor : callable
        Maps an array or tensor of distances to penalty weights, elementwise.
    """
    if not isinstance(name, str) or name not in _INHIBITORS:
        raise ValueError(f"Unknown inhibitor {name!r}; valid names are {list(INHIBITOR_NAMES)}.")
    return _INHIBITORS[name]


def invert(penalty):
    """Inverted penalty ``max(R) - R`` (near pairs cheap for peaked inhibitors).

    Parameters
    ----------
    penalty : array-like or Tensor

    Returns
    -------
    inverted : ndarray or Tensor, same shape, minimum 0.
    """
    R, _ = _as_array(penalty)
    return R.max() - R


def permute(penalty, random_state=None):
    """Shuffle the entries of ``R`` (all of them, across rows and columns).

    The multiset of values is kept; the result is in general not symmetric.

    Parameters
    ----------
    penalty : array-like or Tensor
    random_state : int, RandomState instance or None
        Seed of the shuffle (same seed, same shuffle).

    Returns
    -------
    permuted : ndarray or Tensor, same shape.
    """
    R, _ = _as_array(penalty)
    flat = R.reshape(-1)
    order = check_random_state(random_state).permutation(flat.shape[0])
    if isinstance(R, torch.Tensor):
        order = torch.as_tensor(order, device=R.device)
    return flat[order].reshape(R.shape)
