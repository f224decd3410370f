"""LSTMForecaster: transforms, strategies, exogenous variables, pandas, updates, intervals."""

import warnings

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.exceptions import ConvergenceWarning

from lstmlearn import LSTMForecaster
from lstmlearn.forecaster import _TargetTransform


@pytest.fixture(autouse=True)
def _quiet_convergence():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        yield


def seasonal_series(n=216, seed=0, noise=0.3):
    """A monthly-like series: trend, a 12-step season and noise."""
    t = np.arange(n)
    rng = np.random.default_rng(seed)
    return 10 + 0.05 * t + 2 * np.sin(2 * np.pi * t / 12) + noise * rng.normal(size=n)


FAST = dict(hidden_layer_sizes=16, max_iter=60, random_state=0, n_jobs=1)


@pytest.mark.parametrize("log", [False, True])
@pytest.mark.parametrize("lags", [(), (1,), (12,), (1, 12), (2, 3, 1)])
def test_target_transform_round_trips(log, lags):
    y = seasonal_series(100)
    transform = _TargetTransform(log, lags).fit(y[:80])
    z = transform.transform(y)
    # The values after step 80, rebuilt from their transform and the history.
    rebuilt = transform.inverse(z[80 - sum(lags) :], y[:80])
    np.testing.assert_allclose(rebuilt, y[80:], rtol=1e-12, atol=0)
    # Standardisation uses the training part only.
    d = transform._difference(y[:80])
    assert transform.mean_ == pytest.approx(d.mean()) and transform.scale_ == pytest.approx(d.std())


@pytest.mark.parametrize("strategy", ["multioutput", "recursive"])
def test_beats_seasonal_naive_on_a_seasonal_series_with_trend(strategy):
    y = seasonal_series(240)
    train, test = y[:216], y[216:]
    model = LSTMForecaster(window=24, horizon=24, strategy=strategy, **FAST).fit(train)
    forecast = model.predict()
    assert forecast.shape == (24,)
    naive = train[-12:][np.arange(24) % 12]
    rmse = np.sqrt(np.mean((forecast - test) ** 2))
    assert rmse < 0.8 * np.sqrt(np.mean((naive - test) ** 2))


def test_recursive_forecasts_any_horizon_multioutput_refuses_more():
    y = seasonal_series(120)
    rec = LSTMForecaster(window=12, horizon=3, strategy="recursive", **FAST).fit(y)
    assert rec.predict(30).shape == (30,)
    multi = LSTMForecaster(window=12, horizon=3, **FAST).fit(y)
    np.testing.assert_array_equal(multi.predict(2), multi.predict()[:2])
    with pytest.raises(ValueError, match="horizon=5 is more than the 3 steps"):
        multi.predict(5)


def test_pandas_in_pandas_out():
    y = pd.Series(seasonal_series(120), index=pd.date_range("2000-01", periods=120, freq="MS"))
    model = LSTMForecaster(window=12, horizon=6, **FAST).fit(y)
    forecast = model.predict()
    assert isinstance(forecast, pd.Series)
    assert list(forecast.index) == list(pd.date_range("2010-01", periods=6, freq="MS"))
    periods = y.copy()
    periods.index = periods.index.to_period("M")
    p = LSTMForecaster(window=12, horizon=6, **FAST).fit(periods).predict()
    assert str(p.index[0]) == "2010-01"
    np.testing.assert_array_equal(p.to_numpy(), forecast.to_numpy())
    lower, upper = model.predict_interval(0.8)
    assert isinstance(lower, pd.Series) and (lower.index == forecast.index).all()
    assert (lower <= forecast).all() and (forecast <= upper).all()


