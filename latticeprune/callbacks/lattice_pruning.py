"""The lattice rule as a skorch callback (docs/methods/lattice.md sections 2-5 and 7).

A lattice round analyses the surviving neuron graph (:func:`analyse`) and removes whole
connections in the rule's order (:func:`lattice_masks`); the baselines mask single entries
(``pruning_schedule.global_magnitude_masks`` / ``random_masks``) or, at
``granularity="connection"``, whole connections (:func:`connection_masks`). At
``granularity="unit"`` every strategy ranks hidden units instead (:mod:`latticeprune.units`). Counts follow
:func:`~latticeprune.neuron_graph.pruned_count`; masks go through ``NeuronGraph.apply_masks``.
Cost of a lattice round: one irreducibility verdict per backbone level (``len(levels) + 1``,
twice that for the continuous adjacency) on the neuron graph, and a sort of the connections.
"""

import numbers
from dataclasses import dataclass
from typing import Optional

import numpy as np
from skorch.callbacks import Callback
from sklearn.utils._param_validation import Interval, StrOptions, validate_parameter_constraints

from sklearn.utils import check_random_state

from .. import lattice, units
from ..dependency import trace_net
from ..neuron_graph import HIDDEN_KINDS, SCOPES, NeuronGraph, pruned_count
from .connectivity import check_input_reaches_readout
from .pruning_schedule import global_magnitude_masks, random_masks

__all__ = ["LatticePruning", "LatticeAnalysis", "STRATEGIES", "GRANULARITIES",
           "RULE_CONSTRAINTS", "analyse", "lattice_masks", "connection_masks"]

#: Valid ``strategy`` names: the lattice rule and the paper's two controls.
STRATEGIES = ("lattice", "magnitude", "random")
#: What a strategy removes: single weight entries, connections (every gate entry of
#: ``i -> j``) or whole hidden units (:mod:`latticeprune.units`).
GRANULARITIES = ("weight", "connection", "unit")


#: sklearn parameter constraints of the rule's parameters, shared by :class:`LatticePruning`
#: and :class:`~latticeprune.LatticePruner` (which validates them under its own name).
RULE_CONSTRAINTS = {
    "sparsity": [Interval(numbers.Real, 0, 1, closed="left"), None],
    "n_rounds": [Interval(numbers.Integral, 1, None, closed="left")],
    "strategy": [StrOptions(set(STRATEGIES))],
    "granularity": [StrOptions(set(GRANULARITIES)), None],
    "adjacency": [StrOptions({"binary", "continuous"})],
    "order": [StrOptions(set(lattice.ORDERS))],
    "backbone": [Interval(numbers.Real, 0, 1, closed="left")],
    "levels": ["array-like", None],
    "centrality": [StrOptions(set(lattice.CENTRALITIES))],
    "centrality_quantile": [Interval(numbers.Real, 0, 1, closed="both")],
    "scope": [StrOptions(set(SCOPES))],
}


@dataclass(frozen=True)
class LatticeAnalysis:
    """The lattice verdict on one neuron graph (per neuron, in ``NeuronGraph`` order)."""

    verdict: np.ndarray  # meet-irreducible on the backbone
    persistence: Optional[np.ndarray]  # fraction of filtration levels irreducible, or None
    rank: np.ndarray  # centrality
    hasse: lattice.HasseDiagram  # of the backbone's reachability poset
    counts: dict  # backbone level -> number of meet-irreducible neurons

    @property
    def protected(self):
        """What the rule protects: the persistence if graded, else the verdict."""
        return self.verdict if self.persistence is None else self.persistence


def analyse(graph, backbone=0.95, order="context", centrality="pagerank", levels=None,
            graded=False):
    """The :class:`LatticeAnalysis` of ``graph``'s hidden-neuron strengths.

    ``levels`` (None: :func:`~latticeprune.lattice.filtration_levels`) give the irreducible
    counts and, with ``graded=True``, the persistence.
    """
    strength = graph.strength_matrix(HIDDEN_KINDS)
    adjacency = lattice.binary_adjacency(strength, backbone)
    levels = lattice.check_levels(levels)
    counts = {float(q): int(lattice.meet_irreducible(
        lattice.binary_adjacency(strength, q), order=order).sum())
        for q in sorted(set(levels) | {backbone})}
    return LatticeAnalysis(
        verdict=lattice.meet_irreducible(adjacency, order=order),
        persistence=(lattice.irreducibility_persistence(strength, levels, order=order)
                     if graded else None),
        rank=lattice.centrality(strength, kind=centrality),
        hasse=lattice.hasse_diagram(adjacency), counts=counts)


