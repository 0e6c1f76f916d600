"""sklearn's estimator checks, restated on the task estimators' own data layouts.

``parametrize_with_checks`` (test_conformance.py) cannot fit :class:`PathIntegrator` or
:class:`LanguageModel`: its generated ``X`` and ``y`` have neither the navigation layout
(``navigation_inputs``, place-cell codes) nor token-id windows. Each test here states the
property of the sklearn check(s) it names, on tiny data in the task's layout, and reuses
sklearn's check function where that function takes data (``check_estimators_data_not_an_array``).
``COUNTERPARTS`` maps every such check to its test; test_conformance.py cites it in the reasons.
"""

import inspect
import pickle

import joblib
import numpy as np
import pytest
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.pipeline import make_pipeline
from sklearn.utils import get_tags
from sklearn.utils.estimator_checks import check_estimators_data_not_an_array
from sklearn.utils.validation import check_is_fitted, has_fit_parameter

from latticeprune.datasets import make_navigation_task
from latticeprune.tasks import LanguageModel, PathIntegrator, navigation_inputs, token_windows

N_SAMPLES, N_CELLS, N_STEPS, VOCAB = 12, 4, 3, 5
#: Float32 outputs of the same net on differently shaped batches agree to a few ulps.
FLOAT32_TOL = 8 * np.finfo(np.float32).eps

#: sklearn check -> the test of this module that states its property on the task's layout.
COUNTERPARTS = {}


def counterpart_of(*checks):
    def record(test):
        COUNTERPARTS.update(dict.fromkeys(checks, test.__name__))
        return test
    return record


# -- data and estimators ---------------------------------------------------------------------
def navigation(n_samples=N_SAMPLES, n_steps=N_STEPS, random_state=0):
    task = make_navigation_task(n_samples, n_steps=n_steps, n_place_cells=N_CELLS,
                                random_state=random_state)
    return navigation_inputs(task.velocities, task.init_codes), task.targets


def windows(n_samples=N_SAMPLES, n_steps=N_STEPS + 2, random_state=0):
    ids = np.random.RandomState(random_state).randint(0, VOCAB, n_samples * n_steps + 1)
    return token_windows(ids, bptt=n_steps)


# float64 centres: the estimator's validated copy is then the parameter itself, so any in-place
# change during fit would show in get_params.
CENTRES = make_navigation_task(1, n_steps=1, n_place_cells=N_CELLS).centres.astype(np.float64)
TASKS = {
    "PathIntegrator": (lambda **kw: PathIntegrator(centres=CENTRES, **kw), navigation),
    "LanguageModel": (lambda **kw: LanguageModel(vocab_size=VOCAB, embedding_size=3, **kw),
                      windows),
}


class Task:
    """One task estimator (``make(**params)``, unfitted), its data (``X``, ``y``) and
    ``data(n_samples, n_steps, random_state)`` for more of it."""

    def __init__(self, name):
        self.name = name
        self._make, self.data = TASKS[name]
        self.X, self.y = self.data()

    def make(self, **params):
        return self._make(**{"hidden_size": 3, "max_epochs": 1, "batch_size": 4,
                             "random_state": 0, **params})

    def fit(self, X=None, y=None, **params):
        return self.make(**params).fit(self.X if X is None else X, self.y if y is None else y)


@pytest.fixture(scope="module", params=list(TASKS))
def task(request):
    return Task(request.param)


@pytest.fixture(scope="module")
def fitted(task):
    """The task's estimator fitted on its data (tests must not change it)."""
    return task.fit()


def outputs(estimator, X):
    """Every per-sample read-out: predict, transform and (PathIntegrator) decode."""
    return {method: getattr(estimator, method)(X) for method in ("predict", "transform", "decode")
            if hasattr(estimator, method)}


def assert_same_outputs(a, b, atol=0.0):
    assert a.keys() == b.keys()
    for method in a:
        np.testing.assert_allclose(a[method], b[method], rtol=0, atol=atol, err_msg=method)


