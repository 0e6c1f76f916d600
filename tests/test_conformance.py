"""sklearn's estimator checks over the sequence estimators (small settings).

``expected_failed_checks`` lists only what plain skorch fails for the same reason (verified below
on plain skorch nets), what no gradient-trained float32 net can meet (as sklearn's own SGD
estimators), and, for the task estimators, the checks that fit on sklearn's generated data,
which their X/y layouts cannot take: each of those fails with the task's layout error
(asserted below), and tests/test_task_conformance.py states its property on the task's layout.
"""

import re

import pytest
import torch
from skorch import NeuralNet, NeuralNetClassifier
from sklearn.base import clone
from sklearn.utils import estimator_checks
from sklearn.utils.estimator_checks import (check_do_not_raise_errors_in_init_or_set_params,
                                            check_no_attributes_set_in_init,
                                            parametrize_with_checks)

from conftest import CHECK_CLASSIFIER, CHECK_REGRESSOR, trained_for
from latticeprune import RNNClassifier, RNNRegressor
from latticeprune.datasets import make_place_cell_centres
from latticeprune.tasks import LanguageModel, PathIntegrator
from test_task_conformance import COUNTERPARTS

SKORCH = {
    "check_no_attributes_set_in_init":
        "skorch's NeuralNet.__init__ sets history_, initialized_ and virtual_params_ "
        "(plain skorch fails the same way)",
    "check_do_not_raise_errors_in_init_or_set_params":
        "skorch's set_params(callbacks=...) builds the callbacks at once, so an invalid "
        "callbacks value raises there (plain skorch's NeuralNet fails the same way)",
}
SAMPLE_WEIGHT = {
    "check_sample_weight_equivalence_on_dense_data":
        "a net trained by shuffled mini-batch gradient steps in float32 matches repeated or "
        "removed samples only approximately, not to rtol=1e-7; sklearn lists its own "
        "SGDClassifier, SGDRegressor and SGDOneClassSVM as expected failures of this check "
        "for the same reason ('sample_weight is not equivalent to removing/repeating "
        "samples.', PER_ESTIMATOR_XFAIL_CHECKS in sklearn/utils/_test_common/"
        "instance_generator.py; checked below). Plain skorch has no sample_weight. "
        "test_estimators.py and test_task_conformance.py check the approximation",
}
# Checks that fit (or predict after fitting) on sklearn's generated data.
_FITTING = (
    "check_all_zero_sample_weights_error", "check_dict_unchanged",
    "check_dont_overwrite_parameters", "check_dtype_object", "check_estimators_dtypes", "check_estimators_fit_returns_self",
    "check_estimators_nan_inf", "check_estimators_overwrite_params", "check_estimators_pickle",
    "check_f_contiguous_array_estimator", "check_fit2d_1feature", "check_fit2d_1sample",
    "check_fit2d_predict1d", "check_fit_check_is_fitted", "check_fit_idempotent",
    "check_fit_score_takes_y", "check_methods_sample_order_invariance",
    "check_methods_subset_invariance", "check_n_features_in", "check_n_features_in_after_fitting",
    "check_pipeline_consistency", "check_positive_only_tag_during_fit",
    "check_readonly_memmap_input", "check_sample_weight_equivalence_on_dense_data",
    "check_sample_weights_list", "check_sample_weights_not_an_array",
    "check_sample_weights_not_overwritten", "check_sample_weights_pandas_series",
    "check_sample_weights_shape", "check_transformer_data_not_an_array",
    "check_transformer_general",
)
# And the regressor's and float-dtype checks (LanguageModel: ids in, no float dtype kept).
_FITTING_PATH_INTEGRATOR = (
    "check_estimators_partial_fit_n_features", "check_regressor_data_not_an_array",
    "check_regressors_int", "check_regressors_no_decision_function", "check_regressors_train",
    "check_supervised_y_2d", "check_transformer_preserve_dtypes",
)
LAYOUT = {
    "PathIntegrator": "sklearn's generated data is not in PathIntegrator's layout: X must be "
                      "[init_code | velocities] (n_place_cells + n_steps * input_size columns) "
                      "and y place-cell codes (n_samples, n_steps, n_place_cells), so fit "
                      "raises its layout ValueError",
    "LanguageModel": "sklearn's generated data is not in LanguageModel's layout: X must be "
                     "integer token ids (n_windows, bptt) and y the same windows shifted one "
                     "token ahead, so fit raises its layout ValueError",
}
#: What every such failure must say (somewhere in the exception or the one it wraps).
LAYOUT_ERROR = {"PathIntegrator": "navigation_inputs|place-cell codes",
                "LanguageModel": "token_windows"}
# Where the property itself differs on the task's layout, by design (appended to the reason).
STEPS_VARY = ("a recurrent task estimator reads any number of steps at predict (documented), "
              "so only a width that breaks the layout is refused")
