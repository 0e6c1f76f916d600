"""Structured pruning at the level of hidden units: rank them, mask them, remove them.

A unit's removal deletes every gate's rows of its layer's ``W_ih``, ``W_hh`` and ``W_td`` (and
its biases), its ``W_hh`` column, the next layer's input column, the top-down column into the
layer below and the read-out column. While a pruner fine-tunes, :func:`unit_masks` zeroes
those rows and columns through ``NeuronGraph.apply_masks`` (the outgoing columns alone already
make the unit invisible); at the end :func:`remove_units` builds the ordinary smaller
:class:`~latticeprune.nets.RecurrentNet` (torch's fused ``nn.LSTM`` / ``nn.GRU`` / ``nn.RNN``
with fewer units, or the top-down net with smaller layers) with the same outputs, and
:func:`reduced_estimator` puts it inside a copy of the skorch estimator.

Rankers (:data:`UNIT_RANKERS`), applied per layer: ``"lattice"`` removes the units that are not
meet-irreducible first, lowest centrality first, then the irreducible ones in the same order
(docs/methods/lattice.md, at the level of neurons); ``"magnitude"`` removes the units with the
smallest L2 norm of the weights their removal deletes (the standard structured baseline);
``"random"`` draws them uniformly. Every layer loses ``pruned_count(fraction, size)`` units.
Cost: one pass over the weights per round (the lattice verdict itself is
:func:`~latticeprune.callbacks.lattice_pruning.analyse`).
"""

import copy
import warnings

import numpy as np
import torch
from sklearn.utils import check_random_state

from .inference.compact import read_weights
from .neuron_graph import NeuronGraph, estimator_chain, find_net, pruned_count
from .nets import RecurrentNet

__all__ = ["UNIT_RANKERS", "check_removable", "check_unit_fraction", "removal_order",
           "next_removals", "unit_masks", "remove_units", "reduced_estimator", "replace_net",
           "unit_sparsity"]

#: Valid unit rankers (the ``strategy`` of a pruner with ``granularity="unit"``).
UNIT_RANKERS = ("lattice", "magnitude", "random")


def check_removable(module):
    """Raise unless ``module``'s hidden units can be removed physically.

    ``ValueError`` (from :class:`~latticeprune.neuron_graph.NeuronGraph`) for bidirectional
    layers or LSTMs with projections; ``TypeError`` for a module that is not a
    :class:`~latticeprune.nets.RecurrentNet` (its ``forward`` could use its layers in any way).
    """
    try:
        NeuronGraph(module)  # refuses bidirectional layers and projections
    except ValueError as exc:
        raise ValueError(f"Cannot remove units (granularity='unit'): {exc}") from exc
    if not isinstance(module, RecurrentNet):
        raise TypeError(f"granularity='unit' rebuilds a latticeprune RecurrentNet; got "
                        f"{type(module).__name__}.")


def check_unit_fraction(graph, fraction):
    """``ValueError`` if removing ``fraction`` of the units of a layer would remove all of
    them; a ``UserWarning`` naming the layers of which a ``fraction > 0`` removes no unit
    (``pruned_count`` rounds ``fraction * size`` half to even: 0.5 of one unit is none)."""
    for layer in graph.layers:
        if pruned_count(fraction, layer.size) >= layer.size:
            raise ValueError(
                f"sparsity={fraction} removes all {layer.size} units of layer {layer.name}; "
                f"at most {(layer.size - 0.5) / layer.size:.4f} keeps one.")
    untouched = [f"{layer.name} ({layer.size} units)" for layer in graph.layers
                 if fraction and not pruned_count(fraction, layer.size)]
    if untouched:
        warnings.warn(f"sparsity={fraction} removes no unit of layer "
                      f"{', '.join(untouched)}: {fraction} of its units rounds to 0. "
                      "Those layers keep every unit (see sparsity_['per_layer']).",
                      UserWarning, stacklevel=3)


def _unit_norms(graph):
    """Per neuron, the L2 norm of the weights its removal deletes (gate rows and columns)."""
    squares = np.zeros(graph.n_neurons)
    for t in graph.tensors:
        w = t.weight.detach().cpu().double().numpy() ** 2
        if t.dst is not None:
            squares[graph.layer_slice(t.dst)] += w.reshape(t.n_gates, -1, w.shape[1]).sum((0, 2))
        if t.src is not None and graph.layers[t.src].size == w.shape[1]:
            squares[graph.layer_slice(t.src)] += w.sum(axis=0)
    return np.sqrt(squares)


def removal_order(graph, ranker, analysis=None, random_state=None):
    """Every neuron of ``graph`` (global indices), first to be removed first.

    ``analysis`` (a :class:`~latticeprune.callbacks.lattice_pruning.LatticeAnalysis`) is
    needed by ``ranker="lattice"``: not irreducible (or less persistent) first, then by
    centrality.
    """
    if ranker == "lattice":
        return np.lexsort((analysis.rank, np.asarray(analysis.protected, dtype=float)))
    if ranker == "magnitude":
        return np.argsort(_unit_norms(graph), kind="stable")
    if ranker == "random":
        return check_random_state(random_state).permutation(graph.n_neurons)
    raise ValueError(f"ranker={ranker!r} is not valid; valid choices are {list(UNIT_RANKERS)}.")


