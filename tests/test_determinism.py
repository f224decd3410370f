"""Results are bitwise identical for every thread count."""

import numpy as np
import pytest

from conftest import random_lstm


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
def test_bitwise_identical_for_any_thread_count(dtype):
    # B = 50 spans several batch chunks; H = 40 several gate blocks.
    B, T, F, H, L = 50, 11, 6, 40, 2
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
