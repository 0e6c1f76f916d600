"""``LatticePruner``: lattice-based pruning of a recurrent net as one sklearn pipeline step."""

import contextlib
import numbers
import os

from sklearn.base import _fit_context
from sklearn.utils._param_validation import HasMethods, Interval

from .base import BaseSparsifier
from . import units
from .callbacks.lattice_pruning import RULE_CONSTRAINTS, STRATEGIES, LatticePruning, analyse
from .dependency import to_json
from .neuron_graph import NeuronGraph, find_net
from .utils import torch_seed

__all__ = ["LatticePruner", "STRATEGIES"]

#: The parameters :class:`LatticePruning` takes (and validates) as they are.
_RULE_PARAMS = ("sparsity", "adjacency", "order", "backbone", "levels", "centrality",
                "centrality_quantile", "strategy", "granularity", "scope", "n_rounds",
                "lasso_strength", "allocation")


class LatticePruner(BaseSparsifier):
    """Prune a recurrent net by its dependency lattice (or by a baseline rule).

    The hidden units are the neurons of one graph (gate blocks aggregated by their RMS). On a
    backbone of its strongest connections the neurons are ordered (concept lattice, or the
    completed reachability poset); the connections of meet-irreducible neurons are kept and
    the others' outgoing connections go first, lowest centrality x strength first, then the
    rest by strength (``docs/methods/lattice.md``); with ``scope="all"`` an input connection
    is ranked by the neuron it feeds, a read-out connection by the neuron it reads. The rule
    is :class:`~latticeprune.callbacks.LatticePruning`, which validates its parameters. ``fit``
    fits the estimator, then runs ``n_rounds`` rounds, each pruning and then fine-tuning
    ``fine_tune_epochs`` epochs (``partial_fit``, with ``fit``'s ``fit_params``). No rule may
    cut the net off from its input or read-out: a round that leaves no path of non-zero
    weights from the input to the read-out raises ``ValueError``. Shared parameters and
    attributes: :class:`~latticeprune.base.BaseSparsifier`.

    Parameters
    ----------
    estimator, prefit, memory, random_state, verbose
        As in ``BaseSparsifier``; ``estimator`` may be another sparsifier, ``random_state``
        also seeds fine-tuning and the random strategy; ``verbose`` prints one line per round
        (``round 2/5: target sparsity 0.32, achieved 0.32, fine-tuning 1 epoch``).
    sparsity : float in [0, 1) or None, default=0.5
        Fraction of weight entries in ``scope`` zero after pruning (``granularity="unit"``:
        fraction of every layer's hidden units removed). None (``strategy="lattice"``): the
        structure decides; each round removes the outgoing connections
        (``granularity="unit"``: the whole units) of the neurons that are not
        meet-irreducible and lie below ``centrality_quantile`` of the centralities, every
        layer keeping a unit (:func:`~latticeprune.units.removal_counts`); ``sparsity_`` says
        how much went.
    adjacency : {"binary", "continuous"}, default="binary"
        The verdict on ``backbone``, or the irreducibility persistence over ``levels``.
    order : {"context", "reachability"}, default="context"
        Concept lattice of the connection context, or completion of the reachability poset.
    backbone : float in [0, 1), default=0.95
        Strength quantile below which connections leave the binary adjacency (measured: see
        docs/experiments.md).
    levels : array-like of float or None, default=None
        Backbone quantiles of the filtration; None: :func:`~latticeprune.lattice.filtration_levels`.
    centrality : {"pagerank", "degree", "eigenvector"}, default="pagerank"
        Ranks the neurons.
    centrality_quantile : float in [0, 1], default=0.5
        Used by ``sparsity=None`` only.
    strategy : {"lattice", "magnitude", "random", "group_lasso"} or callable, default="lattice"
        The lattice rule, or a control: weakest groups first (``|w|`` of an entry, a
        connection's gate RMS, a unit's L2 norm), uniformly random groups. ``"group_lasso"``
        (units only, the default granularity then): the net fine-tunes under the group-lasso
        penalty on every unit's weights (``lasso_strength``;
        :class:`~latticeprune.callbacks.GroupLassoPenalty`), ``fine_tune_epochs`` of it also
        before the first round, and each round removes the units of weakest L2 norm. A callable
        ``importance(groups)`` returns one score per group (lowest removed first); ``groups``
        is the granularity's :mod:`latticeprune.rules` object (``groups.values()``: each
        group's weight entries; ``groups.magnitudes()``; ``groups.graph``), e.g.
        ``lambda groups: [abs(v).max() for v in groups.values()]``.
    granularity : {"weight", "connection", "unit"} or None, default=None
        What is removed. ``"weight"``: single entries (magnitude and random only);
        ``"connection"``: every gate entry of a connection ``i -> j`` (magnitude: by its RMS
        strength); ``"unit"``: whole hidden units (lattice: not meet-irreducible first, lowest
        centrality first; magnitude: the L2 norm of the unit's weights; random), after which
        the net is physically smaller (:mod:`latticeprune.units`): any module whose
        computation the trace follows (:mod:`latticeprune.dependency`), a user's too, comes
        back as a smaller module of its own class; each direction of a bidirectional layer is
        ranked on its own, and the layers and directions of one torch module lose equally
        many units (it has one ``hidden_size``). None: ``"connection"`` for the lattice rule
        (and a callable), ``"weight"`` for the baselines, ``"unit"`` for group lasso.
    scope : {"recurrent", "all"}, default="recurrent"
        Recurrent and top-down weights; ``"all"``: also layer-to-layer, input and read-out.
    n_rounds : int, default=5
        Rounds; the target rises linearly to ``sparsity``, each round on the surviving weights.
    fine_tune_epochs : int, default=1
        Epochs trained with fixed masks after each round; 0: one-shot pruning (measured: see
        docs/experiments.md).
    lasso_strength : float >= 0, default=1e-3
        ``strategy="group_lasso"``: the weight of the sum of the units' group norms in the
        fine-tuning objective (ignored by the other strategies).
    allocation : {"per_layer", "global"}, default="per_layer"
        ``granularity="unit"``: every layer loses ``sparsity`` of its units, or
        (``"global"``) ``sparsity`` of all units go, taken in the ranker's order over all
        layers (magnitudes as each unit's RMS, so layers of different widths compare; every
        layer keeps a unit; the directions of a bidirectional layer, and the layers whose final
        state the forward reads as one tensor, keep equally many). A multi-layer torch module
        whose layers then keep different numbers becomes a stack of one-layer modules
        (:func:`~latticeprune.units.remove_units`). Weight and connection pruning are global
        already.

    Attributes
    ----------
    estimator_, masks_, sparsity_, classes_, n_features_in_
        As in ``BaseSparsifier``; ``sparsity_["overall"]`` counts the tensors in ``scope``.
        With ``granularity="unit"``, ``estimator_`` is an ordinary estimator with a smaller
        :class:`~latticeprune.nets.RecurrentNet` and no masks (``masks_`` is empty): it trains
        further, pickles and can be wrapped again; ``sparsity_`` then has ``"overall"`` and
        ``"units"`` (fraction of units removed), ``"per_layer"``, ``"weights"`` (fraction of
        weight entries in ``scope`` removed) and ``"hidden_sizes"``.
    units_ : list of ndarray of int
        ``granularity="unit"``: per layer, the original indices of the units kept.
    wiring_ : dict
        ``granularity="unit"``: the traced wiring of the net before its units were removed
        (:func:`~latticeprune.dependency.to_json`), from which
        :func:`~latticeprune.persistence.load_weights` rebuilds the smaller net.
    meet_irreducible_, persistence_, centrality_ : list of ndarray
        Per layer: meet-irreducible neurons, persistence (None unless continuous) and
        centrality in the last analysed graph (the last round's; the baselines' final net).
    lattice_ : dict
        ``n_neurons``, ``backbone``, ``irreducible_counts`` (level -> count), and
        ``n_components``, ``component_labels``, ``hasse_edges`` of the reachability poset.
    rounds_ : list of dict
        Per round, :attr:`LatticePruning.rounds_ <latticeprune.callbacks.LatticePruning>`.

    Examples
    --------
    >>> from latticeprune import LatticePruner, RNNClassifier
    >>> from latticeprune.datasets import load_digits_sequences
    >>> X, y = load_digits_sequences(return_X_y=True)
    >>> pruner = LatticePruner(RNNClassifier(hidden_size=16, max_epochs=2), sparsity=0.8,
    ...                        n_rounds=1, fine_tune_epochs=0, random_state=0).fit(X, y)
    >>> round(pruner.sparsity_["overall"], 2)
    0.8
    >>> pruner.predict(X[:3]).shape
    (3,)
    """

    _parameter_constraints = {
        "estimator": [HasMethods(["fit"])],
        **{name: RULE_CONSTRAINTS[name] for name in _RULE_PARAMS},
        "fine_tune_epochs": [Interval(numbers.Integral, 0, None, closed="left")],
        "prefit": ["boolean"],
        "memory": [None, str, os.PathLike, HasMethods(["cache"])],
        "verbose": ["verbose"],
        "random_state": ["random_state"],
    }

    def __init__(self, estimator, *, sparsity=0.5, adjacency="binary", order="context",
                 backbone=0.95, levels=None, centrality="pagerank", centrality_quantile=0.5,
                 strategy="lattice", granularity=None, scope="recurrent", n_rounds=5,
                 fine_tune_epochs=1, lasso_strength=1e-3, allocation="per_layer", prefit=False,
                 memory=None, verbose=0, random_state=None):
        vars(self).update({k: v for k, v in locals().items() if k != "self"})

    @_fit_context(prefer_skip_nested_validation=False)
    def fit(self, X, y, **fit_params):
        """Fit the estimator (unless ``prefit``), prune it in ``n_rounds`` rounds with
        fine-tuning; ``self``. ``fit_params`` (e.g. ``sample_weight``) go to the estimator's
        ``fit`` and to every fine-tuning ``partial_fit``."""
        pruning = LatticePruning(random_state=self._seed(),
                                 **{name: getattr(self, name) for name in _RULE_PARAMS})
        pruning.initialize()
        fit_params, tune_params = self._fit_params(fit_params)
        self.estimator_ = self._make_estimator(self.prefit)
        if not self.prefit:
            self.estimator_ = self._fit_estimator(self.estimator_, X, y, fit_params)
        net = find_net(self.estimator_)
        self._trace(net, X)
        if pruning.granularity_ == "unit":
            units.check_removable(net.module_)
        if not NeuronGraph(net.module_).tensors_in(self.scope):
            raise ValueError(f"The net has no weights in scope={self.scope!r}.")
        epochs = self.fine_tune_epochs
        if pruning.penalty_ is not None and epochs:  # the penalty shrinks groups before round 1
            self._fine_tune(net, pruning.penalty_, X, y, epochs, 0, tune_params)
        for k in range(1, self.n_rounds + 1):
            record = pruning.prune(net.module_)
            target = "structural" if record["target"] is None else f"{record['target']:.2f}"
            self._say(f"round {k}/{self.n_rounds}: target sparsity {target}, achieved "
                      f"{record['achieved']:.2f}, fine-tuning {epochs} epoch{'s' * (epochs != 1)}")
            if epochs:
                self._fine_tune(net, pruning.penalty_, X, y, epochs, k, tune_params)
        self.rounds_ = pruning.rounds_
        graph = NeuronGraph(net.module_).freeze()
        self.read_masks(graph)
        if pruning.granularity_ == "unit":
            self.units_ = units.kept_units(graph, pruning.removed_units_)
            self.wiring_ = to_json(graph.dependencies)  # what load_weights rebuilds from
            self.estimator_, self.masks_ = units.replace_net(self.estimator_, self.units_), {}
            self._trace(find_net(self.estimator_), X)  # the smaller net's own wiring
            self.sparsity_ = units.unit_sparsity(graph, find_net(self.estimator_).module_,
                                                 self.scope)
        self._store_analysis(graph, pruning.analysis_ or analyse(
            graph, self.backbone, self.order, self.centrality, self.levels,
            graded=self.adjacency == "continuous"))
        return self

    def _fine_tune(self, net, penalty, X, y, epochs, k, tune_params):
        """Train the estimator ``epochs`` epochs further (seeded per round ``k``), ``net`` under
        ``penalty`` (a skorch callback, or None) for that time only."""
        with torch_seed(self._seed(k)), _attached(net, penalty):
            self.estimator_.partial_fit(X, y, epochs=epochs, **tune_params)

    @property
    def pruning_scope(self):
        return self.scope

    def _store_analysis(self, graph, analysis):
        per_layer = [graph.layer_slice(i) for i in range(len(graph.layers))]
        self.meet_irreducible_ = [analysis.verdict[sl] for sl in per_layer]
        self.persistence_ = [None if analysis.persistence is None else analysis.persistence[sl]
                             for sl in per_layer]
        self.centrality_ = [analysis.rank[sl] for sl in per_layer]
        self.lattice_ = {"n_neurons": graph.n_neurons, "backbone": self.backbone,
                         "irreducible_counts": analysis.counts,
                         "n_components": analysis.hasse.n_components,
                         "component_labels": analysis.hasse.labels,
                         "hasse_edges": analysis.hasse.edges}


@contextlib.contextmanager
def _attached(net, callback):
    """``net`` (a fitted skorch net) notifies ``callback`` too inside the block."""
    if callback is None:
        yield
        return
    entry = (type(callback).__name__, callback)
    net.callbacks_.append(entry)
    try:
        yield
    finally:
        net.callbacks_.remove(entry)
