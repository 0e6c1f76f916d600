"""Handwritten digits (sklearn's embedded 8x8 set) as short pixel-row sequences."""

import numpy as np
from sklearn.datasets import load_digits
from sklearn.utils import Bunch

__all__ = ["load_digits_sequences"]

_N_STEPS = 8
_N_FEATURES = 8
_MAX_PIXEL_VALUE = 16.0

_DESCR_PREFIX = """\
Digits as sequences (latticeprune)
----------------------------------

scikit-learn's embedded 8x8 handwritten digits read as sequences: each image is
8 time steps (its pixel rows, top to bottom) of 8 features (the pixels of that
row, left to right). Pixel values 0..16 are divided by 16, so every value lies in
[0, 1]; arrays are float32. No download is needed.

The original description follows.

"""


def load_digits_sequences(*, return_X_y=False, as_2d=False):
    """Load scikit-learn's handwritten digits as sequences of pixel rows.

    Each 8x8 image becomes a sequence of 8 steps (rows, top to bottom) of 8
    features (pixels of the row). Pixel values, originally integers 0..16, are
    divided by 16 so that they lie in [0, 1]. The data ship with scikit-learn,
    so nothing is downloaded.

    Parameters
    ----------
    return_X_y : bool, default=False
        If True, return ``(X, y)`` instead of a Bunch.
    as_2d : bool, default=False
        If True, ``X`` has shape ``(n_samples, 64)`` (rows concatenated, the
        layout that 2-D scikit-learn transformers expect; reshape with
        ``X.reshape(-1, 8, 8)`` or give the estimator ``input_size=8``).
        Otherwise ``X`` has shape ``(n_samples, 8, 8)``.

    Returns
    -------
    data : :class:`~sklearn.utils.Bunch`
        Dictionary-like object with attributes

        data : ndarray of float32, shape (1797, 8, 8) or (1797, 64)
            Pixel rows scaled to [0, 1].
        target : ndarray of int64, shape (1797,)
            Digit labels 0..9.
        target_names : ndarray of shape (10,)
            The labels ``0..9``.
        images : ndarray of float32, shape (1797, 8, 8)
            The scaled images (same values as ``data``).
        n_steps : int
            Sequence length, 8.
        n_features : int
            Features per step, 8.
        DESCR : str
            Description of the data set.

    (X, y) : tuple of ndarrays
        If ``return_X_y`` is True: ``data`` and ``target`` as above.

    Examples
    --------
    >>> from latticeprune.datasets import load_digits_sequences
    >>> X, y = load_digits_sequences(return_X_y=True)
    >>> X.shape, X.dtype.name, float(X.max())
    ((1797, 8, 8), 'float32', 1.0)
    >>> load_digits_sequences(as_2d=True).data.shape
    (1797, 64)
    """
    digits = load_digits()
    images = (digits.images / _MAX_PIXEL_VALUE).astype(np.float32)
    target = digits.target.astype(np.int64)
    X = images.reshape(len(images), -1) if as_2d else images
    if return_X_y:
        return X, target
    return Bunch(
        data=X,
        target=target,
        target_names=digits.target_names,
        images=images,
        n_steps=_N_STEPS,
        n_features=_N_FEATURES,
        DESCR=_DESCR_PREFIX + digits.DESCR,
    )
