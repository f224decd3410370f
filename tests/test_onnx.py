"""ONNX export: every exported configuration, run in ONNX Runtime, against the estimators.

Needs onnx and onnxruntime (and skl2onnx for the converter tests): skipped
without them on a developer's machine; with LSTMLEARN_REQUIRE_ORACLE=1 (CI) a
missing package fails instead. The largest difference of each configuration is
collected in MAX_DIFF and printed at the end of the module (``pytest -s``).
"""

import importlib
import json
import os
import warnings

import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning, NotFittedError
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from lstmlearn import LSTMClassifier, LSTMGenerator, LSTMRegressor, LSTMSeq2Seq
from lstmlearn._data import Sequences


def require(module: str):
    """Import `module`; skip without it, unless LSTMLEARN_REQUIRE_ORACLE=1 (then fail)."""
    if os.environ.get("LSTMLEARN_REQUIRE_ORACLE") == "1":
        return importlib.import_module(module)
    return pytest.importorskip(module)


pytestmark = pytest.mark.oracle

onnx = require("onnx")
ort = require("onnxruntime")
export = require("lstmlearn._onnx")

# Largest |onnxruntime - lstmlearn| of each configuration, for the summary.
MAX_DIFF: dict[str, float] = {}
TOL = {np.float32: 1e-5, np.float64: 1e-12}


@pytest.fixture(scope="module", autouse=True)
def summary():
    yield
    if MAX_DIFF:
        width = max(map(len, MAX_DIFF))
        print("\nmax |onnxruntime - lstmlearn| per configuration:")
        for name, diff in MAX_DIFF.items():
            print(f"  {name:<{width}}  {diff:.3g}")


@pytest.fixture(autouse=True)
def quiet():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        yield


def run(model, **feeds) -> dict:
    """Check `model` and run it in ONNX Runtime on one thread; outputs by name."""
    onnx.checker.check_model(model, full_check=True)
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.log_severity_level = 3
    session = ort.InferenceSession(
        model.SerializeToString(), options, providers=["CPUExecutionProvider"]
    )
    names = [o.name for o in session.get_outputs()]
    return dict(zip(names, session.run(None, feeds), strict=True))


def record(name: str, got, want, dtype=np.float32) -> None:
    diff = float(np.max(np.abs(np.asarray(got, np.float64) - np.asarray(want, np.float64))))
    MAX_DIFF[name] = max(diff, MAX_DIFF.get(name, 0.0))
    assert diff <= TOL[dtype], f"{name}: max abs difference {diff:.3g}"


def small(cls, **kwargs):
    return cls(**{"hidden_layer_sizes": 5, "max_iter": 2, "random_state": 0, "n_jobs": 1, **kwargs})


RNG = np.random.default_rng(0)
X = RNG.normal(size=(16, 6, 3))
X_NEW = RNG.normal(size=(5, 8, 3))  # another batch size and length than in fit
TARGETS = {
    "y1": X.sum(axis=(1, 2)),
    "y2": X[:, -1, :2],
    "step2": X.cumsum(axis=1)[:, :, 0],
    "step3": X.cumsum(axis=1)[:, :, :2],
    "binary": np.where(X[:, 0, 0] > 0, "up", "down"),
    "classes": np.array([1, 3, 5, 7])[RNG.integers(0, 4, 16)],
    "floats": np.array([1.0, 2.0, 4.0])[RNG.integers(0, 3, 16)],
    "labels_per_step": (X[:, :, 0] > 0).astype(int),
}

