"""CNN-LSTM front ends and pooling over time in the estimators: fit, predict,
attention weights, persistence, determinism and bad input."""

import pickle

import numpy as np
import pytest

from lstmlearn import LSTMClassifier, LSTMRegressor, _engine

FAST = dict(hidden_layer_sizes=6, max_iter=2, random_state=0, n_iter_no_change=100)


def subsequences(n=24, T=5, steps=6, F=2, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, T, steps, F))
    return X, X[:, :, :, 0].sum(axis=(1, 2))


def frames(n=24, T=4, h=6, w=5, c=None, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, T, h, w) if c is None else (n, T, h, w, c))
    return X, (X.mean(axis=tuple(range(1, X.ndim))) > 0).astype(int)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
class TestFitPredict:
    def test_conv1d_regressor(self):
        X, y = subsequences()
        model = LSTMRegressor(conv_filters=3, conv_kernel_size=3, pool_size=2, **FAST).fit(X, y)
        assert model.frame_shape_ == (6, 2)
        assert model.n_features_in_ == 12
        assert model.predict(X).shape == (24,)
        names = [name for name, _, _ in model._network().layout()]
        assert names[-2:] == ["conv.weight", "conv.bias"]

    @pytest.mark.parametrize("c", [None, 1, 3])
    def test_conv2d_classifier_with_and_without_channels(self, c):
        X, y = frames(c=c)
        model = LSTMClassifier(conv_filters=2, conv_kernel_size=(3, 2), **FAST).fit(X, y)
        assert model.frame_shape_ == (6, 5, 1 if c is None else c)
        assert model.predict_proba(X).shape == (24, 2)

    def test_frames_with_one_channel_equal_frames_without(self):
        X, y = frames()
        a = LSTMClassifier(conv_filters=2, conv_kernel_size=(3, 3), **FAST).fit(X, y)
        b = LSTMClassifier(conv_filters=2, conv_kernel_size=(3, 3), **FAST).fit(X[..., None], y)
        assert a.predict_proba(X).tobytes() == b.predict_proba(X[..., None]).tobytes()
        assert a.predict_proba(X).tobytes() == a.predict_proba(X[..., None]).tobytes()

    def test_conv_weights_are_trained(self):
        X, y = subsequences()
        model = LSTMRegressor(conv_filters=3, conv_kernel_size=3, **FAST)
        model.fit(X, y)
        conv = {n: (o, int(np.prod(s))) for n, o, s in model._network().layout()}["conv.weight"]
        before = model._params[conv[0] : conv[0] + conv[1]].copy()
        model.partial_fit(X, y)
        assert not np.array_equal(before, model._params[conv[0] : conv[0] + conv[1]])

    @pytest.mark.parametrize("pooling", ["mean", "attention"])
    def test_pooling_with_ragged_sequences(self, pooling):
        rng = np.random.default_rng(1)
        X = [rng.normal(size=(t, 2)) for t in (3, 7, 5, 2, 6, 4)]
        y = np.array([0, 1, 0, 1, 1, 0])
        model = LSTMClassifier(pooling=pooling, **FAST).fit(X, y)
        proba = model.predict_proba(X)
        # Padding does not change a prediction: each sequence alone agrees.
        alone = np.vstack([model.predict_proba(s[None]) for s in X])
        np.testing.assert_allclose(proba, alone, rtol=1e-5, atol=1e-6)

    def test_attention_weights(self):
        rng = np.random.default_rng(2)
        X = [rng.normal(size=(t, 2)) for t in (3, 7, 5, 2)]
        model = LSTMRegressor(pooling="attention", attention_units=4, **FAST)
        model.fit(X, rng.normal(size=4))
        w = model.attention_weights(X)
        assert w.shape == (4, 7)
        np.testing.assert_allclose(w.sum(axis=1), 1.0, rtol=1e-5)
        assert (w[0, 3:] == 0).all() and (w[0, :3] > 0).all()
        names = [name for name, _, _ in model._network().layout()]
        assert names[-3:] == ["pool.weight", "pool.bias", "pool.v"]

    def test_attention_with_conv_front_end_and_pickle(self):
        X, y = frames(c=2)
        model = LSTMClassifier(
            conv_filters=2, conv_kernel_size=(2, 2), pooling="attention", **FAST
        ).fit(X, y)
        clone = pickle.loads(pickle.dumps(model))
        assert clone.predict_proba(X).tobytes() == model.predict_proba(X).tobytes()
        assert clone.attention_weights(X).tobytes() == model.attention_weights(X).tobytes()

    @pytest.mark.parametrize(
        "kwargs",
        [
            dict(conv_filters=3, conv_kernel_size=3, pooling="attention"),
            dict(conv_filters=2, conv_kernel_size=(2, 3), pooling="mean", bidirectional=True),
        ],
    )
    def test_identical_for_any_thread_count(self, kwargs):
        X, y = subsequences(n=40) if isinstance(kwargs["conv_kernel_size"], int) else frames(n=40)
        results = []
        for n_jobs in (1, 2, 3):
            model = LSTMRegressor(**{**FAST, "n_jobs": n_jobs}, **kwargs).fit(X, y)
            results.append((model._params.tobytes(), model.predict(X).tobytes()))
        assert results[0] == results[1] == results[2]

    def test_partial_fit_and_warm_start_keep_the_architecture(self):
        X, y = subsequences()
        model = LSTMRegressor(conv_filters=3, conv_kernel_size=3, warm_start=True, **FAST)
        model.fit(X, y)
        model.set_params(conv_filters=4)
        with pytest.raises(ValueError, match="cannot change between fits"):
            model.fit(X, y)
        model.set_params(conv_filters=3, pooling="mean")
        with pytest.raises(ValueError, match="cannot change between fits"):
            model.partial_fit(X, y)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
