"""Finite-difference check of the whole network's gradient (float64).

One epoch of plain SGD with learning rate 1 over a single mini-batch moves the
parameters by exactly minus the gradient, so the training epoch itself is what
is checked: forward, loss, backward through the head, merges and layers.
"""

import numpy as np
import pytest

from lstmlearn import _engine

EPS = 1e-6


# Conv front ends: frames of 7 steps x 2 features (conv1d) and 5 x 4 x 2
# (conv2d), flattened per time step as the engine takes them.
FRONT_ENDS = {
    None: ({}, 2),
    "conv1d": (dict(front_end="conv1d", frame=[7, 2], conv_filters=2, kernel=[3], pool_size=2), 14),
    "conv2d": (
        dict(front_end="conv2d", frame=[5, 4, 2], conv_filters=2, kernel=[2, 2], pool_size=2),
        40,
    ),
}


def build(
    merge="concat",
    bidirectional=False,
    hidden=(3,),
    per_step=False,
    loss="squared_error",
    front=None,
    pooling="last",
):
    outputs = 3 if loss == "log_loss" else 2
    kwargs, features = FRONT_ENDS[front]
    net = _engine.core.NetworkF64(
        features, list(hidden), bidirectional, merge, 0.0, 0.0, outputs, per_step, loss, 1.0,
        pooling=pooling, attention_units=3, **kwargs,
    )  # fmt: skip
    return net, outputs, features


def problem(net, outputs, per_step, loss, masked, features=2, seed=0):
    rng = np.random.default_rng(seed)
    N, T = 4, 5
    x = rng.normal(size=(N, T, features))
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
    dict(front="conv1d"),
    dict(front="conv2d", loss="log_loss"),
    dict(front="conv1d", hidden=(3, 2), masked=True, bidirectional=True, merge="sum"),
    dict(pooling="mean", masked=True),
    dict(pooling="mean", bidirectional=True, merge="concat", hidden=(2, 3)),
    dict(pooling="attention", masked=True),
    dict(pooling="attention", bidirectional=True, merge="ave", loss="log_loss", masked=True),
    dict(front="conv2d", pooling="attention", bidirectional=True, masked=True),
    dict(front="conv1d", pooling="mean", loss="huber"),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: "-".join(f"{k}={v}" for k, v in c.items()))
def test_network_gradient_matches_finite_differences(case):
    case = dict(case)
    masked = case.pop("masked", False)
    per_step = case.get("per_step", False)
    loss = case.get("loss", "squared_error")
    net, outputs, features = build(**case)
    x, mask, targets, labels, weights, params = problem(
        net, outputs, per_step, loss, masked, features
    )
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
    for name, offset, shape in net.layout():
        if name.startswith(("conv.", "pool.")):  # the new stages are reached by the gradient
            assert np.abs(analytic[offset : offset + int(np.prod(shape))]).max() > 1e-5, name


def test_pooling_layouts_and_attention_weights():
    net, _, features = build(front="conv2d", pooling="attention", bidirectional=True)
    names = [name for name, _, _ in net.layout()]
    assert names[-5:] == ["conv.weight", "conv.bias", "pool.weight", "pool.bias", "pool.v"]
    shapes = {name: tuple(shape) for name, _, shape in net.layout()}
    assert shapes["conv.weight"] == (2, 2, 2, 2) and shapes["pool.weight"] == (3, 6)
    x, mask, *_, params = problem(net, 2, False, "squared_error", True, features)
    w = np.empty(x.shape[:2])
    net.attention_weights(params, x, mask, w, 3, 1)
    np.testing.assert_allclose(w.sum(axis=1), 1.0, rtol=1e-12)
    assert (w[mask == 0] == 0).all() and (w[mask == 1] > 0).all()
    last, _, _ = build(pooling="mean")
    with pytest.raises(ValueError, match="pooling"):
        last.attention_weights(np.zeros(last.parameter_count), x[..., :2], None, w, 4, 1)
    with pytest.raises(ValueError, match="per_step"):
        build(pooling="mean", per_step=True)
    with pytest.raises(ValueError, match="input_size"):
        _engine.core.NetworkF64(
            13, [3], False, "concat", 0.0, 0.0, 1, False, "squared_error", 1.0,
            **FRONT_ENDS["conv1d"][0],
        )  # fmt: skip


