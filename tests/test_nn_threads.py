"""nn.LSTM and the estimators under threads and fork().

One module shared by threads never crashes the process: each call runs under
the module's lock, and a backward whose forward was followed by another
thread's raises a clear RuntimeError instead of using that thread's batch.
A module per thread (copy.deepcopy) gives each thread its own exact results.
A process forked while another thread is inside a call gets usable models.
Crashes and hangs are tested in subprocesses, with a timeout, so that a
regression fails the test instead of killing or stalling the suite.
"""

import copy
import os
import pickle
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import numpy as np
import pytest

import lstmlearn

from conftest import random_lstm

# The folder holding the lstmlearn these tests import (installed, or the tree).
PYTHON_DIR = Path(lstmlearn.__file__).resolve().parents[1]
OTHER_THREAD = "pairs each backward with the last forward made on the same module"


def run_script(source: str, timeout: float) -> subprocess.CompletedProcess:
    """Run `source` in a fresh interpreter that imports this tree's lstmlearn."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(PYTHON_DIR), env.get("PYTHONPATH")) if p)
    try:
        return subprocess.run(
            [sys.executable, "-c", textwrap.dedent(source)],
            capture_output=True,
            text=True,
            timeout=timeout,
            env=env,
        )
    except subprocess.TimeoutExpired as e:
        pytest.fail(
            f"the subprocess hung (no end after {timeout} s); output:\n{e.stdout}\n{e.stderr}"
        )


# -- one module, many threads -------------------------------------------------


@pytest.mark.slow
def test_concurrent_forward_backward_on_one_module_never_crashes():
    # 8 threads, forward then backward on one module, batches of other sizes:
    # this killed the process (SIGSEGV or SIGABRT) in every run. Now each
    # pair either completes or raises the clear error; nothing else escapes.
    result = run_script(
        f"""
        import sys, threading
        import numpy as np
        from lstmlearn.nn import LSTM

        problems = []
        threading.excepthook = lambda args: problems.append(repr(args.exc_value))
        rng = np.random.RandomState(0)
        xs = [rng.rand(b, 9, 4) for b in (1, 3, 5, 7, 2, 4, 6, 8)]
        for run in range(100):
            lstm = LSTM(4, 16, num_layers=2, random_state=0)

            def work(i):
                for _ in range(40):
                    try:
                        lstm.forward(xs[i], n_threads=1)
                        lstm.backward(np.ones((xs[i].shape[0], 9, 16)))
                    except RuntimeError as e:
                        if {OTHER_THREAD!r} not in str(e):
                            problems.append(repr(e))

            threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
        print(problems[:5])
        sys.exit(1 if problems else 0)
        """,
        timeout=300,
    )
    assert result.returncode == 0, (result.returncode, result.stdout, result.stderr[-2000:])


def run_in_thread(fn):
    """fn() on another thread; returns its result or raises its exception."""
    out = {}

    def target():
        try:
            out["value"] = fn()
        except BaseException as e:  # handed back to the caller
            out["error"] = e

    t = threading.Thread(target=target)
    t.start()
    t.join()
    if "error" in out:
        raise out["error"]
    return out["value"]


def reference_backward(x, dy):
    lstm = random_lstm(3, 5, L=2, seed=0)
    lstm.forward(x)
    return lstm.backward(dy)


def assert_same_gradients(got, want):
    np.testing.assert_array_equal(got.dx, want.dx)
    for name in want.parameters:
        np.testing.assert_array_equal(got.parameters[name], want.parameters[name])


def test_backward_after_another_threads_forward_raises_a_clear_error():
    # A forward, B forward (same shapes), A backward: A used to get B's
    # gradients without a word.
    lstm = random_lstm(3, 5, L=2, seed=0)
    rng = np.random.default_rng(1)
    xa, xb = rng.normal(size=(2, 4, 3)), rng.normal(size=(2, 4, 3))
    dy = rng.normal(size=(2, 4, 5))
    forwarded, resume = threading.Event(), threading.Event()
    out = {}

    def thread_b():
        lstm.forward(xb)
        forwarded.set()
        resume.wait(60)
        out["grads"] = lstm.backward(dy)  # B made the last forward: allowed

    lstm.forward(xa)
    b = threading.Thread(target=thread_b)
    b.start()
    forwarded.wait(60)
    try:
        with pytest.raises(RuntimeError, match=OTHER_THREAD) as info:
            lstm.backward(dy)
    finally:
        resume.set()
        b.join()
    message = str(info.value)
    assert "another thread" in message
    assert "copy.deepcopy" in message and "lock" in message
    assert_same_gradients(out["grads"], reference_backward(xb, dy))
    # After a forward of its own, A may backward again.
    lstm.forward(xa)
    assert_same_gradients(lstm.backward(dy), reference_backward(xa, dy))


def test_backward_after_another_threads_forward_of_other_shape_is_the_thread_error():
    # The Python-side shape check must not report B's shape to A.
    lstm = random_lstm(3, 5, seed=0)
    lstm.forward(np.zeros((2, 4, 3)))
    run_in_thread(lambda: lstm.forward(np.zeros((7, 6, 3))))
    with pytest.raises(RuntimeError, match=OTHER_THREAD):
        lstm.backward(np.ones((2, 4, 5)))


def test_single_thread_shape_errors_stay_friendly():
    lstm = random_lstm(3, 5, seed=0)
    lstm.forward(np.zeros((2, 4, 3)))
    with pytest.raises(ValueError, match=r"dy must have shape \(2, 4, 5\)"):
        lstm.backward(np.ones((3, 4, 5)))


def test_each_thread_with_its_own_module_gets_the_single_threaded_gradients():
    base = random_lstm(4, 8, L=2, bidirectional=True, seed=3)
    rng = np.random.default_rng(0)
    xs = [rng.normal(size=(b, 7, 4)) for b in (1, 3, 5, 2)]
    dys = [rng.normal(size=(x.shape[0], 7, 16)) for x in xs]
    want = []
    for x, dy in zip(xs, dys, strict=True):
        y, _ = base.forward(x)
        want.append((y, base.backward(dy)))

    got = [None] * len(xs)
    barrier = threading.Barrier(len(xs))

    def work(i):
        module = copy.deepcopy(base)
        barrier.wait()
        for _ in range(20):
            y, _ = module.forward(xs[i], n_threads=1)
            got[i] = (y, module.backward(dys[i], n_threads=1))

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(xs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for (y, g), (y_want, g_want) in zip(got, want, strict=True):
        np.testing.assert_array_equal(y, y_want)
        for a, b in zip(g[:3], g_want[:3], strict=True):
            np.testing.assert_array_equal(a, b)
        for name in g_want.parameters:
            np.testing.assert_array_equal(g.parameters[name], g_want.parameters[name])


def test_gradients_are_not_changed_by_a_later_backward():
    lstm = random_lstm(3, 5, seed=0)
    rng = np.random.default_rng(0)
    lstm.forward(rng.normal(size=(2, 4, 3)))
    first = lstm.backward(np.ones((2, 4, 5)))
    kept = {name: g.copy() for name, g in first.parameters.items()}
    lstm.forward(rng.normal(size=(3, 4, 3)))
    lstm.backward(np.ones((3, 4, 5)))
    for name, g in first.parameters.items():
        np.testing.assert_array_equal(g, kept[name])


# -- copies -------------------------------------------------------------------


@pytest.mark.parametrize(
    "duplicate",
    [copy.deepcopy, copy.copy, lambda m: pickle.loads(pickle.dumps(m))],
    ids=["deepcopy", "copy", "pickle"],
)
def test_copies_are_new_modules_with_the_same_weights(duplicate):
    lstm = random_lstm(3, 5, L=2, bidirectional=True, dtype=np.float32, seed=0, n_threads=2)
    x = np.random.default_rng(0).normal(size=(2, 4, 3))
    lstm.forward(x)  # a cache that the copy must not share
    other = duplicate(lstm)
    assert repr(other) == repr(lstm) and other.n_threads == 2
    assert other._impl is not lstm._impl
    np.testing.assert_array_equal(other.flat_parameters, lstm.flat_parameters)
    with pytest.raises(RuntimeError, match="forward pass first"):
        other.backward(np.ones((2, 4, 10)))
    y, _ = other.forward(x)
    np.testing.assert_array_equal(y, lstm.forward(x)[0])
    other.weight_hh_l0 = np.zeros_like(other.weight_hh_l0)
    assert np.any(lstm.weight_hh_l0 != 0)


# -- fork ---------------------------------------------------------------------

FORK_SCRIPT = """
import multiprocessing, os, signal, sys, threading, time, warnings
import numpy as np
from lstmlearn import LSTMRegressor
from lstmlearn.nn import LSTM

