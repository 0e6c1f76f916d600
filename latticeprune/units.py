"""Structured pruning at the level of hidden units: mask them, remove them.

A unit's removal deletes every entry that produces it (its gate rows of its layer's
``W_ih``, ``W_hh`` and ``W_td``, and biases) and every entry that reads it (its ``W_hh``
column, the next layer's input columns, the top-down column into the layer below, the columns
of the ``nn.Linear`` layers and the entries of the norms that read it), as the module's traced
:class:`~latticeprune.dependency.Dependencies` list them. While a pruner fine-tunes,
:func:`unit_masks` zeroes those rows and columns through ``NeuronGraph.apply_masks`` (the
outgoing columns alone already make the unit invisible) and :func:`mask_norms` leaves the
units out of the layer norms' statistics; at the end :func:`remove_units` resizes a copy of
the module, of its own class (torch's fused modules with fewer units, the top-down net with
smaller layers, a user's module whose ``forward`` runs unchanged), with the same outputs, and
:func:`reduced_estimator` puts it inside a copy of the skorch estimator.

The order in which units go is a ranker's (:mod:`latticeprune.rules`); every layer loses
``pruned_count(fraction, size)`` units (:func:`next_removals`). :func:`unit_norms` and
:func:`unit_weights` are what the magnitude ranker and a user's importance read. Cost: one
pass over the weights per round.
"""

import copy
import warnings

import numpy as np
import torch
from torch import nn

from .nets import HierarchicalLayer, HierarchicalRNN, LayerStack, RecurrentNet
from .neuron_graph import (NeuronGraph, estimator_chain, find_net, make_permanent,
                           pruned_count, refresh_flat_weights)

#: Valid ``allocation`` values: how a unit fraction is spread over the layers.
ALLOCATIONS = ("per_layer", "global")

__all__ = ["check_removable", "check_unit_fraction", "unit_norms", "unit_rms", "group_lasso",
           "unit_weights", "next_removals", "removal_counts", "equal_count_sets", "ALLOCATIONS",
           "unit_masks", "kept_units", "mask_norms", "remove_norm_masks", "remove_units",
           "reduced_estimator", "replace_net", "unit_sparsity"]


def check_removable(module):
    """Raise ``ValueError`` unless ``module``'s hidden units can be removed physically.

    The module's traced :class:`~latticeprune.dependency.Dependencies` must be complete (a
    sparsifier traces it on the training data), its ``forward`` must not build an initial
    state of its own (``hx``, whose shape would no longer fit), return hidden units
    unread, or share a parameter that reads units with another module.
    """
    graph = NeuronGraph(module)
    deps, name = graph.dependencies, type(graph.module).__name__
    problems = []
    if not deps.complete:
        problems.append(f"{name}'s computation was not traced (a sparsifier traces it on the "
                        "training data; latticeprune.dependency.trace does it by hand)")
    if deps.initial_state:
        problems.append(f"{name}.forward passes its own initial state to "
                        f"{', '.join(sorted(deps.initial_state))}, whose shape it builds from "
                        "the hidden size (pass no initial state: zeros are torch's default)")
    if deps.exposed:
        problems.append(f"{name}.forward returns the hidden units of "
                        f"{deps.block_names(deps.exposed)} without a read-out, so removing "
                        "units would change its output's shape")
    shared = _shared_parameters(graph.module, deps)
    if shared:
        problems.append(f"{', '.join(shared)} is shared with another module (tied weights), "
                        "whose size would change too")
    if problems:
        raise ValueError("Cannot remove units (granularity='unit'): " + "; ".join(problems) + ".")
    return graph


def _shared_parameters(module, deps):
    """Paths of reader parameters that the module also holds under another name."""
    counts = {}
    for _, param in module.named_parameters(remove_duplicate=False):
        counts[id(param)] = counts.get(id(param), 0) + 1
    return [r.path for r in deps.weights + deps.norms
            if isinstance(getattr(r.owner, r.param, None), nn.Parameter)
            and counts.get(id(getattr(r.owner, r.param)), 0) > 1]


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


