"""The CNN-LSTM, bidirectional and attention-pooling experiments, small and seeded.

Each threshold held for every seed tried when it was set (see the commit
message); the tests use seed 0 and take a few seconds in all.
"""

import numpy as np
import pytest

from lstmlearn import LSTMClassifier
from lstmlearn.datasets import make_cumsum_threshold, make_filler_sequences, make_moving_square


def test_moving_square_direction_with_a_cnn_lstm():
    X, y = make_moving_square(600, frames=6, size=8, random_state=0)
    X_test, y_test = make_moving_square(400, frames=6, size=8, random_state=100)
    assert X.shape == (600, 6, 8, 8) and set(np.unique(y)) == {"left", "right", "up", "down"}
    model = LSTMClassifier(
        16, conv_filters=4, conv_kernel_size=(3, 3), pool_size=2, learning_rate=0.01,
        max_iter=40, random_state=0, callbacks=lambda est, logs: logs["loss"] < 0.05,
    )  # fmt: skip
    model.fit(X, y)
    assert model.score(X_test, y_test) > 0.95


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_bidirectional_beats_forward_only_at_equal_size():
    X, y = make_cumsum_threshold(1000, 10, random_state=0)
    X_test, y_test = make_cumsum_threshold(500, 10, random_state=100)
    scores, sizes = {}, {}
    for bidirectional, units in ((True, 8), (False, 12)):
        model = LSTMClassifier(
            units, bidirectional=bidirectional, return_sequences=True, learning_rate=0.01,
            max_iter=30, n_iter_no_change=30, random_state=0,
        )  # fmt: skip
        model.fit(X, y)
        scores[bidirectional] = model.score(X_test, y_test)
        sizes[bidirectional] = model._params.size
    assert abs(sizes[True] - sizes[False]) <= 0.02 * sizes[True]
    assert scores[True] > 0.97
    assert scores[False] < 0.96
    assert scores[True] - scores[False] > 0.025


def epochs_to_accuracy(pooling, X, y, X_test, y_test, target=0.95, max_iter=60):
    reached = []

    def callback(estimator, logs):
        if estimator.score(X_test, y_test) >= target:
            reached.append(logs["epoch"])
            return True
        return False

    LSTMClassifier(
        16, pooling=pooling, learning_rate=0.01, max_iter=max_iter, n_iter_no_change=max_iter,
        random_state=0, callbacks=callback,
    ).fit(X, y)  # fmt: skip
    return reached[0] if reached else np.inf


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_attention_pooling_learns_in_fewer_epochs_than_last_step():
    # The informative step lies among the first 40 of 80: the last step is at
    # least 40 steps away from it, attention pooling is not.
    data = dict(timesteps=80, informative=1, within=40)
    X, y = make_filler_sequences(500, **data, random_state=0)
    X_test, y_test = make_filler_sequences(300, **data, random_state=100)
    attention = epochs_to_accuracy("attention", X, y, X_test, y_test, max_iter=30)
    last = epochs_to_accuracy("last", X, y, X_test, y_test, max_iter=30)
    assert attention <= 10
    assert last > 30  # not reached within 30 epochs
