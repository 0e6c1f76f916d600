"""Bad input gets a clear ValueError/TypeError (never a bare error from deep inside torch)."""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from sklearn.exceptions import NotFittedError

from latticeprune import RNNClassifier, RNNRegressor
from latticeprune.callbacks import FitDivergedError

from conftest import FUZZ_COUNTS

TINY = dict(hidden_size=4, max_epochs=1, batch_size=256, random_state=0)
X_OK = np.random.RandomState(0).rand(20, 3, 2).astype(np.float32)
Y_OK = np.arange(20) % 2


@pytest.mark.parametrize("X,match", [
    (np.full((20, 3, 2), np.nan), "NaN"),
    (np.full((20, 3, 2), np.inf), "infinity"),
    (np.zeros(20), "2D array"),
    (np.zeros((20, 3, 2, 1)), "dimensions"),
    (np.zeros((0, 3, 2)), "sample"),
    (np.zeros((20, 0, 2)), "empty"),
    (np.zeros((20, 7)), "multiple of input_size"),
])
def test_bad_X_in_fit(X, match):
    y = np.arange(len(X)) % 2
    clf = RNNClassifier(input_size=2 if X.ndim == 2 else None, **TINY)
    with pytest.raises(ValueError, match=match):
        clf.fit(X, y)


def test_input_size_must_match_3d_features():
    with pytest.raises(ValueError, match="input_size is 5"):
        RNNClassifier(input_size=5, **TINY).fit(X_OK, Y_OK)


def test_single_class_and_bad_targets():
    with pytest.raises(ValueError, match="single class"):
        RNNClassifier(**TINY).fit(X_OK, np.zeros(20))
    with pytest.raises(ValueError, match="Unknown label type"):
        RNNClassifier(**TINY).fit(X_OK, np.linspace(0, 1, 20))
    with pytest.raises(ValueError, match="inconsistent numbers of samples"):
        RNNClassifier(**TINY).fit(X_OK, Y_OK[:10])
    with pytest.raises(ValueError, match="NaN"):
        RNNRegressor(**TINY).fit(X_OK, np.full(20, np.nan))
    with pytest.raises(ValueError, match="sequence_output"):
        RNNRegressor(**TINY).fit(X_OK, np.zeros((20, 3, 1)))


@pytest.mark.parametrize("param,value,match", [
    ("cell", "transformer", "cell"),
    ("hidden_size", 0, "hidden_size"),
    ("num_layers", -1, "num_layers"),
    ("input_size", 0, "input_size"),
    ("top_down", "yes", "top_down"),
    ("lr", -0.1, "lr"),
])
def test_bad_parameters_name_the_parameter(param, value, match):
    with pytest.raises(ValueError, match=match):
        RNNClassifier(**{**TINY, param: value}).fit(X_OK, Y_OK)


def test_unknown_cell_lists_the_valid_choices():
    with pytest.raises(ValueError, match="lstm"):
        RNNClassifier(**{**TINY, "cell": "LSTM"}).fit(X_OK, Y_OK)


def test_top_down_needs_two_layers():
    with pytest.raises(ValueError, match="num_layers >= 2"):
        RNNClassifier(top_down=True, **TINY).fit(X_OK, Y_OK)


def test_not_fitted():
    for method in ("predict", "predict_proba", "transform", "decision_function"):
        with pytest.raises(NotFittedError):
            getattr(RNNClassifier(), method)(X_OK)
    with pytest.raises(NotFittedError):
        RNNRegressor().predict(X_OK)


def test_predict_checks_features_per_step():
    clf = RNNClassifier(**TINY).fit(X_OK, Y_OK)
    with pytest.raises(ValueError, match="features per step"):
        clf.predict(np.zeros((3, 3, 5)))
    assert clf.predict(np.zeros((3, 9, 2))).shape == (3,)  # other lengths are fine


def test_diverging_fit_stops_with_a_clear_error():
    X = np.random.RandomState(0).rand(64, 5, 2).astype(np.float32) * 1e3
    y = X.sum(axis=(1, 2)) * 1e30
    reg = RNNRegressor(cell="rnn_relu", hidden_size=8, lr=1e6, max_epochs=5, batch_size=16,
                       random_state=0)
    with pytest.raises(FitDivergedError, match="diverged"):
        reg.fit(X, y)


# -- property-based fuzzing ---------------------------------------------------------------
DTYPES = st.sampled_from([np.float16, np.float32, np.float64, np.int8, np.int64, np.uint8,
                          np.bool_, np.complex64])
ELEMENTS = st.one_of(st.floats(allow_nan=True, allow_infinity=True, width=32),
                     st.sampled_from([0.0, 1.0, -1.0, 1e30, -1e30, 3e38]))


@st.composite
def arrays(draw):
    kind = draw(st.sampled_from(["numeric", "numeric", "numeric", "strings", "list", "ragged"]))
    shape = draw(hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=5))
    if kind == "strings":
        return np.full(shape, draw(st.sampled_from(["a", "1.5", ""])), dtype=object)
    if kind == "ragged":
        return [[1.0, 2.0], [3.0]]
    dtype = draw(DTYPES)
    values = draw(hnp.arrays(np.float64, shape, elements=ELEMENTS))
    with np.errstate(all="ignore"):
        values = values.astype(dtype)
    return values.tolist() if kind == "list" else values


def _n_rows(X):
    return len(X) if isinstance(X, list) or np.ndim(X) > 0 else 1


def _check_call(func, *args):
    try:
        func(*args)
    except (ValueError, TypeError) as exc:
        message = str(exc)
        assert message and len(message) > 10, repr(exc)
        assert "Traceback" not in message
    return True


_fitted = {}


def _fitted_classifier():
    if "clf" not in _fitted:
        _fitted["clf"] = RNNClassifier(**TINY).fit(X_OK, Y_OK)
    return _fitted["clf"]


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(X=arrays(), labels=st.sampled_from(["ints", "strings", "mixed", "floats", "nan"]),
       estimator=st.sampled_from(["classifier", "regressor"]))
def test_fuzz_fit(X, labels, estimator):
    FUZZ_COUNTS["fit"] = FUZZ_COUNTS.get("fit", 0) + 1
    n = _n_rows(X)
    y = {"ints": np.arange(n) % 3, "strings": np.array(["a", "b"] * n)[:n],
         "mixed": np.array([1, "a"] * n, dtype=object)[:n], "floats": np.linspace(0, 1, n),
         "nan": np.full(n, np.nan)}[labels]
    est = (RNNClassifier if estimator == "classifier" else RNNRegressor)(**TINY)
    _check_call(est.fit, X, y)


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(X=arrays(), method=st.sampled_from(["predict", "predict_proba", "transform",
                                           "decision_function", "score"]))
def test_fuzz_predict_and_transform(X, method):
    FUZZ_COUNTS["predict/transform"] = FUZZ_COUNTS.get("predict/transform", 0) + 1
    clf = _fitted_classifier()
    if method == "score":
        _check_call(clf.score, X, np.zeros(_n_rows(X), dtype=int))
    else:
        _check_call(getattr(clf, method), X)
