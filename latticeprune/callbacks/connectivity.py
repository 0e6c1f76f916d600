"""Does the net still read its input into its read-out? The guard every pruning rule passes.

A net's signal flows from the input features through ``input`` weights into the first
layer, through recurrent, feed-forward and top-down weights between hidden neurons, and out
through the read-out. :func:`input_reaches_readout` asks whether a path of non-zero weights
(a connection counts if any of its gate entries is non-zero) leads from some input feature
to some read-out output: one breadth-first search (``scipy.sparse.csgraph``) over the neuron
graph plus a source node, linear in the number of connections. A net without a read-out is
read where its units reach its output (its top layer, if the trace says nothing).
"""

import numpy as np
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import breadth_first_order

__all__ = ["input_reaches_readout", "check_input_reaches_readout"]


def input_reaches_readout(graph):
    """True if a path of non-zero weights leads from ``graph``'s input to its read-out.

    ``graph`` is a :class:`~latticeprune.neuron_graph.NeuronGraph`.
    """
    n = graph.n_neurons
    fed, read = np.zeros(n, dtype=bool), np.zeros(n, dtype=bool)
    has_readout = False
    for t in graph.tensors:
        live = t.strengths() > 0  # (n_columns, n_dst)
        for layer, cols in t.sources():
            if layer is None and t.dst is not None:  # the net's input into a layer
                fed[graph.layer_slice(t.dst)] |= live[cols].any(axis=0)
            elif layer is not None and t.dst is None:  # a read-out of hidden units
                read[graph.layer_slice(layer)] |= live[cols].any(axis=1)
                has_readout = True
    for block in graph.dependencies.exposed if not has_readout else ():
        read[graph.layer_slice(block)] = True
    if not has_readout and not graph.dependencies.exposed:
        read[graph.layer_slice(len(graph.layers) - 1)] = True
    adjacency = np.zeros((n + 1, n + 1), dtype=bool)
    adjacency[:n, :n] = graph.strength_matrix() > 0
    adjacency[n, :n] = fed  # node n: the input
    reached = breadth_first_order(csr_matrix(adjacency), n, directed=True,
                                  return_predecessors=False)
    return bool(read[reached[reached < n]].any())


def check_input_reaches_readout(graph, what):
    """Raise ``ValueError`` naming ``what`` (the pruning step) unless :func:`input_reaches_readout`."""
    if not input_reaches_readout(graph):
        raise ValueError(
            f"{what} cut the net off from its input or read-out: no path of non-zero weights "
            "leads from the input features to the read-out, so the net would predict at chance "
            "level. Lower the sparsity or prune scope='recurrent'.")