BY_DESIGN = {
    ("PathIntegrator", "check_n_features_in_after_fitting"):
        f"{STEPS_VARY}, with the layout's message rather than sklearn's 'X has 1 features, "
        "but ... is expecting n features'",
    ("LanguageModel", "check_n_features_in_after_fitting"):
        f"{STEPS_VARY}; X[:, [1]] is a valid batch of 1-token windows",
    ("LanguageModel", "check_transformer_general"):
        f"{STEPS_VARY}; transform(X[:, :-1]) reads shorter windows, which sklearn expects to "
        "raise",
    ("PathIntegrator", "check_regressors_train"):
        "its score > 0.5 assumes R^2, while PathIntegrator.score is minus the decoded position "
        "error in cm (<= 0, documented); test_tasks.py::"
        "test_path_integrator_beats_the_mean_position_baseline tests learning",
    ("PathIntegrator", "check_supervised_y_2d"):
        "no 1-D y exists to compare with a column vector: y is (n_samples, n_steps, "
        "n_place_cells)",
}


def layout_checks(name):
    return _FITTING + (_FITTING_PATH_INTEGRATOR if name == "PathIntegrator" else ())


def layout_reason(name, check):
    reason = (f"{LAYOUT[name]}; tests/test_task_conformance.py::{COUNTERPARTS.get(check)} "
              "tests the same property on the task's layout")
    if check in SAMPLE_WEIGHT:
        return f"{reason}, which would fail here as RNNClassifier's does: {SAMPLE_WEIGHT[check]}"
    extra = BY_DESIGN.get((name, check))
    return reason if extra is None else f"{reason}, except that {extra}"


ESTIMATORS = [
    RNNClassifier(**CHECK_CLASSIFIER),
    RNNRegressor(**CHECK_REGRESSOR),  # trained longer in check_regressors_train
    PathIntegrator(centres=make_place_cell_centres(4), hidden_size=3, max_epochs=1,
                   random_state=0),
    LanguageModel(embedding_size=3, hidden_size=3, max_epochs=1, random_state=0),
]


def expected_failed_checks(estimator):
    name = type(estimator).__name__
    if name not in LAYOUT:
        return {**SKORCH, **SAMPLE_WEIGHT}
    return {**{check: layout_reason(name, check) for check in layout_checks(name)}, **SKORCH}


@parametrize_with_checks(ESTIMATORS, expected_failed_checks=expected_failed_checks)
def test_sklearn_estimator_checks(estimator, check, request):
    failure = None
    try:
        check(trained_for(check, estimator))
    except Exception as exc:
        if request.node.get_closest_marker("xfail") is None:
            raise
        failure = f"{type(exc).__name__}: {exc}"
    if failure is not None:
        # An expected failure (the xfail mark), reported without a traceback: pytest would
        # parse sklearn's 5,000-line estimator_checks module for every frame (~0.5 s a check).
        pytest.fail(failure, pytrace=False)


@pytest.mark.parametrize("estimator, check_name", [
    pytest.param(estimator, check_name, id=f"{type(estimator).__name__}-{check_name}")
    for estimator in ESTIMATORS if type(estimator).__name__ in LAYOUT
    for check_name in layout_checks(type(estimator).__name__)])
def test_task_estimators_fail_those_checks_on_the_layout_only(estimator, check_name):
    """Each LAYOUT expected failure is the task's layout error (or a sklearn assertion that
    wraps or quotes it), not some other failure hidden by the expected-failure mark."""
    name = type(estimator).__name__
    with pytest.raises(Exception) as info:
        getattr(estimator_checks, check_name)(name, clone(estimator))
    exc = info.value
    while exc is not None and not re.search(LAYOUT_ERROR[name], str(exc)):
        exc = exc.__cause__ or exc.__context__
    assert exc is not None, f"{check_name} fails for another reason: {info.value!r}"


class _Linear(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.linear = torch.nn.LazyLinear(3)

    def forward(self, X):
        return self.linear(X.float())


@pytest.mark.parametrize("check", [check_no_attributes_set_in_init,
                                   check_do_not_raise_errors_in_init_or_set_params])
def test_skorch_reasons_hold_for_plain_skorch(check):
    """The SKORCH entries are failures of plain skorch nets, not of ours."""
    plain = (NeuralNetClassifier(_Linear, max_epochs=1, train_split=None, verbose=0)
             if check is check_no_attributes_set_in_init
             else NeuralNet(_Linear, criterion=torch.nn.MSELoss, verbose=0))
    with pytest.raises((AssertionError, TypeError)):
        check(type(plain).__name__, plain)


def test_every_layout_failure_has_its_counterpart_on_the_tasks_layout():
    assert set(COUNTERPARTS) == set(layout_checks("PathIntegrator"))
    assert set(layout_checks("LanguageModel")) <= set(COUNTERPARTS)


def test_sample_weight_reason_holds_for_sklearns_sgd_estimators():
    """The SAMPLE_WEIGHT reason cites sklearn's own expected failures of the same check."""
    from sklearn.linear_model import SGDClassifier, SGDOneClassSVM, SGDRegressor
    from sklearn.utils._test_common.instance_generator import PER_ESTIMATOR_XFAIL_CHECKS
    for estimator in (SGDClassifier, SGDRegressor, SGDOneClassSVM):
        checks = PER_ESTIMATOR_XFAIL_CHECKS[estimator]
        reason = checks["check_sample_weight_equivalence_on_dense_data"]
        assert "not equivalent to removing/repeating samples" in reason
