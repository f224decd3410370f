"""ONNX export of patched models (patch_size_ > 1) and of LSTM-FCN / MLSTM-FCN models.

Every exported graph runs in ONNX Runtime and is compared with predict /
predict_proba, on batches of one and of several sequences, on lengths that
the patch size divides and ones it does not, and with ``sequence_lens`` on
sequences of different lengths. The largest difference of each configuration
is collected in MAX_DIFF and printed at the end of the module (``pytest -s``).
"""

import numpy as np
import pytest

# One ONNX Runtime harness for both files: the session on one thread, the
# collected largest differences and their summary, ConvergenceWarning off.
from test_onnx import MAX_DIFF, export, onnx, ort, quiet, require, run, summary  # noqa: F401

from lstmlearn import LSTMClassifier, LSTMRegressor

pytestmark = pytest.mark.oracle

TOL = {np.float32: dict(rtol=1e-4, atol=1e-5), np.float64: dict(rtol=1e-10, atol=1e-12)}


def check(name, est, outputs, source, dtype):
    """ONNX outputs against predict / predict_proba of `source` (an array or a list)."""
    if isinstance(est, LSTMClassifier):
        got, want = outputs["probabilities"], est.predict_proba(source)
        np.testing.assert_array_equal(outputs["label"], est.predict(source))
    else:
        got, want = outputs["variable"], est.predict(source)
    assert got.shape == np.shape(want)
    # A constant model would match any graph: the predictions must differ.
    assert np.ptp(np.asarray(want), axis=0).max() > 1e-4 or len(want) == 1
    diff = float(np.max(np.abs(np.asarray(got, np.float64) - np.asarray(want, np.float64))))
    MAX_DIFF[name] = max(diff, MAX_DIFF.get(name, 0.0))
    np.testing.assert_allclose(got, want, err_msg=name, **TOL[dtype])


def padded(seqs, dtype):
    """A list of [T_i, F] sequences padded at the end, and their int32 lengths."""
    lengths = np.array([len(s) for s in seqs], dtype=np.int32)
    out = np.full((len(seqs), lengths.max(), seqs[0].shape[1]), 7.0, dtype=dtype)  # never read
    for k, s in enumerate(seqs):
        out[k, : len(s)] = s
    return out, lengths


def data(n, T, F, seed, classes=False):
    """Sequences with a bump early or late; a target that depends on both ends."""
    rng = np.random.default_rng(seed)
    X = rng.normal(scale=0.5, size=(n, T, F))
    late = rng.integers(0, 2, n)
    for i in range(n):
        start = 2 if late[i] == 0 else T - 8
        X[i, start : start + 5] += 1.5
    if classes:
        return X, np.array(["early", "late"])[late]
    return X, X[:, :5, 0].sum(axis=1) - X[:, -5:, -1].sum(axis=1)


def small(cls, **kwargs):
    return cls(**{"hidden_layer_sizes": 4, "max_iter": 2, "random_state": 0, "n_jobs": 1, **kwargs})


# -- patched models (patch_size_ > 1) -----------------------------------------------------------

PATCHED = {
    # name: (class, kwargs, T in fit, F, patch_size_ expected)
    "patched regressor, auto": (LSTMRegressor, {}, 600, 1, 12),
    "patched classifier, auto": (LSTMClassifier, {"fcn_filters": None}, 250, 1, 5),
    "patched bidirectional stacked, mean": (
        LSTMRegressor,
        {"hidden_layer_sizes": (4, 3), "bidirectional": True, "pooling": "mean"},
        130,
        2,
        3,
    ),
    "patched attention, float64": (
        LSTMRegressor,
        {"pooling": "attention", "attention_units": 3, "dtype": np.float64},
        210,
        1,
        5,
    ),
    "patched classifier, patch_size=4, float64": (
        LSTMClassifier,
        {"patch_size": 4, "bidirectional": True, "merge_mode": "sum", "dtype": np.float64},
        30,
        2,
        4,
    ),
}


def fitted_patched(name):
    cls, kwargs, T, F, k = PATCHED[name]
    X, y = data(12, T, F, seed=1, classes=cls is LSTMClassifier)
    dtype = kwargs.get("dtype", np.float32)
    est = small(cls, **kwargs).fit(X.astype(dtype), y)
    assert est.patch_size_ == k
    return est, dtype, T, F


