"""lstmlearn.preprocessing: windows of a series, sequence scaling, Keras padding, one-hot tokens."""

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.testing import assert_allclose, assert_array_equal
from scipy import sparse
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.model_selection import GridSearchCV, cross_val_score
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import MinMaxScaler, Normalizer, RobustScaler, StandardScaler
from sklearn.utils import get_tags
from sklearn.utils.estimator_checks import parametrize_with_checks

from lstmlearn import LSTMRegressor
from lstmlearn.preprocessing import (
    SequenceOneHotEncoder,
    SequenceScaler,
    make_windows,
    pad_sequences,
)

NO_CONVERGENCE = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


def tiny_lstm():
    return LSTMRegressor(hidden_layer_sizes=4, max_iter=2, random_state=0)


def sequences_3d(n=24, steps=5, features=3, seed=0):
    """Features on very different scales and offsets."""
    rng = np.random.default_rng(seed)
    scale = np.array([1.0, 50.0, 0.01])[:features]
    offset = np.array([3.0, -200.0, 7.0])[:features]
    return rng.normal(size=(n, steps, features)) * scale + offset


# -- make_windows ----------------------------------------------------------------------------


def test_make_windows_reassembles_the_series():
    series = np.arange(20.0) ** 2
    X, y = make_windows(series, window=4, horizon=3)
    n = 20 - 4 - 3 + 1
    assert X.shape == (n, 4, 1)
    assert y.shape == (n, 3)
    # the first window, then each window's next step, then the last window's other targets
    assert_array_equal(np.concatenate([X[0, :, 0], y[:, 0], y[-1, 1:]]), series)
    assert X.flags.c_contiguous and X.flags.writeable
    X[0, 0, 0] = -1.0  # a copy, not a view of the series
    assert series[0] == 0.0


def test_make_windows_strides_targets_and_exog_by_hand():
    series = np.arange(10.0)
    X, y = make_windows(series, window=3, horizon=1, stride=4)
    # n = (10 - 3 - 1) // 4 + 1 = 2: windows start at 0 and 4; step 8 starts no window
    assert_array_equal(X[:, :, 0], [[0, 1, 2], [4, 5, 6]])
    assert_array_equal(y, [[3], [7]])

    targets = np.stack([np.arange(12.0), -np.arange(12.0)], axis=1)  # k = 2
    exog = np.stack([100 + np.arange(12.0), 200 + np.arange(12.0), 300 + np.arange(12.0)], 1)
    X, y = make_windows(targets, window=4, horizon=2, stride=3, exog=exog)
    assert X.shape == (3, 4, 5)  # (12 - 4 - 2) // 3 + 1 windows; 2 targets + 3 exog per step
    assert y.shape == (3, 2, 2)
    for i, s in enumerate(range(0, 7, 3)):
        assert_array_equal(X[i, :, :2], targets[s : s + 4])
        assert_array_equal(X[i, :, 2:], exog[s : s + 4])  # past covariates at the same steps
        assert_array_equal(y[i], targets[s + 4 : s + 6])


@settings(max_examples=60, deadline=None)
@given(
    T=st.integers(1, 40),
    window=st.integers(1, 12),
    horizon=st.integers(1, 5),
    stride=st.integers(1, 6),
    k=st.sampled_from([0, 1, 3]),  # 0: a 1-D series
    e=st.sampled_from([0, 2]),
)
def test_make_windows_property(T, window, horizon, stride, k, e):
    rng = np.random.default_rng(T)
    series = rng.normal(size=(T,) if k == 0 else (T, k))
    exog = rng.normal(size=(T, e)) if e else None
    if T < window + horizon:
        with pytest.raises(ValueError, match=f"series has {T} steps, but window={window}"):
            make_windows(series, window, horizon, stride, exog)
        return
    X, y = make_windows(series, window, horizon, stride, exog)
    columns = series.reshape(T, -1)
    starts = range(0, T - window - horizon + 1, stride)
    assert X.shape == (len(starts), window, columns.shape[1] + e)
    assert y.shape == ((len(starts), horizon) if k <= 1 else (len(starts), horizon, k))
    for i, s in enumerate(starts):
        assert_array_equal(X[i, :, : columns.shape[1]], columns[s : s + window])
        if e:
            assert_array_equal(X[i, :, columns.shape[1] :], exog[s : s + window])
        assert_array_equal(y[i].reshape(horizon, -1), columns[s + window : s + window + horizon])


