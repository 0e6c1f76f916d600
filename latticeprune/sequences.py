"""Variable-length sequences: the input layouts, their validation, and the state at each end.

The sequence estimators read, besides equal-length ``(n_samples, n_steps, n_features)`` arrays:

* a **list** (or 1-D object array) of 2-D arrays ``(n_steps_i, n_features)``, or of 1-D arrays
  ``(n_steps_i,)`` of different lengths (univariate: one feature per step): sklearn indexes
  lists and object arrays itself (``_safe_indexing``), so CV splitting, ``Pipeline`` and
  ``GridSearchCV`` hand each fold its own list;
* :class:`PaddedSequences`, a padded 3-D array with the ``lengths`` carried beside it: it has a
  ``shape`` and indexes like an array (``X[indices]`` keeps the lengths of those rows), so the
  lengths travel with ``X`` through the same tools;
* a 3-D float array padded with NaN after each sequence's end (NaN inside a sequence is an
  error).

:func:`check_padded` turns any of them into ``(padded, lengths)``: float32, zeros after each end
(``torch.nn.utils.rnn.pad_sequence``), ``lengths`` None when every sequence has the full length
(the estimators then run exactly as for a plain 3-D array). Inside, each batch is cut to
its longest sequence and the nets (torch's fused ``nn.RNN`` / ``nn.LSTM`` / ``nn.GRU``, the
top-down step loop, the compact and CSR inference forms) run over it; :func:`sequence_ends`
then takes the state at each true end and zeros the states after it. A recurrent net is
causal: its states up to a sequence's end do not depend on what follows, so padding never
reaches a result or a gradient, and a sequence gives the same output alone as inside a padded
batch. This masking replaces ``torch.nn.utils.rnn.pack_padded_sequence``, whose packed
batches torch runs on the CPU step by step without its fused kernel, several times slower
(measured: see docs/experiments.md). :func:`from_aeon` converts aeon's collection layouts
(channels first). Cost: O(total steps x features) to validate and pad.

Per-step targets (``sequence_output=True``) of variable-length sequences are a list (or
object array, or :class:`PaddedSequences`) of arrays ``(n_steps_i,)`` or ``(n_steps_i,
n_targets)``, one per sequence and as long as it, or an array ``(n_samples, n_steps_y[,
n_targets])`` padded after each end (with NaN or anything else: entries after a sequence's
end are ignored). :func:`check_step_targets` reads any of them as the targets of every valid
step, :func:`step_mask` marks those steps in a padded batch (the loss counts only them),
:func:`pad_steps` and :func:`unpad` go between the two forms, and per-sequence results are
1-D object arrays (:func:`sequence_array`), which sklearn indexes and
``cross_val_predict`` concatenates.
"""

import numbers

import numpy as np
import torch
from sklearn.utils.validation import check_array
from torch.nn.utils.rnn import pad_sequence

__all__ = ["PaddedSequences", "is_ragged", "is_variable_length", "check_padded", "nan_lengths",
           "sequence_ends", "step_mask", "check_step_targets", "pad_steps", "unpad",
           "sequence_array", "from_aeon"]


