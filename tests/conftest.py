import os
import signal

# Keras runs on its PyTorch backend in the tests: no TensorFlow needed.
os.environ.setdefault("KERAS_BACKEND", "torch")

import numpy as np
import pytest

from lstmlearn import _engine
from lstmlearn.nn import LSTM


@pytest.fixture(autouse=True, scope="session")
def _teams_whatever_the_load():
    """Run the engine's multi-thread teams even on a busy machine.

    The engine runs a team on the caller alone while the machine has more
    runnable threads than CPUs; the tests compare thread counts bit for bit,
    so they turn that off to run the same code whatever else the machine does.
    """
    _engine.core._set_oversubscription_check(False)
    yield
    _engine.core._set_oversubscription_check(True)


@pytest.fixture(autouse=True, scope="session")
def _ctrl_c_reaches_python():
    """Let the interrupt tests' simulated Ctrl-C arrive wherever pytest runs.

    A shell starts a background job with SIGINT ignored, and
    `_thread.interrupt_main` does nothing while it is: the tests that check
    what an interrupt keeps would then see no interrupt at all.
    """
    before = signal.getsignal(signal.SIGINT)
    if before == signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, before)


def require_torch():
    """Import torch for oracle tests.

    Skipped only on a developer's machine without torch; CI sets
    LSTMLEARN_REQUIRE_ORACLE=1, so a missing torch fails instead of skipping.
    """
    if os.environ.get("LSTMLEARN_REQUIRE_ORACLE") == "1":
        import torch

        return torch
    return pytest.importorskip("torch")


def random_lstm(
    F, H, L=1, bidirectional=False, dtype=np.float64, seed=0, scale=0.5, n_threads=-1
) -> LSTM:
    """An LSTM with random weights and non-zero biases."""
    lstm = LSTM(F, H, L, bidirectional, dtype, random_state=seed, n_threads=n_threads)
    rng = np.random.default_rng(seed + 1)
    lstm.flat_parameters[:] = rng.uniform(-scale, scale, lstm.flat_parameters.size)
    return lstm


def rel_err(a, b) -> float:
    """max |a - b| relative to the largest magnitude of the reference b."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-30))


def numeric_grad(f, array, eps=1e-6):
    """Central differences of the scalar f() with respect to every entry of array.

    `array` is perturbed in place (and restored), so f must read it.
    """
    grad = np.zeros_like(array)
    flat, gflat = array.reshape(-1), grad.reshape(-1)
    for k in range(flat.size):
        old = flat[k]
        flat[k] = old + eps
        up = f()
        flat[k] = old - eps
        down = f()
        flat[k] = old
        gflat[k] = (up - down) / (2 * eps)
    return grad
