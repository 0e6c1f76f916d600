"""This package's estimators inside aeon: :class:`AeonClassifier` and :class:`AeonRegressor`.

aeon's collections are channels first, ``(n_cases, n_channels, n_timepoints)`` or a list of
``(n_channels, n_timepoints_i)`` arrays; this package's estimators read time steps first. Each
class here is an aeon ``BaseClassifier`` / ``BaseRegressor`` that wraps any classifier,
regressor or sparsifier of this package (``RNNClassifier``, ``LatticePruner(...)``,
``ModuliRegularizer(...)``, a ``Pipeline`` ending in one; the sparsifiers around a user's
own skorch net too): aeon validates and converts the input (its tags: multivariate and
unequal-length collections, no missing values), the layout becomes the wrapped estimator's
(:func:`~latticeprune.sequences.from_aeon`, a transpose per case, float32), the classifier's
labels its indices into ``classes_``, and a clone of the wrapped estimator is fitted, so the
user's estimator is never changed. Cost: the wrapped estimator's, plus one copy of the data.

Optional: needs ``aeon`` (``pip install latticeprune[aeon]``); importing this module without it
raises an ``ImportError`` that says so.
"""

import numpy as np
from sklearn.base import clone
from sklearn.utils._param_validation import HasMethods, validate_parameter_constraints

try:
    from aeon.classification import BaseClassifier
    from aeon.regression import BaseRegressor
except ImportError as error:  # pragma: no cover - exercised where aeon is absent
    raise ImportError("latticeprune.aeon_estimators needs aeon: pip install "
                      "'latticeprune[aeon]' (aeon pins numba, which pins numpy).") from error

from .estimators import RNNClassifier, RNNRegressor
from .sequences import from_aeon

__all__ = ["AeonClassifier", "AeonRegressor"]

#: The aeon tags both wrappers declare: what aeon hands to ``_fit`` / ``_predict``.
_TAGS = {
    "capability:multivariate": True,
    "capability:unequal_length": True,
    "capability:missing_values": False,
    "X_inner_type": ["np-list", "numpy3D"],
    "algorithm_type": "deeplearning",
    "python_dependencies": "torch",
    "non_deterministic": False,
    "cant_pickle": False,
}


class _Wrapper:
    """The fitting and layout shared by both wrappers (aeon's bases supply the rest)."""

    _parameter_constraints = {"estimator": [None, HasMethods(["fit", "predict"])]}

    def _inner_fit(self, X, y, default):
        validate_parameter_constraints(self._parameter_constraints,
                                       self.get_params(deep=False),
                                       caller_name=type(self).__name__)
        template = default() if self.estimator is None else self.estimator
        self.estimator_ = clone(template).fit(_features(X), y)
        return self

    def _inner_predict(self, X):
        return np.asarray(self.estimator_.predict(_features(X)))


def _features(X):
    """aeon's collection in the estimators' layout, float32 as torch modules take it (aeon
    hands over float64)."""
    X = from_aeon(X)
    if isinstance(X, np.ndarray):
        return X.astype(np.float32, copy=False)
    return [x.astype(np.float32, copy=False) for x in X]


class AeonClassifier(_Wrapper, BaseClassifier):
    """A classifier or sparsifier of this package as an aeon classifier.

    Parameters
    ----------
    estimator : estimator, default=None
        The classifier to fit on aeon's collections: an ``RNNClassifier``, a ``LatticePruner``
        or ``ModuliRegularizer`` around one, or a ``Pipeline`` ending in one (for example after
        a ``SequenceScaler``). ``None``: ``RNNClassifier()``. A clone is fitted.

    Attributes
    ----------
    estimator_ : estimator
        The fitted clone.
    classes_ : ndarray
        The class labels, as aeon sets them (``np.unique(y)``); the columns of
        ``predict_proba``.

    Examples
    --------
    >>> import numpy as np
    >>> from latticeprune import RNNClassifier
    >>> rng = np.random.default_rng(0)
    >>> X = [rng.normal(size=(2, n)) for n in rng.integers(5, 9, size=20)]  # unequal length
    >>> y = np.array([0, 1] * 10)
    >>> clf = AeonClassifier(RNNClassifier(hidden_size=4, max_epochs=2, random_state=0))
    >>> clf.fit(X, y).predict_proba(X).shape
    (20, 2)
    """

    _tags = dict(_TAGS)

    def __init__(self, estimator=None):
        self.estimator = estimator
        super().__init__()

    def _fit(self, X, y):
        # the labels (aeon's are often strings) as indices into classes_: a plain skorch
        # classifier trains on integer targets, and its columns are then aeon's class order
        return self._inner_fit(X, np.searchsorted(self.classes_, y), RNNClassifier)

    def _predict(self, X):
        return self.classes_[self._inner_predict(X)]

    def _predict_proba(self, X):
        return np.asarray(self.estimator_.predict_proba(_features(X)))

    @classmethod
    def _get_test_params(cls, parameter_set="default"):
        """Small, seeded nets for aeon's estimator checks."""
        return {"estimator": RNNClassifier(hidden_size=4, max_epochs=3, lr=0.05,
                                           random_state=0)}


class AeonRegressor(_Wrapper, BaseRegressor):
    """A regressor or sparsifier of this package as an aeon regressor.

    Parameters
    ----------
    estimator : estimator, default=None
        The regressor to fit on aeon's collections: an ``RNNRegressor`` (one target per
        sequence), a sparsifier around one, or a ``Pipeline`` ending in one. ``None``:
        ``RNNRegressor()``. A clone is fitted.

    Attributes
    ----------
    estimator_ : estimator
        The fitted clone.
    """

    _tags = dict(_TAGS)

    def __init__(self, estimator=None):
        self.estimator = estimator
        super().__init__()

    def _fit(self, X, y):
        return self._inner_fit(X, np.asarray(y, dtype=np.float32), RNNRegressor)

    def _predict(self, X):
        return self._inner_predict(X).astype(float)

    @classmethod
    def _get_test_params(cls, parameter_set="default"):
        """Small, seeded nets for aeon's estimator checks."""
        return {"estimator": RNNRegressor(hidden_size=4, max_epochs=3, lr=0.05,
                                          random_state=0)}
