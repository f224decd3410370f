"""Streaming inference (model.stream): one step at a time, bitwise equal to predict."""

import numpy as np
import pytest

from lstmlearn import LSTMClassifier, LSTMGenerator, LSTMRegressor


def stream_all(stream, X):
    """Outputs of every step of X [S, T, F] fed to a stream of S streams: [S, T, ...]."""
    return np.stack([stream.step(X[:, t]) for t in range(X.shape[1])], axis=1)


def fitted_regressor(hidden, per_step, dtype, n_out=1, F=3, seed=0, n_jobs=None):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(48, 9, F))
    if per_step:
        y = rng.normal(size=(48, 9, n_out))
    else:
        y = rng.normal(size=(48, n_out)) if n_out > 1 else rng.normal(size=48)
    model = LSTMRegressor(hidden, max_iter=2, random_state=seed, dtype=dtype, n_jobs=n_jobs)
    return model.fit(X, y)


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("hidden", [(7,), (33, 17), (16, 40, 5)], ids=["L1", "L2", "L3"])
@pytest.mark.parametrize("per_step", [True, False], ids=["per_step", "last_step"])
def test_equals_predict_bitwise(per_step, hidden, dtype):
    model = fitted_regressor(hidden, per_step, dtype, n_out=2)
    X = np.random.default_rng(1).normal(size=(5, 23, 3))
    stream = model.stream(n_streams=5)
    out = stream_all(stream, X)  # [5, 23, 2]
    if per_step:
        np.testing.assert_array_equal(out, model.predict(X))
    else:
        # The output at step t is predict on the sequence that ends there.
        for t in range(X.shape[1]):
            np.testing.assert_array_equal(out[:, t], model.predict(X[:, : t + 1]))


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
def test_one_stream_of_one_feature(dtype):
    model = fitted_regressor((12,), False, dtype, F=1)
    x = np.random.default_rng(2).normal(size=30)
    stream = model.stream()
    outs = [stream.step(v) for v in x]  # scalars in, scalars out
    assert np.ndim(outs[0]) == 0
    expected = [model.predict(x[None, : t + 1])[0] for t in range(30)]
    np.testing.assert_array_equal(outs, expected)


def test_streams_reset_resize_and_add():
    model = fitted_regressor((20, 10), True, np.float64, n_out=1)
    rng = np.random.default_rng(3)
    X = rng.normal(size=(4, 12, 3))
    stream = model.stream(2)
    assert stream.n_streams == 2
    first = stream_all(stream, X[:2, :5])
    np.testing.assert_array_equal(first, model.predict(X[:2, :5]))
    # Stream 1 starts again; stream 0 goes on.
    stream.reset(1)
    a = stream_all(stream, np.stack([X[0, 5:9], X[2, :4]]))
    np.testing.assert_array_equal(a[0], model.predict(X[:1, :9])[0, 5:])
    np.testing.assert_array_equal(a[1], model.predict(X[2:3, :4])[0])
    # Two more streams; the first two keep their state.
    assert list(stream.add(2)) == [2, 3]
    b = stream_all(stream, np.stack([X[0, 9:], X[2, 4:7], X[1, :3], X[3, :3]]))
    np.testing.assert_array_equal(b[0], model.predict(X[:1])[0, 9:])
    np.testing.assert_array_equal(b[1], model.predict(X[2:3, :7])[0, 4:])
    np.testing.assert_array_equal(b[2], model.predict(X[1:2, :3])[0])
    np.testing.assert_array_equal(b[3], model.predict(X[3:4, :3])[0])
    # Down to one stream (stream 0's state kept), then all reset.
    stream.resize(1)
    c = stream.step(X[1, 0][None])
    assert c.shape == (1, 1)  # [n_streams, O], as predict gives [n, T, O]
    stream.reset()
    np.testing.assert_array_equal(stream.step(X[3, 0]), model.predict(X[3:4, :1])[0, 0])
    stream.reset(-1)  # negative indices count from the end
    with pytest.raises(IndexError):
        stream.reset(1)
    with pytest.raises(ValueError):
        stream.resize(0)


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("per_step", [True, False], ids=["per_step", "last_step"])
def test_classifier_streams_probabilities(per_step, dtype):
    rng = np.random.default_rng(4)
    X = rng.normal(size=(60, 8, 2))
    y = rng.integers(0, 3, size=(60, 8) if per_step else 60)
    model = LSTMClassifier(
        (9, 6), max_iter=2, return_sequences=per_step, random_state=0, dtype=dtype
    ).fit(X, y)
    Xs = rng.normal(size=(3, 11, 2))
    out = stream_all(model.stream(3), Xs)
    assert out.shape == (3, 11, 3)
    if per_step:
        np.testing.assert_array_equal(out, model.predict_proba(Xs))
    else:
        for t in range(11):
            np.testing.assert_array_equal(out[:, t], model.predict_proba(Xs[:, : t + 1]))


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
def test_generator_streams_next_token_probabilities(dtype):
    text = "the cat sat on the mat. the dog sat on the log. " * 4
    gen = LSTMGenerator(24, seq_length=16, max_iter=2, random_state=0, dtype=dtype).fit(text)
    stream = gen.stream()
    context = "the dog sat on"
    outs = np.stack([stream.step(ch) for ch in context])
    # predict_proba reads the last seq_length tokens: the whole context here.
    for t in range(len(context)):
        np.testing.assert_array_equal(outs[t], gen.predict_proba(context[: t + 1])[0])
    # Token ids, two streams.
    stream2 = gen.stream(2)
    ids = [gen.vocabulary_.index(c) for c in "the"]
    for t, i in enumerate(ids):
        p = stream2.step([i, i])
        np.testing.assert_array_equal(p[0], gen.predict_proba("the"[: t + 1])[0])
        np.testing.assert_array_equal(p[1], p[0])
    with pytest.raises(ValueError, match="vocabulary"):
        stream.step("Z")