def test_make_windows_keeps_the_pandas_index():
    index = pd.date_range("2024-01-01", periods=10, freq="D")
    series = pd.Series(np.arange(10.0), index=index, name="sales")

    X, y = make_windows(series, window=3)
    assert isinstance(X, np.ndarray)
    assert isinstance(y, pd.Series)
    assert y.name == "t+1"
    assert y.index.equals(index[2:9])  # each window's last step
    assert_array_equal(y.to_numpy(), np.arange(3.0, 10.0))
    assert y[index[2]] == series[index[3]]

    X, y = make_windows(series, window=3, horizon=2, stride=2)
    assert isinstance(y, pd.DataFrame)
    assert list(y.columns) == ["t+1", "t+2"]
    assert y.index.equals(index[[2, 4, 6]])
    assert_array_equal(y.to_numpy(), [[3, 4], [5, 6], [7, 8]])

    frame = pd.DataFrame({"a": np.arange(8.0), "b": 10 * np.arange(8.0)}, index=list("pqrstuvw"))
    X, y = make_windows(frame, window=2, horizon=3)
    assert X.shape == (4, 2, 2)
    assert y.columns.names == ["target", "step"]
    assert list(y.columns) == [(c, f"t+{h}") for c in "ab" for h in (1, 2, 3)]
    assert list(y.index) == list("qrst")
    assert y.loc["r", ("b", "t+2")] == frame["b"].iloc[4]  # r is step 2; t+2 is step 4
    assert y.loc["t", ("a", "t+3")] == frame["a"].iloc[7]

    # several targets, one step ahead: still a DataFrame with (target, step) columns
    _, y = make_windows(frame, window=2)
    assert list(y.columns) == [("a", "t+1"), ("b", "t+1")]


def test_make_windows_exog_as_dataframe():
    index = pd.RangeIndex(100, 112)
    series = pd.Series(np.arange(12.0), index=index)
    exog = pd.DataFrame({"temp": np.arange(12.0) + 0.5, "holiday": np.arange(12) % 2}, index)
    X, y = make_windows(series, window=4, exog=exog)
    assert X.shape == (8, 4, 3)
    assert_array_equal(X[0, :, 1], [0.5, 1.5, 2.5, 3.5])
    assert_array_equal(X[0, :, 2], [0, 1, 0, 1])
    assert y.index.equals(index[3:11])

    # a NumPy series with pandas exog: the index comes from exog
    _, y = make_windows(np.arange(12.0), window=4, exog=exog)
    assert y.index.equals(index[3:11])
    # NumPy exog with a pandas series; a 1-D exog is one column
    X, y = make_windows(series, window=4, exog=np.arange(12.0) * 2)
    assert X.shape == (8, 4, 2) and y.index.equals(index[3:11])


def test_make_windows_lets_nan_through():
    series = np.arange(10.0)
    series[4] = np.nan
    X, y = make_windows(series, window=3)
    assert len(X) == 7  # nothing dropped
    has_nan = np.isnan(X[:, :, 0]).any(axis=1)
    assert_array_equal(has_nan, [False, False, True, True, True, False, False])  # windows 2-4
    assert_array_equal(np.isnan(y[:, 0]), [False, True, False, False, False, False, False])

    # pandas' missing value in a nullable integer column becomes NaN
    nullable = pd.Series([1, 2, None, 4, 5, 6], dtype="Int64")
    X, y = make_windows(nullable, window=2)
    assert X.dtype == np.float64
    assert np.isnan(X[1, 1, 0]) and np.isnan(y.iloc[0])


