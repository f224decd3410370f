"""Truncated BPTT of LSTMSeq2Seq's encoder (tbptt_steps), and the forecaster's passthrough.

The oracle is PyTorch running the same chunked computation: the encoder's
state carried from chunk to chunk, the chunks before the last run without
gradients (the state detached before the last chunk), then the decoder and
the loss, one optimizer step per mini-batch.
"""

import pickle

import numpy as np
import pytest
from sklearn.base import clone

import lstmlearn
from lstmlearn import LSTMForecaster, LSTMSeq2Seq, _engine

from conftest import rel_err, require_torch

ENGINE = {np.float32: "Seq2SeqF32", np.float64: "Seq2SeqF64"}
V, C, F, F_OUT, E = 5, 4, 2, 2, 3  # vocabularies, numeric features in and out, embedding


def engine_model(tokens_in, tokens_out, mode, hidden, dtype=np.float64):
    return getattr(_engine.core, ENGINE[dtype])(
        V if tokens_in else 0, F, C if tokens_out else 0, F_OUT, E, list(hidden), mode, "none", 0
    )


def problem(tokens_in, tokens_out, N, Tk, Tq, masked, seed):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(N, Tk, F))
    if tokens_in:
        x = rng.integers(0, V, size=(N, Tk)).astype(np.int32)
    y = rng.normal(size=(N, Tq, F_OUT))
    if tokens_out:
        y = rng.integers(0, C, size=(N, Tq)).astype(np.int32)
    x_mask = None
    if masked:  # padded at the end, some inputs ending inside the first chunk
        lengths = rng.integers(1, Tk + 1, size=N)
        lengths[0] = Tk
        x_mask = (np.arange(Tk)[None] < lengths[:, None]).astype(np.uint8)
    return x, x_mask, y


def train_epoch(model, params, data, batch, optimizer, lr, k):
    x, x_mask, y = data
    m, v = np.zeros_like(params), np.zeros_like(params)
    status, loss, batches, step = model.train_epoch(
        params, m, v, 0, x, x_mask, y, None, batch, False, 0.0, optimizer, lr,
        0.9, 0.999, 1e-12, 0.0, False, 0.9, 7, 1, tbptt_steps=k,
    )  # fmt: skip
    assert status == "ok"
    return loss, batches, step


