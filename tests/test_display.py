"""LossCurveDisplay and ForecastDisplay: the artists hold the recorded values (Agg backend)."""

import subprocess
import sys
import warnings

import matplotlib
import numpy as np
import pandas as pd
import pytest
from sklearn.exceptions import ConvergenceWarning, NotFittedError
from sklearn.linear_model import LinearRegression
from sklearn.neural_network import MLPRegressor
from sklearn.pipeline import make_pipeline

import lstmlearn
from lstmlearn import LSTMClassifier, LSTMForecaster, LSTMRegressor
from lstmlearn.datasets import make_first_value_sequences, make_noisy_sine
from lstmlearn.display import ForecastDisplay, LossCurveDisplay
from lstmlearn.preprocessing import SequenceScaler

matplotlib.use("Agg")
import matplotlib.pyplot as plt


@pytest.fixture(autouse=True)
def _close_figures():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        yield
    plt.close("all")


@pytest.fixture(scope="module")
def regressor():
    X, y = make_noisy_sine(n_samples=120, timesteps=8, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return LSTMRegressor(
            hidden_layer_sizes=4, max_iter=6, early_stopping=True, n_iter_no_change=50,
            restore_best_weights=False, random_state=0, n_jobs=1,
        ).fit(X, y)  # fmt: skip


@pytest.fixture(scope="module")
def forecaster():
    t = np.arange(90)
    y = 10 + 0.05 * t + np.sin(2 * np.pi * t / 12) + 0.1 * np.random.default_rng(0).normal(size=90)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return LSTMForecaster(
            window=12, horizon=4, hidden_layer_sizes=4, max_iter=5, random_state=0, n_jobs=1
        ).fit(y)


def test_import_lstmlearn_does_not_import_matplotlib():
    code = (
        "import sys, lstmlearn; assert 'matplotlib' not in sys.modules; "
        "lstmlearn.LossCurveDisplay; assert 'matplotlib' not in sys.modules; print('ok')"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert lstmlearn.LossCurveDisplay is LossCurveDisplay
    assert lstmlearn.ForecastDisplay is ForecastDisplay
    assert {"LossCurveDisplay", "ForecastDisplay"} <= set(dir(lstmlearn))


def test_without_matplotlib_the_error_says_how_to_install_it(regressor, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib raises
    with pytest.raises(ImportError, match=r"requires matplotlib.*lstmlearn\[plot\]"):
        LossCurveDisplay.from_estimator(regressor)
    with pytest.raises(ImportError, match=r"ForecastDisplay\.plot requires matplotlib"):
        ForecastDisplay(y=[1.0, 2.0], forecast=[3.0]).plot()


def test_loss_curve_holds_the_history(regressor):
    display = LossCurveDisplay.from_estimator(regressor)
    history = regressor.history_
    epochs = np.arange(1, regressor.n_iter_ + 1)
    np.testing.assert_array_equal(display.loss_line_.get_xdata(), epochs)
    np.testing.assert_array_equal(display.loss_line_.get_ydata(), history["loss"])
    np.testing.assert_array_equal(display.loss_line_.get_ydata(), regressor.loss_curve_)
    np.testing.assert_array_equal(display.val_loss_line_.get_xdata(), epochs)
    np.testing.assert_array_equal(display.val_loss_line_.get_ydata(), history["val_loss"])
    # The score has its own axis, right of the losses.
    assert display.val_score_line_.axes is display.score_ax_ is not display.ax_
    np.testing.assert_array_equal(display.val_score_line_.get_ydata(), history["val_score"])
    assert display.score_ax_.get_ylabel() == "validation R²"
    assert display.lines_ == [display.loss_line_, display.val_loss_line_, display.val_score_line_]
    assert display.figure_ is display.ax_.figure
    assert display.ax_.get_xlabel() == "epoch" and display.ax_.get_title() == "LSTMRegressor"
    # Nothing recorded, nothing marked.
    assert display.lr_change_lines_ == [] and display.best_epoch_line_ is None
    assert len(display.lr_change_epochs_) == 0


def test_training_loss_only_and_a_given_axes():
    X, y = make_first_value_sequences(n_samples=60, timesteps=6, random_state=0)
    model = LSTMClassifier(hidden_layer_sizes=4, max_iter=3, random_state=0).fit(X, y)
    fig, ax = plt.subplots()
    display = LossCurveDisplay.from_estimator(model, ax=ax, name="run 1", yscale="log")
    assert display.ax_ is ax and display.figure_ is fig
    assert display.val_loss_line_ is None and display.val_score_line_ is None
    assert display.score_ax_ is None and display.lines_ == [display.loss_line_]
    np.testing.assert_array_equal(display.loss_line_.get_ydata(), model.loss_curve_)
    assert ax.get_title() == "run 1" and ax.get_yscale() == "log"


def test_learning_rate_changes_and_best_epoch_are_marked(regressor):
    # Set by hand: the per-epoch rates of a schedule and the epoch restored.
    model = LSTMRegressor().set_params(**regressor.get_params())
    model.__dict__.update(regressor.__dict__)
    model.history_ = {**regressor.history_, "learning_rate": [1e-2, 1e-2, 5e-3, 5e-3, 5e-3, 1e-3]}
    model.best_epoch_ = 4
    display = LossCurveDisplay.from_estimator(model)
    np.testing.assert_array_equal(display.lr_change_epochs_, [3, 6])
    assert [tuple(line.get_xdata()) for line in display.lr_change_lines_] == [(3, 3), (6, 6)]
    assert tuple(display.best_epoch_line_.get_xdata()) == (4, 4)
    legend = display.score_ax_.get_legend()  # on the twin axes, drawn over the first
    assert [t.get_text() for t in legend.get_texts()] == [
        "training loss", "validation loss", "validation R²", "learning rate changed",
        "best epoch (4)",
    ]  # fmt: skip
    model.history_["learning_rate"] = [1e-2, 1e-3]  # not one per epoch: nothing marked
    with pytest.warns(UserWarning, match="learning rates for 2 of its 6 epochs"):
        display = LossCurveDisplay.from_estimator(model)
    assert display.lr_change_lines_ == [] and tuple(display.best_epoch_line_.get_xdata()) == (4, 4)


def test_wrappers_show_the_network_inside(regressor, forecaster):
    X, y = make_noisy_sine(n_samples=60, timesteps=6, random_state=1)
    pipe = make_pipeline(SequenceScaler(), LSTMRegressor(hidden_layer_sizes=3, max_iter=2))
    pipe.fit(X, y)
    display = LossCurveDisplay.from_estimator(pipe)
    np.testing.assert_array_equal(display.loss_line_.get_ydata(), pipe[-1].loss_curve_)
    display = LossCurveDisplay.from_estimator(forecaster)
    np.testing.assert_array_equal(
        display.loss_line_.get_ydata(), forecaster.estimator_.history_["loss"]
    )


def test_scikit_learns_mlp_has_a_loss_curve_too():
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(80, 3)), rng.normal(size=80)
    mlp = MLPRegressor(hidden_layer_sizes=4, max_iter=8, early_stopping=True, random_state=0)
    mlp.fit(X, y)
    display = LossCurveDisplay.from_estimator(mlp)
    np.testing.assert_array_equal(display.loss_line_.get_ydata(), mlp.loss_curve_)
    np.testing.assert_array_equal(display.val_score_line_.get_ydata(), mlp.validation_scores_)


def test_validation_of_part_of_the_epochs_is_drawn_where_it_was_recorded(regressor):
    model = LSTMRegressor().set_params(**regressor.get_params())
    model.__dict__.update(regressor.__dict__)
    n = len(regressor.history_["loss"])
    model.history_ = {
        **regressor.history_,
        "loss": regressor.history_["loss"] + [0.5, 0.4],
        "learning_rate": regressor.history_["learning_rate"] + [regressor.learning_rate_] * 2,
    }
    with pytest.warns(UserWarning, match=f"validated {n} of its {n + 2} epochs"):
        display = LossCurveDisplay.from_estimator(model)
    np.testing.assert_array_equal(display.val_loss_line_.get_xdata(), np.arange(1, n + 1))
    model.history_["val_epoch"] = list(range(3, n + 3))  # where a history says so
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        display = LossCurveDisplay.from_estimator(model)
    np.testing.assert_array_equal(display.val_loss_line_.get_xdata(), np.arange(3, n + 3))


def test_loss_curve_errors(regressor):
    with pytest.raises(NotFittedError):
        LossCurveDisplay.from_estimator(LSTMRegressor())
    with pytest.raises(NotFittedError):
        LossCurveDisplay.from_estimator(make_pipeline(LSTMRegressor()))
    with pytest.raises(TypeError, match=r"trained epoch by epoch.*LinearRegression has none"):
        LossCurveDisplay.from_estimator(LinearRegression().fit([[0.0], [1.0]], [0.0, 1.0]))
    with pytest.raises(TypeError, match="expects a fitted estimator; got ndarray"):
        LossCurveDisplay.from_estimator(np.zeros(3))
    model = LSTMRegressor().set_params(**regressor.get_params())
    model.__dict__.update(regressor.__dict__)
    model.history_ = {"loss": [], "seconds": []}
    with pytest.raises(ValueError, match="no recorded epoch"):
        LossCurveDisplay.from_estimator(model)
    with pytest.raises(ValueError, match="best_epoch must be an epoch number from 1 to 2"):
        LossCurveDisplay(loss=[1.0, 0.5], best_epoch=3).plot()
    with pytest.raises(ValueError, match="learning_rate has 1 values for 2 epochs"):
        LossCurveDisplay(loss=[1.0, 0.5], learning_rate=[0.1]).plot()
    with pytest.raises(ValueError, match="one value per validated epoch"):
        LossCurveDisplay(loss=[1.0, 0.5], val_loss=[1.0, 0.5], val_score=[0.1]).plot()


def test_forecast_display_holds_forecast_and_interval(forecaster):
    y_test = np.arange(6.0) + 14
    display = ForecastDisplay.from_estimator(forecaster, y_test=y_test, coverage=0.8)
    n = len(forecaster.y_)
    np.testing.assert_array_equal(display.history_line_.get_xdata(), np.arange(n))
    np.testing.assert_array_equal(display.history_line_.get_ydata(), forecaster.y_)
    forecast = forecaster.predict()
    lower, upper = forecaster.predict_interval(coverage=0.8)
    np.testing.assert_array_equal(display.forecast_line_.get_xdata(), np.arange(n, n + 4))
    np.testing.assert_array_equal(display.forecast_line_.get_ydata(), forecast)
    # The band's outline runs along the upper and the lower bounds of each step.
    vertices = display.interval_.get_paths()[0].vertices
    for x, lo, hi in zip(range(n, n + 4), lower, upper, strict=True):
        assert any((vertices == (x, lo)).all(axis=1)) and any((vertices == (x, hi)).all(axis=1))
    assert vertices[:, 1].min() == lower.min() and vertices[:, 1].max() == upper.max()
    np.testing.assert_array_equal(display.test_line_.get_xdata(), np.arange(n, n + 6))
    np.testing.assert_array_equal(display.test_line_.get_ydata(), y_test)
    assert display.ax_.get_legend_handles_labels()[1] == [
        "observed", "LSTMForecaster", "80% interval", "actual",
    ]  # fmt: skip


def test_forecast_display_after_an_update_without_interval(forecaster):
    model = LSTMForecaster().set_params(**forecaster.get_params())
    model.__dict__.update(forecaster.__dict__)
    model.update(np.array([14.2, 14.5]))
    display = ForecastDisplay.from_estimator(model, coverage=None, horizon=2, n_history=10)
    np.testing.assert_array_equal(display.history_line_.get_ydata(), model.y_[-10:])
    n = len(model.y_)
    np.testing.assert_array_equal(display.history_line_.get_xdata(), np.arange(n - 10, n))
    np.testing.assert_array_equal(display.forecast_line_.get_ydata(), model.predict(2))
    assert display.interval_ is None and display.test_line_ is None


@pytest.mark.parametrize("freq", ["MS", "period"])
def test_forecast_display_puts_dates_on_the_x_axis(freq):
    if freq == "period":
        index = pd.period_range("2001-01", periods=60, freq="M")
    else:
        index = pd.date_range("2001-01-01", periods=60, freq=freq)
    t = np.arange(60)
    y = pd.Series(5 + np.sin(2 * np.pi * t / 12), index=index)
    model = LSTMForecaster(window=12, horizon=3, hidden_layer_sizes=3, max_iter=2, random_state=0)
    model.fit(y[:54])
    display = ForecastDisplay.from_estimator(model, y_test=y[54:], coverage=None)
    dates = index.to_timestamp() if freq == "period" else index
    np.testing.assert_array_equal(display.history_line_.get_xdata(), dates[:54].to_numpy())
    np.testing.assert_array_equal(display.forecast_line_.get_xdata(), dates[54:57].to_numpy())
    np.testing.assert_array_equal(display.test_line_.get_xdata(), dates[54:].to_numpy())
    np.testing.assert_array_equal(display.test_line_.get_ydata(), y[54:].to_numpy())
    # A y_test without dates goes at the periods after the series.
    display = ForecastDisplay.from_estimator(model, y_test=y[54:].to_numpy(), coverage=None)
    np.testing.assert_array_equal(display.test_line_.get_xdata(), dates[54:].to_numpy())


def test_forecast_display_errors(forecaster, regressor):
    with pytest.raises(NotFittedError):
        ForecastDisplay.from_estimator(LSTMForecaster())
    with pytest.raises(TypeError, match="expects an LSTMForecaster; got LSTMRegressor"):
        ForecastDisplay.from_estimator(regressor)
    with pytest.raises(ValueError, match="horizon=9 is more than the 4 steps"):
        ForecastDisplay.from_estimator(forecaster, horizon=9)
    with pytest.raises(ValueError, match="n_history must be a positive integer"):
        ForecastDisplay(y=[1.0, 2.0], forecast=[3.0]).plot(n_history=0)
    with pytest.raises(ValueError, match="lower and upper need one value per forecast step"):
        ForecastDisplay(y=[1.0, 2.0], forecast=[3.0], lower=[2, 1], upper=[4, 5]).plot()


def test_forecast_display_continues_a_numeric_index():
    y = pd.Series(np.sin(np.arange(60) / 3), index=pd.RangeIndex(100, 220, 2))
    model = LSTMForecaster(window=8, horizon=3, hidden_layer_sizes=3, max_iter=2, random_state=0)
    model.fit(y)
    display = ForecastDisplay.from_estimator(model, y_test=np.zeros(4), coverage=None)
    np.testing.assert_array_equal(display.history_line_.get_xdata(), y.index.to_numpy())
    np.testing.assert_array_equal(display.forecast_line_.get_xdata(), [220, 222, 224])
    np.testing.assert_array_equal(display.test_line_.get_xdata(), [220, 222, 224, 226])
