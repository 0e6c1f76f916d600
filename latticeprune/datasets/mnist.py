"""MNIST handwritten digits as sequences of pixel rows (28 steps x 28 features).

Reads a standard MNIST folder in IDX format (the four official files, gzip or
plain) or, with no folder, scikit-learn's OpenML copy.
"""

import gzip
import importlib.util
import os
import struct
from pathlib import Path

import numpy as np
from sklearn.datasets import fetch_openml
from sklearn.utils import Bunch

__all__ = ["load_mnist", "read_idx", "write_idx", "MNISTNotFoundError"]

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
_IDX_DTYPES = {0x08: np.dtype(np.uint8), 0x09: np.dtype(np.int8), 0x0B: np.dtype(">i2"),
               0x0C: np.dtype(">i4"), 0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}
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


def read_idx(path):
    """Read one IDX file into an array of the shape and dtype of its header (native byte order).

    Gzip compression is detected from the content, not the file name. The header is validated
    (two zero bytes, a known type code, the number of dimensions, one big-endian 32-bit size per
    dimension), and the payload must hold exactly the items the sizes announce; else ValueError.
    """
    path = Path(path)
    raw = path.read_bytes()
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
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
        raise ValueError(f"{path}: header announces {ndim} dimensions but the file ends after "
                         f"{len(raw)} bytes.")
    shape = struct.unpack(f">{ndim}I", raw[4:header_size])
    dtype = _IDX_DTYPES[type_code]
    expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    payload = len(raw) - header_size
    if payload != expected:
        raise ValueError(f"{path}: header announces shape {shape} ({expected} bytes of data) but "
                         f"the file holds {payload} bytes of data.")
    array = np.frombuffer(raw, dtype=dtype, offset=header_size).reshape(shape)
    return array.astype(dtype.newbyteorder("="), copy=True)