@pytest.mark.parametrize("name", list(PATCHED))
@pytest.mark.parametrize("batch", [1, 4])
def test_patched_matches_predict(name, batch):
    est, dtype, T, F = fitted_patched(name)
    model = export.to_onnx(est)
    rng = np.random.default_rng(2)
    # The fitted length, and one the patch size does not divide (zeros before it).
    for steps in (T, T + est.patch_size_ // 2 + 1):
        X_in = data(batch, steps, F, seed=int(rng.integers(1000)))[0].astype(dtype)
        check(f"{name}, batch {batch}", est, run(model, X=X_in), X_in, dtype)


@pytest.mark.parametrize("name", list(PATCHED))
def test_patched_sequence_lens_match_predict_on_a_list(name):
    est, dtype, T, F = fitted_patched(name)
    k = est.patch_size_
    rng = np.random.default_rng(3)
    # Lengths that k divides, that it does not, shorter than one patch, one step.
    lengths = [T, T - 1, 3 * k, 2 * k + 1, k - 1, 1]
    seqs = [rng.normal(size=(n, F)).astype(dtype) for n in lengths]
    X_pad, lens = padded(seqs, dtype)
    X_pad = np.concatenate([X_pad, np.full_like(X_pad[:, :k], 5.0)], axis=1)  # extra padding
    model = export.to_onnx(est, sequence_lens=True)
    assert [i.name for i in model.graph.input] == ["X", "sequence_lens"]
    check(f"{name}, sequence_lens", est, run(model, X=X_pad, sequence_lens=lens), seqs, dtype)


def test_patched_scan_recurrence_in_float32():
    est, dtype, T, F = fitted_patched("patched regressor, auto")
    model = export.to_onnx(est, recurrence="scan", sequence_lens=True)
    assert "Scan" in {n.op_type for n in model.graph.node}
    seqs = [s.astype(dtype) for s in data(3, T, F, seed=4)[0]]
    seqs[1] = seqs[1][:401]
    X_pad, lens = padded(seqs, dtype)
    check("patched regressor, scan", est, run(model, X=X_pad, sequence_lens=lens), seqs, dtype)


# -- LSTM-FCN and MLSTM-FCN -------------------------------------------------------------------

FILTERS = {"fcn_filters": (8, 16, 8), "fcn_kernel_sizes": (8, 5, 3)}  # the paper's kernels

FCN = {
    # name: (class, kwargs, F)
    "LSTM-FCN regressor": (LSTMRegressor, FILTERS, 1),
    "LSTM-FCN classifier": (LSTMClassifier, FILTERS, 1),
    "MLSTM-FCN classifier, squeeze-excitation": (LSTMClassifier, FILTERS, 3),
    "MLSTM-FCN regressor, dimension_shuffle": (
        LSTMRegressor,
        {**FILTERS, "dimension_shuffle": True},
        3,
    ),
    "dimension_shuffle alone": (LSTMClassifier, {"dimension_shuffle": True}, 2),
    "FCN bidirectional stacked, attention": (
        LSTMRegressor,
        {
            "fcn_filters": (6, 4),
            "fcn_kernel_sizes": (4, 3),
            "fcn_squeeze_excitation": True,
            "hidden_layer_sizes": (4, 3),
            "bidirectional": True,
            "merge_mode": "ave",
            "pooling": "attention",
            "attention_units": 3,
        },
        2,
    ),
    "FCN mean pooling, even kernels": (
        LSTMClassifier,
        {"fcn_filters": (5, 7), "fcn_kernel_sizes": (2, 4), "pooling": "mean"},
        2,
    ),
    "LSTM-FCN regressor, float64": (LSTMRegressor, {**FILTERS, "dtype": np.float64}, 1),
    "MLSTM-FCN classifier, float64": (
        LSTMClassifier,
        {**FILTERS, "bidirectional": True, "dtype": np.float64},
        3,
    ),
    "MLSTM-FCN shuffle, float64": (
        LSTMRegressor,
        {
            "fcn_filters": (6, 5),
            "fcn_kernel_sizes": (3, 2),
            "dimension_shuffle": True,
            "dtype": np.float64,
        },
        2,
    ),
}
T_FCN = 20


def fitted_fcn(name):
    cls, kwargs, F = FCN[name]
    X, y = data(24, T_FCN, F, seed=5, classes=cls is LSTMClassifier)
    dtype = kwargs.get("dtype", np.float32)
    est = small(cls, batch_size=8, max_iter=3, **kwargs).fit(X.astype(dtype), y)
    fcn = est._fcn
    assert fcn is not None and est.patch_size_ == 1
    if kwargs.get("fcn_filters"):
        # Batch normalisation in predict reads running statistics that training moved.
        running = export._params(est)["fcn.bn0.running_var"]
        assert not np.allclose(running, 1.0)
        assert fcn[2] == (F > 1 or kwargs.get("fcn_squeeze_excitation") is True)
    return est, dtype, F


@pytest.mark.parametrize("name", list(FCN))
@pytest.mark.parametrize("batch", [1, 5])
def test_fcn_matches_predict(name, batch):
    est, dtype, F = fitted_fcn(name)
    shuffle = est._fcn[3]
    model = export.to_onnx(est)
    dims = model.graph.input[0].type.tensor_type.shape.dim
    assert [d.dim_value or d.dim_param for d in dims] == [
        "batch",
        T_FCN if shuffle else "sequence",
        F,
    ]
    # The FCN branch alone reads any length; dimension_shuffle needs the fitted one.
    for steps in (T_FCN,) if shuffle else (T_FCN, 9, 31):
        X_in = data(batch, steps, F, seed=6 + steps)[0].astype(dtype)
        check(f"{name}, batch {batch}", est, run(model, X=X_in), X_in, dtype)


@pytest.mark.parametrize(
    "name",
    [
        "LSTM-FCN regressor",
        "MLSTM-FCN classifier, squeeze-excitation",
        "FCN bidirectional stacked, attention",
        "FCN mean pooling, even kernels",
        "MLSTM-FCN classifier, float64",
    ],
)
def test_fcn_sequence_lens_match_predict_on_a_list(name):
    """Padded sequences give what predict gives on the list: each sequence as if alone."""
    est, dtype, F = fitted_fcn(name)
    rng = np.random.default_rng(7)
    seqs = [rng.normal(size=(n, F)).astype(dtype) for n in (20, 13, 1, 4, 27)]
    X_pad, lens = padded(seqs, dtype)  # the padding holds 7.0, which must not be read
    outputs = run(export.to_onnx(est, sequence_lens=True), X=X_pad, sequence_lens=lens)
    check(f"{name}, sequence_lens", est, outputs, seqs, dtype)
    alone = run(export.to_onnx(est), X=seqs[1][None])
    key = "probabilities" if isinstance(est, LSTMClassifier) else "variable"
    np.testing.assert_allclose(outputs[key][1], alone[key][0], **TOL[dtype])


def test_the_default_classifier_of_a_long_series_exports():
    """The branch that LSTMClassifier's fcn_filters='auto' builds for long univariate series."""
    X, y = data(24, 130, 1, seed=9, classes=True)
    est = small(LSTMClassifier, batch_size=8, max_iter=3).fit(X.astype(np.float32), y)
    assert est.fcn_filters_ == (32, 64, 32) and est._fcn[3] and est.patch_size_ == 1
    X_in = data(5, 130, 1, seed=10)[0].astype(np.float32)
    check("LSTMClassifier() on 130 steps", est, run(export.to_onnx(est), X=X_in), X_in, np.float32)


def test_fcn_scan_recurrence_in_float32():
    est, dtype, F = fitted_fcn("MLSTM-FCN classifier, squeeze-excitation")
    model = export.to_onnx(est, recurrence="scan")
    assert "Scan" in {n.op_type for n in model.graph.node}
    X_in = data(4, 15, F, seed=8)[0].astype(dtype)
    check("MLSTM-FCN classifier, scan", est, run(model, X=X_in), X_in, dtype)


def test_fcn_graph_uses_conv_in_float32_and_matmul_in_float64():
    """ONNX Runtime has no float64 Conv kernel: float64 convolutions are MatMuls."""
    est32, _, _ = fitted_fcn("LSTM-FCN regressor")
    est64, _, _ = fitted_fcn("LSTM-FCN regressor, float64")
    ops32 = [n.op_type for n in export.to_onnx(est32).graph.node]
    ops64 = [n.op_type for n in export.to_onnx(est64).graph.node]
    assert ops32.count("Conv") == 3 and "Conv" not in ops64


def test_fcn_skl2onnx_converter():
    skl2onnx = require("skl2onnx")
    from skl2onnx.common.data_types import FloatTensorType

    export.register_skl2onnx()
    est, dtype, F = fitted_fcn("MLSTM-FCN classifier, squeeze-excitation")
    types = [("X", FloatTensorType([None, None, F]))]
    model = skl2onnx.to_onnx(est, initial_types=types, options={"zipmap": False})
    X_in = data(5, 17, F, seed=9)[0].astype(dtype)
    check("MLSTM-FCN classifier, skl2onnx", est, run(model, X=X_in), X_in, dtype)


def test_patched_skl2onnx_converter_on_2d_input():
    skl2onnx = require("skl2onnx")
    from skl2onnx.common.data_types import FloatTensorType

    export.register_skl2onnx()
    est, dtype, T, _ = fitted_patched("patched regressor, auto")
    model = skl2onnx.to_onnx(est, initial_types=[("X", FloatTensorType([None, None]))])
    X_in = data(3, T + 5, 1, seed=10)[0][:, :, 0].astype(dtype)  # [n, T]: one feature per step
    check("patched regressor, skl2onnx 2-D", est, run(model, X=X_in), X_in, dtype)


# -- what is still refused ---------------------------------------------------------------------


def test_dimension_shuffle_refuses_sequence_lens():
    est, _, _ = fitted_fcn("MLSTM-FCN regressor, dimension_shuffle")
    with pytest.raises(ValueError, match=rf"dimension_shuffle=True.*exactly {T_FCN} steps"):
        export.to_onnx(est, sequence_lens=True)
    with pytest.raises(ValueError, match="sequence_lens=False"):
        est.to_onnx(sequence_lens=True)


def test_dimension_shuffle_graph_rejects_another_length():
    """The fitted length is part of the input's type: ONNX Runtime refuses another one."""
    est, dtype, F = fitted_fcn("MLSTM-FCN regressor, dimension_shuffle")
    X_in = data(2, T_FCN - 1, F, seed=11)[0].astype(dtype)
    with pytest.raises(Exception, match=r"(?i)dimension|shape"):
        run(export.to_onnx(est), X=X_in)
