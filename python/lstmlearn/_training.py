"""The training loop every estimator shares, run as a transaction on its fitted state.

An estimator supplies what differs between models:

- ``_prepare_fit()``: check the input, build the network and the state to
  train, and return a :class:`FitPlan` (it may set fitted attributes freely:
  they are undone if the fit fails);
- ``_train_epoch(train)``: one epoch in the engine, ``(status, loss, step)``;
- ``_validation_metrics(validation)``: ``(loss, score)`` on held-out data.

Everything else is here, once: the epoch loop, the learning-rate schedule, the
stopping rule, validation and best weights, callbacks, progress, the
convergence warning, and what a failure leaves behind.

The schedule and the stopping rule (``lr_schedule='plateau'``, the default):

- the monitored quantity is the validation loss when there is validation data,
  else the training loss; after ``lr_patience`` epochs without an improvement
  of more than ``tol``, the rate is multiplied by ``lr_factor`` (not below
  ``min_learning_rate``), as Keras' ``ReduceLROnPlateau``;
- training stops once the rate is at ``min_learning_rate`` and the stopping
  quantity (the validation score, else the training loss) has not improved by
  more than ``tol`` for ``n_iter_no_change`` epochs at that rate, as
  scikit-learn's MLP stops with ``learning_rate='adaptive'``;
- neither starts before the monitored loss has left its initial plateau: until
  it falls ``PLATEAU_DROP`` (10%) below its first epoch's value, the rate
  stays and training goes on (up to ``max_iter``). A loss at chance level for
  many epochs (a long-memory task) is the start of training, not its end;
  reducing the rate there keeps it there (measured: see the README).
  With ``lr_schedule='constant'`` the rate never changes and training stops
  after ``n_iter_no_change`` epochs without improvement (scikit-learn's rule).

A fit that ends at ``max_iter`` warns (``ConvergenceWarning``) only if the
stopping quantity still improved by more than ``tol`` within its last
``n_iter_no_change`` epochs, or the loss never left its initial plateau; and
only after more than ``n_iter_no_change`` epochs (a shorter ``max_iter`` is a
fixed budget). scikit-learn's MLP warns whenever ``max_iter`` ends the fit;
a loss that has flattened, with a rate the schedule could still reduce, has
converged as far as its rule would tell.

The current rate, ``learning_rate_``, is fitted state: ``warm_start`` and
``partial_fit`` continue at it (``partial_fit`` trains one epoch and steps
neither the schedule nor the stopping rule), and a new ``learning_rate``
parameter restarts it.

A fit works on private copies of the estimator's fitted state (copy on write),
so the arrays and lists it had, which copies of the estimator or a memory map
may share, are never written. If the fit raises, the estimator gets that state
back exactly. The one exception is Ctrl-C or a non-finite loss after at least
one completed epoch: the estimator then keeps the state of its last completed
epoch, and the exception propagates.
"""

from __future__ import annotations

import copy
import itertools
import sys
import time
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.exceptions import ConvergenceWarning

__all__ = [
    "FitPlan",
    "aligned_copy",
    "batch_size",
    "fit",
    "forget_history",
    "make_rng",
    "params_written",
    "start_history",
]

# What the loop records; a fresh fit starts them anew.
_HISTORY = (
    "loss_curve_",
    "history_",
    "best_loss_",
    "validation_scores_",
    "best_validation_score_",
    "n_iter_",
    "t_",
    "learning_rate_",
    "best_epoch_",
    "_initial_learning_rate",
    "_first_loss",
    "_plateau_left",
)

# The initial plateau ends when the monitored loss falls this fraction below
# its value in the first epoch (see the module docstring).
PLATEAU_DROP = 0.1

# Tokens of parameter values: a new one whenever an estimator's parameter array
# is replaced or written, never reused, so the engine's packed-weight cache
# cannot mistake new values for old ones (as an array address can).
_versions = itertools.count(1)


@dataclass
class FitPlan:
    """What ``_prepare_fit`` hands the loop.

    Attributes
    ----------
    train : object
        The training data, as the estimator's ``_train_epoch`` takes it.
    n_samples : int
        Samples in ``train`` (for ``t_``).
    epochs : int
        Epochs to run at most.
    validation : object or None
        Held-out data for ``_validation_metrics``; None for none.
    """

    train: Any
    n_samples: int
    epochs: int
    validation: Any = None


def aligned_copy(a: np.ndarray) -> np.ndarray:
    """A writable copy of `a` starting on a 64-byte boundary.

    The engine copies unaligned parameters before each call (its results must
    not depend on where NumPy allocated them); aligned ones are used in place.
    """
    buf = np.empty(a.size * a.itemsize + 64, dtype=np.uint8)
    start = -buf.ctypes.data % 64
    out = buf[start : start + a.size * a.itemsize].view(a.dtype).reshape(a.shape)
    out[...] = a
    return out