CASES = {
    "last": (LSTMRegressor, {}, "y1"),
    "multi_output": (LSTMRegressor, {}, "y2"),
    "stacked": (LSTMRegressor, {"hidden_layer_sizes": (8, 6)}, "y1"),
    "bidirectional_concat": (
        LSTMRegressor,
        {"hidden_layer_sizes": (4, 3), "bidirectional": True},
        "y1",
    ),
    "bidirectional_sum": (
        LSTMRegressor,
        {"hidden_layer_sizes": (4, 3), "bidirectional": True, "merge_mode": "sum"},
        "y1",
    ),
    "bidirectional_mul": (
        LSTMRegressor,
        {"hidden_layer_sizes": (4, 3), "bidirectional": True, "merge_mode": "mul"},
        "y2",
    ),
    "bidirectional_ave": (
        LSTMRegressor,
        {"hidden_layer_sizes": (4, 3), "bidirectional": True, "merge_mode": "ave"},
        "y1",
    ),
    "dropout": (LSTMRegressor, {"dropout": 0.3, "recurrent_dropout": 0.3}, "y1"),
    "pooling_mean": (LSTMRegressor, {"pooling": "mean"}, "y1"),
    "pooling_attention": (LSTMRegressor, {"pooling": "attention", "attention_units": 3}, "y1"),
    "bidirectional_attention": (
        LSTMRegressor,
        {"bidirectional": True, "merge_mode": "ave", "pooling": "attention", "attention_units": 3},
        "y2",
    ),
    "per_step_2d": (LSTMRegressor, {"return_sequences": True}, "step2"),
    "per_step_3d_bidirectional": (
        LSTMRegressor,
        {"hidden_layer_sizes": (4, 3), "bidirectional": True},
        "step3",
    ),
    "float64": (
        LSTMRegressor,
        {"hidden_layer_sizes": (4, 3), "bidirectional": True, "dtype": np.float64},
        "y2",
    ),
    "float64_attention": (
        LSTMRegressor,
        {"pooling": "attention", "attention_units": 3, "dtype": np.float64},
        "y1",
    ),
    "float64_per_step": (
        LSTMRegressor,
        {"bidirectional": True, "merge_mode": "sum", "dtype": np.float64},
        "step3",
    ),
    "classifier_binary_str": (LSTMClassifier, {}, "binary"),
    "classifier_int_labels_bidirectional": (
        LSTMClassifier,
        {"hidden_layer_sizes": (4, 3), "bidirectional": True, "merge_mode": "mul"},
        "classes",
    ),
    "classifier_float_labels_attention": (
        LSTMClassifier,
        {"pooling": "attention", "attention_units": 3},
        "floats",
    ),
    "classifier_mean": (LSTMClassifier, {"pooling": "mean"}, "classes"),
    "classifier_per_step": (LSTMClassifier, {"return_sequences": True}, "labels_per_step"),
    "classifier_float64": (LSTMClassifier, {"dtype": np.float64}, "classes"),
}


def fitted(name: str):
    cls, kwargs, target = CASES[name]
    dtype = kwargs.get("dtype", np.float32)
    return small(cls, **kwargs).fit(X.astype(dtype), TARGETS[target]), dtype


def check_predictions(name, est, outputs, X_in, dtype, ragged=None):
    """ONNX outputs against predict / predict_proba (on `ragged` sequences when given)."""
    source = X_in if ragged is None else ragged
    if isinstance(est, LSTMClassifier):
        label, proba = outputs["label"], outputs["probabilities"]
        want_label, want_proba = est.predict(source), est.predict_proba(source)
        if ragged is not None and est.return_sequences_:
            lengths = [len(s) for s in ragged]
            label = [row[:n] for row, n in zip(label, lengths, strict=True)]
            proba = np.concatenate([row[:n] for row, n in zip(proba, lengths, strict=True)])
            want_proba = np.concatenate(want_proba)
            assert all(np.array_equal(a, b) for a, b in zip(label, want_label, strict=True))
        else:
            assert label.shape == np.shape(want_label)
            assert np.array_equal(label, want_label)
        record(name, proba, want_proba, dtype)
        return
    got, want = outputs["variable"], est.predict(source)
    if ragged is not None and est.return_sequences_:
        lengths = [len(s) for s in ragged]
        got = np.concatenate([row[:n] for row, n in zip(got, lengths, strict=True)])
        want = np.concatenate(want)
    assert got.shape == np.shape(want)
    record(name, got, want, dtype)


@pytest.mark.parametrize("name", list(CASES))
def test_estimator_matches_predict(name):
    est, dtype = fitted(name)
    model = export.to_onnx(est)
    X_in = X_NEW.astype(dtype)
    check_predictions(name, est, run(model, X=X_in), X_in, dtype)


def padded(seqs, dtype):
    lengths = np.array([len(s) for s in seqs], dtype=np.int32)
    out = np.zeros((len(seqs), lengths.max(), seqs[0].shape[1]), dtype=dtype)
    for k, s in enumerate(seqs):
        out[k, : len(s)] = s
    return out, lengths


RAGGED = [RNG.normal(size=(n, 3)) for n in (3, 8, 1, 6, 5)]


