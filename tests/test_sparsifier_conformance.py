"""scikit-learn's estimator checks on the sparsifiers (issue 12 item 4).

Every check runs on ``LatticePruner`` and ``ModuliRegularizer`` around a small
``RNNClassifier`` and ``RNNRegressor``. Every check must pass: the inner estimators use the settings with which they pass on their
own (tests/test_conformance.py). ``SKORCH_FAILURES``
would list checks plain skorch fails for the same reason: none reaches the sparsifiers.
"""

from sklearn.utils.estimator_checks import parametrize_with_checks

from conftest import CHECK_CLASSIFIER, CHECK_REGRESSOR, trained_for
from latticeprune import LatticePruner, ModuliRegularizer, RNNClassifier, RNNRegressor

# The inner estimators: the settings with which the bare ones pass every check
# (tests/test_conformance.py; the regressor trained longer in check_regressors_train).
SPARSIFIERS = [
    LatticePruner(RNNClassifier(cell="gru", **CHECK_CLASSIFIER), n_rounds=2, random_state=0),
    LatticePruner(RNNRegressor(**CHECK_REGRESSOR), strategy="magnitude",
                  n_rounds=1, random_state=0),
    ModuliRegularizer(RNNClassifier(cell="rnn_tanh", **CHECK_CLASSIFIER), random_state=0),
    # Pruned to 0.9 at the default strength 0.1 (or as a lottery ticket), this 8-unit regressor
    # stays under check_regressors_train's R^2 > 0.5 bar; at strength 0.01 it passes.
    ModuliRegularizer(RNNRegressor(**CHECK_REGRESSOR), moduli="klein", strength=0.01,
                      random_state=0),
]

#: {check name: why plain skorch fails it}; checks skorch fails (``check_set_params``:
#: skorch stores ``_params_to_validate``; ``check_no_attributes_set_in_init``: skorch sets
#: ``history_``, ``initialized_``, ``virtual_params_`` in ``__init__``) pass on the sparsifiers.
SKORCH_FAILURES = {}


@parametrize_with_checks(SPARSIFIERS, expected_failed_checks=lambda est: SKORCH_FAILURES)
def test_sklearn_checks(estimator, check):
    check(trained_for(check, estimator))
