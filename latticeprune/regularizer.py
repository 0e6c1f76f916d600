"""``ModuliRegularizer``: moduli regularisation with gradual magnitude pruning, as a meta-estimator.

It trains a skorch recurrent net with two callbacks attached, :class:`ModuliPenalty` (the
geometric penalty of ``docs/methods/moduli.md`` section 4) and
:class:`GradualMagnitudePruning` (section 5), optionally retrains the final mask from a fresh
initialisation (lottery-ticket control), and then behaves like the sparse net
(``SelectFromModel``'s conventions, see :class:`~latticeprune.base.BaseSparsifier`).
"""

import copy
import numbers
import os

from skorch import NeuralNet
from sklearn.base import _fit_context
from sklearn.utils._param_validation import HasMethods, Interval
from sklearn.utils.validation import _num_samples

from .base import BaseSparsifier
from .callbacks import GradualMagnitudePruning, ModuliPenalty
from .callbacks.moduli_penalty import HISTORY_KEY as PENALTY_KEY
from .autosize import training_epochs
from .neuron_graph import NeuronGraph
from .utils import torch_seed

__all__ = ["ModuliRegularizer"]

#: Names under which the two callbacks join the inner net's ``callbacks``.
PENALTY_CALLBACK = "moduli_penalty"
PRUNING_CALLBACK = "gradual_magnitude_pruning"
OUR_CALLBACKS = (PENALTY_CALLBACK, PRUNING_CALLBACK)

#: Offsets of ``random_state`` for the sparsifier's own draws.
_EMBEDDING_SEED, _TRAINING_SEED, _REINIT_SEED = 0, 1, 2
#: Parameters the callbacks take as they are, and validate in their ``initialize``.
_PENALTY_PARAMS = ("strength", "moduli", "inhibitor", "invert", "norm", "permute",
                   "two_embeddings", "train_embedding", "embedding_lr", "input_l1")
_PRUNING_PARAMS = ("target_sparsity", "schedule", "prune_scope")


