"""The learning-rate schedule, the stopping rule, validation data and the convergence warning.

Most tests script the losses an epoch reports (a fake ``_train_epoch``), so the
epochs where the rate changes and where training stops are known exactly; the
synthetic task at the end checks the same rules on real training.
"""

import copy
import pickle
import warnings

import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import log_loss
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer
from sklearn.utils._param_validation import InvalidParameterError

import lstmlearn
from lstmlearn import LSTMClassifier, LSTMForecaster, LSTMGenerator, LSTMRegressor, LSTMSeq2Seq
from lstmlearn.datasets import make_first_value_sequences

FAST = dict(hidden_layer_sizes=4, random_state=0, n_jobs=1)


def data(n=40, steps=5, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, steps, 2))
    return X, X[:, :, 0].sum(axis=1)


def scripted(monkeypatch, cls, losses, val_losses=None, val_scores=None):
    """Make `cls`'s epochs report `losses` (and validation `val_losses`, `val_scores`).

    Each epoch also writes its 1-based number into every weight, so the weights
    say which epoch they come from.
    """
    epochs = iter(range(len(losses)))
    done = []

    def train_epoch(self, train):
        k = next(epochs)
        done.append(k)
        self._params[...] = k + 1
        return "ok", losses[k], self._opt_step + 1

    def validation_metrics(self, val):
        k = done[-1]
        return val_losses[k], val_scores[k]

    monkeypatch.setattr(cls, "_train_epoch", train_epoch)
    if val_losses is not None:
        monkeypatch.setattr(cls, "_validation_metrics", validation_metrics)


def expected_rates(losses, lr, factor, patience, min_lr, tol=1e-4):
    """Keras' ReduceLROnPlateau (min mode, min_delta=tol, cooldown 0), written out,
    starting once the loss is 10% below its first value."""
    rates, best, wait, first, left = [], np.inf, 0, None, False
    for loss in losses:
        rates.append(lr)
        first = loss if first is None else first
        left = left or loss < 0.9 * first
        if not left:
            continue
        if loss < best - tol:
            best, wait = loss, 0
            continue
        wait += 1
        if wait >= patience and lr > min_lr:
            lr, wait = max(lr * factor, min_lr), 0
    return rates