def _unit_squares(graph, weight, squares):
    """Add to ``squares`` (per neuron, numpy or torch) the sum of squares of the weights each
    neuron's removal deletes (gate rows and columns), each tensor read by ``weight(t)``."""
    for t in graph.tensors:
        w = weight(t) ** 2
        if t.dst is not None:
            squares[graph.layer_slice(t.dst)] += w.reshape(t.n_gates, -1, w.shape[1]).sum((0, 2))
        for layer, cols in t.hidden_sources():
            squares[graph.layer_slice(layer)] += w[:, cols].sum(0)
    return squares


def unit_norms(graph):
    """Per neuron, the L2 norm of the weights its removal deletes (gate rows and columns)."""
    return np.sqrt(_unit_squares(graph, lambda t: t.weight.detach().cpu().double().numpy(),
                                 np.zeros(graph.n_neurons)))


def unit_rms(graph):
    """Per neuron, the root mean square of the weights its removal deletes: its L2 norm over
    the square root of its group's size, which compares units of layers of different widths."""
    sizes = _unit_squares(graph, lambda t: np.ones(tuple(t.weight.shape)),
                          np.zeros(graph.n_neurons))
    return unit_norms(graph) / np.sqrt(sizes)


def group_lasso(graph, eps=1e-12):
    """The group-lasso penalty of ``graph``'s units: the sum over neurons of the L2 norm of
    the weights its removal deletes, on the weights as training sees them (``live``), a
    differentiable scalar (``eps`` under each root keeps removed units' gradient finite)."""
    first = graph.tensors[0].weight
    squares = _unit_squares(graph, lambda t: t.live(),
                            torch.zeros(graph.n_neurons, dtype=first.dtype, device=first.device))
    return torch.sqrt(squares + eps).sum()


def unit_weights(graph):
    """Per neuron, the weight entries its removal deletes (its gate rows, then its columns),
    one 1-D array each."""
    parts = [[] for _ in range(graph.n_neurons)]
    for t in graph.tensors:
        w = t.weight.detach().cpu().numpy()
        if t.dst is not None:
            rows = w.reshape(t.n_gates, -1, w.shape[1])
            for j in range(rows.shape[1]):
                parts[graph.layers[t.dst].offset + j].append(rows[:, j].ravel())
        for layer, cols in t.hidden_sources():
            for i in range(cols.stop - cols.start):
                parts[graph.layers[layer].offset + i].append(w[:, cols.start + i])
    return [np.concatenate(p) for p in parts]


def next_removals(graph, order, removed, fraction, allocation="per_layer"):
    """Neurons to remove now, the first ones of ``order`` in each layer not in ``removed`` (bool
    per neuron), until each layer has as many removed as :func:`removal_counts` says."""
    new = np.zeros(graph.n_neurons, dtype=bool)
    counts = removal_counts(graph, order, removed, fraction, allocation)
    for index, count in enumerate(counts):
        sl = graph.layer_slice(index)
        needed = count - int(removed[sl].sum())
        alive = [i for i in order if sl.start <= i < sl.stop and not removed[i]]
        new[alive[:max(needed, 0)]] = True
    return new


def removal_counts(graph, order, removed, fraction, allocation="per_layer"):
    """Units each layer of ``graph`` has removed after this round.

    ``fraction`` None (the structure decides): every unit of ``order`` goes, each layer
    keeping at least one; the layers that must keep equally many units
    (:func:`equal_count_sets`) remove the fewest any of them would. ``"per_layer"``:
    ``pruned_count(fraction, size)`` of every layer. ``"global"``: ``pruned_count(fraction,
    n_neurons)`` over all layers, taken in ``order`` (every layer keeps at least one unit);
    the layers that must keep equally many then each get their mean count, rounded, so the
    total may differ from the target by a few units.
    """
    sizes = [layer.size for layer in graph.layers]
    counts = [int(removed[graph.layer_slice(i)].sum()) for i in range(len(sizes))]
    layer_of = np.repeat(np.arange(len(sizes)), sizes)
    if fraction is None:
        for i in order:
            if not removed[i]:
                counts[layer_of[i]] = min(counts[layer_of[i]] + 1, sizes[layer_of[i]] - 1)
        for group in equal_count_sets(graph):
            for i in group:
                counts[i] = min(counts[j] for j in group)
        return counts
    if allocation == "per_layer":
        return [pruned_count(fraction, size) for size in sizes]
    total = pruned_count(fraction, graph.n_neurons)
    for i in order:
        if sum(counts) >= total:
            break
        if not removed[i] and counts[layer_of[i]] < sizes[layer_of[i]] - 1:
            counts[layer_of[i]] += 1
    for group in equal_count_sets(graph):
        done = max(int(removed[graph.layer_slice(i)].sum()) for i in group)
        count = max(int(np.round(np.mean([counts[i] for i in group]))), done)
        for i in group:
            counts[i] = min(count, sizes[i] - 1)
    return counts