def test_update_moves_the_forecast_origin_and_refit_trains():
    y = seasonal_series(150)
    model = LSTMForecaster(window=12, horizon=6, **FAST).fit(y[:120])
    fresh = LSTMForecaster(window=12, horizon=6, **FAST).fit(y[:120])
    model.update(y[120:130])
    # Same network, later origin: the forecast from the longer history.
    expected = fresh._forecast(fresh.estimator_, y[:130], None, None, 6)
    np.testing.assert_array_equal(model.predict(), expected)
    n_iter, step = model.n_iter_, model.estimator_._opt_step
    model.update(y[130:150], refit=True)
    assert model.n_iter_ == n_iter + 1 and model.estimator_._opt_step > step
    assert len(model.y_) == 150


def test_update_checks_continuity_of_a_pandas_index():
    index = pd.date_range("2000-01", periods=130, freq="MS")
    y = pd.Series(seasonal_series(130), index=index)
    model = LSTMForecaster(window=12, horizon=6, **FAST).fit(y[:120])
    with pytest.raises(ValueError, match="y_new must continue the series"):
        model.update(y[121:])
    model.update(y[120:])
    assert model.predict().index[0] == pd.Timestamp("2010-11-01")


def test_exogenous_variables_past_and_future():
    n = 200
    rng = np.random.default_rng(1)
    promo = (rng.random(n) < 0.2).astype(float)  # known in advance
    y = seasonal_series(n, noise=0.1) + 3 * promo
    X = promo[:, None]
    future = LSTMForecaster(window=12, horizon=6, **{**FAST, "max_iter": 150}).fit(y[:190], X[:190])
    with pytest.raises(ValueError, match="pass X for the 6 forecast step"):
        future.predict()
    forecast = future.predict(X=X[190:196])
    without = LSTMForecaster(window=12, horizon=6, **{**FAST, "max_iter": 150}).fit(y[:190])
    err_with = np.abs(forecast - y[190:196]).mean()
    err_without = np.abs(without.predict() - y[190:196]).mean()
    assert err_with < err_without  # the promotions are in the forecast
    past = LSTMForecaster(window=12, horizon=6, exog_future=False, **FAST).fit(y[:190], X[:190])
    assert past.predict().shape == (6,)
    with pytest.raises(
        ValueError, match=r"X must have one row per step: expected shape \(6, n_exog\)"
    ):
        future.predict(X=X[190:193])


def test_intervals_cover_at_their_nominal_rate():
    # Many forecast origins on held-out data: the share of values inside the
    # 80% intervals is 0.8 +- 0.05.
    y = seasonal_series(400, seed=3, noise=0.5)
    model = LSTMForecaster(window=24, horizon=6, calibration_size=120, **FAST).fit(y[:300])
    inside = []
    for origin in range(300, 394, 2):
        model.y_ = y[:origin]  # move the origin without training
        lower, upper = model.predict_interval(0.8)
        truth = y[origin : origin + 6]
        inside.extend((lower <= truth) & (truth <= upper))
    assert 0.75 <= np.mean(inside) <= 0.85, np.mean(inside)
    assert model.residuals_.shape == (120 - 6 + 1, 6)


@pytest.mark.parametrize(
    "params, y, message",
    [
        (dict(window=50), np.arange(40.0), r"too short for window=50"),
        (dict(log=True), np.arange(40.0) - 5, r"log=True needs a positive series"),
        (dict(difference=(0,)), np.arange(40.0), r"difference must be a tuple of positive"),
        (dict(), np.ones((40, 2)), r"y must be one series: .* shape \(40, 2\)"),
        (
            dict(),
            np.r_[np.arange(39.0), np.nan],
            r"y contains NaN or infinity \(first at 39",
        ),
    ],
)
def test_bad_input(params, y, message):
    with pytest.raises(ValueError, match=message):
        LSTMForecaster(horizon=3, **{"window": 12, **FAST, **params}).fit(y)


def test_clone_and_params():
    model = LSTMForecaster(window=6, horizon=2, difference=(1, 12), learning_rate=0.01)
    twin = clone(model)
    assert twin.get_params() == model.get_params()