class PaddedSequences:
    """Padded sequences ``data`` ``(n_samples, n_steps, n_features)`` with their ``lengths``.

    An input for the sequence estimators that keeps explicit lengths through sklearn's
    splitting: ``X[indices]`` (and ``X[indices, ...]``, which ``_safe_indexing`` uses) is the
    :class:`PaddedSequences` of those rows, ``X[i]`` the ``i``-th sequence without padding,
    ``len(X)`` and ``X.shape`` those of ``data``. Entries after each sequence's end are ignored.

    Parameters
    ----------
    data : array-like of shape (n_samples, n_steps, n_features)
        The sequences, each starting at step 0.
    lengths : array-like of int, shape (n_samples,)
        Steps of each sequence, ``1 <= lengths[i] <= n_steps``.

    Examples
    --------
    >>> import numpy as np
    >>> X = PaddedSequences(np.zeros((3, 5, 2)), [5, 2, 3])
    >>> X[[2, 0]].lengths.tolist(), X[1].shape
    ([3, 5], (2, 2))
    """

    def __init__(self, data, lengths):
        self.data = np.asarray(data)
        self.lengths = np.asarray(lengths)
        _check_lengths(self.data, self.lengths)

    @classmethod
    def from_list(cls, sequences):
        """Zero-padded :class:`PaddedSequences` of a list of 2-D arrays ``(n_steps_i, n_features)``."""
        data, lengths = check_padded(sequences)
        full = np.full(len(data), data.shape[1]) if lengths is None else lengths
        return cls(data, full)

    @property
    def shape(self):
        return self.data.shape

    @property
    def ndim(self):
        return self.data.ndim

    @property
    def dtype(self):
        return self.data.dtype

    def __len__(self):
        return len(self.data)

    def __getitem__(self, key):
        if isinstance(key, tuple):  # _safe_indexing's array[key, ...]
            if len(key) > 2 or (len(key) == 2 and key[1] is not Ellipsis):
                raise IndexError("PaddedSequences is indexed along samples only.")
            key = key[0]
        if isinstance(key, numbers.Integral):
            return self.data[key, :self.lengths[key]]
        return type(self)(self.data[key], self.lengths[key])

    def __iter__(self):
        return (self[i] for i in range(len(self)))

    def __repr__(self):
        return f"PaddedSequences(shape={self.shape}, lengths {self.lengths.min(initial=0)}.." \
               f"{self.lengths.max(initial=0)})"


def _check_lengths(data, lengths):
    if data.ndim != 3:
        raise ValueError(f"PaddedSequences needs 3-D data (n_samples, n_steps, n_features); "
                         f"got shape {data.shape}.")
    if lengths.shape != (len(data),) or not np.issubdtype(lengths.dtype, np.integer):
        raise ValueError(f"lengths must be {len(data)} integers, one per sequence of the data; "
                         f"got {lengths.dtype} lengths of shape {lengths.shape}.")
    bad = np.flatnonzero((lengths < 1) | (lengths > data.shape[1]))
    if bad.size:
        raise ValueError(f"lengths do not match the data: sequence {bad[0]} has length "
                         f"{lengths[bad[0]]}, outside 1..{data.shape[1]} (n_steps of the data).")


def is_ragged(X):
    """Whether ``X`` is a layout of :func:`check_padded`: a :class:`PaddedSequences`, or a
    list, tuple or object array whose first element is a 2-D array, or whose elements are
    1-D arrays of different lengths (univariate sequences; of one length they are the rows
    of a 2-D array)."""
    if isinstance(X, PaddedSequences):
        return True
    if isinstance(X, np.ndarray):
        if X.dtype != object or X.ndim != 1:
            return False
    elif not isinstance(X, (list, tuple)):
        return False
    if len(X) == 0:
        return False
    return np.ndim(X[0]) == 2 or (np.ndim(X[0]) == 1 and len({np.shape(x) for x in X}) > 1)


def is_variable_length(X):
    """Whether ``X`` holds sequences of different lengths in a layout that keeps them apart:
    a :class:`PaddedSequences`, or a list, tuple or 1-D object array of arrays of different
    shapes (for the estimators that take one length only, to refuse it by name)."""
    if isinstance(X, PaddedSequences):
        return True
    if isinstance(X, np.ndarray) and (X.dtype != object or X.ndim != 1):
        return False
    if not isinstance(X, (list, tuple, np.ndarray)):
        return False
    return len({np.shape(row) for row in X}) > 1


def _finite_sequence(index, sequence):
    """Sequence ``index`` of a list as a float32 ``(n_steps_i, n_features)`` array; a 1-D
    array is ``n_steps_i`` steps of one feature."""
    if np.ndim(sequence) == 1 and np.size(sequence):
        sequence = np.reshape(sequence, (-1, 1))
    try:
        return check_array(sequence, dtype=np.float32, ensure_min_samples=1,
                           ensure_all_finite=True, input_name="X")
    except ValueError as exc:
        if np.size(sequence) == 0 or np.ndim(sequence) != 2:
            raise ValueError(f"Sequence {index} of X has shape {np.shape(sequence)}: every "
                             "sequence needs at least one step, as a 2-D array (n_steps_i, "
                             "n_features) or, for one feature, a 1-D array (n_steps_i,).") from None
        raise ValueError(f"Sequence {index} of X: {exc}") from None


