"""Scaling sequences feature by feature: :class:`SequenceScaler`.

sklearn's ``StandardScaler`` and ``MinMaxScaler`` read 2-D arrays, one column per feature; a
batch of sequences is 3-D ``(n_samples, n_steps, n_features)``, a list of ``(n_steps_i,
n_features)`` arrays, a :class:`~latticeprune.sequences.PaddedSequences` or, after a 2-D step
of a pipeline, ``(n_samples, n_steps * n_features)``. :class:`SequenceScaler` stacks the valid
steps of every sequence (padding left out) into one ``(n_valid_steps, n_features)`` array,
fits sklearn's own scaler on it (``partial_fit`` included), and transforms each step, handing
back the layout it was given: a 3-D array (NaN padding after an end stays NaN), a list of
arrays (a 1-D array stays one feature per step), a ``PaddedSequences`` (entries after each end
untouched), a 2-D array. Cost: one pass over the valid steps.
"""

import numbers

import numpy as np
from sklearn.base import BaseEstimator, OneToOneFeatureMixin, TransformerMixin, _fit_context
from sklearn.preprocessing import MinMaxScaler, StandardScaler
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_array, check_is_fitted, validate_data

from .sequences import PaddedSequences, is_ragged

__all__ = ["SequenceScaler", "SCALINGS"]

#: Valid ``method`` values and the sklearn scaler each fits on the stacked steps.
SCALINGS = {"standard": StandardScaler, "minmax": MinMaxScaler}