def test_make_windows_of_tokens_for_next_token_prediction():
    text = np.array(list("abcabcab"))
    X, y = make_windows(text, window=3)
    assert X.dtype == text.dtype
    assert X[:, :, 0].tolist()[:2] == [["a", "b", "c"], ["b", "c", "a"]]
    assert y[:, 0].tolist() == list("abcab")
    codes = SequenceOneHotEncoder().fit_transform(X[:, :, 0])
    assert codes.shape == (5, 3, 3)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        (
            {"series": np.arange(5.0), "window": 4, "horizon": 2},
            ValueError,
            r"series has 5 steps, but window=4 and horizon=2 need at least window \+ horizon = 6",
        ),
        (
            {"series": np.arange(5.0), "window": 0},
            ValueError,
            r"'window' parameter of make_windows must be an int in the range \[1, inf\)\. Got 0",
        ),
        (
            {"series": np.arange(5.0), "window": 2, "horizon": -1},
            ValueError,
            r"'horizon' parameter .* must be an int in the range \[1, inf\)\. Got -1",
        ),
        (
            {"series": np.arange(5.0), "window": 2, "stride": 1.5},
            ValueError,
            r"'stride' parameter .* must be an int in the range \[1, inf\)\. Got 1\.5",
        ),
        (
            {"series": np.arange(10.0), "window": 2, "exog": np.zeros((9, 2))},
            ValueError,
            r"exog has 9 steps, but series has 10; exog must be aligned with the series",
        ),
        (
            {"series": np.zeros((2, 3, 4)), "window": 1},
            ValueError,
            r"series must be 1-D \(timesteps,\) or 2-D \(timesteps, columns\); got a 3-D array "
            r"of shape \(2, 3, 4\)",
        ),
        (
            {"series": np.zeros((6, 0)), "window": 1},
            ValueError,
            r"series has no columns: got a 2-D array of shape \(6, 0\)",
        ),
        (
            {
                "series": pd.Series(np.arange(6.0)),
                "window": 2,
                "exog": pd.Series(np.arange(6.0), index=np.arange(1, 7)),
            },
            ValueError,
            r"exog's index differs from series' index",
        ),
    ],
    ids=[
        "too-short",
        "window-0",
        "horizon-negative",
        "stride-float",
        "exog-length",
        "series-3d",
        "no-columns",
        "index-mismatch",
    ],
)
def test_make_windows_errors(kwargs, error, match):
    with pytest.raises(error, match=match):
        make_windows(**kwargs)


# -- SequenceScaler --------------------------------------------------------------------------


def test_scaler_3d_statistics_and_exact_round_trip():
    X = sequences_3d()
    scaler = SequenceScaler()
    Xt = scaler.fit_transform(X)
    assert Xt.shape == X.shape
    assert scaler.n_features_in_ == 3
    rows = X.reshape(-1, 3)  # every sample and step
    assert_allclose(scaler.scaler_.mean_, rows.mean(axis=0), rtol=1e-12)
    assert_allclose(scaler.scaler_.scale_, rows.std(axis=0), rtol=1e-12)
    assert_allclose(Xt.reshape(-1, 3).mean(axis=0), 0, atol=1e-12)
    assert_allclose(Xt.reshape(-1, 3).std(axis=0), 1, rtol=1e-12)
    assert_array_equal(Xt, scaler.transform(X))  # fit_transform = fit + transform
    assert_allclose(scaler.inverse_transform(Xt), X, rtol=0, atol=1e-12)


def test_scaler_2d_is_one_feature_per_step():
    X = np.random.default_rng(1).normal(5, 3, size=(10, 7))
    scaler = SequenceScaler().fit(X)
    assert scaler.n_features_in_ == 1
    assert_allclose(scaler.scaler_.mean_, [X.mean()], rtol=1e-12)
    Xt = scaler.transform(X)
    assert Xt.shape == (10, 7)
    assert_allclose(scaler.inverse_transform(Xt), X, rtol=0, atol=1e-12)
    # float32 stays float32, as with StandardScaler
    assert SequenceScaler().fit_transform(X[:, :, None].astype(np.float32)).dtype == np.float32


def test_scaler_list_counts_only_real_steps():
    rng = np.random.default_rng(2)
    seqs = [rng.normal(10, 4, size=(length, 2)) for length in (3, 9, 1, 6)]
    scaler = SequenceScaler().fit(seqs)
    steps = np.concatenate(seqs)
    assert_allclose(scaler.scaler_.mean_, steps.mean(axis=0), rtol=1e-12)
    assert_allclose(scaler.scaler_.var_, steps.var(axis=0), rtol=1e-12)
    padded, _ = pad_sequences(seqs, padding="post")
    assert not np.allclose(scaler.scaler_.mean_, padded.reshape(-1, 2).mean(axis=0))

    out = scaler.transform(seqs)
    assert isinstance(out, list)
    assert [s.shape for s in out] == [s.shape for s in seqs]
    assert_allclose(np.concatenate(out).mean(axis=0), 0, atol=1e-12)
    back = scaler.inverse_transform(out)
    for b, s in zip(back, seqs, strict=True):
        assert_allclose(b, s, rtol=0, atol=1e-12)

    # 1-D sequences are one feature per step and come back 1-D; equal lengths stay a list
    flat = [np.arange(4.0), np.arange(2.0), np.arange(4.0)]
    out = SequenceScaler().fit(flat).transform(flat)
    assert isinstance(out, list)
    assert [s.shape for s in out] == [(4,), (2,), (4,)]


