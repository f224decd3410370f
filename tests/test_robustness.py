"""Hostile use of the estimators: every defect found by probing, and a catalogue of bad input.

Each numbered case of the hardening issue has a test here (the C++ ones, the
crash, the fork and the sizes of nn.LSTM, are in test_nn_threads.py and
test_engine_sizes.py). The catalogue at the end asserts, for each bad input
or misuse, the exact exception type and a message that names what was
expected and what was given.
"""

import copy
import os
import pickle
import re
import warnings

import joblib
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sklearn.base import clone
from sklearn.exceptions import ConvergenceWarning, NotFittedError
from sklearn.utils._param_validation import InvalidParameterError

from lstmlearn import LSTMClassifier, LSTMGenerator, LSTMRegressor, LSTMSeq2Seq
from lstmlearn.nn import LSTM

FAST = dict(hidden_layer_sizes=8, max_iter=2, random_state=0, n_jobs=1)


@pytest.fixture(autouse=True)
def _quiet_convergence():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        yield


def data(n=40, steps=6, features=2, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, steps, features))
    return X, X[:, :, 0].sum(axis=1)


def state_of(est) -> dict:
    """Everything a fit may change: fitted attributes, weights, optimizer state, history.

    The estimator's parameters (set_params) are the user's, not fitted state.
    """
    return {
        k: v
        for k, v in vars(est).items()
        if (k.startswith("_") or k.endswith("_")) and k not in ("_net", "_params_version")
    }


def assert_same_state(before: dict, after: dict) -> None:
    assert before.keys() == after.keys()
    for key, value in before.items():
        other = after[key]
        if isinstance(value, np.ndarray):
            assert np.array_equal(value, other) and value.dtype == other.dtype, key
        elif isinstance(value, np.random.RandomState):
            a, b = value.get_state(), other.get_state()
            assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True)), key
        else:
            assert pickle.dumps(value) == pickle.dumps(other), key


def fitted_regressor():
    X, y = data()
    return LSTMRegressor(**FAST).fit(X, y), X, y


def fitted_classifier():
    X, y = data()
    return LSTMClassifier(**FAST).fit(X, np.where(y > 0, "up", "down")), X, y


def fitted_generator():
    return LSTMGenerator(8, seq_length=5, max_iter=2, random_state=0).fit("abcabcabd" * 4)


def fitted_seq2seq():
    rng = np.random.default_rng(0)
    X = rng.integers(0, 5, size=(30, 4))
    return LSTMSeq2Seq(**FAST).fit(X, X[:, ::-1]), X


# -- case 1: a failed fit leaves a fitted estimator exactly as it was ----------------


def _snapshot(est):
    return copy.deepcopy(state_of(est))


@pytest.mark.parametrize(
    "failure",
    [
        "negative_sample_weight",
        "validation_split",
        "partial_fit_features",
        "set_params_refit",
        "callback_raises",
        "interrupt_in_first_epoch",
    ],
)
def test_failed_fit_of_a_regressor_changes_nothing(failure, monkeypatch):
    model, X, y = fitted_regressor()
    before, state = model.predict(X), _snapshot(model)
    assert model.n_iter_ == 2
    if failure == "negative_sample_weight":
        call = lambda: model.fit(X, y, sample_weight=-np.ones(len(y)))  # noqa: E731
    elif failure == "validation_split":
        call = lambda: model.set_params(early_stopping=True).fit(X[:1], y[:1])  # noqa: E731
    elif failure == "partial_fit_features":
        call = lambda: model.partial_fit(X[:, :, :1], y)  # noqa: E731
    elif failure == "set_params_refit":
        call = lambda: model.set_params(hidden_layer_sizes=4).fit(X, y[:-1])  # noqa: E731
    elif failure == "callback_raises":

        def boom(est, logs):
            raise RuntimeError("callback failed")

        call = lambda: model.set_params(callbacks=boom).fit(X, y)  # noqa: E731
    else:
        # Ctrl-C inside the engine's first epoch of this refit: the engine
        # raises KeyboardInterrupt from train_epoch. (A timer's interrupt_main
        # could land anywhere, e.g. inside NumPy's errstate while the refit
        # initialises its weights, which leaks that state into later code.)
        def interrupted(self, train):
            raise KeyboardInterrupt

        def call():
            monkeypatch.setattr(LSTMRegressor, "_train_epoch", interrupted)
            model.set_params(hidden_layer_sizes=64).fit(X, y)

    with pytest.raises((ValueError, RuntimeError, KeyboardInterrupt)):
        call()
    monkeypatch.undo()
    assert_same_state(state, state_of(model))
    model.set_params(early_stopping=False, callbacks=None, hidden_layer_sizes=8)
    np.testing.assert_array_equal(model.predict(X), before)


