"""Diagnostics to look at: loss curves of a training run, forecasts with their intervals.

The displays follow scikit-learn's convention (as ``RocCurveDisplay`` and
``LearningCurveDisplay`` do): a class holding the data, a ``from_estimator``
class method that reads them off a fitted estimator and draws them, and
``plot(ax=None, ...)`` that draws and returns the display, keeping the
matplotlib artists in attributes ending in ``_``.

matplotlib is an optional dependency (the ``plot`` extra): it is imported when a
display draws, never when lstmlearn is imported.
"""

from __future__ import annotations

import warnings
from numbers import Integral

import numpy as np
from sklearn.base import is_classifier, is_regressor
from sklearn.utils.validation import check_is_fitted

__all__ = ["ForecastDisplay", "LossCurveDisplay"]


def _check_matplotlib(caller: str) -> None:
    try:
        import matplotlib  # noqa: F401
    except ImportError as error:
        raise ImportError(
            f"{caller} requires matplotlib, an optional dependency of lstmlearn: install it "
            "with pip install 'lstmlearn[plot]' (or pip install matplotlib)"
        ) from error


def _new_axes(ax):
    import matplotlib.pyplot as plt

    if ax is None:
        # constrained: the labels of a twin axis stay inside the figure
        _, ax = plt.subplots(layout="constrained")
    return ax


def _values(a) -> np.ndarray | None:
    """A 1-D float array of a record, or None for a missing or empty one."""
    if a is None:
        return None
    v = np.asarray(a, dtype=np.float64).reshape(-1)
    return v if v.size else None


# -- loss curves -----------------------------------------------------------------------------

# Where the model that trained sits inside the objects users fit: a search's
# best estimator, a TransformedTargetRegressor's regressor, a forecaster's network.
_WRAPPED = ("best_estimator_", "regressor_", "estimator_")


def _trained_model(estimator):
    """The object holding the training records of `estimator`, or None."""
    est = estimator
    for _ in range(8):  # wrappers of wrappers, never a cycle
        if hasattr(est, "history_") or hasattr(est, "loss_curve_"):
            return est
        inner = next((getattr(est, a) for a in _WRAPPED if hasattr(est, a)), None)
        if inner is None and hasattr(est, "steps"):  # a Pipeline: its last step
            inner = est.steps[-1][1]
        if inner is None:
            return None
        est = inner
    return None


def _score_name(model) -> str:
    if is_classifier(model):
        return "validation accuracy"
    if is_regressor(model):
        return "validation R²"
    return "validation score"