def test_scaler_ignores_nan_in_fit_and_keeps_it():
    X = sequences_3d(seed=3)
    X[0, 1, 0] = X[5, 4, 2] = X[7, :, 1] = np.nan
    scaler = SequenceScaler().fit(X)
    assert_allclose(scaler.scaler_.mean_, np.nanmean(X.reshape(-1, 3), axis=0), rtol=1e-12)
    assert_allclose(scaler.scaler_.scale_, np.nanstd(X.reshape(-1, 3), axis=0), rtol=1e-12)
    Xt = scaler.transform(X)
    assert_array_equal(np.isnan(Xt), np.isnan(X))
    assert_allclose(scaler.inverse_transform(Xt), X, rtol=0, atol=1e-12)  # NaN == NaN here

    seqs = [np.array([[1.0], [np.nan], [3.0]]), np.array([[5.0]])]
    out = SequenceScaler().fit(seqs).transform(seqs)
    assert np.isnan(out[0][1, 0])
    assert_allclose([*out[0][[0, 2], 0].tolist(), out[1][0, 0]], np.array([-1, 0, 1]) * 1.5**0.5)


def test_scaler_clones_any_scaler():
    X = sequences_3d(seed=4)
    given_scaler = MinMaxScaler(feature_range=(-1, 1))
    scaler = SequenceScaler(given_scaler).fit(X)
    assert not hasattr(given_scaler, "data_min_")  # fitted a clone
    Xt = scaler.transform(X)
    assert_allclose(Xt.min(axis=(0, 1)), -1, atol=1e-12)
    assert_allclose(Xt.max(axis=(0, 1)), 1, atol=1e-12)
    assert_allclose(scaler.inverse_transform(Xt), X, rtol=0, atol=1e-12)
    assert_allclose(
        SequenceScaler(RobustScaler()).fit(X).scaler_.center_, np.median(X.reshape(-1, 3), 0)
    )
    # a transformer without inverse_transform: the method is not there at all
    assert not hasattr(SequenceScaler(Normalizer()).fit(X), "inverse_transform")
    assert hasattr(SequenceScaler(), "inverse_transform")


def test_scaler_params_clone_and_tags():
    scaler = SequenceScaler(MinMaxScaler(feature_range=(0, 2)))
    params = scaler.get_params(deep=True)
    assert params["scaler__feature_range"] == (0, 2)
    scaler.set_params(scaler__feature_range=(-3, 3))
    copy = clone(scaler)
    assert copy is not scaler and copy.scaler is not scaler.scaler
    assert copy.get_params()["scaler__feature_range"] == (-3, 3)
    assert "scaler_" not in vars(SequenceScaler())  # __init__ only stores
    tags = get_tags(SequenceScaler())
    assert tags.input_tags.three_d_array and tags.input_tags.two_d_array
    assert tags.input_tags.allow_nan


@pytest.mark.parametrize(
    ("fit_X", "X", "error", "match"),
    [
        (
            np.zeros((4, 5, 3)),
            np.zeros((4, 5, 2)),
            ValueError,
            r"X has 2 features per step, but SequenceScaler was fitted with 3 features per step",
        ),
        (
            np.zeros((4, 5, 3)),
            np.zeros((4, 5)),
            ValueError,
            r"X has 1 features per step \(a 2-D array is read as \(samples, timesteps\), one "
            r"feature per step\), but SequenceScaler was fitted with 3",
        ),
        (
            np.zeros((4, 5, 2)),
            [np.zeros((3, 2)), np.zeros((2, 3))],
            ValueError,
            r"same number of features per step; X\[0\] has 2 and X\[1\] has 3",
        ),
        (
            np.zeros((4, 5, 2)),
            np.zeros((2, 3, 4, 2)),
            ValueError,
            r"Expected a 3-D array \(samples, timesteps, features\).*; got a 4-D array of shape "
            r"\(2, 3, 4, 2\)",
        ),
        (
            np.zeros((4, 5, 2)),
            np.zeros(5),
            ValueError,
            r"got a 1-D array of shape \(5,\)\. Reshape your data",
        ),
        (
            np.zeros((4, 5, 2)),
            [np.zeros((3, 2)), 7.0],
            ValueError,
            r"Each sequence in a list must be 1-D \(timesteps,\) or 2-D \(timesteps, features\); "
            r"X\[1\] is 7\.0 \(float\)",
        ),
        (
            np.zeros((4, 5, 2)),
            sparse.csr_matrix(np.ones((3, 2))),
            TypeError,
            r"Sparse input is not supported",
        ),
    ],
    ids=["features", "2d-after-3d", "list-widths", "4d", "1d", "scalar-in-list", "sparse"],
)
def test_scaler_refuses_bad_transform_input(fit_X, X, error, match):
    scaler = SequenceScaler().fit(fit_X)
    with pytest.raises(error, match=match):
        scaler.transform(X)