@pytest.mark.parametrize(
    "name, recurrence",
    [
        ("last", None),
        ("stacked", "scan"),
        ("bidirectional_concat", None),
        ("bidirectional_sum", "scan"),
        ("pooling_mean", None),
        ("bidirectional_attention", None),
        ("per_step_3d_bidirectional", None),
        ("classifier_per_step", None),
        ("classifier_int_labels_bidirectional", None),
        ("float64", None),
        ("float64_attention", None),
    ],
)
def test_sequence_lens_match_predict_on_a_list(name, recurrence):
    est, dtype = fitted(name)
    seqs = [s.astype(dtype) for s in RAGGED]
    X_pad, lengths = padded(seqs, dtype)
    model = export.to_onnx(est, sequence_lens=True, recurrence=recurrence)
    assert [i.name for i in model.graph.input] == ["X", "sequence_lens"]
    outputs = run(model, X=X_pad, sequence_lens=lengths)
    label = f"{name}, sequence_lens" + (f", {recurrence}" if recurrence else "")
    check_predictions(label, est, outputs, X_pad, dtype, ragged=seqs)


@pytest.mark.parametrize("name", ["stacked", "bidirectional_mul", "per_step_2d", "classifier_mean"])
def test_scan_recurrence_in_float32(name):
    est, dtype = fitted(name)
    model = export.to_onnx(est, recurrence="scan")
    assert "Scan" in {n.op_type for n in model.graph.node}
    assert "LSTM" not in {n.op_type for n in model.graph.node}
    check_predictions(f"{name}, scan", est, run(model, X=X_NEW.astype(dtype)), X_NEW, dtype)


def test_lstm_operator_layout_and_default_recurrence():
    est, _ = fitted("bidirectional_concat")
    nodes = [n for n in export.to_onnx(est).graph.node if n.op_type == "LSTM"]
    assert len(nodes) == 2
    for node in nodes:
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
        assert attrs["layout"] == 0 and attrs["direction"] == b"bidirectional"
    est64, _ = fitted("float64")
    assert "LSTM" not in {n.op_type for n in export.to_onnx(est64).graph.node}


def test_float64_with_the_lstm_operator_is_valid_onnx():
    # ONNX Runtime's LSTM kernel is float32-only; the graph is still valid ONNX.
    est, _ = fitted("float64")
    model = export.to_onnx(est, recurrence="lstm")
    onnx.checker.check_model(model, full_check=True)
    assert "LSTM" in {n.op_type for n in model.graph.node}


CONV = {
    "conv1d": (3, (16, 5, 7, 2)),
    "conv2d_4d": ((3, 2), (16, 5, 6, 5)),
    "conv2d_5d": ((2, 3), (16, 4, 5, 7, 2)),
}


@pytest.mark.parametrize("name", list(CONV))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_conv_front_end(name, dtype):
    rng = np.random.default_rng(15)
    kernel, shape = CONV[name]
    Xc = rng.normal(size=shape).astype(dtype)
    est = small(
        LSTMRegressor, conv_filters=3, conv_kernel_size=kernel, pool_size=2, dtype=dtype
    ).fit(Xc, Xc.sum(axis=tuple(range(1, Xc.ndim))))
    model = export.to_onnx(est)
    dims = model.graph.input[0].type.tensor_type.shape.dim
    assert [d.dim_value or d.dim_param for d in dims] == ["batch", "sequence", *shape[2:]]
    X_in = rng.normal(size=(3, 6, *shape[2:])).astype(dtype)
    record(
        f"{name}, {np.dtype(dtype).name}", run(model, X=X_in)["variable"], est.predict(X_in), dtype
    )


def test_conv_with_sequence_lens_matches_the_masked_engine():
    # The estimators refuse sequences of different lengths with a conv front
    # end; the graph takes them, with the engine's mask semantics.
    rng = np.random.default_rng(16)
    Xc = rng.normal(size=(16, 5, 6, 2)).astype(np.float32)
    est = small(LSTMRegressor, conv_filters=3, conv_kernel_size=3, pooling="mean").fit(
        Xc, Xc.sum(axis=(1, 2, 3))
    )
    X_in = rng.normal(size=(4, 6, 6, 2)).astype(np.float32)
    lengths = np.array([6, 2, 4, 1], dtype=np.int32)
    mask = (np.arange(6)[None] < lengths[:, None]).astype(np.uint8)
    flat = np.ascontiguousarray(X_in.reshape(4, 6, -1))
    want = est._raw_predict(Sequences(flat, mask, lengths))[:, 0]
    got = run(export.to_onnx(est, sequence_lens=True), X=X_in, sequence_lens=lengths)
    record("conv1d, sequence_lens (engine with a mask)", got["variable"], want)


