"""Pictures for notebooks: sparsity curves, connectivity, lattice, moduli embedding, navigation.

Needs matplotlib (``pip install latticeprune[plots]``), imported when a function is called.
Every function draws into the ``ax`` (or ``fig``) given, or a new figure, and returns it. One
module per topic: ``sparsity``, ``connectivity``, ``hasse``, ``embedding``, ``navigation``,
``pareto`` (accuracy against latency);
``axes`` is what they share.
"""

from .connectivity import neuron_order, plot_connectivity
from .embedding import DRAWABLE_SPACES, plot_moduli_embedding
from .hasse import plot_hasse_diagram
from .navigation import plot_place_cell_fields, plot_trajectories
from .pareto import pareto_front, plot_accuracy_latency
from .sparsity import SPARSITY_PARAMS, plot_sparsity_curves

__all__ = ["neuron_order", "plot_sparsity_curves", "plot_connectivity", "plot_hasse_diagram",
           "plot_moduli_embedding", "plot_trajectories", "plot_place_cell_fields",
           "plot_accuracy_latency", "pareto_front"]
