"""LSTM-FCN and MLSTM-FCN: the FCN branch against PyTorch, gradients, state, estimators.

The oracle is PyTorch's Conv1d(padding='same') + BatchNorm1d + ReLU (+ the
squeeze-and-excitation of MLSTM-FCN) + global average pooling, beside an
nn.LSTM (optionally on the "dimension shuffled" input), concatenated into an
nn.Linear head. One epoch of plain SGD with learning rate 1 over one
mini-batch moves each trained parameter by minus its gradient, so the
training epoch is what is compared.
"""

import pickle

import numpy as np
import pytest

from lstmlearn import LSTMClassifier, LSTMRegressor, _engine, load
from lstmlearn._data import AUTO_PATCH_ABOVE, auto_patch_size
from lstmlearn.estimators import AUTO_FCN_FILTERS, AUTO_FCN_MAX_STEPS

from conftest import require_torch

pytestmark = [
    # The estimator tests train a few epochs only.
    pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning"),
    # PyTorch's padding='same' with an even kernel copies the input, and says so.
    pytest.mark.filterwarnings("ignore:Using padding='same':UserWarning"),
]


def build(
    F=2,
    hidden=3,
    outputs=2,
    loss="squared_error",
    filters=(4, 5, 3),
    kernels=(3, 2, 1),
    se=False,
    shuffle=False,
    steps=0,
    pooling="last",
    dtype=np.float64,
    reduction=16,
    bidirectional=False,
    merge="concat",
):
    cls = _engine.core.NetworkF64 if dtype == np.float64 else _engine.core.NetworkF32
    return cls(
        F, [hidden], bidirectional, merge, 0.0, 0.0, outputs, False, loss, 1.0,
        pooling=pooling, fcn_filters=list(filters), fcn_kernels=list(kernels),
        fcn_squeeze_excitation=se, fcn_reduction=reduction, dimension_shuffle=shuffle,
        sequence_length=steps,
    )  # fmt: skip


def views(net, params):
    return {
        name: params[offset : offset + int(np.prod(shape))].reshape(shape)
        for name, offset, shape in net.layout()
    }


def random_params(net, rng, dtype=np.float64):
    params = rng.uniform(-0.6, 0.6, size=net.parameter_count).astype(dtype)
    for name, view in views(net, params).items():
        if name.endswith("running_var"):
            view[...] = rng.uniform(0.5, 2.0, view.shape)
        elif name.endswith("gamma"):
            view[...] = rng.uniform(0.5, 1.5, view.shape)
    return params