class ArrayLike:
    """Neither an ndarray nor a list: ``__array__`` only, numpy's functions refused (as
    sklearn's ``_NotAnArray``, which its ``check_*_not_an_array`` checks pass)."""

    def __init__(self, data):
        self.data = np.asarray(data)

    def __array__(self, dtype=None, copy=None):
        return self.data if dtype is None else self.data.astype(dtype)

    def __array_function__(self, func, types, args, kwargs):
        if func.__name__ in ("may_share_memory", "shares_memory"):
            return True
        raise TypeError(f"numpy's {func.__name__} called on an array-like")


# -- fitting ---------------------------------------------------------------------------------
@counterpart_of("check_estimators_fit_returns_self", "check_fit_check_is_fitted",
                "check_n_features_in")
def test_fit_returns_self_and_fitted_state(task):
    estimator = task.make()
    with pytest.raises(NotFittedError):
        check_is_fitted(estimator)
    assert not hasattr(estimator, "n_features_in_")
    for method in ("predict", "transform"):
        with pytest.raises(NotFittedError):
            getattr(estimator, method)(task.X)
    with pytest.raises(NotFittedError):
        estimator.score(task.X, task.y)
    assert estimator.fit(task.X, task.y) is estimator
    check_is_fitted(estimator)
    assert estimator.n_features_in_ == task.X.shape[1]


@counterpart_of("check_dont_overwrite_parameters", "check_estimators_overwrite_params")
def test_fit_neither_adds_nor_changes_public_attributes(task):
    estimator = task.make()
    before = dict(vars(estimator))
    params = {name: joblib.hash(value) for name, value in estimator.get_params().items()}
    estimator.fit(task.X, task.y)
    public = {key: value for key, value in vars(estimator).items()
              if not key.startswith("_") and not key.endswith("_")}
    assert [key for key in public if key not in before] == []  # none added
    assert [key for key, value in public.items() if value is not before[key]] == []  # or rebound
    after = {name: joblib.hash(value) for name, value in estimator.get_params().items()}
    assert after == params


@counterpart_of("check_dict_unchanged")
def test_read_outs_leave_the_estimator_unchanged(task, fitted):
    for method in ("predict", "transform", "decode", "score", "perplexity"):
        if hasattr(fitted, method):
            before = dict(vars(fitted))
            args = (task.X, task.y) if method in ("score", "perplexity") else (task.X,)
            getattr(fitted, method)(*args)
            after = vars(fitted)
            changed = [key for key in before.keys() | after.keys()
                       if key not in before or key not in after or after[key] is not before[key]]
            assert changed == [], method


@counterpart_of("check_estimators_pickle")
def test_pickle_round_trip_gives_the_same_outputs(task, fitted):
    restored = pickle.loads(pickle.dumps(fitted))
    assert_same_outputs(outputs(restored, task.X), outputs(fitted, task.X))
    assert restored.score(task.X, task.y) == fitted.score(task.X, task.y)


@counterpart_of("check_fit_idempotent")
def test_fitting_twice_gives_the_same_outputs(task):
    X_test, _ = task.data(random_state=1)
    estimator = task.make()
    first = outputs(estimator.fit(task.X, task.y), X_test)
    assert_same_outputs(outputs(estimator.fit(task.X, task.y), X_test), first)


@counterpart_of("check_fit2d_1sample", "check_fit2d_1feature")
def test_fit_on_one_sample_and_on_one_step(task):
    assert task.fit(task.X[:1], task.y[:1]).predict(task.X[:1]).shape == task.y[:1].shape
    X, y = task.data(n_steps=1)
    assert X.shape[1] == (N_CELLS + 2 if task.name == "PathIntegrator" else 1)
    assert task.fit(X, y).predict(X).shape == y.shape


@counterpart_of("check_fit2d_predict1d")
def test_one_dimensional_X_is_refused(task, fitted):
    for method in ("predict", "transform"):
        with pytest.raises(ValueError, match="Reshape your data"):
            getattr(fitted, method)(task.X[0])
    with pytest.raises(ValueError, match="Reshape your data"):
        task.make().fit(task.X[0], task.y[0])


@counterpart_of("check_fit_score_takes_y")
def test_fit_and_score_take_y_second(task):
    estimator = task.make()
    for name in ("fit", "score", "partial_fit", "fit_transform"):
        method = getattr(estimator, name)
        method(task.X, task.y)
        assert list(inspect.signature(method).parameters)[1] == "y", name