def test_scaler_fit_errors():
    with pytest.raises(
        ValueError,
        match=r"'scaler' parameter of SequenceScaler must be an object implementing 'fit' and "
        r"'transform' or None\. Got 'standard' instead",
    ):
        SequenceScaler("standard").fit(np.zeros((2, 3, 1)))
    with pytest.raises(ValueError, match=r"X is an empty list; expected at least one sequence"):
        SequenceScaler().fit([])
    with pytest.raises(ValueError, match=r"X has no time steps to fit on; every sequence is empty"):
        SequenceScaler().fit([np.zeros((0, 2))])
    with pytest.raises(ValueError, match=r"Found array with 0 sample\(s\) \(shape=\(0, 4, 2\)\)"):
        SequenceScaler().fit(np.zeros((0, 4, 2)))
    with pytest.raises(NotFittedError, match="This SequenceScaler instance is not fitted yet"):
        SequenceScaler().transform(np.zeros((2, 3, 1)))


@NO_CONVERGENCE
def test_scaler_first_in_a_pipeline():
    rng = np.random.default_rng(5)
    X = sequences_3d(n=30, seed=5)
    y = X[:, -1, 1] / 50 + rng.normal(size=30)
    pipe = make_pipeline(SequenceScaler(), tiny_lstm()).fit(X, y)
    assert pipe.n_features_in_ == 3
    # the LSTM was fitted on, and predicts from, the scaled sequences
    alone = tiny_lstm().fit(SequenceScaler().fit_transform(X), y)
    assert_array_equal(pipe.predict(X), alone.predict(SequenceScaler().fit(X).transform(X)))

    # ragged lists go through the pipeline as lists
    seqs = [X[k, : 2 + k % 4] for k in range(30)]
    pred = make_pipeline(SequenceScaler(), tiny_lstm()).fit(seqs, y).predict(seqs)
    assert pred.shape == (30,) and np.isfinite(pred).all()


@NO_CONVERGENCE
def test_scaler_in_grid_search_and_cross_val_score():
    rng = np.random.default_rng(6)
    X = sequences_3d(n=30, seed=6)
    y = X[:, -1, 0] + rng.normal(size=30)
    pipe = Pipeline([("scale", SequenceScaler()), ("lstm", tiny_lstm())])
    search = GridSearchCV(
        pipe, {"scale__scaler": [StandardScaler(), MinMaxScaler()]}, cv=2, error_score="raise"
    ).fit(X, y)
    assert len(search.cv_results_["params"]) == 2
    assert isinstance(
        search.best_estimator_.named_steps["scale"].scaler_, (StandardScaler, MinMaxScaler)
    )
    scores = cross_val_score(pipe, X, y, cv=3, error_score="raise")
    assert scores.shape == (3,) and np.isfinite(scores).all()


# -- pad_sequences ---------------------------------------------------------------------------

SEQS = [[1, 2, 3, 4, 5], [6, 7], [8, 9, 10]]


# keras.utils.pad_sequences(SEQS, maxlen=3, padding=..., truncating=...), worked by hand:
# 'pre' truncating keeps the last 3 steps, 'post' the first 3; padding goes before or after.
@pytest.mark.parametrize(
    ("padding", "truncating", "expected", "mask"),
    [
        ("pre", "pre", [[3, 4, 5], [0, 6, 7], [8, 9, 10]], [[1, 1, 1], [0, 1, 1], [1, 1, 1]]),
        ("pre", "post", [[1, 2, 3], [0, 6, 7], [8, 9, 10]], [[1, 1, 1], [0, 1, 1], [1, 1, 1]]),
        ("post", "pre", [[3, 4, 5], [6, 7, 0], [8, 9, 10]], [[1, 1, 1], [1, 1, 0], [1, 1, 1]]),
        ("post", "post", [[1, 2, 3], [6, 7, 0], [8, 9, 10]], [[1, 1, 1], [1, 1, 0], [1, 1, 1]]),
    ],
)
def test_pad_sequences_like_keras(padding, truncating, expected, mask):
    padded, got_mask = pad_sequences(SEQS, maxlen=3, padding=padding, truncating=truncating)
    assert_array_equal(padded, expected)
    assert got_mask.dtype == bool
    assert_array_equal(got_mask, np.array(mask, dtype=bool))
    assert padded.dtype == np.asarray(SEQS[0]).dtype  # dtype None: the sequences' own


