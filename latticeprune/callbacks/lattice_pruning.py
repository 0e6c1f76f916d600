"""The lattice rule as a skorch callback (docs/methods/lattice.md sections 2-5 and 7).

A round ranks the groups of the tensors in scope with the strategy's ranker and removes them
at the round's target (:mod:`latticeprune.rules`: the granularity says what a group is and
how far to go; the targets rise as :func:`~pruning_schedule.scheduled_sparsity` says, linearly
over the rounds). A lattice round first analyses the surviving neuron graph
(:func:`analyse`). Counts follow :func:`~latticeprune.neuron_graph.pruned_count`; masks go
through ``NeuronGraph.apply_masks``.
Cost of a lattice round: one irreducibility verdict per backbone level (``len(levels) + 1``,
twice that for the continuous adjacency) on the neuron graph, and a sort of the connections.
"""

import numbers
from dataclasses import dataclass
from typing import Optional

import numpy as np
from skorch.callbacks import Callback
from sklearn.utils._param_validation import Interval, StrOptions, validate_parameter_constraints

from .. import lattice, rules, units
from ..dependency import trace_net
from ..neuron_graph import HIDDEN_KINDS, SCOPES, NeuronGraph
from ..rules import RANKERS
from .connectivity import check_input_reaches_readout
from .group_lasso import GroupLassoPenalty
from .pruning_schedule import scheduled_sparsity

__all__ = ["LatticePruning", "LatticeAnalysis", "STRATEGIES", "GRANULARITIES",
           "RULE_CONSTRAINTS", "analyse"]

#: Valid ``strategy`` names: the lattice rule, the paper's two controls and group lasso (a
#: callable importance is valid too: :class:`~latticeprune.rules.ImportanceRanker`).
STRATEGIES = tuple(RANKERS)
#: What a strategy removes: single weight entries, connections (every gate entry of
#: ``i -> j``) or whole hidden units (:mod:`latticeprune.rules`).
GRANULARITIES = tuple(rules.GRANULARITIES)