def next_removals(graph, order, removed, fraction):
    """Neurons to remove now so that every layer has ``pruned_count(fraction, size)`` removed:
    the first ones of ``order`` in each layer not in ``removed`` (bool per neuron)."""
    new = np.zeros(graph.n_neurons, dtype=bool)
    for index, layer in enumerate(graph.layers):
        sl = graph.layer_slice(index)
        needed = pruned_count(fraction, layer.size) - int(removed[sl].sum())
        alive = [i for i in order if sl.start <= i < sl.stop and not removed[i]]
        new[alive[:max(needed, 0)]] = True
    return new


def unit_masks(graph, removed):
    """``{tensor name: weight mask}`` zeroing every row and column of the ``removed`` neurons."""
    masks = {}
    for t in graph.tensors:
        n_dst, n_src = t.weight.shape[0] // t.n_gates, t.weight.shape[1]
        keep_src = (~removed[graph.layer_slice(t.src)] if t.src is not None
                    and graph.layers[t.src].size == n_src else np.ones(n_src, dtype=bool))
        keep_dst = (~removed[graph.layer_slice(t.dst)] if t.dst is not None
                    else np.ones(n_dst, dtype=bool))
        if not (keep_src.all() and keep_dst.all()):
            masks[t.name] = t.weight_mask(np.outer(keep_src, keep_dst))
    return masks


def remove_units(module, keep):
    """The smaller :class:`~latticeprune.nets.RecurrentNet` holding only units ``keep``.

    Parameters
    ----------
    module : RecurrentNet
        Pruned through ``torch.nn.utils.prune`` or not (its live weights are read).
    keep : list of array of int
        Per layer, the indices of the units kept (at least one per layer).

    Returns
    -------
    small : RecurrentNet
        On ``module``'s device, with ``hidden_size`` the kept counts; its outputs equal
        ``module``'s whenever the removed units' outgoing weights are zero.
    """
    check_removable(module)
    weights = read_weights(module)
    if len(keep) != len(weights.layers) or min(len(k) for k in keep) < 1:
        raise ValueError(f"keep needs at least one unit for each of the {len(weights.layers)} "
                         f"layers; got sizes {[len(k) for k in keep]}.")
    keep = [np.sort(np.asarray(k, dtype=np.int64)) for k in keep]
    layers = [layer.select(keep[i], keep[i - 1] if i else None,
                           keep[i + 1] if layer.weight_td is not None else None)
              for i, layer in enumerate(weights.layers)]
    small = RecurrentNet(weights.input_size, weights.readout_weight.shape[0],
                         hidden_size=[len(k) for k in keep], num_layers=len(keep),
                         cell=layers[0].cell, top_down=weights.top_down,
                         sequence_output=weights.sequence_output)
    arrays = {(layer.owner, attr): getattr(weights_, key)
              for layer, weights_ in zip(NeuronGraph(small).layers, layers)
              for key, attr in layer.params.items()}
    arrays[(small.readout, "weight")] = weights.readout_weight[:, keep[-1]]
    arrays[(small.readout, "bias")] = weights.readout_bias
    with torch.no_grad():
        for (owner, attr), value in arrays.items():
            getattr(owner, attr).copy_(torch.from_numpy(np.ascontiguousarray(value)))
    device = next(module.parameters()).device
    return small.to(device)


def reduced_estimator(net, keep):
    """A copy of the fitted skorch ``net`` whose ``module_`` is :func:`remove_units`'s smaller
    net, with ``hidden_size`` set to the kept sizes (an int if all layers are equal) and a fresh
    optimizer: an ordinary estimator that trains further, pickles and can be wrapped again."""
    small = remove_units(net.module_, keep)
    sizes = [len(k) for k in keep]
    module, net.module_ = net.module_, None
    try:
        reduced = copy.deepcopy(net)
    finally:
        net.module_ = module
    reduced.hidden_size = sizes[0] if len(set(sizes)) == 1 else tuple(sizes)
    reduced.module_ = small.to(net.device)
    reduced.initialize_optimizer()
    return reduced


def replace_net(estimator, keep):
    """``estimator`` (a fitted skorch net or sparsifiers around one) with its innermost net
    replaced by :func:`reduced_estimator`; the new outermost object is returned."""
    chain = estimator_chain(estimator)
    reduced = reduced_estimator(find_net(estimator), keep)
    if len(chain) == 1:
        return reduced
    chain[-2].estimator_ = reduced
    return estimator


def unit_sparsity(graph, small, scope="recurrent"):
    """``sparsity_`` of a unit-pruned net: fraction of units removed (``"overall"``, also
    ``"units"``, and ``"per_layer"``) and of weight entries in ``scope`` removed
    (``"weights"``), from the original ``graph`` and the ``small`` module."""
    after = NeuronGraph(small)
    sizes = [layer.size for layer in after.layers]

    def entries(g):
        return sum(t.weight.numel() for t in g.tensors_in(scope))

    units = 1 - sum(sizes) / graph.n_neurons
    return {"overall": units, "units": units,
            "per_layer": {layer.name: 1 - size / layer.size
                          for layer, size in zip(graph.layers, sizes)},
            "weights": 1 - entries(after) / entries(graph),
            "hidden_sizes": sizes}