def test_failed_partial_fit_of_each_estimator_changes_nothing():
    clf, X, y = fitted_classifier()
    state = _snapshot(clf)
    with pytest.raises(ValueError, match="not seen in the first fit"):
        clf.partial_fit(X, np.where(y > 0, "up", "sideways"))
    assert_same_state(state, state_of(clf))

    gen = fitted_generator()
    state = _snapshot(gen)
    with pytest.raises(ValueError, match="not in the vocabulary"):
        gen.partial_fit("abz")
    assert_same_state(state, state_of(gen))

    s2s, X = fitted_seq2seq()
    state = _snapshot(s2s)
    with pytest.raises(ValueError, match="outside the input vocabulary"):
        s2s.partial_fit(X + 10, X)
    with pytest.raises(ValueError, match="inconsistent numbers of samples"):
        s2s.set_params(warm_start=False).fit(X, X[:-1])
    assert_same_state(state, state_of(s2s))


def test_non_finite_loss_in_the_first_epoch_of_a_refit_keeps_the_old_model():
    model, X, y = fitted_regressor()
    state, before = _snapshot(model), model.predict(X)
    with pytest.raises(FloatingPointError):
        model.fit(X, y * 1e30)
    assert_same_state(state, state_of(model))
    np.testing.assert_array_equal(model.predict(X), before)


# -- case 2: a failed refit of LSTMGenerator ---------------------------------------


def test_failed_generator_refit_keeps_a_working_model():
    gen = fitted_generator()
    state = _snapshot(gen)
    expected = gen.generate("ab", length=10, random_state=0)
    with pytest.raises(ValueError, match="early_stopping needs at least 2 samples"):
        gen.set_params(early_stopping=True).fit("ab")
    assert_same_state(state, state_of(gen))
    assert gen.generate("ab", length=10, random_state=0) == expected


# -- case 3: copies are independent -------------------------------------------------


@pytest.mark.parametrize("how", ["copy", "deepcopy", "pickle", "joblib_mmap"])
def test_training_a_copy_leaves_the_original_alone(how, tmp_path):
    model, X, y = fitted_regressor()
    before = model.predict(X)
    if how == "copy":
        other = copy.copy(model)
    elif how == "deepcopy":
        other = copy.deepcopy(model)
    elif how == "pickle":
        other = pickle.loads(pickle.dumps(model))
    else:
        joblib.dump(model, tmp_path / "m.joblib")
        other = joblib.load(tmp_path / "m.joblib", mmap_mode="r")
    copied = other.predict(X)
    np.testing.assert_array_equal(copied, before)
    other.partial_fit(X, y)
    assert not np.array_equal(other.predict(X), before)
    np.testing.assert_array_equal(model.predict(X), before)
    # The original still trains as a model that never saw the copy's update.
    reference = pickle.loads(pickle.dumps(model))
    model.partial_fit(X, y)
    reference.partial_fit(X, y)
    np.testing.assert_array_equal(model.predict(X), reference.predict(X))


def test_a_clone_trains_independently():
    model, X, y = fitted_regressor()
    before = model.predict(X)
    twin = clone(model).fit(X, -y)
    np.testing.assert_array_equal(model.predict(X), before)
    assert not np.array_equal(twin.predict(X), before)


# -- case 4: tokens beyond int32 ------------------------------------------------------


@pytest.mark.parametrize("side", ["X", "y"])
@pytest.mark.parametrize("dtype", [np.int64, np.uint64])
def test_seq2seq_refuses_tokens_that_do_not_fit_int32(side, dtype):
    X = np.array([[1, 2, 3]] * 4, dtype=dtype)
    y = np.array([[1, 2]] * 4, dtype=dtype)
    big = (X if side == "X" else y).copy()
    big[0, 1] = 2**32 + 1
    args = (big, y) if side == "X" else (X, big)
    with pytest.raises(ValueError, match=rf"token 4294967297 at {side}\[0\]\[1\] is too large"):
        LSTMSeq2Seq(**FAST).fit(*args)
    with pytest.raises(ValueError, match=r"token 4294967297 at X\[1\]\[0\] is too large"):
        LSTMSeq2Seq(**FAST).fit([[1, 2], [2**32 + 1], [3]], [[1], [2], [3]])


# -- case 5b: target shapes ------------------------------------------------------------


def test_a_2d_target_as_wide_as_the_sequence_is_multi_output():
    # Window 12, horizon 12: twelve outputs per sequence, not per-step targets.
    rng = np.random.default_rng(0)
    X = rng.normal(size=(30, 12, 1))
    y = rng.normal(size=(30, 12))
    model = LSTMRegressor(**FAST).fit(X, y)
    assert model.return_sequences_ is False
    assert model.predict(X).shape == (30, 12)
    per_step = LSTMRegressor(return_sequences=True, **FAST).fit(X, y)
    assert per_step.return_sequences_ is True
    assert LSTMRegressor(**FAST).fit(X, y[:, :, None]).return_sequences_ is True


