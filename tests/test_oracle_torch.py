"""PyTorch's nn.LSTM as the oracle: outputs, final states and every gradient."""

import re

import numpy as np
import pytest

from lstmlearn.nn import LSTM

from conftest import rel_err, require_torch

torch = require_torch()

pytestmark = pytest.mark.oracle

# (B, T, F, H, layers, bidirectional)
CONFIGS = [
    (1, 1, 1, 1, 1, False),
    (1, 1, 1, 1, 1, True),
    (1, 7, 1, 33, 1, False),
    (5, 1, 4, 6, 2, False),
    (4, 12, 3, 33, 3, False),
    (17, 9, 5, 8, 1, True),
    (33, 13, 7, 17, 3, True),
    (40, 30, 16, 64, 2, False),
    # One or two rows against recurrent weights larger than L1: the packed
    # one-row product walks them a few panels at a time, and 4H = 364 and
    # 280 end in a partial panel (and a partial vector) in both dtypes.
    (1, 6, 5, 91, 1, True),
    (2, 5, 3, 70, 2, False),
]
# Largest relative error allowed: (outputs and states, gradients).
TOLERANCE = {np.float32: (1e-5, 1e-4), np.float64: (1e-10, 1e-10)}


def torch_reference(module, x, h0, c0, dy, dh, dc):
    xt = torch.tensor(x, requires_grad=True)
    h0t = torch.tensor(h0, requires_grad=True)
    c0t = torch.tensor(c0, requires_grad=True)
    y, (h_n, c_n) = module(xt, (h0t, c0t))
    loss = (y * torch.tensor(dy)).sum() + (h_n * torch.tensor(dh)).sum()
    loss = loss + (c_n * torch.tensor(dc)).sum()
    module.zero_grad(set_to_none=True)
    loss.backward()
    grads = {name: p.grad.numpy() for name, p in module.named_parameters()}
    return (
        (y.detach().numpy(), h_n.detach().numpy(), c_n.detach().numpy()),
        (xt.grad.numpy(), h0t.grad.numpy(), c0t.grad.numpy()),
        grads,
    )


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: "B{}-T{}-F{}-H{}-L{}-{}".format(*c))
def test_matches_torch(config, dtype):
    B, T, F, H, L, bidirectional = config
    D = 2 if bidirectional else 1
    torch.manual_seed(sum(config))
    module = torch.nn.LSTM(F, H, L, batch_first=True, bidirectional=bidirectional)
    module = module.to(torch.float32 if dtype == np.float32 else torch.float64)
    ours = LSTM.from_torch(module)
    assert ours.dtype == dtype

    rng = np.random.default_rng(B * 1000 + T)
    x = rng.normal(size=(B, T, F)).astype(dtype)
    h0 = rng.normal(size=(L * D, B, H)).astype(dtype)
    c0 = rng.normal(size=(L * D, B, H)).astype(dtype)
    dy = rng.normal(size=(B, T, D * H)).astype(dtype)
    dh = rng.normal(size=h0.shape).astype(dtype)
    dc = rng.normal(size=c0.shape).astype(dtype)

    (y_ref, hn_ref, cn_ref), (dx_ref, dh0_ref, dc0_ref), param_ref = torch_reference(
        module, x, h0, c0, dy, dh, dc
    )
    y, (h_n, c_n) = ours.forward(x, h0, c0)
    grads = ours.backward(dy, dh, dc)

    out_tol, grad_tol = TOLERANCE[dtype]
    for name, a, b in (("y", y, y_ref), ("h_n", h_n, hn_ref), ("c_n", c_n, cn_ref)):
        assert a.dtype == dtype
        assert rel_err(a, b) <= out_tol, (name, rel_err(a, b))
    for name, a, b in (
        ("dx", grads.dx, dx_ref),
        ("dh0", grads.dh0, dh0_ref),
        ("dc0", grads.dc0, dc0_ref),
    ):
        assert rel_err(a, b) <= grad_tol, (name, rel_err(a, b))
    assert set(grads.parameters) == set(param_ref)
    for name, ref in param_ref.items():
        assert grads.parameters[name].shape == ref.shape
        assert rel_err(grads.parameters[name], ref) <= grad_tol, (
            name,
            rel_err(grads.parameters[name], ref),
        )


def test_from_torch_copies_every_weight():
    module = torch.nn.LSTM(3, 5, 2, bidirectional=True)
    ours = LSTM.from_torch(module)
    for name, p in module.named_parameters():
        np.testing.assert_array_equal(getattr(ours, name), p.detach().numpy())


