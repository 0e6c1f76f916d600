"""Pruning rules: which groups of weights a round removes, and in which order.

A *granularity* lists the groups of the tensors in scope that a rule removes together and
turns an order of them into masks:

* :class:`Entries` (``"weight"``): single weight entries;
* :class:`Connections` (``"connection"``): every gate entry of a connection ``i -> j`` between
  two neurons (or a neuron and an input feature or output), on the square graph of
  :class:`ConnectionNodes`;
* :class:`Units` (``"unit"``): whole hidden units, every row that produces them and every
  column that reads them (:mod:`latticeprune.units`), a count per layer.

A *ranker* orders a granularity's groups, first removed first:
:class:`MagnitudeRanker` (weakest first: ``|w|``, a connection's gate RMS, a unit's L2 norm),
:class:`GroupLassoRanker` (units by their L2 norm while the net trains under the group-lasso
penalty),
:class:`RandomRanker` (uniformly random), :class:`LatticeRanker` (the dependency lattice:
docs/methods/lattice.md) and :class:`ImportanceRanker`, which wraps a user's callable::

    def largest_entry(groups):
        # one score per group; the lowest scores go first
        return [abs(values).max() for values in groups.values()]

    LatticePruner(net, strategy=largest_entry, granularity="unit")

:func:`get_ranker` and :func:`get_granularity` are the registries (``strategy`` and
``granularity`` names, with the exact error messages of sklearn's parameter validation).
How far a round goes is the granularity's: ``pruned_count(target, total)`` zero entries of
the tensors in scope (entries, connections; the last connection may overshoot by its gate
count) or ``pruned_count(target, size)`` units of every layer. The schedule of the targets
over rounds is :func:`~latticeprune.callbacks.pruning_schedule.scheduled_sparsity`.

Cost per round: the groups' strengths (one pass over the weights), one sort; the lattice
ranker adds its analysis (``LatticePruning``'s cost).
"""

import numpy as np
import torch
from sklearn.utils import check_random_state

from . import lattice, units
from .neuron_graph import pruned_count

__all__ = ["Entries", "Connections", "Units", "ConnectionNodes", "MagnitudeRanker",
           "GroupLassoRanker", "RandomRanker", "LatticeRanker", "ImportanceRanker", "RANKERS",
           "GRANULARITIES", "get_ranker", "get_granularity"]


# -- granularities ---------------------------------------------------------------------------
class Entries:
    """Single weight entries of ``tensors`` (flat indices over the tensors, in order)."""

    kind = "weight"

    def __init__(self, graph, tensors, state=None):
        self.graph, self.tensors = graph, tensors
        self.flat = torch.cat([t.weight.detach().reshape(-1).cpu() for t in tensors]).numpy()

    def candidates(self):
        """The groups that can still be removed: the non-zero entries."""
        return np.flatnonzero(self.flat)

    def magnitudes(self):
        return np.abs(self.flat[self.candidates()]).astype(np.float64)

    def values(self):
        return [self.flat[[i]] for i in self.candidates()]

    def lattice_order(self, analysis, structural=False, centrality_quantile=0.5):
        raise ValueError("strategy='lattice' ranks connections or units, not single weights; "
                         "use granularity='connection' or 'unit'.")

    def prune(self, order, target):
        """``(masks, entries removed)``: the first ``pruned_count(target, total)`` minus the
        zeros already there; every zero entry is masked."""
        needed = max(pruned_count(target, self.flat.size) - int((self.flat == 0).sum()), 0)
        keep = self.flat != 0
        chosen = np.asarray(order[:needed], dtype=np.int64)
        keep[chosen] = False
        return _split(torch.as_tensor(keep), self.tensors), int(len(chosen))


