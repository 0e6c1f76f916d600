"""skorch callbacks: attach them to any skorch net, or let the estimators do it for you."""

from .divergence import DivergenceGuard, FitDivergedError
from .group_lasso import GroupLassoPenalty
from .lattice_pruning import LatticePruning
from .moduli_penalty import ModuliPenalty
from .pruning_schedule import GradualMagnitudePruning

__all__ = ["DivergenceGuard", "FitDivergedError", "GroupLassoPenalty", "ModuliPenalty",
           "GradualMagnitudePruning", "LatticePruning"]
