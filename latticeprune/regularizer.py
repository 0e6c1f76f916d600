"""``ModuliRegularizer``: moduli regularisation with gradual magnitude pruning, as a meta-estimator.

It trains a skorch recurrent net with two callbacks attached, :class:`ModuliPenalty` (the
geometric penalty of ``docs/methods/moduli.md`` section 4) and
:class:`GradualMagnitudePruning` (section 5), optionally retrains the final mask from a fresh
initialisation (lottery-ticket control), and then behaves like the sparse net
(``SelectFromModel``'s conventions, see :class:`~latticeprune.base.BaseSparsifier`).
"""

import copy
import numbers

from skorch import NeuralNet
from sklearn.base import _fit_context
from sklearn.utils._param_validation import HasMethods, Interval

from .base import BaseSparsifier
from .callbacks import GradualMagnitudePruning, ModuliPenalty
from .callbacks.moduli_penalty import HISTORY_KEY as PENALTY_KEY
from .utils import torch_seed

__all__ = ["ModuliRegularizer"]

#: Names under which the two callbacks join the inner net's ``callbacks``.
PENALTY_CALLBACK = "moduli_penalty"
PRUNING_CALLBACK = "gradual_magnitude_pruning"

#: Offsets of ``random_state`` for the sparsifier's own draws.
_EMBEDDING_SEED, _TRAINING_SEED, _REINIT_SEED = 0, 1, 2
#: Parameters the callbacks take as they are, and validate in their ``initialize``.
_PENALTY_PARAMS = ("strength", "moduli", "inhibitor", "invert", "norm", "permute",
                   "two_embeddings", "train_embedding", "embedding_lr", "input_l1")
_PRUNING_PARAMS = ("target_sparsity", "schedule", "prune_scope")