def test_conv_classifier_per_step():
    rng = np.random.default_rng(17)
    Xc = rng.normal(size=(16, 5, 6, 2))
    est = small(LSTMClassifier, conv_filters=2, conv_kernel_size=2, return_sequences=True).fit(
        Xc, (Xc[:, :, 0, 0] > 0).astype(int)
    )
    X_in = rng.normal(size=(3, 4, 6, 2)).astype(np.float32)
    check_predictions(
        "conv1d classifier per step", est, run(export.to_onnx(est), X=X_in), X_in, np.float32
    )


# -- LSTMGenerator -------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_generator_step_gives_predict_proba(dtype):
    text = "the cat sat on the mat. " * 4
    gen = small(LSTMGenerator, hidden_layer_sizes=(6, 5), seq_length=8, dtype=dtype).fit(text)
    model = export.to_onnx(gen)
    assert [i.name for i in model.graph.input] == ["token", "h_0", "c_0", "h_1", "c_1"]
    contexts = ["t", "the ca", "sat on t", "mat. th"]
    proba = np.zeros((len(contexts), gen.n_tokens_))
    for k, context in enumerate(contexts):  # token by token from zero states
        state = {
            f"{s}_{i}": np.zeros((1, h), dtype) for i, h in enumerate(gen._hidden) for s in "hc"
        }
        for char in context:
            token = np.array([gen.vocabulary_.index(char)])
            out = run(model, token=token, **state)
            state = {name: out[f"next_{name}"] for name in state}
        proba[k] = out["probabilities"][0]
    record(f"generator step, {np.dtype(dtype).name}", proba, gen.predict_proba(contexts), dtype)
    assert gen.predict(contexts).tolist() == [gen.vocabulary_[t] for t in proba.argmax(axis=1)]


def test_generator_batched_integer_tokens():
    rng = np.random.default_rng(19)
    tokens = rng.integers(0, 7, size=(3, 30))
    gen = small(LSTMGenerator, seq_length=6, n_tokens=7).fit(tokens)
    context = rng.integers(0, 7, size=(4, 5))
    model = export.to_onnx(gen)
    state = {"h_0": np.zeros((4, 5), np.float32), "c_0": np.zeros((4, 5), np.float32)}
    for t in range(context.shape[1]):  # the four contexts as one batch
        out = run(model, token=context[:, t].astype(np.int64), **state)
        state = {"h_0": out["next_h_0"], "c_0": out["next_c_0"]}
    record("generator step, int tokens, batch", out["probabilities"], gen.predict_proba(context))


# -- LSTMSeq2Seq --------------------------------------------------------------------------


def decode(est, X_in, lengths=None):
    """Greedy decoding with the exported encoder and decoder step, as est.predict does.

    Returns the outputs [n, steps(, O)] and, with attention, the weights [n, steps, T].
    """
    models = export.to_onnx(est, sequence_lens=lengths is not None)
    feeds = {"X": X_in} if lengths is None else {"X": X_in, "sequence_lens": lengths}
    encoded = run(models["encoder"], **feeds)
    keys, h, c = encoded["encoder_outputs"], encoded["h"], encoded["c"]
    n, tokens = X_in.shape[0], est.output_vocab_size_ is not None
    meta = {p.key: p.value for p in models["decoder_step"].metadata_props}
    if est.mode == "repeat":
        step_in = {"decoder_input": h}
        h, c = np.zeros_like(h), np.zeros_like(c)
    elif tokens:
        step_in = {"token": np.full(n, json.loads(meta["start_token"]), dtype=np.int64)}
    else:
        step_in = {"previous": np.zeros((n, est.n_features_out_), dtype=h.dtype)}
    steps, weights = [], []
    for _ in range(json.loads(meta["output_steps"])):
        feeds = {**step_in, "h": h, "c": c}
        if est.attention is not None:
            feeds["encoder_outputs"] = keys
            if lengths is not None:
                feeds["sequence_lens"] = lengths
        out = run(models["decoder_step"], **feeds)
        h, c = out["next_h"], out["next_c"]
        weights.append(out.get("attention_weights"))
        if tokens:
            token = out["probabilities"].argmax(axis=1)
            steps.append(token)
            if est.mode != "repeat":
                step_in = {"token": token.astype(np.int64)}
        else:
            steps.append(out["values"])
            if est.mode != "repeat":
                step_in = {"previous": out["values"]}
    return np.stack(steps, axis=1), np.stack(weights, axis=1) if est.attention else None


