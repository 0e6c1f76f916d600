"""skorch estimators for sequence data: :class:`RNNClassifier`, :class:`RNNRegressor`, and
:class:`SequenceNet`, the base of every sequence estimator of the package (these two and
:class:`~latticeprune.tasks.PathIntegrator`, :class:`~latticeprune.tasks.LanguageModel`).

The recurrent estimators accept ``X`` as ``(n_samples, n_steps, n_features)`` or, so that they
follow 2-D sklearn transformers such as ``StandardScaler``, as ``(n_samples, n_steps *
n_features)`` together with ``input_size=n_features``.
"""

import numbers

import numpy as np
import torch
from skorch import NeuralNetClassifier, NeuralNetRegressor
from skorch.callbacks import GradientNormClipping
from skorch.utils import to_numpy
from sklearn.preprocessing import LabelEncoder
from sklearn.utils._param_validation import Interval, Options, StrOptions, validate_parameter_constraints
from sklearn.utils.metaestimators import available_if
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_array, check_consistent_length, check_is_fitted, column_or_1d

from .callbacks import DivergenceGuard
from .nets import CELLS, RecurrentNet
from .utils import torch_seed, torch_threads

__all__ = ["SequenceNet", "RNNClassifier", "RNNRegressor"]

_POSITIVE_INT = Interval(numbers.Integral, 1, None, closed="left")

#: Arguments of ``skorch.NeuralNet.__init__`` that every sequence estimator names explicitly.
_SKORCH_ARGS = ("module", "criterion", "optimizer", "lr", "max_epochs", "batch_size",
                "train_split", "device", "verbose")


