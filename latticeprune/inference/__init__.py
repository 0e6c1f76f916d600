"""Fast inference for pruned recurrent nets: compaction, sparse execution, one call to get both.

- :func:`to_inference`: a fitted sparsifier or skorch net to a prediction copy of the skorch net
  running a :class:`FastRecurrentNet`; a torch module to the :class:`FastRecurrentNet` itself.
- :mod:`~latticeprune.inference.compact`: :func:`compact`, the smaller dense net with the same
  outputs (units that cannot influence them removed).
- :mod:`~latticeprune.inference.sparse`: :class:`SparseRecurrentNet`, a step loop over CSR
  weight matrices, and :data:`MIN_SPARSITY`, the dense/sparse crossover.
"""

from .compact import CompactRecurrentNet, compact, compact_weights, read_weights
from .fast import ENGINES, FastRecurrentNet, to_inference
from .sparse import MIN_SPARSITY, SparseRecurrentNet

__all__ = ["to_inference", "FastRecurrentNet", "ENGINES", "compact", "compact_weights",
           "read_weights", "CompactRecurrentNet", "SparseRecurrentNet", "MIN_SPARSITY"]