#: sklearn parameter constraints of the rule's parameters, shared by :class:`LatticePruning`
#: and :class:`~latticeprune.LatticePruner` (which validates them under its own name).
RULE_CONSTRAINTS = {
    "sparsity": [Interval(numbers.Real, 0, 1, closed="left"), None],
    "n_rounds": [Interval(numbers.Integral, 1, None, closed="left")],
    "strategy": [StrOptions(set(STRATEGIES)), callable],
    "granularity": [StrOptions(set(GRANULARITIES)), None],
    "adjacency": [StrOptions({"binary", "continuous"})],
    "order": [StrOptions(set(lattice.ORDERS))],
    "backbone": [Interval(numbers.Real, 0, 1, closed="left")],
    "levels": ["array-like", None],
    "centrality": [StrOptions(set(lattice.CENTRALITIES))],
    "centrality_quantile": [Interval(numbers.Real, 0, 1, closed="both")],
    "scope": [StrOptions(set(SCOPES))],
    "lasso_strength": [Interval(numbers.Real, 0, None, closed="left")],
    "allocation": [StrOptions(set(units.ALLOCATIONS))],
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


class LatticePruning(Callback):
    """skorch callback: prune by the dependency lattice (or a baseline) in rounds.

    Round ``k = 1 .. n_rounds`` starts epoch ``start_epoch + (k - 1) * epochs_per_round``
    (counted in the net's history) by pruning ``scope`` to ``sparsity * k / n_rounds``; the
    epochs in between fine-tune with fixed masks. :meth:`prune` runs one round directly.

    Parameters
    ----------
    sparsity, n_rounds, strategy, granularity, adjacency, order, backbone, levels, centrality, \
centrality_quantile, scope, lasso_strength, allocation
        The rule, as in :class:`~latticeprune.LatticePruner` (same defaults). With
        ``strategy="group_lasso"`` the net trains under :attr:`penalty_` while the callback
        is attached.
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
    penalty_ : GroupLassoPenalty or None
        The penalty of a penalised strategy (``"group_lasso"``, at ``lasso_strength``).

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
                 scope="recurrent", random_state=None, granularity=None, lasso_strength=1e-3,
                 allocation="per_layer"):
        vars(self).update({k: v for k, v in locals().items() if k != "self"})

    def initialize(self):
        """Validate the parameters; forget earlier rounds."""
        validate_parameter_constraints(self._parameter_constraints, self.get_params(),
                                       caller_name=type(self).__name__)
        self.ranker_ = rules.get_ranker(self.strategy)
        self.granularity_ = self.granularity or self.ranker_.default_granularity
        if self.sparsity is None and (self.strategy != "lattice"
                                      or self.granularity_ not in ("connection", "unit")):
            raise ValueError(f"sparsity=None (the structure decides) needs strategy='lattice' at "
                             f"granularity='connection' or 'unit'; got "
                             f"strategy={self.strategy!r}, granularity={self.granularity_!r}.")
        self.ranker_.check_granularity(self.granularity_)
        self.groups_ = rules.get_granularity(self.granularity_)
        self.levels_ = lattice.check_levels(self.levels)
        self.rounds_, self.analysis_, self.removed_units_ = [], None, None
        self.penalty_ = (GroupLassoPenalty(self.lasso_strength).initialize()
                         if self.ranker_.penalised else None)
        return self

    def on_train_begin(self, net, X=None, y=None, **kwargs):
        if X is not None:
            trace_net(net, X)  # the wiring of net's module, whatever module it is
        if self.penalty_ is not None:
            self.penalty_.on_train_begin(net)

    def on_grad_computed(self, net, named_parameters, X=None, y=None, training=None,
                         **kwargs):
        if self.penalty_ is not None:
            self.penalty_.on_grad_computed(net, named_parameters, training=training)

    def on_epoch_end(self, net, **kwargs):
        if self.penalty_ is not None:
            self.penalty_.on_epoch_end(net, **kwargs)

    def on_epoch_begin(self, net, dataset_train=None, dataset_valid=None, **kwargs):
        step, offset = divmod(len(net.history) - self.start_epoch, self.epochs_per_round)
        if offset == 0 and 0 <= step < self.n_rounds:
            self.prune(net.module_)

    def prune(self, module):
        """Run the next round on ``module`` (a torch module or fitted net); returns its record."""
        graph = NeuronGraph(module).freeze()  # the weights after the last optimiser step
        k = len(self.rounds_) + 1
        target = (None if self.sparsity is None
                  else scheduled_sparsity(k, self.n_rounds, self.sparsity, "linear"))
        tensors = graph.tensors_in(self.scope)
        zeros = sum(int((t.weight == 0).sum()) for t in tensors)
        seed = self.random_state
        seed = seed + k if isinstance(seed, numbers.Integral) else seed
        if self.ranker_.needs_analysis:
            self.analysis_ = analyse(graph, self.backbone, self.order, self.centrality,
                                     self.levels_, graded=self.adjacency == "continuous")
        if (self.granularity_, self.allocation) == ("unit", "per_layer") and (
                self.removed_units_ is None and self.sparsity is not None):
            units.check_unit_fraction(graph, self.sparsity)
        groups = self.groups_(graph, tensors, {"removed": self.removed_units_,
                                               "allocation": self.allocation})
        order = self.ranker_.order(groups, self.analysis_, seed, structural=target is None,
                                   centrality_quantile=self.centrality_quantile)
        masks, removed = groups.prune(order, target)
        if groups.kind == "unit":
            self.removed_units_ = groups.removed
        graph.apply_masks(masks)
        check_input_reaches_readout(graph, f"Round {k} of the {self.strategy} rule (sparsity "
                                           f"{target} of scope={self.scope!r})")
        if groups.kind == "weight":  # entries newly zeroed
            removed = sum(int((t.weight == 0).sum()) for t in tensors) - zeros
        self.rounds_.append({
            "round": k, "target": target, "removed": removed,
            "meet_irreducible": (None if self.analysis_ is None
                                 else int(self.analysis_.verdict.sum())),
            "achieved": (self.removed_units_.mean() if groups.kind == "unit"
                         else graph.sparsity(self.scope)["overall"])})
        return self.rounds_[-1]