class LossCurveDisplay:
    """Loss curve of a training run: training and validation loss per epoch.

    It is recommended to use :meth:`from_estimator` to create a display. All
    parameters are stored as attributes.

    Parameters
    ----------
    loss : array-like of shape (n_epochs,)
        Training loss of each epoch (``history_["loss"]``).
    val_loss, val_score : array-like of shape (n_validated,), default=None
        Validation loss and score of the epochs that were validated
        (``history_["val_loss"]`` and ``history_["val_score"]``).
    val_epochs : array-like of int of shape (n_validated,), default=None
        The (1-based) epochs of the validation records; None takes the first
        ``n_validated`` epochs.
    learning_rate : array-like of shape (n_epochs,), default=None
        The learning rate each epoch trained with; the epochs where it changed
        are marked.
    best_epoch : int, default=None
        The (1-based) epoch whose weights the model kept (``best_epoch_``),
        marked when given.
    estimator_name : str, default=None
        Name of the estimator, for the title.
    score_name : str, default=None
        Label of the score axis; None gives ``"validation score"``.

    Attributes
    ----------
    ax_ : matplotlib Axes
        Axes of the losses.
    score_ax_ : matplotlib Axes or None
        The twin axes (right) of the validation score, when there is one.
    figure_ : matplotlib Figure
    lines_ : list of matplotlib Line2D
        The curves drawn: training loss, then validation loss and validation
        score where recorded.
    loss_line_, val_loss_line_, val_score_line_ : matplotlib Line2D or None
        The same curves by name (None for one not drawn).
    lr_change_epochs_ : ndarray of int
        The epochs whose learning rate differs from the epoch before.
    lr_change_lines_ : list of matplotlib Line2D
        A vertical line at each of them.
    best_epoch_line_ : matplotlib Line2D or None
        A vertical line at ``best_epoch``.

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> from lstmlearn import LSTMRegressor
    >>> from lstmlearn.datasets import make_noisy_sine
    >>> from lstmlearn.display import LossCurveDisplay
    >>> X, y = make_noisy_sine(n_samples=200, timesteps=10, random_state=0)
    >>> model = LSTMRegressor(hidden_layer_sizes=8, max_iter=5, n_iter_no_change=1,
    ...                       early_stopping=True, random_state=0).fit(X, y)
    >>> display = LossCurveDisplay.from_estimator(model)
    >>> len(display.loss_line_.get_ydata()) == model.n_iter_
    True
    """

    def __init__(
        self,
        *,
        loss,
        val_loss=None,
        val_score=None,
        val_epochs=None,
        learning_rate=None,
        best_epoch=None,
        estimator_name=None,
        score_name=None,
    ) -> None:
        self.loss = loss
        self.val_loss = val_loss
        self.val_score = val_score
        self.val_epochs = val_epochs
        self.learning_rate = learning_rate
        self.best_epoch = best_epoch
        self.estimator_name = estimator_name
        self.score_name = score_name

    def _records(self):
        loss = _values(self.loss)
        if loss is None:
            raise ValueError("loss is empty: no epoch was recorded, so there is no curve to draw")
        val_loss = _values(self.val_loss)
        val_score = _values(self.val_score)
        n_val = max(len(v) for v in (val_loss, val_score, np.empty(0)) if v is not None)
        for name, v in (("val_loss", val_loss), ("val_score", val_score)):
            if v is not None and len(v) != n_val:
                raise ValueError(
                    f"val_loss and val_score must have one value per validated epoch; got "
                    f"{0 if val_loss is None else len(val_loss)} and "
                    f"{0 if val_score is None else len(val_score)} ({name} differs)"
                )
        if self.val_epochs is None:
            val_epochs = np.arange(1, n_val + 1)
        else:
            val_epochs = np.asarray(self.val_epochs).reshape(-1)
            if len(val_epochs) != n_val:
                raise ValueError(
                    f"val_epochs has {len(val_epochs)} epochs for {n_val} validation records"
                )
        if n_val and (val_epochs.min() < 1 or val_epochs.max() > len(loss)):
            raise ValueError(
                f"validation records at epochs {val_epochs.min()}..{val_epochs.max()}, beyond "
                f"the {len(loss)} epochs of loss"
            )
        rate = _values(self.learning_rate)
        if rate is not None and len(rate) != len(loss):
            raise ValueError(
                f"learning_rate has {len(rate)} values for {len(loss)} epochs of loss; it must "
                "hold the rate of each epoch"
            )
        best = self.best_epoch
        if best is not None and (
            not isinstance(best, Integral) or isinstance(best, bool) or not 1 <= best <= len(loss)
        ):
            raise ValueError(
                f"best_epoch must be an epoch number from 1 to {len(loss)}; got {best!r}"
            )
        return loss, val_loss, val_score, val_epochs, rate, best

    def plot(
        self,
        ax=None,
        *,
        name=None,
        loss_kw=None,
        val_loss_kw=None,
        val_score_kw=None,
        yscale="linear",
    ) -> LossCurveDisplay:
        """Draw the curves.

        Parameters
        ----------
        ax : matplotlib Axes, default=None
            Axes to draw on; None makes a new figure.
        name : str, default=None
            Title; None uses ``estimator_name``.
        loss_kw, val_loss_kw, val_score_kw : dict, default=None
            Keyword arguments for matplotlib's ``plot`` of each curve.
        yscale : str, default="linear"
            Scale of the loss axis (``"log"`` shows a loss falling by orders
            of magnitude).

        Returns
        -------
        display : LossCurveDisplay
        """
        _check_matplotlib(f"{type(self).__name__}.plot")
        loss, val_loss, val_score, val_epochs, rate, best = self._records()
        ax = _new_axes(ax)
        epochs = np.arange(1, len(loss) + 1)
        self.loss_line_ = ax.plot(epochs, loss, **{"label": "training loss", **(loss_kw or {})})[0]
        self.lines_ = [self.loss_line_]
        self.val_loss_line_ = self.val_score_line_ = self.score_ax_ = None
        handles = [self.loss_line_]
        if val_loss is not None:
            kw = {"label": "validation loss", **(val_loss_kw or {})}
            self.val_loss_line_ = ax.plot(val_epochs, val_loss, **kw)[0]
            self.lines_.append(self.val_loss_line_)
            handles.append(self.val_loss_line_)
        if val_score is not None:
            # A score (R², accuracy) has another scale than a loss: its own axis, right.
            self.score_ax_ = ax.twinx()
            label = self.score_name or "validation score"
            kw = {"label": label, "color": "C2", "linestyle": "--", **(val_score_kw or {})}
            self.val_score_line_ = self.score_ax_.plot(val_epochs, val_score, **kw)[0]
            self.score_ax_.set_ylabel(label)
            self.lines_.append(self.val_score_line_)
            handles.append(self.val_score_line_)

        changed = np.zeros(0, dtype=int)
        if rate is not None:
            changed = np.flatnonzero(rate[1:] != rate[:-1]) + 2  # 1-based epochs
        self.lr_change_epochs_ = changed
        self.lr_change_lines_ = []
        for k, epoch in enumerate(changed):
            label = "learning rate changed" if k == 0 else "_nolegend_"
            line = ax.axvline(epoch, color="0.5", linestyle=":", linewidth=1, label=label)
            ax.annotate(
                f"{rate[epoch - 1]:.2g}",
                (epoch, 1.0),
                xycoords=("data", "axes fraction"),
                xytext=(2, -10),
                textcoords="offset points",
                fontsize="x-small",
                color="0.4",
            )
            self.lr_change_lines_.append(line)
        if self.lr_change_lines_:
            handles.append(self.lr_change_lines_[0])
        self.best_epoch_line_ = None
        if best is not None:
            self.best_epoch_line_ = ax.axvline(
                best, color="C3", linestyle="--", linewidth=1, label=f"best epoch ({best})"
            )
            handles.append(self.best_epoch_line_)

        ax.set_xlabel("epoch")
        ax.set_ylabel("loss")
        ax.set_yscale(yscale)
        # On the twin axes when there is one: they are drawn over the first.
        (self.score_ax_ or ax).legend(handles=handles, loc="best")
        title = self.estimator_name if name is None else name
        if title:
            ax.set_title(title)
        self.ax_ = ax
        self.figure_ = ax.figure
        return self

    @classmethod
    def from_estimator(cls, estimator, *, ax=None, name=None, **kwargs) -> LossCurveDisplay:
        """Draw the loss curve of a fitted estimator.

        Parameters
        ----------
        estimator : fitted estimator
            An lstmlearn estimator (its ``history_``, ``best_epoch_``), or
            an object holding one: a :class:`~lstmlearn.LSTMForecaster`, a
            ``Pipeline`` ending in one, a ``TransformedTargetRegressor``, a
            fitted search (its ``best_estimator_``). scikit-learn's
            ``MLPRegressor`` and ``MLPClassifier`` (``loss_curve_``,
            ``validation_scores_``) work too.
        ax : matplotlib Axes, default=None
            Axes to draw on; None makes a new figure.
        name : str, default=None
            Title; None uses the estimator's class name.
        **kwargs
            Passed to :meth:`plot`.

        Returns
        -------
        display : LossCurveDisplay
        """
        _check_matplotlib(f"{cls.__name__}.from_estimator")
        if not hasattr(estimator, "fit"):
            raise TypeError(
                f"{cls.__name__}.from_estimator expects a fitted estimator; got "
                f"{type(estimator).__name__}"
            )
        model = _trained_model(estimator)
        if model is None:
            check_is_fitted(estimator)  # NotFittedError for an estimator not fitted yet
            raise TypeError(
                f"{cls.__name__}.from_estimator needs an estimator trained epoch by epoch, with "
                "a training history (an lstmlearn estimator, or one with loss_curve_ such as "
                f"MLPRegressor); {type(estimator).__name__} has none"
            )
        history = getattr(model, "history_", None)
        if history is None:  # scikit-learn's MLP
            loss, val_loss = model.loss_curve_, None
            val_score = getattr(model, "validation_scores_", None)
            rate = None
        else:
            loss, val_loss = history.get("loss"), history.get("val_loss")
            val_score, rate = history.get("val_score"), history.get("learning_rate")
        if loss is None or len(loss) == 0:
            raise ValueError(
                f"{type(model).__name__} has no recorded epoch (its weights did not come from "
                "fit or partial_fit), so there is no loss curve to draw"
            )
        val_loss, val_score = _values(val_loss), _values(val_score)
        if rate is not None and len(rate) != len(loss):
            warnings.warn(
                f"{type(model).__name__}.history_ has learning rates for {len(rate)} of its "
                f"{len(loss)} epochs (epochs trained before they were recorded?); the "
                "learning-rate changes are not marked",
                UserWarning,
                stacklevel=2,
            )
            rate = None
        n_val = len(
            val_loss if val_loss is not None else val_score if val_score is not None else ()
        )
        val_epochs = None if history is None else history.get("val_epoch")
        if val_epochs is None and 0 < n_val < len(loss):
            warnings.warn(
                f"{type(model).__name__} validated {n_val} of its {len(loss)} epochs (epochs of "
                "partial_fit, or of fits without validation, are not validated); the "
                f"validation curves are drawn at the first {n_val} epochs",
                UserWarning,
                stacklevel=2,
            )
        display = cls(
            loss=loss,
            val_loss=val_loss,
            val_score=val_score,
            val_epochs=val_epochs,
            learning_rate=rate,
            best_epoch=getattr(model, "best_epoch_", None),
            estimator_name=type(model).__name__,
            score_name=_score_name(model),
        )
        return display.plot(ax=ax, name=name, **kwargs)