S2S_X = RNG.integers(0, 6, size=(20, 5))
S2S_Y = (S2S_X[:, :4] + 1) % 5


S2S_TOKENS = {
    "tf": {},
    "tf_dot": {"attention": "dot"},
    "tf_additive_stacked": {
        "attention": "additive",
        "attention_units": 3,
        "hidden_layer_sizes": (4, 6),
    },
    "repeat_dot": {"mode": "repeat", "attention": "dot"},
    "repeat": {"mode": "repeat"},
    "tf_dot_float64": {"attention": "dot", "dtype": np.float64},
}


@pytest.mark.parametrize("name", list(S2S_TOKENS))
def test_seq2seq_tokens_greedy(name):
    kwargs = S2S_TOKENS[name]
    est = small(LSTMSeq2Seq, hidden_layer_sizes=6, embedding_dim=4, max_iter=3)
    est.set_params(**kwargs).fit(S2S_X, S2S_Y)
    tokens, weights = decode(est, S2S_X.astype(np.int64))
    assert np.array_equal(tokens, est.predict(S2S_X))
    if est.attention is not None:
        dtype = kwargs.get("dtype", np.float32)
        want = est.attention_weights(S2S_X)
        record(f"seq2seq tokens {name}: attention weights", weights, want, dtype)


def test_seq2seq_ragged_tokens_with_end_symbol():
    rng = np.random.default_rng(22)
    X_list = [rng.integers(0, 6, n) for n in rng.integers(2, 7, 20)]
    y_list = [x[::-1][:4] for x in X_list]
    est = small(
        LSTMSeq2Seq, hidden_layer_sizes=(5, 6), embedding_dim=4, attention="dot", max_iter=3
    ).fit(X_list, y_list)
    lengths = np.array([len(x) for x in X_list], dtype=np.int32)
    X_pad = np.zeros((len(X_list), lengths.max()), dtype=np.int64)
    for k, x in enumerate(X_list):
        X_pad[k, : len(x)] = x
    got, weights = decode(est, X_pad, lengths)
    record("seq2seq ragged tokens: attention weights", weights, est.attention_weights(X_list))
    end = est.end_token_
    cut = [row[: np.flatnonzero(row == end)[0]] if (row == end).any() else row for row in got]
    assert all(np.array_equal(a, b) for a, b in zip(cut, est.predict(X_list), strict=True))


S2S_NUMBERS = {
    "tf": {},
    "repeat": {"mode": "repeat"},
    "tf_additive": {"attention": "additive"},
    "repeat_dot": {"attention": "dot", "mode": "repeat"},
}


@pytest.mark.parametrize("name", list(S2S_NUMBERS))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_seq2seq_numbers_greedy(name, dtype):
    rng = np.random.default_rng(23)
    Xn = rng.normal(size=(16, 5, 2))
    est = small(LSTMSeq2Seq, max_iter=3, dtype=dtype, **S2S_NUMBERS[name])
    est.fit(Xn, Xn[:, :3, :1] * 2)
    got, _ = decode(est, Xn.astype(dtype))
    record(f"seq2seq numbers {name}, {np.dtype(dtype).name}", got, est.predict(Xn), dtype)


# -- skl2onnx ------------------------------------------------------------------------------


def test_skl2onnx_pipeline_regressor():
    rng = np.random.default_rng(24)
    skl2onnx = require("skl2onnx")
    from skl2onnx.common.data_types import FloatTensorType

    export.register_skl2onnx()
    X2 = rng.normal(size=(16, 6)).astype(np.float32)  # [n, T]: one feature per step
    pipe = Pipeline([("scale", StandardScaler()), ("lstm", small(LSTMRegressor))])
    pipe.fit(X2, X2.sum(axis=1))
    model = skl2onnx.to_onnx(pipe, initial_types=[("X", FloatTensorType([None, 6]))])
    X_in = rng.normal(size=(5, 6)).astype(np.float32)
    record(
        "skl2onnx Pipeline(StandardScaler, LSTMRegressor)",
        run(model, X=X_in)["variable"],
        pipe.predict(X_in),
    )


