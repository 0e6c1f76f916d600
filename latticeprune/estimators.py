"""skorch estimators for sequences: :class:`SequenceNet`, the base of every sequence estimator
(also :class:`~latticeprune.tasks.PathIntegrator` and :class:`~latticeprune.tasks.LanguageModel`),
and :class:`RNNClassifier`, :class:`RNNRegressor`, which read ``X`` as ``(n_samples, n_steps,
n_features)`` or, after 2-D transformers, ``(n_samples, n_steps * n_features)`` with
``input_size=n_features``.
"""

import contextlib
import inspect
import numbers
from collections.abc import Mapping

import numpy as np
import torch
from skorch import NeuralNet, NeuralNetClassifier, NeuralNetRegressor
from skorch.callbacks import GradientNormClipping
from skorch.dataset import get_len
from skorch.utils import to_device, to_numpy, to_tensor
from sklearn.base import BaseEstimator, ClassNamePrefixFeaturesOutMixin, TransformerMixin
from sklearn.metrics import accuracy_score, r2_score
from sklearn.preprocessing import LabelEncoder
from sklearn.utils._param_validation import Interval, Options, StrOptions, validate_parameter_constraints
from sklearn.utils.class_weight import compute_sample_weight
from sklearn.utils.metaestimators import available_if
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import (check_array, check_consistent_length, check_is_fitted,
                                      check_non_negative, column_or_1d, validate_data)
from torch.utils.data import Dataset

from .autosize import auto_batch_size, training_epochs
from .callbacks import DivergenceGuard
from .nets import CELLS, RecurrentNet
from .neuron_graph import NeuronGraph
from .sequences import (PaddedSequences, check_padded, check_step_targets, is_ragged, pad_steps,
                        sequence_array, step_mask, unpad)
from .top_down_kernel import frozen_weights
from .utils import torch_compute, torch_seed

__all__ = ["SequenceNet", "RNNClassifier", "RNNRegressor"]

_POSITIVE_INT = Interval(numbers.Integral, 1, None, closed="left")

#: Arguments of ``skorch.NeuralNet.__init__`` that every sequence estimator names explicitly.
_SKORCH_ARGS = ("module", "criterion", "optimizer", "lr", "max_epochs", "batch_size",
                "train_split", "device", "verbose", "iterator_train__shuffle")


def _with_skorch_defaults(init, skorch_class):
    """``init``'s signature extended by the keyword parameters (and defaults) that the skorch
    class accepts through ``**kwargs``, so that sklearn's repr (``print_changed_only``), HTML
    repr and checks see skorch's defaults as defaults."""
    own = inspect.signature(init).parameters
    inherited = {}
    for base in reversed(skorch_class.__mro__):
        if "__init__" in vars(base) and issubclass(base, NeuralNet):
            inherited.update(inspect.signature(base.__init__).parameters)
    extra = [param.replace(kind=param.KEYWORD_ONLY) for name, param in inherited.items()
             if name not in own and param.default is not param.empty]
    plain = [param for param in own.values() if param.kind is not param.VAR_KEYWORD]
    return inspect.Signature(plain + extra + [own["kwargs"]])


def _net_input(X, sample_weight=None):
    """Validated ``X`` as skorch's dataset holds it: the array, or for variable lengths
    (:class:`~latticeprune.sequences.PaddedSequences`) or weights a dict ``{"x", "lengths",
    "sample_weight"}`` (those that apply)."""
    if isinstance(X, PaddedSequences):
        X = {"x": X.data, "lengths": X.lengths}
    elif sample_weight is not None:
        X = {"x": X}
    if sample_weight is not None:
        X["sample_weight"] = sample_weight
    return X


def _module_args(batch):
    """``(x, kwargs)`` of the module call for a batch of :func:`_net_input`: ``kwargs`` holds
    ``lengths`` for variable-length sequences, whose padding is cut to the batch's longest."""
    if not isinstance(batch, Mapping):
        return batch, {}
    x, lengths = batch["x"], batch.get("lengths")
    if lengths is None:
        return x, {}
    return x[:, :int(lengths.max())], {"lengths": lengths}


def _valid_steps(X):
    """``(n_samples, n_steps)`` mask of the steps of validated ``X`` before each sequence's end."""
    if isinstance(X, PaddedSequences):
        return step_mask(X.lengths, X.shape[1])
    return np.ones(X.shape[:2], dtype=bool)


def _step_weights(sample_weight, mask):
    """Weights of the True steps of ``mask``: per-sample weights (a sample's on each of its
    steps) or per-step weights ``(n_samples, n_steps)``; None stays None."""
    if sample_weight is None:
        return None
    if sample_weight.ndim == 1:
        sample_weight = sample_weight[:, None]
    return np.broadcast_to(sample_weight, mask.shape)[mask]


def _target_rows(X, y, sample_weight):
    """``(rows, weights)``: the targets ``(n_rows, n_targets)`` of validated ``X``, one row per
    sample, or for per-step ``y`` ``(n_samples, n_steps, n_targets)`` one per valid step."""
    if y.ndim == 2:
        return y, sample_weight
    mask = _valid_steps(X)
    return y[mask], _step_weights(sample_weight, mask)