# -- forecasts -------------------------------------------------------------------------------


def _is_dates(index) -> bool:
    # A DatetimeIndex (it has a time zone, maybe None) or a PeriodIndex.
    return index is not None and (hasattr(index, "tz") or hasattr(index, "to_timestamp"))


def _x_of(index):
    """Values matplotlib can place: timestamps for a PeriodIndex, the values otherwise."""
    if hasattr(index, "to_timestamp"):  # PeriodIndex
        index = index.to_timestamp()
    return np.asarray(index)


class ForecastDisplay:
    """A forecast after the series it continues, with its interval and what happened.

    It is recommended to use :meth:`from_estimator` to create a display. All
    parameters are stored as attributes.

    Parameters
    ----------
    y : array-like of shape (n_observed,)
        The series the forecast continues.
    forecast : array-like of shape (horizon,)
        The forecast of the steps after it.
    lower, upper : array-like of shape (horizon,), default=None
        Bounds of the prediction interval of each step.
    y_test : array-like of shape (n_test,), default=None
        The values observed after the series, to compare with the forecast.
    x, x_forecast, x_test : array-like, default=None
        Where each goes on the x axis (numbers or dates); None places ``y`` at
        0, 1, ... and what follows it at the next steps.
    coverage : float, default=None
        Nominal coverage of the interval, for its label.
    estimator_name : str, default=None
        Name of the forecaster, for the labels.

    Attributes
    ----------
    ax_ : matplotlib Axes
    figure_ : matplotlib Figure
    lines_ : list of matplotlib Line2D
        The series, the forecast, and ``y_test`` when given.
    history_line_, forecast_line_ : matplotlib Line2D
    test_line_ : matplotlib Line2D or None
    interval_ : matplotlib PolyCollection or None
        The band between ``lower`` and ``upper``.
    """

    def __init__(
        self,
        *,
        y,
        forecast,
        lower=None,
        upper=None,
        y_test=None,
        x=None,
        x_forecast=None,
        x_test=None,
        coverage=None,
        estimator_name=None,
    ) -> None:
        self.y = y
        self.forecast = forecast
        self.lower = lower
        self.upper = upper
        self.y_test = y_test
        self.x = x
        self.x_forecast = x_forecast
        self.x_test = x_test
        self.coverage = coverage
        self.estimator_name = estimator_name

    def plot(
        self,
        ax=None,
        *,
        name=None,
        n_history=None,
        history_kw=None,
        forecast_kw=None,
        interval_kw=None,
        test_kw=None,
    ) -> ForecastDisplay:
        """Draw the series, the forecast, its interval and ``y_test``.

        Parameters
        ----------
        ax : matplotlib Axes, default=None
            Axes to draw on; None makes a new figure.
        name : str, default=None
            Label of the forecast; None uses ``estimator_name``.
        n_history : int, default=None
            Draw only the last ``n_history`` observations of the series (a
            long history dwarfs the forecast); None draws all.
        history_kw, forecast_kw, interval_kw, test_kw : dict, default=None
            Keyword arguments for matplotlib's ``plot`` (``fill_between`` for
            the interval).

        Returns
        -------
        display : ForecastDisplay
        """
        _check_matplotlib(f"{type(self).__name__}.plot")
        y = np.asarray(self.y, dtype=np.float64).reshape(-1)
        forecast = np.asarray(self.forecast, dtype=np.float64).reshape(-1)
        n = len(y)
        x = np.arange(n) if self.x is None else _x_of(self.x)
        xf = np.arange(n, n + len(forecast)) if self.x_forecast is None else _x_of(self.x_forecast)
        if len(x) != n or len(xf) != len(forecast):
            raise ValueError(
                f"x has {len(x)} positions for {n} observations and x_forecast {len(xf)} for "
                f"{len(forecast)} forecasts; they must match"
            )
        if n_history is not None:
            if not isinstance(n_history, Integral) or n_history < 1:
                raise ValueError(f"n_history must be a positive integer; got {n_history!r}")
            x, y = x[-n_history:], y[-n_history:]
        ax = _new_axes(ax)
        label = (self.estimator_name if name is None else name) or "forecast"
        self.history_line_ = ax.plot(
            x, y, **{"label": "observed", "color": "C0", **(history_kw or {})}
        )[0]
        kw = {"label": label, "color": "C1", "marker": ".", **(forecast_kw or {})}
        self.forecast_line_ = ax.plot(xf, forecast, **kw)[0]
        self.lines_ = [self.history_line_, self.forecast_line_]
        self.interval_ = None
        if self.lower is not None and self.upper is not None:
            lower = np.asarray(self.lower, dtype=np.float64).reshape(-1)
            upper = np.asarray(self.upper, dtype=np.float64).reshape(-1)
            if len(lower) != len(forecast) or len(upper) != len(forecast):
                raise ValueError(
                    f"lower and upper need one value per forecast step ({len(forecast)}); got "
                    f"{len(lower)} and {len(upper)}"
                )
            what = "interval" if self.coverage is None else f"{self.coverage:.0%} interval"
            kw = {
                "label": what,
                "color": "C1",
                "alpha": 0.25,
                "linewidth": 0,
                **(interval_kw or {}),
            }
            self.interval_ = ax.fill_between(xf, lower, upper, **kw)
        self.test_line_ = None
        if self.y_test is not None:
            y_test = np.asarray(self.y_test, dtype=np.float64).reshape(-1)
            if self.x_test is None:
                xt = np.arange(n, n + len(y_test))
            else:
                xt = _x_of(self.x_test)
            if len(xt) != len(y_test):
                raise ValueError(f"x_test has {len(xt)} positions for {len(y_test)} values")
            kw = {"label": "actual", "color": "k", "linestyle": "--", **(test_kw or {})}
            self.test_line_ = ax.plot(xt, y_test, **kw)[0]
            self.lines_.append(self.test_line_)
        ax.legend(loc="best")
        self.ax_ = ax
        self.figure_ = ax.figure
        return self

    @classmethod
    def from_estimator(
        cls,
        forecaster,
        y_test=None,
        *,
        horizon=None,
        X=None,
        coverage=0.9,
        ax=None,
        name=None,
        **kwargs,
    ) -> ForecastDisplay:
        """Draw a fitted forecaster's series, its forecast and interval, and ``y_test``.

        Parameters
        ----------
        forecaster : LSTMForecaster
            Fitted; the series drawn is the one it was fitted on, with what
            :meth:`~lstmlearn.LSTMForecaster.update` appended.
        y_test : array-like of shape (n_test,) or pandas Series, default=None
            The values that followed the series. A Series with a
            DatetimeIndex or PeriodIndex is placed at its dates; anything else
            at the steps after the series.
        horizon : int, default=None
            Steps to forecast; the forecaster's ``horizon`` by default.
        X : array-like, default=None
            Future covariates, as :meth:`~lstmlearn.LSTMForecaster.predict`
            takes them.
        coverage : float or None, default=0.9
            Coverage of the interval drawn
            (:meth:`~lstmlearn.LSTMForecaster.predict_interval`; its first
            call fits the calibration network); None draws no interval.
        ax : matplotlib Axes, default=None
        name : str, default=None
            Label of the forecast; None uses the forecaster's class name.
        **kwargs
            Passed to :meth:`plot` (``n_history``, the ``*_kw`` dictionaries).

        Returns
        -------
        display : ForecastDisplay
        """
        from .forecaster import LSTMForecaster

        _check_matplotlib(f"{cls.__name__}.from_estimator")
        if not isinstance(forecaster, LSTMForecaster):
            raise TypeError(
                f"{cls.__name__}.from_estimator expects an LSTMForecaster; got "
                f"{type(forecaster).__name__} (LossCurveDisplay shows the training of other "
                "estimators)"
            )
        check_is_fitted(forecaster, "estimator_")
        h = forecaster.horizon if horizon is None else horizon
        forecast = forecaster.predict(h, X)
        lower = upper = None
        if coverage is not None:
            lower, upper = forecaster.predict_interval(coverage, h, X)
        y = forecaster.y_
        index = forecaster.index_
        x = None
        if index is not None and len(index) == len(y):
            if _is_dates(index):
                x = index
            elif np.asarray(index).dtype.kind in "iuf":
                x = np.asarray(index)
        x_forecast = x_test = None
        values_test = None
        if y_test is not None:
            values_test = np.asarray(y_test, dtype=np.float64).reshape(-1)
        if _is_dates(x):
            x_forecast = getattr(forecast, "index", None)
            if values_test is not None:
                x_test = getattr(y_test, "index", None)
                if not _is_dates(x_test):  # at the periods after the series
                    x_test = getattr(
                        forecaster._as_output(np.zeros(len(values_test))), "index", None
                    )
            if x_forecast is None or (values_test is not None and x_test is None):
                x = x_forecast = x_test = None  # no frequency to continue the dates: steps
        elif x is not None:
            step = x[-1] - x[-2] if len(x) > 1 else 1
            x_forecast = x[-1] + step * np.arange(1, h + 1)
            if values_test is not None and x_test is None:
                x_test = x[-1] + step * np.arange(1, len(values_test) + 1)
        display = cls(
            y=y,
            forecast=forecast,
            lower=lower,
            upper=upper,
            y_test=values_test,
            x=x,
            x_forecast=x_forecast,
            x_test=x_test,
            coverage=coverage,
            estimator_name=type(forecaster).__name__,
        )
        return display.plot(ax=ax, name=name, **kwargs)