def write_idx(path, array, *, compress=None):
    """Write an array as an IDX file (the inverse of :func:`read_idx`).

    Parameters
    ----------
    path : str or path-like
    array : array-like of dtype uint8, int8, int16, int32, float32 or float64
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
    with (gzip.open if compress else open)(path, "wb") as fh:
        fh.write(header + payload)


def _find_idx_file(folder, stem):
    for name in (stem + ".gz", stem):
        candidate = folder / name
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(f"MNIST folder {str(folder)!r} has no {stem!r} or {stem + '.gz'!r}; a "
                            f"MNIST folder holds the four files {', '.join(MNIST_FILES.values())} "
                            "(each optionally gzip-compressed).")


def _read_split(folder, split):
    images_file, labels_file = (_find_idx_file(folder, MNIST_FILES[f"{split}_{kind}"])
                                for kind in ("images", "labels"))
    images, labels = read_idx(images_file), read_idx(labels_file)
    if images.dtype != np.uint8 or images.shape[1:] != (28, 28):
        raise ValueError(f"{images_file}: expected unsigned-byte images of shape (n, 28, 28) "
                         f"(magic 0x00000803), got dtype {images.dtype} and shape {images.shape}.")
    if labels.dtype != np.uint8 or labels.ndim != 1:
        raise ValueError(f"{labels_file}: expected unsigned-byte labels of shape (n,) (magic "
                         f"0x00000801), got dtype {labels.dtype} and shape {labels.shape}.")
    if len(images) != len(labels):
        raise ValueError(f"{split} split: {len(images)} images in {images_file.name} but "
                         f"{len(labels)} labels in {labels_file.name}.")
    if labels.size and labels.max() > 9:
        raise ValueError(f"{labels_file}: labels must be digits 0..9, found {labels.max()}.")
    return images, labels


def _fetch_openml_mnist(data_home):
    parser = "auto" if importlib.util.find_spec("pandas") else "liac-arff"
    try:
        X, y = fetch_openml(_OPENML_NAME, version=1, data_home=data_home, return_X_y=True,
                            as_frame=False, parser=parser)
    except OSError as exc:  # URLError, socket errors, missing cache files
        raise MNISTNotFoundError(
            "load_mnist() with no path fetches MNIST from OpenML (or scikit-learn's "
            f"cache), which failed: {exc}. Without internet, point it at a folder with "
            "the four MNIST IDX files, e.g. load_mnist('path/to/mnist').") from exc
    X = np.asarray(X)
    if X.ndim != 2 or X.shape[1] != 784 or len(X) <= _N_OPENML_TRAIN:
        raise ValueError(f"OpenML {_OPENML_NAME!r} returned data of shape {X.shape}; expected "
                         "(70000, 784).")
    return X.reshape(-1, 28, 28), np.asarray(y).astype(np.int64), _N_OPENML_TRAIN, (
        f"OpenML {_OPENML_NAME!r} (first 60000 rows train, last 10000 test)")


def load_mnist(path=None, *, return_X_y=False, as_2d=False, data_home=None):
    """Load MNIST as sequences of 28 pixel rows (top to bottom) of 28 pixels, with its train/test
    split; pixel values 0..255 are divided by 255 (float32 in [0, 1]).

    Parameters
    ----------
    path : str, path-like or None, default=None
        Folder holding the four MNIST IDX files with their official names,
        ``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``, ``t10k-images-idx3-ubyte``
        and ``t10k-labels-idx1-ubyte``, each plain or gzip-compressed (``.gz``, preferred when
        both exist), with any number of images per split (e.g. an 8000/2000 ``mnist-10k/``).
        None: :func:`sklearn.datasets.fetch_openml` ``"mnist_784"`` (from scikit-learn's cache
        in ``data_home``, else a download of about 15 MB), first 60000 rows for training and the
        last 10000 for testing, as in the official distribution.
    return_X_y : bool, default=False
        Return ``(X_train, X_test, y_train, y_test)`` (the order of
        :func:`sklearn.model_selection.train_test_split`) instead of a Bunch.
    as_2d : bool, default=False
        Images flattened to ``(n, 784)`` (rows concatenated) instead of ``(n, 28, 28)``.
    data_home : str, path-like or None, default=None
        scikit-learn's download/cache folder, used only when ``path`` is None.

    Returns
    -------
    data : :class:`~sklearn.utils.Bunch`
        ``X_train``, ``X_test`` (float32 images), ``y_train``, ``y_test`` (int64 labels 0..9);
        ``data``, ``target``: both splits, training first (``X_train`` and ``X_test`` are views
        into ``data``); ``n_train``, ``n_test``; ``target_names`` (``0..9``); ``n_steps``,
        ``n_features`` (28 and 28, also with ``as_2d``); ``source`` (the folder or OpenML data
        set read); ``DESCR``.
    (X_train, X_test, y_train, y_test) : tuple of ndarrays
        If ``return_X_y`` is True.

    Raises
    ------
    FileNotFoundError
        If ``path`` is not a folder or lacks one of the four files.
    ValueError
        If a file has a bad IDX magic number, a size that does not match its header, images not
        of shape (n, 28, 28), or images and labels that do not pair up.
    MNISTNotFoundError
        (an :class:`OSError`) If ``path`` is None and OpenML cannot be reached; the message says
        how to point the loader at a folder instead.

    Examples
    --------
    >>> from latticeprune.datasets import load_mnist
    >>> mnist = load_mnist("path/to/mnist-10k")  # doctest: +SKIP
    >>> mnist.X_train.shape, mnist.X_test.shape  # doctest: +SKIP
    ((8000, 28, 28), (2000, 28, 28))
    """
    if path is None:
        images, target, n_train, source = _fetch_openml_mnist(data_home)
    else:
        folder = Path(os.fspath(path)).expanduser()
        if not folder.is_dir():
            raise FileNotFoundError(f"path={str(path)!r} is not a folder; pass the folder that "
                                    "holds the MNIST IDX files "
                                    "(train-images-idx3-ubyte[.gz], ...).")
        (train_images, y_train), (test_images, y_test) = (_read_split(folder, split)
                                                          for split in ("train", "test"))
        images = np.concatenate([train_images, test_images])
        target = np.concatenate([y_train, y_test]).astype(np.int64)
        n_train, source = len(train_images), str(folder)
    n_test = len(images) - n_train
    data = np.divide(images, 255, dtype=np.float32)
    if as_2d:
        data = data.reshape(len(data), -1)
    X_train, X_test = data[:n_train], data[n_train:]
    y_train, y_test = target[:n_train], target[n_train:]
    if return_X_y:
        return X_train, X_test, y_train, y_test
    return Bunch(X_train=X_train, X_test=X_test, y_train=y_train, y_test=y_test, data=data,
                 target=target, n_train=n_train, n_test=n_test, target_names=np.arange(10),
                 n_steps=28, n_features=28, source=source,
                 DESCR=_DESCR.format(source=source, n_train=n_train, n_test=n_test))