def nan_lengths(X):
    """Lengths of a 3-D float array padded with NaN after each sequence's end; None if ``X``
    has no NaN. ``ValueError`` for NaN inside a sequence or an all-NaN sequence."""
    missing = np.isnan(X)
    if not missing.any():
        return None
    step_missing = missing.all(axis=2)
    trailing = np.flip(np.cumprod(np.flip(step_missing, axis=1), axis=1), axis=1).astype(bool)
    inside = np.argwhere(missing & ~trailing[..., None])
    if len(inside):
        i, t, f = inside[0]
        raise ValueError(f"Input X contains NaN inside a sequence: sequence {i}, step {t}, "
                         f"feature {f}. NaN may only pad whole steps after a sequence's end.")
    lengths = X.shape[1] - trailing.sum(axis=1)
    if not lengths.all():
        raise ValueError(f"Sequence {np.flatnonzero(lengths == 0)[0]} of X is empty (all NaN).")
    return lengths


def check_padded(X):
    """``(padded, lengths)`` of variable-length ``X`` (any layout of the module docstring).

    ``padded`` is a C-contiguous float32 array ``(n_samples, longest, n_features)`` with zeros
    after each end; ``lengths`` an int64 array, or None when every sequence is as long as the
    longest. ``ValueError`` for sequences with different feature counts, an empty sequence,
    lengths that do not match the data, NaN or infinity inside a sequence.
    """
    if isinstance(X, PaddedSequences):
        _check_lengths(X.data, X.lengths)
        data = np.array(X.data, dtype=np.float32, order="C")
        steps = np.arange(data.shape[1])
        data[steps[None, :] >= X.lengths[:, None]] = 0
        lengths = X.lengths.astype(np.int64)
        if not np.isfinite(data).all():
            i, t, _ = np.argwhere(~np.isfinite(data))[0]
            raise ValueError(f"Input X contains NaN or infinity inside a sequence: sequence {i}, "
                             f"step {t}.")
    elif isinstance(X, np.ndarray) and X.ndim == 3:
        data = check_array(X, dtype=np.float32, allow_nd=True, ensure_all_finite="allow-nan",
                           order="C", input_name="X")
        lengths = nan_lengths(data)
        if lengths is not None:
            data = np.nan_to_num(data, nan=0.0)
    else:
        sequences = [_finite_sequence(i, s) for i, s in enumerate(X)]
        widths = {s.shape[1] for s in sequences}
        if len(widths) > 1:
            first = next(i for i, s in enumerate(sequences) if s.shape[1] != sequences[0].shape[1])
            raise ValueError(f"The sequences of X have different feature counts {sorted(widths)}: "
                             f"sequence 0 has {sequences[0].shape[1]}, sequence {first} has "
                             f"{sequences[first].shape[1]}. {_layout_hint(X, sequences)}")
        lengths = np.array([len(s) for s in sequences], dtype=np.int64)
        data = pad_sequence([torch.from_numpy(s) for s in sequences], batch_first=True).numpy()
    if lengths is not None and (lengths == data.shape[1]).all():
        lengths = None
    return np.ascontiguousarray(data), lengths


def _layout_hint(X, sequences):
    """What the commonest layout mistakes behind different feature counts look like."""
    hints = ["Each sequence is (n_steps_i, n_features), time steps first"]
    if any(np.ndim(x) == 1 for x in X):
        hints.append("a 1-D array is read as n_steps_i steps of one feature")
    if len({s.shape[0] for s in sequences}) == 1:
        hints.append("aeon's (n_channels, n_timepoints_i) cases: convert them with "
                     "latticeprune.sequences.from_aeon")
    return "; ".join(hints) + "."