def equal_count_sets(graph):
    """Lists of layers (indices into ``graph.layers``) that must keep equally many units: the
    two directions of a bidirectional layer, and every layer of a torch module whose final
    state the forward reads as one tensor (:func:`remove_units`)."""
    deps = graph.dependencies
    sets = []
    for group in deps.coupled:
        if deps.blocks[group[0]].path in deps.whole_state:
            sets.append(list(group))
            continue
        by_layer = {}
        for i in group:
            by_layer.setdefault(deps.blocks[i].layer, []).append(i)
        sets.extend(layers for layers in by_layer.values() if len(layers) > 1)
    return sets


def unit_masks(graph, removed):
    """``{tensor name: weight mask}`` zeroing every row and column of the ``removed`` neurons."""
    masks = {}
    for t in graph.tensors:
        n_dst = t.weight.shape[0] // t.n_gates
        keep_src = np.ones(t.weight.shape[1], dtype=bool)
        for layer, cols in t.hidden_sources():
            keep_src[cols] = ~removed[graph.layer_slice(layer)]
        keep_dst = (~removed[graph.layer_slice(t.dst)] if t.dst is not None
                    else np.ones(n_dst, dtype=bool))
        if not (keep_src.all() and keep_dst.all()):
            masks[t.name] = t.weight_mask(np.outer(keep_src, keep_dst))
    return masks


def remove_units(module, keep):
    """A copy of ``module`` holding only the hidden units ``keep``, resized in place.

    Every entry that produces a removed unit (its gate rows of ``weight_ih``, ``weight_hh``,
    ``weight_td`` and biases) and every entry that reads it (columns of the next layer's and
    its own recurrent weights, of the ``nn.Linear`` layers reading it, entries of the norms)
    goes, as :class:`~latticeprune.dependency.Dependencies` lists them; the modules' sizes
    (``hidden_size``, ``input_size``, ``in_features``, ``normalized_shape``, ``num_features``)
    follow. The copy is of ``module``'s own class, so its ``forward`` runs unchanged.

    Parameters
    ----------
    module : torch.nn.Module
        Pruned through ``torch.nn.utils.prune`` or not (its live weights are kept); traced
        (:func:`check_removable`).
    keep : list of array of int
        Per layer of its :class:`~latticeprune.neuron_graph.NeuronGraph` (each direction of a
        bidirectional layer is one), the indices of the units kept (at least one per layer).
        The two directions of a bidirectional layer keep equally many. Where the layers of one
        multi-layer torch module keep different numbers, it becomes a
        :class:`~latticeprune.nets.LayerStack` of one-layer modules with the same call
        signature (its final states a tuple of rows), unless the forward reads the final
        state as one tensor: then they must keep equally many.

    Returns
    -------
    small : torch.nn.Module
        Its outputs equal ``module``'s whenever the removed units' outgoing weights are zero
        (and, for a layer norm reading them, their values are left out of its statistics, as
        :func:`mask_norms` does).
    """
    graph = check_removable(module)
    deps = graph.dependencies
    if len(keep) != len(graph.layers) or min(len(k) for k in keep) < 1:
        raise ValueError(f"keep needs at least one unit for each of the {len(graph.layers)} "
                         f"layers; got sizes {[len(k) for k in keep]}.")
    keep = [np.sort(np.asarray(k, dtype=np.int64)) for k in keep]
    for layer, k in zip(graph.layers, keep):
        if k[-1] >= layer.size or k[0] < 0 or len(np.unique(k)) != len(k):
            raise ValueError(f"keep for layer {layer.name} must be distinct indices in "
                             f"0..{layer.size - 1}; got {k.tolist()}.")
    restack = _modules_to_restack(deps, keep)
    small = make_permanent(copy.deepcopy(graph.module))
    remove_norm_masks(small)
    owners = dict(small.named_modules())
    rows = {}  # (path of the owner, param) -> rows kept
    for block, k in zip(deps.blocks, keep):
        owner_path = next(p for p, m in graph.module.named_modules() if m is block.owner)
        gate_rows = (np.arange(block.n_gates)[:, None] * block.size + k[None, :]).ravel()
        for param in block.params.values():
            rows[(owner_path, param)] = gate_rows
    columns = {}
    for reader in deps.weights + deps.norms:
        owner_path = reader.path[:-len(reader.param)].rstrip(".")
        columns[(owner_path, reader.param)] = (reader.axis, _kept_entries(reader.segments, keep))
    with torch.no_grad():
        for (path, param), index in rows.items():
            _select(owners[path], param, 0, index)
        for (path, param), (axis, index) in columns.items():
            _select(owners[path], param, axis, index)
    for path, segments in deps.layer_norms.items():
        norm = owners[path]
        norm.normalized_shape = (len(_kept_entries(segments, keep)),)
    for sub in small.modules():
        if not (isinstance(sub, nn.RNNBase) and any(sub is small.get_submodule(p)
                                                    for p in restack)):
            _fit_sizes(sub)
    for path in restack:
        _restack(small, path)
    refresh_flat_weights(small)
    return small


