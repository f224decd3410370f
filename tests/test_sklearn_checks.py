"""scikit-learn's own estimator checks on the estimators."""

import pytest
from sklearn.utils.estimator_checks import parametrize_with_checks

from lstmlearn import LSTMClassifier, LSTMGenerator, LSTMRegressor

TWO_D_IS_TIMESTEPS = (
    "a 2-D X is read as [samples, timesteps] with one feature per step: n_features_in_ counts "
    "features per step, and sequences of another length are valid input"
)
MINI_BATCHES = (
    "mini-batch training: repeating a sample changes the mini-batches, so a weight of 2 equals "
    "a repeated sample only in expectation"
)
COMMON = {
    "check_n_features_in": TWO_D_IS_TIMESTEPS,
    "check_n_features_in_after_fitting": TWO_D_IS_TIMESTEPS,
    "check_estimators_partial_fit_n_features": TWO_D_IS_TIMESTEPS,
    "check_sample_weight_equivalence_on_dense_data": MINI_BATCHES,
}
ROWS_ARE_TOKEN_SEQUENCES = (
    "LSTMGenerator reads a 2-D X as integer token sequences, one per row: n_features_in_ is the "
    "vocabulary size (the width of the one-hot input), not the length of the rows"
)
EXPECTED_FAILED = {
    LSTMGenerator: {
        "check_n_features_in": ROWS_ARE_TOKEN_SEQUENCES,
        "check_n_features_in_after_fitting": ROWS_ARE_TOKEN_SEQUENCES,
        "check_fit2d_predict1d": (
            "a 1-D array is one token sequence, valid input to fit and predict (the next token)"
        ),
    },
    LSTMRegressor: COMMON,
    LSTMClassifier: {**COMMON, "check_classifiers_train": TWO_D_IS_TIMESTEPS},
}


def expected_failed_checks(estimator):
    return EXPECTED_FAILED[type(estimator)]


# Small, quick models that still fit scikit-learn's toy problems.
ESTIMATORS = [
    LSTMRegressor(hidden_layer_sizes=16, max_iter=60, learning_rate=0.01, random_state=0),
    LSTMClassifier(hidden_layer_sizes=16, max_iter=60, learning_rate=0.01, random_state=0),
    # Pooling over time: the same checks with a mean and an attention head.
    LSTMRegressor(
        hidden_layer_sizes=16, max_iter=60, learning_rate=0.01, random_state=0, pooling="mean"
    ),
    LSTMClassifier(
        hidden_layer_sizes=16, max_iter=60, learning_rate=0.01, random_state=0, pooling="attention"
    ),
    # LSTM-FCN: batch normalisation with running statistics, pooling over time.
    LSTMClassifier(
        hidden_layer_sizes=8,
        fcn_filters=(8, 8),
        fcn_kernel_sizes=(3, 3),
        max_iter=60,
        learning_rate=0.01,
        random_state=0,
    ),
    LSTMGenerator(hidden_layer_sizes=8, seq_length=5, max_iter=3, random_state=0),
]


_ALL = parametrize_with_checks(ESTIMATORS, expected_failed_checks=expected_failed_checks)
# The estimators declare no array-API support; scikit-learn still yields that
# check and then skips it, and a skip would read as a test not run.
_CHECKS = [
    p for p in _ALL.args[1] if getattr(p, "values", p)[1].func.__name__ != "check_array_api_input"
]
assert len(_CHECKS) < len(_ALL.args[1])


@pytest.mark.parametrize(_ALL.args[0], _CHECKS, **_ALL.kwargs)
def test_sklearn_compatible_estimator(estimator, check):
    check(estimator)
