"""The UEA / UCR time-series classification archives (``.ts`` files), read by aeon's own loader.

:func:`load_uea` reads ``<name>_TRAIN.ts`` / ``<name>_TEST.ts`` with aeon's
``load_classification`` (from ``data_home`` when the files are there; aeon downloads them
otherwise) and returns the cases in the estimators' layout, time steps first
(:func:`~latticeprune.sequences.from_aeon`): a 3-D array ``(n_cases, n_timepoints,
n_channels)`` for equal-length data, a list of ``(n_timepoints_i, n_channels)`` arrays for
unequal lengths. aeon is optional (``pip install latticeprune[aeon]``); cost: aeon's parse.
"""

import numpy as np
from sklearn.utils import Bunch

from ..sequences import from_aeon

__all__ = ["load_uea", "SPLITS"]

#: Valid ``split`` values of :func:`load_uea`.
SPLITS = ("train", "test", None)


def load_uea(name, *, split="train", data_home=None, return_X_y=False):
    """Load a UEA/UCR classification data set with aeon, time steps first, float32.

    Parameters
    ----------
    name : str
        Data set name as in the archive, e.g. ``"JapaneseVowels"``.
    split : {"train", "test", None}, default="train"
        Which file; None: both, train cases first.
    data_home : str or path-like or None, default=None
        Folder holding ``<name>/<name>_TRAIN.ts`` (aeon's ``extract_path``); None: aeon's
        default folder.
    return_X_y : bool, default=False
        Return ``(X, y)`` instead of a Bunch.

    Returns
    -------
    data : :class:`~sklearn.utils.Bunch`
        ``data`` (3-D array or list of 2-D float32 arrays, time steps first), ``target``
        (labels as strings, as in the file), ``lengths`` (steps per case), ``name``.
    (X, y) : tuple
        If ``return_X_y`` is True.

    Raises
    ------
    ImportError
        If aeon is not installed.
    ValueError
        For an unknown ``split``.
    """
    if split not in SPLITS:
        raise ValueError(f"split={split!r} is not valid; valid choices are {list(SPLITS)}.")
    try:
        from aeon.datasets import load_classification
    except ImportError as exc:
        raise ImportError("load_uea reads .ts files with aeon: pip install "
                          "'latticeprune[aeon]' (or pip install aeon).") from exc
    X, y = load_classification(name, split=split,
                               extract_path=None if data_home is None else str(data_home))
    X = from_aeon(X if isinstance(X, np.ndarray) else list(X))
    X = X.astype(np.float32) if isinstance(X, np.ndarray) else [x.astype(np.float32) for x in X]
    lengths = np.array([len(x) for x in X])
    if return_X_y:
        return X, y
    return Bunch(data=X, target=y, lengths=lengths, name=name)