def test_one_hot_labels_as_wide_as_the_sequence_are_refused_with_advice():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(30, 10, 1))
    one_hot = np.eye(10, dtype=int)[rng.integers(0, 10, size=30)]
    with pytest.raises(ValueError, match=r"one label per sequence.*return_sequences=True.*argmax"):
        LSTMClassifier(**FAST).fit(X, one_hot)
    model = LSTMClassifier(return_sequences=True, **FAST).fit(X, one_hot)
    assert model.return_sequences_ is True and model.predict(X).shape == (30, 10)


def test_per_step_arrays_for_a_ragged_list_are_per_step():
    rng = np.random.default_rng(0)
    X = [rng.normal(size=(n, 1)) for n in (3, 5, 4)] * 4
    y = [x[:, 0].cumsum() for x in X]
    model = LSTMRegressor(**FAST).fit(X, y)
    assert model.return_sequences_ is True
    assert [p.shape for p in model.predict(X[:3])] == [(3,), (5,), (4,)]


# -- case 7: a plain list y with a ragged X ------------------------------------------------


def test_ragged_X_with_a_plain_list_y():
    rng = np.random.default_rng(0)
    X = [rng.normal(size=(n, 2)) for n in (3, 5, 4)] * 4
    reg = LSTMRegressor(**FAST).fit(X, [1.0, 2.0, 3.0] * 4)
    assert reg.predict(X).shape == (12,) and reg.return_sequences_ is False
    clf = LSTMClassifier(**FAST).fit(X, ["a", "b", "a"] * 4)
    assert set(clf.predict(X)) <= {"a", "b"}


# -- case 8: labels with missing values -------------------------------------------------------


@pytest.mark.parametrize("missing", [np.nan, None, float("nan")])
def test_labels_with_missing_values_are_named(missing):
    X, _ = data(n=6)
    y = np.array(["a", "b", missing, "a", "b", "a"], dtype=object)
    with pytest.raises(ValueError, match=r"y contains missing values \(NaN or None\).*index 2"):
        LSTMClassifier(**FAST).fit(X, y)


def test_labels_of_mixed_types_are_named():
    X, _ = data(n=4)
    with pytest.raises(ValueError, match=r"y mixes label types \(int, str\)"):
        LSTMClassifier(**FAST).fit(X, np.array(["a", 1, "a", 1], dtype=object))


# -- case 9: tiny temperatures ------------------------------------------------------------------


@pytest.mark.parametrize("temperature", [1e-310, 5e-324, 1e-30])
def test_tiny_temperatures_sample_greedily(temperature):
    gen = fitted_generator()
    greedy = gen.generate("ab", length=20, temperature=0)
    assert gen.generate("ab", length=20, temperature=temperature, random_state=0) == greedy


# -- case 10: sizes at the engine's limits ------------------------------------------------------


@pytest.mark.parametrize(
    "cls, params, param",
    [
        (LSTMRegressor, dict(hidden_layer_sizes=2**31), "hidden_layer_sizes"),
        (LSTMRegressor, dict(batch_size=2**31), "batch_size"),
        (LSTMRegressor, dict(conv_filters=2**31), "conv_filters"),
        (LSTMRegressor, dict(n_jobs=2**40), "n_jobs"),
        (LSTMClassifier, dict(attention_units=2**31, pooling="attention"), "attention_units"),
        (LSTMSeq2Seq, dict(embedding_dim=2**31), "embedding_dim"),
        (LSTMSeq2Seq, dict(input_vocab_size=2**31), "input_vocab_size"),
        (LSTMGenerator, dict(seq_length=2**31), "seq_length"),
        (LSTMGenerator, dict(n_tokens=2**31), "n_tokens"),
    ],
)
def test_sizes_beyond_the_engine_are_refused_by_name(cls, params, param):
    X, _ = data(n=4)
    args = ("abab",) if cls is LSTMGenerator else (X, np.array([0, 1, 0, 1]))
    with pytest.raises(InvalidParameterError, match=rf"'{param}' parameter.*2147483647"):
        cls(**params).fit(*args)


def test_a_tuple_size_beyond_the_engine_is_refused_by_name():
    X, y = data(n=4)
    with pytest.raises(ValueError, match=r"hidden_layer_sizes must be .* at most 2147483647"):
        LSTMRegressor(hidden_layer_sizes=(4, 2**31)).fit(X, y)


def test_weights_too_large_for_the_engine_are_refused_before_allocating():
    X, y = data(n=4)
    with pytest.raises(ValueError, match=r"hidden_layer_sizes\[0\]=1048576 .*limit is 2147483647"):
        LSTMRegressor(hidden_layer_sizes=2**20).fit(X, y)
    frames = np.zeros((4, 3, 6, 2))
    with pytest.raises(ValueError, match=r"conv_filters=1073741824 .*limit is 2147483647"):
        LSTMRegressor(conv_filters=2**30, conv_kernel_size=3, pool_size=1).fit(frames, y)
    with pytest.raises(ValueError, match=r"input_vocab_size=2000000000 .*limit"):
        LSTMSeq2Seq(input_vocab_size=2 * 10**9, **FAST).fit([[1, 2]] * 3, [[1]] * 3)


