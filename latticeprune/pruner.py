"""``LatticePruner``: lattice-based pruning of a recurrent net as one sklearn pipeline step."""

import numbers

import numpy as np

from sklearn.base import _fit_context
from sklearn.utils._param_validation import HasMethods, Interval

from .base import BaseSparsifier
from . import units
from .callbacks.lattice_pruning import STRATEGIES, LatticePruning, analyse
from .neuron_graph import NeuronGraph, find_net
from .utils import torch_seed

__all__ = ["LatticePruner", "STRATEGIES"]

#: Name under which the rule joins the inner net's callbacks while it fine-tunes.
PRUNING_CALLBACK = "lattice_pruning"
#: The parameters :class:`LatticePruning` takes (and validates) as they are.
_RULE_PARAMS = ("sparsity", "adjacency", "order", "backbone", "levels", "centrality",
                "centrality_quantile", "strategy", "granularity", "scope", "n_rounds")


class LatticePruner(BaseSparsifier):
    """Prune a recurrent net by its dependency lattice (or by a baseline rule).

    The net's hidden units are the neurons of one graph (recurrent, layer-to-layer and
    top-down connections, gate blocks aggregated by their RMS). On a backbone of its
    strongest connections the neurons are ordered (concept lattice of the pre/postsynaptic
    context, or the reachability poset's Dedekind-MacNeille completion); the connections of
    meet-irreducible neurons are kept and the outgoing connections of the others are removed
    first, lowest centrality x strength first, then, if the target asks for more, the rest by
    strength. The method is fixed in ``docs/methods/lattice.md``; the rule itself is the
    callback :class:`~latticeprune.callbacks.LatticePruning`, which validates the parameters
    it takes (``sparsity`` ... ``scope``, ``n_rounds``).

    ``fit`` clones ``estimator`` (or deep-copies it with ``prefit=True``) and fits it, attaches
    the rule to the inner skorch net and trains ``n_rounds`` times ``fine_tune_epochs`` epochs
    (each round seeded from ``random_state``); with ``fine_tune_epochs=0`` the rounds run
    back to back without training.

    Parameters
    ----------
    estimator : estimator
        A skorch net whose module contains ``nn.RNN``/``nn.LSTM``/``nn.GRU`` layers or a
        :class:`~latticeprune.nets.HierarchicalRNN`, e.g. :class:`~latticeprune.RNNClassifier`,
        or another sparsifier wrapping one (``ModuliRegularizer``). Never modified.
    sparsity : float in [0, 1) or None, default=0.5
        Fraction of weight entries in ``scope`` that are zero after pruning (with
        ``granularity="unit"``: fraction of the hidden units of every layer removed). ``None``: the
        structure decides, removing exactly the outgoing connections of non-irreducible neurons
        whose centrality is below ``centrality_quantile`` (once per round).
    adjacency : {"binary", "continuous"}, default="binary"
        ``"binary"``: the verdict on the backbone ``backbone``. ``"continuous"``: the
        irreducibility persistence over the filtration ``levels``; connections are removed by
        (persistence, centrality, strength).
    order : {"context", "reachability"}, default="context"
        The lattice: concept lattice of the connection context, or the completion of the
        reachability poset.
    backbone : float in [0, 1), default=0.95
        Quantile of the connection strengths below which connections are left out of the
        binary adjacency (measured: see docs/experiments.md).
    levels : array-like of float or None, default=None
        Backbone quantiles of the continuous filtration; None:
        :func:`~latticeprune.lattice.filtration_levels` (10 levels, 0.9 to 0.99).
    centrality : {"pagerank", "degree", "eigenvector"}, default="pagerank"
        Ranks neurons (weighted, directed; defined on disconnected graphs).
    centrality_quantile : float in [0, 1], default=0.5
        Used by ``sparsity=None`` only.
    strategy : {"lattice", "magnitude", "random"}, default="lattice"
        ``"magnitude"``: global smallest ``|w|`` entries; ``"random"``: uniformly random
        entries. The paper's controls, one grid parameter away.
    granularity : {"weight", "connection", "unit"} or None, default=None
        What is removed. ``"weight"``: single entries (magnitude and random only);
        ``"connection"``: every gate entry of a connection ``i -> j`` (magnitude: by its RMS
        strength); ``"unit"``: whole hidden units (lattice: not meet-irreducible first, lowest
        centrality first; magnitude: the L2 norm of the unit's weights; random), after which
        the net is physically smaller (see :mod:`latticeprune.units`). None: the behaviour
        before this parameter, ``"connection"`` for the lattice rule, ``"weight"`` for the
        baselines.
    scope : {"recurrent", "all"}, default="recurrent"
        ``"recurrent"``: recurrent and top-down weights. ``"all"``: also layer-to-layer,
        input and read-out weights.
    n_rounds : int, default=5
        Iterative pruning: the sparsity rises linearly over the rounds to ``sparsity``; each
        round rebuilds the lattice on the surviving weights and fine-tunes.
    fine_tune_epochs : int, default=1
        Epochs of training with the masks frozen after each round (0: one-shot pruning;
        measured: see docs/experiments.md).
    prefit : bool, default=False
        True: ``estimator`` is already fitted; it is deep-copied, not refitted.
    random_state : int, RandomState or None, default=None
        Seeds the inner estimator (when its own ``random_state`` is None), fine-tuning and the
        random strategy. Same value, same masks and predictions.

    Attributes
    ----------
    estimator_ : estimator
        The fitted, pruned estimator. With ``granularity="unit"`` its skorch net is an ordinary
        estimator with a smaller :class:`~latticeprune.nets.RecurrentNet` (``hidden_size`` the
        kept units), no masks: it trains further, pickles and can be wrapped again.
    masks_ : dict of str to ndarray of bool
        Weight masks of the pruned tensors (False = pruned); empty for ``granularity="unit"``.
    sparsity_ : dict
        Achieved ``{"overall": float, "per_tensor": {name: float}}``, counted in weight entries;
        ``overall`` over the tensors in ``scope``. ``granularity="unit"``: ``"overall"`` and
        ``"units"`` are the fraction of units removed, ``"per_layer"`` per layer name,
        ``"weights"`` the fraction of weight entries in ``scope`` removed, ``"hidden_sizes"``
        the sizes left.
    units_ : list of ndarray of int
        ``granularity="unit"``: per layer, the original indices of the units kept.
    meet_irreducible_ : list of ndarray of bool
        Per recurrent layer, the meet-irreducible neurons of the analysed graph: the last
        round's for ``strategy="lattice"``, the pruned net's for the baselines (analysed once,
        at the end of ``fit``).
    persistence_ : list of ndarray of float or None
        Per layer, the irreducibility persistence (``adjacency="continuous"``).
    centrality_ : list of ndarray of float
        Per layer, the neurons' centrality in the analysed graph.
    lattice_ : dict
        For notebook analysis of the analysed graph: ``n_neurons``, ``backbone``,
        ``irreducible_counts`` (backbone level -> number of meet-irreducible neurons),
        ``n_components`` and ``component_labels`` of the backbone's reachability poset,
        ``hasse_edges`` of that poset (pairs of components).
    rounds_ : list of dict
        Per round: target and achieved sparsity, connections removed, irreducible neurons
        (:attr:`LatticePruning.rounds_ <latticeprune.callbacks.LatticePruning>`).

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
        **dict.fromkeys(_RULE_PARAMS, "no_validation"),  # LatticePruning.initialize checks
        "fine_tune_epochs": [Interval(numbers.Integral, 0, None, closed="left")],
        "prefit": ["boolean"],
        "random_state": ["random_state"],
    }

    def __init__(self, estimator, *, sparsity=0.5, adjacency="binary", order="context",
                 backbone=0.95, levels=None, centrality="pagerank", centrality_quantile=0.5,
                 strategy="lattice", granularity=None, scope="recurrent", n_rounds=5,
                 fine_tune_epochs=1, prefit=False, random_state=None):
        vars(self).update({k: v for k, v in locals().items() if k != "self"})

    @_fit_context(prefer_skip_nested_validation=False)
    def fit(self, X, y, **fit_params):
        """Fit the estimator (unless ``prefit``), prune it in ``n_rounds`` rounds, fine-tune.

        Parameters
        ----------
        X : array-like
            Sequences, as the wrapped estimator accepts them.
        y : array-like
            Targets.
        **fit_params : dict
            Passed to the wrapped estimator's ``fit``.

        Returns
        -------
        self : LatticePruner
        """
        pruning = LatticePruning(epochs_per_round=max(self.fine_tune_epochs, 1),
                                 random_state=self._seed(),
                                 **{name: getattr(self, name) for name in _RULE_PARAMS})
        pruning.initialize()
        self.estimator_ = self._make_estimator(self.prefit)
        if not self.prefit:
            self.estimator_.fit(X, y, **fit_params)
        net = find_net(self.estimator_)
        if pruning.granularity_ == "unit":
            units.check_removable(net.module_)
            units.check_unit_fraction(NeuronGraph(net.module_), self.sparsity)
        if not NeuronGraph(net.module_).tensors_in(self.scope):
            raise ValueError(f"The net has no weights in scope={self.scope!r}.")
        if self.fine_tune_epochs:
            pruning.set_params(start_epoch=len(net.history) + 1)
            net.callbacks_.append((PRUNING_CALLBACK, pruning))
            for round_index in range(1, self.n_rounds + 1):
                with torch_seed(self._seed(round_index)):
                    self.estimator_.partial_fit(X, y, epochs=self.fine_tune_epochs)
            net.callbacks_.remove((PRUNING_CALLBACK, pruning))
        else:
            for _ in range(self.n_rounds):
                pruning.prune(net.module_)
        self.rounds_ = pruning.rounds_
        graph = NeuronGraph(net.module_).freeze()
        self.masks_ = {name: mask.numpy() for name, mask in graph.masks().items()}
        self.sparsity_ = graph.sparsity(self.scope)
        if pruning.granularity_ == "unit":
            self.units_ = [np.flatnonzero(~pruning.removed_units_[graph.layer_slice(i)])
                           for i in range(len(graph.layers))]
            self.estimator_, self.masks_ = units.replace_net(self.estimator_, self.units_), {}
            self.sparsity_ = units.unit_sparsity(graph, find_net(self.estimator_).module_,
                                                 self.scope)
        self._store_analysis(graph, pruning.analysis_ or analyse(
            graph, self.backbone, self.order, self.centrality, self.levels,
            graded=self.adjacency == "continuous"))
        return self

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
