"""MNIST handwritten digits as sequences of pixel rows (28 steps x 28 features).

Reads a standard MNIST folder in IDX format (the four official files, gzip or
plain) or, with no folder, scikit-learn's OpenML copy.
"""

import gzip
import os
import struct
from pathlib import Path

import numpy as np
from sklearn.datasets import fetch_openml
from sklearn.utils import Bunch

__all__ = ["load_mnist", "read_idx", "write_idx", "MNISTNotFoundError"]

_N_ROWS = 28
_N_COLS = 28
_N_OPENML_TRAIN = 60_000
_OPENML_NAME = "mnist_784"

#: The official MNIST file names (each may also carry a ``.gz`` suffix).
MNIST_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}

# IDX type codes (third byte of the magic number) -> numpy big-endian dtype.
_IDX_DTYPES = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_IDX_CODES = {dtype.newbyteorder("="): code for code, dtype in _IDX_DTYPES.items()}

_DESCR = """\
MNIST as sequences (latticeprune)
---------------------------------

Handwritten digits 0..9 (LeCun, Cortes and Burges; CC BY-SA 3.0), 28x28 grey
images read as sequences: each image is 28 time steps (pixel rows, top to
bottom) of 28 features (the pixels of the row). Pixel values 0..255 are divided
by 255 so that every value lies in [0, 1]; arrays are float32.
Source: {source}. {n_train} training and {n_test} test images.
"""


class MNISTNotFoundError(OSError):
    """Raised when MNIST can be neither read from disk nor fetched from OpenML."""


def _open_maybe_gzip(path):
    with open(path, "rb") as fh:
        is_gzip = fh.read(2) == b"\x1f\x8b"
    return gzip.open(path, "rb") if is_gzip else open(path, "rb")


def read_idx(path):
    """Read one IDX file (gzip-compressed or plain) into a numpy array.

    The header is validated: two zero bytes, a known type code, the number of
    dimensions, then one big-endian 32-bit size per dimension; the payload must
    hold exactly the number of items the sizes announce.

    Parameters
    ----------
    path : str or path-like
        File to read. Gzip compression is detected from the content, not
        from the file name.

    Returns
    -------
    array : ndarray
        Array of the shape and dtype recorded in the header (native byte
        order).

    Raises
    ------
    ValueError
        If the magic number is not a valid IDX magic number or the payload
        size does not match the header.
    """
    path = Path(path)
    try:
        with _open_maybe_gzip(path) as fh:
            raw = fh.read()
    except (gzip.BadGzipFile, EOFError) as exc:
        raise ValueError(f"{path}: corrupt gzip data ({exc}).") from exc
    if len(raw) < 4:
        raise ValueError(f"{path}: too short to be an IDX file ({len(raw)} bytes).")
    zero1, zero2, type_code, ndim = raw[0], raw[1], raw[2], raw[3]
    magic = int.from_bytes(raw[:4], "big")
    if zero1 != 0 or zero2 != 0 or type_code not in _IDX_DTYPES or ndim == 0:
        raise ValueError(
            f"{path}: bad IDX magic number 0x{magic:08X}; expected 0x0000TTDD with a "
            "known type code TT (0x08 for unsigned bytes) and DD >= 1 dimensions, "
            "e.g. 0x00000803 for MNIST images and 0x00000801 for labels."
        )
    header_size = 4 + 4 * ndim
    if len(raw) < header_size:
        raise ValueError(
            f"{path}: header announces {ndim} dimensions but the file ends after "
            f"{len(raw)} bytes."
        )
    shape = struct.unpack(f">{ndim}I", raw[4:header_size])
    dtype = _IDX_DTYPES[type_code]
    expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    payload = len(raw) - header_size
    if payload != expected:
        raise ValueError(
            f"{path}: header announces shape {shape} ({expected} bytes of data) but "
            f"the file holds {payload} bytes of data."
        )
    array = np.frombuffer(raw, dtype=dtype, offset=header_size).reshape(shape)
    return array.astype(dtype.newbyteorder("="), copy=True)


