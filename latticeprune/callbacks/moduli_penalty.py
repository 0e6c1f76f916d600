"""The moduli penalty as a skorch callback (docs/methods/moduli.md sections 1 and 4).

Each recurrent layer's hidden units are embedded at points of a moduli space; the training
objective becomes ``task loss + strength * sum over tensors of mean(R * |W|^k)``, with
``R = f(d(p_i, p_j))`` from :mod:`latticeprune.moduli`, back-propagated by the callback itself
(:class:`~latticeprune.callbacks.penalty.TrainingPenalty`).
"""

import numbers

import torch
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, Options, StrOptions
from sklearn.utils._param_validation import validate_parameter_constraints

from ..moduli import INHIBITOR_NAMES, SPACE_NAMES, get_space, moduli_penalty
from ..moduli import permute as permute_entries
from ..moduli import penalty_from_points, penalty_matrix
from ..dependency import trace_net
from ..neuron_graph import HIDDEN_KINDS, SCOPES, NeuronGraph
from .penalty import TrainingPenalty

__all__ = ["ModuliPenalty", "HISTORY_KEY"]

#: History key of the penalty (per batch, and its epoch mean).
HISTORY_KEY = "moduli_penalty"


class ModuliPenalty(TrainingPenalty):
    """skorch callback adding the moduli penalty of the recurrent weights to the training loss.

    On the first ``on_train_begin`` after ``initialize`` it samples one embedding per recurrent
    layer (:class:`~latticeprune.neuron_graph.NeuronGraph`) and builds each layer's ``R``
    (:func:`latticeprune.moduli.penalty_matrix`). After every training batch's backward pass it
    back-propagates ``strength * sum_t moduli_penalty(W_t, R_t, n_gates, norm) + input_l1 *
    sum_u mean(|W_u|)``: ``t`` over the hidden-to-hidden tensors in ``scope`` (``R`` from the
    source layer's points to the target layer's), ``u`` over input and read-out weights, each
    read live (``weight_orig * weight_mask``: pruned entries get no gradient). The value is
    recorded per batch as ``"moduli_penalty"`` in the history, with its epoch mean.

    Parameters
    ----------
    strength, moduli, inhibitor, invert, norm, permute, two_embeddings, train_embedding, \
embedding_lr, input_l1
        The penalty, as in :class:`~latticeprune.ModuliRegularizer` (same defaults).
    scope : {"recurrent", "all"}, default="recurrent"
        Penalised: recurrent and top-down weights; ``"all"``: also feed-forward ones.
    random_state : int, RandomState instance or None, default=None
        Seeds the embedding (and the shuffle of ``permute``).
    **space_params
        Parameters of the space, e.g. ``dim=3`` for a 3-torus or ``side`` / ``radius``.

    Attributes
    ----------
    embedding_, penalty_ : dict
        As in ``ModuliRegularizer``: current points and ``R`` (after the first ``on_train_begin``).

    Examples
    --------
    >>> from latticeprune import RNNClassifier
    >>> from latticeprune.callbacks import ModuliPenalty
    >>> from latticeprune.datasets import load_digits_sequences
    >>> X, y = load_digits_sequences(return_X_y=True)
    >>> penalty = ModuliPenalty(strength=0.1, moduli="klein", random_state=0)
    >>> net = RNNClassifier(hidden_size=16, max_epochs=2, random_state=0, callbacks=[penalty])
    >>> net = net.fit(X[:200], y[:200])
    >>> penalty.penalty_["encoder.l0"].shape
    (16, 16)
    >>> len(net.history[-1, "batches", :, "moduli_penalty"])
    13
    """

    history_key = HISTORY_KEY

    _parameter_constraints = {
        "strength": [Interval(numbers.Real, 0, None, closed="left")],
        "moduli": [StrOptions(set(SPACE_NAMES))],
        "inhibitor": [StrOptions(set(INHIBITOR_NAMES))],
        "invert": ["boolean"],
        "norm": [Options(numbers.Integral, {1, 2})],
        "permute": ["boolean"],
        "two_embeddings": ["boolean"],
        "train_embedding": ["boolean"],
        "embedding_lr": [Interval(numbers.Real, 0, None, closed="neither")],
        "input_l1": [Interval(numbers.Real, 0, None, closed="left")],
        "scope": [StrOptions(set(SCOPES))],
        "random_state": ["random_state"],
    }

    def __init__(self, strength=0.1, moduli="torus", inhibitor="DoG", invert=True, norm=1,
                 permute=False, two_embeddings=False, train_embedding=False, embedding_lr=0.01,
                 input_l1=0.0, scope="recurrent", random_state=None, **space_params):
        own = {k: v for k, v in locals().items() if k not in ("self", "space_params")}
        vars(self).update(own, **space_params)

    # -- parameters ----------------------------------------------------------------------------
    @property
    def space_params(self):
        """The ``**space_params`` given at construction (or by ``set_params``)."""
        return {name: getattr(self, name) for name in self._get_param_names()
                if name not in self._parameter_constraints}

    def initialize(self):
        """Validate the parameters; forget the embedding (a re-initialised net gets a new one)."""
        own = {name: getattr(self, name) for name in self._parameter_constraints}
        validate_parameter_constraints(self._parameter_constraints, own,
                                       caller_name=type(self).__name__)
        self.space_ = get_space(self.moduli, **self.space_params)
        if self.train_embedding and not self.space_.trainable:
            trainable = [name for name in SPACE_NAMES if get_space(name).trainable]
            raise ValueError(f"train_embedding=True needs a space whose points can be trained; "
                             f"moduli={self.moduli!r} cannot train them. Use one of {trainable} "
                             "or set train_embedding=False.")
        if self.train_embedding and self.permute:
            raise ValueError("permute=True (shuffled R, no geometry) cannot be combined with "
                             "train_embedding=True (points moved in the geometry).")
        self.layout_ = self.points_ = self.fixed_penalties_ = self.embedding_optimizer_ = None
        self.targets_ = self.unit_free_targets_ = None
        return self

    # -- embedding -----------------------------------------------------------------------------
    def _embed(self, graph):
        """Sample points for every recurrent layer and fix the R of every penalised tensor."""
        rng = check_random_state(self.random_state)
        dtype = torch.get_default_dtype()
        points, penalties = {}, {}
        for layer in graph.layers:
            R, sampled = penalty_matrix(layer.size, self.space_, self.inhibitor, self.invert,
                                        self.permute, rng, two_embeddings=self.two_embeddings,
                                        return_points=True)
            pre, post = sampled if self.two_embeddings else (sampled, sampled)
            pre = torch.tensor(pre, dtype=dtype, requires_grad=self.train_embedding)
            post = (torch.tensor(post, dtype=dtype, requires_grad=self.train_embedding)
                    if self.two_embeddings else pre)
            points[layer.name] = (pre, post)
            penalties[(layer.name, layer.name)] = torch.as_tensor(R, dtype=dtype)
        for t, _, (src, dst) in self._blocks(graph):
            if (src, dst) not in penalties:
                R = penalty_from_points(points[src][0].detach(), self.space_, self.inhibitor,
                                        self.invert, post_points=points[dst][1].detach())
                if self.permute and self.space_.name != "standard":
                    R = permute_entries(R, rng)
                penalties[(src, dst)] = R
        self.points_ = points
        self.fixed_penalties_ = penalties
        self.layout_ = [(layer.name, layer.size) for layer in graph.layers]
        if self.train_embedding:
            leaves = {id(p): p for pair in points.values() for p in pair}
            self.embedding_optimizer_ = torch.optim.Adam(list(leaves.values()),
                                                         lr=self.embedding_lr)

    def _blocks(self, graph):
        """``(tensor, columns, (source layer name, destination layer name))`` of every block of
        penalised connections: each tensor in scope, split by the layers its columns read."""
        kinds = [kind for kind in SCOPES[self.scope] if kind in HIDDEN_KINDS]
        return [(t, cols, (graph.layers[layer].name, graph.layers[t.dst].name))
                for t in graph.tensors if t.kind in kinds
                for layer, cols in t.hidden_sources()]

    def _penalty_of(self, src, dst):
        """Current R for connections from layer ``src`` to layer ``dst`` (names)."""
        if not self.train_embedding:
            return self.fixed_penalties_[(src, dst)]
        return penalty_from_points(self.points_[src][0], self.space_, self.inhibitor,
                                   self.invert, post_points=self.points_[dst][1])

    @property
    def embedding_(self):
        if self.points_ is None:
            raise AttributeError("embedding_ exists after the first on_train_begin.")
        array = lambda points: points.detach().cpu().numpy().copy()  # noqa: E731
        return {name: (array(pre), array(post)) if self.two_embeddings else array(pre)
                for name, (pre, post) in self.points_.items()}

    @property
    def penalty_(self):
        if self.points_ is None:
            raise AttributeError("penalty_ exists after the first on_train_begin.")
        with torch.no_grad():
            return {name: self._penalty_of(name, name).detach().cpu().numpy().copy()
                    for name in self.points_}

    # -- training ------------------------------------------------------------------------------
    def on_train_begin(self, net, X=None, y=None, **kwargs):
        if getattr(self, "space_", None) is None:
            self.initialize()
        if X is not None:
            trace_net(net, X)  # the wiring of net's module, whatever module it is
        graph = NeuronGraph(net.module_)
        if self.points_ is None or self.layout_ != [(l.name, l.size) for l in graph.layers]:
            self._embed(graph)
        # (tensor, R key) pairs, rebuilt every time training starts: the net's module may have
        # been re-created (initialize, unpickling) since the last call.
        self.targets_ = self._blocks(graph)
        self.unit_free_targets_ = [t for t in graph.tensors if t.kind in ("input", "readout")]

    def loss_term(self):
        """The term added to the loss, a differentiable scalar tensor (after ``on_train_begin``)."""
        total = torch.zeros(())
        if self.strength:
            total = self.strength * sum(
                moduli_penalty(t.live()[:, cols], self._penalty_of(src, dst), t.n_gates,
                               self.norm)
                for t, cols, (src, dst) in self.targets_)
        if self.input_l1:
            total = sum((self.input_l1 * t.live().abs().mean() for t in self.unit_free_targets_),
                        total)
        return total

    def on_grad_computed(self, net, named_parameters, X=None, y=None, training=None,
                         **kwargs):
        # a trained embedding steps on the penalty's gradient alone
        trains_embedding = training and self.embedding_optimizer_ is not None
        if trains_embedding:
            self.embedding_optimizer_.zero_grad()
        super().on_grad_computed(net, named_parameters, training=training)
        if trains_embedding:
            self.embedding_optimizer_.step()

    # -- pickling ------------------------------------------------------------------------------
    def __getstate__(self):
        # Tensor handles point into the net's module, which skorch pickles on its own; they
        # are rebuilt on the next on_train_begin.
        return {**self.__dict__, "targets_": None, "unit_free_targets_": None}