def _modules_to_restack(deps, keep):
    """Paths of the torch modules whose layers keep different numbers of units (to become a
    :class:`~latticeprune.nets.LayerStack`); ``ValueError`` where that cannot be."""
    restack = []
    for group in deps.coupled:
        path = deps.blocks[group[0]].path
        per_layer = {}
        for i in group:
            per_layer.setdefault(deps.blocks[i].layer, set()).add(len(keep[i]))
        for layer, counts in per_layer.items():
            if len(counts) > 1:
                raise ValueError(f"The two directions of layer {layer} of {path} keep "
                                 f"{sorted(counts)} units: a bidirectional layer has one "
                                 "hidden_size, so they must keep equally many.")
        if len({next(iter(c)) for c in per_layer.values()}) > 1:
            if path in deps.whole_state:
                raise ValueError(
                    f"The layers {deps.block_names(group)} are one torch module whose final "
                    "state the forward reads as one tensor (all layers' rows at once): they "
                    f"must keep equally many units; got {[len(keep[i]) for i in group]}.")
            restack.append(path)
    return restack


def _restack(module, path):
    """Replace the (resized) multi-layer torch module at ``path`` by a LayerStack of one-layer
    modules carrying its weights."""
    fused = module.get_submodule(path)
    suffixes = ["", "_reverse"] if fused.bidirectional else [""]
    layers = []
    for k in range(fused.num_layers):
        hidden = getattr(fused, f"weight_hh_l{k}").shape[1]
        width = getattr(fused, f"weight_ih_l{k}").shape[1]
        layer = type(fused)(width, hidden, num_layers=1, bias=fused.bias,
                            batch_first=fused.batch_first, bidirectional=fused.bidirectional,
                            **({"nonlinearity": fused.nonlinearity}
                               if isinstance(fused, nn.RNN) else {}))
        with torch.no_grad():
            for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
                for suffix in suffixes:
                    if hasattr(fused, f"{name}_l{k}{suffix}"):
                        getattr(layer, f"{name}_l0{suffix}").copy_(
                            getattr(fused, f"{name}_l{k}{suffix}"))
        layers.append(layer.to(getattr(fused, "weight_hh_l0")))
    stack = LayerStack(layers, dropout=fused.dropout)
    parent, _, name = path.rpartition(".")
    setattr(module.get_submodule(parent) if parent else module, name, stack)


def _kept_entries(segments, keep):
    """Indices of the entries kept along an axis of ``segments`` (units of a block: those in
    ``keep``; other features: all)."""
    out, start = [], 0
    for block, size in segments:
        out.append(start + (keep[block] if block is not None else np.arange(size)))
        start += size
    return np.concatenate(out).astype(np.int64)