def sequence_ends(outputs, lengths):
    """``(outputs with zeros after each end, state at each end)`` of batch-first states
    ``outputs`` ``(batch, steps, hidden)`` computed over padded input; ``lengths`` a tensor."""
    lengths = lengths.to(outputs.device)
    # shape[0], not len(): torch.export (export_onnx) keeps a shape dynamic, fixes a len()
    last = outputs[torch.arange(outputs.shape[0], device=outputs.device), lengths.long() - 1]
    return outputs * step_mask(lengths, outputs.shape[1]).unsqueeze(-1), last


def step_mask(lengths, n_steps):
    """``(n_samples, n_steps)`` bool mask of the steps before each sequence's end: a tensor
    (on the device of ``lengths``) for a tensor, else a numpy array."""
    if isinstance(lengths, torch.Tensor):
        return torch.arange(n_steps, device=lengths.device)[None, :] < lengths[:, None]
    return np.arange(n_steps)[None, :] < np.asarray(lengths)[:, None]


def sequence_array(sequences):
    """A 1-D object array holding ``sequences`` (arrays of any shapes) as its elements."""
    out = np.empty(len(sequences), dtype=object)
    for i, sequence in enumerate(sequences):
        out[i] = sequence
    return out


def unpad(padded, lengths):
    """Each sequence of ``padded`` ``(n_samples, n_steps, ...)`` without its padding: a 1-D
    object array of ``padded[i, :lengths[i]]`` (:func:`sequence_array`)."""
    return sequence_array([row[:length] for row, length in zip(padded, lengths)])


def pad_steps(values, mask):
    """The padded array ``(*mask.shape, ...)`` holding ``values`` (one row per True entry of
    ``mask``, in row-major order, as ``padded[mask]`` reads them) and zeros elsewhere."""
    out = np.zeros(mask.shape + values.shape[1:], dtype=values.dtype)
    out[mask] = values
    return out


def check_step_targets(y, lengths, n_steps):
    """The targets of every step of per-step targets ``y``: ``(values, ndim)``.

    ``values`` holds them sequence after sequence, ``(total_steps,)`` or ``(total_steps,
    n_targets)`` (as ``padded_y[step_mask(lengths, ...)]`` reads them); ``ndim`` is 2 for one
    target per step, 3 for several (the dimensions of a padded ``y``).

    Parameters
    ----------
    y : list, tuple, 1-D object array or PaddedSequences of arrays, or array-like
        One array ``(n_steps_i,)`` or ``(n_steps_i, n_targets)`` per sequence, as long as the
        sequence; or an array ``(n_samples, n_steps_y)`` or ``(n_samples, n_steps_y,
        n_targets)``. With ``lengths`` its entries after each end are ignored (NaN, zeros,
        anything) and ``n_steps_y`` must reach the longest sequence; without, ``n_steps_y`` is
        ``n_steps``, or more with only NaN after it.
    lengths : ndarray of int or None
        Steps of each sequence of ``X``; None: every sequence has ``n_steps``.
    n_steps : int
        Steps of the validated (padded) ``X``.

    Raises ``ValueError`` for a ``y`` whose steps do not match the sequences of ``X``, target
    shapes that differ between sequences, or NaN or infinity before a sequence's end.
    """
    strict = lengths is None  # equal lengths: a padded y as wide as X (or NaN after it)
    if strict:
        lengths = np.full(_num_targets(y), n_steps)
    if isinstance(y, (list, tuple, PaddedSequences)) or (
            isinstance(y, np.ndarray) and y.dtype == object and y.ndim == 1):
        values, ndim = _per_sequence_targets(y, lengths)
    else:
        values, ndim = _padded_targets(np.asarray(y), lengths, n_steps, strict)
    if values.dtype.kind in "fc" and not np.isfinite(values).all():
        row = np.flatnonzero(~np.isfinite(values.reshape(len(values), -1)).all(axis=1))[0]
        ends = np.cumsum(lengths)
        i = int(np.searchsorted(ends, row, side="right"))
        raise ValueError(f"y contains NaN or infinity at step {row - (ends[i] - lengths[i])} of "
                         f"sequence {i}, which has {lengths[i]} steps: per-step targets must be "
                         "finite up to each sequence's end (NaN may only pad after it).")
    return values, ndim