class TestBadInput:
    @pytest.fixture(scope="class")
    def conv2d(self):
        X, y = frames()
        model = LSTMClassifier(conv_filters=2, conv_kernel_size=(3, 3), **FAST).fit(X, y)
        return model, X

    def test_three_d_input_to_a_conv_model(self):
        X, y = subsequences()
        with pytest.raises(ValueError, match=r"expects a 4-D array .*got an array of shape"):
            LSTMRegressor(conv_filters=2, conv_kernel_size=3, **FAST).fit(X[:, :, :, 0], y)

    @pytest.mark.parametrize("shape", [(24, 4, 6), (24, 4, 6, 5, 1, 1)])
    def test_wrong_frame_rank(self, conv2d, shape):
        model, _ = conv2d
        with pytest.raises(ValueError, match=r"conv2d front end expects .*5-D"):
            model.predict(np.zeros(shape))

    @pytest.mark.parametrize("shape", [(3, 4, 6, 6), (3, 4, 5, 6), (3, 4, 6, 5, 2)])
    def test_frame_shape_differs_from_fit(self, conv2d, shape):
        model, X = conv2d
        params, before = model._params.copy(), model.predict_proba(X)
        with pytest.raises(ValueError, match=r"fitted on frames \(6, 5, 1\)"):
            model.predict(np.zeros(shape))
        with pytest.raises(ValueError, match=r"fitted on frames \(6, 5, 1\)"):
            model.partial_fit(np.zeros(shape), np.zeros(shape[0], dtype=int))
        assert np.array_equal(params, model._params)
        assert model.predict_proba(X).tobytes() == before.tobytes()

    @pytest.mark.parametrize(
        "kwargs, match",
        [
            (dict(conv_kernel_size=7), "conv_kernel_size 7 is larger than the input's steps 6"),
            (dict(conv_kernel_size=3, pool_size=5), "pool_size 5 is larger than"),
            (dict(conv_kernel_size=(2, 2, 2)), "an int .* or a pair of ints"),
            (dict(conv_kernel_size="3"), "conv_kernel_size"),
            (dict(conv_kernel_size=0), "conv_kernel_size"),
        ],
    )
    def test_kernel_or_pool_too_large_or_malformed(self, kwargs, match):
        X, y = subsequences()
        with pytest.raises(ValueError, match=match):
            LSTMRegressor(conv_filters=2, **kwargs, **FAST).fit(X, y)

    def test_conv2d_kernel_larger_than_frame(self):
        X, y = frames()
        with pytest.raises(ValueError, match="larger than the input's width 5"):
            LSTMClassifier(conv_filters=2, conv_kernel_size=(3, 6), **FAST).fit(X, y)

    def test_ragged_input_to_a_conv_model(self):
        X = [np.zeros((3, 6, 2)), np.zeros((4, 6, 2))]
        with pytest.raises(ValueError, match="different lengths are not supported"):
            LSTMRegressor(conv_filters=2, **FAST).fit(X, [0.0, 1.0])

    def test_non_finite_frames(self):
        X, y = subsequences()
        X[0, 1, 2, 0] = np.nan
        with pytest.raises(ValueError, match="NaN or infinity"):
            LSTMRegressor(conv_filters=2, **FAST).fit(X, y)

    def test_attention_weights_need_attention_pooling(self):
        X, y = subsequences()
        model = LSTMRegressor(**FAST)
        with pytest.raises(Exception, match="not fitted"):
            LSTMRegressor(pooling="attention").attention_weights(X[:, :, 0])
        model.fit(X[:, :, 0], y)
        with pytest.raises(ValueError, match=r"pooling='attention'.*pooling='last'"):
            model.attention_weights(X[:, :, 0])

    @pytest.mark.parametrize("pooling", ["mean", "attention"])
    def test_pooling_refuses_per_step_targets(self, pooling):
        rng = np.random.default_rng(0)
        X = rng.normal(size=(8, 5, 2))
        with pytest.raises(ValueError, match="per-step targets"):
            LSTMClassifier(pooling=pooling, return_sequences=True, **FAST).fit(
                X, rng.integers(0, 2, size=(8, 5))
            )

    def test_failed_fit_keeps_the_fitted_model_and_its_pickle(self, conv2d, tmp_path):
        model, X = conv2d
        saved = pickle.dumps(model)
        before = model.predict_proba(X)
        model.set_params(conv_kernel_size=(9, 9))
        try:
            with pytest.raises(ValueError, match="larger than the input's height 6"):
                model.fit(X, np.zeros(len(X), dtype=int))
        finally:
            model.set_params(conv_kernel_size=(3, 3))
        assert model.predict_proba(X).tobytes() == before.tobytes()
        assert pickle.dumps(model) == saved

    def test_engine_refuses_a_frame_that_does_not_match_input_size(self):
        with pytest.raises(ValueError, match="input_size"):
            _engine.core.NetworkF32(
                10, [3], False, "concat", 0.0, 0.0, 1, False, "squared_error", 1.0,
                front_end="conv2d", frame=[3, 3, 1], kernel=[2, 2],
            )  # fmt: skip