# -- the catalogue -------------------------------------------------------------------------------

X3, Y1 = data(n=10, steps=5, features=2)
LABELS = np.array(["a", "b"] * 5)
TOKENS = np.random.default_rng(0).integers(0, 4, size=(10, 4))


def _fitted(kind):
    if kind == "reg":
        return LSTMRegressor(**FAST).fit(X3, Y1)
    if kind == "clf":
        return LSTMClassifier(**FAST).fit(X3, LABELS)
    if kind == "gen":
        return LSTMGenerator(8, seq_length=4, max_iter=2, random_state=0).fit("abcabd" * 3)
    return LSTMSeq2Seq(**FAST).fit(TOKENS, TOKENS[:, :2])


_FITTED: dict = {}


def fitted(kind):
    if kind not in _FITTED:
        _FITTED[kind] = _fitted(kind)
    return copy.deepcopy(_FITTED[kind])


def lstm():
    return LSTM(3, 4, random_state=0)


def lstm_after_forward():
    m = lstm()
    m.forward(np.zeros((2, 5, 3)))
    return m


def _set(module, name, value):
    setattr(module, name, value)


R, C = LSTMRegressor, LSTMClassifier
n = len(Y1)
CATALOGUE = [
    # LSTMRegressor: X
    ("reg X 1-D", lambda: R(**FAST).fit(np.zeros(5), np.zeros(5)), ValueError,
     r"Expected a 3-D array .* got 1-D"),
    ("reg X 4-D", lambda: R(**FAST).fit(np.zeros((2, 3, 4, 5)), np.zeros(2)), ValueError,
     r"Expected a 3-D array .* got 4-D"),
    ("reg X NaN", lambda: R(**FAST).fit(np.where(X3 > 2, np.nan, X3), Y1), ValueError,
     r"X contains NaN or infinity"),
    ("reg X inf", lambda: R(**FAST).fit(np.where(X3 > 2, np.inf, X3), Y1), ValueError,
     r"X contains NaN or infinity"),
    ("reg X complex", lambda: R(**FAST).fit(X3 + 1j, Y1), ValueError,
     r"Complex data not supported: X has dtype complex128"),
    ("reg X strings", lambda: R(**FAST).fit(np.full((2, 3, 1), "a"), [1.0, 2.0]), ValueError,
     r"X must hold real numbers; got an array of dtype <U1"),
    ("reg X sparse", lambda: R(**FAST).fit(__import__("scipy.sparse").sparse.eye(3), [1, 2, 3]),
     TypeError, r"Sparse input is not supported.*toarray"),
    ("reg X None", lambda: R(**FAST).fit(None, Y1), ValueError,
     r"X is None; expected sequences of shape \(samples, timesteps, features\)"),
    ("reg X no samples", lambda: R(**FAST).fit(np.zeros((0, 5, 2)), np.zeros(0)), ValueError,
     r"0 sample\(s\) \(shape=\(0, 5, 2\)\) while a minimum of 1 is required"),
    ("reg X no steps", lambda: R(**FAST).fit(np.zeros((3, 0, 2)), np.zeros(3)), ValueError,
     r"0 timestep\(s\) or feature\(s\): shape=\(3, 0, 2\)"),
    ("reg ragged widths", lambda: R(**FAST).fit([np.zeros((2, 1)), np.zeros((3, 2))], [1, 2]),
     ValueError, r"same number of features; got \[1, 2\]"),
    ("reg ragged empty", lambda: R(**FAST).fit([np.zeros((2, 1)), np.zeros((0, 1))], [1, 2]),
     ValueError, r"Sequence X\[1\] is empty"),
    ("reg ragged 3-D item", lambda: R(**FAST).fit([np.zeros((2, 1, 1)), np.zeros(3)], [1, 2]),
     ValueError, r"must be 1-D \(timesteps,\) or 2-D .*X\[0\] is an array of shape \(2, 1, 1\)"),
    # LSTMRegressor: y and weights
    ("reg y None", lambda: R(**FAST).fit(X3, None), ValueError,
     r"LSTMRegressor requires y to be passed, but the target y is None"),
    ("reg y length", lambda: R(**FAST).fit(X3, Y1[:-1]), ValueError,
     rf"X and y have different numbers of samples: {n} and {n - 1}"),
    ("reg y NaN", lambda: R(**FAST).fit(X3, np.where(Y1 > 0, np.nan, Y1)), ValueError,
     r"Input y contains NaN or infinity"),
    ("reg y strings", lambda: R(**FAST).fit(X3, np.array(["a"] * n)), ValueError,
     r"y must hold real numbers for a regressor; got dtype <U1"),
    ("reg y 3-D not per step", lambda: R(return_sequences=False, **FAST).fit(
        X3, np.zeros((n, 5, 1))), ValueError, r"y must be 1-D or 2-D for one output per sequence"),
    ("reg y per step wrong T", lambda: R(return_sequences=True, **FAST).fit(
        X3, np.zeros((n, 4))), ValueError,
     rf"Per-step targets must have shape \({n}, 5\) or \({n}, 5, outputs\); got \({n}, 4\)"),
    ("reg weights negative", lambda: R(**FAST).fit(X3, Y1, sample_weight=-np.ones(n)),
     ValueError, r"sample_weight must be finite and non-negative"),
    ("reg weights shape", lambda: R(**FAST).fit(X3, Y1, sample_weight=np.ones(n - 1)),
     ValueError, rf"sample_weight must have shape \({n},\); got \({n - 1},\)"),
    ("reg weights zero", lambda: R(**FAST).fit(X3, Y1, sample_weight=np.zeros(n)), ValueError,
     r"sample_weight is zero for every sample"),
    # LSTMRegressor: parameters and state
    ("reg hidden 0", lambda: R(hidden_layer_sizes=0).fit(X3, Y1), InvalidParameterError,
     r"'hidden_layer_sizes' parameter of LSTMRegressor must be .*Got 0 instead"),
    ("reg hidden (4, 0)", lambda: R(hidden_layer_sizes=(4, 0)).fit(X3, Y1), ValueError,
     r"hidden_layer_sizes must be a positive integer .*got \(4, 0\)"),
    ("reg learning rate", lambda: R(learning_rate=-1.0).fit(X3, Y1), InvalidParameterError,
     r"'learning_rate' parameter of LSTMRegressor must be a float in the range \(0.0, inf\)"),
    ("reg dtype", lambda: R(dtype="float16", **FAST).fit(X3, Y1), ValueError,
     r"dtype must be float32 or float64; got 'float16'"),
    ("reg batch 0", lambda: R(batch_size=0).fit(X3, Y1), InvalidParameterError,
     r"'batch_size' parameter of LSTMRegressor must be an int in the range \[1, 2147483647\]"),
    ("reg loss", lambda: R(loss="log_loss").fit(X3, Y1), InvalidParameterError,
     r"'loss' parameter of LSTMRegressor must be a str among"),
    ("reg warm start resize", lambda: fitted("reg").set_params(
        warm_start=True, hidden_layer_sizes=4).fit(X3, Y1), ValueError,
     r"hidden_layer_sizes and dtype cannot change between fits when warm_start=True"),
    ("reg partial outputs", lambda: fitted("reg").partial_fit(X3, np.zeros((n, 2))), ValueError,
     r"y has 2 output\(s\); the fitted model has 1"),
    ("reg partial features", lambda: fitted("reg").partial_fit(X3[:, :, :1], Y1), ValueError,
     r"X has 1 features per step, but this model was fitted with 2 features per step"),
    ("reg early stop 1 sample", lambda: R(early_stopping=True, **FAST).fit(X3[:1], Y1[:1]),
     ValueError, r"early_stopping needs at least 2 samples .* got 1 sample"),
    ("reg pooling per step", lambda: R(pooling="mean", return_sequences=True, **FAST).fit(
        X3, np.zeros((n, 5))), ValueError, r"pooling='mean' .* per-step targets"),
    ("reg predict unfitted", lambda: R().predict(X3), NotFittedError,
     r"This LSTMRegressor instance is not fitted yet"),
    ("reg predict features", lambda: fitted("reg").predict(X3[:, :, :1]), ValueError,
     r"X has 1 features per step, but this model was fitted with 2"),
    ("reg predict NaN", lambda: fitted("reg").predict(np.full((1, 2, 2), np.nan)), ValueError,
     r"X contains NaN or infinity"),
    ("reg attention weights", lambda: fitted("reg").attention_weights(X3), ValueError,
     r"needs a model fitted with pooling='attention'; this one was fitted with pooling='last'"),
    ("reg conv frames", lambda: R(conv_filters=2, **FAST).fit(X3, Y1), ValueError,
     r"conv1d front end expects a 4-D array .*got an array of shape \(10, 5, 2\)"),
    ("reg conv kernel", lambda: R(conv_filters=2, conv_kernel_size=9, **FAST).fit(
        np.zeros((3, 2, 4, 1)), np.zeros(3)), ValueError,
     r"conv_kernel_size 9 is larger than the input's steps 4"),
    # LSTMClassifier
    ("clf continuous", lambda: C(**FAST).fit(X3, Y1), ValueError,
     r"Unknown label type: continuous.*use LSTMRegressor"),
    ("clf one class", lambda: C(**FAST).fit(X3, ["a"] * n), ValueError,
     r"at least 2 classes .* got 1 class: \['a'\]"),
    ("clf missing label", lambda: C(**FAST).fit(X3, ["a", None] * 5), ValueError,
     r"y contains missing values \(NaN or None\), e.g. at index 1 of 10"),
    ("clf mixed labels", lambda: C(**FAST).fit(X3, np.array(["a", 2] * 5, dtype=object)),
     ValueError, r"y mixes label types \(int, str\)"),
    ("clf one-hot", lambda: C(**FAST).fit(X3, np.eye(5)[np.arange(n) % 5]), ValueError,
     r"y has shape \(10, 5\), but this model takes one label per sequence, shape \(10,\)"),
    ("clf 2-D wrong T", lambda: C(**FAST).fit(X3, np.zeros((n, 3), int)), ValueError,
     r"labels of shape \(10,\), or per-step labels of shape \(10, 5\).*got \(10, 3\)"),
    ("clf partial no classes", lambda: C(**FAST).partial_fit(X3, LABELS), ValueError,
     r"classes must be passed on the first call to partial_fit"),
    ("clf partial unseen", lambda: fitted("clf").partial_fit(X3, ["a", "z"] * 5), ValueError,
     r"y has labels \['z'\] not seen in the first fit; known classes are \['a', 'b'\]"),
    ("clf classes missing", lambda: C(**FAST).partial_fit(X3, LABELS, classes=["a"]), ValueError,
     r"y has labels \['b'\] that are not in classes"),
    ("clf class weight", lambda: C(class_weight="auto", **FAST).fit(X3, LABELS),
     InvalidParameterError, r"'class_weight' parameter of LSTMClassifier must be"),
    ("clf per step labels", lambda: fitted("clf").partial_fit(X3, np.zeros((n, 5), int)),
     ValueError, r"the model was fitted with one label per sequence"),
    ("clf predict 4-D", lambda: fitted("clf").predict_proba(np.zeros((1, 2, 2, 2))), ValueError,
     r"Expected a 3-D array .* got 4-D"),
    # LSTMGenerator
    ("gen empty text", lambda: LSTMGenerator(**FAST).fit(""), ValueError,
     r"X is empty text; LSTMGenerator needs at least 2 characters"),
    ("gen empty list", lambda: LSTMGenerator(**FAST).fit([]), ValueError,
     r"X is empty; LSTMGenerator needs a text .* got \[\]"),
    ("gen one char", lambda: LSTMGenerator(**FAST).fit("a"), ValueError,
     r"X is too short: every text or token sequence has fewer than 2 tokens"),
    ("gen negative token", lambda: LSTMGenerator(**FAST).fit([[1, -2, 3]]), ValueError,
     r"Negative values in data: token -2 at position 1 of sequence 0"),
    ("gen mixed", lambda: LSTMGenerator(**FAST).fit(["ab", [1, 2]]), ValueError,
     r"X mixes texts and token sequences"),
    ("gen fractional token", lambda: LSTMGenerator(**FAST).fit([[1.0, 2.5]]), ValueError,
     r"Tokens must be integers; sequence 0 has 2.5 at position 1"),
    ("gen unknown char", lambda: fitted("gen").predict("abz"), ValueError,
     r"Characters \['z'\] are not in the vocabulary"),
    ("gen token seed", lambda: fitted("gen").generate([1, 2]), ValueError,
     r"This model was fitted on text; seed must be a str, got \[1, 2\]"),
    ("gen temperature", lambda: fitted("gen").generate("ab", temperature=-1), ValueError,
     r"temperature must be a number >= 0; got -1"),
    ("gen length", lambda: fitted("gen").generate("ab", length=-1), ValueError,
     r"length must be a non-negative integer; got -1"),
    ("gen empty seed", lambda: fitted("gen").generate(""), ValueError,
     r"seed is empty; give at least one token"),
    ("gen score short", lambda: fitted("gen").score("a"), ValueError,
     r"X is too short: it needs at least 2 tokens"),
    # LSTMSeq2Seq
    ("s2s X None", lambda: LSTMSeq2Seq(**FAST).fit(None, TOKENS), ValueError,
     r"LSTMSeq2Seq requires X to be passed, but X is None"),
    ("s2s y None", lambda: LSTMSeq2Seq(**FAST).fit(TOKENS, None), ValueError,
     r"LSTMSeq2Seq requires y to be passed, but the target y is None"),
    ("s2s samples", lambda: LSTMSeq2Seq(**FAST).fit(TOKENS, TOKENS[:-1]), ValueError,
     r"inconsistent numbers of samples: \[10, 9\]"),
    ("s2s sparse", lambda: LSTMSeq2Seq(**FAST).fit(
        __import__("scipy.sparse").sparse.eye(3), TOKENS[:3]), TypeError,
     r"Sparse data was passed for X, but dense data is required"),
    ("s2s complex", lambda: LSTMSeq2Seq(**FAST).fit(TOKENS + 1j, TOKENS), ValueError,
     r"Complex data not supported: X has dtype complex128"),
    ("s2s 1-D X", lambda: LSTMSeq2Seq(**FAST).fit(TOKENS[0], TOKENS[0]), ValueError,
     r"X must be 2-D or 3-D .* got an array of shape \(4,\)"),
    ("s2s ragged floats", lambda: LSTMSeq2Seq(**FAST).fit([[0.5, 1.0], [1.0]], [[1], [2]]),
     ValueError, r"X\[0\] has dtype float64; sequences of different lengths must hold integer"),
    ("s2s big token", lambda: LSTMSeq2Seq(**FAST).fit(TOKENS + 2**31, TOKENS), ValueError,
     r"token \d+ at X\[0\]\[0\] is too large: token ids must be integers in \[0, 2147483647\)"),
    ("s2s floats after tokens", lambda: fitted("s2s").predict(TOKENS + 0.5), ValueError,
     r"X must hold integer tokens, as the data the model was fitted on"),
    ("s2s unknown token", lambda: fitted("s2s").predict(TOKENS + 7), ValueError,
     r"token \d+ at X\[0\]\[0\] is outside the input vocabulary of size 4"),
    ("s2s vocab param", lambda: LSTMSeq2Seq(input_vocab_size=2**31).fit(TOKENS, TOKENS),
     InvalidParameterError, r"'input_vocab_size' parameter of LSTMSeq2Seq must be"),
    ("s2s attention weights", lambda: fitted("s2s").attention_weights(TOKENS), ValueError,
     r"attention_weights needs a model fitted with attention='dot' or 'additive'"),
    # nn.LSTM
    ("nn input_size 0", lambda: LSTM(0, 4), ValueError,
     r"input_size must be a positive integer; got 0"),
    ("nn dtype", lambda: LSTM(3, 4, dtype=np.float16), ValueError,
     r"dtype must be float32 or float64; got float16"),
    ("nn x 2-D", lambda: lstm().forward(np.zeros((5, 3))), ValueError,
     r"x must be a 3-D array \[batch, timesteps, features\]; got a 2-D array of shape \(5, 3\)"),
    ("nn x features", lambda: lstm().forward(np.zeros((2, 5, 2))), ValueError,
     r"x has 2 features per step; this LSTM expects input_size=3"),
    ("nn x NaN", lambda: lstm().forward(np.full((1, 2, 3), np.nan)), ValueError,
     r"x contains NaN or infinity"),
    ("nn x strings", lambda: lstm().forward(np.full((1, 2, 3), "a")), TypeError,
     r"x must hold real numbers; got an array of dtype <U1"),
    ("nn h0 shape", lambda: lstm().forward(np.zeros((2, 5, 3)), h0=np.zeros((1, 3, 4))),
     ValueError, r"h0 must have shape \(1, 2, 4\) .*got a 3-D array of shape \(1, 3, 4\)"),
    ("nn mask shape", lambda: lstm().forward(np.zeros((2, 5, 3)), mask=np.ones((2, 4))),
     ValueError, r"mask must have shape \(2, 5\) \[batch, timesteps\]"),
    ("nn backward first", lambda: lstm().backward(np.zeros((2, 5, 4))), RuntimeError,
     r"backward needs a forward pass first"),
    ("nn dy shape", lambda: lstm_after_forward().backward(np.zeros((2, 4, 4))), ValueError,
     r"dy must have shape \(2, 5, 4\) \(the shape of the last forward output\)"),
    ("nn set shape", lambda: _set(lstm(), "weight_ih_l0", np.zeros((16, 1))), ValueError,
     r"weight_ih_l0 must have shape \(16, 3\) like PyTorch's; got a 2-D array of shape \(16, 1\)"),
    ("nn set unknown", lambda: _set(lstm(), "weight_xx", 1), AttributeError,
     r"'LSTM' object has no parameter 'weight_xx'"),
    ("nn set size", lambda: _set(lstm(), "hidden_size", 5), AttributeError,
     r"hidden_size cannot be changed after construction"),
]  # fmt: skip