def lattice_masks(graph, tensors, sparsity, analysis, centrality_quantile=0.5):
    """``({tensor name: weight mask}, connections removed)``: the lattice rule on ``tensors``.

    With a ``sparsity`` target, connections go in :func:`~latticeprune.lattice.removal_order`
    until ``pruned_count(sparsity, total)`` entries are zero (the last connection may overshoot
    by up to its gate count); with ``sparsity=None`` every outgoing connection of the neurons
    :func:`~latticeprune.lattice.structural_removals` drops (on the complete graph, with the
    continuous adjacency a neuron irreducible on at least half of the filtration is protected).
    """
    graded = analysis.persistence is not None
    nodes = _ConnectionNodes(graph, tensors)
    strength = nodes.strength_matrix()
    n = graph.n_neurons
    if sparsity is None:
        safe = analysis.protected >= 0.5 if graded else analysis.protected
        dropped = np.zeros(nodes.size, dtype=bool)
        dropped[np.unique(lattice.structural_removals(
            np.ones((n, n)), safe, analysis.rank, centrality_quantile) // n)] = True
        existing = np.flatnonzero(strength.ravel() > 0)
        order = existing[dropped[existing // nodes.size]]
    else:
        safe = np.ones(nodes.size) if graded else np.ones(nodes.size, dtype=bool)
        safe[:n] = analysis.protected
        rank = np.full(nodes.size, analysis.rank.max(initial=0.0))  # nodes not neurons: last
        rank[:n] = analysis.rank
        order = lattice.removal_order(strength, safe, rank, graded=graded)
        order = _enough(nodes, tensors, order, sparsity)
    return nodes.masks_without(order), int(len(order))


def connection_masks(graph, tensors, sparsity, strategy="magnitude", random_state=None):
    """``({tensor name: weight mask}, connections removed)``: whole connections of ``tensors``
    (every gate entry of ``i -> j``), weakest first by their RMS strength (``"magnitude"``) or
    in random order (``"random"``), until ``pruned_count(sparsity, total)`` entries are zero."""
    nodes = _ConnectionNodes(graph, tensors)
    strength = nodes.strength_matrix().ravel()
    existing = np.flatnonzero(strength > 0)
    order = (existing[np.argsort(strength[existing], kind="stable")] if strategy == "magnitude"
             else check_random_state(random_state).permutation(existing))
    order = _enough(nodes, tensors, order, sparsity)
    return nodes.masks_without(order), int(len(order))


def _enough(nodes, tensors, order, sparsity):
    """The first connections of ``order`` that bring ``tensors`` to ``pruned_count(sparsity)``
    zero entries (the last one may overshoot by up to its gate count)."""
    total = sum(t.weight.numel() for t in tensors)
    needed = pruned_count(sparsity, total) - sum(int((t.weight == 0).sum()) for t in tensors)
    zeroed = np.cumsum(nodes.nonzero_entries(order))
    return order[:int(np.searchsorted(zeroed, needed)) + 1] if needed > 0 else order[:0]


class _ConnectionNodes:
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


class LatticePruning(Callback):
    """skorch callback: prune by the dependency lattice (or a baseline) in rounds.

    Round ``k = 1 .. n_rounds`` starts epoch ``start_epoch + (k - 1) * epochs_per_round``
    (counted in the net's history) by pruning ``scope`` to ``sparsity * k / n_rounds``; the
    epochs in between fine-tune with fixed masks. :meth:`prune` runs one round directly.

    Parameters
    ----------
    sparsity, n_rounds, strategy, granularity, adjacency, order, backbone, levels, centrality, \
centrality_quantile, scope
        The rule, as in :class:`~latticeprune.LatticePruner` (same defaults).
    epochs_per_round : int, default=1
        Epochs from one round to the next.
    start_epoch : int, default=1
        Epoch whose beginning is the first round.
    random_state : int, RandomState instance or None, default=None
        Seeds the random strategy (round ``k`` draws from ``random_state + k``).

    Attributes
    ----------
    rounds_ : list of dict
        Per round: ``round``, ``target`` and ``achieved`` sparsity, ``removed`` (connections,
        entries for the baselines at ``granularity="weight"``, units at ``"unit"``), ``meet_irreducible`` (count; None for the baselines).
    analysis_ : LatticeAnalysis or None
        The lattice strategy's analysis of the last round's graph.
    removed_units_ : ndarray of bool or None
        ``granularity="unit"``: the neurons removed so far (``NeuronGraph`` order).

    Examples
    --------
    >>> from latticeprune import RNNClassifier, datasets
    >>> from latticeprune.callbacks import LatticePruning
    >>> X, y = datasets.load_digits_sequences(return_X_y=True)
    >>> pruning = LatticePruning(sparsity=0.6, n_rounds=2, start_epoch=2)
    >>> net = RNNClassifier(hidden_size=16, max_epochs=3, random_state=0, callbacks=[pruning])
    >>> net = net.fit(X[:200], y[:200])  # rounds at the start of epochs 2 and 3
    >>> [round(r["achieved"], 1) for r in pruning.rounds_]
    [0.3, 0.6]
    """

    _parameter_constraints = {
        **RULE_CONSTRAINTS,
        "epochs_per_round": [Interval(numbers.Integral, 1, None, closed="left")],
        "start_epoch": [Interval(numbers.Integral, 1, None, closed="left")],
        "random_state": ["random_state"],
    }

    def __init__(self, sparsity=0.5, n_rounds=5, epochs_per_round=1, start_epoch=1,
                 strategy="lattice", adjacency="binary", order="context", backbone=0.95,
                 levels=None, centrality="pagerank", centrality_quantile=0.5,
                 scope="recurrent", random_state=None, granularity=None):
        vars(self).update({k: v for k, v in locals().items() if k != "self"})

    def initialize(self):
        """Validate the parameters; forget earlier rounds."""
        validate_parameter_constraints(self._parameter_constraints, self.get_params(),
                                       caller_name=type(self).__name__)
        self.granularity_ = self.granularity or (
            "connection" if self.strategy == "lattice" else "weight")
        if self.sparsity is None and (self.strategy, self.granularity_) != ("lattice",
                                                                           "connection"):
            raise ValueError(f"sparsity=None (the structure decides) needs strategy='lattice' at "
                             f"granularity='connection'; got strategy={self.strategy!r}, "
                             f"granularity={self.granularity_!r}.")
        if self.strategy == "lattice" and self.granularity_ == "weight":
            raise ValueError("strategy='lattice' ranks connections or units, not single "
                             "weights; use granularity='connection' or 'unit'.")
        self.levels_ = lattice.check_levels(self.levels)
        self.rounds_, self.analysis_, self.removed_units_ = [], None, None
        return self

    def on_train_begin(self, net, X=None, y=None, **kwargs):
        if X is not None:
            trace_net(net, X)  # the wiring of net's module, whatever module it is

    def on_epoch_begin(self, net, dataset_train=None, dataset_valid=None, **kwargs):
        step, offset = divmod(len(net.history) - self.start_epoch, self.epochs_per_round)
        if offset == 0 and 0 <= step < self.n_rounds:
            self.prune(net.module_)

    def prune(self, module):
        """Run the next round on ``module`` (a torch module or fitted net); returns its record."""
        graph = NeuronGraph(module).freeze()  # the weights after the last optimiser step
        k = len(self.rounds_) + 1
        target = None if self.sparsity is None else self.sparsity * k / self.n_rounds
        tensors = graph.tensors_in(self.scope)
        zeros = sum(int((t.weight == 0).sum()) for t in tensors)
        seed = self.random_state
        seed = seed + k if isinstance(seed, numbers.Integral) else seed
        if self.strategy == "lattice":
            self.analysis_ = analyse(graph, self.backbone, self.order, self.centrality,
                                     self.levels_, graded=self.adjacency == "continuous")
        if self.granularity_ == "unit":
            if self.removed_units_ is None:
                units.check_unit_fraction(graph, self.sparsity)
                self.removed_units_ = np.zeros(graph.n_neurons, dtype=bool)
            order = units.removal_order(graph, self.strategy, self.analysis_, seed)
            new = units.next_removals(graph, order, self.removed_units_, target)
            self.removed_units_ |= new
            masks, removed = units.unit_masks(graph, self.removed_units_), int(new.sum())
            units.mask_norms(graph, self.removed_units_)
        elif self.strategy == "lattice":
            masks, removed = lattice_masks(graph, tensors, target, self.analysis_,
                                           self.centrality_quantile)
        elif self.granularity_ == "connection":
            masks, removed = connection_masks(graph, tensors, target, self.strategy, seed)
        elif self.strategy == "magnitude":
            masks, removed = global_magnitude_masks(tensors, target), None
        else:
            masks, removed = random_masks(tensors, target, seed), None
        graph.apply_masks(masks)
        check_input_reaches_readout(graph, f"Round {k} of the {self.strategy} rule (sparsity "
                                           f"{target} of scope={self.scope!r})")
        if removed is None:  # entries newly zeroed
            removed = sum(int((t.weight == 0).sum()) for t in tensors) - zeros
        self.rounds_.append({
            "round": k, "target": target, "removed": removed,
            "meet_irreducible": (None if self.strategy != "lattice"
                                 else int(self.analysis_.verdict.sum())),
            "achieved": (self.removed_units_.mean() if self.granularity_ == "unit"
                         else graph.sparsity(self.scope)["overall"])})
        return self.rounds_[-1]
