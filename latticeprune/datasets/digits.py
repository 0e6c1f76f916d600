"""Handwritten digits (sklearn's embedded 8x8 set) as short pixel-row sequences."""

import numpy as np
from sklearn.datasets import load_digits
from sklearn.utils import Bunch

__all__ = ["load_digits_sequences"]

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
    """Load scikit-learn's handwritten digits as sequences of 8 pixel rows (top to bottom) of 8
    pixels, scaled from 0..16 to [0, 1]. Nothing is downloaded.

    Parameters
    ----------
    return_X_y : bool, default=False
        Return ``(X, y)`` instead of a Bunch.
    as_2d : bool, default=False
        ``X`` of shape ``(n_samples, 64)`` (rows concatenated, for 2-D scikit-learn
        transformers; give the estimator ``input_size=8``) instead of ``(n_samples, 8, 8)``.

    Returns
    -------
    data : :class:`~sklearn.utils.Bunch`
        ``data`` (float32, shape (1797, 8, 8) or (1797, 64)), ``target`` (int64 digit labels),
        ``target_names`` (``0..9``), ``images`` (float32, (1797, 8, 8), the values of
        ``data``), ``n_steps`` and ``n_features`` (8 and 8), ``DESCR``.
    (X, y) : tuple of ndarrays
        If ``return_X_y`` is True: ``data`` and ``target``.

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
    images = (digits.images / 16.0).astype(np.float32)
    target = digits.target.astype(np.int64)
    X = images.reshape(len(images), -1) if as_2d else images
    if return_X_y:
        return X, target
    return Bunch(data=X, target=target, target_names=digits.target_names, images=images,
                 n_steps=8, n_features=8, DESCR=_DESCR_PREFIX + digits.DESCR)