class ModuliRegularizer(BaseSparsifier):
    """Sparsify a recurrent net by moduli regularisation and gradual magnitude pruning.

    Each recurrent layer's hidden units get points in a moduli space; the loss gets the
    penalty ``strength * sum over layers of mean(R * |W_hh|^norm)``, ``R[i, j] = f(d(p_i,
    p_j))``, while global magnitude pruning raises the sparsity on a schedule. Controls:
    ``moduli="standard"`` (plain L1 / L2), ``permute=True`` (shuffled geometry), ``strength=0``
    (magnitude pruning alone). ``fit`` trains a clone for its ``max_epochs``, pruning at the
    end of each of the first ``max_epochs - recovery_epochs``; with ``lottery_ticket=True`` it
    then re-initialises the weights (seeded), keeps the masks and retrains ``max_epochs`` with
    the penalty. Shared parameters and attributes: :class:`~latticeprune.base.BaseSparsifier`.

    Choosing the settings (the evidence: docs/experiments.md, "Schedule regime"). Pruning to
    the last epoch (``recovery_epochs=0``, the paper's regime and the common case when
    training is expensive) is where the penalty pays: without it a net can lose what pruning
    removes and not win it back. Start with a low-dimensional space (``"torus"`` or
    ``"circle"``) at the default ``strength=0.1`` and compare with ``permute=True`` and
    ``strength=0`` at the same settings; avoid penalties that weigh every pair about alike
    (``"standard"``, ``"torus6"``) at that strength. With recovery epochs (a fifth of
    ``max_epochs`` or more) magnitude pruning alone recovered as well as the spaces on the
    navigation task and digits, but not on the adding problem or a 0.98-sparse Elman net on
    MNIST: there the penalty still helped, and any penalty about as much as the torus.

    Parameters
    ----------
    estimator, prefit, memory, random_state, verbose
        As in ``BaseSparsifier``; ``estimator`` is a skorch net. It trains with the penalty
        and the schedule from its first epoch, so there is no dense fit for candidates to
        share: ``memory`` reuses a fit only when the same configuration (every parameter of
        this sparsifier and of the estimator) meets the same data again, e.g. a search run
        twice. ``prefit=True`` continues
        training it for ``max_epochs`` with the penalty and the schedule. ``random_state``
        also seeds the embedding, the batch order and the lottery re-initialisation.
        ``verbose`` prints one line per pruning epoch (``pruning step 3/10 (epoch 3): target
        sparsity 0.27, achieved 0.27``) and one when the lottery-ticket retraining starts.
    moduli : str, default="torus"
        Space of the embedding, one of ``latticeprune.moduli.SPACE_NAMES`` (``"standard"``:
        all pairs weigh 1).
    inhibitor : {"DoG", "gauss", "ripple", "square"}, default="DoG"
        Distance-to-penalty function (docs/methods/moduli.md section 3).
    invert : bool, default=True
        Use ``max(R) - R`` (the published DoG form: near pairs cheap, far pairs expensive).
    strength : float, default=0.1
        Weight of the penalty, >= 0 (measured: see docs/experiments.md).
    norm : {1, 2}, default=1
        Exponent k of ``|W|^k`` in the penalty.
    target_sparsity, schedule : default=0.9, "linear"
        As in :class:`~latticeprune.callbacks.GradualMagnitudePruning`.
    prune_scope : {"recurrent", "all"}, default="recurrent"
        Pruned tensors, as its ``scope``; the penalty covers recurrent and top-down weights.
    recovery_epochs : int, default=0
        Final epochs of ``max_epochs`` trained at the target with fixed masks (< ``max_epochs``).
    permute : bool, default=False
        Control: shuffle the entries of every ``R`` (same values, no geometry).
    two_embeddings : bool, default=False
        Separate presynaptic and postsynaptic points per layer.
    train_embedding : bool, default=False
        Train the points (own Adam, one step per batch); not with ``"standard"`` or ``permute``.
    embedding_lr : float, default=0.01
        Learning rate of the points (spaces have side 10 or radius 5).
    input_l1 : float, default=0.0
        Weight of a plain L1 term, the mean ``|w|`` of each input and read-out tensor.
    lottery_ticket : bool, default=False
        After training, re-initialise the weights, keep the masks and retrain.
    space_params : dict or None, default=None
        Parameters of the space: ``dim`` (torus), ``side`` (flat), ``radius`` (round).

    Attributes
    ----------
    estimator_, masks_, sparsity_, classes_, n_features_in_
        As in ``BaseSparsifier``; ``sparsity_["overall"]`` counts ``prune_scope``.
    embedding_ : dict
        ``{layer name: ndarray (n_units, point_dim)}`` (``(pre, post)`` with two embeddings).
    penalty_ : dict
        ``{layer name: R}``; ``R[i, j]`` weighs the connection from unit ``i`` to unit ``j``.
    history_ : list of dict
        Per trained epoch: ``epoch``, ``phase`` (``"prune"``, ``"recovery"``, ``"lottery"``,
        ``"partial_fit"``), ``sparsity``, ``train_loss``, ``penalty`` (mean per batch) and
        ``score`` on the training data at each phase's end (None elsewhere).
    pruned_estimator_ : skorch net
        With ``lottery_ticket=True``: the net before the re-initialisation.

    Notes
    -----
    Early stopping: a callback that ends training before the schedule reaches
    ``target_sparsity`` (e.g. skorch's ``EarlyStopping`` during the first ``max_epochs -
    recovery_epochs`` epochs) makes ``fit`` raise ``ValueError`` naming the sparsity reached;
    the schedule is never shortened and the sparsity never jumps. Early stopping may end the
    recovery epochs: give it a ``patience`` longer than the pruning epochs.

    ``fit_params`` (e.g. ``sample_weight``) go to the estimator's ``fit`` (``partial_fit``
    with ``prefit=True``) and to the lottery-ticket retraining.

    The callbacks join the clone's ``callbacks`` as ``"moduli_penalty"`` and
    ``"gradual_magnitude_pruning"``. Pruning starts at the end of the first epoch: for a task
    the dense net learns late, fit it first and use ``prefit=True`` (measured: see
    docs/experiments.md).

    Examples
    --------
    >>> from latticeprune import ModuliRegularizer, RNNClassifier
    >>> from latticeprune.datasets import load_digits_sequences
    >>> X, y = load_digits_sequences(return_X_y=True)
    >>> reg = ModuliRegularizer(RNNClassifier(hidden_size=16, max_epochs=3),
    ...                         moduli="klein", target_sparsity=0.9, random_state=0)
    >>> reg = reg.fit(X[:300], y[:300])
    >>> round(reg.sparsity_["overall"], 3)
    0.9
    >>> [round(row["sparsity"], 2) for row in reg.history_]
    [0.3, 0.6, 0.9]
    >>> reg.transform(X[:2]).shape
    (2, 16)
    """

    _parameter_constraints = {
        "estimator": [HasMethods(["fit"])],
        **dict.fromkeys(_PENALTY_PARAMS + _PRUNING_PARAMS, "no_validation"),  # callbacks check
        "recovery_epochs": [Interval(numbers.Integral, 0, None, closed="left")],
        "lottery_ticket": ["boolean"],
        "prefit": ["boolean"],
        "memory": [None, str, os.PathLike, HasMethods(["cache"])],
        "space_params": [dict, None],
        "verbose": ["verbose"],
        "random_state": ["random_state"],
    }

    def __init__(self, estimator, *, moduli="torus", inhibitor="DoG", invert=True, strength=0.1,
                 norm=1, target_sparsity=0.9, schedule="linear", prune_scope="recurrent",
                 recovery_epochs=0, permute=False, two_embeddings=False, train_embedding=False,
                 embedding_lr=0.01, input_l1=0.0, lottery_ticket=False, prefit=False,
                 space_params=None, memory=None, verbose=0, random_state=None):
        vars(self).update({k: v for k, v in locals().items() if k != "self"})

    # -- checks --------------------------------------------------------------------------------
    def _check_estimator(self):
        """A skorch net that runs callbacks, with an epoch left to prune in."""
        net, name = self.estimator, type(self).__name__
        if not isinstance(net, NeuralNet):
            raise TypeError(f"{name} trains a skorch net (e.g. RNNClassifier); "
                            f"got estimator={type(net).__name__}.")
        if net.callbacks == "disable":
            raise ValueError(f"{name} trains through skorch callbacks; the estimator has "
                             "callbacks='disable'.")

    def _check_epochs(self, max_epochs):
        if self.recovery_epochs >= max_epochs:
            raise ValueError(f"recovery_epochs={self.recovery_epochs} leaves no pruning epoch: it "
                             f"must be smaller than the estimator's max_epochs={max_epochs}"
                             f"{'' if self.estimator.max_epochs == max_epochs else ' (auto)'}.")

    # -- the two callbacks ---------------------------------------------------------------------
    def _penalty_callback(self):
        return ModuliPenalty(scope="recurrent", random_state=self._seed(_EMBEDDING_SEED),
                             **{name: getattr(self, name) for name in _PENALTY_PARAMS},
                             **(self.space_params or {}))

    def _attach(self, net, user_callbacks, pruning):
        """Set ``net.callbacks`` to the user's callbacks plus the penalty and ``pruning``."""
        ours = [(PENALTY_CALLBACK, self._penalty_callback()), (PRUNING_CALLBACK, pruning)]
        net.set_params(callbacks=list(user_callbacks) + ours)
        if net.initialized_:
            # skorch's set_params re-initialises callbacks_ from the previous list.
            net.initialize_callbacks()

    # -- fitting -------------------------------------------------------------------------------
    @_fit_context(prefer_skip_nested_validation=False)
    def fit(self, X, y, **fit_params):
        """Train the net with the moduli penalty and the pruning schedule; ``self``.

        ``fit_params`` go to the estimator's ``fit`` (``partial_fit`` with ``prefit=True``)
        and to the lottery-ticket retraining. Raises ``ValueError`` if training stops before
        the schedule reaches ``target_sparsity`` (see Notes).
        """
        self._check_estimator()
        for attribute in ("estimator_", "pruned_estimator_", "masks_"):
            if hasattr(self, attribute):  # a previous fit's results
                delattr(self, attribute)
        fit_params, tune_params = self._fit_params(fit_params)
        max_epochs = training_epochs(self.estimator, _num_samples(X))
        self._check_epochs(max_epochs)
        net = self._make_estimator(prefit=self.prefit)
        user_callbacks = [cb for cb in net.callbacks or []  # ours from an earlier fit go
                          if not (isinstance(cb, tuple) and cb[0] in OUR_CALLBACKS)]
        pruning_epochs = max_epochs - self.recovery_epochs
        start = len(net.history) + 1 if self.prefit else 1
        self._attach(net, user_callbacks, GradualMagnitudePruning(
            self.target_sparsity, self.schedule, pruning_epochs, self.prune_scope, start,
            verbose=self.verbose))
        if self.prefit:
            with torch_seed(self._seed(_TRAINING_SEED)):
                net.partial_fit(X, y, epochs=max_epochs, **tune_params)
        else:
            net = self._fit_estimator(net, X, y, fit_params, self._seed(_TRAINING_SEED))
        trained = len(net.history) - (start - 1)
        if trained < pruning_epochs:
            reached = self._sparsity(net)
            raise ValueError(
                f"Training stopped after {trained} of {max_epochs} epochs (a callback such as "
                f"EarlyStopping ended it), before the pruning schedule reached "
                f"target_sparsity={self.target_sparsity} at epoch {pruning_epochs}: the sparsity "
                f"is {reached:.3f}. Early stopping may only end the recovery epochs: give it a "
                f"patience longer than the {pruning_epochs} pruning epochs, or remove it.")
        self.estimator_ = net
        self.history_ = []
        self._record_history(start - 1, lambda epoch: ("prune" if epoch < start + pruning_epochs
                                                       else "recovery"), X, y)
        if self.lottery_ticket:
            self._retrain_lottery_ticket(net, user_callbacks, max_epochs, X, y, tune_params)
        self._store_results()
        return self

    def _retrain_lottery_ticket(self, net, user_callbacks, max_epochs, X, y, fit_params):
        """Fresh seeded initialisation, the final masks kept, ``max_epochs`` more epochs."""
        graph = self.neuron_graph().freeze()
        self.pruned_estimator_ = copy.deepcopy(net)
        masks = {name: mask.float() for name, mask in graph.masks().items()}
        self._attach(net, user_callbacks, GradualMagnitudePruning(
            self.target_sparsity, self.schedule, 0, self.prune_scope))
        self._say(f"lottery ticket: weights re-initialised, {max_epochs} epochs at sparsity "
                  f"{self._sparsity(net):.2f}")
        with torch_seed(self._seed(_REINIT_SEED)):
            net.initialize()
            self.neuron_graph().apply_masks(masks)
            net.partial_fit(X, y, epochs=max_epochs, **fit_params)
        self._record_history(0, lambda epoch: "lottery", X, y)

    def partial_fit(self, X, y, classes=None, epochs=None, **fit_params):
        """Train the fitted net ``epochs`` more epochs (None: ``max_epochs``) with the penalty
        and fixed masks; ``self``. ``classes`` is ignored; unfitted: ``fit``. ``fit_params``
        go to the net's ``partial_fit``."""
        if not hasattr(self, "estimator_"):
            return self.fit(X, y, **fit_params)
        fit_params = dict(self._fit_params(fit_params, "partial_fit")[1])
        net = self.estimator_
        start = len(net.history)
        if epochs is not None:
            fit_params["epochs"] = epochs
        with torch_seed(self._seed(_TRAINING_SEED + len(self.history_))):
            net.partial_fit(X, y, **fit_params)
        self._record_history(start, lambda epoch: "partial_fit", X, y)
        self._store_results()
        return self

    # -- results -------------------------------------------------------------------------------
    def _record_history(self, first, phase_of, X, y):
        """Append the net's epochs after ``first`` to ``history_``; score the phase's end."""
        rows = self.estimator_.history[first:]
        if not rows:
            return
        sparsity = self._sparsity(self.estimator_)
        for row in rows:
            self.history_.append({
                "epoch": len(self.history_) + 1, "phase": phase_of(row["epoch"]),
                "sparsity": row.get("sparsity", sparsity), "train_loss": row.get("train_loss"),
                "penalty": row.get(PENALTY_KEY), "score": None})
        if hasattr(self.estimator_, "score"):
            self.history_[-1]["score"] = float(self.estimator_.score(X, y))

    def _store_results(self):
        graph = self.neuron_graph().freeze()
        penalty = dict(self.estimator_.callbacks_)[PENALTY_CALLBACK]
        self.embedding_ = penalty.embedding_
        self.penalty_ = penalty.penalty_
        self.read_masks(graph)

    @property
    def pruning_scope(self):
        return self.prune_scope

    def _sparsity(self, net):
        return NeuronGraph(net.module_).sparsity(self.prune_scope)["overall"]

    def __sklearn_is_fitted__(self):
        return hasattr(self, "estimator_") and hasattr(self, "masks_")