def test_the_catalogue_is_large():
    assert len(CATALOGUE) >= 60
    assert len({name for name, *_ in CATALOGUE}) == len(CATALOGUE)


@pytest.mark.parametrize("name, call, error, message", CATALOGUE, ids=[c[0] for c in CATALOGUE])
def test_bad_input_gets_a_clear_error(name, call, error, message):
    with pytest.raises(Exception) as info:
        call()
    assert type(info.value) is error, f"{name}: {type(info.value).__name__}: {info.value}"
    assert re.search(message, str(info.value)), f"{name}: {info.value}"


# -- a property-based fuzz ----------------------------------------------------------------------

# LSTMLEARN_FUZZ_EXAMPLES runs a deeper fuzz on demand.
FUZZ = settings(
    max_examples=int(os.environ.get("LSTMLEARN_FUZZ_EXAMPLES", 60)),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    derandomize=True,
)


@st.composite
def layouts(draw):
    """An input of random shape, dtype and memory layout, and its canonical float64 copy."""
    batch = draw(st.integers(1, 5))
    steps = draw(st.integers(1, 7))
    dtype = draw(st.sampled_from([np.float64, np.float32, np.float16, np.int8, np.bool_]))
    seed = draw(st.integers(0, 2**16))
    x = np.random.default_rng(seed).normal(size=(batch, steps, 3)) * 2
    x = x.astype(dtype)
    layout = draw(st.sampled_from(["c", "fortran", "strided", "reversed", "list"]))
    if layout == "fortran":
        given_x = np.asfortranarray(x)
    elif layout == "strided":
        wide = np.zeros((batch, steps, 6), dtype=dtype)
        wide[:, :, ::2] = x
        given_x = wide[:, :, ::2]
    elif layout == "reversed":
        given_x = x[::-1, ::-1][::-1, ::-1]
    elif layout == "list":
        given_x = x.tolist()
    else:
        given_x = x
    mask = None
    if draw(st.booleans()):
        mask = np.random.default_rng(seed + 1).random((batch, steps)) > 0.3
    return given_x, np.ascontiguousarray(x, dtype=np.float64), mask


