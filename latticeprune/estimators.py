"""skorch estimators for sequence data: :class:`RNNClassifier` and :class:`RNNRegressor`.

Both accept ``X`` as ``(n_samples, n_steps, n_features)`` or, so that they follow 2-D sklearn
transformers such as ``StandardScaler``, as ``(n_samples, n_steps * n_features)`` together with
``input_size=n_features``.
"""

import numbers

import numpy as np
import torch
from skorch import NeuralNetClassifier, NeuralNetRegressor
from skorch.utils import to_numpy
from sklearn.exceptions import NotFittedError
from sklearn.preprocessing import LabelEncoder
from sklearn.utils._param_validation import Interval, Options, StrOptions, validate_parameter_constraints
from sklearn.utils.metaestimators import available_if
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_array, check_consistent_length, column_or_1d

from .callbacks import DivergenceGuard
from .nets import CELLS, RecurrentNet
from .utils import torch_seed, torch_threads

__all__ = ["RNNClassifier", "RNNRegressor"]

_MODULE_PARAMS = ("hidden_size", "num_layers", "cell", "top_down")


def validate_own_params(net):
    """Check ``net``'s attributes named in its ``_parameter_constraints`` with sklearn's
    validator (a ``ValueError`` naming the parameter and its valid choices)."""
    params = {key: getattr(net, key) for key in net._parameter_constraints}
    validate_parameter_constraints(net._parameter_constraints, params,
                                   caller_name=type(net).__name__)


class _SequenceNetMixin:
    """Input validation, shape inference, seeding and ``transform`` shared by both estimators."""

    _parameter_constraints = {
        "hidden_size": [Interval(numbers.Integral, 1, None, closed="left")],
        "num_layers": [Interval(numbers.Integral, 1, None, closed="left")],
        "cell": [StrOptions(set(CELLS))],
        "top_down": ["boolean"],
        "input_size": [Interval(numbers.Integral, 1, None, closed="left"), None],
        "random_state": ["random_state"],
        "n_threads": [Interval(numbers.Integral, 1, None, closed="left"), None],
        "max_epochs": [Interval(numbers.Integral, 0, None, closed="left")],
        "batch_size": [Interval(numbers.Integral, 1, None, closed="left"), Options(numbers.Integral, {-1})],
        "lr": [Interval(numbers.Real, 0, None, closed="neither")],
    }

    # -- parameter and data validation -------------------------------------------------------
    def _check_params(self):
        validate_own_params(self)
        if self.top_down and self.num_layers < 2:
            raise ValueError("top_down=True needs num_layers >= 2 (a single layer has nothing "
                             f"above it to feed back); got num_layers={self.num_layers}.")

    def _check_X(self, X, reset):
        """Validate X and return it as a float32 array of shape (n_samples, n_steps, n_features)."""
        if isinstance(X, torch.Tensor):
            X = X.detach().cpu().numpy()
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

    def _check_finite_output(self, out, what):
        if not np.all(np.isfinite(out)):
            raise ValueError(f"The net produced non-finite {what} for this X (inputs far outside "
                             "the range seen in fit overflow the recurrent state).")
        return out

    def _check_fitted(self):
        if not getattr(self, "initialized_", False) or not hasattr(self, "input_size_"):
            raise NotFittedError(f"This {type(self).__name__} instance is not fitted yet. Call "
                                 "'fit' with appropriate arguments before using this estimator.")

    # -- skorch hooks ------------------------------------------------------------------------
    @property
    def _default_callbacks(self):
        return super()._default_callbacks + [("divergence_guard", DivergenceGuard())]

    def initialize_module(self):
        """Build ``module_``; for :class:`RecurrentNet` the sizes come from the data and the plain parameters."""
        kwargs = self.get_params_for("module")
        if isinstance(self.module, type) and issubclass(self.module, RecurrentNet):
            inferred = {"input_size": self.input_size_, "output_size": self._n_outputs(),
                        "sequence_output": getattr(self, "sequence_output", False)}
            inferred.update({key: getattr(self, key) for key in _MODULE_PARAMS})
            inferred.update(kwargs)
            kwargs = inferred
        self.module_ = self.initialized_instance(self.module, kwargs)
        return self

    def _fit_prepared(self, X, y, **fit_params):
        with torch_seed(self.random_state), torch_threads(self.n_threads):
            if not self.warm_start or not self.initialized_:
                self.initialize()
                self._init_from_targets(y)
            super().partial_fit(X, y, **fit_params)
        return self

    def _init_from_targets(self, y):
        """Hook run once after initialisation; the regressor starts its read-out at the target mean."""

    def _partial_fit_prepared(self, X, y, **fit_params):
        with torch_seed(None if self.initialized_ else self.random_state), \
                torch_threads(self.n_threads):
            if not self.initialized_:
                self.initialize()
            super().partial_fit(X, y, **fit_params)
        return self

    # -- representation ----------------------------------------------------------------------
    def transform(self, X):
        """Final hidden state of the top recurrent layer for each sequence.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_steps, n_features) or (n_samples, n_steps * n_features)

        Returns
        -------
        H : ndarray of shape (n_samples, hidden_size)
        """
        self._check_fitted()
        X = self._check_X(X, reset=False)
        encode = getattr(self.module_, "encode", None)
        if encode is None:
            raise TypeError(f"transform needs a module with an encode(x) method; "
                            f"{type(self.module_).__name__} has none.")
        self.module_.train(False)
        hidden = []
        with torch.no_grad(), torch_threads(self.n_threads):
            for Xi, _ in self.get_iterator(self.get_dataset(X), training=False):
                hidden.append(to_numpy(encode(Xi.to(self.device))[1]))
        return self._check_finite_output(np.concatenate(hidden), "hidden states")

    def decision_function(self, X):
        """Raw network outputs (logits for the classifier)."""
        self._check_fitted()
        X = self._check_X(X, reset=False)
        with torch_threads(self.n_threads):
            out = to_numpy(self.forward(X, training=False))
        return self._check_finite_output(out, "outputs")