def _num_targets(y):
    return len(y) if isinstance(y, (list, tuple, PaddedSequences)) else len(np.asarray(y))


def _per_sequence_targets(y, lengths):
    sequences = [np.asarray(s) for s in y]
    if len(sequences) != len(lengths):
        raise ValueError(f"y holds {len(sequences)} sequences of targets but X holds "
                         f"{len(lengths)} sequences.")
    for i, (s, length) in enumerate(zip(sequences, lengths)):
        if s.ndim not in (1, 2):
            raise ValueError(f"y[{i}] has shape {s.shape}: with sequence_output=True each "
                             "y[i] is an array (n_steps_i,) or (n_steps_i, n_targets) of the "
                             "targets at each step of X[i].")
        if len(s) != length:
            raise ValueError(f"y[{i}] has {len(s)} steps but sequence {i} of X has {length}: "
                             "with sequence_output=True y[i] holds one target per step of X[i].")
    shapes = [s.shape[1:] for s in sequences]
    if len(set(shapes)) > 1:
        other = next(i for i, shape in enumerate(shapes) if shape != shapes[0])
        raise ValueError(f"The sequences of y have different target shapes per step: y[0] has "
                         f"{sequences[0].shape}, y[{other}] has {sequences[other].shape}.")
    return np.concatenate(sequences), 1 + sequences[0].ndim


def _padded_targets(y, lengths, n_steps, strict):
    if y.ndim not in (2, 3):
        raise ValueError(f"With sequence_output=True, y holds a target per step: (n_samples, "
                         f"n_steps) or (n_samples, n_steps, n_targets), or one array per "
                         f"sequence; got shape {y.shape}.")
    if len(y) != len(lengths):
        raise ValueError(f"y has {len(y)} samples but X has {len(lengths)}.")
    short = np.flatnonzero(lengths > y.shape[1])
    if short.size:
        raise ValueError(f"y has {y.shape[1]} steps, but sequence {short[0]} of X has "
                         f"{lengths[short[0]]}: with sequence_output=True y needs a target at "
                         f"every step of every sequence (n_steps={n_steps}).")
    if strict and y.shape[1] > n_steps and not (
            y.dtype.kind == "f" and np.isnan(y[:, n_steps:]).all()):
        raise ValueError(f"y has {y.shape[1]} steps but X has n_steps={n_steps}: with "
                         "sequence_output=True y is (n_samples, n_steps) or (n_samples, "
                         "n_steps, n_targets); steps after X's may only be NaN padding.")
    return y[step_mask(lengths, y.shape[1])], y.ndim


def from_aeon(X):
    """aeon's collection layouts in the estimators' layout (time steps first).

    A 3-D array ``(n_cases, n_channels, n_timepoints)`` becomes ``(n_cases, n_timepoints,
    n_channels)``; a list of 2-D arrays ``(n_channels, n_timepoints_i)`` (aeon's unequal-length
    collections) a list of ``(n_timepoints_i, n_channels)`` arrays.

    Examples
    --------
    >>> import numpy as np
    >>> from_aeon(np.zeros((4, 12, 20))).shape
    (4, 20, 12)
    >>> [x.shape for x in from_aeon([np.zeros((12, 7)), np.zeros((12, 9))])]
    [(7, 12), (9, 12)]
    """
    if isinstance(X, np.ndarray) and X.ndim == 3:
        return np.ascontiguousarray(X.transpose(0, 2, 1))
    out = [np.asarray(x) for x in X]
    bad = [i for i, x in enumerate(out) if x.ndim != 2]
    if bad:
        raise ValueError(f"aeon collections hold 2-D (n_channels, n_timepoints) cases; case "
                         f"{bad[0]} has shape {out[bad[0]].shape}.")
    return [np.ascontiguousarray(x.T) for x in out]