@FUZZ
@given(case=layouts(), threads=st.sampled_from([1, 2]))
def test_fuzz_nn_lstm_layouts(case, threads):
    given_x, x, mask = case
    module = LSTM(3, 5, num_layers=2, dtype=np.float64, random_state=1)
    y, (h, _) = module.forward(given_x, mask=mask, n_threads=threads)
    y_ref, (h_ref, _) = module.forward(x, mask=mask, n_threads=1)
    np.testing.assert_array_equal(y, y_ref)
    np.testing.assert_array_equal(h, h_ref)
    assert np.isfinite(y).all()
    grads = module.backward(np.ones_like(y), n_threads=threads)
    assert grads.dx.shape == x.shape and np.isfinite(grads.dx).all()


_FUZZ_MODEL = None


def _fuzz_model():
    global _FUZZ_MODEL
    if _FUZZ_MODEL is None:
        X, y = data(n=30, steps=4, features=3)
        _FUZZ_MODEL = LSTMRegressor(dtype=np.float64, **FAST).fit(X, y)
    return _FUZZ_MODEL


@FUZZ
@given(case=layouts())
def test_fuzz_predict_layouts(case):
    given_x, x, mask = case
    model = _fuzz_model()
    np.testing.assert_array_equal(model.predict(given_x), model.predict(x))
    if mask is not None:
        # A ragged list: each sequence cut at its first masked step.
        lengths = [int(np.argmin(m)) if not m.all() else len(m) for m in mask]
        seqs = [s[: max(1, k)] for s, k in zip(x, lengths, strict=True)]
        alone = np.array([model.predict(s[None])[0] for s in seqs])
        np.testing.assert_array_equal(model.predict(seqs), alone)


