"""The adding problem: a synthetic long-memory regression task for RNNs."""

import numbers

import numpy as np
from sklearn.utils import check_random_state, check_scalar

__all__ = ["make_adding_problem"]


def make_adding_problem(n_samples, n_steps, random_state=None):
    """Generate the adding problem (Hochreiter & Schmidhuber 1997; Le et al. 2015).

    Each sequence has ``n_steps`` steps of two features: a value uniform in [0, 1] and a marker.
    Exactly two steps are marked 1, one uniformly in the first half (steps ``0 ..
    n_steps // 2 - 1``), one in the second half. The target is the sum of the two marked values,
    in [0, 2], with mean 1 and variance 2/12: always predicting 1 scores a mean squared error of
    1/6, the baseline to beat.

    Parameters
    ----------
    n_samples : int
        Number of sequences, at least 1.
    n_steps : int
        Sequence length, at least 2.
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
    n_samples = check_scalar(n_samples, "n_samples", numbers.Integral, min_val=1)
    n_steps = check_scalar(n_steps, "n_steps", numbers.Integral, min_val=2)
    rng = check_random_state(random_state)
    values = rng.uniform(0.0, 1.0, size=(n_samples, n_steps))
    first = rng.randint(0, n_steps // 2, size=n_samples)
    second = rng.randint(n_steps // 2, n_steps, size=n_samples)
    rows = np.arange(n_samples)
    X = np.zeros((n_samples, n_steps, 2), dtype=np.float32)
    X[:, :, 0] = values
    X[rows, first, 1] = X[rows, second, 1] = 1.0
    # Sum the stored float32 values so that y is exactly reproducible from X.
    return X, X[rows, first, 0] + X[rows, second, 0]
