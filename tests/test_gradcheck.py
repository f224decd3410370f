"""Finite-difference checks of every gradient the engine returns (float64)."""

import numpy as np
import pytest

from conftest import numeric_grad, random_lstm

CONFIGS = {
    "one_layer": dict(B=3, T=5, F=2, H=3, L=1, bidirectional=False, masked=False),
    "two_layers": dict(B=2, T=4, F=3, H=2, L=2, bidirectional=False, masked=False),
    "bidirectional": dict(B=2, T=4, F=2, H=3, L=1, bidirectional=True, masked=False),
    "stacked_bidirectional_masked": dict(B=3, T=5, F=2, H=2, L=2, bidirectional=True, masked=True),
    "masked": dict(B=3, T=6, F=2, H=3, L=1, bidirectional=False, masked=True),
    "recurrent_dropout": dict(
        B=3, T=5, F=2, H=3, L=2, bidirectional=True, masked=True, recurrent_dropout=True
    ),
}


def make_problem(B, T, F, H, L, bidirectional, masked, recurrent_dropout=False):
    rng = np.random.default_rng(42)
    lstm = random_lstm(F, H, L, bidirectional, seed=7)
    D = 2 if bidirectional else 1
    x = rng.normal(size=(B, T, F))
    h0 = rng.normal(size=(L * D, B, H))
    c0 = rng.normal(size=(L * D, B, H))
    mask = None
    if masked:
        mask = rng.random((B, T)) > 0.35
        mask[0, :] = True  # one full sequence
        mask[1, -2:] = False  # padding at the end
        mask[-1, 0] = False  # a missing first step
    rmask = None
    if recurrent_dropout:
        rmask = (rng.random((L * D, B, H)) > 0.3) / 0.7
    # The loss is a random linear function of every output.
    wy = rng.normal(size=(B, T, D * H))
    wh = rng.normal(size=h0.shape)
    wc = rng.normal(size=c0.shape)

    def loss(x_, h0_, c0_):
        y, (h_n, c_n) = lstm.forward(x_, h0_, c0_, mask, recurrent_mask=rmask)
        return float(np.sum(y * wy) + np.sum(h_n * wh) + np.sum(c_n * wc))

    return lstm, x, h0, c0, mask, (wy, wh, wc), loss


def assert_grad_close(analytic, numeric, what):
    np.testing.assert_allclose(analytic, numeric, rtol=1e-6, atol=1e-7, err_msg=what)


@pytest.mark.parametrize("name", list(CONFIGS))
def test_gradients_match_finite_differences(name):
    lstm, x, h0, c0, mask, (wy, wh, wc), loss = make_problem(**CONFIGS[name])
    loss(x, h0, c0)
    grads = lstm.backward(wy, wh, wc)

    def f():
        return loss(x, h0, c0)

    assert_grad_close(grads.dx, numeric_grad(f, x), "dx")
    assert_grad_close(grads.dh0, numeric_grad(f, h0), "dh0")
    assert_grad_close(grads.dc0, numeric_grad(f, c0), "dc0")
    for pname, param in lstm.named_parameters().items():
        assert_grad_close(grads.parameters[pname], numeric_grad(f, param), pname)
    if mask is not None:
        # Masked steps receive no input gradient: their input is never read.
        assert np.all(grads.dx[~mask] == 0)


def test_backward_twice_gives_the_same_gradients():
    lstm, x, h0, c0, mask, (wy, wh, wc), _ = make_problem(**CONFIGS["two_layers"])
    lstm.forward(x, h0, c0, mask)
    first = lstm.backward(wy, wh, wc)
    second = lstm.backward(wy, wh, wc)
    np.testing.assert_array_equal(first.dx, second.dx)
    for pname in first.parameters:
        np.testing.assert_array_equal(first.parameters[pname], second.parameters[pname])