class SequenceNet:
    """Base of the sequence estimators, mixed in before a skorch ``NeuralNet`` class.

    A subclass lists its parameters in ``__init__`` (stored by :meth:`_init_params`) and in
    ``_parameter_constraints``, and provides ``_check_X(X, reset)``, ``_check_y(X, y, reset)``
    (``reset=True`` in ``fit`` records what the data fixes, at least ``n_features_in_``),
    ``_net_class`` with ``_module_kwargs()`` and, optionally, ``_init_from_targets(y)``. It gets
    ``fit`` / ``partial_fit`` (parameters checked once, training under
    ``torch_seed(random_state)`` and ``torch_threads(n_threads)``: same seed, same net), a
    :class:`~latticeprune.callbacks.DivergenceGuard` and, with a ``max_grad_norm``, gradient
    clipping as default callbacks, the fitted and finite-output checks, :meth:`check_sequences`
    and :meth:`transform` (the ``last`` of ``module_.encode(x) -> (outputs, last)``).
    """

    _parameter_constraints = {
        "hidden_size": [_POSITIVE_INT],
        "cell": [StrOptions(set(CELLS))],
        "random_state": ["random_state"],
        "n_threads": [_POSITIVE_INT, None],
        "max_epochs": [Interval(numbers.Integral, 0, None, closed="left")],
        "batch_size": [_POSITIVE_INT, Options(numbers.Integral, {-1})],
        "lr": [Interval(numbers.Real, 0, None, closed="neither")],
    }
    _net_class = None

    def _init_params(self, args):
        """The ``__init__`` of every subclass: ``self._init_params(locals())``.

        Stores the subclass's own parameters unchanged (sklearn's rule for ``__init__``) and
        passes skorch's arguments and ``**kwargs`` on to the skorch net class.
        """
        args = {key: value for key, value in args.items() if key != "self"}
        kwargs = args.pop("kwargs")
        skorch_args = {key: args.pop(key) for key in _SKORCH_ARGS}
        for key, value in args.items():
            setattr(self, key, value)
        super().__init__(**skorch_args, **kwargs)

    # -- checks ------------------------------------------------------------------------------
    def _check_params(self):
        """Check the parameters named in ``_parameter_constraints`` (sklearn's validator: a
        ``ValueError`` naming the parameter and its valid choices); subclasses add the checks
        that involve two parameters."""
        params = {key: getattr(self, key) for key in self._parameter_constraints}
        validate_parameter_constraints(self._parameter_constraints, params,
                                       caller_name=type(self).__name__)

    def __sklearn_is_fitted__(self):
        return bool(getattr(self, "initialized_", False)) and hasattr(self, "n_features_in_")

    def check_sequences(self, X):
        """``X`` validated for the fitted estimator, in the layout its module reads.

        Raises ``NotFittedError`` before ``fit`` and a ``ValueError`` naming the problem for
        ``X`` the estimator cannot read.
        """
        check_is_fitted(self)
        return self._check_X(X, reset=False)

    def _check_finite_output(self, out, what):
        if not np.all(np.isfinite(out)):
            raise ValueError(f"The net produced non-finite {what} for this X (inputs far outside "
                             "the range seen in fit overflow the recurrent state).")
        return out

    # -- skorch hooks ------------------------------------------------------------------------
    @property
    def _default_callbacks(self):
        callbacks = super()._default_callbacks + [("divergence_guard", DivergenceGuard())]
        if getattr(self, "max_grad_norm", None) is not None:
            callbacks.append(("gradient_clipping",
                              GradientNormClipping(gradient_clip_value=self.max_grad_norm)))
        return callbacks

    def initialize_module(self):
        """Build ``module_``; an instance of ``_net_class`` gets its sizes from the data and the
        plain parameters (``module__*`` parameters override them)."""
        kwargs = self.get_params_for("module")
        if isinstance(self.module, type) and issubclass(self.module, self._net_class):
            kwargs = {**self._module_kwargs(), **kwargs}
        self.module_ = self.initialized_instance(self.module, kwargs)
        return self

    # -- training ----------------------------------------------------------------------------
    def fit(self, X, y, **fit_params):
        """Fit the net on ``X`` and ``y`` (re-initialising it unless ``warm_start``); ``self``."""
        self._check_params()
        X = self._check_X(X, reset=True)
        y = self._check_y(X, y, reset=True)
        with torch_seed(self.random_state), torch_threads(self.n_threads):
            if not self.warm_start or not self.initialized_:
                self.initialize()
                self._init_from_targets(y)
            super().partial_fit(X, y, **fit_params)
        return self

    def _init_from_targets(self, y):
        """Hook run once after initialisation (e.g. to start a read-out bias from ``y``)."""

    def partial_fit(self, X, y, classes=None, **fit_params):
        """Train a fitted net further (``epochs=k`` trains k epochs); unfitted: ``fit``."""
        if not self.__sklearn_is_fitted__():
            return self.fit(X, y, **fit_params)
        X = self._check_X(X, reset=False)
        y = self._check_y(X, y, reset=False)
        with torch_threads(self.n_threads):
            super().partial_fit(X, y, **fit_params)
        return self

    # -- outputs -----------------------------------------------------------------------------
    def _outputs(self, X, what="outputs"):
        """The module's outputs for validated ``X``, as a finite numpy array."""
        X = self.check_sequences(X)
        with torch_threads(self.n_threads):
            out = to_numpy(self.forward(X, training=False))
        return self._check_finite_output(out, what)

    def _map_batches(self, compute, X, y=None):
        """``[compute(Xi, yi) ...]`` over the batches of validated ``X`` (and ``y``), with the
        module in evaluation mode, no gradients and ``n_threads`` threads."""
        self.module_.train(False)
        with torch.no_grad(), torch_threads(self.n_threads):
            return [compute(Xi.to(self.device), yi)
                    for Xi, yi in self.get_iterator(self.get_dataset(X, y), training=False)]

    def transform(self, X):
        """Final hidden state of the top recurrent layer, ``(n_samples, hidden_size)``, for
        sequences ``X`` as in ``fit``."""
        X = self.check_sequences(X)
        encode = getattr(self.module_, "encode", None)
        if encode is None:
            raise TypeError(f"transform needs a module with an encode(x) method; "
                            f"{type(self.module_).__name__} has none.")
        hidden = self._map_batches(lambda x, _: to_numpy(encode(x)[1]), X)
        return self._check_finite_output(np.concatenate(hidden), "hidden states")