warnings.simplefilter("ignore")
rng = np.random.default_rng(0)
X = rng.normal(size=(400, 30, 3)).astype(np.float32)
y = X[:, :, 0].sum(axis=1)
model = LSTMRegressor(hidden_layer_sizes=64, max_iter=2, random_state=0).fit(X, y)
lstm = LSTM(3, 64, num_layers=2, random_state=0)
want = model.predict(X)
want_nn = lstm.forward(X)[0]

stop = threading.Event()
calls = [0]

def busy():
    while not stop.is_set():
        model.predict(X)
        lstm.forward(X[:50])
        calls[0] += 1

def child_result():
    # In the child: the thread that held the models' locks is gone.
    got = model.predict(X)
    got_nn = lstm.forward(X)[0]
    return np.array_equal(got, want) and np.array_equal(got_nn, want_nn)

def in_child():
    signal.alarm(60)  # a hang ends the child rather than the test run
    return 0 if child_result() else 1

def wait(pid, seconds):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        time.sleep(0.01)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    return "hung"

def mp_target():
    sys.exit(in_child())

thread = threading.Thread(target=busy)
thread.start()
codes = []
for k in range(6):
    while calls[0] <= k:  # fork while the thread is at work
        time.sleep(0.001)
    pid = os.fork()
    if pid == 0:
        os._exit(in_child())
    codes.append(wait(pid, 60))
context = multiprocessing.get_context("fork")
for k in range(3):
    time.sleep(0.01)
    process = context.Process(target=mp_target)
    process.start()
    process.join(60)
    if process.exitcode is None:
        process.kill()
        process.join()
    codes.append("hung" if process.exitcode is None else process.exitcode)
stop.set()
thread.join()
print(codes, calls[0])
sys.exit(0 if codes == [0] * len(codes) else 1)
"""


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="fork() while threads run: Linux")
def test_fork_while_another_thread_predicts():
    # The child used to wait forever for the lock that the parent's
    # predicting thread held when it was copied.
    result = run_script(FORK_SCRIPT, timeout=600)
    assert result.returncode == 0, (result.stdout, result.stderr[-3000:])