def write_idx(path, array, *, compress=None):
    """Write an array as an IDX file (the inverse of :func:`read_idx`).

    Parameters
    ----------
    path : str or path-like
        Destination file.
    array : array-like
        Data of dtype uint8, int8, int16, int32, float32 or float64.
    compress : bool or None, default=None
        Gzip the file. ``None`` compresses when ``path`` ends in ``.gz``.

    Examples
    --------
    >>> import numpy as np, tempfile, os
    >>> from latticeprune.datasets import read_idx, write_idx
    >>> a = np.arange(6, dtype=np.uint8).reshape(2, 3)
    >>> f = os.path.join(tempfile.mkdtemp(), "a-idx2-ubyte.gz")
    >>> write_idx(f, a)
    >>> np.array_equal(read_idx(f), a)
    True
    """
    array = np.asarray(array)
    if array.ndim == 0 or array.ndim > 255:
        raise ValueError(f"array must have 1..255 dimensions, got {array.ndim}.")
    native = array.dtype.newbyteorder("=")
    if native not in _IDX_CODES:
        raise ValueError(f"array dtype {array.dtype} cannot be stored in an IDX file.")
    type_code = _IDX_CODES[native]
    header = bytes([0, 0, type_code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    payload = np.ascontiguousarray(array, dtype=_IDX_DTYPES[type_code]).tobytes()
    if compress is None:
        compress = str(path).endswith(".gz")
    opener = gzip.open if compress else open
    with opener(path, "wb") as fh:
        fh.write(header + payload)


def _find_idx_file(folder, stem):
    for name in (stem + ".gz", stem):
        candidate = folder / name
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(
        f"MNIST folder {str(folder)!r} has no {stem!r} or {stem + '.gz'!r}; a MNIST "
        f"folder holds the four files {', '.join(MNIST_FILES.values())} "
        "(each optionally gzip-compressed)."
    )


def _read_split(folder, split):
    images_file = _find_idx_file(folder, MNIST_FILES[f"{split}_images"])
    labels_file = _find_idx_file(folder, MNIST_FILES[f"{split}_labels"])
    images = read_idx(images_file)
    labels = read_idx(labels_file)
    if images.dtype != np.uint8 or images.ndim != 3 or images.shape[1:] != (_N_ROWS, _N_COLS):
        raise ValueError(
            f"{images_file}: expected unsigned-byte images of shape (n, 28, 28) (magic "
            f"0x00000803), got dtype {images.dtype} and shape {images.shape}."
        )
    if labels.dtype != np.uint8 or labels.ndim != 1:
        raise ValueError(
            f"{labels_file}: expected unsigned-byte labels of shape (n,) (magic "
            f"0x00000801), got dtype {labels.dtype} and shape {labels.shape}."
        )
    if len(images) != len(labels):
        raise ValueError(
            f"{split} split: {len(images)} images in {images_file.name} but "
            f"{len(labels)} labels in {labels_file.name}."
        )
    if labels.size and labels.max() > 9:
        raise ValueError(f"{labels_file}: labels must be digits 0..9, found {labels.max()}.")
    return images, labels


def _fetch_openml_mnist(data_home):
    try:
        import pandas  # noqa: F401

        parser = "auto"
    except ImportError:
        parser = "liac-arff"
    try:
        X, y = fetch_openml(
            _OPENML_NAME,
            version=1,
            data_home=data_home,
            return_X_y=True,
            as_frame=False,
            parser=parser,
        )
    except OSError as exc:  # URLError, socket errors, missing cache files
        raise MNISTNotFoundError(
            "load_mnist() with no path fetches MNIST from OpenML (or scikit-learn's "
            f"cache), which failed: {exc}. Without internet, point it at a folder with "
            "the four MNIST IDX files, e.g. load_mnist('path/to/mnist')."
        ) from exc
    X = np.asarray(X)
    y = np.asarray(y).astype(np.int64)
    if X.ndim != 2 or X.shape[1] != _N_ROWS * _N_COLS or len(X) <= _N_OPENML_TRAIN:
        raise ValueError(
            f"OpenML {_OPENML_NAME!r} returned data of shape {X.shape}; expected "
            f"(70000, {_N_ROWS * _N_COLS})."
        )
    images = X.reshape(-1, _N_ROWS, _N_COLS)
    return (
        (images[:_N_OPENML_TRAIN], y[:_N_OPENML_TRAIN]),
        (images[_N_OPENML_TRAIN:], y[_N_OPENML_TRAIN:]),
        f"OpenML {_OPENML_NAME!r} (first 60000 rows train, last 10000 test)",
    )


def load_mnist(path=None, *, return_X_y=False, as_2d=False, data_home=None):
    """Load MNIST as sequences of pixel rows, with its train/test split.

    Each 28x28 image becomes 28 steps (rows, top to bottom) of 28 features.
    Pixel values 0..255 are divided by 255 (float32 in [0, 1]).

    Parameters
    ----------
    path : str, path-like or None, default=None
        Folder holding the four MNIST IDX files with their official names,
        ``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``,
        ``t10k-images-idx3-ubyte`` and ``t10k-labels-idx1-ubyte``, each plain
        or gzip-compressed (``.gz``; the gzip file is preferred when both
        exist). Any number of images per split is accepted, so subsets such
        as an 8000/2000 ``mnist-10k/`` folder read unchanged.
        If None, MNIST is fetched with :func:`sklearn.datasets.fetch_openml`
        (``"mnist_784"``; scikit-learn's cache in ``data_home`` is used when
        present, otherwise it downloads about 15 MB); its first 60000 rows are
        the training split and the last 10000 the test split, as in the
        official distribution.
    return_X_y : bool, default=False
        If True, return ``(X_train, X_test, y_train, y_test)`` (the order of
        :func:`sklearn.model_selection.train_test_split`) instead of a Bunch.
    as_2d : bool, default=False
        If True, images are flattened to ``(n, 784)`` (rows concatenated);
        otherwise they have shape ``(n, 28, 28)``.
    data_home : str, path-like or None, default=None
        scikit-learn's download/cache folder, used only when ``path`` is None.

    Returns
    -------
    data : :class:`~sklearn.utils.Bunch`
        Dictionary-like object with attributes

        X_train, X_test : ndarray of float32, shape (n, 28, 28) or (n, 784)
            Training / test images scaled to [0, 1].
        y_train, y_test : ndarray of int64, shape (n,)
            Digit labels 0..9.
        data, target : ndarray
            All images and labels, training split first; ``X_train`` and
            ``X_test`` are views into ``data`` (no second copy in memory).
        n_train, n_test : int
            Number of images per split.
        target_names : ndarray of shape (10,)
            The labels ``0..9``.
        n_steps, n_features : int
            28 and 28, the sequence layout (also with ``as_2d=True``:
            ``X.reshape(-1, n_steps, n_features)`` restores it).
        source : str
            Folder read or OpenML data set used.
        DESCR : str
            Description of the data set.

    (X_train, X_test, y_train, y_test) : tuple of ndarrays
        If ``return_X_y`` is True.

    Raises
    ------
    FileNotFoundError
        If ``path`` is not a folder or lacks one of the four files.
    ValueError
        If a file has a bad IDX magic number, a size that does not match its
        header, images not of shape (n, 28, 28), or images and labels that do
        not pair up.
    MNISTNotFoundError
        (a subclass of :class:`OSError`) If ``path`` is None and OpenML
        cannot be reached (for example offline); the message says how to
        point the loader at a folder instead.

    Examples
    --------
    >>> from latticeprune.datasets import load_mnist
    >>> mnist = load_mnist("path/to/mnist-10k")  # doctest: +SKIP
    >>> mnist.X_train.shape, mnist.X_test.shape  # doctest: +SKIP
    ((8000, 28, 28), (2000, 28, 28))
    """
    if path is None:
        (train_images, y_train), (test_images, y_test), source = _fetch_openml_mnist(data_home)
    else:
        folder = Path(os.fspath(path)).expanduser()
        if not folder.is_dir():
            raise FileNotFoundError(
                f"path={str(path)!r} is not a folder; pass the folder that holds the "
                "MNIST IDX files (train-images-idx3-ubyte[.gz], ...)."
            )
        train_images, y_train = _read_split(folder, "train")
        test_images, y_test = _read_split(folder, "test")
        y_train = y_train.astype(np.int64)
        y_test = y_test.astype(np.int64)
        source = str(folder)

    n_train, n_test = len(train_images), len(test_images)
    data = np.empty((n_train + n_test, _N_ROWS, _N_COLS), dtype=np.float32)
    np.divide(train_images, 255.0, out=data[:n_train], casting="unsafe")
    np.divide(test_images, 255.0, out=data[n_train:], casting="unsafe")
    if as_2d:
        data = data.reshape(len(data), -1)
    target = np.concatenate([y_train, y_test])
    X_train, X_test = data[:n_train], data[n_train:]
    y_train, y_test = target[:n_train], target[n_train:]
    if return_X_y:
        return X_train, X_test, y_train, y_test
    return Bunch(
        X_train=X_train,
        X_test=X_test,
        y_train=y_train,
        y_test=y_test,
        data=data,
        target=target,
        n_train=n_train,
        n_test=n_test,
        target_names=np.arange(10),
        n_steps=_N_ROWS,
        n_features=_N_COLS,
        source=source,
        DESCR=_DESCR.format(source=source, n_train=n_train, n_test=n_test),
    )
