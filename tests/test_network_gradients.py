"""Finite-difference check of the whole network's gradient (float64).

One epoch of plain SGD with learning rate 1 over a single mini-batch moves the
parameters by exactly minus the gradient, so the training epoch itself is what
is checked: forward, loss, backward through the head, merges and layers.
"""

import numpy as np
import pytest

from lstmlearn import _engine

EPS = 1e-6


def build(merge="concat", bidirectional=False, hidden=(3,), per_step=False, loss="squared_error"):
    outputs = 3 if loss == "log_loss" else 2
    net = _engine.core.NetworkF64(
        2, list(hidden), bidirectional, merge, 0.0, 0.0, outputs, per_step, loss, 1.0
    )
    return net, outputs


def problem(net, outputs, per_step, loss, masked, seed=0):
    rng = np.random.default_rng(seed)
    N, T = 4, 5
    x = rng.normal(size=(N, T, 2))
    mask = None
    if masked:
        lengths = np.array([5, 3, 1, 4])
        mask = (np.arange(T)[None] < lengths[:, None]).astype(np.uint8)
    shape = (N, T) if per_step else (N,)
    targets = labels = None
    if loss == "log_loss":
        labels = rng.integers(0, outputs, size=shape).astype(np.int32)
    else:
        targets = rng.normal(size=(*shape, outputs)) * 2.0
    weights = rng.uniform(0.5, 2.0, size=shape)
    params = rng.uniform(-0.6, 0.6, size=net.parameter_count)
    return x, mask, targets, labels, weights, params


def sgd_gradient(net, params, x, mask, targets, labels, weights):
    p = params.copy()
    m, v = np.zeros_like(p), np.zeros_like(p)
    status, _, batches, _ = net.train_epoch(
        p, m, v, 0, x, mask, targets, labels, weights, len(x), False, 0.0, 0.0, "sgd", 1.0,
        0.9, 0.999, 1e-7, 0.0, False, 0.9, 0, 1,
    )  # fmt: skip
    assert status == "ok" and batches == 1
    return params - p


CASES = [
    dict(),
    dict(hidden=(3, 2)),
    dict(bidirectional=True, merge="concat"),
    dict(bidirectional=True, merge="sum", hidden=(2, 3)),
    dict(bidirectional=True, merge="mul"),
    dict(bidirectional=True, merge="ave", per_step=True),
    dict(per_step=True, masked=True),
    dict(bidirectional=True, merge="concat", masked=True, hidden=(3, 2)),
    dict(loss="log_loss"),
    dict(loss="log_loss", per_step=True, masked=True, bidirectional=True, merge="mul"),
    dict(loss="huber"),
    dict(loss="absolute_error", per_step=True),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: "-".join(f"{k}={v}" for k, v in c.items()))
def test_network_gradient_matches_finite_differences(case):
    case = dict(case)
    masked = case.pop("masked", False)
    per_step = case.get("per_step", False)
    loss = case.get("loss", "squared_error")
    net, outputs = build(**case)
    x, mask, targets, labels, weights, params = problem(net, outputs, per_step, loss, masked)
    analytic = sgd_gradient(net, params, x, mask, targets, labels, weights)

    def f(p):
        return net.evaluate(p, x, mask, targets, labels, weights, len(x), 1)

    numeric = np.empty_like(params)
    for k in range(params.size):
        up, down = params.copy(), params.copy()
        up[k] += EPS
        down[k] -= EPS
        numeric[k] = (f(up) - f(down)) / (2 * EPS)
    # The absolute loss has kinks; stay away from them by tolerance, not luck.
    atol = 1e-5 if loss == "absolute_error" else 1e-7
    np.testing.assert_allclose(analytic, numeric, rtol=1e-5, atol=atol)
    assert np.abs(analytic).max() > 1e-3  # the check is not vacuous
