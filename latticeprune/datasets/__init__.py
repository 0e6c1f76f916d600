"""Data sets for recurrent nets: loaders, generators and batching helpers.

Every loader returns sequences as ``(n_samples, n_steps, n_features)`` float32
arrays (or 2-D ``(n_samples, n_steps * n_features)`` on request), so they feed
:class:`latticeprune.RNNClassifier` / ``RNNRegressor`` directly.

- :func:`load_digits_sequences`: scikit-learn's embedded digits, 8 x 8 (no download).
- :func:`load_mnist`: MNIST from an IDX folder (or OpenML), 28 x 28.
- :func:`make_adding_problem`: the adding problem.
- :func:`make_navigation_task`: path integration with place cells, with
  :func:`decode_position` and :func:`position_error_cm`.
- :func:`load_wikitext2`: word-level WikiText-2, with :func:`batchify` and
  :func:`bptt_batches` for truncated BPTT.
- :func:`load_uea`: a UEA/UCR ``.ts`` data set through aeon's loader (optional extra
  ``aeon``); unequal lengths come as a list of ``(n_steps_i, n_channels)`` arrays.
"""

from .adding import make_adding_problem
from .digits import load_digits_sequences
from .mnist import MNISTNotFoundError, load_mnist, read_idx, write_idx
from .navigation import (decode_position, make_navigation_task, make_place_cell_centres,
                         place_cell_codes, position_error_cm)
from .uea import load_uea
from .wikitext import Dictionary, batchify, bptt_batches, load_wikitext2

__all__ = ["load_digits_sequences", "load_mnist", "read_idx", "write_idx", "MNISTNotFoundError",
           "make_adding_problem", "make_navigation_task", "make_place_cell_centres",
           "place_cell_codes", "decode_position", "position_error_cm", "load_wikitext2",
           "Dictionary", "batchify", "bptt_batches", "load_uea"]
