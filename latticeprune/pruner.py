"""``LatticePruner``: lattice-based pruning of a recurrent net as one sklearn pipeline step."""

import numbers

import numpy as np
from sklearn.utils._param_validation import HasMethods, Interval, StrOptions

from . import lattice
from .base import BaseSparsifier
from .utils import torch_seed
from .neuron_graph import HIDDEN_KINDS, SCOPES, NeuronGraph

__all__ = ["LatticePruner", "STRATEGIES"]

STRATEGIES = ("lattice", "magnitude", "random")


class LatticePruner(BaseSparsifier):
    """Prune a recurrent net by its dependency lattice (or by a baseline rule).

    The net's hidden units are the neurons of one graph (recurrent, layer-to-layer and
    top-down connections, gate blocks aggregated by their L2 norm). On a backbone of its
    strongest connections the neurons are ordered (concept lattice of the pre/postsynaptic
    context, or the reachability poset's Dedekind-MacNeille completion); the connections of
    meet-irreducible neurons are kept and the outgoing connections of the others are removed
    first, lowest centrality x strength first, then, if the target asks for more, the rest by
    strength. The method is fixed in ``docs/methods/lattice.md``.

    Parameters
    ----------
    estimator : estimator
        A skorch net whose module contains ``nn.RNN``/``nn.LSTM``/``nn.GRU`` layers or a
        :class:`~latticeprune.nets.HierarchicalRNN`, e.g. :class:`~latticeprune.RNNClassifier`,
        or another sparsifier wrapping one (``ModuliRegularizer``). Never modified.
    sparsity : float in [0, 1) or None, default=0.5
        Fraction of weight entries in ``scope`` that are zero after pruning. ``None``: the
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
        binary adjacency. Measured on the MNIST LSTM-128 (``benchmarks/lattice_mnist.py``,
        part 1): below 0.9 the backbone is one strongly connected component and 119-128 of 128
        neurons are meet-irreducible, so the lattice says little; at 0.95, 106/128 are
        meet-irreducible in 11 components and one-shot accuracy at sparsity 0.5 is the best of
        the levels tried (0.946 vs 0.892 at 0.98 and 0.944 at 0.9).
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
    scope : {"recurrent", "all"}, default="recurrent"
        ``"recurrent"``: recurrent and top-down weights. ``"all"``: also layer-to-layer,
        input and read-out weights.
    n_rounds : int, default=5
        Iterative pruning: the sparsity rises linearly over the rounds to ``sparsity``; each
        round rebuilds the lattice on the surviving weights and fine-tunes.
    fine_tune_epochs : int, default=1
        Epochs of training with the masks frozen after each round (0: one-shot pruning).
        Measured on MNIST with an LSTM-128: one-shot 0.9 sparsity loses most of the accuracy;
        five rounds of one epoch recover it (``benchmarks/results/lattice_mnist.txt``).
    prefit : bool, default=False
        True: ``estimator`` is already fitted; it is deep-copied, not refitted.
    random_state : int, RandomState or None, default=None
        Seeds the inner estimator (when its own ``random_state`` is None), fine-tuning and the
        random strategy. Same value, same masks and predictions.

    Attributes
    ----------
    estimator_ : estimator
        The fitted, pruned estimator.
    masks_ : dict of str to ndarray of bool
        Weight masks of the pruned tensors (False = pruned).
    sparsity_ : dict
        Achieved ``{"overall": float, "per_tensor": {name: float}}``, counted in weight entries;
        ``overall`` over the tensors in ``scope``.
    meet_irreducible_ : list of ndarray of bool
        Per recurrent layer, the meet-irreducible neurons of the last round's backbone.
    persistence_ : list of ndarray of float or None
        Per layer, the irreducibility persistence (``adjacency="continuous"``).
    centrality_ : list of ndarray of float
        Per layer, the neurons' centrality in the last round's graph.
    lattice_ : dict
        For notebook analysis of the last round's graph: ``n_neurons``, ``backbone``,
        ``irreducible_counts`` (backbone level -> number of meet-irreducible neurons),
        ``n_components`` and ``component_labels`` of the backbone's reachability poset,
        ``hasse_edges`` of that poset (pairs of components).
    rounds_ : list of dict
        Per round: target and achieved sparsity, connections removed, irreducible neurons.

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
        "sparsity": [Interval(numbers.Real, 0, 1, closed="left"), None],
        "adjacency": [StrOptions({"binary", "continuous"})],
        "order": [StrOptions(set(lattice.ORDERS))],
        "backbone": [Interval(numbers.Real, 0, 1, closed="left")],
        "levels": ["array-like", None],
        "centrality": [StrOptions(set(lattice.CENTRALITIES))],
        "centrality_quantile": [Interval(numbers.Real, 0, 1, closed="both")],
        "strategy": [StrOptions(set(STRATEGIES))],
        "scope": [StrOptions(set(SCOPES))],
        "n_rounds": [Interval(numbers.Integral, 1, None, closed="left")],
        "fine_tune_epochs": [Interval(numbers.Integral, 0, None, closed="left")],
        "prefit": ["boolean"],
        "random_state": ["random_state"],
    }

    def __init__(self, estimator, *, sparsity=0.5, adjacency="binary", order="context",
                 backbone=0.95, levels=None, centrality="pagerank", centrality_quantile=0.5,
                 strategy="lattice", scope="recurrent", n_rounds=5, fine_tune_epochs=1,
                 prefit=False, random_state=None):
        self.estimator = estimator
        self.sparsity = sparsity
        self.adjacency = adjacency
        self.order = order
        self.backbone = backbone
        self.levels = levels
        self.centrality = centrality
        self.centrality_quantile = centrality_quantile
        self.strategy = strategy
        self.scope = scope
        self.n_rounds = n_rounds
        self.fine_tune_epochs = fine_tune_epochs
        self.prefit = prefit
        self.random_state = random_state

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
        self._validate_params()
        if self.levels is not None:
            lattice.irreducibility_persistence(np.zeros((1, 1)), levels=self.levels)
        self.estimator_ = self._make_estimator(self.prefit)
        if not self.prefit:
            self.estimator_.fit(X, y, **fit_params)
        graph = self.neuron_graph()
        if not graph.tensors_in(self.scope):
            raise ValueError(f"The net has no weights in scope={self.scope!r}.")
        self.rounds_ = []
        for round_index in range(1, self.n_rounds + 1):
            target = (None if self.sparsity is None
                      else self.sparsity * round_index / self.n_rounds)
            self.rounds_.append(self._prune_round(graph, target, round_index))
            if self.fine_tune_epochs:
                with torch_seed(self._seed(round_index)):
                    self.estimator_.partial_fit(X, y, epochs=self.fine_tune_epochs)
        graph.freeze()
        self.masks_ = {name: mask.numpy() for name, mask in graph.masks().items()}
        self.sparsity_ = graph.sparsity(self.scope)
        return self

    # -- one round -------------------------------------------------------------------------
    def _prune_round(self, graph, target, round_index):
        tensors = graph.tensors_in(self.scope)
        analysis = self._analyse(graph)  # for every strategy, so baselines can be inspected too
        record = {"round": round_index, "target": target,
                  "meet_irreducible": int(sum(v.sum() for v in self.meet_irreducible_))}
        if self.strategy == "lattice":
            removed = self._lattice_masks(graph, tensors, target, analysis)
        else:
            removed = self._entry_masks(graph, tensors, target, round_index)
        record["removed"] = removed
        record["achieved"] = graph.sparsity(self.scope)["overall"]
        return record

    def _analyse(self, graph):
        """The lattice verdict, persistence and centrality of the surviving neuron graph."""
        strength = graph.strength_matrix(HIDDEN_KINDS)
        backbone = lattice.binary_adjacency(strength, self.backbone)
        verdict = lattice.meet_irreducible(backbone, order=self.order)
        levels = (lattice.filtration_levels() if self.levels is None
                  else np.asarray(self.levels, dtype=float))
        persistence = (lattice.irreducibility_persistence(strength, levels, order=self.order)
                       if self.adjacency == "continuous" else None)
        rank = lattice.centrality(strength, kind=self.centrality)
        hasse = lattice.hasse_diagram(backbone)
        counts = {float(q): int(lattice.meet_irreducible(
            lattice.binary_adjacency(strength, q), order=self.order).sum())
            for q in sorted(set(levels) | {self.backbone})}
        per_layer = [graph.layer_slice(i) for i in range(len(graph.layers))]
        self.meet_irreducible_ = [verdict[sl] for sl in per_layer]
        self.persistence_ = [None if persistence is None else persistence[sl]
                             for sl in per_layer]
        self.centrality_ = [rank[sl] for sl in per_layer]
        self.lattice_ = {"n_neurons": graph.n_neurons, "backbone": self.backbone,
                         "irreducible_counts": counts, "n_components": hasse.n_components,
                         "component_labels": hasse.labels, "hasse_edges": hasse.edges}
        protected = persistence if persistence is not None else verdict
        return protected, rank

    def _lattice_masks(self, graph, tensors, target, analysis):
        """Remove whole connections in the lattice rule's order; returns how many."""
        protected, rank = analysis
        graded = self.adjacency == "continuous"
        nodes = _ConnectionNodes(graph, tensors)
        strength = nodes.strength_matrix()
        safe = np.ones(nodes.size) if graded else np.ones(nodes.size, dtype=bool)
        safe[:graph.n_neurons] = protected
        rank_all = np.zeros(nodes.size)
        rank_all[:graph.n_neurons] = rank
        if target is None:
            order = self._structural_order(graph, nodes, strength, protected, rank, graded)
        else:
            order = lattice.removal_order(strength, safe, rank_all, graded=graded)
            needed = _zeros_needed(tensors, target)
            gains = nodes.nonzero_entries(order)
            order = order[:int(np.searchsorted(np.cumsum(gains), needed) + 1)] \
                if needed > 0 else order[:0]
        graph.apply_masks(nodes.masks_without(order))
        return int(len(order))

    def _structural_order(self, graph, nodes, strength, protected, rank, graded):
        """``sparsity=None``: every in-scope outgoing connection of the neurons the rule drops.

        The neurons are those :func:`~latticeprune.lattice.structural_removals` drops from the
        complete neuron graph (quantile over the neurons' centralities only); with the
        continuous adjacency a neuron irreducible on at least half of the filtration is protected.
        """
        n = graph.n_neurons
        safe = protected >= 0.5 if graded else protected
        dropped = np.zeros(nodes.size, dtype=bool)
        dropped[np.unique(lattice.structural_removals(np.ones((n, n)), safe, rank,
                                                      self.centrality_quantile) // n)] = True
        existing = np.flatnonzero(strength.ravel() > 0)
        return existing[dropped[existing // nodes.size]]

    def _entry_masks(self, graph, tensors, target, round_index):
        """Magnitude or random pruning of single weight entries; returns how many."""
        if target is None:
            raise ValueError(f"sparsity=None (the structure decides) needs strategy='lattice'; "
                             f"got strategy={self.strategy!r}.")
        weights = [t.weight.detach().cpu().numpy().ravel() for t in tensors]
        flat = np.abs(np.concatenate(weights))
        needed = _zeros_needed(tensors, target)
        candidates = np.flatnonzero(flat)
        if needed <= 0:
            return 0
        if self.strategy == "magnitude":
            chosen = candidates[np.argsort(flat[candidates], kind="stable")[:needed]]
        else:
            rng = np.random.RandomState(self._seed(round_index))
            chosen = rng.choice(candidates, size=min(needed, len(candidates)), replace=False)
        keep = np.ones(flat.size, dtype=bool)
        keep[chosen] = False
        masks, start = {}, 0
        for t, w in zip(tensors, weights):
            masks[t.name] = keep[start:start + w.size].reshape(t.weight.shape)
            start += w.size
        graph.apply_masks(masks)
        return int(len(chosen))


def _zeros_needed(tensors, target):
    """Weight entries still to be zeroed for ``target`` sparsity over ``tensors``."""
    total = sum(t.weight.numel() for t in tensors)
    zeros = sum(int((t.weight == 0).sum()) for t in tensors)
    return int(np.ceil(target * total - 1e-9)) - zeros


class _ConnectionNodes:
    """Connections of the tensors in scope as one square graph the lattice rule can order.

    Hidden neurons come first (indices ``0 .. n_neurons - 1``); input features, read-out
    outputs and the inputs of read-out layers that do not read the top layer get nodes of
    their own after them. Strengths are the gate-block RMS (L2 norm / sqrt(n_gates)), so
    tensors with different gate counts compare entry for entry.
    """

    def __init__(self, graph, tensors):
        self.graph = graph
        self.tensors = tensors
        self.blocks = []  # (tensor, src slice, dst slice)
        size = graph.n_neurons
        for t in tensors:
            n_dst, n_src = t.weight.shape[0] // t.n_gates, t.weight.shape[1]
            if t.src is not None and graph.layers[t.src].size == n_src:
                src = graph.layer_slice(t.src)
            else:
                src, size = slice(size, size + n_src), size + n_src
            if t.dst is not None:
                dst = graph.layer_slice(t.dst)
            else:
                dst, size = slice(size, size + n_dst), size + n_dst
            self.blocks.append((t, src, dst))
        self.size = size

    def strength_matrix(self):
        strength = np.zeros((self.size, self.size))
        for t, src, dst in self.blocks:
            strength[src, dst] = t.strengths() / np.sqrt(t.n_gates)
        return strength

    def _block_of(self, rows, cols):
        owner = np.full(len(rows), -1)
        for b, (_, src, dst) in enumerate(self.blocks):
            hit = ((rows >= src.start) & (rows < src.stop)
                   & (cols >= dst.start) & (cols < dst.stop))
            owner[hit] = b
        return owner

    def nonzero_entries(self, flat_indices):
        """Weight entries still non-zero in each listed connection (what removing it zeroes)."""
        rows, cols = np.divmod(flat_indices, self.size)
        owner = self._block_of(rows, cols)
        gains = np.zeros(len(flat_indices), dtype=np.int64)
        for b, (t, src, dst) in enumerate(self.blocks):
            hit = owner == b
            w = t.weight.detach().cpu().numpy() != 0
            counts = w.reshape(t.n_gates, -1, w.shape[1]).sum(axis=0).T  # (n_src, n_dst)
            gains[hit] = counts[rows[hit] - src.start, cols[hit] - dst.start]
        return gains

    def masks_without(self, flat_indices):
        """Weight masks that remove the listed connections, for every tensor in scope."""
        rows, cols = np.divmod(np.asarray(flat_indices, dtype=np.int64), self.size)
        owner = self._block_of(rows, cols)
        masks = {}
        for b, (t, src, dst) in enumerate(self.blocks):
            keep = np.ones((src.stop - src.start, dst.stop - dst.start), dtype=bool)
            hit = owner == b
            keep[rows[hit] - src.start, cols[hit] - dst.start] = False
            masks[t.name] = t.weight_mask(keep)
        return masks
