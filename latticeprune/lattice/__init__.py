"""The dependency-lattice engine: adjacency, irreducible neurons, centrality, pruning order.

Pure numpy/scipy, no concept enumeration (docs/methods/lattice.md sections 2-5 and 7).
Modules, lowest first (no cycle): ``validation``; ``adjacency``, ``reachability``,
``centrality``, ``rule``; ``context`` (the verdicts, which use both orders).
"""

from .adjacency import binary_adjacency, check_levels, filtration_levels
from .centrality import CENTRALITIES, centrality
from .context import ORDERS, irreducibility_persistence, join_irreducible, meet_irreducible
from .reachability import HasseDiagram, dag_depth, hasse_diagram, reachability_closure
from .rule import removal_order, structural_neurons, structural_removals
from .validation import check_adjacency

__all__ = [
    "CENTRALITIES",
    "ORDERS",
    "HasseDiagram",
    "binary_adjacency",
    "centrality",
    "check_adjacency",
    "check_levels",
    "dag_depth",
    "filtration_levels",
    "hasse_diagram",
    "irreducibility_persistence",
    "join_irreducible",
    "meet_irreducible",
    "reachability_closure",
    "removal_order",
    "structural_removals",
    "structural_neurons",
]
