"""Truncated backpropagation through time (tbptt_steps).

The oracle is PyTorch running the same chunked computation: the state of
every layer carried into the next chunk with ``.detach()``, one optimizer step
per chunk for per-step targets, and for one target per sequence the state
detached before the last chunk (the earlier chunks have no loss).
"""

import numpy as np
import pytest

from lstmlearn import LSTMClassifier, LSTMGenerator, LSTMRegressor, _engine

from conftest import rel_err, require_torch

ENGINE = {np.float32: "NetworkF32", np.float64: "NetworkF64"}


def engine_network(F, hidden, n_out, per_step, dtype=np.float64, loss="squared_error"):
    return getattr(_engine.core, ENGINE[dtype])(
        F, list(hidden), False, "concat", 0.0, 0.0, n_out, per_step, loss, 1.0
    )


def random_params(net, seed, dtype=np.float64, scale=0.4):
    rng = np.random.default_rng(seed)
    return rng.uniform(-scale, scale, net.parameter_count).astype(dtype)


def train_epoch(net, params, x, mask, targets, batch_size, optimizer, lr, k, n_threads=1):
    m = np.zeros_like(params)
    v = np.zeros_like(params)
    status, loss, batches, step = net.train_epoch(
        params,
        m,
        v,
        0,
        x,
        mask,
        targets,
        None,
        None,
        batch_size,
        False,
        0.0,
        0.0,
        optimizer,
        lr,
        0.9,
        0.999,
        1e-12,
        0.0,
        False,
        0.9,
        7,
        n_threads,
        tbptt_steps=k,
    )
    assert status == "ok"
    return loss, batches, step


def torch_epoch(net, params, x, mask, targets, batch_size, optimizer, lr, k, per_step):
    """The chunked epoch in PyTorch (LSTMCell loops, so that masked steps carry the state)."""
    torch = require_torch()
    layout = {name: (offset, tuple(shape)) for name, offset, shape in net.layout()}

    def tensor(name):
        offset, shape = layout[name]
        size = int(np.prod(shape))
        return torch.nn.Parameter(torch.tensor(params[offset : offset + size].reshape(shape)))

    n_layers = sum(1 for name in layout if name.endswith("weight_ih_l0"))
    cells = []
    for i in range(n_layers):
        w_ih = tensor(f"layer{i}.weight_ih_l0")
        cell = torch.nn.LSTMCell(w_ih.shape[1], w_ih.shape[0] // 4).double()
        cell.weight_ih = w_ih
        cell.weight_hh = tensor(f"layer{i}.weight_hh_l0")
        cell.bias_ih = tensor(f"layer{i}.bias_ih_l0")
        cell.bias_hh = tensor(f"layer{i}.bias_hh_l0")
        cells.append(cell)
    dense_w, dense_b = tensor("dense.weight"), tensor("dense.bias")
    weights = [p for c in cells for p in (c.weight_ih, c.weight_hh, c.bias_ih, c.bias_hh)]
    weights += [dense_w, dense_b]
    if optimizer == "sgd":
        opt = torch.optim.SGD(weights, lr=lr)
    else:
        opt = torch.optim.Adam(weights, lr=lr, betas=(0.9, 0.999), eps=1e-12)
    N, T, _ = x.shape
    for start in range(0, N, batch_size):
        xb = torch.tensor(x[start : start + batch_size])
        mb = None if mask is None else torch.tensor(mask[start : start + batch_size], dtype=bool)
        yb = torch.tensor(targets[start : start + batch_size])
        B = xb.shape[0]
        state = [(torch.zeros(B, c.hidden_size, dtype=xb.dtype),) * 2 for c in cells]
        for t0 in range(0, T, k):
            t1 = min(T, t0 + k)
            outs = []
            for t in range(t0, t1):
                inp = xb[:, t]
                for i, cell in enumerate(cells):
                    h, c = cell(inp, state[i])
                    if mb is not None:
                        keep = mb[:, t : t + 1]
                        h = torch.where(keep, h, state[i][0])
                        c = torch.where(keep, c, state[i][1])
                    state[i] = (h, c)
                    inp = h
                outs.append(inp)
            if per_step:
                pred = torch.stack(outs, 1) @ dense_w.T + dense_b
                err = (pred - yb[:, t0:t1]) ** 2
                if mb is not None:
                    valid = mb[:, t0:t1]
                    if not valid.any():
                        state = [(h.detach(), c.detach()) for h, c in state]
                        continue
                    loss = err.mean(-1)[valid].mean()
                else:
                    loss = err.mean()
            elif t1 == T:
                pred = state[-1][0] @ dense_w.T + dense_b
                loss = ((pred - yb) ** 2).mean()
            else:  # no loss before the last chunk, whose backward stops here
                state = [(h.detach(), c.detach()) for h, c in state]
                continue
            opt.zero_grad()
            loss.backward()
            opt.step()
            state = [(h.detach(), c.detach()) for h, c in state]
    return np.concatenate(
        [
            p.detach().numpy().ravel()
            for c in cells
            for p in (c.weight_ih, c.weight_hh, c.bias_ih, c.bias_hh)
        ]
        + [dense_w.detach().numpy().ravel(), dense_b.detach().numpy().ravel()]
    )


def data(N, T, F, n_out, per_step, seed, ragged=False):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(N, T, F))
    y = rng.normal(size=(N, T, n_out) if per_step else (N, n_out))
    mask = None
    if ragged:  # padded at the end, some sequences shorter than a chunk's start
        lengths = rng.integers(1, T + 1, size=N)
        lengths[0] = T
        mask = (np.arange(T)[None, :] < lengths[:, None]).astype(np.uint8)
        x = x * mask[:, :, None]
    return x, mask, y


