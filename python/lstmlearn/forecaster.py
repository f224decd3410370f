"""LSTMForecaster: forecast a time series in a few lines, transforms and intervals built in."""

from __future__ import annotations

import math
from collections.abc import Sequence
from numbers import Integral, Real
from typing import ClassVar

import numpy as np
from sklearn.base import BaseEstimator, _fit_context
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_is_fitted

from .estimators import LR_FACTOR, LR_PATIENCE, MAX_SIZE, MIN_LEARNING_RATE, LSTMRegressor

__all__ = ["LSTMForecaster"]

# The LSTMRegressor parameters a forecaster passes on, with its own defaults.
_LSTM_PARAMS = {
    "hidden_layer_sizes": (32,),
    "dropout": 0.0,
    "recurrent_dropout": 0.0,
    "alpha": 0.0,
    "optimizer": "adam",
    "learning_rate": 0.005,
    "clipnorm": 1.0,
    "batch_size": 32,
    "max_iter": 300,
    "tol": 1e-4,
    "n_iter_no_change": 30,
    "lr_schedule": "plateau",
    "lr_factor": LR_FACTOR,
    "lr_patience": LR_PATIENCE,
    "min_learning_rate": MIN_LEARNING_RATE,
    "early_stopping": False,
    "validation_fraction": 0.1,
    "restore_best_weights": False,
    "loss": "squared_error",
    "random_state": None,
    "n_jobs": None,
    "verbose": 0,
    "dtype": "float64",
    "tbptt_steps": None,
}


class _TargetTransform:
    """log (optional), differences at the given lags, then standardisation.

    Fitted on the training series only; ``inverse`` turns forecasts of the
    transformed series back into the original scale from the series' history.
    """

    def __init__(self, log: bool, lags: tuple[int, ...]) -> None:
        self.log, self.lags = log, lags

    def _difference(self, y: np.ndarray) -> np.ndarray:
        s = np.log(y) if self.log else y.astype(np.float64)
        for lag in self.lags:
            s = s[lag:] - s[:-lag]
        return s

    def fit(self, y: np.ndarray) -> _TargetTransform:
        d = self._difference(y)
        self.mean_ = float(d.mean())
        self.scale_ = float(d.std()) or 1.0
        return self

    def transform(self, y: np.ndarray) -> np.ndarray:
        """z [T - sum(lags)], aligned with the end of y."""
        return (self._difference(y) - self.mean_) / self.scale_

    def inverse(self, z: np.ndarray, history: np.ndarray) -> np.ndarray:
        """The original-scale values of the steps after `history` whose transform is `z`."""
        d = z * self.scale_ + self.mean_
        # The stages of the history: stages[k] is the series after k differences.
        stages = [np.log(history) if self.log else history.astype(np.float64)]
        for lag in self.lags:
            stages.append(stages[-1][lag:] - stages[-1][:-lag])
        for k in range(len(self.lags) - 1, -1, -1):
            lag, past = self.lags[k], stages[k]
            out = np.empty(len(d))
            for t in range(len(d)):
                out[t] = d[t] + (past[len(past) + t - lag] if t < lag else out[t - lag])
            d = out
        return np.exp(d) if self.log else d


