"""Weights packed for one prediction are reused by the next only while valid.

The engine keeps the packed weights of a predict call for the next call on
the same parameter array. Whatever changes the parameters in between must
show in the next prediction: training, early stopping's restore, a write
followed by params_changed(), another array, or another use of the workspace.
The reference is always a freshly built model (a pickle round trip), which
has packed nothing yet.
"""

import pickle

import numpy as np
import pytest

from lstmlearn import LSTMRegressor


def windows(n, steps=12, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, steps, 2)).astype(np.float32)
    y = X[:, :, 0].sum(axis=1) * 0.1 + X[:, -1, 1]
    return X, y


def fresh(model):
    return pickle.loads(pickle.dumps(model))


@pytest.mark.parametrize("hidden", [(8,), (200,)], ids=["split-rows", "split-units"])
def test_prediction_after_partial_fit_uses_the_new_weights(hidden):
    # H = 200 at one row splits each step's units across threads (per-thread
    # packs); H = 8 packs the weights once for all rows.
    X, y = windows(64)
    model = LSTMRegressor(hidden_layer_sizes=hidden, max_iter=2, random_state=0, n_jobs=2)
    model.fit(X, y)
    before = model.predict(X[:1]), model.predict(X)
    model.partial_fit(X, y)
    after = model.predict(X[:1]), model.predict(X)
    reference = fresh(model)
    wanted = reference.predict(X[:1]), reference.predict(X)
    for got, old, want in zip(after, before, wanted, strict=True):
        assert not np.array_equal(got, old)
        np.testing.assert_array_equal(got, want)


def test_restored_best_weights_are_the_ones_predicted():
    # A callback predicts after every epoch, so the last epoch's weights are
    # packed when early stopping writes the best ones back.
    X, y = windows(300)
    seen = []
    model = LSTMRegressor(
        hidden_layer_sizes=16,
        max_iter=60,
        learning_rate=0.05,
        early_stopping=True,
        n_iter_no_change=2,
        lr_schedule="constant",  # scikit-learn's rule: stops after 3 epochs without a best
        tol=0.0,
        restore_best_weights=True,
        random_state=0,
        callbacks=lambda est, logs: seen.append(est.predict(X[:5])) and False,
    ).fit(X, y)
    assert model.n_iter_ < 60  # stopped early: the best epoch is not the last
    best = int(np.argmax(model.validation_scores_))
    assert best < model.n_iter_ - 1
    got = model.predict(X[:5])
    model.set_params(callbacks=None)  # a lambda does not pickle
    np.testing.assert_array_equal(got, fresh(model).predict(X[:5]))
    assert not np.array_equal(got, seen[-1])


def test_engine_sees_writes_other_arrays_and_other_calls():
    X, y = windows(40)
    model = LSTMRegressor(hidden_layer_sizes=(32, 16), max_iter=1, random_state=0).fit(X, y)
    net, params = model._network(), model._params

    def predict(p):
        out = np.empty((len(X), 1), dtype=np.float32)
        net.predict(p, X, None, out, 256, 2)
        return out

    first = predict(params)
    np.testing.assert_array_equal(predict(params), first)  # reused, same values

    other = params * np.float32(0.5)
    halved = predict(other)
    assert not np.array_equal(halved, first)
    np.testing.assert_array_equal(predict(params), first)  # back to the first array

    # Unaligned arrays share one aligned copy inside the engine; an evaluate
    # call on another array in between must not leave its packs behind.
    buffer = np.empty(params.size + 1, dtype=np.float32)
    unaligned = buffer[1:]
    unaligned[...] = params
    np.testing.assert_array_equal(predict(unaligned), first)
    other_buffer = np.empty(params.size + 1, dtype=np.float32)
    other_unaligned = other_buffer[1:]
    other_unaligned[...] = other
    targets = y.astype(np.float32).reshape(-1, 1)
    net.evaluate(other_unaligned, X, None, targets, None, None, 256, 2)
    np.testing.assert_array_equal(predict(unaligned), first)

    # A write in place, announced.
    params *= np.float32(0.5)
    net.params_changed()
    np.testing.assert_array_equal(predict(params), halved)


def test_several_batches_in_one_call_match_separate_calls():
    X, y = windows(300)
    model = LSTMRegressor(hidden_layer_sizes=24, max_iter=1, random_state=0).fit(X, y)
    whole = model.predict(X)  # 256 + 44 rows: the second batch reuses the packs
    parts = np.concatenate([fresh(model).predict(X[:256]), fresh(model).predict(X[256:])])
    np.testing.assert_array_equal(whole, parts)