def _loss_steps(y_pred, y_true, weight, lengths):
    """Per-step outputs ``(batch, steps, ...)``, targets and weights (per sample or per step)
    reduced to the steps before each end, one row per step: the loss counts only those."""
    y_true = to_tensor(y_true, device=y_pred.device)[:, :y_pred.shape[1]]
    if lengths is None:
        mask = torch.ones(y_pred.shape[:2], dtype=torch.bool, device=y_pred.device)
    else:
        mask = step_mask(to_tensor(lengths, device=y_pred.device), y_pred.shape[1])
    if weight is not None:
        weight = to_tensor(weight, device=y_pred.device)
        weight = (weight[:, :y_pred.shape[1]] if weight.dim() == 2
                  else weight[:, None].expand(mask.shape))[mask]
    return y_pred[mask], y_true[mask], weight


class SequenceNet(ClassNamePrefixFeaturesOutMixin, TransformerMixin):
    """Base of the sequence estimators, mixed in before a skorch ``NeuralNet`` class.

    A subclass lists its parameters in ``__init__`` (``self._init_params(locals())``) and
    ``_parameter_constraints``, and provides ``_check_X(X, reset)``, ``_check_y(X, y, reset)``
    (``reset=True`` in ``fit`` records ``n_features_in_`` and what else the data fixes),
    ``_net_class``, ``_module_kwargs()`` and optionally ``_init_from_targets(X, y,
    sample_weight)``. A subclass with a ``sequence_output`` parameter gets per-step targets of
    variable-length sequences: the loss counts the steps before each end only, and per-step
    outputs come back one array per sequence (a 1-D object array). It gets
    ``fit`` / ``partial_fit`` (parameters checked once; seeded, ``n_threads`` threads;
    ``sample_weight`` weighs each sample's loss), a ``DivergenceGuard`` and (with
    ``max_grad_norm``) gradient clipping as default callbacks, :meth:`check_sequences`,
    :meth:`transform` (``last`` of ``module_.encode(x)``), ``fit_transform``, feature names and
    ``set_output`` (sklearn's ``TransformerMixin``), and sklearn's repr of changed parameters.
    skorch's own ``Dataset`` inputs (its validation split, scoring callbacks) pass unchecked.
    """

    _parameter_constraints = {
        "hidden_size": [_POSITIVE_INT],
        "cell": [StrOptions(set(CELLS))],
        "random_state": ["random_state"],
        "n_threads": [_POSITIVE_INT, None],
        "max_epochs": [Interval(numbers.Integral, 0, None, closed="left"), StrOptions({"auto"})],
        "batch_size": [_POSITIVE_INT, Options(numbers.Integral, {-1}), StrOptions({"auto"})],
        "lr": [Interval(numbers.Real, 0, None, closed="neither")],
    }
    _net_class = None

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        skorch_class = next((base for base in cls.__mro__ if issubclass(base, NeuralNet)
                             and not issubclass(base, SequenceNet)), None)
        if "__init__" in vars(cls) and skorch_class is not None:
            cls.__init__.__signature__ = _with_skorch_defaults(cls.__init__, skorch_class)

    def _init_params(self, args):
        """Store the subclass's own parameters unchanged; pass skorch's on to the net class."""
        args = {key: value for key, value in args.items() if key != "self"}
        kwargs = args.pop("kwargs")
        skorch_args = {key: args.pop(key) for key in _SKORCH_ARGS}
        for key, value in args.items():
            setattr(self, key, value)
        super().__init__(**skorch_args, **kwargs)

    # -- sklearn conventions -----------------------------------------------------------------
    def _get_param_names(self):
        # skorch lists every attribute not ending in "_", its private bookkeeping included.
        return [name for name in super()._get_param_names() if not name.startswith("_")]

    __repr__ = BaseEstimator.__repr__

    def _get_params_html(self, deep=True, doc_link=""):
        # skorch's deep parameters hold every callback's; the notebook shows the net's own.
        return super()._get_params_html(False, doc_link)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.three_d_array = True
        tags.target_tags.required = True
        tags.transformer_tags.preserves_dtype = ["float32"]
        return tags

    @property
    def _n_features_out(self):
        """Columns of :meth:`transform` (``get_feature_names_out``): the top layer's units."""
        check_is_fitted(self)
        if getattr(self.module_, "prediction_only", False):  # to_inference's copy: no layers
            return int(self.module_.n_features_out)
        return NeuronGraph(self.module_).layers[-1].size

    # -- checks ------------------------------------------------------------------------------
    def _check_params(self):
        """Check ``_parameter_constraints``; subclasses add checks involving two parameters."""
        params = {key: getattr(self, key) for key in self._parameter_constraints}
        validate_parameter_constraints(self._parameter_constraints, params,
                                       caller_name=type(self).__name__)

    def __sklearn_is_fitted__(self):
        return bool(getattr(self, "initialized_", False)) and hasattr(self, "n_features_in_")

    def check_sequences(self, X):
        """``X`` validated for the fitted estimator (``NotFittedError`` before ``fit``,
        ``ValueError`` naming the problem), in the layout its module reads (for variable-length
        sequences a dict ``{"x": padded, "lengths": lengths}``). A torch ``Dataset`` (skorch's
        validation split) is returned as it is."""
        check_is_fitted(self)
        return X if isinstance(X, Dataset) else _net_input(self._check_X(X, reset=False))

    def _check_finite_output(self, out, what):
        values = np.concatenate(out) if out.dtype == object else out
        if not np.all(np.isfinite(values)):
            raise ValueError(f"The net produced non-finite {what} for this X (inputs far outside "
                             "the range seen in fit overflow the recurrent state).")
        return out

    def _sample_weight(self, X, y, sample_weight):
        """Per-sample loss weights, or None for equal weights (the classifier adds
        ``class_weight``)."""
        if sample_weight is None:
            return None
        sample_weight = check_array(sample_weight, ensure_2d=False, dtype=np.float32,
                                    input_name="sample_weight")
        if sample_weight.ndim != 1:
            raise ValueError(f"sample_weight must be 1-D, one weight per sample (n_samples,); "
                             f"got shape {sample_weight.shape}.")
        check_consistent_length(X, sample_weight)
        check_non_negative(sample_weight, "sample_weight")
        if not sample_weight.any():
            raise ValueError("Sample weights must contain at least one non-zero number.")
        return sample_weight

    # -- skorch hooks ------------------------------------------------------------------------
    @property
    def _default_callbacks(self):
        callbacks = super()._default_callbacks + [("divergence_guard", DivergenceGuard())]
        if getattr(self, "max_grad_norm", None) is not None:
            callbacks.append(("gradient_clipping",
                              GradientNormClipping(gradient_clip_value=self.max_grad_norm)))
        return callbacks

    def fit_loop(self, X, y=None, epochs=None, **fit_params):
        """skorch's training loop; ``max_epochs="auto"`` resolved for ``X``
        (:func:`~latticeprune.autosize.training_epochs`)."""
        if epochs is None:
            epochs = training_epochs(self, get_len(X))
        return super().fit_loop(X, y, epochs=epochs, **fit_params)

    def get_iterator(self, dataset, training=False):
        """skorch's batches; ``batch_size="auto"`` resolved for the dataset
        (:func:`~latticeprune.autosize.auto_batch_size`)."""
        if self.batch_size == "auto":
            n_samples = len(dataset)
            with _batch_size(self, auto_batch_size(n_samples)):
                return super().get_iterator(dataset, training=training)
        return super().get_iterator(dataset, training=training)

    def initialize_module(self):
        """Build ``module_``; an instance of ``_net_class`` gets its sizes from the data and the
        plain parameters (``module__*`` parameters override them)."""
        kwargs = self.get_params_for("module")
        if isinstance(self.module, type) and issubclass(self.module, self._net_class):
            kwargs = {**self._module_kwargs(), **kwargs}
        self.module_ = self.initialized_instance(self.module, kwargs)
        return self

    def infer(self, x, **fit_params):
        """skorch's ``infer``; a batch ``{"x", "lengths", "sample_weight"}`` feeds ``x`` (and
        ``lengths=``) to the module."""
        x, kwargs = _module_args(x)
        return super().infer(x, **kwargs, **fit_params)

    def get_loss(self, y_pred, y_true, X=None, training=False):
        """skorch's loss; for a weighted batch, the mean of ``weight * loss`` per sample (the
        criterion's elements averaged within each sample), as in skorch's FAQ. Per-step
        outputs of variable-length sequences (and per-step labels, whose outputs have a class
        axis more than ``y``) count each step before a sequence's end as one sample, with its
        sequence's weight (or its own, for per-step weights); padding never contributes."""
        batch = X if isinstance(X, Mapping) else {}
        weight, lengths = batch.get("sample_weight"), batch.get("lengths")
        if getattr(self, "sequence_output", False) and (
                lengths is not None or y_pred.dim() > np.ndim(y_true)):
            y_pred, y_true, weight = _loss_steps(y_pred, y_true, weight, lengths)
        if weight is None:
            return super().get_loss(y_pred, y_true, X=X, training=training)
        reduction, self.criterion_.reduction = self.criterion_.reduction, "none"
        try:
            loss = super().get_loss(y_pred, y_true, X=X, training=training)
        finally:
            self.criterion_.reduction = reduction
        weight = to_tensor(weight, device=loss.device).to(loss.dtype)
        return (weight * loss.reshape(len(weight), -1).mean(dim=1)).mean()

    # -- training ----------------------------------------------------------------------------
    def fit(self, X, y=None, sample_weight=None, **fit_params):
        """Fit the net on ``X`` and ``y`` (re-initialising it unless ``warm_start``), each
        sample's loss weighted by ``sample_weight`` (default: equal); ``self``."""
        return self._fit(X, y, sample_weight, fit_params)

    def _fit(self, X, y, sample_weight, fit_params, **y_kwargs):
        self._check_params()
        if y is None:
            raise ValueError(f"This {type(self).__name__} estimator requires y to be passed, "
                             "but the target y is None.")
        X = self._check_X(X, reset=True)
        y = self._check_y(X, y, reset=True, **y_kwargs)
        weight = self._sample_weight(X, y, sample_weight)
        with torch_seed(self.random_state), torch_compute(self.n_threads):
            if not self.warm_start or not self.initialized_:
                self.initialize()
                self._init_from_targets(X, y, weight)
            super().partial_fit(self._fit_input(X, weight), y, **fit_params)
        return self

    def _fit_input(self, X, sample_weight):
        """:func:`_net_input`; ``ValueError`` for variable-length ``X`` and a module whose
        ``forward`` takes no ``lengths``."""
        if isinstance(X, PaddedSequences) and "lengths" not in inspect.signature(
                self.module_.forward).parameters:
            raise ValueError(f"X holds sequences of different lengths, but the module "
                             f"{type(self.module_).__name__} has no forward(x, lengths) to "
                             "read them; pad them to one length or use RecurrentNet.")
        return _net_input(X, sample_weight)

    def _init_from_targets(self, X, y, sample_weight):
        """Hook run once after initialisation (e.g. to start a read-out bias from ``y`` of the
        validated ``X``, weighted by ``sample_weight``, None for equal weights)."""

    def partial_fit(self, X, y=None, sample_weight=None, **fit_params):
        """Train a fitted net further (``epochs=k`` trains k epochs); unfitted: ``fit``."""
        if not self.__sklearn_is_fitted__():
            return self._fit(X, y, sample_weight, fit_params)
        X = self._check_X(X, reset=False)
        y = self._check_y(X, y, reset=False)
        weight = self._sample_weight(X, y, sample_weight)
        with torch_compute(self.n_threads):
            super().partial_fit(self._fit_input(X, weight), y, **fit_params)
        return self

    def on_train_end(self, net, X=None, y=None, **kwargs):
        """Leave the fitted modules in evaluation mode, the mode every prediction uses: so
        predicting changes nothing in a fitted estimator (aeon's and sklearn's checks)."""
        super().on_train_end(net, X=X, y=y, **kwargs)
        self._set_training(False)  # skorch's switch over its modules and criteria

    # -- outputs -----------------------------------------------------------------------------
    @contextlib.contextmanager
    def _predicting(self):
        """The scope of a prediction over batches: ``n_threads`` threads, and the module's
        weights held fixed (:func:`~latticeprune.top_down_kernel.frozen_weights`: a top-down LSTM
        net prepares its kernel's weights once)."""
        with torch_compute(self.n_threads), frozen_weights():
            yield

    def _outputs(self, X, what="outputs"):
        """The module's outputs for ``X``, finite: a numpy array, or per-step outputs of
        variable-length sequences as a 1-D object array of ``(n_steps_i, n_outputs)`` arrays."""
        X = self.check_sequences(X)
        with self._predicting():
            out = (self._sequence_outputs(X) if self._per_sequence(X)
                   else to_numpy(self.forward(X, training=False)))
        return self._check_finite_output(out, what)

    def _per_sequence(self, X):
        """Whether the outputs for ``check_sequences(X)`` come back one array per sequence:
        per-step outputs (``sequence_output``) of sequences of different lengths."""
        return (getattr(self, "sequence_output", False) and isinstance(X, Mapping)
                and X.get("lengths") is not None)

    def _sequence_outputs(self, X, nonlinearity=None):
        """Per-step outputs (through ``nonlinearity``) of ``check_sequences(X)``, each sequence's
        cut at its end: a 1-D object array of ``(n_steps_i, n_outputs)`` arrays."""
        pieces, start = [], 0
        for out in self.forward_iter(X, training=False):
            out = to_numpy(out if nonlinearity is None else nonlinearity(out))
            pieces.append(unpad(out, X["lengths"][start:start + len(out)]))
            start += len(out)
        return np.concatenate(pieces)

    def _score_steps(self, X, y, sample_weight, metric, prediction):
        """``metric(targets, prediction(outputs), sample_weight=...)`` over every step before a
        sequence's end of per-step ``y`` (one row per step, each step with its sequence's
        weight)."""
        X = self._check_X(X, reset=False)
        y = self._check_y(X, y, reset=False)
        mask = _valid_steps(X)
        out = self._outputs(X)
        out = np.concatenate(out) if out.dtype == object else out[mask]
        if sample_weight is not None:  # the base's check: no class weights in a score
            sample_weight = SequenceNet._sample_weight(self, X, y, sample_weight)
        return float(metric(y[mask], prediction(out),
                            sample_weight=_step_weights(sample_weight, mask)))

    def _map_batches(self, compute, X, y=None):
        """``[compute(Xi, yi) ...]`` over the batches of validated ``X`` (and ``y``), with the
        module in evaluation mode, no gradients and ``n_threads`` threads."""
        self.module_.train(False)
        with torch.no_grad(), self._predicting():
            return [compute(to_device(Xi, self.device), yi)
                    for Xi, yi in self.get_iterator(self.get_dataset(X, y), training=False)]

    def to_inference(self, engine="auto", batch_size=None):
        """A prediction copy of this fitted estimator whose ``module_`` is a
        :class:`~latticeprune.inference.FastRecurrentNet` (dead units compacted away, CSR
        where sparsity pays); it predicts as this estimator. See
        :func:`~latticeprune.inference.to_inference`; NotFittedError before fit."""
        check_is_fitted(self)
        from .inference import to_inference  # deferred: loaded only when used

        return to_inference(self, engine=engine, batch_size=batch_size)

    def transform(self, X):
        """Final hidden state of the top recurrent layer, ``(n_samples, hidden_size)``, for
        sequences ``X`` as in ``fit``."""
        X = self.check_sequences(X)
        encode = getattr(self.module_, "encode", None)
        if encode is None:
            raise TypeError(f"transform needs a module with an encode(x) method; "
                            f"{type(self.module_).__name__} has none.")

        def last_state(batch, _):
            x, kwargs = _module_args(batch)
            return to_numpy(encode(x, **kwargs)[1])

        hidden = self._map_batches(last_state, X)
        return self._check_finite_output(np.concatenate(hidden), "hidden states")


