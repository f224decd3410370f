"""Forecast the Mauna Loa CO2 series two years ahead, next to classical baselines.

The data ship with statsmodels (weekly CO2 concentration, 1958-2001, averaged
here by month and forward-filled: 526 months). The final 24 months are held
out; every model sees only the months before them:

- lstmlearn's LSTMForecaster with its defaults (window 24, first differences,
  standardisation), over several seeds, and its 90% conformal intervals;
- seasonal naive (the last observed year, repeated);
- Holt-Winters exponential smoothing (additive trend and season) and a
  seasonal ARIMA(1,1,1)(0,1,1)12, both from statsmodels.

Needs: pip install statsmodels
Run: python examples/forecast_co2.py
"""

import time

import numpy as np
import statsmodels.api as sm
from statsmodels.tsa.holtwinters import ExponentialSmoothing
from statsmodels.tsa.statespace.sarimax import SARIMAX

from lstmlearn import LSTMForecaster

HORIZON = 24
SEEDS = range(5)


def rmse(forecast, truth) -> float:
    return float(np.sqrt(np.mean((np.asarray(forecast) - truth) ** 2)))


def main() -> None:
    weekly = sm.datasets.co2.load_pandas().data["co2"]
    monthly = weekly.resample("MS").mean().ffill()
    train, test = monthly[:-HORIZON], monthly[-HORIZON:].to_numpy()
    first = monthly.index[-HORIZON]
    print(f"CO2, {len(monthly)} months; the last {HORIZON} held out ({first:%Y-%m} on)")

    scores, seconds, inside = [], [], []
    for seed in SEEDS:
        start = time.perf_counter()
        model = LSTMForecaster(horizon=HORIZON, random_state=seed).fit(train)
        forecast = model.predict()
        seconds.append(time.perf_counter() - start)
        scores.append(rmse(forecast, test))
        lower, upper = model.predict_interval(coverage=0.9)
        inside.append(np.mean((lower.to_numpy() <= test) & (test <= upper.to_numpy())))
    print(
        f"  lstmlearn LSTMForecaster (defaults, {len(SEEDS)} seeds): RMSE {np.mean(scores):.3f} "
        f"+- {np.std(scores):.3f} (min {min(scores):.3f}, max {max(scores):.3f}); "
        f"fit {np.median(seconds):.1f} s median"
    )
    print(f"    90% conformal intervals: {np.mean(inside):.0%} of the held-out months inside")

    naive = train.to_numpy()[-12:][np.arange(HORIZON) % 12]
    print(f"  seasonal naive: RMSE {rmse(naive, test):.3f}")
    ets = ExponentialSmoothing(
        train.to_numpy(), trend="add", seasonal="add", seasonal_periods=12
    ).fit()
    print(
        f"  Holt-Winters (additive trend and season): RMSE {rmse(ets.forecast(HORIZON), test):.3f}"
    )
    arima = SARIMAX(train.to_numpy(), order=(1, 1, 1), seasonal_order=(0, 1, 1, 12)).fit(disp=False)
    print(f"  SARIMA(1,1,1)(0,1,1)12: RMSE {rmse(arima.forecast(HORIZON), test):.3f}")


if __name__ == "__main__":
    main()