# -- predictions -----------------------------------------------------------------------------
@counterpart_of("check_methods_sample_order_invariance", "check_methods_subset_invariance")
def test_outputs_do_not_depend_on_sample_order_or_batch(task, fitted):
    full = outputs(fitted, task.X)
    order = np.random.RandomState(0).permutation(len(task.X))
    assert_same_outputs(outputs(fitted, task.X[order]),
                        {method: out[order] for method, out in full.items()}, FLOAT32_TOL)
    one_by_one = [outputs(fitted, task.X[i:i + 1]) for i in range(len(task.X))]
    assert_same_outputs({method: np.concatenate([out[method] for out in one_by_one])
                         for method in full}, full, FLOAT32_TOL)


@counterpart_of("check_estimators_nan_inf")
def test_nan_and_inf_in_X_are_refused(task, fitted):
    for value in (np.nan, np.inf):
        X = task.X.astype(np.float64)
        X[0, -1] = value
        with pytest.raises(ValueError, match="NaN|inf"):
            task.make().fit(X, task.y)
        for method in ("predict", "transform"):
            with pytest.raises(ValueError, match="NaN|inf"):
                getattr(fitted, method)(X)


@counterpart_of("check_dtype_object")
def test_object_arrays_of_numbers_are_read_as_numbers(task, fitted):
    X, y = task.X.astype(object), task.y.astype(object)
    assert_same_outputs(outputs(task.fit(X, y), X), outputs(fitted, task.X))
    X[0, 0] = {"foo": "bar"}
    with pytest.raises(TypeError, match="argument must be .* string.* number"):
        task.make().fit(X, task.y)


@counterpart_of("check_readonly_memmap_input", "check_f_contiguous_array_estimator")
def test_read_only_memmap_and_fortran_ordered_data(task, fitted, tmp_path):
    expected = outputs(fitted, task.X)
    joblib.dump((task.X, task.y), tmp_path / "data.joblib")
    X, y = joblib.load(tmp_path / "data.joblib", mmap_mode="r")
    assert isinstance(X, np.memmap) and not X.flags.writeable
    assert_same_outputs(outputs(task.fit(X, y), X), expected)
    X, y = np.asfortranarray(task.X), np.asfortranarray(task.y)
    assert not X.flags.c_contiguous
    assert_same_outputs(outputs(task.fit(X, y), X), expected)


@counterpart_of("check_estimators_dtypes", "check_regressors_int",
                "check_transformer_preserve_dtypes")
def test_input_dtypes(task, fitted):
    hidden = fitted.transform(task.X)
    assert hidden.dtype == np.float32
    for dtype in get_tags(fitted).transformer_tags.preserves_dtype:
        X = task.X.astype(dtype)
        assert task.make().fit_transform(X, task.y).dtype == dtype
        assert fitted.transform(X).dtype == dtype
    if task.name == "LanguageModel":
        assert get_tags(fitted).transformer_tags.preserves_dtype == []  # ids in, floats out
        for dtype in (np.int32, np.uint8):
            assert_same_outputs(outputs(task.fit(task.X.astype(dtype)), task.X.astype(dtype)),
                                outputs(fitted, task.X))
        for dtype in (np.float32, np.float64):
            with pytest.raises(ValueError, match="integer token ids"):
                task.make().fit(task.X.astype(dtype), task.y)
        return
    X = task.X.astype(np.float64)
    assert task.fit(X).predict(X).shape == task.y.shape
    for dtype in (np.int32, np.int64):  # soft codes cut to integers are no codes any more
        with pytest.raises(ValueError, match="place-cell codes"):
            task.make().fit(task.X.astype(dtype), task.y)
    # Integer-valued data (one-hot codes, unit velocities) as ints or floats: the same net.
    rng = np.random.RandomState(0)
    codes = np.eye(N_CELLS, dtype=np.int64)[rng.randint(0, N_CELLS, (N_SAMPLES, N_STEPS + 1))]
    X = navigation_inputs(rng.randint(-1, 2, (N_SAMPLES, N_STEPS, 2)), codes[:, 0])
    X = X.astype(np.int64)
    y = codes[:, 1:]
    np.testing.assert_array_equal(task.fit(X, y).predict(X),
                                  task.fit(X.astype(float), y.astype(float)).predict(X))