_DOC_COMMON = """
    hidden_size : int, default=64
        Units per recurrent layer.
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


class RNNClassifier(_SequenceNetMixin, NeuralNetClassifier):
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
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.cell = cell
        self.top_down = top_down
        self.input_size = input_size
        self.random_state = random_state
        self.n_threads = n_threads
        super().__init__(module, criterion=criterion, optimizer=optimizer, lr=lr,
                         max_epochs=max_epochs, batch_size=batch_size, train_split=train_split,
                         device=device, verbose=verbose, **kwargs)

    @property
    def classes_(self):
        try:
            return self.label_encoder_.classes_
        except AttributeError:
            raise AttributeError(f"{type(self).__name__} has no attribute 'classes_' before "
                                 "fit.") from None

    def _n_outputs(self):
        return len(self.classes_)

    def _check_y(self, X, y):
        if isinstance(y, torch.Tensor):
            y = y.detach().cpu().numpy()
        y = column_or_1d(y, warn=True)
        check_consistent_length(X, y)
        check_classification_targets(y)
        try:
            encoder = LabelEncoder().fit(y)
        except TypeError as exc:
            raise ValueError(f"y mixes label types that cannot be ordered: {exc}") from None
        if len(encoder.classes_) < 2:
            raise ValueError(f"y has a single class ({encoder.classes_[0]!r}); a classifier "
                             "needs at least two classes.")
        self.label_encoder_ = encoder
        return encoder.transform(y).astype(np.int64)

    def fit(self, X, y, **fit_params):
        """Fit the net on sequences ``X`` and labels ``y`` (re-initialising it unless ``warm_start``)."""
        self._check_params()
        X = self._check_X(X, reset=True)
        y = self._check_y(X, y)
        return self._fit_prepared(X, y, **fit_params)

    def partial_fit(self, X, y, classes=None, **fit_params):
        """Train further on ``X, y`` without re-initialising a fitted net."""
        if not self.initialized_ or not hasattr(self, "label_encoder_"):
            return self.fit(X, y, **fit_params) if self.max_epochs else self
        X = self._check_X(X, reset=False)
        y = column_or_1d(y, warn=True)
        check_consistent_length(X, y)
        unknown = np.setdiff1d(y, self.classes_)
        if unknown.size:
            raise ValueError(f"y contains labels not seen in fit: {unknown[:5].tolist()}.")
        return self._partial_fit_prepared(X, self.label_encoder_.transform(y).astype(np.int64),
                                          **fit_params)

    def predict_proba(self, X):
        """Class probabilities, columns in the order of ``classes_``."""
        self._check_fitted()
        X = self._check_X(X, reset=False)
        with torch_threads(self.n_threads):
            proba = super().predict_proba(X)
        return self._check_finite_output(proba, "probabilities")

    def predict(self, X):
        """Predicted class labels."""
        indices = self.predict_proba(X).argmax(axis=1)
        return self.classes_[indices]


class RNNRegressor(_SequenceNetMixin, NeuralNetRegressor):
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

    _parameter_constraints = {**_SequenceNetMixin._parameter_constraints,
                              "sequence_output": ["boolean"]}

    def __init__(self, module=RecurrentNet, *, hidden_size=64, num_layers=1, cell="lstm",
                 top_down=False, input_size=None, sequence_output=False, random_state=None,
                 n_threads=1,
                 criterion=torch.nn.MSELoss, optimizer=torch.optim.Adam, lr=0.005,
                 max_epochs=20, batch_size=64, train_split=None, device="cpu", verbose=0,
                 **kwargs):
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.cell = cell
        self.top_down = top_down
        self.input_size = input_size
        self.sequence_output = sequence_output
        self.random_state = random_state
        self.n_threads = n_threads
        super().__init__(module, criterion=criterion, optimizer=optimizer, lr=lr,
                         max_epochs=max_epochs, batch_size=batch_size, train_split=train_split,
                         device=device, verbose=verbose, **kwargs)

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
        if isinstance(y, torch.Tensor):
            y = y.detach().cpu().numpy()
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
            width = y.shape[2]
        else:
            if y.ndim > 2:
                raise ValueError(f"y has shape {y.shape}; for per-step targets set "
                                 "sequence_output=True.")
            y = y.reshape(y.shape[0], -1)
            width = y.shape[1]
        if reset:
            self.n_outputs_ = width
        elif width != self.n_outputs_:
            raise ValueError(f"y has {width} targets per output but the net was fitted with "
                             f"{self.n_outputs_}.")
        return y

    def fit(self, X, y, **fit_params):
        """Fit the net on sequences ``X`` and real targets ``y`` (re-initialising it unless ``warm_start``)."""
        self._check_params()
        X = self._check_X(X, reset=True)
        y = self._check_y(X, y, reset=True)
        return self._fit_prepared(X, y, **fit_params)

    def partial_fit(self, X, y, classes=None, **fit_params):
        """Train further on ``X, y`` without re-initialising a fitted net."""
        if not self.initialized_ or not hasattr(self, "n_outputs_"):
            return self.fit(X, y, **fit_params) if self.max_epochs else self
        X = self._check_X(X, reset=False)
        return self._partial_fit_prepared(X, self._check_y(X, y, reset=False), **fit_params)

    def predict(self, X):
        """Predicted targets, shaped like the ``y`` seen in ``fit``."""
        self._check_fitted()
        X = self._check_X(X, reset=False)
        with torch_threads(self.n_threads):
            out = to_numpy(self.forward(X, training=False))
        y = self._check_finite_output(out, "predictions")
        # Give back the shape of the y seen in fit: (n,) or (n, T) when it had one target.
        if self._y_ndim == (2 if self.sequence_output else 1):
            return y[..., 0]
        return y

    # skorch gives every net a predict_proba; a regressor has no probabilities to offer.
    predict_proba = available_if(lambda self: False)(NeuralNetRegressor.predict_proba)
