"""The adding problem: a synthetic long-memory regression task for RNNs."""

import numbers

import numpy as np
from sklearn.utils import check_random_state, check_scalar

__all__ = ["make_adding_problem"]


def make_adding_problem(n_samples, n_steps, random_state=None):
    """Generate the adding problem (Hochreiter & Schmidhuber 1997; Le et al. 2015).

    Each sequence has ``n_steps`` steps of two features: a value drawn
    uniformly from [0, 1] and a marker (0 or 1). Exactly two steps carry the
    marker 1: one drawn uniformly from the first half of the sequence,
    steps ``0 .. n_steps // 2 - 1``, and one from the second half, steps
    ``n_steps // 2 .. n_steps - 1`` (the classic placement; the net must
    remember the first marked value across at least one step). The target is
    the sum of the two marked values, in [0, 2].

    The target has mean 1 and variance 2/12, so always predicting 1 gives a
    mean squared error of about 1/6 = 0.167: the baseline a model must beat.

    Parameters
    ----------
    n_samples : int
        Number of sequences, at least 1.
    n_steps : int
        Sequence length T, at least 2.
    random_state : int, RandomState instance or None, default=None
        Seed or generator (see :term:`Glossary <random_state>`).

    Returns
    -------
    X : ndarray of float32, shape (n_samples, n_steps, 2)
        ``X[:, :, 0]`` the values, ``X[:, :, 1]`` the markers.
    y : ndarray of float32, shape (n_samples,)
        Sum of the two marked values.

    Examples
    --------
    >>> from latticeprune.datasets import make_adding_problem
    >>> X, y = make_adding_problem(4, 10, random_state=0)
    >>> X.shape, y.shape
    ((4, 10, 2), (4,))
    >>> X[:, :, 1].sum(axis=1)
    array([2., 2., 2., 2.], dtype=float32)
    """
    check_scalar(n_samples, "n_samples", numbers.Integral, min_val=1)
    check_scalar(n_steps, "n_steps", numbers.Integral, min_val=2)
    rng = check_random_state(random_state)
    n_samples, n_steps = int(n_samples), int(n_steps)

    values = rng.uniform(0.0, 1.0, size=(n_samples, n_steps))
    half = n_steps // 2
    first = rng.randint(0, half, size=n_samples)
    second = rng.randint(half, n_steps, size=n_samples)
    rows = np.arange(n_samples)

    X = np.zeros((n_samples, n_steps, 2), dtype=np.float32)
    X[:, :, 0] = values
    X[rows, first, 1] = 1.0
    X[rows, second, 1] = 1.0
    # Sum the stored float32 values so that y is exactly reproducible from X.
    y = X[rows, first, 0] + X[rows, second, 0]
    return X, y.astype(np.float32)