@counterpart_of("check_positive_only_tag_during_fit")
def test_negative_inputs_follow_the_positive_only_tag(task):
    X = task.X - 1  # ids: -1 .. VOCAB - 2
    if task.name == "PathIntegrator":  # velocities may be negative (start codes may not)
        X = np.concatenate([task.X[:, :N_CELLS], task.X[:, N_CELLS:] - 1], axis=1)
    if get_tags(task.make()).input_tags.positive_only:
        with pytest.raises(ValueError, match="Negative values in data"):
            task.make().fit(X, task.y)
    else:
        assert np.isfinite(task.fit(X).predict(X)).all()


@counterpart_of("check_n_features_in_after_fitting", "check_estimators_partial_fit_n_features",
                "check_transformer_general")
def test_n_features_in_and_the_layout_at_predict(task, fitted):
    """A recurrent task estimator reads any number of steps (documented), so what predict
    enforces is the layout: the width of ``X`` seen in fit is ``n_features_in_``; another
    number of steps is read as such, anything else is a ValueError naming the layout."""
    assert fitted.n_features_in_ == task.X.shape[1]
    X, y = task.data(n_steps=7)
    assert X.shape[1] != fitted.n_features_in_
    assert fitted.predict(X).shape == y.shape
    assert clone(fitted).fit(task.X, task.y).partial_fit(X, y).predict(X).shape == y.shape
    if task.name == "PathIntegrator":
        bad, match = task.X[:, :-1], "navigation_inputs"  # half a velocity step
    else:
        bad, match = task.X + VOCAB - 1, "vocab_size"  # ids the embedding does not have
    for method in ("predict", "transform", "decode"):
        if hasattr(fitted, method):
            with pytest.raises(ValueError, match=match):
                getattr(fitted, method)(bad)
    with pytest.raises(ValueError, match=match):
        fitted.score(bad, task.y)
    with pytest.raises(ValueError, match=match):
        clone(fitted).fit(task.X, task.y).partial_fit(bad, task.y)


@counterpart_of("check_supervised_y_2d", "check_regressors_train")
def test_y_layout(task, fitted):
    """predict gives ``y``'s shape; a ``y`` of another number of samples or shape is a
    ValueError (no 1-D or column-vector ``y`` exists in either layout). How well the nets
    learn is tested in test_tasks.py on data with something to learn."""
    assert fitted.predict(task.X).shape == task.y.shape
    with pytest.raises(ValueError, match="shape|inconsistent"):
        task.make().fit(task.X, task.y[:-1])
    with pytest.raises(ValueError, match="shape"):
        task.make().fit(task.X, task.y.reshape(-1))
    assert task.make().fit(task.X.tolist(), task.y.tolist()).predict(task.X).shape == task.y.shape
    with pytest.raises(ValueError, match="shape"):
        task.make().fit(task.X, task.y[:, :-1])


@counterpart_of("check_regressors_no_decision_function")
def test_no_decision_function_or_predict_proba(fitted):
    assert not hasattr(fitted, "decision_function")
    assert not hasattr(fitted, "predict_proba")


# -- sample_weight ---------------------------------------------------------------------------
@counterpart_of("check_sample_weights_list", "check_sample_weights_pandas_series",
                "check_sample_weights_not_an_array", "check_sample_weights_shape",
                "check_sample_weights_not_overwritten", "check_all_zero_sample_weights_error")