# head_dropout: the masks come from the epoch's seed, so the training loss that
# train_epoch reports (plain SGD at learning rate 0 leaves the parameters as
# they are) is, for one seed, a function of the parameters whose gradient the
# training step must follow.
HEAD_DROPOUT_CASES = [
    dict(),
    dict(bidirectional=True, merge="concat", hidden=(3, 2), masked=True),
    dict(per_step=True, masked=True, loss="log_loss"),
    dict(pooling="attention", masked=True),
    dict(fcn=True),
]


def training_loss(net, params, x, mask, targets, labels, weights, seed):
    p = params.copy()
    m, v = np.zeros_like(p), np.zeros_like(p)
    status, loss, _, _ = net.train_epoch(
        p, m, v, 0, x, mask, targets, labels, weights, len(x), False, 0.0, 0.0, "sgd", 0.0,
        0.9, 0.999, 1e-7, 0.0, False, 0.9, seed, 1,
    )  # fmt: skip
    assert status == "ok"
    return loss


@pytest.mark.parametrize(
    "case", HEAD_DROPOUT_CASES, ids=lambda c: "-".join(f"{k}={v}" for k, v in c.items()) or "last"
)
def test_head_dropout_gradient_matches_finite_differences(case):
    case = dict(case)
    masked = case.pop("masked", False)
    fcn = case.pop("fcn", False)
    per_step = case.get("per_step", False)
    loss = case.get("loss", "squared_error")
    if fcn:
        net = _engine.core.NetworkF64(
            2, [3], False, "concat", 0.0, 0.0, 2, False, loss, 1.0,
            fcn_filters=[4, 3], fcn_kernels=[3, 2], head_dropout=0.5,
        )  # fmt: skip
        outputs, features = 2, 2
    else:
        net, outputs, features = build(**case)
        kept = build(**case)[0]  # the same network without head dropout
        net = _engine.core.NetworkF64(
            features, list(case.get("hidden", (3,))), case.get("bidirectional", False),
            case.get("merge", "concat"), 0.0, 0.0, outputs, per_step, loss, 1.0,
            pooling=case.get("pooling", "last"), attention_units=3, head_dropout=0.5,
        )  # fmt: skip
    x, mask, targets, labels, weights, params = problem(
        net, outputs, per_step, loss, masked, features
    )
    for name, offset, shape in net.layout():
        if name.endswith("running_var"):  # a variance for evaluate's batch normalisation
            params[offset : offset + int(np.prod(shape))] = 1.0
    seed = 5
    p = params.copy()
    m, v = np.zeros_like(p), np.zeros_like(p)
    net.train_epoch(
        p, m, v, 0, x, mask, targets, labels, weights, len(x), False, 0.0, 0.0, "sgd", 1.0,
        0.9, 0.999, 1e-7, 0.0, False, 0.9, seed, 1,
    )  # fmt: skip
    analytic = params - p
    numeric = np.empty_like(params)
    for k in range(params.size):
        up, down = params.copy(), params.copy()
        up[k] += EPS
        down[k] -= EPS
        numeric[k] = (
            training_loss(net, up, x, mask, targets, labels, weights, seed)
            - training_loss(net, down, x, mask, targets, labels, weights, seed)
        ) / (2 * EPS)
    trained = np.ones(params.size, bool)  # not batch normalisation's running statistics
    for name, offset, shape in net.layout():
        if "running" in name:
            trained[offset : offset + int(np.prod(shape))] = False
    np.testing.assert_allclose(analytic[trained], numeric[trained], rtol=1e-5, atol=1e-7)
    # Some of the LSTM's features were dropped: the dense weights that read
    # them get no gradient from those rows, so the loss differs from the
    # undropped one, which evaluate (no dropout) still reports.
    train_loss = training_loss(net, params, x, mask, targets, labels, weights, seed)
    eval_loss = net.evaluate(params, x, mask, targets, labels, weights, len(x), 1)
    assert abs(train_loss - eval_loss) > 1e-6
    if not fcn:
        assert eval_loss == kept.evaluate(params, x, mask, targets, labels, weights, len(x), 1)
    # Another seed draws other masks.
    assert training_loss(net, params, x, mask, targets, labels, weights, seed + 1) != train_loss


def test_head_dropout_rate_is_checked():
    with pytest.raises(ValueError, match=r"dropout rates must be in \[0, 1\)"):
        _engine.core.NetworkF64(2, [3], False, "concat", 0.0, 0.0, 2, False, "squared_error", 1.0,
                                head_dropout=1.0)  # fmt: skip
