"""skorch callbacks: attach them to any skorch net, or let the estimators do it for you."""

from .divergence import DivergenceGuard, FitDivergedError

__all__ = ["DivergenceGuard", "FitDivergedError"]
