"""The dependency-lattice engine: adjacency, irreducible neurons, centrality, pruning order.

Pure numpy/scipy, no concept enumeration (docs/methods/lattice.md sections 2-5 and 7).
"""

from .adjacency import (
    binary_adjacency,
    check_adjacency,
    filtration_levels,
    irreducibility_persistence,
)
from .centrality import CENTRALITIES, centrality
from .context import ORDERS, join_irreducible, meet_irreducible
from .reachability import HasseDiagram, hasse_diagram, reachability_closure
from .rule import removal_order, structural_removals

__all__ = [
    "CENTRALITIES",
    "ORDERS",
    "HasseDiagram",
    "binary_adjacency",
    "centrality",
    "check_adjacency",
    "filtration_levels",
    "hasse_diagram",
    "irreducibility_persistence",
    "join_irreducible",
    "meet_irreducible",
    "reachability_closure",
    "removal_order",
    "structural_removals",
]
