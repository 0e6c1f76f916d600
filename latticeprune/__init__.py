"""latticeprune: sparsify recurrent neural networks inside scikit-learn pipelines.

Public estimators: :class:`RNNClassifier`, :class:`RNNRegressor`.
"""

from .estimators import RNNClassifier, RNNRegressor
from .regularizer import ModuliRegularizer
from .pruner import LatticePruner
from .export import export_onnx
from .preprocessing import SequenceScaler
from .sequences import PaddedSequences

__version__ = "0.1.0"

__all__ = ["LatticePruner", "ModuliRegularizer", "PaddedSequences", "RNNClassifier",
           "RNNRegressor", "SequenceScaler", "export_onnx"]