class ModuliRegularizer(BaseSparsifier):
    """Sparsify a recurrent net by moduli regularisation and gradual magnitude pruning.

    The hidden units of every recurrent layer are embedded at random points of a moduli
    space (circle, sphere, torus, Klein bottle); the training loss gets the penalty
    ``strength * sum over layers of mean(R * |W_hh|^norm)`` with ``R[i, j] = f(d(p_i, p_j))``
    (``inhibitor``, inverted by default), while global magnitude pruning raises the sparsity
    of the pruned tensors on a schedule to ``target_sparsity``. ``moduli="standard"`` is the
    plain L1 / L2 control, ``permute=True`` the shuffled-geometry control and ``strength=0``
    magnitude pruning alone.

    ``fit`` clones ``estimator`` into ``estimator_`` and trains it for its ``max_epochs``,
    pruning at the end of each of the first ``max_epochs - recovery_epochs`` epochs; the
    remaining epochs train at the final sparsity with the masks fixed. With
    ``lottery_ticket=True`` the weights are then re-initialised (a fresh seeded
    initialisation), the final masks kept, and the net retrained for ``max_epochs`` with the
    penalty but no schedule. Afterwards ``predict``, ``predict_proba``, ``score``,
    ``transform`` (hidden states) ... delegate to the sparse ``estimator_``.

    Parameters
    ----------
    estimator : skorch net
        Unfitted (or, with ``prefit=True``, fitted) skorch net whose module contains
        ``nn.RNN`` / ``nn.LSTM`` / ``nn.GRU`` layers or a ``HierarchicalRNN``, e.g.
        :class:`~latticeprune.RNNClassifier`. Never modified: a clone is trained.
    moduli : str, default="torus"
        Space of the embedding, one of ``latticeprune.moduli.SPACE_NAMES``: ``"circle"``,
        ``"klein"``, ``"sphere"``, ``"standard"`` (all pairs weigh 1: plain L1 / L2),
        ``"torus"`` (dimension ``space_params["dim"]``, default 2), ``"torus6"``.
    inhibitor : {"DoG", "gauss", "ripple", "square"}, default="DoG"
        Distance-to-penalty function (docs/methods/moduli.md section 3).
    invert : bool, default=True
        Use ``max(R) - R`` (the published DoG form: near pairs cheap, far pairs expensive).
    strength : float, default=0.1
        Weight of the penalty, >= 0 (measured: see docs/experiments.md).
    norm : {1, 2}, default=1
        Exponent k of ``|W|^k`` in the penalty.
    target_sparsity : float, default=0.9
        Fraction of zero entries in the pruned tensors at the end, in [0, 1).
    schedule : {"linear", "cubic"}, default="linear"
        Sparsity schedule over the pruning epochs (cubic: Zhu & Gupta 2017).
    prune_scope : {"recurrent", "all"}, default="recurrent"
        Pruned tensors: recurrent and top-down weights, or also input, feed-forward and
        read-out weights. The penalty covers recurrent and top-down weights in both cases.
    recovery_epochs : int, default=0
        Final epochs of ``max_epochs`` trained at the target sparsity without further
        pruning; must be smaller than the inner net's ``max_epochs``.
    permute : bool, default=False
        Control: shuffle the entries of every ``R`` (same values, no geometry).
    two_embeddings : bool, default=False
        Separate presynaptic and postsynaptic points per layer.
    train_embedding : bool, default=False
        Make the points trainable: they move to lower the penalty (their own Adam optimiser,
        one step per training batch, learning rate ``embedding_lr``). Not possible with
        ``moduli="standard"`` or ``permute=True``.
    embedding_lr : float, default=0.01
        Learning rate of the points; the flat spaces have side 10 and the round ones radius 5,
        so 0.01 moves a point by about 0.1 % of the space per step.
    input_l1 : float, default=0.0
        Weight of a plain L1 term, the mean absolute value of each input and read-out weight
        tensor (these connect hidden units to units without points).
    lottery_ticket : bool, default=False
        After training, re-initialise the weights, keep the masks and retrain.
    prefit : bool, default=False
        ``estimator`` is already fitted: deep-copy it and continue training it for
        ``max_epochs`` with the penalty and the schedule (instead of fitting from scratch).
    space_params : dict or None, default=None
        Parameters of the space: ``{"dim": k}`` for the torus (k >= 1), ``side`` for the flat
        spaces, ``radius`` for the round ones.
    random_state : int, RandomState instance or None, default=None
        Seeds the embedding, an unseeded inner net (as sklearn's ensembles do), the batch
        order and the re-initialisation of ``lottery_ticket``. Same value, same masks and
        predictions.

    Attributes
    ----------
    estimator_ : skorch net
        The trained sparse net.
    embedding_ : dict
        ``{layer name: ndarray (n_units, point_dim)}``, the points of each recurrent layer
        (``(pre, post)`` tuples with ``two_embeddings``).
    penalty_ : dict
        ``{layer name: ndarray (n_units, n_units)}``, ``R`` of each layer; ``R[i, j]`` weighs
        the connection from unit ``i`` to unit ``j``.
    masks_ : dict
        ``{tensor name: bool ndarray shaped like the weight}``, True where a weight is kept.
    sparsity_ : dict
        Achieved sparsity, ``{"overall": fraction of zero entries in prune_scope,
        "per_tensor": {tensor name: fraction}}``.
    history_ : list of dict
        One dict per trained epoch: ``epoch`` (counted over all phases), ``phase``
        (``"prune"``, ``"recovery"``, ``"lottery"`` or ``"partial_fit"``), ``sparsity``,
        ``train_loss`` (task loss), ``penalty`` (mean penalty added per batch), and ``score``:
        ``estimator_.score`` on the training data at the end of each phase (None on other
        epochs), so the score before the lottery re-initialisation stays available.
    pruned_estimator_ : skorch net
        With ``lottery_ticket=True`` only: a copy of the net as it was before the
        re-initialisation, to evaluate both on held-out data.
    classes_ : ndarray
        Class labels (classifiers).
    n_features_in_ : int
        Columns of the 2-D ``X`` seen in ``fit``.

    See Also
    --------
    latticeprune.callbacks.ModuliPenalty : The penalty, as a callback for any skorch net.
    latticeprune.callbacks.GradualMagnitudePruning : The pruning schedule, as a callback.

    Notes
    -----
    The callbacks are added to the clone's ``callbacks`` under the names
    ``"moduli_penalty"`` and ``"gradual_magnitude_pruning"``; the user's callbacks stay.
    Pruning starts at the end of the first epoch: for a task the dense net learns late, train
    the net first and sparsify it with ``prefit=True`` (measured: see docs/experiments.md).

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
        "space_params": [dict, None],
        "random_state": ["random_state"],
    }

    def __init__(self, estimator, *, moduli="torus", inhibitor="DoG", invert=True, strength=0.1,
                 norm=1, target_sparsity=0.9, schedule="linear", prune_scope="recurrent",
                 recovery_epochs=0, permute=False, two_embeddings=False, train_embedding=False,
                 embedding_lr=0.01, input_l1=0.0, lottery_ticket=False, prefit=False,
                 space_params=None, random_state=None):
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
        if self.recovery_epochs >= net.max_epochs:
            raise ValueError(f"recovery_epochs={self.recovery_epochs} leaves no pruning epoch: it "
                             f"must be smaller than the estimator's max_epochs={net.max_epochs}.")

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
        """Train the net with the moduli penalty and the pruning schedule.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_steps, n_features) or (n_samples, n_features)
            Training sequences, in any form the estimator accepts.
        y : array-like of shape (n_samples,) or (n_samples, n_targets)
            Targets.
        **fit_params : dict
            Passed to the estimator's ``fit`` (or ``partial_fit`` when ``prefit=True``).

        Returns
        -------
        self : ModuliRegularizer
        """
        self._check_estimator()
        for attribute in ("estimator_", "pruned_estimator_", "masks_"):
            if hasattr(self, attribute):  # a previous fit's results
                delattr(self, attribute)
        net = self._make_estimator(prefit=self.prefit)
        max_epochs = net.max_epochs
        user_callbacks = list(net.callbacks or [])
        pruning_epochs = max_epochs - self.recovery_epochs
        start = len(net.history) + 1 if self.prefit else 1
        self._attach(net, user_callbacks, GradualMagnitudePruning(
            self.target_sparsity, self.schedule, pruning_epochs, self.prune_scope, start))
        with torch_seed(self._seed(_TRAINING_SEED)):
            if self.prefit:
                net.partial_fit(X, y, epochs=max_epochs, **fit_params)
            else:
                net.fit(X, y, **fit_params)
        self.estimator_ = net
        self.history_ = []
        self._record_history(start - 1, lambda epoch: ("prune" if epoch < start + pruning_epochs
                                                       else "recovery"), X, y)
        if self.lottery_ticket:
            self._retrain_lottery_ticket(net, user_callbacks, max_epochs, X, y, fit_params)
        self._store_results()
        return self

    def _retrain_lottery_ticket(self, net, user_callbacks, max_epochs, X, y, fit_params):
        """Fresh seeded initialisation, the final masks kept, ``max_epochs`` more epochs."""
        graph = self.neuron_graph().freeze()
        self.pruned_estimator_ = copy.deepcopy(net)
        masks = {name: mask.float() for name, mask in graph.masks().items()}
        self._attach(net, user_callbacks, GradualMagnitudePruning(
            self.target_sparsity, self.schedule, 0, self.prune_scope))
        with torch_seed(self._seed(_REINIT_SEED)):
            net.initialize()
            self.neuron_graph().apply_masks(masks)
            net.partial_fit(X, y, epochs=max_epochs, **fit_params)
        self._record_history(0, lambda epoch: "lottery", X, y)

    def partial_fit(self, X, y, classes=None, epochs=None, **fit_params):
        """Train the fitted net further, with the penalty active and the masks fixed.

        Parameters
        ----------
        X, y : array-like
            Training data, as in ``fit``.
        classes : ignored
            For the sklearn ``partial_fit`` signature.
        epochs : int or None, default=None
            Epochs to train; None trains the estimator's ``max_epochs``.
        **fit_params : dict
            Passed to the estimator's ``partial_fit``.

        Returns
        -------
        self : ModuliRegularizer
            A first call on an unfitted regulariser runs ``fit``.
        """
        if not hasattr(self, "estimator_"):
            return self.fit(X, y, **fit_params)
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
        sparsity = self.neuron_graph().sparsity(self.prune_scope)["overall"]
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
        self.masks_ = {name: mask.cpu().numpy() for name, mask in graph.masks().items()}
        self.sparsity_ = graph.sparsity(self.prune_scope)

    def __sklearn_is_fitted__(self):
        return hasattr(self, "estimator_") and hasattr(self, "masks_")