class ConnectionNodes:
    """Connections of the tensors in scope as one square graph the lattice rule can order.

    Hidden neurons come first (indices ``0 .. n_neurons - 1``); input features, read-out
    outputs and other features a read-out reads beside the units get nodes of their own
    after them. The rule ranks a connection by its source node, so a connection from an input
    feature into neuron ``j`` is stored reversed (``j -> feature``): it is ranked by the
    neuron it feeds, as a read-out connection is by the neuron it reads, and input and
    read-out go with their neuron instead of ahead of every neuron. Strengths are
    :meth:`WeightTensor.strengths` (gate-block RMS). A tensor is one block per column segment
    (:meth:`WeightTensor.sources`).
    """

    def __init__(self, graph, tensors):
        self.blocks = []  # (tensor, columns, src slice, dst slice, stored reversed)
        size = graph.n_neurons
        for t in tensors:
            sources = []
            for layer, cols in t.sources():
                if layer is not None:
                    sources.append((cols, graph.layer_slice(layer)))
                else:
                    width = cols.stop - cols.start
                    sources.append((cols, slice(size, size + width)))
                    size += width
            if t.dst is not None:
                dst = graph.layer_slice(t.dst)
            else:
                n_dst = t.weight.shape[0] // t.n_gates
                dst, size = slice(size, size + n_dst), size + n_dst
            for cols, src in sources:
                self.blocks.append((t, cols, src, dst,
                                    src.start >= graph.n_neurons and t.dst is not None))
        self.size = size

    def _place(self, matrix, block, values):
        t, cols, src, dst, reversed_ = block
        if reversed_:
            matrix[dst, src] = values[cols].T
        else:
            matrix[src, dst] = values[cols]

    def _take(self, matrix, block):
        t, cols, src, dst, reversed_ = block
        return matrix[dst, src].T if reversed_ else matrix[src, dst]

    def strength_matrix(self):
        strength = np.zeros((self.size, self.size))
        for block in self.blocks:
            self._place(strength, block, block[0].strengths())
        return strength

    def nonzero_entries(self, flat_indices):
        """Weight entries still non-zero in each listed connection (what removing it zeroes)."""
        counts = np.zeros((self.size, self.size), dtype=np.int64)
        for block in self.blocks:
            w = block[0].weight.detach().cpu().numpy() != 0
            self._place(counts, block, w.reshape(block[0].n_gates, -1, w.shape[1]).sum(axis=0).T)
        return counts.ravel()[flat_indices]

    def masks_without(self, flat_indices):
        """Weight masks that remove the listed connections, for every tensor in scope."""
        keep = np.ones(self.size * self.size, dtype=bool)
        keep[np.asarray(flat_indices, dtype=np.int64)] = False
        keep = keep.reshape(self.size, self.size)
        per_tensor = {}
        for block in self.blocks:
            t, cols = block[0], block[1]
            full = per_tensor.setdefault(t.name, (t, np.ones((t.weight.shape[1],
                                                             t.weight.shape[0] // t.n_gates),
                                                            dtype=bool)))[1]
            full[cols] = self._take(keep, block)
        return {name: t.weight_mask(full) for name, (t, full) in per_tensor.items()}

    def gate_entries(self, flat_indices):
        """Each listed connection's weight entries (every gate), one array per connection."""
        out = []
        for index in flat_indices:
            i, j = divmod(int(index), self.size)
            for t, cols, src, dst, reversed_ in self.blocks:
                a, b = (j, i) if reversed_ else (i, j)
                if src.start <= a < src.stop and dst.start <= b < dst.stop:
                    w = t.weight.detach().cpu().numpy()
                    w = w.reshape(t.n_gates, -1, w.shape[1])
                    out.append(w[:, b - dst.start, cols.start + a - src.start])
                    break
        return out


class Connections:
    """Whole connections ``i -> j`` (every gate entry) of ``tensors``: flat indices of the
    :class:`ConnectionNodes` graph."""

    kind = "connection"

    def __init__(self, graph, tensors, state=None):
        self.graph, self.tensors = graph, tensors
        self.nodes = ConnectionNodes(graph, tensors)
        self.strength = self.nodes.strength_matrix()

    def candidates(self):
        """The connections that still exist (a non-zero strength)."""
        return np.flatnonzero(self.strength.ravel() > 0)

    def magnitudes(self):
        return self.strength.ravel()[self.candidates()]

    def values(self):
        return self.nodes.gate_entries(self.candidates())

    def lattice_order(self, analysis, structural=False, centrality_quantile=0.5):
        """The lattice rule's order: with ``structural``, every outgoing connection of the
        neurons :func:`~latticeprune.lattice.structural_neurons` drops (with the continuous
        adjacency a neuron irreducible on at least half of the filtration is protected); else
        :func:`~latticeprune.lattice.removal_order`."""
        graded = analysis.persistence is not None
        n, size = self.graph.n_neurons, self.nodes.size
        if structural:
            safe = analysis.protected >= 0.5 if graded else analysis.protected
            dropped = np.zeros(size, dtype=bool)
            dropped[:n] = lattice.structural_neurons(safe, analysis.rank, centrality_quantile)
            existing = self.candidates()
            return existing[dropped[existing // size]]
        safe = np.ones(size) if graded else np.ones(size, dtype=bool)
        safe[:n] = analysis.protected
        rank = np.full(size, analysis.rank.max(initial=0.0))  # nodes not neurons: last
        rank[:n] = analysis.rank
        return lattice.removal_order(self.strength, safe, rank, graded=graded)

    def prune(self, order, target):
        """``(masks, connections removed)``: the first connections of ``order`` that bring the
        tensors to ``pruned_count(target, total)`` zero entries (the last one may overshoot by
        up to its gate count); ``target`` None: all of ``order``."""
        if target is not None:
            total = sum(t.weight.numel() for t in self.tensors)
            needed = pruned_count(target, total) - sum(int((t.weight == 0).sum())
                                                       for t in self.tensors)
            zeroed = np.cumsum(self.nodes.nonzero_entries(order))
            order = order[:int(np.searchsorted(zeroed, needed)) + 1] if needed > 0 else order[:0]
        return self.nodes.masks_without(order), int(len(order))


class Units:
    """Whole hidden units (neuron indices of the graph); ``state["removed"]`` (bool per neuron)
    holds the units removed in earlier rounds. A round removes, per layer, the first units of
    the order until the layer's count is gone: ``pruned_count(target, size)`` with
    ``state["allocation"]`` ``"per_layer"`` (the default), a share of ``pruned_count(target,
    n_neurons)`` taken in the order over all layers with ``"global"``
    (:func:`~latticeprune.units.removal_counts`); then the magnitudes are the units' RMS
    (:func:`~latticeprune.units.unit_rms`), so that layers of different widths compare."""

    kind = "unit"

    def __init__(self, graph, tensors, state=None):
        self.graph, self.tensors = graph, tensors
        self.state = state if state is not None else {}
        if self.state.get("removed") is None:
            self.state["removed"] = np.zeros(graph.n_neurons, dtype=bool)

    @property
    def removed(self):
        return self.state["removed"]

    def candidates(self):
        return np.arange(self.graph.n_neurons)

    @property
    def allocation(self):
        return self.state.get("allocation") or "per_layer"

    def magnitudes(self):
        if self.allocation == "global":
            return units.unit_rms(self.graph)
        return units.unit_norms(self.graph)

    def values(self):
        return units.unit_weights(self.graph)

    def lattice_order(self, analysis, structural=False, centrality_quantile=0.5):
        """Not meet-irreducible (or less persistent) first, then by centrality; with
        ``structural``, only the units :func:`~latticeprune.lattice.structural_neurons` drops
        (as for connections), in that order."""
        order = np.lexsort((analysis.rank, np.asarray(analysis.protected, dtype=float)))
        if not structural:
            return order
        graded = analysis.persistence is not None
        safe = analysis.protected >= 0.5 if graded else analysis.protected
        dropped = lattice.structural_neurons(safe, analysis.rank, centrality_quantile)
        return order[dropped[order] & ~self.removed[order]]

    def prune(self, order, target):
        """``(masks, units removed now)``; ``target`` None: the units of ``order``
        (:func:`~latticeprune.units.removal_counts`). The layer norms reading units leave the
        removed ones out of their statistics (:func:`~latticeprune.units.mask_norms`)."""
        new = units.next_removals(self.graph, order, self.removed, target, self.allocation)
        self.state["removed"] = self.removed | new
        units.mask_norms(self.graph, self.removed)
        return units.unit_masks(self.graph, self.removed), int(new.sum())


# -- rankers ---------------------------------------------------------------------------------
class _Ranker:
    """What every ranker declares: whether it needs the round's lattice analysis, whether the
    net trains under a penalty while it is pruned (:attr:`penalised`), the granularity it
    ranks when none is given, and which it refuses (:meth:`check_granularity`)."""

    needs_analysis = False
    penalised = False
    default_granularity = "weight"

    def check_granularity(self, granularity):
        """``ValueError`` if this ranker cannot order ``granularity``'s groups."""


class MagnitudeRanker(_Ranker):
    """Weakest first (stable: ties by position), by the granularity's magnitudes."""

    def order(self, groups, analysis=None, random_state=None, structural=False,
              centrality_quantile=0.5):
        candidates = groups.candidates()
        return candidates[np.argsort(groups.magnitudes(), kind="stable")]


class GroupLassoRanker(MagnitudeRanker):
    """Whole units, weakest group norm first, while the net trains under the group-lasso
    penalty (:class:`~latticeprune.callbacks.GroupLassoPenalty`), which drives the groups of
    the units it can spare to zero (Wen et al., ICLR 2018)."""

    penalised = True
    default_granularity = "unit"

    def check_granularity(self, granularity):
        if granularity != "unit":
            raise ValueError(f"strategy='group_lasso' removes whole units (its groups are "
                             f"units); use granularity='unit', not {granularity!r}.")


class RandomRanker(_Ranker):
    """A uniformly random order of the groups that still exist, seeded by ``random_state``."""

    def order(self, groups, analysis=None, random_state=None, structural=False,
              centrality_quantile=0.5):
        return check_random_state(random_state).permutation(groups.candidates())


class LatticeRanker(_Ranker):
    """The dependency lattice's order (needs the round's lattice analysis)."""

    needs_analysis = True
    default_granularity = "connection"

    def check_granularity(self, granularity):
        if granularity == "weight":
            raise ValueError("strategy='lattice' ranks connections or units, not single "
                             "weights; use granularity='connection' or 'unit'.")

    def order(self, groups, analysis=None, random_state=None, structural=False,
              centrality_quantile=0.5):
        return groups.lattice_order(analysis, structural, centrality_quantile)


class ImportanceRanker(_Ranker):
    """A user's importance: ``importance(groups)`` returns one score per group of
    ``groups.candidates()`` (``groups.values()`` gives each group's weight entries,
    ``groups.kind`` its granularity, ``groups.graph`` the net's
    :class:`~latticeprune.neuron_graph.NeuronGraph`); the lowest scores go first."""

    default_granularity = "connection"

    def __init__(self, importance):
        self.importance = importance

    def order(self, groups, analysis=None, random_state=None, structural=False,
              centrality_quantile=0.5):
        candidates = groups.candidates()
        scores = np.asarray(self.importance(groups), dtype=np.float64).reshape(-1)
        if scores.shape != (len(candidates),) or not np.isfinite(scores).all():
            raise ValueError(f"The importance {getattr(self.importance, '__name__', '')!r} "
                             f"must return {len(candidates)} finite scores, one per group of "
                             f"granularity={groups.kind!r}; got shape {scores.shape}.")
        return candidates[np.argsort(scores, kind="stable")]


#: Valid ``strategy`` names and their rankers.
RANKERS = {"lattice": LatticeRanker, "magnitude": MagnitudeRanker, "random": RandomRanker,
           "group_lasso": GroupLassoRanker}
#: Valid ``granularity`` names and their groups.
GRANULARITIES = {"weight": Entries, "connection": Connections, "unit": Units}


def get_ranker(strategy):
    """The ranker of a ``strategy`` name, or an :class:`ImportanceRanker` of a callable."""
    if callable(strategy):
        return ImportanceRanker(strategy)
    try:
        return RANKERS[strategy]()
    except (KeyError, TypeError):
        raise ValueError(f"strategy={strategy!r} is not valid; valid choices are "
                         f"{sorted(RANKERS)} or a callable importance(groups).") from None


def get_granularity(name):
    """The group class of a ``granularity`` name."""
    try:
        return GRANULARITIES[name]
    except (KeyError, TypeError):
        raise ValueError(f"granularity={name!r} is not valid; valid choices are "
                         f"{sorted(GRANULARITIES)}.") from None


def _split(keep, tensors):
    """One flat keep-vector over ``tensors`` as ``{name: weight-shaped mask}``."""
    sizes = [t.weight.numel() for t in tensors]
    return {t.name: part.reshape(t.weight.shape)
            for t, part in zip(tensors, torch.split(keep, sizes))}