def test_pad_sequences_defaults_and_longer_maxlen():
    padded, mask = pad_sequences(SEQS)  # maxlen None: the longest; 'pre' padding
    assert_array_equal(padded, [[1, 2, 3, 4, 5], [0, 0, 0, 6, 7], [0, 0, 8, 9, 10]])
    assert_array_equal(mask.sum(axis=1), [5, 2, 3])
    padded, mask = pad_sequences([[1.5, 2.5]], maxlen=4, padding="post", value=-1)
    assert_array_equal(padded, [[1.5, 2.5, -1, -1]])
    assert_array_equal(mask, [[True, True, False, False]])


def test_pad_sequences_2d_steps_and_dtype():
    seqs = [np.ones((4, 2)), 2 * np.ones((1, 2)), np.arange(6.0).reshape(3, 2)]
    padded, mask = pad_sequences(seqs, maxlen=3, value=np.nan)
    assert padded.shape == (3, 3, 2)
    assert_array_equal(padded[0], np.ones((3, 2)))  # truncated at the start
    assert np.isnan(padded[1, :2]).all() and (padded[1, 2] == 2).all()
    assert_array_equal(padded[2], seqs[2])
    assert_array_equal(mask, [[1, 1, 1], [0, 0, 1], [1, 1, 1]])
    assert padded.dtype == np.float64

    float32 = [np.ones((2, 3), np.float32), np.ones((1, 3), np.float32)]
    assert pad_sequences(float32)[0].dtype == np.float32
    # an explicit dtype casts as NumPy does, like Keras' np.asarray(x, dtype=dtype)
    cast, _ = pad_sequences([[1.7, 2.2], [-0.5]], dtype="int32")
    assert cast.dtype == np.int32
    assert_array_equal(cast, [[1, 2], [0, 0]])
    # the padded steps, through the mask, give the sequences back
    ragged = [np.arange(n, dtype=float) for n in (3, 1, 4)]
    padded, mask = pad_sequences(ragged, padding="post")
    assert [row[m].tolist() for row, m in zip(padded, mask, strict=True)] == [
        s.tolist() for s in ragged
    ]


def test_pad_sequences_empty_and_string_sequences():
    padded, mask = pad_sequences([[1, 2], []], maxlen=3, padding="post")
    assert padded.dtype.kind == "i"  # the empty sequence does not make it float
    assert_array_equal(padded, [[1, 2, 0], [0, 0, 0]])
    assert_array_equal(mask, [[True, True, False], [False, False, False]])
    padded, mask = pad_sequences([])
    assert padded.shape == (0, 0) and mask.shape == (0, 0)

    padded, mask = pad_sequences([["ab", "c"], ["d"]], value="<pad>")
    assert padded.tolist() == [["ab", "c"], ["<pad>", "d"]]  # the dtype widens for the token
    padded, _ = pad_sequences([["a"], []], dtype=object, value=None)
    assert padded.tolist() == [["a"], [None]]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"maxlen": 0}, r"'maxlen' parameter of pad_sequences must be an int in the range "),
        ({"padding": "left"}, r"'padding' parameter .* must be a str among .*Got 'left'"),
        ({"truncating": "mid"}, r"'truncating' parameter .* must be a str among .*Got 'mid'"),
        ({"value": 0.5}, r"hold integers \(int64\), but value=0\.5 is not an integer"),
        ({"value": np.nan}, r"hold integers \(int64\), but value=nan is not an integer"),
        ({"value": "x", "dtype": int}, r"value='x' is a string, but dtype is int64"),
    ],
)
def test_pad_sequences_refuses_bad_options(kwargs, match):
    with pytest.raises(ValueError, match=match):
        pad_sequences(SEQS, **kwargs)


def test_pad_sequences_refuses_bad_sequences():
    with pytest.raises(ValueError, match=r"sequences\[1\] is 3 \(int\)"):
        pad_sequences([[1, 2], 3])
    with pytest.raises(
        ValueError,
        match=r"sequences\[0\] has steps of shape \(2,\) and sequences\[1\] has steps of shape "
        r"\(3,\)",
    ):
        pad_sequences([np.zeros((2, 2)), np.zeros((4, 3))])
    with pytest.raises(ValueError, match=r"hold strings \(<U1\), but value=0\.0 is not a string"):
        pad_sequences([["a", "b"], ["c"]])


