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


# -- layouts a user reaches for first ------------------------------------------------------------
def test_a_list_of_1d_arrays_is_univariate_sequences():
    rng = np.random.RandomState(0)
    X = [rng.rand(n).astype(np.float32) for n in [5, 7, 3, 9] * 5]
    clf = RNNClassifier(**TINY).fit(X, Y_OK)
    assert clf.input_size_ == 1 and clf.n_steps_ == 9
    columns = RNNClassifier(**TINY).fit([x[:, None] for x in X], Y_OK)
    np.testing.assert_array_equal(clf.predict_proba(X), columns.predict_proba(X))


@pytest.mark.parametrize("X,match", [
    ([np.zeros(5)] + [np.zeros((6, 3))] * 19,
     r"different feature counts \[1, 3\].*a 1-D array is read as n_steps_i steps of one feature"),
    ([np.zeros((3, n)) for n in range(5, 25)],  # aeon's (n_channels, n_timepoints_i)
     r"different feature counts.*time steps first.*from_aeon"),
])
def test_a_list_in_the_wrong_layout_gets_a_hint(X, match):
    with pytest.raises(ValueError, match=match):
        RNNClassifier(**TINY).fit(X, Y_OK)


def test_predicting_one_unwrapped_sequence_says_how_to_wrap_it():
    clf = RNNClassifier(**TINY).fit(X_OK, Y_OK)
    with pytest.raises(ValueError, match=r"shape \(3, 2\): one sequence of 3 steps x 2 features"
                                         r"\? .*X\[np.newaxis\] or \[X\]"):
        clf.predict(X_OK[0])
    assert clf.predict(X_OK[0][np.newaxis]).shape == (1,)


# -- to_inference copies, ONNX files, unit pruning: a clear word instead of a surprise ------------
@pytest.fixture(scope="module")
def pruned():
    from latticeprune import LatticePruner
    return LatticePruner(RNNClassifier(**TINY), sparsity=0.5, n_rounds=1,
                         random_state=0).fit(X_OK, Y_OK)


def test_a_to_inference_copy_refuses_export_and_save_weights_naming_the_source(pruned, tmp_path):
    from latticeprune import export_onnx
    from latticeprune.persistence import save_weights
    fast = pruned.to_inference()
    for write in (lambda: export_onnx(fast, tmp_path / "net.onnx"),
                  lambda: save_weights(fast, tmp_path / "weights")):
        with pytest.raises(TypeError, match="prediction-only form that to_inference.. builds.*"
                                            "Use the estimator it was built from"):
            write()
    assert fast.get_feature_names_out().tolist() == pruned.get_feature_names_out().tolist()


@pytest.mark.parametrize("warm_start,advice", [(True, "set warm_start=False and call fit"),
                                               (False, None)])
def test_a_to_inference_copy_says_how_to_train_again(pruned, warm_start, advice):
    fast = pruned.to_inference().set_params(warm_start=warm_start)
    if advice is None:  # fit re-fits a dense net from scratch
        assert fast.fit(X_OK, Y_OK).predict(X_OK).shape == (20,)
        return
    with pytest.raises(RuntimeError, match=advice):
        fast.fit(X_OK, Y_OK)


def test_export_onnx_to_a_missing_folder_fails_before_tracing(pruned, tmp_path, monkeypatch):
    import torch.onnx
    from latticeprune import export_onnx
    monkeypatch.setattr(torch.onnx, "export", lambda *a, **k: pytest.fail("traced"))
    with pytest.raises(FileNotFoundError, match="the folder .*missing.* does not exist"):
        export_onnx(pruned, tmp_path / "missing" / "net.onnx")


@pytest.mark.parametrize("hidden_size,sparsity", [(1, 0.5), (2, 0.25)])
def test_unit_pruning_that_removes_no_unit_warns(hidden_size, sparsity):
    from latticeprune import LatticePruner
    pruner = LatticePruner(RNNClassifier(**{**TINY, "hidden_size": hidden_size}),
                           granularity="unit", strategy="magnitude", sparsity=sparsity,
                           n_rounds=1, random_state=0)
    with pytest.warns(UserWarning, match=f"sparsity={sparsity} removes no unit of layer "
                                         f".*{hidden_size} units.*rounds to 0"):
        pruner.fit(X_OK, Y_OK)
    assert pruner.sparsity_["units"] == 0


def test_a_granularity_typo_is_reported_as_a_parameter_of_the_pruner():
    from latticeprune import LatticePruner
    with pytest.raises(ValueError, match="'granularity' parameter of LatticePruner must be a str "
                                         "among .*'unit'.* Got 'units'"):
        LatticePruner(RNNClassifier(**TINY), granularity="units").fit(X_OK, Y_OK)
