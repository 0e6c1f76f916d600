"""latticeprune: sparsify recurrent neural networks inside scikit-learn pipelines."""

__version__ = "0.1.0"