# batch_size='auto': at least this many mini-batches an epoch, of at most
# AUTO_BATCH_MAX samples. On the small training sets of the UCR/UEA archive a
# batch of 32 gives one or two updates an epoch; 3-fold CV on eight training
# splits, four seeds, scored 0.760 mean accuracy with this rule against 0.698
# with 32 (benchmarks/README.md). From 497 samples on it is 32.
AUTO_BATCHES = 16
AUTO_BATCH_MAX = 32


def batch_size(value, n_samples: int) -> int:
    """The mini-batch size of an epoch over `n_samples` for the parameter `value`."""
    if value == "auto":
        return max(1, min(AUTO_BATCH_MAX, -(-n_samples // AUTO_BATCHES)))
    return int(value)


def make_rng(random_state) -> np.random.RandomState:
    """The generator of a fresh fit: seeded by `random_state` (drawing from it if a RandomState)."""
    if isinstance(random_state, np.random.RandomState):
        return np.random.RandomState(random_state.randint(2**31 - 1))
    return np.random.RandomState(random_state)


def params_written(est) -> None:
    """Give `est`'s parameter values a new version token (after any write)."""
    if "_params" in est.__dict__:
        est.__dict__["_params_version"] = next(_versions)


def forget_history(est) -> None:
    """Drop the records of earlier fits (a fresh fit, not a warm start)."""
    for name in _HISTORY:
        est.__dict__.pop(name, None)


# -- the fitted state ------------------------------------------------------------


def _is_state(name: str) -> bool:
    # Fitted attributes end in "_" and private ones start with it; the
    # estimator's parameters (the user's objects) are neither.
    return name.startswith("_") or name.endswith("_")


def _copy(name: str, value: object) -> object:
    # Fitted state is arrays, scalars, tuples, and lists and dicts of
    # immutable values; lists (the loss curve grows with every epoch) are
    # copied shallowly, which is cheap, rather than deep-copied.
    if name in ("_net", "_sampler"):  # engine objects: shared, never written by Python
        return value
    if isinstance(value, np.ndarray):
        return aligned_copy(value) if value.dtype.kind == "f" else value.copy()
    if isinstance(value, list):
        return list(value)
    if isinstance(value, dict):
        return {k: _copy(k, v) for k, v in value.items()}
    return copy.deepcopy(value)


def _state(est) -> dict[str, object]:
    """The fitted state by reference."""
    return {k: v for k, v in est.__dict__.items() if _is_state(k)}


def _copied_state(est) -> dict[str, object]:
    return {k: _copy(k, v) for k, v in est.__dict__.items() if _is_state(k)}


def _put_state(est, state: dict[str, object]) -> None:
    for name in [k for k in est.__dict__ if _is_state(k) and k not in state]:
        del est.__dict__[name]
    est.__dict__.update(state)


# -- the loop ----------------------------------------------------------------------


def fit(est, prepare, *, incremental: bool):
    """Run a fit of `est` as a transaction; see the module docstring.

    Parameters
    ----------
    est : estimator
        Provides ``_train_epoch``, ``_validation_metrics`` and the training
        parameters (``max_iter``, ``tol``, ``n_iter_no_change``, ...).
    prepare : callable
        ``prepare()`` checks the input, sets up the network and state on `est`
        and returns a :class:`FitPlan`.
    incremental : bool
        A ``partial_fit``: one epoch, no stopping rule, no convergence warning.

    Returns
    -------
    est
    """
    saved = _state(est)
    _put_state(est, _copied_state(est))  # train on copies: `saved` stays as it is
    params_written(est)
    checkpoint = None
    try:
        plan = prepare()
        _keep_precision(est)
        validation = plan.validation is not None
        start_history(est, validation)
        epochs_before = len(est.loss_curve_)
        _start_rate(est)
        est._no_improvement = 0
        best_params, best_epoch = None, None
        stopped = False
        since_improved = 0  # epochs since the stopping quantity last improved by tol
        schedule = _Plateau(est) if not incremental else None
        callbacks = _callbacks(est)
        restore = getattr(est, "restore_best_weights", False) and not incremental
        if not incremental:
            est.best_epoch_ = None
        best_of_fit = -np.inf  # this fit's best validation score, or -loss
        for epoch in range(plan.epochs):
            logs = _epoch(est, plan)
            improved = _improvement(est, logs, validation)
            value = logs["val_score"] if validation else -logs["loss"]
            if value > best_of_fit:
                best_of_fit = value
                if restore:
                    best_params, best_epoch = est._params.copy(), est.n_iter_
            since_improved = 0 if improved else since_improved + 1
            est._no_improvement = 0 if improved else est._no_improvement + 1
            monitored = logs["val_loss" if validation else "loss"]
            if schedule is not None and schedule.step(monitored):
                est._no_improvement = 0  # the new rate gets its own n_iter_no_change epochs
            if callbacks or epoch + 1 < plan.epochs:  # something may still fail
                checkpoint = _copied_state(est)  # this epoch is complete
            if any(bool(cb(est, logs)) for cb in callbacks):
                stopped = True
                break
            if not incremental and _should_stop(est):
                stopped = True
                if est.verbose:
                    what = "Validation score" if validation else "Training loss"
                    print(
                        f"{what} did not improve more than tol={est.tol} for "
                        f"{est.n_iter_no_change} consecutive epochs"
                        f"{_at_rate(est)}. Stopping.",
                        file=sys.stderr,
                    )
                break
    except BaseException as error:
        if checkpoint is not None and isinstance(error, (KeyboardInterrupt, FloatingPointError)):
            _put_state(est, checkpoint)
            params_written(est)
            if est.verbose and isinstance(error, KeyboardInterrupt):
                print(
                    f"\nInterrupted: keeping the weights of epoch {est.n_iter_}.", file=sys.stderr
                )
        else:
            _put_state(est, saved)
        raise
    if est.verbose == 1:
        print(file=sys.stderr)
    if best_params is not None:
        est._params[...] = best_params
        est.best_epoch_ = best_epoch
        params_written(est)
    # The convergence warning: see the module docstring.
    ran = len(est.loss_curve_) - epochs_before
    if not incremental and not stopped and ran > est.n_iter_no_change:
        what = "validation" if validation else "training"
        why = None
        if _schedule(est) != "constant" and not est._plateau_left:
            why = (
                f"the {what} loss never fell {PLATEAU_DROP:.0%} below its first epoch's "
                f"({est._first_loss:.4g}): training may still be in its initial plateau"
            )
        elif since_improved <= est.n_iter_no_change:
            why = (
                f"the {what} {'score' if validation else 'loss'} improved by more than "
                f"tol={est.tol} within the last {est.n_iter_no_change} epochs"
            )
        if why is not None:
            warnings.warn(
                f"Stochastic optimizer: maximum iterations ({est.max_iter}) reached and the "
                f"optimization hasn't converged yet: {why}. Raise max_iter.",
                ConvergenceWarning,
                stacklevel=5,
            )
    return est


def _keep_precision(est) -> None:
    """Keep the inference precision across fits, unless the model is no longer float32."""
    precision = est.__dict__.get("_inference_precision", "float32")
    if precision != "float32" and np.dtype(est._dtype) != np.float32:
        warnings.warn(
            f"inference precision {precision!r} needs a float32 model; this fit made a "
            f"{np.dtype(est._dtype).name} one, which predicts in 'float32'",
            UserWarning,
            stacklevel=5,
        )
        precision = "float32"
    est._inference_precision = precision


def _start_rate(est) -> None:
    """Set ``learning_rate_`` for this fit: carried over, unless the parameter changed."""
    initial = float(est.learning_rate)
    if (
        _schedule(est) == "constant"
        or "learning_rate_" not in est.__dict__
        or est.__dict__.get("_initial_learning_rate") != initial
    ):
        est.learning_rate_ = initial
    est._initial_learning_rate = initial
    if "best_epoch_" not in est.__dict__:
        est.best_epoch_ = None
    if "_plateau_left" not in est.__dict__:
        # A model trained before the plateau was tracked has left it.
        est._plateau_left = est.n_iter_ > 0
        est._first_loss = None


def _schedule(est) -> str:
    return getattr(est, "lr_schedule", "constant")


def _at_floor(est) -> bool:
    """Whether the schedule can reduce the rate no further."""
    if _schedule(est) == "constant":
        return True
    return est.learning_rate_ <= float(est.min_learning_rate) * (1 + 1e-9)


def _should_stop(est) -> bool:
    if est._no_improvement <= est.n_iter_no_change:
        return False
    return _schedule(est) == "constant" or (est._plateau_left and _at_floor(est))


def _at_rate(est) -> str:
    return "" if _schedule(est) == "constant" else f" at the minimum rate {est.learning_rate_:g}"


class _Plateau:
    """Reduce ``learning_rate_`` on a plateau of the monitored loss (Keras' ReduceLROnPlateau).

    Its counters live for one fit: a warm start compares losses of its own
    data only, and continues at the rate reached.
    """

    def __init__(self, est) -> None:
        self.est = est
        self.best = np.inf
        self.wait = 0

    def step(self, loss: float) -> bool:
        """Record an epoch's monitored loss; True if the rate was reduced."""
        est = self.est
        if _schedule(est) == "constant":
            return False
        if est.__dict__.get("_first_loss") is None:
            est._first_loss = loss
        if not est._plateau_left:
            est._plateau_left = bool(loss < (1 - PLATEAU_DROP) * est._first_loss)
            if not est._plateau_left:
                return False
        if loss < self.best - est.tol:
            self.best, self.wait = loss, 0
            return False
        self.best = min(self.best, loss)
        self.wait += 1
        if self.wait < est.lr_patience or _at_floor(est):
            return False
        old = est.learning_rate_
        est.learning_rate_ = max(old * float(est.lr_factor), float(est.min_learning_rate))
        self.wait = 0
        if est.verbose:
            print(
                f"{'' if est.verbose == 2 else chr(10)}Epoch {est.n_iter_}: reducing the "
                f"learning rate from {old:g} to {est.learning_rate_:g}.",
                file=sys.stderr,
            )
        return True


def start_history(est, validation: bool) -> None:
    """Start the records of a fresh fit (or add validation records to a model's)."""
    if "loss_curve_" not in est.__dict__:
        est.loss_curve_ = []
        est.history_ = {"loss": [], "seconds": [], "learning_rate": []}
        est.best_loss_ = np.inf
        est.validation_scores_ = None
        est.best_validation_score_ = None
        est.n_iter_ = 0
        est.t_ = 0
    # A model fitted before the schedule existed: its rates are unknown.
    est.history_.setdefault("learning_rate", [float("nan")] * len(est.history_["loss"]))
    if validation and est.validation_scores_ is None:
        est.validation_scores_ = []
        est.best_validation_score_ = -np.inf
    if validation:
        est.history_.setdefault("val_loss", [])
        est.history_.setdefault("val_score", [])


def _epoch(est, plan: FitPlan) -> dict[str, float]:
    """One epoch and its records; a non-finite loss raises FloatingPointError."""
    start = time.perf_counter()
    rate = float(est.learning_rate_)
    status, loss, step = est._train_epoch(plan.train)
    if status != "ok":
        raise FloatingPointError(
            f"The training loss became NaN or infinite in epoch {est.n_iter_ + 1}; the "
            f"model keeps the weights of epoch {est.n_iter_}. Try a lower learning_rate "
            f"(now {rate:g}), gradient clipping (clipnorm=1.0), scaling X and y "
            "(for example with StandardScaler), or a float64 dtype."
        )
    params_written(est)
    est._opt_step = step
    est.n_iter_ += 1
    est.t_ += plan.n_samples
    seconds = time.perf_counter() - start
    loss = float(loss)
    est.loss_curve_.append(loss)
    est.history_["loss"].append(loss)
    est.history_["seconds"].append(seconds)
    est.history_["learning_rate"].append(rate)
    logs = {"epoch": est.n_iter_, "loss": loss, "seconds": seconds, "learning_rate": rate}
    if plan.validation is not None:
        val_loss, val_score = est._validation_metrics(plan.validation)
        est.validation_scores_.append(val_score)
        est.history_["val_loss"].append(val_loss)
        est.history_["val_score"].append(val_score)
        logs.update(val_loss=val_loss, val_score=val_score)
    _report(est, logs)
    return logs


def _improvement(est, logs: dict[str, float], validation: bool) -> bool:
    """Whether the stopping quantity improved by more than tol; updates the bests."""
    if validation:
        score = logs["val_score"]
        improved = score > est.best_validation_score_ + est.tol
        est.best_validation_score_ = max(est.best_validation_score_, score)
    else:
        improved = logs["loss"] < est.best_loss_ - est.tol
    est.best_loss_ = min(est.best_loss_, logs["loss"])
    return improved


def _callbacks(est) -> list:
    if est.callbacks is None:
        return []
    if callable(est.callbacks):
        return [est.callbacks]
    return list(est.callbacks)


def _report(est, logs: dict[str, float]) -> None:
    if not est.verbose:
        return
    text = f"loss: {logs['loss']:.6g}"
    if "val_loss" in logs:
        text += f" - val_loss: {logs['val_loss']:.6g} - val_score: {logs['val_score']:.4f}"
    text += f" - lr: {logs['learning_rate']:.3g} - {logs['seconds']:.2f}s"
    if est.verbose == 2:
        print(f"Epoch {logs['epoch']}: {text}", file=sys.stderr)
    else:
        width = 30
        done = int(width * min(1.0, logs["epoch"] / est.max_iter))
        bar = "=" * done + "." * (width - done)
        print(f"\rEpoch {logs['epoch']}/{est.max_iter} [{bar}] {text}", end="", file=sys.stderr)