def test_stream_keeps_the_weights_it_was_made_with():
    model = fitted_regressor((8,), True, np.float64)
    X = np.random.default_rng(5).normal(size=(1, 6, 3))
    stream = model.stream()
    before = model.predict(X)
    model.set_params(warm_start=True).fit(X, np.ones((1, 6, 1)))
    np.testing.assert_array_equal(stream_all(stream, X), before)


def test_same_bits_for_any_n_jobs():
    model = fitted_regressor((64, 32), True, np.float32, n_out=3)
    X = np.random.default_rng(6).normal(size=(7, 10, 3))
    outs = []
    for n in (1, 2, 4):
        model.set_params(n_jobs=n)
        outs.append(stream_all(model.stream(7), X))
    np.testing.assert_array_equal(outs[0], outs[1])
    np.testing.assert_array_equal(outs[0], outs[2])
    np.testing.assert_array_equal(outs[0], model.predict(X))


@pytest.mark.parametrize(
    "params, message",
    [
        ({"bidirectional": True}, "reverse direction needs the future"),
        ({"pooling": "mean"}, "needs the output of every step"),
        ({"pooling": "attention"}, "needs the output of every step"),
        ({"conv_filters": 2, "conv_kernel_size": 2}, "conv front end"),
    ],
)
def test_refuses_what_cannot_stream(params, message):
    rng = np.random.default_rng(7)
    X = rng.normal(size=(8, 5, 4, 1)) if "conv_filters" in params else rng.normal(size=(8, 5, 2))
    model = LSTMRegressor(3, max_iter=1, random_state=0, **params).fit(X, rng.normal(size=8))
    with pytest.raises(ValueError, match=message):
        model.stream()


def test_bad_inputs():
    model = fitted_regressor((4,), False, np.float64)
    with pytest.raises(ValueError, match="n_streams"):
        model.stream(0)
    stream = model.stream(2)
    with pytest.raises(ValueError, match=r"\[2, 3\]"):
        stream.step(np.zeros((3, 3)))
    with pytest.raises(Exception, match="fitted"):
        LSTMRegressor().stream()


def test_seq2seq_has_no_stream():
    from lstmlearn import LSTMSeq2Seq

    assert not hasattr(LSTMSeq2Seq(), "stream")


@pytest.mark.parametrize(
    "hidden, F, n_streams",
    [((128,), 32, 1), ((70, 33), 5, 2), ((300,), 4, 3)],
    ids=["medium", "partial-groups", "wide"],
)
def test_threads_split_unit_groups_bitwise(hidden, F, n_streams):
    # Steps of 2^16 multiply-adds or more split each layer's units, in groups
    # of 16 (a last group may be partial), among the threads; every n_jobs
    # gives predict's bits.
    model = fitted_regressor(hidden, True, np.float32, n_out=3, F=F)
    X = np.random.default_rng(8).normal(size=(n_streams, 12, F)).astype(np.float32)
    expected = model.predict(X)
    for n in (1, 2, 3):
        model.set_params(n_jobs=n)
        stream = model.stream(n_streams)
        np.testing.assert_array_equal(stream_all(stream, X), expected)
        # A reset stream starts again from zero, whatever the team.
        stream.reset()
        np.testing.assert_array_equal(stream.step(X[:, 0]), expected[:, 0])


def test_non_contiguous_and_other_dtype_steps_take_the_slow_path():
    model = fitted_regressor((8,), True, np.float32, n_out=2)
    X = np.random.default_rng(9).normal(size=(2, 6, 3))
    expected = model.predict(X.astype(np.float32))
    stream = model.stream(2)
    # float64 input (converted), and a strided view of float32 input.
    wide = np.zeros((2, 6, 6), dtype=np.float32)
    wide[:, :, ::2] = X
    outs = [stream.step(X[:, 0])] + [stream.step(wide[:, t, ::2]) for t in range(1, 6)]
    np.testing.assert_array_equal(np.stack(outs, axis=1), expected)


def test_public_step_in_cpp_takes_and_refuses_what_the_python_one_does():
    # Two outputs: the step runs in C++; lists, other dtypes and one stream's
    # row convert as in Python, and a wrong shape is the same error.
    model = fitted_regressor((6,), True, np.float32, n_out=2)
    x = np.random.default_rng(10).normal(size=(1, 5, 3))
    expected = model.predict(x.astype(np.float32))[0]  # [5, 2]
    stream = model.stream()
    got = [
        stream.step(x[0, 0].astype(np.float32)),  # one stream's row [F]: [O]
        stream.step(x[0, 1].tolist()),  # a list
        stream.step(x[:, 2]),  # float64 [1, F]: [1, O]
        stream.step(x[:, 3].astype(np.float32)),
        stream.step(np.asfortranarray(x[:, 4].astype(np.float32))),
    ]
    assert got[0].shape == got[1].shape == (2,) and got[2].shape == (1, 2)
    np.testing.assert_array_equal(np.vstack(got), expected)
    with pytest.raises(ValueError, match=r"\[1, 3\]"):
        stream.step(np.zeros((2, 3), dtype=np.float32))