def test_skl2onnx_classifier_options():
    skl2onnx = require("skl2onnx")
    from skl2onnx.common.data_types import FloatTensorType

    export.register_skl2onnx()
    est, _ = fitted("classifier_binary_str")
    types = [("X", FloatTensorType([None, None, 3]))]
    X_in = X_NEW.astype(np.float32)
    plain = run(skl2onnx.to_onnx(est, initial_types=types, options={"zipmap": False}), X=X_in)
    assert np.array_equal(plain["label"], est.predict(X_in))
    record("skl2onnx LSTMClassifier, zipmap=False", plain["probabilities"], est.predict_proba(X_in))
    zipped = run(skl2onnx.to_onnx(est, initial_types=types), X=X_in)
    assert np.array_equal(zipped["output_label"], est.predict(X_in))
    first = zipped["output_probability"][0]
    assert np.allclose([first[c] for c in est.classes_], est.predict_proba(X_in)[0], atol=1e-6)


def test_skl2onnx_float64_classifier_in_a_pipeline():
    rng = np.random.default_rng(26)
    skl2onnx = require("skl2onnx")
    from skl2onnx.common.data_types import DoubleTensorType

    export.register_skl2onnx()
    X2 = rng.normal(size=(16, 6))
    clf = small(LSTMClassifier, dtype=np.float64)
    pipe = Pipeline([("scale", StandardScaler()), ("lstm", clf)]).fit(X2, TARGETS["classes"])
    model = skl2onnx.to_onnx(
        pipe,
        initial_types=[("X", DoubleTensorType([None, 6]))],
        options={id(clf): {"zipmap": False, "nocl": True}},
    )
    X_in = rng.normal(size=(5, 6))
    out = run(model, X=X_in)
    assert np.array_equal(clf.classes_[out["label"]], pipe.predict(X_in))
    record(
        "skl2onnx Pipeline float64 classifier",
        out["probabilities"],
        pipe.predict_proba(X_in),
        np.float64,
    )


def test_skl2onnx_refuses_a_zipmap_it_cannot_build():
    skl2onnx = require("skl2onnx")
    from skl2onnx.common.data_types import FloatTensorType

    export.register_skl2onnx()
    est, _ = fitted("classifier_per_step")
    with pytest.raises(ValueError, match="zipmap=False"):
        skl2onnx.to_onnx(est, initial_types=[("X", FloatTensorType([None, None, 3]))])


# -- files, options and errors --------------------------------------------------------------


def test_writes_files_atomically(tmp_path):
    est, _ = fitted("last")
    path = tmp_path / "model.onnx"
    model = export.to_onnx(est, path)
    assert onnx.load(path).SerializeToString() == model.SerializeToString()
    s2s = small(LSTMSeq2Seq, max_iter=1).fit(S2S_X, S2S_Y)
    models = export.to_onnx(s2s, tmp_path / "s2s.onnx")
    assert set(models) == {"encoder", "decoder_step"}
    assert onnx.load(tmp_path / "s2s.encoder.onnx").graph.output[0].name == "encoder_outputs"
    assert onnx.load(tmp_path / "s2s.onnx").graph.input[0].name == "token"
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "model.onnx",
        "s2s.encoder.onnx",
        "s2s.onnx",
    ]


def test_metadata_and_opsets():
    est, _ = fitted("classifier_binary_str")
    props = {p.key: p.value for p in export.to_onnx(est).metadata_props}
    assert props["lstmlearn.class"] == "LSTMClassifier" and props["classes"] == '["down", "up"]'
    for opset in (export.MIN_OPSET, export.DEFAULT_OPSET):
        model = export.to_onnx(est, opset=opset)
        assert model.opset_import[0].version == opset
        assert np.array_equal(run(model, X=X_NEW.astype(np.float32))["label"], est.predict(X_NEW))


def test_errors():
    with pytest.raises(NotFittedError):
        export.to_onnx(LSTMRegressor())
    with pytest.raises(TypeError, match="exports LSTMRegressor"):
        export.to_onnx(StandardScaler())
    est, _ = fitted("last")
    with pytest.raises(ValueError, match="opset"):
        export.to_onnx(est, opset=13)
    with pytest.raises(ValueError, match="recurrence"):
        export.to_onnx(est, recurrence="gru")