def test_from_torch_without_bias_gives_zero_biases():
    module = torch.nn.LSTM(3, 4, bias=False)
    ours = LSTM.from_torch(module)
    assert np.all(ours.bias_ih_l0 == 0) and np.all(ours.bias_hh_l0 == 0)
    x = np.random.default_rng(0).normal(size=(2, 5, 3)).astype(np.float32)
    y_ref, _ = module(torch.tensor(x).transpose(0, 1))
    y, _ = ours.forward(x)
    assert rel_err(y, y_ref.detach().numpy().transpose(1, 0, 2)) <= 1e-5


@pytest.mark.parametrize(
    "name, shape",
    [("weight_ih_l0", (16, 1)), ("weight_hh_l1", (4,)), ("bias_ih_l0", (1,)), ("bias_hh_l1", ())],
)
def test_from_torch_refuses_tensors_of_another_shape(name, shape):
    # NumPy would broadcast a (16, 1) weight into (16, 3), or a (1,) bias
    # into (16,), and the copy would run with made-up weights.
    module = torch.nn.LSTM(3, 4, 2)
    expected = tuple(getattr(module, name).shape)
    setattr(module, name, torch.nn.Parameter(torch.ones(shape)))
    message = rf"{name}\b.*{re.escape(str(shape))}.*{re.escape(str(expected))}"
    with pytest.raises(ValueError, match=message):
        LSTM.from_torch(module)


def test_from_torch_refuses_projections_and_other_modules():
    with pytest.raises(ValueError, match="proj_size"):
        LSTM.from_torch(torch.nn.LSTM(3, 4, proj_size=2))
    with pytest.raises(TypeError, match=r"torch\.nn\.LSTM"):
        LSTM.from_torch(torch.nn.GRU(3, 4))


@pytest.mark.parametrize("rows", [1, 2, 9])
def test_stacked_predictions_match_torch(rows):
    # Few rows through stacked layers of at most 16 units (too few to split
    # across threads): on more than one thread the
    # layers run as a pipeline, each upper layer projecting its input in
    # chunks of steps as the layer below delivers them (T = 21: two whole
    # chunks and a partial one). Checked against PyTorch's layers with the
    # same weights, in float64 so that only the engine's error shows.
    from lstmlearn import LSTMRegressor

    hidden = (16, 12, 8)
    rng = np.random.default_rng(11)
    X = rng.normal(size=(rows, 21, 3))
    model = LSTMRegressor(
        hidden_layer_sizes=hidden, max_iter=2, random_state=0, dtype=np.float64, n_jobs=2
    ).fit(rng.normal(size=(30, 21, 3)), rng.normal(size=30))
    weights = {
        name: model._params[at : at + int(np.prod(shape))].reshape(shape)
        for name, at, shape in model._network().layout()
    }
    x = torch.tensor(X)
    with torch.no_grad():
        for i, (f, h) in enumerate(zip((3, *hidden[:-1]), hidden, strict=True)):
            layer = torch.nn.LSTM(f, h, batch_first=True).double()
            for name, p in layer.named_parameters():
                p.copy_(torch.tensor(weights[f"layer{i}.{name}"]))
            x, _ = layer(x)
        want = x[:, -1] @ torch.tensor(weights["dense.weight"]).T + torch.tensor(
            weights["dense.bias"]
        )
    got = model.predict(X)
    assert rel_err(got, want.numpy()[:, 0]) < 1e-10


@pytest.mark.parametrize("rows", [1, 9, 64])
@pytest.mark.parametrize("hidden", [24, 200])
def test_one_hot_predictions_match_torch(hidden, rows):
    # One-hot steps (character codes, some all-zero padding): the engine
    # looks their input projections up rather than multiplying. At H = 200
    # one row splits each step's units across threads, each with its table.
    from lstmlearn import LSTMRegressor

    rng = np.random.default_rng(12)
    X = np.eye(12)[rng.integers(0, 12, size=(rows, 15))]
    X[0, :2] = 0.0
    model = LSTMRegressor(
        hidden_layer_sizes=hidden, max_iter=2, random_state=0, dtype=np.float64, n_jobs=2
    ).fit(X, rng.normal(size=rows))
    weights = {
        name: model._params[at : at + int(np.prod(shape))].reshape(shape)
        for name, at, shape in model._network().layout()
    }
    layer = torch.nn.LSTM(12, hidden, batch_first=True).double()
    with torch.no_grad():
        for name, p in layer.named_parameters():
            p.copy_(torch.tensor(weights[f"layer0.{name}"]))
        y, _ = layer(torch.tensor(X))
        want = y[:, -1] @ torch.tensor(weights["dense.weight"]).T + torch.tensor(
            weights["dense.bias"]
        )
    assert rel_err(model.predict(X), want.numpy()[:, 0]) < 1e-10
