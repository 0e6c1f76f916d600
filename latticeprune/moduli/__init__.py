"""Moduli regularisation core: spaces, inhibitors and the penalty (no skorch).

Hidden units are embedded at points of a moduli space; the recurrent weight
between units ``i`` and ``j`` is penalised by ``R[i, j] = f(d(p_i, p_j))``
(``docs/methods/moduli.md`` sections 1-4).
"""

from .inhibitors import (
    INHIBITOR_NAMES,
    difference_of_gaussians,
    gauss,
    get_inhibitor,
    invert,
    permute,
    ripple,
    square,
)
from .penalty import moduli_penalty, penalty_from_points, penalty_matrix
from .spaces import (
    FLAT_SIDE,
    ROUND_RADIUS,
    SPACE_NAMES,
    Circle,
    Klein,
    Space,
    Sphere,
    Standard,
    Torus,
    get_space,
)

__all__ = [
    "FLAT_SIDE",
    "ROUND_RADIUS",
    "SPACE_NAMES",
    "INHIBITOR_NAMES",
    "Space",
    "Circle",
    "Sphere",
    "Torus",
    "Klein",
    "Standard",
    "get_space",
    "square",
    "gauss",
    "difference_of_gaussians",
    "ripple",
    "get_inhibitor",
    "invert",
    "permute",
    "penalty_matrix",
    "penalty_from_points",
    "moduli_penalty",
]