# -- SequenceOneHotEncoder -------------------------------------------------------------------

TOKENS = np.array([["b", "a", "c", "a"], ["c", "c", "b", "a"]])


def test_one_hot_2d_tokens_round_trip():
    enc = SequenceOneHotEncoder()
    out = enc.fit_transform(TOKENS)
    assert out.shape == (2, 4, 3) and out.dtype == np.float32
    assert_array_equal(enc.categories_, ["a", "b", "c"])
    assert_array_equal(out.sum(axis=2), 1)
    assert_array_equal(out[0, 0], [0, 1, 0])  # "b"
    assert_array_equal(out.argmax(axis=2), [[1, 0, 2, 0], [2, 2, 1, 0]])
    assert_array_equal(enc.transform(TOKENS), out)
    assert_array_equal(enc.inverse_transform(out), TOKENS)


def test_one_hot_ragged_integer_lists():
    seqs = [np.array([5, 3]), np.array([9, 5, 5, 3, 7]), np.array([7])]
    enc = SequenceOneHotEncoder(dtype=np.int8).fit(seqs)
    assert_array_equal(enc.categories_, [3, 5, 7, 9])
    out = enc.transform(seqs)
    assert isinstance(out, list)
    assert [o.shape for o in out] == [(2, 4), (5, 4), (1, 4)]
    assert out[0].dtype == np.int8
    assert_array_equal(out[1], np.eye(4, dtype=np.int8)[[3, 1, 1, 0, 2]])
    back = enc.inverse_transform(out)
    assert isinstance(back, list)
    for b, s in zip(back, seqs, strict=True):
        assert_array_equal(b, s)
    # one-hot steps feed lstmlearn's list input as they are
    assert np.concatenate(out).shape == (8, 4)


def test_one_hot_given_categories_order():
    enc = SequenceOneHotEncoder(categories=["c", "a", "b"]).fit(TOKENS)
    assert_array_equal(enc.categories_, ["c", "a", "b"])
    assert_array_equal(enc.transform([["a", "c"]])[0], [[0, 1, 0], [1, 0, 0]])
    with pytest.raises(
        ValueError,
        match=r"Found unknown token 'd' at X\[0, 1\] during fit; the known tokens are "
        r"\['a', 'b'\].*or add it to categories",
    ):
        SequenceOneHotEncoder(categories=["a", "b"]).fit(np.array([["a", "d"]]))


def test_one_hot_unknown_tokens():
    enc = SequenceOneHotEncoder().fit(TOKENS)
    with pytest.raises(
        ValueError,
        match=r"Found unknown token 'z' at X\[1, 2\] \(and 1 other unknown token\(s\)\) during "
        r"transform; the known tokens are \['a', 'b', 'c'\] \(3 in all\)\. Pass "
        r"handle_unknown='ignore'",
    ):
        enc.transform(np.array([["a", "b", "c"], ["a", "b", "z"], ["y", "a", "a"]]))
    with pytest.raises(ValueError, match=r"Found unknown token 'q' at X\[1\]\[2\]"):
        enc.transform([["a"], ["b", "c", "q"]])

    ignore = SequenceOneHotEncoder(handle_unknown="ignore").fit(TOKENS)
    out = ignore.transform([["a", "zz", "c"]])
    assert_array_equal(out[0], [[1, 0, 0], [0, 0, 0], [0, 0, 1]])  # all-zero step
    back = ignore.inverse_transform(out)
    assert back[0].tolist() == ["a", None, "c"]
    # all-zero steps (padding) give None with handle_unknown='error' too
    padded = np.concatenate([np.zeros((2, 1, 3), np.float32), enc.transform(TOKENS)], axis=1)
    assert enc.inverse_transform(padded).tolist() == [[None, *row] for row in TOKENS.tolist()]


def test_one_hot_inverse_of_scores_takes_the_largest():
    enc = SequenceOneHotEncoder().fit(TOKENS)
    scores = np.array([[[0.2, 0.7, 0.1], [0.5, 0.3, 0.2]]])  # e.g. per-step probabilities
    assert enc.inverse_transform(scores).tolist() == [["b", "a"]]


