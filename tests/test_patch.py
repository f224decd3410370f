"""patch_size: long sequences read in patches of consecutive steps."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

import lstmlearn
from lstmlearn import LSTMClassifier, LSTMGenerator, LSTMRegressor
from lstmlearn._data import (
    AUTO_PATCH_ABOVE,
    AUTO_PATCH_STEPS,
    as_sequences,
    auto_patch_size,
    patch_steps,
)


def manual_patches(seq: np.ndarray, k: int) -> np.ndarray:
    """One [T, F] sequence as [ceil(T/k), k*F], zeros before its first step."""
    T, F = seq.shape
    pad = (-T) % k
    full = np.concatenate([np.zeros((pad, F), seq.dtype), seq])
    return full.reshape(-1, k * F)


def series(n=24, T=130, F=2, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, T, F)).astype(np.float32)
    y = X[:, -20:, 0].sum(axis=1)
    return X, y


SMALL = dict(hidden_layer_sizes=8, max_iter=3, random_state=0, n_jobs=1)


# -- the transform ---------------------------------------------------------------------


@pytest.mark.parametrize("T,k", [(12, 3), (13, 3), (14, 5), (5, 7), (1, 4)])
def test_patch_steps_of_equal_lengths_pads_at_the_start(T, k):
    x = np.arange(2 * T * 3, dtype=np.float32).reshape(2, T, 3) + 1
    out = patch_steps(as_sequences(x, np.dtype(np.float32)), k)
    assert out.mask is None and out.lengths is None
    for i in range(2):
        np.testing.assert_array_equal(out.x[i], manual_patches(x[i], k))
    assert out.x.flags.c_contiguous


def test_patch_steps_of_ragged_sequences_aligns_each_on_its_last_step():
    rng = np.random.default_rng(1)
    seqs = [rng.normal(size=(n, 2)).astype(np.float32) for n in (7, 12, 3)]
    out = patch_steps(as_sequences(seqs, np.dtype(np.float32)), 4)
    np.testing.assert_array_equal(out.lengths, [2, 3, 1])
    assert out.x.shape == (3, 3, 8)
    for i, s in enumerate(seqs):
        m = manual_patches(s, 4)
        np.testing.assert_array_equal(out.x[i, : len(m)], m)
        assert not out.x[i, len(m) :].any()
        np.testing.assert_array_equal(out.mask[i], np.arange(3) < len(m))


def test_patch_steps_masks_only_patches_without_a_real_step():
    x = np.ones((1, 6, 1))
    x[0, :3] = np.nan  # the first patch of 3 is all missing, the second is real
    x[0, 4] = np.nan
    seqs = as_sequences(x, np.dtype(np.float64), missing="mask")
    out = patch_steps(seqs, 3)
    np.testing.assert_array_equal(out.mask, [[0, 1]])
    np.testing.assert_array_equal(out.x[0, 1], [1, 0, 1])  # the missing step is zero


def test_patch_size_one_returns_the_input_itself():
    seqs = as_sequences(np.ones((2, 5, 1)), np.dtype(np.float32))
    assert patch_steps(seqs, 1) is seqs


def test_auto_rule():
    assert auto_patch_size(AUTO_PATCH_ABOVE) == 1
    assert auto_patch_size(AUTO_PATCH_ABOVE + 1) == -(-(AUTO_PATCH_ABOVE + 1) // AUTO_PATCH_STEPS)
    assert auto_patch_size(1460) == -(-1460 // AUTO_PATCH_STEPS)
    assert -(-1460 // auto_patch_size(1460)) <= AUTO_PATCH_STEPS


# -- the estimators --------------------------------------------------------------------


@pytest.mark.parametrize("Est", [LSTMRegressor, LSTMClassifier])
def test_a_patched_model_is_the_model_of_the_patched_data(Est):
    """patch_size=k equals patch_size=None on data reshaped by hand, bit for bit."""
    X, y = series(T=50)
    if Est is LSTMClassifier:
        y = (y > 0).astype(int)
    k = 4
    Xp = np.stack([manual_patches(s, k) for s in X])
    a = Est(patch_size=k, **SMALL).fit(X, y)
    b = Est(patch_size=None, **SMALL).fit(Xp, y)
    assert a.patch_size_ == k and b.patch_size_ == 1
    assert a.n_features_in_ == 2 and b.n_features_in_ == 2 * k
    np.testing.assert_array_equal(a._params, b._params)
    np.testing.assert_array_equal(a.predict(X[:5]), b.predict(Xp[:5]))
    np.testing.assert_array_equal(a.loss_curve_, b.loss_curve_)


def test_ragged_sequences_are_patched_one_by_one():
    rng = np.random.default_rng(2)
    seqs = [rng.normal(size=(n, 1)).astype(np.float32) for n in (9, 14, 5, 11)]
    y = np.array([0.5, -1.0, 2.0, 0.1])
    a = LSTMRegressor(patch_size=3, **SMALL).fit(seqs, y)
    b = LSTMRegressor(patch_size=None, **SMALL).fit([manual_patches(s, 3) for s in seqs], y)
    np.testing.assert_array_equal(a.predict(seqs), b.predict([manual_patches(s, 3) for s in seqs]))


def test_auto_leaves_short_sequences_alone_bit_for_bit():
    X, y = series(T=AUTO_PATCH_ABOVE)
    a = LSTMRegressor(**SMALL).fit(X, y)
    b = LSTMRegressor(patch_size=None, **SMALL).fit(X, y)
    assert a.patch_size_ == 1
    np.testing.assert_array_equal(a.predict(X), b.predict(X))


def test_auto_patches_long_sequences():
    X, y = series(T=AUTO_PATCH_ABOVE + 30)
    model = LSTMRegressor(**SMALL).fit(X, y)
    assert model.patch_size_ == auto_patch_size(X.shape[1]) > 1
    # predict on other lengths uses the fitted patch size
    assert model.predict(X[:3, :40]).shape == (3,)


@pytest.mark.parametrize(
    "params",
    [
        dict(return_sequences=True),
        dict(tbptt_steps=20),
        dict(conv_filters=2, conv_kernel_size=1, pool_size=1),
    ],
)
def test_auto_does_not_patch_what_needs_every_step(params):
    X, y = series(T=AUTO_PATCH_ABOVE + 30, F=4)
    if params.get("return_sequences"):
        y = X[:, :, :1]
    if "conv_filters" in params:
        X = X.reshape(X.shape[0], X.shape[1], 2, 2)
    model = LSTMRegressor(**SMALL, **params).fit(X, y)
    assert model.patch_size_ == 1


def test_an_explicit_patch_size_refuses_per_step_targets_and_the_conv_front_end():
    X, y = series(T=30)
    with pytest.raises(ValueError, match=r"per-step targets .* need patch_size=None"):
        LSTMRegressor(patch_size=3, return_sequences=True, **SMALL).fit(X, X[:, :, :1])
    with pytest.raises(ValueError, match="conv front end"):
        LSTMRegressor(patch_size=3, conv_filters=2, conv_kernel_size=1, **SMALL).fit(
            X.reshape(24, 30, 2, 1), y
        )


@pytest.mark.parametrize("bad", [0, -1, "big", 1.5])
def test_bad_patch_size(bad):
    X, y = series(T=10)
    with pytest.raises(ValueError, match="patch_size"):
        LSTMRegressor(patch_size=bad, **SMALL).fit(X, y)


def test_patch_size_cannot_change_in_an_update():
    X, y = series(T=30)
    model = LSTMRegressor(patch_size=3, warm_start=True, **SMALL).fit(X, y)
    before = model._params.copy()
    with pytest.raises(ValueError, match="patch_size cannot change"):
        model.set_params(patch_size=5).fit(X, y)
    np.testing.assert_array_equal(model._params, before)
    assert model.patch_size_ == 3
    model.set_params(patch_size="auto").partial_fit(X, y)  # keeps the fitted 3
    assert model.patch_size_ == 3


def test_patched_models_refuse_what_reads_one_step_at_a_time():
    X, y = series(T=30)
    model = LSTMRegressor(patch_size=3, **SMALL).fit(X, y)
    with pytest.raises(ValueError, match=r"stream\(\) needs a model that reads one step"):
        model.stream()
    with pytest.raises(ValueError, match=r"to_torch\(\) needs a model"):
        model.to_torch()
    # to_onnx exports the patching (tests/test_onnx_fcn.py).


def test_patched_models_survive_pickle_and_save(tmp_path):
    X, y = series(T=AUTO_PATCH_ABOVE + 30)
    y = (y > 0).astype(int)
    # fcn_filters=None: the classifier's 'auto' gives these an FCN branch, not patches
    model = LSTMClassifier(**SMALL, fcn_filters=None).fit(X, y)
    path = tmp_path / "m.safetensors"
    model.save(path)
    for other in (pickle.loads(pickle.dumps(model)), lstmlearn.load(path)):
        assert other.patch_size_ == model.patch_size_ > 1
        np.testing.assert_array_equal(other.predict_proba(X), model.predict_proba(X))


def test_the_generator_is_not_patched():
    text = "abcdefghij" * 30
    gen = LSTMGenerator(hidden_layer_sizes=8, max_iter=1, seq_length=120, random_state=0)
    gen.fit(text)
    assert gen.__dict__.get("patch_size_", 1) == 1


def test_the_lstm_fcn_branch_reads_every_step():
    X, y = series(T=AUTO_PATCH_ABOVE + 30)
    params = dict(SMALL, fcn_filters=(4,), fcn_kernel_sizes=(3,))
    assert LSTMRegressor(**params).fit(X, y).patch_size_ == 1
    with pytest.raises(ValueError, match="LSTM-FCN branch"):
        LSTMRegressor(patch_size=4, **params).fit(X, y)


def test_attention_weights_come_one_per_patch():
    X, y = series(T=30)
    model = LSTMRegressor(patch_size=4, pooling="attention", **SMALL).fit(X, y)
    weights = model.attention_weights(X[:3])
    assert weights.shape == (3, 8)  # ceil(30 / 4)
    np.testing.assert_allclose(weights.sum(axis=1), 1, rtol=1e-5)
