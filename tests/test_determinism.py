"""Results are bitwise identical for every thread count."""

import multiprocessing
import sys

import numpy as np
import pytest

from conftest import random_lstm


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
@pytest.mark.parametrize(
    "shape",
    # B = 50 spans several batch chunks, H = 40 several gate blocks; B = 150
    # puts more rows in one thread's group than one recurrent product takes,
    # and H = 130 leaves a partial gate block.
    [(50, 11, 6, 40, 2), (150, 5, 3, 130, 1)],
    ids=["B50-H40", "B150-H130"],
)
def test_bitwise_identical_for_any_thread_count(dtype, shape):
    B, T, F, H, L = shape
    rng = np.random.default_rng(3)
    x = rng.normal(size=(B, T, F)).astype(dtype)
    mask = rng.random((B, T)) > 0.2
    dy = rng.normal(size=(B, T, 2 * H)).astype(dtype)
    dh = rng.normal(size=(2 * L, B, H)).astype(dtype)
    lstm = random_lstm(F, H, L, bidirectional=True, dtype=dtype, seed=5)

    results = {}
    for n_threads in (1, 2, 3, 8):
        y, (h_n, c_n) = lstm.forward(x, mask=mask, n_threads=n_threads)
        g = lstm.backward(dy, dh, n_threads=n_threads)
        results[n_threads] = [y, h_n, c_n, g.dx, g.dh0, g.dc0, *g.parameters.values()]
    for n_threads in (2, 3, 8):
        for a, b in zip(results[1], results[n_threads], strict=True):
            assert a.tobytes() == b.tobytes(), f"n_threads={n_threads} differs from 1"


def test_module_thread_setting_is_used_and_results_agree():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 7, 3))
    one = random_lstm(3, 9, n_threads=1, seed=2)
    many = random_lstm(3, 9, n_threads=-1, seed=2)
    assert one.forward(x)[0].tobytes() == many.forward(x)[0].tobytes()


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("bidirectional", [False, True], ids=["uni", "bi"])
@pytest.mark.parametrize(
    "hidden",
    [(200, 20), (24,), (40,), (16, 12, 8)],
    ids=["H200-20", "H24", "H40", "H16-12-8"],
)
def test_predict_bitwise_identical_for_any_threads_and_batch(dtype, bidirectional, hidden):
    # H = 200 spans several packed panels at every SIMD level: a batch of one or
    # two splits each step's hidden units across threads, a batch of 40 splits
    # the rows. With H = 24 a step is too small to split: one or two rows
    # project all steps' inputs up front instead. Three layers of at most 16
    # units (never split) run as a pipeline on several threads when the batch
    # is one chunk (1, 2 or 9 rows here) and longer than 8 steps, the upper
    # layers projecting their inputs in chunks of steps as they arrive
    # (sequences of up to 19 steps: several chunks and a partial one).
    # The cells of a step run in groups of up to four blocks of 16 units: one
    # row of H 24 or H 40 fills two or three, a batch of 40 fills all four.
    # Variable lengths make masked steps. Every split must give the same bits
    # as one thread on the whole batch.
    from lstmlearn import LSTMRegressor

    rng = np.random.default_rng(4)
    X = [rng.normal(size=(int(n), 3)).astype(dtype) for n in rng.integers(3, 20, size=40)]
    y = rng.normal(size=40)
    model = LSTMRegressor(
        hidden_layer_sizes=hidden,
        bidirectional=bidirectional,
        max_iter=1,
        random_state=0,
        dtype=dtype,
        n_jobs=1,
    ).fit(X, y)
    reference = model.predict(X)
    for n_jobs in (1, 2, 3, 8):
        model.set_params(n_jobs=n_jobs)
        assert model.predict(X).tobytes() == reference.tobytes(), f"n_jobs={n_jobs}"
        one = np.concatenate([model.predict(X[k : k + 1]) for k in range(5)])
        assert one.tobytes() == reference[:5].tobytes(), f"n_jobs={n_jobs}, one by one"
        two = model.predict(X[5:7])
        assert two.tobytes() == reference[5:7].tobytes(), f"n_jobs={n_jobs}, two rows"
        nine = model.predict(X[7:16])
        assert nine.tobytes() == reference[7:16].tobytes(), f"n_jobs={n_jobs}, nine rows"


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
def test_training_bitwise_identical_for_any_thread_count(dtype):
    # A per-step classifier: its dense head has B*T = 600 rows (several row
    # blocks of the head's backward) and 70 features (two column blocks of the
    # head's weight gradient), every step of every epoch.
    from lstmlearn import LSTMClassifier

    rng = np.random.default_rng(6)
    X = rng.normal(size=(20, 30, 4)).astype(dtype)
    y = rng.integers(0, 5, size=(20, 30))
    fitted = {}
    for n_jobs in (1, 2, 3):
        model = LSTMClassifier(
            hidden_layer_sizes=(70,),
            return_sequences=True,
            max_iter=3,
            random_state=0,
            dtype=dtype,
            n_jobs=n_jobs,
        )
        fitted[n_jobs] = model.fit(X, y)
    reference = fitted[1]._params.tobytes()
    for n_jobs in (2, 3):
        assert fitted[n_jobs]._params.tobytes() == reference, f"n_jobs={n_jobs} differs from 1"
    assert (
        fitted[1]._params.tobytes()
        != LSTMClassifier(
            hidden_layer_sizes=(70,), return_sequences=True, max_iter=1, random_state=0, dtype=dtype
        )
        .fit(X, y)
        ._params.tobytes()
    )


def _predict_in_child(model, X, conn):
    conn.send(model.predict(X).tobytes())
    conn.close()


@pytest.mark.skipif(
    not sys.platform.startswith("linux"),
    reason="fork is tested on Linux: Windows has none, macOS's system libraries are not fork-safe",
)
def test_forked_child_predicts_after_parent_used_threads():
    # The parent's compute threads are not copied into a forked child (as
    # with multiprocessing's fork start method); the child must start its
    # own rather than wait for threads that do not exist.
    from lstmlearn import LSTMRegressor

    rng = np.random.default_rng(8)
    X = rng.normal(size=(64, 12, 3)).astype(np.float32)
    model = LSTMRegressor(hidden_layer_sizes=(48,), max_iter=1, random_state=0, n_jobs=2)
    model.fit(X, rng.normal(size=64))
    reference = model.predict(X).tobytes()  # the parent's pool threads exist now
    ctx = multiprocessing.get_context("fork")
    receive, send = ctx.Pipe(duplex=False)
    child = ctx.Process(target=_predict_in_child, args=(model, X, send))
    child.start()
    send.close()
    ready = receive.poll(60)
    child.join(5 if ready else 0)
    if child.is_alive():
        child.kill()
    assert ready, "the forked child did not answer within 60 s"
    assert receive.recv() == reference
    assert child.exitcode == 0