def test_sample_weight_forms_and_errors(task, fitted):
    pd = pytest.importorskip("pandas")
    assert has_fit_parameter(task.make(), "sample_weight")
    weight = np.random.RandomState(0).uniform(0.1, 3, len(task.X))
    kept = weight.copy()
    weighted = outputs(task.make().fit(task.X, task.y, sample_weight=weight), task.X)
    np.testing.assert_array_equal(weight, kept)  # not overwritten
    assert not np.allclose(weighted["transform"], fitted.transform(task.X))  # weights matter
    assert_same_outputs(outputs(task.make().fit(task.X, task.y, sample_weight=np.ones(
        len(task.X))), task.X), outputs(fitted, task.X))
    for form in (list(weight), pd.Series(weight), ArrayLike(weight)):
        estimator = task.make().fit(ArrayLike(task.X), ArrayLike(task.y), sample_weight=form)
        assert_same_outputs(outputs(estimator, task.X), weighted)
    with pytest.raises(ValueError, match="inconsistent numbers of samples"):
        task.make().fit(task.X, task.y, sample_weight=np.ones(2 * len(task.X)))
    with pytest.raises(ValueError, match="sample_weight must be 1-D"):
        task.make().fit(task.X, task.y, sample_weight=np.ones((len(task.X), 2)))
    with pytest.raises(ValueError, match="(.*weight.*zero.*)|(.*zero.*weight.*)"):
        task.make().fit(task.X, task.y, sample_weight=np.zeros(len(task.X)))


@counterpart_of("check_sample_weight_equivalence_on_dense_data")
def test_sample_weight_approximates_repeating_and_dropping_samples(task):
    """Approximately only: shuffled mini-batch steps in float32 never match to rtol=1e-7 (the
    reason test_conformance.py gives for RNNClassifier's expected failure of this check)."""
    X, y = task.data(n_samples=24)
    full_batch = dict(batch_size=-1, max_epochs=6, lr=0.02)
    plain = outputs(task.fit(X, y, **full_batch), X)["transform"]

    def gap(estimator, reference):
        return np.abs(outputs(estimator, X)["transform"] - reference).max()

    dropped = outputs(task.fit(X[8:], y[8:], **full_batch), X)["transform"]
    weight = np.ones(len(X))
    weight[:8] = 0
    zeroed = task.make(**full_batch).fit(X, y, sample_weight=weight)
    assert gap(zeroed, dropped) < 0.1 * np.abs(plain - dropped).max()
    repeated = outputs(task.fit(np.concatenate([X, X[:8]]), np.concatenate([y, y[:8]]),
                                **full_batch), X)["transform"]
    weight[:8] = 2
    doubled = task.make(**full_batch).fit(X, y, sample_weight=weight)
    assert gap(doubled, repeated) < 0.1 * np.abs(plain - repeated).max()


# -- sklearn's plumbing ----------------------------------------------------------------------
@counterpart_of("check_pipeline_consistency")
def test_pipeline_gives_the_estimators_results(task):
    estimator = task.make()
    pipeline = make_pipeline(task.make())
    estimator.fit(task.X, task.y)
    pipeline.fit(task.X, task.y)
    assert pipeline.score(task.X, task.y) == estimator.score(task.X, task.y)
    np.testing.assert_array_equal(pipeline.fit_transform(task.X, task.y),
                                  estimator.fit_transform(task.X, task.y))


@counterpart_of("check_transformer_data_not_an_array", "check_regressor_data_not_an_array")
def test_transform_and_inputs_that_are_not_arrays(task, fitted):
    hidden = fitted.transform(task.X)
    assert hidden.shape == (len(task.X), 3)
    estimator = task.make()
    np.testing.assert_array_equal(estimator.fit_transform(task.X, task.y), hidden)
    np.testing.assert_array_equal(estimator.fit_transform(task.X, task.y), hidden)  # again
    for X, y in [(task.X.tolist(), task.y.tolist()), (ArrayLike(task.X), ArrayLike(task.y))]:
        np.testing.assert_array_equal(task.make().fit_transform(X, y), hidden)
        np.testing.assert_array_equal(fitted.transform(X), hidden)
    # sklearn's own check, which takes data: fit and predict on NotAnArray (and pandas) inputs.
    check_estimators_data_not_an_array(task.name, task.make(), task.X, task.y, "NotAnArray")
    if task.y.ndim == 2:  # pandas holds no 3-D y
        check_estimators_data_not_an_array(task.name, task.make(), task.X, task.y,
                                           "PandasDataframe")
    else:
        pd = pytest.importorskip("pandas")
        np.testing.assert_array_equal(task.fit(pd.DataFrame(task.X)).predict(task.X),
                                      fitted.predict(task.X))
