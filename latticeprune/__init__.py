"""latticeprune: sparsify recurrent neural networks inside scikit-learn pipelines.

Public estimators: :class:`RNNClassifier`, :class:`RNNRegressor`.
"""

from .estimators import RNNClassifier, RNNRegressor

__version__ = "0.1.0"

__all__ = ["RNNClassifier", "RNNRegressor"]