def _select(owner, name, axis, index):
    """Keep ``index`` along ``axis`` of ``owner.<name>`` (a parameter or a buffer)."""
    old = getattr(owner, name)
    new = old.detach().index_select(axis, torch.as_tensor(index, device=old.device)).clone()
    if isinstance(old, nn.Parameter):
        setattr(owner, name, nn.Parameter(new, requires_grad=old.requires_grad))
    else:
        setattr(owner, name, new)


def _fit_sizes(module):
    """Set ``module``'s size attributes from its (resized) tensors."""
    if isinstance(module, nn.RNNBase):
        module.hidden_size = module.weight_hh_l0.shape[1]
        module.input_size = module.weight_ih_l0.shape[1]
    elif isinstance(module, HierarchicalLayer):
        module.hidden_size, module.input_size = module.weight_hh.shape[1], module.weight_ih.shape[1]
    elif isinstance(module, HierarchicalRNN):
        module.hidden_size = module.layers[-1].hidden_size
    elif isinstance(module, nn.Linear):
        module.in_features = module.weight.shape[1]
    elif isinstance(module, nn.BatchNorm1d):
        module.num_features = next(t.shape[0] for t in (module.weight, module.running_mean)
                                   if t is not None)


class _KeptUnitsNorm:
    """Forward hook of an ``nn.LayerNorm`` reading hidden units: its statistics over the kept
    features only, zeros for the others (what the net without those units computes)."""

    def __init__(self, kept):
        self.kept = torch.as_tensor(kept, dtype=torch.long)

    def __call__(self, norm, args, output):
        x = args[0]
        kept = self.kept.to(x.device)
        weight = None if norm.weight is None else norm.weight[kept]
        bias = None if norm.bias is None else norm.bias[kept]
        out = torch.zeros_like(output)
        out[..., kept] = nn.functional.layer_norm(x[..., kept], (len(kept),), weight, bias,
                                                  norm.eps)
        return out


def kept_units(graph, removed):
    """Per layer of ``graph``, the indices of the units not ``removed`` (bool per neuron): the
    ``keep`` of :func:`remove_units`."""
    return [np.flatnonzero(~removed[graph.layer_slice(i)]) for i in range(len(graph.layers))]


def mask_norms(graph, removed):
    """Make the layer norms reading units of ``graph`` leave the ``removed`` units (bool per
    neuron) out of their statistics, as their removal will (a forward hook, replaced at each
    call); the masked net then computes what the smaller one does."""
    module = graph.module
    remove_norm_masks(module)
    keep = kept_units(graph, removed)
    for path, segments in graph.dependencies.layer_norms.items():
        kept = _kept_entries(segments, keep)
        if len(kept) < sum(size for _, size in segments):
            module.get_submodule(path).register_forward_hook(_KeptUnitsNorm(kept))


def remove_norm_masks(module):
    """Remove the hooks :func:`mask_norms` installed in ``module``."""
    for sub in module.modules():
        if isinstance(sub, nn.LayerNorm):
            for key, hook in list(sub._forward_hooks.items()):
                if isinstance(hook, _KeptUnitsNorm):
                    del sub._forward_hooks[key]


def reduced_estimator(net, keep):
    """A copy of the fitted skorch ``net`` whose ``module_`` is :func:`remove_units`'s smaller
    net and a fresh optimizer: an ordinary estimator that trains further, pickles and can be
    wrapped again. For latticeprune's estimators ``hidden_size`` is set to the kept sizes (an
    int if all layers are equal), so that a re-fit builds the smaller net; a user's module
    keeps its parameters (a re-fit builds it at its full size, as it was configured)."""
    small = remove_units(net.module_, keep)
    sizes = [len(k) for k in keep]
    module, net.module_ = net.module_, None
    try:
        reduced = copy.deepcopy(net)
    finally:
        net.module_ = module
    if isinstance(small, RecurrentNet) and "hidden_size" in net.get_params(deep=False):
        # latticeprune's estimators: a re-fit builds the smaller net too
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