def fit_quietly(model, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return model.fit(*args, **kwargs)


# -- the schedule ---------------------------------------------------------------------


def test_plateau_reduces_the_rate_after_patience_epochs(monkeypatch):
    losses = [1.0, 0.8, 0.7, 0.7, 0.7, 0.7, 0.6, 0.6, 0.6, 0.6, 0.6, 0.6, 0.6, 0.6, 0.6]
    scripted(monkeypatch, LSTMRegressor, losses)
    X, y = data()
    model = LSTMRegressor(
        learning_rate=0.01,
        lr_factor=0.5,
        lr_patience=3,
        min_learning_rate=0.001,
        max_iter=len(losses),
        n_iter_no_change=100,
        **FAST,
    )
    fit_quietly(model, X, y)
    rates = model.history_["learning_rate"]
    # epochs 4-6 do not improve: epoch 7 runs at half the rate; 8-10 again.
    assert rates[:6] == [0.01] * 6
    assert rates[6:10] == [0.005] * 4
    assert rates[10:13] == [0.0025] * 3
    assert rates == pytest.approx(expected_rates(losses, 0.01, 0.5, 3, 0.001))
    assert model.learning_rate_ == pytest.approx(0.00125)


def test_no_reduction_before_the_loss_leaves_its_initial_plateau(monkeypatch):
    # At chance level for 30 epochs (within 10% of the first epoch), then learning.
    losses = [0.693] * 15 + [0.66] * 15 + [0.3, 0.1] + [0.1] * 8
    scripted(monkeypatch, LSTMClassifier, losses)
    X, y = data()
    model = LSTMClassifier(
        lr_factor=0.5, lr_patience=3, n_iter_no_change=2, max_iter=len(losses), **FAST
    )
    fit_quietly(model, X, y > 0)
    rates = model.history_["learning_rate"]
    assert rates[:33] == [0.001] * 33  # neither reduced nor stopped in the plateau
    assert rates == pytest.approx(expected_rates(losses, 0.001, 0.5, 3, 1e-5))
    assert rates[-1] < 0.001 and model._plateau_left and model._first_loss == 0.693


def test_rate_never_goes_below_min_learning_rate(monkeypatch):
    losses = [10.0] + [1.0] * 29
    scripted(monkeypatch, LSTMRegressor, losses)
    X, y = data()
    model = LSTMRegressor(
        learning_rate=0.01,
        lr_factor=0.1,
        lr_patience=2,
        min_learning_rate=0.0005,
        max_iter=30,
        n_iter_no_change=100,
        **FAST,
    )
    fit_quietly(model, X, y)
    rates = model.history_["learning_rate"]
    assert min(rates) == pytest.approx(0.0005)
    assert rates[:7] == pytest.approx([0.01] * 4 + [0.001] * 2 + [0.0005])


def test_the_engine_is_given_the_scheduled_rate(monkeypatch):
    X, y = data()
    seen = []
    original = LSTMRegressor._optimizer_args

    def spy(self):
        args = original(self)
        seen.append(args[1])
        return args

    monkeypatch.setattr(LSTMRegressor, "_optimizer_args", spy)
    model = LSTMRegressor(
        learning_rate=0.01, lr_patience=1, tol=10.0, max_iter=30, n_iter_no_change=100, **FAST
    )
    fit_quietly(model, X, y * 10)  # tol=10: once the loss has dropped 10%, each epoch halves
    rates = model.history_["learning_rate"]
    assert seen == pytest.approx(rates)
    assert rates[0] == 0.01 and rates[-1] < 0.01


def test_constant_schedule_keeps_the_rate(monkeypatch):
    scripted(monkeypatch, LSTMRegressor, [10.0] + [1.0] * 7)
    X, y = data()
    model = LSTMRegressor(
        lr_schedule="constant", lr_patience=1, max_iter=8, n_iter_no_change=100, **FAST
    )
    fit_quietly(model, X, y)
    assert model.history_["learning_rate"] == [0.001] * 8 and model.learning_rate_ == 0.001


def test_schedule_monitors_the_validation_loss(monkeypatch):
    losses = list(np.linspace(1.0, 0.5, 12))  # training keeps improving
    val_losses = [1.0, 0.8] + [0.8] * 10  # validation does not
    scripted(monkeypatch, LSTMRegressor, losses, val_losses, np.linspace(0, 0.5, 12))
    X, y = data()
    model = LSTMRegressor(
        learning_rate=0.01,
        lr_factor=0.5,
        lr_patience=3,
        early_stopping=True,
        max_iter=12,
        n_iter_no_change=100,
        **FAST,
    )
    fit_quietly(model, X, y)
    assert model.history_["learning_rate"] == pytest.approx(
        expected_rates(val_losses, 0.01, 0.5, 3, 1e-5)
    )
    assert model.history_["learning_rate"][5] == pytest.approx(0.005)


# -- the stopping rule ------------------------------------------------------------------


def test_plateau_rule_stops_only_at_the_minimum_rate(monkeypatch):
    losses = [1.0, 0.5] + [0.5] * 60
    scripted(monkeypatch, LSTMRegressor, losses)
    X, y = data()
    model = LSTMRegressor(
        learning_rate=0.004,
        lr_factor=0.5,
        lr_patience=5,
        min_learning_rate=0.001,
        n_iter_no_change=3,
        max_iter=len(losses),
        **FAST,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)  # it stops: no warning
        model.fit(X, y)
    rates = model.history_["learning_rate"]
    # Two reductions (after epochs 7 and 12), then n_iter_no_change + 1 epochs
    # without improvement at the minimum rate.
    assert rates == [0.004] * 7 + [0.002] * 5 + [0.001] * 4
    assert model.n_iter_ == 16


def test_plateau_rule_does_not_stop_in_the_initial_plateau(monkeypatch):
    scripted(monkeypatch, LSTMClassifier, [0.693] * 40)
    X, y = data()
    model = LSTMClassifier(min_learning_rate=0.001, n_iter_no_change=3, max_iter=40, **FAST)
    with pytest.warns(ConvergenceWarning, match="initial plateau"):
        model.fit(X, y > 0)
    assert model.n_iter_ == 40  # the constant rule would have stopped after 5


def test_constant_schedule_keeps_scikit_learns_rule(monkeypatch):
    losses = [1.0, 0.9] + [0.9] * 60
    scripted(monkeypatch, LSTMRegressor, losses)
    X, y = data()
    model = LSTMRegressor(lr_schedule="constant", n_iter_no_change=3, max_iter=60, **FAST)
    model.fit(X, y)
    assert model.n_iter_ == 2 + 4  # as MLPRegressor: stop when the count exceeds 3


def test_min_rate_at_or_above_the_rate_is_the_constant_rule_after_the_plateau(monkeypatch):
    scripted(monkeypatch, LSTMRegressor, [1.0, 0.5] + [0.5] * 60)
    X, y = data()
    model = LSTMRegressor(min_learning_rate=0.001, n_iter_no_change=3, max_iter=60, **FAST)
    model.fit(X, y)
    assert model.n_iter_ == 6 and model.history_["learning_rate"] == [0.001] * 6


def test_stopping_rule_watches_the_validation_score(monkeypatch):
    n = 30
    losses = list(np.linspace(1.0, 0.1, n))  # training keeps improving
    scores = [0.1, 0.2, 0.3] + [0.3] * (n - 3)
    scripted(monkeypatch, LSTMRegressor, losses, [1.0, 0.5] + [0.5] * (n - 2), scores)
    X, y = data()
    model = LSTMRegressor(
        learning_rate=0.002,
        lr_factor=0.5,
        lr_patience=2,
        min_learning_rate=0.001,
        n_iter_no_change=2,
        early_stopping=True,
        max_iter=n,
        **FAST,
    )
    model.fit(X, y)
    # the val loss does not improve after epoch 2: reduced after epoch 4; then
    # 3 epochs without a better score at the minimum rate.
    assert model.history_["learning_rate"] == [0.002] * 4 + [0.001] * 3
    assert model.n_iter_ == 7


def test_restore_best_weights_without_validation_keeps_the_lowest_loss(monkeypatch):
    losses = [1.0, 0.5, 0.2, 0.9, 0.8]  # a spike after the best epoch
    scripted(monkeypatch, LSTMRegressor, losses)
    X, y = data()
    model = LSTMRegressor(restore_best_weights=True, max_iter=5, **FAST)
    fit_quietly(model, X, y)
    assert model.best_epoch_ == 3
    assert (model._params == 3).all()


def test_restore_best_weights_with_validation_and_best_epoch(monkeypatch):
    losses = [1.0, 0.9, 0.8, 0.7, 0.6]
    scores = [0.1, 0.5, 0.4, 0.3, 0.2]
    scripted(monkeypatch, LSTMRegressor, losses, [1.0] * 5, scores)
    X, y = data()
    model = LSTMRegressor(restore_best_weights=True, early_stopping=True, max_iter=5, **FAST)
    fit_quietly(model, X, y)
    assert model.best_epoch_ == 2 and (model._params == 2).all()
    monkeypatch.undo()
    plain = LSTMRegressor(max_iter=2, restore_best_weights=False, **FAST).fit(X, y)
    assert plain.best_epoch_ is None


def test_best_epoch_counts_the_epochs_of_earlier_fits(monkeypatch):
    X, y = data()
    model = LSTMRegressor(max_iter=3, lr_schedule="constant", **FAST).fit(X, y)
    scripted(monkeypatch, LSTMRegressor, [5.0, 1.0, 2.0])
    model.set_params(warm_start=True, restore_best_weights=True)
    fit_quietly(model, X, y)
    assert model.n_iter_ == 6 and model.best_epoch_ == 5


# -- the rate is fitted state ----------------------------------------------------------------


@pytest.mark.parametrize("cls", [LSTMRegressor, LSTMClassifier])
def test_by_default_a_fit_ends_on_its_lowest_training_loss(monkeypatch, cls):
    """A spike in the last epochs is not kept (measured: benchmarks/README.md)."""
    scripted(monkeypatch, cls, [1.0, 0.5, 0.9, 1.2])
    X, y = data()
    model = cls(max_iter=4, **FAST)
    assert model.restore_best_weights is True
    fit_quietly(model, X, y if cls is LSTMRegressor else y > 0)
    assert model.best_epoch_ == 2 and (model._params == 2).all()
    assert model.loss_curve_ == [1.0, 0.5, 0.9, 1.2] and model.n_iter_ == 4


def reduced_model(monkeypatch):
    """A model whose rate was halved once: 0.01 in its 3 epochs, 0.005 next."""
    X, y = data()
    scripted(monkeypatch, LSTMRegressor, [10.0, 1.0, 1.0])
    model = LSTMRegressor(learning_rate=0.01, lr_factor=0.5, lr_patience=1, max_iter=3, **FAST)
    fit_quietly(model, X, y)
    monkeypatch.undo()
    model._init_parameters(np.random.RandomState(0))  # real weights for real epochs next
    model._opt_step = 3
    assert model.history_["learning_rate"] == [0.01] * 3
    assert model.learning_rate_ == pytest.approx(0.005)
    return model, X, y


def test_warm_start_and_partial_fit_continue_at_the_reached_rate(monkeypatch):
    model, X, y = reduced_model(monkeypatch)
    model.set_params(warm_start=True, max_iter=1)
    fit_quietly(model, X, y)
    assert model.history_["learning_rate"][-1] == pytest.approx(0.005)
    model.partial_fit(X, y)
    assert model.history_["learning_rate"][-1] == pytest.approx(0.005)
    assert model.learning_rate_ == pytest.approx(0.005)  # partial_fit steps no schedule
    assert len(model.history_["learning_rate"]) == model.n_iter_ == 5


def test_a_new_learning_rate_restarts_the_schedule_and_a_fresh_fit_too(monkeypatch):
    model, X, y = reduced_model(monkeypatch)
    model.set_params(warm_start=True, learning_rate=0.02, max_iter=1)
    fit_quietly(model, X, y)
    assert model.history_["learning_rate"][-1] == 0.02
    model.set_params(warm_start=False, learning_rate=0.01)
    fit_quietly(model, X, y)
    assert model.history_["learning_rate"] == [0.01]
    assert not model._plateau_left  # a fresh fit starts in its plateau


def test_a_failed_refit_restores_the_rate_and_its_history(monkeypatch):
    model, X, y = reduced_model(monkeypatch)
    before = copy.deepcopy(model.__getstate__())

    def boom(est, logs):
        raise RuntimeError("callback failed")

    model.set_params(warm_start=True, max_iter=5, callbacks=boom)
    with pytest.raises(RuntimeError):
        model.fit(X, y)
    names = ("learning_rate_", "_initial_learning_rate", "best_epoch_", "n_iter_", "_plateau_left")
    for name in names:
        assert model.__dict__[name] == before[name], name
    assert model.history_ == before["history_"]
    with pytest.raises(ValueError, match="validation_data"):
        model.fit(X, y, validation_data=(X[:, :, :1], y))
    assert model.learning_rate_ == before["learning_rate_"]
    # a fresh fit that fails gives back the reduced rate, not the reset one
    model.set_params(warm_start=False, callbacks=None)
    with pytest.raises(ValueError):
        model.fit(X, y, validation_data=(X, y[:-1]))
    assert model.learning_rate_ == before["learning_rate_"] and model.n_iter_ == 3


def test_an_interrupt_keeps_the_rate_of_the_last_completed_epoch(monkeypatch):
    model, X, y = reduced_model(monkeypatch)
    calls = []
    original = LSTMRegressor._train_epoch

    def interrupted(self, train):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return original(self, train)

    monkeypatch.setattr(LSTMRegressor, "_train_epoch", interrupted)
    model.set_params(warm_start=True, max_iter=10, tol=10.0)
    with pytest.raises(KeyboardInterrupt):
        model.fit(X, y)
    # two epochs completed: the first improves (this fit's first), the second
    # does not, and the rate is halved
    assert model.n_iter_ == 5
    assert model.learning_rate_ == pytest.approx(0.0025)
    assert model.history_["learning_rate"] == pytest.approx([0.01] * 3 + [0.005] * 2)


def test_the_rate_and_best_epoch_survive_saving_and_pickling(monkeypatch, tmp_path):
    model = reduced_model(monkeypatch)[0]
    path = tmp_path / "m.safetensors"
    model.save(path)
    loaded = lstmlearn.load(path)
    again = pickle.loads(pickle.dumps(model))
    for other in (loaded, again):
        assert other.learning_rate_ == model.learning_rate_
        assert other.best_epoch_ == model.best_epoch_ == 2 and other._plateau_left
        assert other.history_["learning_rate"] == model.history_["learning_rate"]


def test_a_model_pickled_before_the_schedule_loads_and_keeps_its_rule(monkeypatch):
    model, X, y = reduced_model(monkeypatch)
    state = model.__getstate__()
    for name in (
        "lr_schedule",
        "lr_factor",
        "lr_patience",
        "min_learning_rate",
        "validation_split",
        "learning_rate_",
        "_initial_learning_rate",
        "best_epoch_",
        "_first_loss",
        "_plateau_left",
    ):
        state.pop(name)
    state["history_"].pop("learning_rate")
    old = LSTMRegressor.__new__(LSTMRegressor)
    old.__setstate__(state)
    assert old.lr_schedule == "constant" and old.best_epoch_ is None
    old.set_params(warm_start=True, max_iter=1)
    fit_quietly(old, X, y)
    assert old.history_["learning_rate"][-1] == old.learning_rate == 0.01
    assert np.isnan(old.history_["learning_rate"][:3]).all()
    assert old._plateau_left  # it had trained


def test_a_file_saved_before_the_schedule_loads(monkeypatch, tmp_path):
    from lstmlearn import _persist

    model, X, _ = reduced_model(monkeypatch)
    original = LSTMRegressor.__getstate__

    def old_state(self):
        state = original(self)
        for name in _persist._LATER:
            state.pop(name)
        return state

    monkeypatch.setattr(LSTMRegressor, "__getstate__", old_state)
    model.save(tmp_path / "old.safetensors")
    monkeypatch.undo()
    loaded = lstmlearn.load(tmp_path / "old.safetensors")
    np.testing.assert_array_equal(loaded.predict(X), model.predict(X))
    assert loaded.best_epoch_ is None


# -- validation data ---------------------------------------------------------------------


def test_validation_data_is_the_last_split():
    X, y = data(50)
    common = dict(max_iter=4, n_iter_no_change=100, **FAST)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        a = LSTMRegressor(**common).fit(X[:40], y[:40], validation_data=(X[40:], y[40:]))
        b = LSTMRegressor(
            early_stopping=True, validation_fraction=0.2, validation_split="last", **common
        ).fit(X, y)
    for key in ("loss", "val_loss", "val_score", "learning_rate"):
        assert a.history_[key] == b.history_[key], key
    np.testing.assert_array_equal(a._params, b._params)


def test_validation_data_metrics_are_those_of_the_held_out_samples():
    X, y = first_sign = make_first_value_sequences(60, 8, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        # The last epoch's metrics are the fitted model's when it keeps that epoch.
        model = LSTMClassifier(max_iter=3, restore_best_weights=False, **FAST).fit(
            X[:40], y[:40], validation_data=(X[40:], y[40:])
        )
    assert first_sign[0] is X
    proba = model.predict_proba(X[40:])
    assert model.history_["val_loss"][-1] == pytest.approx(
        log_loss(y[40:], proba, labels=model.classes_), rel=1e-5
    )
    assert model.validation_scores_[-1] == model.score(X[40:], y[40:])
    assert len(model.history_["val_score"]) == model.n_iter_ == 3


def test_validation_split_last_holds_out_the_last_samples(monkeypatch):
    X, y = data(40)
    held = {}

    def spy(self, val):
        held["x"] = val[0].x.copy()
        return 0.0, 0.0

    monkeypatch.setattr(LSTMRegressor, "_validation_metrics", spy)
    LSTMRegressor(
        early_stopping=True, validation_fraction=0.25, validation_split="last", max_iter=1, **FAST
    ).fit(X, y)
    np.testing.assert_array_equal(held["x"], X[30:].astype(np.float32))
    LSTMRegressor(early_stopping=True, validation_fraction=0.25, max_iter=1, **FAST).fit(X, y)
    assert held["x"].shape == (10, 5, 2) and not np.array_equal(held["x"], X[30:])


def test_validation_data_with_sample_weights_and_bad_validation_data():
    X, y = data(40)
    w = np.ones(10)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        a = LSTMRegressor(max_iter=2, **FAST).fit(X[:30], y[:30], validation_data=(X[30:], y[30:]))
        b = LSTMRegressor(max_iter=2, **FAST).fit(
            X[:30], y[:30], validation_data=(X[30:], y[30:], w)
        )
    assert a.history_["val_loss"] == b.history_["val_loss"]
    model = LSTMRegressor(max_iter=2, **FAST)
    with pytest.raises(ValueError, match=r"validation_data must be a tuple .* got a ndarray"):
        model.fit(X, y, validation_data=X)
    with pytest.raises(ValueError, match=r"validation_data: .*features"):
        model.fit(X, y, validation_data=(X[:, :, :1], y))
    with pytest.raises(ValueError, match=r"validation_data: X and y have different numbers"):
        model.fit(X, y, validation_data=(X, y[:-1]))
    with pytest.raises(ValueError, match=r"validation_data: y has labels \['c'\]"):
        LSTMClassifier(max_iter=1, **FAST).fit(
            X, np.where(y > 0, "a", "b"), validation_data=(X[:3], ["a", "b", "c"])
        )


def test_validation_data_passes_through_pipeline_and_grid_search():
    X, y = data(40)
    pipe = make_pipeline(FunctionTransformer(), LSTMRegressor(max_iter=2, **FAST))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        pipe.fit(X, y, lstmregressor__validation_data=(X[:5], y[:5]))
        assert len(pipe[-1].history_["val_loss"]) == 2
        search = GridSearchCV(
            LSTMRegressor(max_iter=2, **FAST), {"learning_rate": [0.001, 0.01]}, cv=2
        )
        search.fit(X, y, validation_data=(X[:5], y[:5]))
    assert len(search.best_estimator_.history_["val_loss"]) == 2


def test_generator_and_seq2seq_take_validation_data():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        gen = LSTMGenerator(8, seq_length=5, max_iter=2, random_state=0).fit(
            "abcabcabd" * 4, validation_data="abcab"
        )
        assert len(gen.validation_scores_) == 2 and gen.validation_scores_[-1] < 0
        with pytest.raises(ValueError, match="validation_data: Characters"):
            gen.fit("abcabc", validation_data="xyz")
        rng = np.random.default_rng(0)
        X = rng.integers(0, 5, size=(30, 4))
        s2s = LSTMSeq2Seq(8, max_iter=3, restore_best_weights=True, random_state=0)
        s2s.fit(X[:20], X[:20, ::-1], validation_data=(X[20:], X[20:, ::-1]))
    assert (
        s2s.validation_scores_[-1] == pytest.approx(s2s.score(X[20:], X[20:, ::-1]))
        or s2s.best_epoch_ != 3
    )
    assert s2s.best_validation_score_ == max(s2s.validation_scores_)
    assert len(s2s.history_["val_loss"]) == 3


def test_forecaster_holds_out_the_last_windows(monkeypatch):
    held = {}
    original = LSTMRegressor._split_validation

    def spy(self, seqs, y_enc, weights, rng):
        train, val = original(self, seqs, y_enc, weights, rng)
        held["train"], held["val"] = train[1], val[1]
        return train, val

    monkeypatch.setattr(LSTMRegressor, "_split_validation", spy)
    t = np.arange(120.0)
    f = LSTMForecaster(window=12, horizon=3, max_iter=2, early_stopping=True, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        f.fit(np.sin(t / 5) + t / 50)
    assert f.estimator_.validation_split == "last"
    n = len(held["train"]) + len(held["val"])
    assert len(held["val"]) == int(np.ceil(0.1 * n))
    z = f.transform_.transform(np.sin(t / 5) + t / 50)
    np.testing.assert_allclose(held["val"][-1], z[-3:])  # the latest window is held out


# -- the convergence warning -------------------------------------------------------------


def test_warns_when_the_loss_still_improves_at_max_iter(monkeypatch):
    scripted(monkeypatch, LSTMRegressor, list(np.linspace(1.0, 0.5, 20)))
    X, y = data()
    with pytest.warns(ConvergenceWarning, match=r"maximum iterations \(20\)"):
        LSTMRegressor(max_iter=20, **FAST).fit(X, y)


def test_no_warning_when_the_loss_has_flattened_at_max_iter(monkeypatch):
    # Flat for n_iter_no_change + 1 epochs: scikit-learn's MLP would have
    # stopped; the plateau rule did not only because the rate could still fall.
    scripted(monkeypatch, LSTMRegressor, [1.0, 0.5] + [0.5] * 18)
    X, y = data()
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        LSTMRegressor(max_iter=20, **FAST).fit(X, y)


def test_no_warning_for_a_budget_shorter_than_the_patience(monkeypatch):
    scripted(monkeypatch, LSTMRegressor, list(np.linspace(1.0, 0.5, 21)))
    X, y = data()
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        LSTMRegressor(max_iter=10, **FAST).fit(X, y)  # 10 epochs: a fixed budget
    with pytest.warns(ConvergenceWarning):
        LSTMRegressor(max_iter=11, **FAST).fit(X, y)  # 11: the rule could have fired


def test_no_warning_from_partial_fit_or_a_stopping_callback():
    X, y = data()
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        model = LSTMRegressor(max_iter=5, callbacks=lambda est, logs: True, **FAST).fit(X, y)
        model.partial_fit(X, y)


# -- parameters ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "params",
    [
        dict(lr_schedule="cosine"),
        dict(lr_factor=1.0),
        dict(lr_factor=0.0),
        dict(lr_patience=0),
        dict(min_learning_rate=-1e-3),
        dict(min_learning_rate=0.0),
        dict(validation_split="first"),
    ],
)
@pytest.mark.parametrize("cls", [LSTMRegressor, LSTMClassifier, LSTMGenerator])
def test_bad_schedule_parameters_are_refused(cls, params):
    X, y = data()
    est = cls(**params)
    name = next(iter(params))
    with pytest.raises(InvalidParameterError, match=f"'{name}' parameter of {cls.__name__}"):
        est.fit("abcabc") if cls is LSTMGenerator else est.fit(X, y > 0)


@pytest.mark.parametrize("cls", [LSTMSeq2Seq, LSTMForecaster])
def test_bad_schedule_parameters_are_refused_by_the_others(cls):
    with pytest.raises(InvalidParameterError, match="'lr_factor' parameter"):
        cls(lr_factor=2).fit(np.zeros((4, 3)), np.zeros((4, 3)))


# -- a task with a known plateau ------------------------------------------------------------


@pytest.mark.slow
def test_plateau_rule_waits_out_the_initial_plateau_and_then_stops():
    """The label is the sign of the first of 60 steps: the loss sits at chance first.

    Measured (this seed): the constant rule stops at epoch 46, at chance; with
    the plateau rule the loss leaves its plateau near epoch 90, the model
    learns, and training stops once the rate is at its minimum.
    """
    X, y = make_first_value_sequences(n_samples=300, timesteps=60, random_state=0)
    # batch_size=32 as measured: the automatic batch of 13 (16 updates an
    # epoch) leaves the plateau before the constant rule gives up.
    params = dict(hidden_layer_sizes=8, max_iter=300, batch_size=32, random_state=0, n_jobs=1)
    old = LSTMClassifier(lr_schedule="constant", **params).fit(X[:200], y[:200])
    new = LSTMClassifier(**params).fit(X[:200], y[:200])
    chance = np.log(2)
    assert min(old.loss_curve_) > 0.9 * chance  # the old rule stopped in the plateau
    assert old.score(X[200:], y[200:]) < 0.7
    assert min(new.loss_curve_) < 0.1 * chance  # the new one waited it out
    assert new.score(X[200:], y[200:]) > 0.95
    assert new.n_iter_ < 300 and new.learning_rate_ == new.min_learning_rate  # and stopped