class SequenceScaler(OneToOneFeatureMixin, TransformerMixin, BaseEstimator):
    """Scale each feature of sequences over all valid steps of all training sequences.

    Parameters
    ----------
    method : {"standard", "minmax"}, default="standard"
        ``"standard"``: zero mean and unit variance per feature (sklearn's
        :class:`~sklearn.preprocessing.StandardScaler`,
        with ``with_mean`` and ``with_std``); ``"minmax"``: each feature to ``feature_range``
        (:class:`~sklearn.preprocessing.MinMaxScaler`).
    input_size : int or None, default=None
        Features per step of a 2-D ``X`` ``(n_samples, n_steps * input_size)``, as the
        estimators' ``input_size``; None: a 2-D ``X`` has one feature per column and one step
        (as sklearn's scalers read it). 3-D and ragged ``X`` carry their own feature count.
    with_mean, with_std : bool, default=True
        As sklearn's ``StandardScaler`` (``method="standard"``).
    feature_range : tuple (min, max), default=(0, 1)
        As sklearn's ``MinMaxScaler`` (``method="minmax"``).
    clip : bool, default=False
        As ``MinMaxScaler``: clip transformed values to ``feature_range``.

    Attributes
    ----------
    scaler_ : StandardScaler or MinMaxScaler
        The fitted sklearn scaler, one column per feature (``mean_``, ``scale_``,
        ``data_min_``, ``n_samples_seen_`` = valid steps seen).
    n_features_in_ : int
        Columns of a 2-D ``X`` seen in ``fit``, or features per step of 3-D / ragged ``X``.
    feature_names_in_ : ndarray of str
        Column names of a DataFrame ``X``.

    Examples
    --------
    >>> import numpy as np
    >>> X = [np.array([[1.0, 10.0], [3.0, 30.0]]), np.array([[2.0, 20.0]])]
    >>> scaled = SequenceScaler().fit_transform(X)
    >>> [x.round(3).tolist() for x in scaled]
    [[[-1.225, -1.225], [1.225, 1.225]], [[0.0, 0.0]]]
    """

    _parameter_constraints = {
        "method": [StrOptions(set(SCALINGS))],
        "input_size": [Interval(numbers.Integral, 1, None, closed="left"), None],
        "with_mean": ["boolean"],
        "with_std": ["boolean"],
        "feature_range": [tuple],
        "clip": ["boolean"],
    }

    def __init__(self, method="standard", *, input_size=None, with_mean=True, with_std=True,
                 feature_range=(0, 1), clip=False):
        self.method = method
        self.input_size = input_size
        self.with_mean = with_mean
        self.with_std = with_std
        self.feature_range = feature_range
        self.clip = clip

    def _new_scaler(self):
        if self.method == "standard":
            return StandardScaler(with_mean=self.with_mean, with_std=self.with_std)
        return MinMaxScaler(feature_range=self.feature_range, clip=self.clip)

    # -- layouts -----------------------------------------------------------------------------
    def _steps(self, X, reset):
        """``(steps, rebuild)``: the valid steps of ``X`` stacked ``(n_steps_total,
        n_features)``, and a function that puts scaled steps back into ``X``'s layout."""
        if isinstance(X, PaddedSequences):
            mask = np.arange(X.shape[1])[None, :] < X.lengths[:, None]
            data = check_array(X.data, allow_nd=True, ensure_all_finite="allow-nan",
                               dtype=[np.float64, np.float32])
            self._check_width(data.shape[2], reset)

            def rebuild(steps):
                out = data.copy()
                out[mask] = steps
                return PaddedSequences(out, X.lengths)
            return data[mask], rebuild
        if is_ragged(X):
            sequences = [np.asarray(x) for x in X]
            arrays = [check_array(x.reshape(-1, 1) if x.ndim == 1 else x,
                                  ensure_all_finite="allow-nan", dtype=[np.float64, np.float32],
                                  input_name=f"X[{i}]") for i, x in enumerate(sequences)]
            widths = {a.shape[1] for a in arrays}
            if len(widths) > 1:
                raise ValueError(f"The sequences of X have different feature counts "
                                 f"{sorted(widths)}; each is (n_steps_i, n_features).")
            self._check_width(arrays[0].shape[1], reset)
            ends = np.cumsum([len(a) for a in arrays])[:-1]

            def rebuild(steps):
                parts = np.split(steps, ends)
                return [p.reshape(s.shape) if s.ndim == 1 else p
                        for p, s in zip(parts, sequences)]
            return np.concatenate(arrays), rebuild
        if isinstance(X, np.ndarray) and X.ndim == 3:
            data = check_array(X, allow_nd=True, ensure_all_finite="allow-nan",
                               dtype=[np.float64, np.float32])
            self._check_width(data.shape[2], reset)
            return data.reshape(-1, data.shape[2]), lambda steps: steps.reshape(data.shape)
        data = validate_data(self, X, reset=reset, ensure_all_finite="allow-nan",
                             dtype=[np.float64, np.float32])
        width = self.input_size if self.input_size else data.shape[1]
        if self.input_size and data.shape[1] % self.input_size:
            raise ValueError(f"X has {data.shape[1]} columns, which is not a multiple of "
                             f"input_size={self.input_size}: 2-D X must be (n_samples, "
                             "n_steps * input_size).")
        return (data.reshape(-1, width),
                lambda steps: steps.reshape(data.shape))

    def _check_width(self, width, reset):
        if reset:
            self.n_features_in_ = width
            vars(self).pop("feature_names_in_", None)
        elif width != self.n_features_in_:
            raise ValueError(f"X has {width} features per step, but SequenceScaler is "
                             f"expecting {self.n_features_in_} features per step as input.")

    # -- fitting -----------------------------------------------------------------------------
    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None):
        """Fit the scaler on every valid step of the sequences ``X``; ``self``."""
        steps, _ = self._steps(X, reset=True)
        self.scaler_ = self._new_scaler().fit(steps)
        return self

    @_fit_context(prefer_skip_nested_validation=True)
    def partial_fit(self, X, y=None):
        """Update the statistics with the valid steps of ``X`` (fit on the first call)."""
        first = not hasattr(self, "scaler_")
        steps, _ = self._steps(X, reset=first)
        if first:
            self.scaler_ = self._new_scaler()
        self.scaler_.partial_fit(steps)
        return self

    def transform(self, X):
        """``X`` with each feature scaled, in ``X``'s layout."""
        check_is_fitted(self)
        steps, rebuild = self._steps(X, reset=False)
        return rebuild(self.scaler_.transform(steps))

    def inverse_transform(self, X):
        """The inverse of :meth:`transform`, in ``X``'s layout."""
        check_is_fitted(self)
        steps, rebuild = self._steps(X, reset=False)
        return rebuild(self.scaler_.inverse_transform(steps))

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True
        tags.input_tags.three_d_array = True
        tags.requires_fit = True
        tags.transformer_tags.preserves_dtype = ["float64", "float32"]
        return tags