@contextlib.contextmanager
def _batch_size(net, size):
    """``net.batch_size`` set to ``size`` for skorch's iterator, restored afterwards."""
    vars(net)["batch_size"], saved = size, net.batch_size
    try:
        yield
    finally:
        vars(net)["batch_size"] = saved


class _RecurrentEstimator(SequenceNet):
    """What the two :class:`RecurrentNet` estimators add: sequence input and the stacked net."""

    _parameter_constraints = {
        **SequenceNet._parameter_constraints,
        "hidden_size": [_POSITIVE_INT, "array-like"],  # one size per layer
        "num_layers": [_POSITIVE_INT],
        "top_down": ["boolean"],
        "input_size": [_POSITIVE_INT, None],
        "max_grad_norm": [Interval(numbers.Real, 0, None, closed="neither"), None],
    }
    _net_class = RecurrentNet

    def _check_params(self):
        super()._check_params()
        if self.top_down and self.num_layers < 2:
            raise ValueError("top_down=True needs num_layers >= 2 (a single layer has nothing "
                             f"above it to feed back); got num_layers={self.num_layers}.")

    def _check_X(self, X, reset):
        """Validate X and return it as a float32 array of shape (n_samples, n_steps, n_features),
        or for sequences of different lengths as :class:`~latticeprune.sequences.PaddedSequences`.

        2-D X goes through sklearn's ``validate_data`` (``n_features_in_``, ``feature_names_in_``
        and their messages); 3-D X may change its length, not its features per step. A list
        (or object array) of 2-D arrays, ``PaddedSequences`` or 3-D X padded with NaN after
        each end go through :func:`~latticeprune.sequences.check_padded`; ``n_steps_`` is then
        the longest sequence."""
        X = X.detach().cpu().numpy() if isinstance(X, torch.Tensor) else X
        raw, lengths = X, None
        if is_ragged(X) or (isinstance(X, np.ndarray) and X.ndim == 3):
            X, lengths = check_padded(X)
        else:
            X = check_array(X, dtype=np.float32, allow_nd=True, ensure_all_finite=True,
                            ensure_min_samples=1, order="C", input_name="X")
        if X.ndim not in (2, 3):
            raise ValueError(
                f"X must be 2-D (n_samples, n_steps * n_features) or 3-D (n_samples, n_steps, "
                f"n_features); got an array with {X.ndim} dimensions, shape {X.shape}.")
        if 0 in X.shape:
            raise ValueError(f"X has an empty dimension: shape {X.shape}.")
        n_features = (self.input_size if reset else self.input_size_)
        if X.ndim == 3:
            if n_features is not None and X.shape[2] != n_features:
                if reset:
                    raise ValueError(f"X has {X.shape[2]} features per step but input_size is "
                                     f"{n_features}.")
                raise ValueError(f"X has {X.shape[2]} features per step, but "
                                 f"{type(self).__name__} is expecting {n_features} features "
                                 "per step as input.")
            if reset:
                vars(self).pop("feature_names_in_", None)
                self.n_features_in_ = X.shape[1] * X.shape[2]
        else:
            if not reset and n_features > 1 and X.shape[1] == n_features != self.n_features_in_:
                raise ValueError(
                    f"X has shape {X.shape}: one sequence of {X.shape[0]} steps x "
                    f"{X.shape[1]} features? {type(self).__name__} takes a batch of "
                    f"sequences: pass X[np.newaxis] or [X] for one; 2-D X is (n_samples, "
                    f"n_steps * n_features), here (n_samples, {self.n_features_in_}).")
            validate_data(self, raw, reset=reset, skip_check_array=True)
            n_features = 1 if n_features is None else n_features
            if X.shape[1] % n_features:
                raise ValueError(
                    f"X has {X.shape[1]} columns, which is not a multiple of input_size="
                    f"{n_features}: 2-D X must be (n_samples, n_steps * input_size).")
            X = X.reshape(X.shape[0], X.shape[1] // n_features, n_features)
        if reset:
            self.input_size_ = X.shape[2]
            self.n_steps_ = X.shape[1]
        return X if lengths is None else PaddedSequences(X, lengths)

    def _module_kwargs(self):
        return {"input_size": self.input_size_, "output_size": self._n_outputs(),
                "sequence_output": getattr(self, "sequence_output", False),
                "hidden_size": self.hidden_size, "num_layers": self.num_layers,
                "cell": self.cell, "top_down": self.top_down}


_DOC_COMMON = """
    hidden_size : int or sequence of int, default=64
        Units per recurrent layer, or one size per layer.
    num_layers : int, default=1
        Stacked recurrent layers.
    cell : {"rnn_tanh", "rnn_relu", "lstm", "gru"}, default="lstm"
        Recurrent cell (Elman with tanh or ReLU, LSTM, GRU).
    top_down : bool, default=False
        Hierarchical net: layer ``l + 1`` feeds back into layer ``l`` at the next step
        (needs ``num_layers >= 2``).
    input_size : int or None, default=None
        Features per time step. Needed for 2-D ``X`` of shape ``(n_samples, n_steps * n_features)``;
        with 2-D ``X`` and ``None`` every column is one time step with one feature.
    random_state : int, RandomState or None, default=None
        Seeds weight initialisation and batch shuffling (torch's generator is restored
        afterwards). Same value, same fitted net.
    n_threads : int or None, default=1
        Torch intra-op threads during ``fit``, ``partial_fit`` and prediction; a fixed count
        gives the same net on every machine and worker. None: torch's process-wide setting.
        During those calls the calling thread also flushes denormal floats to zero
        (:func:`~latticeprune.utils.flush_denormals`), as torch's fused oneDNN kernels do.
    module : torch.nn.Module class, default=RecurrentNet
        Any module works; the plain size parameters above are passed only to ``RecurrentNet``.
    iterator_train__shuffle : bool, default=True
        Shuffle the training batches every epoch (seeded by ``random_state``).
    max_grad_norm : float or None, default=1.0
        Clip the gradients' norm to this before every optimiser step (skorch's
        ``GradientNormClipping``, the callback ``"gradient_clipping"``); None: no clipping.
    max_epochs : int or "auto", default="auto"
        Training epochs. ``"auto"``: :func:`~latticeprune.autosize.auto_epochs` for the
        samples given to ``fit``, about 3,000 optimiser steps within 20 to 150 epochs (150 on a
        set of a few hundred sequences, 24 on 8,000, 20 from 9,600 on at batch 64).
    batch_size : int, -1 or "auto", default="auto"
        Samples per batch; -1: all of them. ``"auto"``:
        :func:`~latticeprune.autosize.auto_batch_size`, a sixteenth of the samples within 16
        to 64.
    lr, optimizer, device, train_split, verbose, callbacks, **kwargs
        As in skorch. The defaults (Adam at ``lr``, clipping, the automatic batch size and
        epochs) train small and large sets alike; ``train_split=None`` uses all of X for
        training (add skorch's ``ValidSplit`` and ``EarlyStopping`` for early stopping).
"""

_DOC_RAGGED_STEPS = """
        For sequences of different lengths, ``y`` is a list (or 1-D object array) of arrays,
        one per sequence and as long as it, or an array padded after each end (with NaN or
        anything else: entries after a sequence's end are ignored). The loss and ``score``
        count only the steps before each end, each with its sequence's ``sample_weight``;
        per-step results come back one array per sequence, as a 1-D object array (sklearn
        indexes it and ``cross_val_predict`` concatenates it; for other metrics concatenate
        the sequences, ``np.concatenate``). ``transform`` stays the state at each end,
        ``(n_samples, hidden_size)``."""


class RNNClassifier(_RecurrentEstimator, NeuralNetClassifier):
    __doc__ = """Recurrent sequence classifier, a skorch
    :class:`~skorch.classifier.NeuralNetClassifier`.

    Parameters
    ----------""" + _DOC_COMMON + """    class_weight : dict, "balanced" or None, default=None
        Weights of the classes in the loss, as in sklearn's classifiers (``{label: weight}``;
        ``"balanced"``: ``n_samples / (n_classes * counts)``), multiplying ``sample_weight``.
        With ``sequence_output``, per step (``"balanced"`` counts every step's label).
    sequence_output : bool, default=False
        Predict a label per time step: ``y`` of shape ``(n_samples, n_steps)``, ``predict``
        likewise, ``predict_proba`` ``(n_samples, n_steps, n_classes)``, ``score`` the
        accuracy over every step, ``class_weight`` per step.""" + _DOC_RAGGED_STEPS + """

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
        Class labels (any type ``LabelEncoder`` accepts).
    input_size_, n_steps_, n_features_in_ : int
        Features per step, steps and columns of the 2-D view seen in ``fit``.
    feature_names_in_ : ndarray of str
        Column names of a 2-D ``X`` given as a DataFrame with string column names.
    module_ : torch.nn.Module
        The fitted network.

    Examples
    --------
    >>> from latticeprune import RNNClassifier
    >>> from latticeprune.datasets import load_digits_sequences
    >>> X, y = load_digits_sequences(return_X_y=True)
    >>> clf = RNNClassifier(hidden_size=32, max_epochs=2, random_state=0).fit(X[:200], y[:200])
    >>> clf.predict(X[:3]).shape
    (3,)
    """

    _parameter_constraints = {**_RecurrentEstimator._parameter_constraints,
                              "class_weight": [StrOptions({"balanced"}), dict, None],
                              "sequence_output": ["boolean"]}

    def __init__(self, module=RecurrentNet, *, hidden_size=64, num_layers=1, cell="lstm",
                 top_down=False, input_size=None, class_weight=None, sequence_output=False,
                 max_grad_norm=1.0, random_state=None, n_threads=1,
                 criterion=torch.nn.CrossEntropyLoss, optimizer=torch.optim.Adam, lr=0.003,
                 max_epochs="auto", batch_size="auto",
                 iterator_train__shuffle=True, train_split=None, device="cpu", verbose=0,
                 **kwargs):
        self._init_params(locals())

    @property
    def classes_(self):
        try:
            return self.label_encoder_.classes_
        except AttributeError:
            raise AttributeError(f"{type(self).__name__} has no attribute 'classes_' before "
                                 "fit.") from None

    def _n_outputs(self):
        return len(self.classes_)

    def _check_y(self, X, y, reset, classes=None):
        """Labels encoded as 0 .. n_classes - 1 (with ``sequence_output``, ``(n_samples,
        n_steps)``, zeros after each end); ``reset`` fixes ``classes_`` from ``classes``
        (``partial_fit``), the ``classes`` parameter (skorch's) or ``y``."""
        y = y.detach().cpu().numpy() if isinstance(y, torch.Tensor) else y
        check_consistent_length(X, y)
        if not self.sequence_output:
            return self._encode(column_or_1d(y, warn=True), reset, classes)
        lengths = X.lengths if isinstance(X, PaddedSequences) else None
        labels, ndim = check_step_targets(y, lengths, X.shape[1])
        if ndim != 2:
            raise ValueError(f"With sequence_output=True, y holds one label per step: "
                             f"(n_samples, n_steps) or one 1-D array per sequence; got "
                             f"{labels.shape[1:]} per step.")
        return pad_steps(self._encode(labels, reset, classes), _valid_steps(X))

    def _encode(self, y, reset, classes):
        if reset:
            check_classification_targets(y)
            classes = self.classes if classes is None else classes
            try:
                self.label_encoder_ = LabelEncoder().fit(y if classes is None else classes)
            except TypeError as exc:
                raise ValueError(f"y mixes label types that cannot be ordered: {exc}") from None
            if len(self.classes_) < 2:
                raise ValueError(f"y has a single class, 1 class ({self.classes_[0]!r}); a "
                                 "classifier needs at least two classes.")
        unknown = np.setdiff1d(y, self.classes_)
        if unknown.size:
            raise ValueError(f"y contains labels not in classes_ {self.classes_.tolist()[:10]}: "
                             f"{unknown[:5].tolist()}.")
        return self.label_encoder_.transform(y).astype(np.int64)

    def _sample_weight(self, X, y, sample_weight):
        weight = super()._sample_weight(X, y, sample_weight)
        if self.class_weight is None:
            return weight
        if y.ndim == 1:
            class_weight = compute_sample_weight(self.class_weight, self.classes_[y])
            return class_weight.astype(np.float32) * (1 if weight is None else weight)
        mask = _valid_steps(X)  # per step: (n_samples, n_steps), zero after each end
        class_weight = pad_steps(compute_sample_weight(self.class_weight, self.classes_[y[mask]])
                                 .astype(np.float32), mask)
        return class_weight * (1 if weight is None else weight[:, None])

    def partial_fit(self, X, y=None, classes=None, sample_weight=None, **fit_params):
        """As ``SequenceNet.partial_fit``; ``classes`` (on the first call) lists every label
        later chunks may hold, as in sklearn's incremental classifiers."""
        if classes is not None:
            if not self.__sklearn_is_fitted__():
                return self._fit(X, y, sample_weight, fit_params, classes=classes)
            if not np.array_equal(np.unique(classes), self.classes_):
                raise ValueError(f"classes={np.unique(classes).tolist()} is not the same as "
                                 f"classes_={self.classes_.tolist()} of the fitted net.")
        return super().partial_fit(X, y, sample_weight=sample_weight, **fit_params)

    def predict_proba(self, X):
        """Class probabilities, columns (last axis) in the order of ``classes_``; per-step
        probabilities of sequences of different lengths one ``(n_steps_i, n_classes)`` array
        per sequence."""
        X = self.check_sequences(X)
        with self._predicting():
            proba = (self._sequence_outputs(X, self._get_predict_nonlinearity())
                     if self._per_sequence(X) else super().predict_proba(X))
        return self._check_finite_output(proba, "probabilities")

    def decision_function(self, X):
        """Logits ``(n_samples, n_classes)``; for two classes the log-odds of ``classes_[1]``,
        ``(n_samples,)``, as sklearn's binary classifiers (per step with ``sequence_output``;
        one array per sequence for sequences of different lengths)."""
        logits = self._outputs(X)
        if logits.dtype == object:
            return sequence_array([self._decision(step) for step in logits])
        return self._decision(logits)

    def _decision(self, logits):
        return logits[..., 1] - logits[..., 0] if logits.shape[-1] == 2 else logits

    def predict(self, X):
        """Predicted class labels (for skorch's own ``Dataset`` inputs, their encoded
        indices, which is how its validation scoring holds ``y``); per step with
        ``sequence_output``, one array per sequence for sequences of different lengths."""
        proba = self.predict_proba(X)
        labels = (lambda p: p.argmax(axis=-1)) if isinstance(X, Dataset) else (
            lambda p: self.classes_[p.argmax(axis=-1)])
        if proba.dtype == object:
            return sequence_array([labels(p) for p in proba])
        return labels(proba)

    def score(self, X, y, sample_weight=None):
        """Accuracy of ``predict(X)``; with ``sequence_output``, over every step (before each
        end), each step weighted by its sequence's ``sample_weight``."""
        if not self.sequence_output:
            return super().score(X, y, sample_weight=sample_weight)
        return self._score_steps(X, y, sample_weight, accuracy_score,
                                 lambda logits: logits.argmax(axis=-1))


class RNNRegressor(_RecurrentEstimator, NeuralNetRegressor):
    __doc__ = """Recurrent sequence regressor, a skorch
    :class:`~skorch.regressor.NeuralNetRegressor`.

    Parameters
    ----------""" + _DOC_COMMON + """
    sequence_output : bool, default=False
        Predict a target per time step: ``y`` of shape ``(n_samples, n_steps)`` or
        ``(n_samples, n_steps, n_targets)``, ``predict`` likewise, ``score`` the R^2 (see
        :meth:`score`).""" + _DOC_RAGGED_STEPS + """

    Attributes
    ----------
    n_outputs_ : int
        Targets per sample (per step with ``sequence_output=True``).
    input_size_, n_steps_, n_features_in_ : int
        Features per step, steps and columns of the 2-D view seen in ``fit``.

    Examples
    --------
    >>> from latticeprune import RNNRegressor
    >>> from latticeprune.datasets import make_adding_problem
    >>> X, y = make_adding_problem(200, 10, random_state=0)
    >>> reg = RNNRegressor(cell="rnn_tanh", hidden_size=16, max_epochs=2, random_state=0).fit(X, y)
    >>> reg.predict(X[:3]).shape
    (3,)
    """

    _parameter_constraints = {**_RecurrentEstimator._parameter_constraints,
                              "sequence_output": ["boolean"]}

    def __init__(self, module=RecurrentNet, *, hidden_size=64, num_layers=1, cell="lstm",
                 top_down=False, input_size=None, sequence_output=False, random_state=None,
                 max_grad_norm=1.0, n_threads=1, criterion=torch.nn.MSELoss,
                 optimizer=torch.optim.Adam, lr=0.005, max_epochs="auto", batch_size="auto",
                 iterator_train__shuffle=True, train_split=None,
                 device="cpu", verbose=0, **kwargs):
        self._init_params(locals())

    def _n_outputs(self):
        return self.n_outputs_

    def _init_from_targets(self, X, y, sample_weight):
        # Start the read-out bias at the mean target (Adam's bounded steps would move it slowly).
        readout = getattr(self.module_, "readout", None)
        if isinstance(readout, torch.nn.Linear) and readout.bias is not None:
            rows, weights = _target_rows(X, y, sample_weight)
            mean = np.average(rows, axis=0, weights=weights)
            with torch.no_grad():
                readout.bias.copy_(torch.as_tensor(mean, dtype=readout.bias.dtype))

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        return tags

    def _check_y(self, X, y, reset):
        """Targets as float32 ``(n_samples, n_targets)``, or with ``sequence_output``
        ``(n_samples, n_steps, n_targets)`` (zeros after each end)."""
        y = y.detach().cpu().numpy() if isinstance(y, torch.Tensor) else y
        check_consistent_length(X, y)
        if self.sequence_output:
            lengths = X.lengths if isinstance(X, PaddedSequences) else None
            values, ndim = check_step_targets(y, lengths, X.shape[1])
            values = check_array(values, dtype=np.float32, ensure_2d=False,
                                 ensure_all_finite=True, input_name="y")
            y = pad_steps(values.reshape(len(values), -1), _valid_steps(X))
            if reset:
                self._y_ndim = ndim
        else:
            y = check_array(y, dtype=np.float32, ensure_2d=False, allow_nd=True,
                            ensure_all_finite=True, input_name="y")
            if reset:
                self._y_ndim = y.ndim
            if y.ndim > 2:
                raise ValueError(f"y has shape {y.shape}; for per-step targets set "
                                 "sequence_output=True.")
            y = y.reshape(y.shape[0], -1)
        if reset:
            self.n_outputs_ = y.shape[-1]
        elif y.shape[-1] != self.n_outputs_:
            raise ValueError(f"y has {y.shape[-1]} targets per output but the net was fitted "
                             f"with {self.n_outputs_}.")
        return y

    def predict(self, X):
        """Predicted targets (float64, as sklearn's regressors), shaped like the ``y`` seen in
        ``fit``; per-step targets of sequences of different lengths one array per sequence."""
        y = self._outputs(X, "predictions")
        if y.dtype == object:
            return sequence_array([self._target_shape(step) for step in y])
        return self._target_shape(y)

    def _target_shape(self, y):
        # The shape of the y seen in fit: (n,) or (n, T) when it had one target.
        y = y.astype(np.float64)
        return y[..., 0] if self._y_ndim == (2 if self.sequence_output else 1) else y

    def score(self, X, y, sample_weight=None):
        """R^2 of ``predict(X)`` (sklearn's: with several outputs, the mean of each output's
        R^2). Per-step targets of sequences of different lengths: the R^2 over every step
        before each end, each step one observation (several targets: their mean R^2), each
        step weighted by its sequence's ``sample_weight``."""
        if self.sequence_output:
            checked = self._check_X(X, reset=False)
            if isinstance(checked, PaddedSequences):
                return self._score_steps(checked, y, sample_weight, r2_score, lambda out: out)
        return super().score(X, y, sample_weight=sample_weight)

    # skorch gives every net a predict_proba; a regressor has no probabilities to offer.
    predict_proba = available_if(lambda self: False)(NeuralNetRegressor.predict_proba)