def test_one_hot_params_and_tags():
    enc = SequenceOneHotEncoder(categories=["x", "y"], handle_unknown="ignore", dtype=np.float64)
    assert enc.get_params() == {
        "categories": ["x", "y"],
        "dtype": np.float64,
        "handle_unknown": "ignore",
    }
    assert clone(enc).set_params(handle_unknown="error").handle_unknown == "error"
    tags = get_tags(enc)
    assert tags.input_tags.string and tags.input_tags.categorical


@pytest.mark.parametrize(
    ("method", "X", "error", "match"),
    [
        (
            "transform",
            np.array(["a", "b"]),
            ValueError,
            r"Expected a 2-D array \(samples, timesteps\) of tokens or a list of 1-D token "
            r"sequences; got a 1-D array of shape \(2,\)\. Reshape your data",
        ),
        (
            "transform",
            np.zeros((2, 3, 4)),
            ValueError,
            r"Expected a 2-D array \(samples, timesteps\) of tokens.*got a 3-D array",
        ),
        (
            "transform",
            [["a"], [["b", "c"]]],
            ValueError,
            r"Each sequence in a list must be a 1-D sequence of tokens \(timesteps,\); X\[1\] is "
            r"a 2-D array of shape \(1, 2\)",
        ),
        (
            "transform",
            [["a", "b"], [1, 2]],
            TypeError,
            r"Tokens must be all strings or all numbers .*\['<U1', 'int64'\]",
        ),
        (
            "inverse_transform",
            np.zeros((2, 4, 5)),
            ValueError,
            r"X has 5 columns per step, but the encoder has 3 categories; expected one column "
            r"per category",
        ),
        (
            "inverse_transform",
            np.zeros((2, 4)),
            ValueError,
            r"Expected a 3-D array \(samples, timesteps, categories\).*got a 2-D array",
        ),
    ],
    ids=["1d", "3d", "2d-in-list", "mixed-types", "inverse-columns", "inverse-2d"],
)
def test_one_hot_refuses_bad_input(method, X, error, match):
    enc = SequenceOneHotEncoder().fit(TOKENS)
    with pytest.raises(error, match=match):
        getattr(enc, method)(X)


def test_one_hot_refuses_bad_parameters():
    with pytest.raises(ValueError, match=r"'handle_unknown' parameter .* Got 'skip' instead"):
        SequenceOneHotEncoder(handle_unknown="skip").fit(TOKENS)
    with pytest.raises(ValueError, match=r"categories must be 'auto' or a 1-D array-like"):
        SequenceOneHotEncoder(categories=[["a", "b", "c"]]).fit(TOKENS)
    with pytest.raises(NotFittedError):
        SequenceOneHotEncoder().transform(TOKENS)


@NO_CONVERGENCE
def test_one_hot_in_a_pipeline_on_ragged_tokens():
    rng = np.random.default_rng(7)
    seqs = [rng.choice(["up", "down", "flat"], size=n) for n in rng.integers(2, 7, size=20)]
    y = np.array([float((s == "up").sum()) for s in seqs])
    pipe = make_pipeline(SequenceOneHotEncoder(), tiny_lstm()).fit(seqs, y)
    assert pipe.predict(seqs).shape == (20,)


# -- scikit-learn's own checks ---------------------------------------------------------------

TWO_D_IS_TIMESTEPS = (
    "a 2-D X is read as (samples, timesteps), one feature or token per step: the number of "
    "columns is the sequences' length, and another length is valid input"
)
LIST_IN_LIST_OUT = "a list is a list of sequences, and comes back as a list"
EXPECTED_FAILED = {
    "check_n_features_in": TWO_D_IS_TIMESTEPS,
    "check_n_features_in_after_fitting": TWO_D_IS_TIMESTEPS,
    "check_transformer_general": TWO_D_IS_TIMESTEPS,
    "check_transformer_data_not_an_array": LIST_IN_LIST_OUT,
}


_ALL = parametrize_with_checks(
    [SequenceScaler(), SequenceOneHotEncoder()],
    expected_failed_checks=lambda estimator: EXPECTED_FAILED,
)
# scikit-learn yields its array-API check and then skips it (no array-API support declared);
# a skip would read as a test not run.
_CHECKS = [
    p for p in _ALL.args[1] if getattr(p, "values", p)[1].func.__name__ != "check_array_api_input"
]
assert len(_CHECKS) < len(_ALL.args[1])


@pytest.mark.parametrize(_ALL.args[0], _CHECKS, **_ALL.kwargs)
def test_sklearn_compatible_transformer(estimator, check):
    check(estimator)
