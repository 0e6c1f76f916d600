"""Estimators for the moduli paper's tasks: path integration and word-level language modelling.

- :class:`PathIntegrator`: the navigation task (velocity in, place-cell codes out), with
  :func:`navigation_inputs` to pack its ``X`` and :func:`position_error_scorer` for
  ``GridSearchCV``.
- :class:`LanguageModel`: an Elman/LSTM word-level language model on token windows, with
  :func:`token_windows` to cut a token stream into ``X, y``; ``score`` is minus the perplexity.

Both are skorch nets with an ``nn.RNN`` / ``nn.LSTM`` core, so
:class:`~latticeprune.LatticePruner` and :class:`~latticeprune.ModuliRegularizer` wrap them.
"""

from .language import LanguageModel, token_windows
from .navigation import PathIntegrator, navigation_inputs, position_error_scorer

__all__ = ["LanguageModel", "PathIntegrator", "navigation_inputs", "position_error_scorer",
           "token_windows"]