# (N, T, F, hidden, O, batch, k)
CASES = [
    (10, 12, 3, (5,), 2, 4, 5),
    (9, 11, 2, (4, 6), 1, 9, 3),
    (6, 7, 1, (3,), 1, 6, 1),
]


@pytest.mark.parametrize("ragged", [False, True], ids=["full", "masked"])
@pytest.mark.parametrize("optimizer, lr", [("sgd", 0.3), ("adam", 0.01)])
@pytest.mark.parametrize("per_step", [True, False], ids=["per_step", "last_step"])
@pytest.mark.parametrize("case", CASES, ids=lambda c: "N{}-T{}-F{}-H{}-O{}-B{}-k{}".format(*c))
def test_matches_torch_chunked(case, per_step, optimizer, lr, ragged):
    require_torch()
    N, T, F, hidden, n_out, batch, k = case
    net = engine_network(F, hidden, n_out, per_step)
    params = random_params(net, seed=N + T)
    x, mask, y = data(N, T, F, n_out, per_step, seed=k, ragged=ragged)
    ref = torch_epoch(net, params.copy(), x, mask, y, batch, optimizer, lr, k, per_step)
    before = params.copy()
    train_epoch(net, params, x, mask, y, batch, optimizer, lr, k)
    assert not np.array_equal(params, before)
    assert rel_err(params, ref) < 1e-5, rel_err(params, ref)
    # The full-BPTT epoch is another computation (when k < T).
    full = before.copy()
    train_epoch(net, full, x, mask, y, batch, optimizer, lr, 0)
    assert rel_err(full, ref) > 1e-5


@pytest.mark.parametrize("per_step", [True, False], ids=["per_step", "last_step"])
def test_updates_once_per_chunk(per_step):
    net = engine_network(2, (4,), 1, per_step)
    params = random_params(net, 0)
    x, mask, y = data(10, 9, 2, 1, per_step, 1)
    _, batches, step = train_epoch(net, params, x, mask, y, 4, "sgd", 0.1, 4)
    # 3 mini-batches; per step: 3 chunks (4 + 4 + 1 steps) each.
    assert batches == step == (9 if per_step else 3)


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
@pytest.mark.parametrize(
    "make, X, y",
    [
        ("regressor_last", None, None),
        ("regressor_per_step", None, None),
        ("classifier_masked", None, None),
    ],
)
def test_k_at_least_T_is_full_bptt_bitwise(make, X, y, dtype):
    rng = np.random.default_rng(3)
    T = 13
    if make == "regressor_last":
        X, y = rng.normal(size=(40, T, 2)), rng.normal(size=40)
        cls = LSTMRegressor
    elif make == "regressor_per_step":
        X, y = rng.normal(size=(40, T, 2)), rng.normal(size=(40, T, 1))
        cls = LSTMRegressor
    else:
        X = [rng.normal(size=(int(n), 2)) for n in rng.integers(3, T + 1, size=40)]
        y = rng.integers(0, 3, size=40)
        cls = LSTMClassifier
    params = {}
    for k in (None, T, T + 7):
        model = cls(
            (6, 5),
            max_iter=2,
            batch_size=16,
            dropout=0.1,
            recurrent_dropout=0.1,
            random_state=0,
            dtype=dtype,
            tbptt_steps=k,
        )
        params[k] = model.fit(X, y)._params
    np.testing.assert_array_equal(params[T], params[None])
    np.testing.assert_array_equal(params[T + 7], params[None])


@pytest.mark.parametrize("per_step", [True, False], ids=["per_step", "last_step"])
def test_same_bits_for_any_n_jobs(per_step):
    rng = np.random.default_rng(4)
    X = rng.normal(size=(70, 50, 3))
    y = rng.normal(size=(70, 50, 2) if per_step else (70, 2))
    fitted = [
        LSTMRegressor((24, 16), max_iter=2, tbptt_steps=8, dropout=0.1, random_state=1, n_jobs=n)
        .fit(X, y)
        ._params
        for n in (1, 2, 3)
    ]
    np.testing.assert_array_equal(fitted[0], fitted[1])
    np.testing.assert_array_equal(fitted[0], fitted[2])