class _RecurrentEstimator(SequenceNet):
    """What the two :class:`RecurrentNet` estimators add: sequence input and the stacked net."""

    _parameter_constraints = {
        **SequenceNet._parameter_constraints,
        "hidden_size": [_POSITIVE_INT, "array-like"],  # one size per layer
        "num_layers": [_POSITIVE_INT],
        "top_down": ["boolean"],
        "input_size": [_POSITIVE_INT, None],
    }
    _net_class = RecurrentNet

    def _check_params(self):
        super()._check_params()
        if self.top_down and self.num_layers < 2:
            raise ValueError("top_down=True needs num_layers >= 2 (a single layer has nothing "
                             f"above it to feed back); got num_layers={self.num_layers}.")

    def _check_X(self, X, reset):
        """Validate X and return it as a float32 array of shape (n_samples, n_steps, n_features)."""
        X = X.detach().cpu().numpy() if isinstance(X, torch.Tensor) else X
        X = check_array(X, dtype=np.float32, allow_nd=True, ensure_all_finite=True,
                        ensure_min_samples=1, input_name="X")
        if X.ndim not in (2, 3):
            raise ValueError(
                f"X must be 2-D (n_samples, n_steps * n_features) or 3-D (n_samples, n_steps, "
                f"n_features); got an array with {X.ndim} dimensions, shape {X.shape}.")
        if 0 in X.shape:
            raise ValueError(f"X has an empty dimension: shape {X.shape}.")
        n_features = (self.input_size if reset else self.input_size_)
        if X.ndim == 3:
            if n_features is not None and X.shape[2] != n_features:
                what = "input_size" if reset else "the number of features per step seen in fit"
                raise ValueError(f"X has {X.shape[2]} features per step but {what} is "
                                 f"{n_features}.")
        else:
            n_features = 1 if n_features is None else n_features
            if X.shape[1] % n_features:
                raise ValueError(
                    f"X has {X.shape[1]} columns, which is not a multiple of input_size="
                    f"{n_features}: 2-D X must be (n_samples, n_steps * input_size).")
            X = X.reshape(X.shape[0], X.shape[1] // n_features, n_features)
        if reset:
            self.input_size_ = X.shape[2]
            self.n_steps_ = X.shape[1]
            self.n_features_in_ = X.shape[1] * X.shape[2]
        return X

    def _module_kwargs(self):
        return {"input_size": self.input_size_, "output_size": self._n_outputs(),
                "sequence_output": getattr(self, "sequence_output", False),
                "hidden_size": self.hidden_size, "num_layers": self.num_layers,
                "cell": self.cell, "top_down": self.top_down}

    def decision_function(self, X):
        """Raw network outputs (logits for the classifier)."""
        return self._outputs(X)


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
        Torch intra-op threads during ``fit``, ``partial_fit`` and prediction
        (``torch.set_num_threads`` for the call, the previous count restored after). Float sums
        depend on how many threads share them, so a fixed count makes the fitted net the same
        on every machine and in every joblib / Dask worker; 1 also keeps ``n_jobs`` parallel
        fits from oversubscribing the cores. ``None`` uses torch's process-wide setting.
    module : torch.nn.Module class, default=RecurrentNet
        Any module works; the plain size parameters above are passed only to ``RecurrentNet``.
    lr, max_epochs, batch_size, optimizer, device, train_split, verbose, callbacks, **kwargs
        As in skorch. Defaults train well on a CPU; ``train_split=None`` uses all of X for training.
"""


class RNNClassifier(_RecurrentEstimator, NeuralNetClassifier):
    __doc__ = """Recurrent sequence classifier, a skorch ``NeuralNetClassifier``.

    Parameters
    ----------""" + _DOC_COMMON + """
    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
        Class labels (any type ``LabelEncoder`` accepts).
    input_size_, n_steps_, n_features_in_ : int
        Features per step, steps and columns of the 2-D view seen in ``fit``.
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

    def __init__(self, module=RecurrentNet, *, hidden_size=64, num_layers=1, cell="lstm",
                 top_down=False, input_size=None, random_state=None, n_threads=1,
                 criterion=torch.nn.CrossEntropyLoss, optimizer=torch.optim.Adam, lr=0.01,
                 max_epochs=20, batch_size=64, train_split=None, device="cpu", verbose=0,
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

    def _check_y(self, X, y, reset):
        y = y.detach().cpu().numpy() if isinstance(y, torch.Tensor) else y
        y = column_or_1d(y, warn=True)
        check_consistent_length(X, y)
        if reset:
            check_classification_targets(y)
            try:
                self.label_encoder_ = LabelEncoder().fit(y)
            except TypeError as exc:
                raise ValueError(f"y mixes label types that cannot be ordered: {exc}") from None
            if len(self.classes_) < 2:
                raise ValueError(f"y has a single class ({self.classes_[0]!r}); a classifier "
                                 "needs at least two classes.")
        else:
            unknown = np.setdiff1d(y, self.classes_)
            if unknown.size:
                raise ValueError(f"y contains labels not seen in fit: {unknown[:5].tolist()}.")
        return self.label_encoder_.transform(y).astype(np.int64)

    def predict_proba(self, X):
        """Class probabilities, columns in the order of ``classes_``."""
        X = self.check_sequences(X)
        with torch_threads(self.n_threads):
            proba = super().predict_proba(X)
        return self._check_finite_output(proba, "probabilities")

    def predict(self, X):
        """Predicted class labels."""
        indices = self.predict_proba(X).argmax(axis=1)
        return self.classes_[indices]


class RNNRegressor(_RecurrentEstimator, NeuralNetRegressor):
    __doc__ = """Recurrent sequence regressor, a skorch ``NeuralNetRegressor``.

    Parameters
    ----------""" + _DOC_COMMON + """
    sequence_output : bool, default=False
        Predict a target per time step: ``y`` of shape ``(n_samples, n_steps)`` or
        ``(n_samples, n_steps, n_targets)``.

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
                 n_threads=1, criterion=torch.nn.MSELoss, optimizer=torch.optim.Adam, lr=0.005,
                 max_epochs=20, batch_size=64, train_split=None, device="cpu", verbose=0,
                 **kwargs):
        self._init_params(locals())

    def _n_outputs(self):
        return self.n_outputs_

    def _init_from_targets(self, y):
        # Start the read-out bias at the mean target: Adam's bounded steps would otherwise spend
        # most of a short fit moving the bias to targets far from zero.
        readout = getattr(self.module_, "readout", None)
        if isinstance(readout, torch.nn.Linear) and readout.bias is not None:
            with torch.no_grad():
                readout.bias.copy_(torch.as_tensor(y.reshape(-1, y.shape[-1]).mean(axis=0)))

    def _check_y(self, X, y, reset):
        y = y.detach().cpu().numpy() if isinstance(y, torch.Tensor) else y
        y = check_array(y, dtype=np.float32, ensure_2d=False, allow_nd=True,
                        ensure_all_finite=True, input_name="y")
        check_consistent_length(X, y)
        if reset:
            self._y_ndim = y.ndim
        if self.sequence_output:
            if y.ndim not in (2, 3) or y.shape[1] != X.shape[1]:
                raise ValueError(f"With sequence_output=True, y must be (n_samples, n_steps) or "
                                 f"(n_samples, n_steps, n_targets) with n_steps={X.shape[1]}; "
                                 f"got shape {y.shape}.")
            y = y.reshape(y.shape[0], y.shape[1], -1)
        else:
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
        """Predicted targets, shaped like the ``y`` seen in ``fit``."""
        y = self._outputs(X, "predictions")
        # Give back the shape of the y seen in fit: (n,) or (n, T) when it had one target.
        if self._y_ndim == (2 if self.sequence_output else 1):
            return y[..., 0]
        return y

    # skorch gives every net a predict_proba; a regressor has no probabilities to offer.
    predict_proba = available_if(lambda self: False)(NeuralNetRegressor.predict_proba)