def torch_epoch(layout, params, data, batch, optimizer, lr, k, tokens_in, tokens_out, mode):
    torch = require_torch()
    P = {
        name: torch.nn.Parameter(torch.tensor(params[o : o + int(np.prod(s))].reshape(s)))
        for name, o, s in layout
    }
    n_layers = sum(1 for name in P if name.startswith("encoder.layer") and "weight_ih" in name)

    def cell(prefix, inp, state):
        h, c = state
        a = (
            inp @ P[prefix + "weight_ih_l0"].T
            + P[prefix + "bias_ih_l0"]
            + h @ P[prefix + "weight_hh_l0"].T
            + P[prefix + "bias_hh_l0"]
        )
        i, f, g, o = a.chunk(4, dim=1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        return torch.sigmoid(o) * torch.tanh(c), c

    def encoder_steps(xb, mb, t0, t1, state):
        for t in range(t0, t1):
            inp = P["encoder.embedding"][xb[:, t]] if tokens_in else xb[:, t]
            for i in range(n_layers):
                h, c = cell(f"encoder.layer{i}.", inp, state[i])
                if mb is not None:
                    keep = mb[:, t : t + 1]
                    h = torch.where(keep, h, state[i][0])
                    c = torch.where(keep, c, state[i][1])
                state[i] = (h, c)
                inp = h
        return state

    weights = list(P.values())
    if optimizer == "sgd":
        opt = torch.optim.SGD(weights, lr=lr)
    else:
        opt = torch.optim.Adam(weights, lr=lr, betas=(0.9, 0.999), eps=1e-12)
    x, x_mask, y = data
    N, Tk = x.shape[:2]
    for start in range(0, N, batch):
        xb = torch.tensor(x[start : start + batch], dtype=torch.long if tokens_in else None)
        mb = None if x_mask is None else torch.tensor(x_mask[start : start + batch], dtype=bool)
        yb = torch.tensor(y[start : start + batch], dtype=torch.long if tokens_out else None)
        B, Tq = yb.shape[:2]
        H = P["decoder.weight_hh_l0"].shape[1]
        state = [
            (torch.zeros(B, P[f"encoder.layer{i}.weight_hh_l0"].shape[1], dtype=torch.float64),) * 2
            for i in range(n_layers)
        ]
        last = (Tk - 1) // k * k  # the last chunk's first step
        with torch.no_grad():
            state = encoder_steps(xb, mb, 0, last, state)
        state = [(h.detach(), c.detach()) for h, c in state]
        state = encoder_steps(xb, mb, last, Tk, state)
        if mode == "repeat":
            dec_state = (torch.zeros(B, H, dtype=torch.float64),) * 2
            inputs = [state[-1][0]] * Tq
        else:
            dec_state = state[-1]
            if tokens_out:
                start_symbol = torch.full((B, 1), C, dtype=torch.long)
                prev = torch.cat([start_symbol, yb[:, :-1]], dim=1)
                inputs = [P["decoder.embedding"][prev[:, t]] for t in range(Tq)]
            else:
                prev = torch.cat([torch.zeros(B, 1, F_OUT, dtype=torch.float64), yb[:, :-1]], dim=1)
                inputs = [prev[:, t] for t in range(Tq)]
        outs = []
        for t in range(Tq):
            dec_state = cell("decoder.", inputs[t], dec_state)
            outs.append(dec_state[0])
        z = torch.stack(outs, 1) @ P["dense.weight"].T + P["dense.bias"]
        if tokens_out:
            loss = torch.nn.functional.cross_entropy(z.transpose(1, 2), yb)
        else:
            loss = ((z - yb) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    return np.concatenate([P[name].detach().numpy().ravel() for name, _, _ in layout])


# (tokens_in, tokens_out, mode, hidden, N, Tk, Tq, batch, k)
CASES = [
    (True, True, "teacher_forcing", (3,), 7, 10, 3, 4, 4),
    (False, False, "teacher_forcing", (3, 4), 6, 9, 2, 6, 2),
    (True, False, "repeat", (4,), 5, 7, 3, 5, 3),
    (False, True, "repeat", (2, 3), 6, 8, 2, 3, 1),
]


@pytest.mark.parametrize("masked", [False, True], ids=["full", "masked"])
@pytest.mark.parametrize("optimizer, lr", [("sgd", 0.3), ("adam", 0.01)])
@pytest.mark.parametrize("case", CASES, ids=lambda c: "-".join(map(str, c)))
def test_matches_torch_chunked(case, optimizer, lr, masked):
    require_torch()
    tokens_in, tokens_out, mode, hidden, N, Tk, Tq, batch, k = case
    model = engine_model(tokens_in, tokens_out, mode, hidden)
    rng = np.random.default_rng(N + Tk)
    params = rng.uniform(-0.5, 0.5, size=model.parameter_count)
    data = problem(tokens_in, tokens_out, N, Tk, Tq, masked, seed=k)
    ref = torch_epoch(
        model.layout(), params.copy(), data, batch, optimizer, lr, k, tokens_in, tokens_out, mode
    )
    before = params.copy()
    train_epoch(model, params, data, batch, optimizer, lr, k)
    assert not np.array_equal(params, before)
    assert rel_err(params, ref) < 1e-5, rel_err(params, ref)
    # Whole sequences are another computation.
    full = before.copy()
    train_epoch(model, full, data, batch, optimizer, lr, 0)
    assert rel_err(full, ref) > 1e-5


def test_updates_once_per_mini_batch():
    model = engine_model(True, True, "teacher_forcing", (3,))
    params = np.random.default_rng(0).uniform(-0.5, 0.5, model.parameter_count)
    data = problem(True, True, 10, 9, 2, False, 1)
    _, batches, step = train_epoch(model, params, data, 4, "sgd", 0.1, 4)
    assert batches == step == 3  # one update per mini-batch, however many chunks


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("mode", ["teacher_forcing", "repeat"])
def test_k_at_least_T_is_full_bptt_bitwise(mode, dtype):
    rng = np.random.default_rng(3)
    Tk = 11
    X = [rng.integers(0, 6, size=int(n)) for n in rng.integers(2, Tk + 1, size=30)]
    X[0] = rng.integers(0, 6, size=Tk)
    y = rng.integers(0, 5, size=(30, 3))
    fitted = {}
    for k in (None, Tk, Tk + 5):
        model = LSTMSeq2Seq(
            (6, 5), mode=mode, embedding_dim=4, max_iter=2, batch_size=8, random_state=0,
            dtype=dtype, tbptt_steps=k,
        )  # fmt: skip
        fitted[k] = model.fit(X, y)._params
    np.testing.assert_array_equal(fitted[Tk], fitted[None])
    np.testing.assert_array_equal(fitted[Tk + 5], fitted[None])


def test_same_bits_for_any_n_jobs():
    rng = np.random.default_rng(4)
    X = rng.normal(size=(40, 60, 3))
    y = rng.normal(size=(40, 4, 2))
    fitted = [
        LSTMSeq2Seq((24, 16), max_iter=2, tbptt_steps=8, random_state=1, n_jobs=n).fit(X, y)._params
        for n in (1, 2)
    ]
    np.testing.assert_array_equal(fitted[0], fitted[1])


def test_learns_with_short_chunks():
    # Echo the last 3 tokens of a 40-token input, read in chunks of 8.
    rng = np.random.default_rng(5)
    X = rng.integers(0, 6, size=(300, 40))
    y = X[:, -3:]
    model = LSTMSeq2Seq(
        32, max_iter=30, learning_rate=0.01, tbptt_steps=8, embedding_dim=8, random_state=0
    )
    model.fit(X, y)
    assert model.loss_curve_[-1] < 0.5 * model.loss_curve_[0]


@pytest.mark.parametrize("attention", ["dot", "additive"])
def test_refuses_attention(attention):
    X = np.random.default_rng(0).integers(0, 4, size=(8, 6))
    with pytest.raises(ValueError, match="attention reads the encoder's output at every"):
        LSTMSeq2Seq(4, attention=attention, max_iter=1, tbptt_steps=2).fit(X, X[:, :2])


def test_engine_refuses_attention_too():
    model = _engine.core.Seq2SeqF64(V, 1, C, 1, E, [3], "teacher_forcing", "dot", 0)
    params = np.zeros(model.parameter_count)
    data = problem(True, True, 4, 6, 2, False, 0)
    with pytest.raises(ValueError, match="attention"):
        train_epoch(model, params, data, 4, "sgd", 0.1, 2)
    # Not when the chunks cover the whole input.
    train_epoch(model, params, data, 4, "sgd", 0.1, 6)


@pytest.mark.parametrize("value", [0, -1, 2.5, "3"])
def test_parameter_validation(value):
    X = np.zeros((4, 3), dtype=int)
    with pytest.raises(ValueError, match="tbptt_steps"):
        LSTMSeq2Seq(2, max_iter=1, tbptt_steps=value).fit(X, X)


def test_parameter_survives_clone_pickle_and_save(tmp_path):
    rng = np.random.default_rng(0)
    X = rng.integers(0, 5, size=(16, 12))
    y = X[:, -2:]
    model = LSTMSeq2Seq(4, max_iter=1, tbptt_steps=5, random_state=0).fit(X, y)
    assert clone(model).tbptt_steps == 5
    assert pickle.loads(pickle.dumps(model)).tbptt_steps == 5
    model.save(tmp_path / "m.safetensors")
    loaded = lstmlearn.load(tmp_path / "m.safetensors")
    assert loaded.tbptt_steps == 5
    np.testing.assert_array_equal(loaded.predict(X), model.predict(X))
    # partial_fit of the loaded model trains as the original does.
    np.testing.assert_array_equal(loaded.partial_fit(X, y)._params, model.partial_fit(X, y)._params)
    state = model.__getstate__()
    del state["tbptt_steps"]
    old = LSTMSeq2Seq.__new__(LSTMSeq2Seq)
    old.__setstate__(state)
    assert old.get_params()["tbptt_steps"] is None


# -- LSTMForecaster ----------------------------------------------------------------------


def test_forecaster_passes_tbptt_steps_on():
    t = np.arange(150)
    y = 10 + 0.05 * t + np.sin(2 * np.pi * t / 12)
    kwargs = dict(window=24, horizon=3, max_iter=3, random_state=0, calibration_size=12)
    truncated = LSTMForecaster(tbptt_steps=6, **kwargs).fit(y)
    assert truncated.estimator_.tbptt_steps == 6
    assert truncated.get_params()["tbptt_steps"] == 6
    full = LSTMForecaster(**kwargs).fit(y)
    # k >= window trains on whole windows, bit for bit; k < window does not.
    same = LSTMForecaster(tbptt_steps=24, **kwargs).fit(y)
    np.testing.assert_array_equal(same.predict(), full.predict())
    assert not np.array_equal(truncated.predict(), full.predict())
    assert np.isfinite(truncated.predict()).all()
    restored = pickle.loads(pickle.dumps(truncated))
    np.testing.assert_array_equal(restored.predict(), truncated.predict())
    assert clone(truncated).tbptt_steps == 6


def test_forecaster_validates_tbptt_steps():
    y = np.sin(np.arange(80) / 3)
    with pytest.raises(ValueError, match="tbptt_steps"):
        LSTMForecaster(window=12, horizon=2, max_iter=1, tbptt_steps=0).fit(y)


def test_forecaster_pickled_before_the_parameter():
    f = LSTMForecaster(window=12, horizon=2)
    state = f.__getstate__()
    del state["tbptt_steps"]
    old = LSTMForecaster.__new__(LSTMForecaster)
    old.__setstate__(state)
    assert old.get_params()["tbptt_steps"] is None