def test_learns_with_short_chunks():
    # Sum of a long noisy sequence's first step, remembered across chunks:
    # per-step targets (the running mean), so every chunk has a loss.
    rng = np.random.default_rng(5)
    X = rng.normal(size=(256, 60, 1))
    y = np.cumsum(X, axis=1) / np.arange(1, 61)[None, :, None]
    model = LSTMRegressor(16, max_iter=30, learning_rate=0.01, tbptt_steps=10, random_state=0)
    model.fit(X, y)
    assert model.loss_curve_[-1] < 0.5 * model.loss_curve_[0]


def test_generator_takes_tbptt_steps():
    text = "the cat sat on the mat. " * 10
    gen = LSTMGenerator(16, seq_length=20, max_iter=2, tbptt_steps=5, random_state=0).fit(text)
    assert gen.get_params()["tbptt_steps"] == 5
    assert np.isfinite(gen.loss_curve_).all()


@pytest.mark.parametrize(
    "params, message",
    [
        ({"bidirectional": True}, "reverse direction needs the future"),
        ({"pooling": "mean"}, "needs the output of every step"),
        ({"pooling": "attention"}, "needs the output of every step"),
    ],
)
def test_refuses_what_cannot_be_truncated(params, message):
    X = np.random.default_rng(0).normal(size=(8, 6, 1))
    y = X.sum(axis=(1, 2))
    with pytest.raises(ValueError, match=message):
        LSTMRegressor(4, max_iter=1, tbptt_steps=2, **params).fit(X, y)


def test_engine_refuses_too():
    net = _engine.core.NetworkF64(1, [3], True, "concat", 0.0, 0.0, 1, False, "squared_error", 1.0)
    params = random_params(net, 0)
    x, mask, y = data(4, 6, 1, 1, False, 0)
    with pytest.raises(ValueError, match="reverse direction"):
        train_epoch(net, params, x, mask, y, 4, "sgd", 0.1, 2)


@pytest.mark.parametrize("value", [0, -1, 2.5, "3"])
def test_parameter_validation(value):
    X = np.zeros((4, 3, 1))
    with pytest.raises(ValueError, match="tbptt_steps"):
        LSTMRegressor(2, max_iter=1, tbptt_steps=value).fit(X, np.zeros(4))


def test_parameter_survives_clone_pickle_and_save(tmp_path):
    import pickle

    from sklearn.base import clone

    import lstmlearn

    X = np.random.default_rng(0).normal(size=(16, 12, 1))
    y = X.sum(axis=(1, 2))
    model = LSTMRegressor(4, max_iter=1, tbptt_steps=5, random_state=0).fit(X, y)
    assert clone(model).tbptt_steps == 5
    assert pickle.loads(pickle.dumps(model)).tbptt_steps == 5
    model.save(tmp_path / "m.safetensors")
    loaded = lstmlearn.load(tmp_path / "m.safetensors")
    assert loaded.tbptt_steps == 5
    np.testing.assert_array_equal(loaded.predict(X), model.predict(X))
    # A model pickled before the parameter existed gets the default.
    state = model.__getstate__()
    del state["tbptt_steps"]
    old = LSTMRegressor.__new__(LSTMRegressor)
    old.__setstate__(state)
    assert old.get_params()["tbptt_steps"] is None


def test_interrupt_inside_a_mini_batch_of_chunks():
    # One mini-batch of long sequences an epoch: Ctrl-C is polled before
    # every chunk, so it stops the second epoch midway (well before an
    # epoch's time), and the estimator keeps the state of the first.
    import _thread
    import threading
    import time

    rng = np.random.default_rng(6)
    X = rng.normal(size=(8, 100_000, 1))
    y = np.cumsum(X, axis=1) / np.arange(1, 100_001)[None, :, None]
    params = dict(hidden_layer_sizes=32, batch_size=8, tbptt_steps=50, random_state=0, n_jobs=1)
    timers, fired = [], []

    def interrupt():
        fired.append(time.perf_counter())
        _thread.interrupt_main()

    def interrupt_soon(estimator, logs):
        if logs["epoch"] == 1:
            timers.append(threading.Timer(0.02, interrupt))
            timers[-1].start()

    model = LSTMRegressor(max_iter=50, callbacks=interrupt_soon, **params)
    try:
        with pytest.raises(KeyboardInterrupt):
            model.fit(X, y)
    finally:
        for timer in timers:
            timer.cancel()
    stopped = time.perf_counter()
    assert model.n_iter_ == 1
    assert stopped - fired[0] < 0.5 * model.history_["seconds"][0], model.history_["seconds"]
    reference = LSTMRegressor(max_iter=1, **params).fit(X, y)
    np.testing.assert_array_equal(model._params, reference._params)