class LSTMForecaster(BaseEstimator):
    """Forecast a univariate time series with an LSTM, in a few lines.

    ``fit(y)`` learns from windows of the series: the last ``window`` values
    (after the target transforms) predict the next ``horizon`` ones, all at
    once (``strategy='multioutput'``) or one step at a time, fed back
    (``'recursive'``). ``predict()`` forecasts the steps after the end of the
    series it was fitted on or updated with.

    Parameters
    ----------
    window : int, default=24
        Past steps the model reads (two seasons of a monthly series).
    horizon : int, default=12
        Steps a forecast covers; ``predict`` may ask for fewer (any number
        with ``strategy='recursive'``).
    strategy : {'multioutput', 'recursive'}, default='multioutput'
        One model output per step ahead, or a one-step model applied
        repeatedly on its own forecasts.
    log : bool, default=False
        Model the logarithm of the series (positive series with multiplicative
        growth or seasonality).
    difference : tuple of int, default=(1,)
        Lags to difference the series at, in order (e.g. ``(1, 12)`` for a
        trend and a monthly season). The default first difference lets the
        forecasts follow a trend beyond the range seen in training; ``()``
        models the levels. The inverse is exact (up to rounding): forecasts
        are integrated back from the series' last values.
    exog_future : bool, default=True
        With exogenous variables ``X``: the model also reads their values over
        the forecast horizon (covariates known in advance, such as calendar
        features), so ``predict`` needs them for the forecast steps. False
        uses only their past values (window steps), and ``predict`` needs no
        ``X``.
    calibration_size : int or None, default=None
        Steps at the end of the training series held out to calibrate
        :meth:`predict_interval` (a second model is fitted without them);
        None takes ``max(3 * horizon, len(y) // 5)``.
    hidden_layer_sizes, dropout, recurrent_dropout, alpha, optimizer, learning_rate, \
clipnorm, batch_size, max_iter, tol, n_iter_no_change, lr_schedule, lr_factor, \
lr_patience, min_learning_rate, restore_best_weights, loss, random_state, n_jobs, \
verbose, dtype, tbptt_steps
        As in :class:`LSTMRegressor`, with defaults chosen for short series
        (32 units, learning rate 0.005, clipnorm 1, up to 300 epochs, 30
        epochs without improvement, float64). ``tbptt_steps`` truncates
        backpropagation through each window to its last chunk of that many
        steps (for long windows; None: whole windows).
    early_stopping, validation_fraction
        As in :class:`LSTMRegressor`, but the held-out windows are always
        the last ones (``validation_split='last'``): a shuffled split would
        put windows overlapping the training ones, and earlier periods, in
        validation.

    Attributes
    ----------
    estimator_ : LSTMRegressor
        The fitted network.
    y_ : ndarray
        The series seen so far (fit and update).
    index_ : pandas Index or None
        Its index when it came as a pandas Series.
    n_iter_ : int
        Epochs the network trained.

    Examples
    --------
    >>> import numpy as np
    >>> from lstmlearn import LSTMForecaster
    >>> t = np.arange(120)
    >>> y = 10 + 0.05 * t + np.sin(2 * np.pi * t / 12)
    >>> f = LSTMForecaster(window=24, horizon=12, max_iter=20, random_state=0).fit(y)
    >>> f.predict().shape
    (12,)
    """

    _parameter_constraints: ClassVar[dict] = {
        "window": [Interval(Integral, 1, MAX_SIZE, closed="both")],
        "horizon": [Interval(Integral, 1, MAX_SIZE, closed="both")],
        "strategy": [StrOptions({"multioutput", "recursive"})],
        "log": ["boolean"],
        "difference": [tuple, list],
        "exog_future": ["boolean"],
        "calibration_size": [Interval(Integral, 1, None, closed="left"), None],
        **{
            name: LSTMRegressor._parameter_constraints[name]
            for name in _LSTM_PARAMS
            if name in LSTMRegressor._parameter_constraints
        },
    }

    def __init__(
        self,
        window: int = 24,
        horizon: int = 12,
        *,
        strategy: str = "multioutput",
        log: bool = False,
        difference: Sequence[int] = (1,),
        exog_future: bool = True,
        calibration_size: int | None = None,
        hidden_layer_sizes: int | Sequence[int] = (32,),
        dropout: float = 0.0,
        recurrent_dropout: float = 0.0,
        alpha: float = 0.0,
        optimizer: str = "adam",
        learning_rate: float = 0.005,
        clipnorm: float | None = 1.0,
        batch_size: int | str = 32,
        max_iter: int = 300,
        tol: float = 1e-4,
        n_iter_no_change: int = 30,
        lr_schedule: str = "plateau",
        lr_factor: float = LR_FACTOR,
        lr_patience: int = LR_PATIENCE,
        min_learning_rate: float = MIN_LEARNING_RATE,
        early_stopping: bool = False,
        validation_fraction: float = 0.1,
        restore_best_weights: bool = False,
        loss: str = "squared_error",
        random_state: int | np.random.RandomState | None = None,
        n_jobs: int | None = None,
        verbose: int = 0,
        dtype: type | str = "float64",
        tbptt_steps: int | None = None,
    ) -> None:
        self.window = window
        self.horizon = horizon
        self.strategy = strategy
        self.log = log
        self.difference = difference
        self.exog_future = exog_future
        self.calibration_size = calibration_size
        self.hidden_layer_sizes = hidden_layer_sizes
        self.dropout = dropout
        self.recurrent_dropout = recurrent_dropout
        self.alpha = alpha
        self.optimizer = optimizer
        self.learning_rate = learning_rate
        self.clipnorm = clipnorm
        self.batch_size = batch_size
        self.max_iter = max_iter
        self.tol = tol
        self.n_iter_no_change = n_iter_no_change
        self.lr_schedule = lr_schedule
        self.lr_factor = lr_factor
        self.lr_patience = lr_patience
        self.min_learning_rate = min_learning_rate
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.restore_best_weights = restore_best_weights
        self.loss = loss
        self.random_state = random_state
        self.n_jobs = n_jobs
        self.verbose = verbose
        self.dtype = dtype
        self.tbptt_steps = tbptt_steps

    def __setstate__(self, state: dict) -> None:
        # A forecaster pickled before a parameter existed gets its default.
        for name, default in _LSTM_PARAMS.items():
            state.setdefault(name, default)
        super().__setstate__(state)

    # -- input ----------------------------------------------------------------------

    def _lags(self) -> tuple[int, ...]:
        lags = tuple(self.difference)
        if any(not isinstance(k, Integral) or isinstance(k, bool) or k < 1 for k in lags):
            raise ValueError(
                f"difference must be a tuple of positive integer lags, e.g. (1, 12); got "
                f"{self.difference!r}"
            )
        return tuple(int(k) for k in lags)

    @staticmethod
    def _series(y, name: str = "y") -> tuple[np.ndarray, object]:
        index = getattr(y, "index", None)
        values = np.asarray(y, dtype=np.float64) if not hasattr(y, "to_numpy") else None
        if values is None:
            values = y.to_numpy(dtype=np.float64)
        if values.ndim == 2 and values.shape[1] == 1:
            values = values[:, 0]
        if values.ndim != 1:
            raise ValueError(
                f"{name} must be one series: a 1-D array or a pandas Series; got an array of "
                f"shape {values.shape}"
            )
        if not np.isfinite(values).all():
            k = int(np.flatnonzero(~np.isfinite(values))[0])
            raise ValueError(
                f"{name} contains NaN or infinity (first at {k}, of {len(values)}); fill or "
                "interpolate missing observations first"
            )
        return values, index

    def _exog(self, X, length: int, name: str) -> np.ndarray | None:
        if X is None:
            return None
        a = X.to_numpy(dtype=np.float64) if hasattr(X, "to_numpy") else np.asarray(X, float)
        a = a[:, None] if a.ndim == 1 else a
        if a.ndim != 2 or a.shape[0] != length:
            raise ValueError(
                f"{name} must have one row per step: expected shape ({length}, n_exog); got "
                f"{a.shape}"
            )
        if not np.isfinite(a).all():
            raise ValueError(f"{name} contains NaN or infinity")
        if hasattr(self, "n_exog_") and a.shape[1] != self.n_exog_:
            raise ValueError(
                f"{name} has {a.shape[1]} columns; the forecaster was fitted with {self.n_exog_}"
            )
        return a

    # -- windows ----------------------------------------------------------------------

    def _steps_ahead(self) -> int:
        return 1 if self.strategy == "recursive" else int(self.horizon)

    def _future(self) -> bool:
        return self.n_exog_ > 0 and self.exog_future

    def _sequence(self, z: np.ndarray, exog: np.ndarray | None, end: int, ahead: int):
        """The model input for a forecast made after step `end` (exclusive) of z.

        Window steps carry [z, exog]; with future covariates, `ahead` more steps
        carry [0, exog] and a flag 1.
        """
        W = int(self.window)
        rows = [z[end - W : end, None]]
        if exog is not None:
            rows.append(exog[end - W : end])
        past = np.concatenate(rows, axis=1)
        if not self._future():
            return past
        past = np.concatenate([past, np.zeros((W, 1))], axis=1)
        future = np.concatenate(
            [np.zeros((ahead, 1)), exog[end : end + ahead], np.ones((ahead, 1))], axis=1
        )
        return np.concatenate([past, future])

    def _training_windows(self, z, exog, first_target: int):
        """Windows whose first target step is at least `first_target` (in z's steps)."""
        W, H = int(self.window), self._steps_ahead()
        ends = range(max(W, first_target), len(z) - H + 1)
        if len(ends) == 0:
            raise ValueError(
                f"the series is too short for window={W} and {H} step(s) ahead after the "
                f"differences {self._lags()}: {len(z)} transformed steps, at least {W + H} needed"
            )
        X = np.stack([self._sequence(z, exog, e, H) for e in ends])
        y = np.stack([z[e : e + H] for e in ends])
        return X, (y[:, 0] if H == 1 else y)

    def _aligned_exog(self, exog: np.ndarray | None, offset: int) -> np.ndarray | None:
        return None if exog is None else exog[offset:]

    # -- fitting ------------------------------------------------------------------------

    def _network(self) -> LSTMRegressor:
        params = {name: getattr(self, name) for name in _LSTM_PARAMS}
        return LSTMRegressor(validation_split="last", **params)

    def _fit_model(self, y: np.ndarray, exog: np.ndarray | None) -> LSTMRegressor:
        offset = sum(self.transform_.lags)
        z = self.transform_.transform(y)
        Xw, yw = self._training_windows(z, self._aligned_exog(exog, offset), 0)
        model = self._network().fit(Xw, yw)
        # A refit (and the calibration model) forecasts in the chosen precision too.
        return model.set_inference_precision(self.__dict__.get("_inference_precision", "float32"))

    def set_inference_precision(self, precision: str) -> LSTMForecaster:
        """Forecast with reduced-precision LSTM weights; see LSTMRegressor.set_inference_precision.

        Parameters
        ----------
        precision : {'float32', 'bfloat16', 'int8'}

        Returns
        -------
        self : LSTMForecaster
            Its network (``estimator_``) predicts in that precision, and so do
            the networks of later fits and of :meth:`predict_interval`'s
            calibration.
        """
        check_is_fitted(self, "estimator_")
        self.estimator_.set_inference_precision(precision)  # validates
        self._inference_precision = precision
        self.__dict__.pop("residuals_", None)  # calibrated in the old precision
        return self

    @property
    def inference_precision_(self) -> str:
        """The precision forecasts are computed in: 'float32', 'bfloat16' or 'int8'."""
        check_is_fitted(self, "estimator_")
        return self.estimator_.inference_precision_

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, y, X=None) -> LSTMForecaster:
        """Learn to forecast the series `y`.

        Parameters
        ----------
        y : array-like of shape (T,) or pandas Series
            The series, oldest first. A pandas Series with a DatetimeIndex or
            PeriodIndex makes forecasts come back indexed by the next periods.
        X : array-like of shape (T, n_exog) or DataFrame, optional
            Exogenous variables, one row per step of y.

        Returns
        -------
        self : LSTMForecaster
        """
        values, index = self._series(y)
        lags = self._lags()
        if self.log and (values <= 0).any():
            raise ValueError("log=True needs a positive series; y has values <= 0")
        exog = self._exog(X, len(values), "X")
        transform = _TargetTransform(self.log, lags).fit(values)
        self.transform_ = transform
        self.n_exog_ = 0 if exog is None else exog.shape[1]
        self.estimator_ = self._fit_model(values, exog)
        self.y_ = self._y_train = values
        self.X_ = self._X_train = exog
        self.index_ = index
        self.name_ = getattr(y, "name", None)
        self.n_iter_ = self.estimator_.n_iter_
        self.__dict__.pop("residuals_", None)
        return self

    # -- forecasting ----------------------------------------------------------------

    def _check_horizon(self, horizon) -> int:
        h = int(self.horizon) if horizon is None else horizon
        if not isinstance(h, Integral) or h < 1:
            raise ValueError(f"horizon must be a positive integer; got {horizon!r}")
        if self.strategy == "multioutput" and h > self.horizon:
            raise ValueError(
                f"horizon={h} is more than the {self.horizon} steps this multioutput model "
                "forecasts; fit with a larger horizon, or use strategy='recursive'"
            )
        return int(h)

    def _forecast(self, model, y: np.ndarray, exog, future_exog, h: int) -> np.ndarray:
        """Forecasts of the h steps after y, by `model`, in the original scale."""
        offset = sum(self.transform_.lags)
        z = self.transform_.transform(y)
        if len(z) < self.window:
            raise ValueError(
                f"a forecast needs the last {self.window + offset} observations; the series "
                f"has {len(y)}"
            )
        ex = None
        if exog is not None:
            ex = exog[offset:]
            if future_exog is not None:
                ex = np.concatenate([ex, future_exog])
        if self.strategy == "multioutput":
            seq = self._sequence(z, ex, len(z), int(self.horizon) if self._future() else 0)
            zf = np.atleast_1d(model.predict(seq[None])[0])[:h]
        else:
            zs = list(z)
            for _ in range(h):
                seq = self._sequence(np.asarray(zs), ex, len(zs), 1)
                zs.append(float(np.ravel(model.predict(seq[None]))[0]))
            zf = np.asarray(zs[len(z) :])
        return self.transform_.inverse(zf, y)

    def _future_exog(self, X, h: int) -> np.ndarray | None:
        if not self.n_exog_:
            if X is not None:
                raise ValueError("this forecaster was fitted without X; predict takes no X")
            return None
        if not self.exog_future:
            return None
        need = h if self.strategy == "recursive" else int(self.horizon)
        if X is None:
            raise ValueError(
                f"this forecaster reads future covariates: pass X for the {need} forecast "
                "step(s) (or fit with exog_future=False)"
            )
        return self._exog(X, need, "X")

    def _as_output(self, values: np.ndarray):
        index = self.index_
        if index is None or not hasattr(index, "freq"):
            return values
        import pandas as pd

        freq = index.freq or (pd.infer_freq(index) if len(index) > 2 else None)
        if freq is None:
            return values
        after = index[-1] + (1 if isinstance(index, pd.PeriodIndex) else freq)
        if isinstance(index, pd.PeriodIndex):
            new = pd.period_range(after, periods=len(values), freq=index.freq)
        else:
            new = pd.date_range(after, periods=len(values), freq=freq)
        return pd.Series(values, index=new, name=getattr(self, "name_", None))

    def predict(self, horizon: int | None = None, X=None):
        """Forecast the steps after the end of the series seen so far.

        Parameters
        ----------
        horizon : int, optional
            Steps to forecast; the fitted ``horizon`` by default.
        X : array-like of shape (horizon, n_exog), optional
            Future covariates for the forecast steps (for a multioutput model,
            for all ``self.horizon`` steps), when fitted with X and
            ``exog_future=True``.

        Returns
        -------
        forecast : ndarray of shape (horizon,) or pandas Series
            A Series indexed by the next periods when y had a DatetimeIndex
            or PeriodIndex.
        """
        check_is_fitted(self, "estimator_")
        h = self._check_horizon(horizon)
        future = self._future_exog(X, h)
        return self._as_output(self._forecast(self.estimator_, self.y_, self.X_, future, h))

    def update(self, y_new, X_new=None, refit: bool = False) -> LSTMForecaster:
        """Append new observations; with ``refit=True`` also train one epoch on them.

        Parameters
        ----------
        y_new : array-like of shape (k,) or pandas Series
            The observations after the end of the series seen so far.
        X_new : array-like of shape (k, n_exog), optional
            Their exogenous variables, when fitted with X.
        refit : bool, default=False
            Train the network one more epoch on the windows whose targets
            include the new observations, keeping its optimizer state. The
            target transforms stay as fitted.

        Returns
        -------
        self : LSTMForecaster
        """
        check_is_fitted(self, "estimator_")
        values, index = self._series(y_new, "y_new")
        if self.log and (values <= 0).any():
            raise ValueError("log=True needs a positive series; y_new has values <= 0")
        exog = self._exog(X_new, len(values), "X_new") if self.n_exog_ else None
        if self.n_exog_ and exog is None:
            raise ValueError("this forecaster was fitted with X; pass X_new for the new steps")
        if index is not None and self.index_ is not None:
            import pandas as pd

            expected = self._as_output(np.zeros(len(values)))
            if isinstance(expected, pd.Series) and not expected.index.equals(index):
                raise ValueError(
                    f"y_new must continue the series: expected an index starting at "
                    f"{expected.index[0]}; got one starting at {index[0]}"
                )
            self.index_ = self.index_.append(index)
        old = len(self.y_)
        y = np.concatenate([self.y_, values])
        X = None if exog is None else np.concatenate([self.X_, exog])
        if refit:
            offset = sum(self.transform_.lags)
            z = self.transform_.transform(y)
            first = max(0, old - offset)
            Xw, yw = self._training_windows(z, self._aligned_exog(X, offset), first)
            self.estimator_.partial_fit(Xw, yw)
            self.n_iter_ = self.estimator_.n_iter_
        self.y_, self.X_ = y, X
        return self

    # -- intervals ------------------------------------------------------------------

    def _calibrate(self) -> np.ndarray:
        """Absolute forecast errors [origins, horizon] of a model fitted without the tail."""
        H = int(self.horizon)
        T = len(self._y_train)
        size = self.calibration_size or max(3 * H, T // 5)
        start = T - size
        if start - sum(self.transform_.lags) < self.window + self._steps_ahead():
            raise ValueError(
                f"calibration_size={size} leaves too little of the {T}-step series to fit the "
                "calibration model; use a smaller calibration_size"
            )
        y_fit = self._y_train[:start]
        x_fit = None if self._X_train is None else self._X_train[:start]
        model = self._fit_model(y_fit, x_fit)
        errors = []
        for origin in range(start, T - H + 1):
            future = None
            if self._X_train is not None and self._future():
                future = self._X_train[origin : origin + H]
            history_x = None if self._X_train is None else self._X_train[:origin]
            forecast = self._forecast(model, self._y_train[:origin], history_x, future, H)
            errors.append(np.abs(self._y_train[origin : origin + H] - forecast))
        return np.asarray(errors)

    def predict_interval(self, coverage: float = 0.9, horizon: int | None = None, X=None):
        """Split-conformal prediction intervals around :meth:`predict`.

        The interval of step h is the forecast plus or minus the
        ``ceil((n + 1) * coverage) / n`` quantile of the absolute errors of
        step-h forecasts made, by a second network fitted without them, from
        every origin in the last ``calibration_size`` steps of the training
        series (computed on the first call and kept).

        Parameters
        ----------
        coverage : float, default=0.9
            Nominal share of future values inside the interval.
        horizon, X
            As in :meth:`predict`.

        Returns
        -------
        lower, upper : ndarray of shape (horizon,) or pandas Series
        """
        check_is_fitted(self, "estimator_")
        if not isinstance(coverage, Real) or not 0 < coverage < 1:
            raise ValueError(f"coverage must be a number in (0, 1); got {coverage!r}")
        h = self._check_horizon(horizon)
        if "residuals_" not in self.__dict__:
            self.residuals_ = self._calibrate()
        errors = self.residuals_[:, :h]
        n = len(errors)
        level = min(1.0, math.ceil((n + 1) * coverage) / n)
        width = np.quantile(errors, level, axis=0, method="higher")
        point = self.predict(h, X)
        values = np.asarray(point, dtype=np.float64)
        lower, upper = values - width, values + width
        if hasattr(point, "index"):
            import pandas as pd

            return pd.Series(lower, index=point.index), pd.Series(upper, index=point.index)
        return lower, upper