@FUZZ
@given(
    shape=st.lists(st.integers(0, 4), min_size=0, max_size=5),
    dtype=st.sampled_from([np.float64, np.complex64, np.str_, object, np.int64]),
    fill=st.sampled_from([0.0, np.nan, np.inf, 1e300]),
)
def test_fuzz_bad_predict_input_raises_only_clear_errors(shape, dtype, fill):
    model = _fuzz_model()
    x = np.full(shape, fill).astype(dtype) if dtype is not np.str_ else np.full(shape, "a")
    try:
        out = model.predict(x)
    except (ValueError, TypeError) as error:
        assert str(error)
    else:
        assert np.isfinite(out).all() or fill == 1e300


# -- missing values: refused with advice, or masked as padding is ----------------------


def test_nan_steps_are_refused_with_advice_or_masked_out():
    X, y = data(n=30, steps=6)
    holes = X.copy()
    holes[3, 2, 1] = np.nan  # an interior step
    holes[5, 4:, :] = np.nan  # a missing tail
    with pytest.raises(ValueError, match=r"NaN at step 2 of sequence 3.*missing='mask'"):
        LSTMRegressor(**FAST).fit(holes, y)
    model = LSTMRegressor(missing="mask", **FAST).fit(holes, y)
    assert np.isnan(holes).sum() == 5  # the caller's array is not touched
    # A masked step is skipped: the state is carried over it.
    got = model.predict(holes[[3, 5]])
    alone = [np.delete(X[3], 2, axis=0), X[5, :4]]
    np.testing.assert_array_equal(got, model.predict(alone))
    with pytest.raises(ValueError, match="Sequence 0 of X has no step without NaN"):
        model.predict(np.full((1, 3, 2), np.nan))
    with pytest.raises(ValueError, match="infinity"):
        model.predict(np.full((1, 3, 2), np.inf))
