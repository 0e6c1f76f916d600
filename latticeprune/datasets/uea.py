"""The UEA / UCR time-series classification archives (``.ts`` files), read by aeon's own loader.

:func:`load_uea` finds ``<name>_TRAIN.ts`` / ``<name>_TEST.ts`` locally (``data_home``, the set's
folder or its parent, then the sets aeon ships), reads them with aeon's ``load_from_ts_file``
(aeon downloads a set only when asked, ``download_if_missing=True``) and returns the cases in
the estimators' layout, time steps first
(:func:`~latticeprune.sequences.from_aeon`): a 3-D array ``(n_cases, n_timepoints,
n_channels)`` for equal-length data, a list of ``(n_timepoints_i, n_channels)`` arrays for
unequal lengths. aeon is optional (``pip install latticeprune[aeon]``); cost: aeon's parse.
"""

from pathlib import Path

import numpy as np
from sklearn.utils import Bunch

from ..sequences import from_aeon

__all__ = ["load_uea", "SPLITS"]

#: Valid ``split`` values of :func:`load_uea`.
SPLITS = ("train", "test", None)


def load_uea(name, *, split="train", data_home=None, download_if_missing=False,
             return_X_y=False):
    """Load a UEA/UCR classification data set with aeon, time steps first, float32.

    The ``.ts`` files are looked for, in order, in ``data_home/<name>/``, in ``data_home``
    itself (the set's own folder), and among the sets aeon ships in its package; they are read
    with aeon's ``load_from_ts_file``. Only with ``download_if_missing=True`` does aeon fetch a
    set found nowhere (``load_classification``, into ``data_home``).

    Parameters
    ----------
    name : str
        Data set name as in the archive, e.g. ``"JapaneseVowels"``.
    split : {"train", "test", None}, default="train"
        Which file; None: both, train cases first.
    data_home : str or path-like or None, default=None
        A folder holding ``<name>/<name>_TRAIN.ts`` or ``<name>_TRAIN.ts`` itself; None: only
        aeon's own sets (or its download folder).
    download_if_missing : bool, default=False
        Let aeon download a set that is not found locally (as sklearn's fetchers).
    return_X_y : bool, default=False
        Return ``(X, y)`` instead of a Bunch.

    Returns
    -------
    data : :class:`~sklearn.utils.Bunch`
        ``data`` (3-D array or list of 2-D float32 arrays, time steps first), ``target``
        (labels as strings, as in the file), ``lengths`` (steps per case), ``name``, ``path``
        (the folder read, None after a download).
    (X, y) : tuple
        If ``return_X_y`` is True.

    Raises
    ------
    ImportError
        If aeon is not installed.
    FileNotFoundError
        If the files are in none of the folders (all named) and ``download_if_missing`` is
        False.
    ValueError
        For an unknown ``split``.
    """
    if split not in SPLITS:
        raise ValueError(f"split={split!r} is not valid; valid choices are {list(SPLITS)}.")
    try:
        import aeon.datasets
    except ImportError as exc:
        raise ImportError("load_uea reads .ts files with aeon: pip install "
                          "'latticeprune[aeon]' (or pip install aeon).") from exc
    splits = ["train", "test"] if split is None else [split]
    folders = ([] if data_home is None else [Path(data_home) / name, Path(data_home)])
    folders.append(Path(aeon.datasets.__file__).parent / "data" / name)
    folder = next((f for f in folders if all((f / f"{name}_{s.upper()}.ts").is_file()
                                             for s in splits)), None)
    if folder is not None:
        parts = [aeon.datasets.load_from_ts_file(str(folder / f"{name}_{s.upper()}.ts"))
                 for s in splits]
        X = [x for part, _ in parts for x in (part if isinstance(part, list) else list(part))]
        if all(np.shape(x) == np.shape(X[0]) for x in X):
            X = np.stack(X)
        y = np.concatenate([np.asarray(labels) for _, labels in parts])
    elif download_if_missing:
        X, y = aeon.datasets.load_classification(
            name, split=split, extract_path=None if data_home is None else str(data_home))
    else:
        tried = ", ".join(str(f) for f in folders)
        raise FileNotFoundError(
            f"No {'/'.join(f'{name}_{s.upper()}.ts' for s in splits)} in {tried}. Point "
            "data_home at the folder holding them (or at its parent), or pass "
            "download_if_missing=True to let aeon download the set.")
    X = from_aeon(X if isinstance(X, np.ndarray) else list(X))
    X = X.astype(np.float32) if isinstance(X, np.ndarray) else [x.astype(np.float32) for x in X]
    lengths = np.array([len(x) for x in X])
    if return_X_y:
        return X, y
    return Bunch(data=X, target=y, lengths=lengths, name=name, path=folder)