def torch_model(torch, net, params, filters, kernels, se, shuffle, reduction=16):
    """The same network in PyTorch, with the engine's weights."""
    nn = torch.nn
    v = {k: torch.tensor(np.array(a, dtype=np.float64)) for k, a in views(net, params).items()}
    F = v["fcn.conv0.weight"].shape[1]
    H = v["layer0.weight_hh_l0"].shape[1]
    lstm_in = v["layer0.weight_ih_l0"].shape[1]

    class Ref(nn.Module):
        def __init__(self):
            super().__init__()
            self.lstm = nn.LSTM(lstm_in, H, batch_first=True)
            self.convs, self.bns, self.se = nn.ModuleList(), nn.ModuleList(), nn.ModuleList()
            c = F
            for i, (k, kk) in enumerate(zip(filters, kernels, strict=True)):
                self.convs.append(nn.Conv1d(c, k, kk, padding="same"))
                self.bns.append(nn.BatchNorm1d(k))
                if se and i + 1 < len(filters):
                    r = max(1, k // reduction)
                    self.se.append(
                        nn.Sequential(nn.Linear(k, r, bias=False), nn.Linear(r, k, bias=False))
                    )
                c = k
            self.head = nn.Linear(v["dense.weight"].shape[1], v["dense.weight"].shape[0])

        def forward(self, x):
            _, (h, _) = self.lstm(x.transpose(1, 2) if shuffle else x)
            y = x.transpose(1, 2)
            for i, (conv, bn) in enumerate(zip(self.convs, self.bns, strict=True)):
                y = torch.relu(bn(conv(y)))
                if i < len(self.se):
                    s = y.mean(dim=2)
                    e = torch.sigmoid(self.se[i][1](torch.relu(self.se[i][0](s))))
                    y = y * e[:, :, None]
            return self.head(torch.cat([h[-1], y.mean(dim=2)], dim=1))

    ref = Ref().double()
    with torch.no_grad():
        for name in ("weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0"):
            getattr(ref.lstm, name).copy_(v[f"layer0.{name}"])
        ref.head.weight.copy_(v["dense.weight"])
        ref.head.bias.copy_(v["dense.bias"])
        for i, (conv, bn) in enumerate(zip(ref.convs, ref.bns, strict=True)):
            conv.weight.copy_(v[f"fcn.conv{i}.weight"])
            conv.bias.copy_(v[f"fcn.conv{i}.bias"])
            bn.weight.copy_(v[f"fcn.bn{i}.gamma"])
            bn.bias.copy_(v[f"fcn.bn{i}.beta"])
            bn.running_mean.copy_(v[f"fcn.bn{i}.running_mean"])
            bn.running_var.copy_(v[f"fcn.bn{i}.running_var"])
        for i, block in enumerate(ref.se):
            block[0].weight.copy_(v[f"fcn.se{i}.weight1"])
            block[1].weight.copy_(v[f"fcn.se{i}.weight2"])
    return ref


def torch_grads(ref, filters, se):
    """The engine's names -> PyTorch's gradients."""
    g = {
        "dense.weight": ref.head.weight.grad,
        "dense.bias": ref.head.bias.grad,
    }
    for name in ("weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0"):
        g[f"layer0.{name}"] = getattr(ref.lstm, name).grad
    for i, (conv, bn) in enumerate(zip(ref.convs, ref.bns, strict=True)):
        g[f"fcn.conv{i}.weight"] = conv.weight.grad
        g[f"fcn.conv{i}.bias"] = conv.bias.grad
        g[f"fcn.bn{i}.gamma"] = bn.weight.grad
        g[f"fcn.bn{i}.beta"] = bn.bias.grad
    for i, block in enumerate(ref.se):
        g[f"fcn.se{i}.weight1"] = block[0].weight.grad
        g[f"fcn.se{i}.weight2"] = block[1].weight.grad
    return {k: t.numpy() for k, t in g.items()}


def sgd_step(net, params, x, mask, targets, labels, n_threads=1):
    p = params.copy()
    m, v = np.zeros_like(p), np.zeros_like(p)
    status, loss, batches, _ = net.train_epoch(
        p, m, v, 0, x, mask, targets, labels, None, len(x), False, 0.0, 0.0, "sgd", 1.0,
        0.9, 0.999, 1e-7, 0.0, False, 0.9, 0, n_threads,
    )  # fmt: skip
    assert status == "ok" and batches == 1
    return p, loss


CONFIGS = {
    "fcn": dict(F=2, filters=(4, 5, 3), kernels=(3, 2, 1)),
    "fcn-paper-kernels": dict(F=1, filters=(6, 8, 5), kernels=(8, 5, 3)),
    "mlstm-fcn": dict(F=3, filters=(20, 34, 6), kernels=(4, 3, 2), se=True, reduction=4),
    "mlstm-fcn-shuffle": dict(F=3, filters=(5, 7), kernels=(3, 4), se=True, shuffle=True),
    "classifier": dict(F=2, filters=(4, 3), kernels=(5, 2), loss="log_loss", outputs=3),
}


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("config", CONFIGS, ids=list(CONFIGS))
def test_training_step_and_prediction_match_torch(config, dtype):
    torch = require_torch()
    cfg = dict(CONFIGS[config])
    N, T = 6, 9
    shuffle = cfg.get("shuffle", False)
    net = build(**cfg, steps=T if shuffle else 0, dtype=dtype)
    rng = np.random.default_rng(1)
    params = random_params(net, rng, dtype)
    x = rng.normal(size=(N, T, cfg["F"])).astype(dtype)
    outputs = cfg.get("outputs", 2)
    classifier = cfg.get("loss") == "log_loss"
    labels = rng.integers(0, outputs, N).astype(np.int32) if classifier else None
    targets = None if classifier else rng.normal(size=(N, outputs)).astype(dtype)
    ref = torch_model(
        torch, net, params, cfg["filters"], cfg["kernels"], cfg.get("se", False), shuffle,
        cfg.get("reduction", 16),
    )  # fmt: skip
    tol = dict(rtol=1e-9, atol=1e-11) if dtype == np.float64 else dict(rtol=2e-3, atol=2e-5)

    # Eval mode: the running statistics.
    out = np.empty((N, outputs), dtype=dtype)
    net.predict(params, x, None, out, 4, 1)
    ref.eval()
    with torch.no_grad():
        want = ref(torch.tensor(x, dtype=torch.float64))
        if classifier:
            want = torch.softmax(want, dim=1)
    np.testing.assert_allclose(out, want.numpy(), **tol)

    # Train mode: batch statistics, every gradient, the running statistics after.
    after, loss = sgd_step(net, params, x, None, targets, labels)
    ref.train()
    z = ref(torch.tensor(x, dtype=torch.float64))
    if classifier:
        ref_loss = torch.nn.functional.cross_entropy(z, torch.tensor(labels, dtype=torch.long))
    else:
        ref_loss = torch.nn.functional.mse_loss(z, torch.tensor(targets, dtype=torch.float64))
    ref_loss.backward()
    np.testing.assert_allclose(loss, ref_loss.item(), **tol)
    grads = torch_grads(ref, cfg["filters"], cfg.get("se", False))
    before, moved = views(net, params), views(net, after)
    gtol = dict(rtol=1e-7, atol=1e-9) if dtype == np.float64 else dict(rtol=5e-3, atol=1e-4)
    for name, want in grads.items():
        got = before[name].astype(np.float64) - moved[name].astype(np.float64)
        np.testing.assert_allclose(got, want, err_msg=name, **gtol)
    assert set(grads) | {n for n in before if "running" in n} == set(before)
    for i, bn in enumerate(ref.bns):
        np.testing.assert_allclose(moved[f"fcn.bn{i}.running_mean"], bn.running_mean.numpy(), **tol)
        np.testing.assert_allclose(moved[f"fcn.bn{i}.running_var"], bn.running_var.numpy(), **tol)


def test_masked_prediction_is_each_sequence_alone():
    """Padded at the end, a sequence gives what PyTorch gives on it alone (eval mode)."""
    torch = require_torch()
    cfg = CONFIGS["mlstm-fcn"]
    net = build(**cfg)
    rng = np.random.default_rng(2)
    params = random_params(net, rng)
    N, T = 4, 10
    x = rng.normal(size=(N, T, cfg["F"]))
    lengths = np.array([10, 3, 7, 1])
    mask = (np.arange(T)[None] < lengths[:, None]).astype(np.uint8)
    x[mask == 0] = 123.0  # never read
    out = np.empty((N, 2))
    net.predict(params, x, mask, out, 3, 1)
    ref = torch_model(torch, net, params, cfg["filters"], cfg["kernels"], True, False, 4).eval()
    with torch.no_grad():
        for b in range(N):
            want = ref(torch.tensor(x[b : b + 1, : lengths[b]]))
            np.testing.assert_allclose(out[b], want.numpy()[0], rtol=1e-10, atol=1e-12)


def test_masked_batch_statistics_use_the_real_steps_only():
    """Train mode with a mask: the statistics, pooling and gradients of the real steps.

    The reference is the same batch without padding for equal lengths, which
    must give the same running statistics whatever the padding holds.
    """
    cfg = CONFIGS["fcn"]
    net = build(**cfg)
    rng = np.random.default_rng(3)
    params = random_params(net, rng)
    x = rng.normal(size=(3, 6, 2))
    y = rng.normal(size=(3, 2))
    padded = np.concatenate([x, rng.normal(size=(3, 4, 2)) * 50], axis=1)
    mask = np.zeros((3, 10), np.uint8)
    mask[:, :6] = 1
    a, loss_a = sgd_step(net, params, x, None, y, None)
    b, loss_b = sgd_step(net, params, padded, mask, y, None)
    np.testing.assert_allclose(b, a, rtol=1e-12, atol=1e-13)
    assert loss_a == pytest.approx(loss_b, rel=1e-12)


FD_CASES = {
    "fcn": dict(F=2, filters=(3, 4), kernels=(3, 2)),
    "mlstm-fcn-masked": dict(F=2, filters=(4, 5, 2), kernels=(2, 3, 2), se=True, reduction=2),
    "mean-pooling-classifier": dict(
        F=1, filters=(3, 2), kernels=(4, 3), loss="log_loss", outputs=3, pooling="mean"
    ),
    "shuffle": dict(F=3, filters=(2,), kernels=(2,), se=True, shuffle=True),
    "bidirectional-attention-masked": dict(
        F=2,
        filters=(3, 2),
        kernels=(3, 3),
        se=True,
        reduction=2,
        bidirectional=True,
        merge="concat",
        pooling="attention",
    ),
    "bidirectional-sum-masked": dict(
        F=1, filters=(2, 3), kernels=(1, 4), bidirectional=True, merge="sum"
    ),
}


@pytest.mark.parametrize("case", FD_CASES, ids=list(FD_CASES))
def test_gradient_matches_finite_differences(case):
    cfg = dict(FD_CASES[case])
    N, T = 4, 5
    shuffle = cfg.get("shuffle", False)
    net = build(hidden=2, **cfg, steps=T if shuffle else 0)
    rng = np.random.default_rng(4)
    params = random_params(net, rng)
    x = rng.normal(size=(N, T, cfg["F"]))
    mask = None
    if case.endswith("masked"):
        mask = (np.arange(T)[None] < np.array([5, 2, 4, 1])[:, None]).astype(np.uint8)
    outputs = cfg.get("outputs", 2)
    if cfg.get("loss") == "log_loss":
        targets, labels = None, rng.integers(0, outputs, N).astype(np.int32)
    else:
        targets, labels = rng.normal(size=(N, outputs)), None
    after, _ = sgd_step(net, params, x, mask, targets, labels)
    analytic = params - after

    def train_loss(p):  # the training-mode loss: SGD with learning rate 0 moves nothing
        p = p.copy()
        m, v = np.zeros_like(p), np.zeros_like(p)
        _, loss, _, _ = net.train_epoch(
            p, m, v, 0, x, mask, targets, labels, None, N, False, 0.0, 0.0, "sgd", 0.0,
            0.9, 0.999, 1e-7, 0.0, False, 0.9, 0, 1,
        )  # fmt: skip
        return loss

    eps = 1e-6
    numeric = np.empty_like(params)
    for k in range(params.size):
        up, down = params.copy(), params.copy()
        up[k] += eps
        down[k] -= eps
        numeric[k] = (train_loss(up) - train_loss(down)) / (2 * eps)
    running = np.zeros(params.size, bool)
    for name, offset, shape in net.layout():
        if "running" in name:
            running[offset : offset + int(np.prod(shape))] = True
    np.testing.assert_allclose(analytic[~running], numeric[~running], rtol=1e-5, atol=1e-7)
    np.testing.assert_array_equal(numeric[running], 0.0)  # train mode never reads them
    for name, offset, shape in net.layout():
        if name.startswith("fcn.") and "running" not in name and ".bias" not in name:
            assert np.abs(analytic[offset : offset + int(np.prod(shape))]).max() > 1e-6, name


def test_engine_bitwise_identical_for_any_thread_count():
    """Masked batches, squeeze-excitation, 20 filters (two channel blocks): 1, 2 or 3 threads."""
    cfg = CONFIGS["mlstm-fcn"]
    rng = np.random.default_rng(5)
    x = rng.normal(size=(7, 11, cfg["F"]))
    mask = (np.arange(11)[None] < rng.integers(1, 12, 7)[:, None]).astype(np.uint8)
    y = rng.normal(size=(7, 2))
    results = []
    for n_threads in (1, 2, 3):
        net = build(**cfg)
        params = random_params(net, np.random.default_rng(6))
        after, loss = sgd_step(net, params, x, mask, y, None, n_threads=n_threads)
        out = np.empty((7, 2))
        net.predict(after, x, mask, out, 7, n_threads)
        results.append((after, loss, out))
    for after, loss, out in results[1:]:
        np.testing.assert_array_equal(after, results[0][0])
        assert loss == results[0][1]
        np.testing.assert_array_equal(out, results[0][2])


def test_layout_names_and_shapes():
    net = build(F=3, filters=(32, 64, 16), kernels=(8, 5, 3), se=True)
    shapes = {name: tuple(shape) for name, _, shape in net.layout()}
    assert shapes["dense.weight"] == (2, 3 + 16)
    assert shapes["fcn.conv0.weight"] == (32, 3, 8)
    assert shapes["fcn.conv1.weight"] == (64, 32, 5)
    assert shapes["fcn.se0.weight1"] == (2, 32) and shapes["fcn.se1.weight2"] == (64, 4)
    assert "fcn.se2.weight1" not in shapes  # not after the last block
    assert shapes["fcn.bn2.running_var"] == (16,)


def test_engine_refusals():
    with pytest.raises(ValueError, match="one kernel size per block"):
        build(filters=(3, 4), kernels=(3,))
    with pytest.raises(ValueError, match="sequence length"):
        build(shuffle=True, steps=0)
    net = build()
    with pytest.raises(ValueError, match="FCN branch"):
        net.stream(np.zeros(net.parameter_count), 1)
    x = np.zeros((2, 4, 2))
    p = np.zeros(net.parameter_count)
    with pytest.raises(ValueError, match="FCN branch"):
        net.train_epoch(
            p, p.copy(), p.copy(), 0, x, None, np.zeros((2, 2)), None, None, 2, False, 0.0, 0.0,
            "sgd", 0.1, 0.9, 0.999, 1e-7, 0.0, False, 0.9, 0, 1, tbptt_steps=2,
        )  # fmt: skip


# -- estimators -------------------------------------------------------------------


def series(n=60, T=24, F=1, seed=0):
    """Two classes: a bump early or late, under noise."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    X = rng.normal(scale=0.3, size=(n, T, F))
    for i in range(n):
        start = 3 if y[i] == 0 else T - 9
        X[i, start : start + 5, :] += 1.5
    return X, y


SMALL = dict(
    hidden_layer_sizes=4, fcn_filters=(8, 8, 4), fcn_kernel_sizes=(5, 3, 3), max_iter=4,
    batch_size=16, random_state=0,
)  # fmt: skip


@pytest.mark.parametrize("F", [1, 3])
def test_classifier_fit_predict_save_load_pickle(F, tmp_path):
    X, y = series(F=F)
    model = LSTMClassifier(**SMALL).fit(X, y)
    names = [name for name, _, _ in model._network().layout()]
    assert ("fcn.se0.weight1" in names) == (F > 1)  # 'auto': MLSTM-FCN when multivariate
    proba = model.predict_proba(X)
    path = tmp_path / "fcn.safetensors"
    model.save(path)
    loaded = load(path)
    np.testing.assert_array_equal(loaded.predict_proba(X), proba)
    np.testing.assert_array_equal(loaded._params, model._params)
    clone = pickle.loads(pickle.dumps(model))
    np.testing.assert_array_equal(clone.predict_proba(X), proba)
    # The running statistics moved from their start and are what predict uses.
    v = views(model._network(), model._params)
    assert not np.allclose(v["fcn.bn0.running_var"], 1.0)
    loaded.partial_fit(X, y)  # training continues from the loaded state
    assert loaded.n_iter_ == model.n_iter_ + 1


def test_regressor_with_dimension_shuffle_and_variable_length_refusal():
    X, y = series(F=3, T=12)
    target = y + X[:, :, 0].mean(axis=1)
    model = LSTMRegressor(**SMALL, dimension_shuffle=True).fit(X, target)
    assert tuple(model._network().layout()[0][2]) == (16, 12)  # weight_ih [4H, T]
    assert model.predict(X).shape == (60,)
    with pytest.raises(ValueError, match="12 steps"):
        model.predict(X[:, :10])
    ragged = [X[0], X[1, :8]]
    with pytest.raises(ValueError, match="dimension_shuffle"):
        LSTMRegressor(**SMALL, dimension_shuffle=True).fit(ragged, target[:2])


def test_variable_length_sequences_fit_and_predict():
    X, y = series(T=16)
    ragged = [x[: 10 + (i % 7)] for i, x in enumerate(X)]
    model = LSTMClassifier(**SMALL).fit(ragged, y)
    proba = model.predict_proba(ragged)
    alone = np.vstack([model.predict_proba([s]) for s in ragged[:5]])
    np.testing.assert_allclose(alone, proba[:5], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("se", [False, True])
def test_identical_for_any_thread_count(se):
    X, y = series(F=2, n=40)
    fits = [LSTMClassifier(**SMALL, fcn_squeeze_excitation=se, n_jobs=n).fit(X, y) for n in (1, 2)]
    np.testing.assert_array_equal(fits[0]._params, fits[1]._params)
    np.testing.assert_array_equal(fits[0].predict_proba(X), fits[1].predict_proba(X))
    assert fits[0].loss_curve_ == fits[1].loss_curve_


def test_branch_off_by_default_keeps_models_as_they_were():
    X, y = series(n=30)
    a = LSTMClassifier(hidden_layer_sizes=4, max_iter=2, random_state=0).fit(X, y)
    b = LSTMClassifier(
        hidden_layer_sizes=4, max_iter=2, random_state=0, fcn_kernel_sizes=(3,),
        fcn_squeeze_excitation=True,
    ).fit(X, y)  # fmt: skip
    np.testing.assert_array_equal(a._params, b._params)
    assert "_fcn_arch" not in a.__dict__
    assert not any(name.startswith("fcn.") for name, _, _ in a._network().layout())


# -- fcn_filters='auto', LSTMClassifier's default -----------------------------------

LONG = AUTO_PATCH_ABOVE + 20
TINY = dict(hidden_layer_sizes=4, max_iter=2, batch_size=8, random_state=0)


def test_auto_is_the_papers_model_for_long_sequences_of_one_length():
    X, y = series(n=24, T=AUTO_FCN_MAX_STEPS)
    assert LSTMClassifier(**TINY).fit(X, y).fcn_filters_ == AUTO_FCN_FILTERS  # the longest
    X, y = series(n=24, T=LONG)
    auto = LSTMClassifier(**TINY).fit(X, y)
    assert auto.get_params()["fcn_filters"] == "auto"
    assert auto.fcn_filters_ == AUTO_FCN_FILTERS and auto.patch_size_ == 1
    assert tuple(auto._network().layout()[0][2]) == (16, LONG)  # the steps are the features
    explicit = LSTMClassifier(**TINY, fcn_filters=AUTO_FCN_FILTERS, dimension_shuffle=True)
    explicit.fit(X, y)
    np.testing.assert_array_equal(auto._params, explicit._params)
    np.testing.assert_array_equal(auto.predict_proba(X), explicit.predict_proba(X))
    # the regressor's default stays None; 'auto' is there for the asking
    regressor = LSTMRegressor(**TINY).fit(X, y.astype(float))
    assert regressor.fcn_filters_ is None and regressor.patch_size_ == auto_patch_size(LONG)
    assert LSTMRegressor(**TINY, fcn_filters="auto").fit(X, y).fcn_filters_ == AUTO_FCN_FILTERS


@pytest.mark.parametrize(
    "case",
    ["short", "very long", "multivariate", "ragged", "per_step", "tbptt", "patch_size", "mask"],
)
def test_auto_leaves_the_lstm_alone_elsewhere(case):
    """Bit for bit the model of fcn_filters=None wherever the rule does not apply."""
    T = {"short": AUTO_PATCH_ABOVE, "very long": AUTO_FCN_MAX_STEPS + 1}.get(case, LONG)
    X, y = series(n=24, T=T, F=2 if case == "multivariate" else 1)
    params = dict(TINY)
    if case == "ragged":
        X = [x[: LONG - (i % 5)] for i, x in enumerate(X)]
    elif case == "per_step":
        y, params["return_sequences"] = np.tile(y[:, None], (1, LONG)), True
    elif case == "tbptt":
        params["tbptt_steps"] = 40
    elif case == "patch_size":
        params["patch_size"] = 10
    elif case == "mask":  # no NaN in fit, but predict must mask them
        params["missing"] = "mask"
    auto = LSTMClassifier(**params).fit(X, y)
    assert auto.fcn_filters_ is None and "_fcn_arch" not in auto.__dict__
    none = LSTMClassifier(**params, fcn_filters=None).fit(X, y)
    assert auto.patch_size_ == none.patch_size_
    np.testing.assert_array_equal(auto._params, none._params)


def test_auto_choice_is_kept_by_updates_and_files(tmp_path):
    X, y = series(n=24, T=LONG)
    model = LSTMClassifier(**TINY).fit(X, y)
    model.partial_fit(X, y)
    assert model.fcn_filters_ == AUTO_FCN_FILTERS
    before = model._params.copy()
    with pytest.raises(ValueError, match=rf"fcn_filters='auto'\) on sequences of {LONG} steps"):
        model.predict(X[:, :-5])
    with pytest.raises(ValueError, match=rf"must have {LONG} steps in every sequence"):
        model.partial_fit(X[:, :-5], y)
    np.testing.assert_array_equal(model._params, before)
    with pytest.raises(ValueError, match="fit with fcn_filters=None, patch_size=None to stream"):
        model.stream()
    path = tmp_path / "auto.safetensors"
    model.save(path)
    for other in (load(path), pickle.loads(pickle.dumps(model))):
        assert other.fcn_filters_ == AUTO_FCN_FILTERS
        np.testing.assert_array_equal(other.predict_proba(X), model.predict_proba(X))
    # A model fitted without the branch keeps it off when updated with long sequences.
    short = LSTMClassifier(**TINY).fit(X[:, :50], y)
    short.partial_fit(X, y)
    assert short.fcn_filters_ is None and short.patch_size_ == 1


def test_fcn_filters_is_unknown_before_fit():
    assert not hasattr(LSTMClassifier(), "fcn_filters_")


@pytest.mark.parametrize(
    ("params", "match"),
    [
        (dict(fcn_filters="big"), "fcn_filters"),
        (dict(fcn_filters=(8, 0)), "fcn_filters must be"),
        (dict(fcn_filters=(8, 4), fcn_kernel_sizes=(3,)), "one kernel size per block"),
        (dict(fcn_filters=(8,), fcn_kernel_sizes=(2.5,)), "fcn_kernel_sizes must be"),
        (dict(fcn_filters="8"), "fcn_filters"),
        (dict(fcn_filters=(4,), fcn_squeeze_excitation="yes"), "fcn_squeeze_excitation"),
        (dict(fcn_filters=(4,), fcn_kernel_sizes=(3,), tbptt_steps=4), "tbptt_steps"),
        (dict(dimension_shuffle=True, tbptt_steps=4), "tbptt_steps"),
        (dict(fcn_filters=(4,), fcn_kernel_sizes=(3,), return_sequences=True), "per-step"),
    ],
)
def test_parameter_validation(params, match):
    X, y = series(n=20, T=8)
    if params.get("return_sequences"):
        y = np.tile(y[:, None], (1, 8))
    with pytest.raises(ValueError, match=match):
        LSTMClassifier(hidden_layer_sizes=2, max_iter=1, **params).fit(X, y)


def test_fcn_with_conv_front_end_is_refused():
    X = np.random.default_rng(0).normal(size=(10, 4, 6, 1))
    with pytest.raises(ValueError, match="conv front end"):
        model = LSTMRegressor(2, conv_filters=2, fcn_filters=(4,), fcn_kernel_sizes=(3,))
        model.fit(X, np.ones(10))


def test_refusals_of_stream_and_torch():
    # to_onnx exports the branch (tests/test_onnx_fcn.py).
    X, y = series(n=20, T=8)
    model = LSTMClassifier(hidden_layer_sizes=2, fcn_filters=(4,), fcn_kernel_sizes=(3,),
                           max_iter=1).fit(X, y)  # fmt: skip
    with pytest.raises(ValueError, match="streamed"):
        model.stream()
    with pytest.raises(ValueError, match="FCN"):
        model.to_torch()
    with pytest.raises(ValueError, match="cannot change"):
        model.set_params(warm_start=True, fcn_filters=(5,)).fit(X, y)


def test_early_stopping_validates_with_the_running_statistics():
    X, y = series(n=50)
    model = LSTMClassifier(
        **{**SMALL, "max_iter": 6}, early_stopping=True, validation_fraction=0.2,
        restore_best_weights=True,
    ).fit(X, y)  # fmt: skip
    assert len(model.validation_scores_) == model.n_iter_
    assert all(np.isfinite(model.history_["val_loss"]))


def test_dimension_shuffle_alone_save_and_load(tmp_path):
    X, y = series(F=2, T=10, n=30)
    model = LSTMRegressor(4, dimension_shuffle=True, max_iter=3, random_state=0).fit(X, y)
    assert tuple(model._network().layout()[0][2]) == (16, 10)
    path = tmp_path / "shuffle.safetensors"
    model.save(path)
    np.testing.assert_array_equal(load(path).predict(X), model.predict(X))


def test_weights_from_torch_make_no_fcn_branch():
    torch = require_torch()
    lstm, head = torch.nn.LSTM(1, 3, batch_first=True), torch.nn.Linear(3, 2)
    with pytest.raises(ValueError, match="FCN branch"):
        LSTMClassifier.from_torch(lstm, head, fcn_filters=(4,), fcn_kernel_sizes=(3,))


def test_failed_fit_keeps_the_running_statistics():
    """A fit that raises after training epochs leaves the weights and running statistics."""
    X, y = series(n=20, T=8)
    model = LSTMClassifier(**SMALL).fit(X, y)
    before = model._params.copy()

    def fail_at_epoch_2(est, logs):
        if logs["epoch"] >= 2:
            raise RuntimeError("stop")

    with pytest.raises(RuntimeError, match="stop"):
        model.set_params(warm_start=True, callbacks=fail_at_epoch_2).fit(X, y)
    np.testing.assert_array_equal(model._params, before)
    bad = X.copy()
    bad[0, 0, 0] = np.inf
    with pytest.raises(ValueError):
        model.set_params(callbacks=None).fit(bad, y)
    np.testing.assert_array_equal(model._params, before)


def test_prediction_does_not_depend_on_the_inference_batch(monkeypatch):
    """Long series are predicted in fewer rows at a time: the same bits."""
    from lstmlearn import estimators

    X, y = series(F=2, n=30)
    model = LSTMClassifier(**SMALL).fit(X, y)
    whole = model.predict_proba(X)
    monkeypatch.setattr(estimators, "_FCN_PREDICT_ELEMENTS", 24 * 8 * 7)
    assert model._predict_batch(30, 24) == 7
    np.testing.assert_array_equal(model.predict_proba(X), whole)
