"""scikit-learn estimators backed by the C++ engine: LSTMRegressor, LSTMClassifier."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from numbers import Integral, Real
from typing import Any, ClassVar

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin, _fit_context
from sklearn.exceptions import DataConversionWarning
from sklearn.metrics import accuracy_score, r2_score
from sklearn.model_selection import train_test_split
from sklearn.utils import compute_class_weight
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.multiclass import type_of_target
from sklearn.utils.validation import check_is_fitted

from . import _engine, _persist, _training
from ._data import (
    AUTO_PATCH_ABOVE,
    Sequences,
    as_sequences,
    auto_patch_size,
    patch_steps,
    per_step_target,
    unpad,
)
from ._frames import FrontEnd, flatten_frames
from ._stream import Stream
from ._threads import resolve as resolve_threads
from ._training import FitPlan, aligned_copy

__all__ = ["LSTMClassifier", "LSTMRegressor"]

_NETWORKS = {np.dtype(np.float32): "NetworkF32", np.dtype(np.float64): "NetworkF64"}
_PREDICT_BATCH = 256
# Inference precisions of set_inference_precision; training is always in dtype.
PRECISIONS = ("float32", "bfloat16", "int8")
# Activations of the FCN branch per inference mini-batch (rows x steps x
# filters): predict and evaluate take fewer rows at a time for long series, so
# that a block's buffers stay near 64 MB in float32. Rows are independent in
# inference, so the batch changes no result.
_FCN_PREDICT_ELEMENTS = 1 << 24


# Defaults of the learning-rate schedule (see _training and the README's
# "Training" notes for the measurements behind them).
LR_FACTOR = 0.2
LR_PATIENCE = 10
MIN_LEARNING_RATE = 1e-5

# fcn_filters='auto' (LSTMClassifier's default): univariate sequences of one
# length of AUTO_PATCH_ABOVE + 1 to AUTO_FCN_MAX_STEPS steps, one label each,
# get an FCN branch of these filters and the dimension shuffle instead of
# patches. Chosen by cross-validation on the training splits of UCR sets
# (benchmarks/README.md, bench_accuracy.py): it beat patches on series of 150
# to 427 steps and lost on 1,460; on short or multivariate sets it did not
# help every set. A quarter of the papers' (128, 256, 128) scored about as
# well at a sixth of the time.
AUTO_FCN_FILTERS = (32, 64, 32)
AUTO_FCN_MAX_STEPS = 1000

# The engine indexes with 32-bit ints: every size, and every tensor's element
# count, must stay below this.
MAX_SIZE = 2**31 - 1


def _check_layer_sizes(hidden: list[int], n_features: int, bidirectional: bool) -> None:
    """Refuse LSTM layers whose weight matrices the engine cannot index."""
    width = n_features
    for k, units in enumerate(hidden):
        for what, cols in (("input weight", width), ("recurrent weight", units)):
            if 4 * units * cols > MAX_SIZE:
                raise ValueError(
                    f"hidden_layer_sizes[{k}]={units} gives layer {k} an {what} of 4*{units} x "
                    f"{cols} = {4 * units * cols} elements; the engine's limit is {MAX_SIZE} "
                    "elements per tensor. Use fewer units (or fewer input features)"
                )
        width = units * (2 if bidirectional else 1)


def _check_labels(y: np.ndarray) -> None:
    """Refuse missing values and mixed types among class labels, naming them."""
    if y.dtype.kind == "f" and not np.isfinite(y).all():
        raise ValueError("Input y contains NaN or infinity")
    if y.dtype != object:
        return
    flat = y.ravel()
    missing = [k for k, v in enumerate(flat) if v is None or (isinstance(v, float) and np.isnan(v))]
    if missing:
        raise ValueError(
            f"y contains missing values (NaN or None), e.g. at index {missing[0]} of "
            f"{flat.size}: every sample needs a label; drop or fill those samples first"
        )
    kinds = sorted(
        {type(v).__name__ for v in flat if not isinstance(v, (str, np.str_))}
        | ({"str"} if any(isinstance(v, (str, np.str_)) for v in flat) else set())
    )
    if "str" in kinds and len(kinds) > 1:
        raise ValueError(
            f"y mixes label types ({', '.join(kinds)}); labels must all be strings or all numbers"
        )


def _threads(n_jobs: int | None) -> int:
    """Compute threads for ``n_jobs``: the rule in _threads.py, joblib's negatives."""
    return resolve_threads(n_jobs)


def _glorot(rng: np.random.RandomState, shape: tuple[int, ...]) -> np.ndarray:
    fan_out, fan_in = shape
    limit = np.sqrt(6.0 / (fan_in + fan_out))
    return rng.uniform(-limit, limit, size=shape)


def _orthogonal(rng: np.random.RandomState, shape: tuple[int, ...]) -> np.ndarray:
    # [4H, H] with orthonormal columns, as Keras's Orthogonal for the
    # recurrent kernel [H, 4H].
    q, r = np.linalg.qr(rng.normal(size=shape))
    return q * np.sign(np.diag(r))


class _BaseLSTM(BaseEstimator):
    """Shared fitting machinery; see LSTMRegressor and LSTMClassifier."""

    _parameter_constraints: ClassVar[dict] = {
        "hidden_layer_sizes": ["array-like", Interval(Integral, 1, MAX_SIZE, closed="both")],
        "bidirectional": ["boolean"],
        "merge_mode": [StrOptions({"concat", "sum", "mul", "ave"})],
        "return_sequences": ["boolean", None],
        "dropout": [Interval(Real, 0, 1, closed="left")],
        "recurrent_dropout": [Interval(Real, 0, 1, closed="left")],
        "head_dropout": [Interval(Real, 0, 1, closed="left")],
        "alpha": [Interval(Real, 0, None, closed="left")],
        "optimizer": [StrOptions({"adam", "sgd", "rmsprop"})],
        "learning_rate": [Interval(Real, 0, None, closed="neither")],
        "momentum": [Interval(Real, 0, 1, closed="left")],
        "nesterov": ["boolean"],
        "beta_1": [Interval(Real, 0, 1, closed="left")],
        "beta_2": [Interval(Real, 0, 1, closed="left")],
        "epsilon": [Interval(Real, 0, None, closed="neither")],
        "rho": [Interval(Real, 0, 1, closed="left")],
        "clipnorm": [Interval(Real, 0, None, closed="neither"), None],
        "batch_size": [Interval(Integral, 1, MAX_SIZE, closed="both"), StrOptions({"auto"})],
        "max_iter": [Interval(Integral, 1, MAX_SIZE, closed="both")],
        "shuffle": ["boolean"],
        "tol": [Interval(Real, 0, None, closed="left")],
        "n_iter_no_change": [Interval(Integral, 1, MAX_SIZE, closed="both")],
        "early_stopping": ["boolean"],
        "validation_fraction": [Interval(Real, 0, 1, closed="neither")],
        "validation_split": [StrOptions({"shuffle", "last"})],
        "restore_best_weights": ["boolean"],
        "lr_schedule": [StrOptions({"plateau", "constant"})],
        "lr_factor": [Interval(Real, 0, 1, closed="neither")],
        "lr_patience": [Interval(Integral, 1, MAX_SIZE, closed="both")],
        "min_learning_rate": [Interval(Real, 0, None, closed="neither")],
        "random_state": ["random_state"],
        "n_jobs": [Interval(Integral, None, MAX_SIZE, closed="right"), None],
        "verbose": [Interval(Integral, 0, 2, closed="both")],
        "warm_start": ["boolean"],
        "callbacks": [list, tuple, callable, None],
        "dtype": [type, str, np.dtype],
        "conv_filters": [Interval(Integral, 1, MAX_SIZE, closed="both"), None],
        "conv_kernel_size": [Interval(Integral, 1, MAX_SIZE, closed="both"), tuple, list],
        "pool_size": [Interval(Integral, 1, MAX_SIZE, closed="both")],
        "pooling": [StrOptions({"last", "mean", "attention"})],
        "attention_units": [Interval(Integral, 1, MAX_SIZE, closed="both")],
        "missing": [StrOptions({"raise", "mask"})],
        "tbptt_steps": [Interval(Integral, 1, MAX_SIZE, closed="both"), None],
        "fcn_filters": [tuple, list, StrOptions({"auto"}), None],
        "fcn_kernel_sizes": [tuple, list],
        "fcn_squeeze_excitation": [StrOptions({"auto"}), "boolean"],
        "dimension_shuffle": ["boolean"],
        "patch_size": [Interval(Integral, 1, MAX_SIZE, closed="both"), StrOptions({"auto"}), None],
    }

    def __init__(
        self,
        hidden_layer_sizes: int | Sequence[int] = (64,),
        *,
        bidirectional: bool = False,
        merge_mode: str = "concat",
        return_sequences: bool | None = None,
        dropout: float = 0.0,
        recurrent_dropout: float = 0.0,
        alpha: float = 0.0,
        optimizer: str = "adam",
        learning_rate: float = 0.001,
        momentum: float = 0.0,
        nesterov: bool = False,
        beta_1: float = 0.9,
        beta_2: float = 0.999,
        epsilon: float = 1e-7,
        rho: float = 0.9,
        clipnorm: float | None = None,
        batch_size: int | str = "auto",
        max_iter: int = 200,
        shuffle: bool = True,
        tol: float = 1e-4,
        n_iter_no_change: int = 10,
        early_stopping: bool = False,
        validation_fraction: float = 0.1,
        validation_split: str = "shuffle",
        restore_best_weights: bool = True,
        lr_schedule: str = "plateau",
        lr_factor: float = LR_FACTOR,
        lr_patience: int = LR_PATIENCE,
        min_learning_rate: float = MIN_LEARNING_RATE,
        loss: str = "squared_error",
        random_state: int | np.random.RandomState | None = None,
        n_jobs: int | None = None,
        verbose: int = 0,
        warm_start: bool = False,
        callbacks: Callable | Sequence[Callable] | None = None,
        dtype: type | str = np.float32,
        conv_filters: int | None = None,
        conv_kernel_size: int | tuple[int, int] = 3,
        pool_size: int = 2,
        pooling: str = "last",
        attention_units: int = 16,
        missing: str = "raise",
        tbptt_steps: int | None = None,
        fcn_filters: Sequence[int] | str | None = None,
        fcn_kernel_sizes: Sequence[int] = (8, 5, 3),
        fcn_squeeze_excitation: bool | str = "auto",
        dimension_shuffle: bool = False,
        patch_size: int | str | None = "auto",
        head_dropout: float = 0.0,
    ) -> None:
        self.hidden_layer_sizes = hidden_layer_sizes
        self.bidirectional = bidirectional
        self.merge_mode = merge_mode
        self.return_sequences = return_sequences
        self.dropout = dropout
        self.recurrent_dropout = recurrent_dropout
        self.head_dropout = head_dropout
        self.alpha = alpha
        self.optimizer = optimizer
        self.learning_rate = learning_rate
        self.momentum = momentum
        self.nesterov = nesterov
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self.rho = rho
        self.clipnorm = clipnorm
        self.batch_size = batch_size
        self.max_iter = max_iter
        self.shuffle = shuffle
        self.tol = tol
        self.n_iter_no_change = n_iter_no_change
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.validation_split = validation_split
        self.restore_best_weights = restore_best_weights
        self.lr_schedule = lr_schedule
        self.lr_factor = lr_factor
        self.lr_patience = lr_patience
        self.min_learning_rate = min_learning_rate
        self.loss = loss
        self.random_state = random_state
        self.n_jobs = n_jobs
        self.verbose = verbose
        self.warm_start = warm_start
        self.callbacks = callbacks
        self.dtype = dtype
        self.conv_filters = conv_filters
        self.conv_kernel_size = conv_kernel_size
        self.pool_size = pool_size
        self.pooling = pooling
        self.attention_units = attention_units
        self.missing = missing
        self.tbptt_steps = tbptt_steps
        self.fcn_filters = fcn_filters
        self.fcn_kernel_sizes = fcn_kernel_sizes
        self.fcn_squeeze_excitation = fcn_squeeze_excitation
        self.dimension_shuffle = dimension_shuffle
        self.patch_size = patch_size

    # -- subclass hooks -----------------------------------------------------

    def _encode_targets(self, y: object, seqs: Sequences, first: bool, classes=None):
        raise NotImplementedError

    def _score_outputs(self, out: np.ndarray, y_enc: np.ndarray, mask: np.ndarray | None) -> float:
        raise NotImplementedError

    # -- helpers --------------------------------------------------------------

    def _hidden_sizes(self) -> list[int]:
        sizes = self.hidden_layer_sizes
        sizes = [sizes] if isinstance(sizes, Integral) else list(sizes)
        if not sizes or any(
            not isinstance(s, Integral) or isinstance(s, bool) or not 1 <= s <= MAX_SIZE
            for s in sizes
        ):
            raise ValueError(
                "hidden_layer_sizes must be a positive integer or a non-empty sequence of "
                f"positive integers of at most {MAX_SIZE}; got {self.hidden_layer_sizes!r}"
            )
        return [int(s) for s in sizes]

    def _float_dtype(self) -> np.dtype:
        dt = np.dtype(self.dtype)
        if dt not in _NETWORKS:
            raise ValueError(f"dtype must be float32 or float64; got {self.dtype!r}")
        return dt

    def _network(self):
        """The engine object; rebuilt after unpickling (it is not picklable)."""
        net = self.__dict__.get("_net")
        if net is None:
            bidirectional, merge, dropout, recurrent_dropout, head_dropout = self._net_config()
            net = getattr(_engine.core, _NETWORKS[self._dtype])(
                self.n_features_in_ * self._patch,
                self._hidden,
                bidirectional,
                merge,
                dropout,
                recurrent_dropout,
                self._n_outputs,
                self._per_step,
                self._loss_name(),
                1.0,
                head_dropout=head_dropout,
                **self._engine_architecture(),
            )
            self.__dict__["_net"] = net
        return net

    def _architecture(self) -> tuple:
        """What fixes the parameter layout beyond the LSTM layers."""
        front = FrontEnd.from_params(self.conv_filters, self.conv_kernel_size, self.pool_size)
        units = int(self.attention_units) if self.pooling == "attention" else None
        return front, self.pooling, units

    def _engine_architecture(self) -> dict:
        front, pooling, units = self._arch
        kwargs: dict[str, Any] = {"pooling": pooling, "attention_units": units or 1}
        if front is not None:
            kwargs.update(
                front_end=front.kind,
                frame=list(self.frame_shape_),
                conv_filters=front.filters,
                kernel=list(front.kernel),
                pool_size=front.pool,
            )
        fcn = self._fcn
        if fcn is not None:
            filters, kernels, se, shuffle, steps = fcn
            kwargs.update(
                fcn_filters=list(filters),
                fcn_kernels=list(kernels),
                fcn_squeeze_excitation=se,
                dimension_shuffle=shuffle,
                sequence_length=steps,
            )
        return kwargs

    @property
    def _fcn(self) -> tuple | None:
        """(filters, kernels, squeeze-excitation, dimension shuffle, steps) or None."""
        return self.__dict__.get("_fcn_arch")

    def _fcn_architecture(self, seqs: Sequences, per_step: bool) -> tuple | None:
        """The LSTM-FCN configuration of the parameters for input `seqs`, checked."""
        filters = getattr(self, "fcn_filters", None)
        shuffle = bool(getattr(self, "dimension_shuffle", False))
        if self._fcn_is_auto:
            filters = None
            if self._auto_fcn_applies(seqs, per_step):
                filters, shuffle = AUTO_FCN_FILTERS, True
        if filters is None and not shuffle:
            return None

        def sizes(value, name):
            if (
                not isinstance(value, (tuple, list))
                or not value
                or any(
                    not isinstance(v, Integral) or isinstance(v, bool) or not 1 <= v <= MAX_SIZE
                    for v in value
                )
            ):
                raise ValueError(
                    f"{name} must be a non-empty sequence of positive integers of at most "
                    f"{MAX_SIZE}; got {value!r}"
                )
            return tuple(int(v) for v in value)

        _, steps, n_features = seqs.x.shape
        if filters is None:
            filters_t, kernels_t, se = (), (), False
        else:
            filters_t = sizes(filters, "fcn_filters")
            kernels_t = sizes(self.fcn_kernel_sizes, "fcn_kernel_sizes")
            if len(kernels_t) != len(filters_t):
                raise ValueError(
                    f"fcn_kernel_sizes needs one kernel size per block of fcn_filters; got "
                    f"{len(kernels_t)} kernel size(s) for {len(filters_t)} block(s)"
                )
            se = self.fcn_squeeze_excitation
            se = n_features > 1 if se == "auto" else bool(se)
        if self._architecture()[0] is not None:
            raise ValueError(
                "fcn_filters and dimension_shuffle cannot be combined with a conv front end "
                "(conv_filters); use one or the other"
            )
        if shuffle and seqs.mask is not None:
            raise ValueError(
                "dimension_shuffle=True needs every sequence of one length without missing "
                "steps: the LSTM reads each sequence's time steps as its features. Pad the "
                "sequences yourself or use dimension_shuffle=False."
            )
        return (filters_t, kernels_t, se, shuffle, int(steps) if shuffle else 0)

    @property
    def _fcn_is_auto(self) -> bool:
        return getattr(self, "fcn_filters", None) == "auto"

    def _auto_rules_apply(self, per_step: bool) -> bool:
        """Whether the 'auto' rules for long series (patches, the FCN branch) may
        reshape the model: not where every step is needed as it is (per-step
        targets, a conv front end, truncated BPTT)."""
        return (
            not per_step
            and self._architecture()[0] is None
            and getattr(self, "tbptt_steps", None) is None
        )

    def _auto_fcn_applies(self, seqs: Sequences, per_step: bool) -> bool:
        """Whether ``fcn_filters='auto'`` builds the branch for `seqs`."""
        return (
            self._auto_rules_apply(per_step)
            and seqs.mask is None  # the dimension shuffle needs one length
            and AUTO_PATCH_ABOVE < seqs.x.shape[1] <= AUTO_FCN_MAX_STEPS
            and seqs.x.shape[2] == 1
            and getattr(self, "missing", "raise") == "raise"  # masked steps: no shuffle
            and getattr(self, "patch_size", None) in ("auto", None)
        )

    @property
    def fcn_filters_(self) -> tuple | None:
        """The fitted FCN branch's filters (the choice of ``fcn_filters='auto'``), or None."""
        check_is_fitted(self, "_params")
        fcn = self._fcn
        return fcn[0] if fcn is not None and fcn[0] else None

    @property
    def _arch(self) -> tuple:
        # Models pickled before the conv front end and pooling have neither.
        return self.__dict__.get("_fitted_arch", (None, "last", None))

    def _as_sequences(self, X, dtype: np.dtype, fitted: bool) -> tuple[Sequences, tuple | None]:
        """as_sequences after flattening the frames of a conv front end; and the frame."""
        front = self._arch[0] if fitted else self._architecture()[0]
        n_features = self.n_features_in_ if fitted else None
        missing = getattr(self, "missing", "raise")
        if front is None:
            return as_sequences(X, dtype, n_features, missing, check_layout=not fitted), None
        flat, frame = flatten_frames(X, front, self.frame_shape_ if fitted else None)
        return as_sequences(flat, dtype, n_features, missing), frame

    def _loss_name(self) -> str:
        return self.loss

    def __getstate__(self) -> dict:
        """The state in plain types (numbers, strings, tuples, lists, dicts, arrays).

        Pickle, joblib, skops and :meth:`save` all take this: no NumPy dtype,
        random generator or other object that a safe loader would have to
        trust.
        """
        state = self.__dict__.copy()
        state.pop("_net", None)
        state.pop("_sampler", None)  # LSTMGenerator's engine stream, rebuilt on use
        state.pop("_params_version", None)  # a token of this process only
        if not isinstance(state.get("dtype"), str):
            state["dtype"] = np.dtype(state["dtype"]).name
        if "_dtype" in state:
            state["_dtype"] = np.dtype(state["_dtype"]).name
        if isinstance(state.get("_rng"), np.random.RandomState):
            state["_rng"] = state["_rng"].get_state()
        arch = state.get("_fitted_arch")
        if arch is not None and isinstance(arch[0], FrontEnd):
            front = arch[0]
            plain = (front.kind, list(front.kernel), front.filters, front.pool)
            state["_fitted_arch"] = (plain, *arch[1:])
        if "_s2s_arch" in state:
            state["_s2s_arch"] = (*state["_s2s_arch"][:-1], np.dtype(state["_s2s_arch"][-1]).name)
        return state

    # Parameters added after models were first pickled or saved, with the
    # behaviour of the time before them: a model read from such a file refits
    # as it was fitted, not with a newer default.
    _PARAMS_BEFORE_THEY_EXISTED = (
        ("tbptt_steps", None),
        ("patch_size", None),
        ("head_dropout", 0.0),
        ("validation_split", "shuffle"),
        ("restore_best_weights", False),
        ("lr_schedule", "constant"),
        ("lr_factor", LR_FACTOR),
        ("lr_patience", LR_PATIENCE),
        ("min_learning_rate", MIN_LEARNING_RATE),
        ("fcn_filters", None),
    )

    def __setstate__(self, state: dict) -> None:
        state = dict(state)
        if "_dtype" in state:
            state["_dtype"] = np.dtype(state["_dtype"])
        if isinstance(state.get("_rng"), tuple):
            rng = np.random.RandomState()
            rng.set_state(state["_rng"])
            state["_rng"] = rng
        arch = state.get("_fitted_arch")
        if arch is not None and isinstance(arch[0], (tuple, list)):
            kind, kernel, filters, pool = arch[0]
            front = FrontEnd(str(kind), tuple(int(k) for k in kernel), int(filters), int(pool))
            state["_fitted_arch"] = (front, *arch[1:])
        if "_s2s_arch" in state:
            state["_s2s_arch"] = (*state["_s2s_arch"][:-1], np.dtype(state["_s2s_arch"][-1]))
        params = self._get_param_names()
        for name, old in self._PARAMS_BEFORE_THEY_EXISTED:
            if name in params and name not in self.__dict__:
                state.setdefault(name, old)
        if "_params" in state:
            state.setdefault("best_epoch_", None)  # fitted before the schedule existed
        self.__dict__.update(state)

    def save(self, path) -> None:
        """Write the fitted model to one file that loads without running code.

        The file is a safetensors file: the arrays as tensors, the rest as
        JSON metadata with a format version and a checksum; it is written
        atomically, so a crash or Ctrl-C while saving leaves an existing file
        intact. Load it with :func:`lstmlearn.load`.

        Parameters
        ----------
        path : str or path-like
            The file to write (``.safetensors`` by convention).
        """
        _persist.save(self, path)

    def to_onnx(self, path=None, opset=None, *, sequence_lens=False, recurrence=None):
        """Export the fitted model to ONNX (needs ``pip install "lstmlearn[onnx]"``).

        Parameters
        ----------
        path : str or path-like, optional
            Write the model there, atomically (LSTMSeq2Seq: the decoder step
            there and the encoder at ``path.with_suffix('.encoder.onnx')``).
        opset : int, optional
            ONNX opset, from 14; default 17.
        sequence_lens : bool, default=False
            Add the int32 input ``sequence_lens [batch]`` for sequences of
            different lengths padded at the end (refused for a model fitted
            with ``dimension_shuffle=True``, which takes the fitted length only).
        recurrence : {'lstm', 'scan'} or None, default=None
            The standard ONNX ``LSTM`` operator or a ``Scan`` over the same
            cell; None takes 'lstm' for float32 and 'scan' for float64 (ONNX
            Runtime's LSTM kernel is float32 only).

        Returns
        -------
        model : onnx.ModelProto, or dict {'encoder', 'decoder_step'} for LSTMSeq2Seq
        """
        from ._onnx import to_onnx

        return to_onnx(self, path, opset, sequence_lens=sequence_lens, recurrence=recurrence)

    def _check_restored(self) -> None:
        """Raise ValueError unless the arrays fit the network the state describes."""
        count = self._network().parameter_count
        for name in ("_params", "_opt_m", "_opt_v"):
            a = getattr(self, name)
            if a.shape != (count,) or a.dtype != self._dtype:
                raise ValueError(
                    f"{name} has shape {a.shape} and dtype {a.dtype}; the network needs "
                    f"({count},) of {self._dtype}"
                )
        for name in ("_params", "_opt_m", "_opt_v"):
            setattr(self, name, aligned_copy(getattr(self, name)))
        precision = self.__dict__.get("_inference_precision", "float32")
        if precision != "float32" and self._dtype != np.float32:
            raise ValueError(f"inference precision {precision!r} needs a float32 model")
        if isinstance(self, ClassifierMixin) and self.classes_.shape != (self._n_outputs,):
            raise ValueError(
                f"classes_ has {self.classes_.shape} labels for {self._n_outputs} outputs"
            )

    def set_inference_precision(self, precision: str):
        """Run prediction with reduced-precision copies of the LSTM weights.

        The LSTM layers' recurrent weights W_hh, which every time step reads
        in full, are copied to bfloat16 (8 bits of mantissa, products
        accumulated in float32) or int8 (per-row scales; each step's h
        quantized per sample to 7 bits at run time, products summed exactly
        in int32). Inputs' projections, the dense head, a conv front end, the
        FCN branch and the attention pooling stay in float32. Training
        (``fit``, ``partial_fit``) always uses the float32 weights; the
        reduced copies are made from them at the next prediction after any
        change. The setting is kept by ``save``/``lstmlearn.load``, pickle,
        and by later fits.

        Parameters
        ----------
        precision : {'float32', 'bfloat16', 'int8'}
            'float32' predicts with the weights themselves (the default).

        Returns
        -------
        self
            The estimator (its ``inference_precision_`` records the choice).

        Raises
        ------
        ValueError
            For another value, or 'bfloat16'/'int8' on a float64 model.
        sklearn.exceptions.NotFittedError
            Before the model is fitted.
        """
        check_is_fitted(self, "_params")
        if not isinstance(precision, str) or precision not in PRECISIONS:
            raise ValueError(
                f"precision must be one of {', '.join(repr(p) for p in PRECISIONS)}; got "
                f"{precision!r}"
            )
        if precision != "float32" and self._dtype != np.float32:
            raise ValueError(
                f"precision={precision!r} needs a float32 model; this one has dtype "
                f"{np.dtype(self._dtype).name} (its weights are float64): refit with "
                "dtype=np.float32 or keep precision='float32'"
            )
        self._inference_precision = precision
        return self

    @property
    def inference_precision_(self) -> str:
        """The precision :meth:`predict` computes in: 'float32', 'bfloat16' or 'int8'."""
        check_is_fitted(self, "_params")
        return self.__dict__.get("_inference_precision", "float32")

    def _version(self) -> int:
        """The token of the parameter values, for the engine's packed-weight cache."""
        if "_params_version" not in self.__dict__:
            _training.params_written(self)
        return self._params_version

    def _init_parameters(self, rng: np.random.RandomState) -> None:
        """Glorot-uniform input weights, orthogonal recurrent weights, forget bias 1."""
        net = self._network()
        params = np.zeros(net.parameter_count, dtype=self._dtype)
        for name, offset, shape in net.layout():
            size = int(np.prod(shape))
            view = params[offset : offset + size].reshape(shape)
            if "weight_ih" in name or name == "dense.weight":
                view[...] = _glorot(rng, shape)
            elif name == "conv.weight":
                view[...] = _glorot(rng, (shape[0], int(np.prod(shape[1:])))).reshape(shape)
            elif name in ("pool.weight", "pool.v"):
                view[...] = _glorot(rng, shape if len(shape) == 2 else (1, shape[0])).reshape(shape)
            elif "weight_hh" in name:
                view[...] = _orthogonal(rng, shape)
            elif "bias_ih" in name:
                hidden = shape[0] // 4
                view[hidden : 2 * hidden] = 1.0  # forget gate
            elif name.startswith("fcn."):
                # As the papers' Keras code: He-uniform convolutions, He-normal
                # squeeze-excitation; batch normalisation starts as identity.
                if name.endswith(".weight") and "conv" in name:
                    bound = np.sqrt(6.0 / int(np.prod(shape[1:])))
                    view[...] = rng.uniform(-bound, bound, shape)
                elif ".weight" in name:  # se{i}.weight1 [R, K], weight2 [K, R]
                    view[...] = rng.normal(0.0, np.sqrt(2.0 / shape[1]), shape)
                elif name.endswith((".gamma", ".running_var")):
                    view[...] = 1.0
        self._params = aligned_copy(params)
        _training.params_written(self)
        self._opt_m = aligned_copy(np.zeros_like(params))
        self._opt_v = aligned_copy(np.zeros_like(params))
        self._opt_step = 0

    def _infer_per_step(self, y: np.ndarray, ragged_per_step: bool, per_step_ndim: int) -> bool:
        """Whether the targets are per step, on a first fit.

        Only an unambiguous shape says so when ``return_sequences`` is None:
        per-step arrays for a list of sequences, or a y of `per_step_ndim`
        dimensions (3 for a regressor). A 2-D y whose width happens to equal
        the number of timesteps is a multi-output (or one-hot) target, not a
        per-step one: that needs ``return_sequences=True``.
        """
        if self.return_sequences is not None:
            return bool(self.return_sequences)
        return ragged_per_step or y.ndim == per_step_ndim

    def _train_mask(self, seqs: Sequences) -> np.ndarray | None:
        return seqs.mask

    def _item_weights(self, sample_weight, seqs: Sequences, y_enc: np.ndarray) -> np.ndarray | None:
        n = seqs.x.shape[0]
        w = None
        if sample_weight is not None:
            w = np.asarray(sample_weight, dtype=np.float64)
            if w.shape != (n,):
                raise ValueError(f"sample_weight must have shape ({n},); got {w.shape}")
            if not np.isfinite(w).all() or (w < 0).any():
                raise ValueError("sample_weight must be finite and non-negative")
            if not w.any():
                raise ValueError("sample_weight is zero for every sample; nothing to learn from")
            if self._per_step:
                w = np.repeat(w[:, None], seqs.x.shape[1], axis=1)
        cw = self._class_weights(y_enc)
        if cw is not None:
            w = cw if w is None else w * cw
        return None if w is None else np.ascontiguousarray(w, dtype=self._dtype)

    def _class_weights(self, y_enc: np.ndarray) -> np.ndarray | None:
        return None

    def _split_validation(self, seqs, y_enc, weights, rng):
        """Hold out ``validation_fraction``: the last samples, or a shuffled (stratified) share."""
        n = seqs.x.shape[0]
        idx = np.arange(n)
        n_val = int(np.ceil(self.validation_fraction * n))
        if n_val < 1 or n - n_val < 1:
            raise ValueError(
                f"early_stopping needs at least 2 samples to hold out a validation_fraction of "
                f"{self.validation_fraction}; got {n} sample(s)"
            )
        if getattr(self, "validation_split", "shuffle") == "last":
            train_idx, val_idx = idx[: n - n_val], idx[n - n_val :]
        else:
            stratify = None
            if isinstance(self, ClassifierMixin) and not self._per_step:
                counts = np.bincount(y_enc)
                if counts[counts > 0].min() >= 2:
                    stratify = y_enc
            train_idx, val_idx = train_test_split(
                idx, test_size=n_val, random_state=rng.randint(2**31 - 1), stratify=stratify
            )

        def take(rows):
            sub = Sequences(
                seqs.x[rows],
                None if seqs.mask is None else seqs.mask[rows],
                None if seqs.lengths is None else seqs.lengths[rows],
            )
            return sub, y_enc[rows], None if weights is None else weights[rows]

        return take(np.sort(train_idx)), take(np.sort(val_idx))

    def _engine_targets(self, y_enc: np.ndarray) -> tuple[np.ndarray | None, np.ndarray | None]:
        """(targets, labels) arguments of the engine."""
        if isinstance(self, ClassifierMixin):
            return None, np.ascontiguousarray(y_enc, dtype=np.int32)
        return np.ascontiguousarray(y_enc, dtype=self._dtype), None

    def _predict_batch(self, n: int, steps: int) -> int:
        """Rows per inference mini-batch."""
        batch = min(_PREDICT_BATCH, n)
        fcn = self._fcn
        if fcn is not None and fcn[0]:
            batch = min(batch, max(1, _FCN_PREDICT_ELEMENTS // (max(1, steps) * max(fcn[0]))))
        return batch

    def _raw_predict(self, seqs: Sequences, precision: str | None = None) -> np.ndarray:
        """Engine outputs for `seqs`, in the inference precision unless `precision` says."""
        net = self._network()
        n, steps = seqs.x.shape[:2]
        shape = (n, steps, self._n_outputs) if self._per_step else (n, self._n_outputs)
        out = np.empty(shape, dtype=self._dtype)
        if precision is None:
            precision = self.__dict__.get("_inference_precision", "float32")
        net.predict(
            self._params,
            seqs.x,
            seqs.mask,
            out,
            self._predict_batch(n, steps),
            _threads(self.n_jobs),
            params_version=self._version(),
            precision=precision,
        )
        return out

    def _validation_metrics(self, val) -> tuple[float, float]:
        seqs, y_enc, weights = val
        targets, labels = self._engine_targets(y_enc)
        loss = self._network().evaluate(
            self._params,
            seqs.x,
            seqs.mask,
            targets,
            labels,
            weights,
            self._predict_batch(len(y_enc), seqs.x.shape[1]),
            _threads(self.n_jobs),
        )
        # Training (and its stopping rule) stays in float32.
        score = self._score_outputs(self._raw_predict(seqs, "float32"), y_enc, seqs.mask)
        return float(loss), float(score)

    # -- fitting --------------------------------------------------------------

    def _fit(self, X, y, sample_weight, incremental: bool, classes=None, validation_data=None):
        return _training.fit(
            self,
            lambda: self._prepare_fit(X, y, sample_weight, incremental, classes, validation_data),
            incremental=incremental,
        )

    def _validation_set(self, validation_data, dtype):
        """``validation_data`` as ``_validation_metrics`` takes it: (seqs, targets, weights)."""
        if not isinstance(validation_data, (tuple, list)) or len(validation_data) not in (2, 3):
            what = type(validation_data).__name__
            if isinstance(validation_data, (tuple, list)):
                what += f" of length {len(validation_data)}"
            raise ValueError(
                "validation_data must be a tuple (X_val, y_val) or (X_val, y_val, "
                f"sample_weight_val); got a {what}"
            )
        X_val, y_val, *rest = validation_data
        try:
            seqs, _ = self._as_sequences(X_val, dtype, fitted=True)
            y_enc, _, _ = self._encode_targets(y_val, seqs, first=False)
            weights = self._item_weights(rest[0] if rest else None, seqs, y_enc)
        except ValueError as error:
            raise ValueError(f"validation_data: {error}") from error
        return seqs, y_enc, weights

    def _prepare_fit(
        self, X, y, sample_weight, incremental: bool, classes=None, validation_data=None
    ) -> FitPlan:
        """Check the input and set up the state to train (see _training)."""
        dtype = self._float_dtype()
        hidden = self._hidden_sizes()
        fitted = hasattr(self, "_params")
        reuse = fitted and (incremental or self.warm_start)
        if reuse and (dtype != self._dtype or hidden != self._hidden):
            raise ValueError(
                "hidden_layer_sizes and dtype cannot change between fits when warm_start=True or "
                "in partial_fit; fit a fresh estimator instead"
            )
        if y is None:
            raise ValueError(
                f"{type(self).__name__} requires y to be passed, but the target y is None"
            )
        arch = self._architecture()
        if reuse and arch != self._arch:
            raise ValueError(
                "conv_filters, conv_kernel_size, pool_size, pooling and attention_units cannot "
                "change between fits when warm_start=True or in partial_fit; fit a fresh "
                "estimator instead"
            )
        seqs, frame = self._as_sequences(X, dtype, fitted=reuse)
        y_enc, n_outputs, per_step = self._encode_targets(y, seqs, first=not reuse, classes=classes)
        if reuse and self._fcn_is_auto:
            fcn = self._fcn  # the first fit's choice, as patch_size='auto' keeps its size
            self._check_shuffled_length(seqs)
        else:
            fcn = self._fcn_architecture(seqs, per_step)
        if reuse and fcn != self._fcn:
            raise ValueError(
                "fcn_filters, fcn_kernel_sizes, fcn_squeeze_excitation, dimension_shuffle and, "
                "with dimension_shuffle, the sequence length cannot change between fits when "
                "warm_start=True or in partial_fit; fit a fresh estimator instead"
            )
        if per_step and fcn is not None:
            raise ValueError(
                "fcn_filters and dimension_shuffle build one output per sequence; they cannot be "
                "used with per-step targets (return_sequences)"
            )
        if per_step and self.pooling != "last":
            raise ValueError(
                f"pooling={self.pooling!r} pools the sequence into one output; it cannot be used "
                "with per-step targets (return_sequences). Use pooling='last'."
            )
        self._check_tbptt(per_step, fcn)
        if reuse and (n_outputs != self._n_outputs or per_step != self._per_step):
            raise ValueError(
                f"y has {n_outputs} output(s){' per step' if per_step else ''}; the fitted model "
                f"has {self._n_outputs}{' per step' if self._per_step else ''}"
            )
        patch = self._choose_patch(seqs, per_step, arch, fcn)
        if reuse:
            asked = getattr(self, "patch_size", None)
            if asked not in ("auto", None) and patch != self._patch:
                raise ValueError(
                    f"patch_size cannot change between fits when warm_start=True or in "
                    f"partial_fit (fitted with {self._patch}, now {asked}); fit a "
                    "fresh estimator instead"
                )
            patch = self._patch
        else:
            self._new_network(
                dtype, hidden, seqs.x.shape[2], n_outputs, per_step, arch, frame, patch, fcn
            )
        seqs = patch_steps(seqs, patch)
        if reuse and self._net_config() != self.__dict__.get("_net_config_used"):
            self.__dict__.pop("_net", None)  # dropout or merge changed between fits
        self.__dict__["_net_config_used"] = self._net_config()

        weights = self._item_weights(sample_weight, seqs, y_enc)
        train, val = (seqs, y_enc, weights), None
        if validation_data is not None and not incremental:
            val = self._validation_set(validation_data, dtype)
        elif self.early_stopping and not incremental:
            train, val = self._split_validation(seqs, y_enc, weights, self._rng)
        return FitPlan(train, train[0].x.shape[0], 1 if incremental else self.max_iter, val)

    def _check_tbptt(self, per_step: bool, fcn: tuple | None = None) -> None:
        """Refuse truncated BPTT where the state cannot be carried across chunks."""
        if getattr(self, "tbptt_steps", None) is None:
            return
        if fcn is not None:
            raise ValueError(
                f"tbptt_steps={self.tbptt_steps} cannot be used with fcn_filters or "
                "dimension_shuffle: the FCN branch (convolutions, batch statistics, pooling) "
                "and the shuffled LSTM need the whole sequence at once. Use tbptt_steps=None."
            )
        if self.bidirectional:
            raise ValueError(
                f"tbptt_steps={self.tbptt_steps} cannot truncate bidirectional layers: the "
                "reverse direction needs the future steps. Use bidirectional=False or "
                "tbptt_steps=None."
            )
        if not per_step and self.pooling != "last":
            raise ValueError(
                f"tbptt_steps={self.tbptt_steps} cannot be used with pooling={self.pooling!r}: "
                "the pooling needs the output of every step at once. Use pooling='last' or "
                "tbptt_steps=None."
            )

    def _new_network(
        self, dtype, hidden, n_features, n_outputs, per_step, arch, frame, patch=1, fcn=None
    ) -> None:
        """Set up the fitted state of a fresh network with initial weights."""
        self.__dict__.pop("_net", None)
        self.__dict__.pop("_fcn_arch", None)
        if fcn is not None:  # absent without the branch: such models are as before
            self._fcn_arch = fcn
        self.patch_size_ = patch
        _training.forget_history(self)
        self._dtype = dtype
        self._hidden = hidden
        self.n_features_in_ = n_features
        self._n_outputs = n_outputs
        self._per_step = self.return_sequences_ = per_step
        self._fitted_arch = arch
        self.frame_shape_ = frame
        n_in = n_features * patch if arch[0] is None else arch[0].output_width(frame)
        if fcn is not None and fcn[3]:
            n_in = fcn[4]  # dimension shuffle: the LSTM's features are the time steps
        if n_in > MAX_SIZE:
            raise ValueError(
                f"conv_filters={self.conv_filters} gives the conv block an output of {n_in} "
                f"features per step; the engine's limit is {MAX_SIZE}. Use fewer filters or a "
                "larger pool_size"
            )
        _check_layer_sizes(hidden, n_in, self.bidirectional)
        self._rng = _training.make_rng(self.random_state)
        self._init_parameters(self._rng)

    def _net_config(self) -> tuple:
        """What builds the engine object besides the layout: a change rebuilds it."""
        return (
            self.bidirectional,
            self.merge_mode,
            float(self.dropout),
            float(self.recurrent_dropout),
            float(getattr(self, "head_dropout", 0.0)),
        )

    def _optimizer_args(self) -> tuple:
        """The engine's trailing train_epoch arguments: optimizer, seed, threads."""
        return (
            self.optimizer,
            float(self.__dict__.get("learning_rate_", self.learning_rate)),
            float(self.beta_1),
            float(self.beta_2),
            float(self.epsilon),
            float(self.momentum),
            self.nesterov,
            float(self.rho),
            int(self._rng.randint(2**63 - 1, dtype=np.int64)),
            _threads(self.n_jobs),
        )

    def _train_epoch(self, train) -> tuple[str, float, int]:
        seqs, y_enc, weights = train
        targets, labels = self._engine_targets(y_enc)
        status, loss, _batches, step = self._network().train_epoch(
            self._params,
            self._opt_m,
            self._opt_v,
            self._opt_step,
            seqs.x,
            self._train_mask(seqs),
            targets,
            labels,
            weights,
            _training.batch_size(self.batch_size, seqs.x.shape[0]),
            self.shuffle,
            float(self.alpha),
            float(self.clipnorm or 0.0),
            *self._optimizer_args(),
            tbptt_steps=int(getattr(self, "tbptt_steps", None) or 0),
        )
        return status, loss, step

    # -- scikit-learn plumbing ----------------------------------------------------

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = isinstance(self, RegressorMixin)
        tags.input_tags.two_d_array = True
        tags.input_tags.three_d_array = True
        tags.non_deterministic = False
        return tags

    def _more_tags(self) -> dict[str, Any]:  # scikit-learn < 1.6
        return {"X_types": ["2darray", "3darray"]}

    def _check_predict_input(self, X) -> Sequences:
        if "_params" not in self.__dict__:  # scikit-learn's check is slow for one-sample calls
            check_is_fitted(self, "_params")
        seqs = self._as_sequences(X, self._dtype, fitted=True)[0]
        self._check_shuffled_length(seqs)
        return patch_steps(seqs, self._patch)

    def _check_shuffled_length(self, seqs: Sequences) -> None:
        """A model with the dimension shuffle reads the fitted length only."""
        fcn = self._fcn
        if fcn is not None and fcn[3]:
            if seqs.mask is not None or seqs.x.shape[1] != fcn[4]:
                raise ValueError(
                    "this model was fitted with dimension_shuffle=True"
                    + (" (chosen by fcn_filters='auto')" if self._fcn_is_auto else "")
                    + f" on sequences of {fcn[4]} steps: X must have {fcn[4]} steps in every "
                    f"sequence, none missing; got {seqs.x.shape[1]} steps"
                    + (" with padding or missing steps" if seqs.mask is not None else "")
                )

    @property
    def _patch(self) -> int:
        # Models pickled before patching have none.
        return self.__dict__.get("patch_size_", 1)

    def _choose_patch(self, seqs: Sequences, per_step: bool, arch: tuple, fcn) -> int:
        """The fitted patch size: `patch_size`, or the rule of ``'auto'``."""
        k = getattr(self, "patch_size", None)
        if k is None:
            return 1
        if k != "auto":
            if per_step:
                raise ValueError(
                    f"patch_size={k} groups steps into patches, so the model has no output "
                    "per step; per-step targets (return_sequences) need patch_size=None"
                )
            if arch[0] is not None or fcn is not None:
                raise ValueError(
                    f"patch_size={k} cannot be combined with a conv front end "
                    "(conv_filters) or the LSTM-FCN branch (fcn_filters, "
                    "dimension_shuffle); use patch_size=None"
                )
            return int(k)
        if fcn is not None or not self._auto_rules_apply(per_step):
            return 1
        return auto_patch_size(seqs.x.shape[1])

    def _check_unpatched(self, what: str) -> None:
        if self._patch > 1:
            raise ValueError(
                f"{what} needs a model that reads one step at a time; this one groups "
                f"{self._patch} steps into each LSTM step (patch_size_={self._patch}, "
                "chosen by patch_size='auto' for long sequences). Fit it with "
                "patch_size=None"
            )

    def attention_weights(self, X) -> np.ndarray:
        """Attention-pooling weights of each time step.

        Parameters
        ----------
        X : sequences, as in :meth:`predict`

        Returns
        -------
        weights : ndarray of shape (n, T)
            Each row sums to 1 over the sequence's real steps; padding steps
            get 0. For a model read in patches (``patch_size_ > 1``), one
            weight per patch: ``T = ceil(steps / patch_size_)``.
        """
        check_is_fitted(self, "_params")
        if self._arch[1] != "attention":
            raise ValueError(
                f"attention_weights needs a model fitted with pooling='attention'; this one was "
                f"fitted with pooling={self._arch[1]!r}"
            )
        seqs = self._check_predict_input(X)
        n, steps = seqs.x.shape[:2]
        out = np.empty((n, steps), dtype=self._dtype)
        self._network().attention_weights(
            self._params, seqs.x, seqs.mask, out, min(_PREDICT_BATCH, n), _threads(self.n_jobs)
        )
        return out.astype(np.float64)


class _Streamable:
    """``stream()``: one-step inference, for the estimators whose steps go forward in time."""

    # Whether a step's input is an array of features (else _stream_input converts).
    _stream_takes_arrays = True

    def stream(self, n_streams: int = 1) -> Stream:
        """Streaming inference: one time step at a time, for ``n_streams`` sequences.

        Parameters
        ----------
        n_streams : int, default=1
            Sequences fed side by side; the number may change later
            (:meth:`Stream.resize`, :meth:`Stream.add`).

        Returns
        -------
        stream : Stream
            ``stream.step(x_t)`` returns each stream's output for step
            ``x_t``: bitwise what :meth:`predict` (``predict_proba`` for a
            classifier) gives for that step of the whole sequence. An
            :class:`LSTMGenerator`'s stream takes one token (id or character)
            per stream and returns the next token's probabilities.
            ``stream.reset(i)`` starts stream ``i`` (or all) again.

        Raises
        ------
        ValueError
            For bidirectional layers (the reverse direction needs the future),
            ``pooling='mean'`` or ``'attention'`` (they need every step), or a
            conv front end.
        """
        check_is_fitted(self, "_params")
        if isinstance(n_streams, bool) or not isinstance(n_streams, (int, np.integer)):
            raise ValueError(f"n_streams must be a positive integer; got {n_streams!r}")
        if n_streams < 1:
            raise ValueError(f"n_streams must be a positive integer; got {n_streams!r}")
        front, pooling, _ = self._arch
        if self.bidirectional:
            raise ValueError(
                "a bidirectional model cannot be streamed: the reverse direction needs the "
                "future steps. Use predict on whole sequences."
            )
        if not self._per_step and pooling != "last":
            raise ValueError(
                f"a model with pooling={pooling!r} cannot be streamed: the pooling needs the "
                "output of every step. Use predict on whole sequences."
            )
        if front is not None:
            raise ValueError(
                "a model with a conv front end cannot be streamed yet; use predict on whole "
                "sequences"
            )
        self._check_unpatched("stream()")
        if getattr(self, "_fcn", None) is not None:
            auto = getattr(self, "_fcn_is_auto", False)
            raise ValueError(
                "a model with fcn_filters or dimension_shuffle cannot be streamed: the FCN "
                "branch and the shuffled LSTM need the whole sequence. Use predict on whole "
                "sequences"
                + (
                    ", or fit with fcn_filters=None, patch_size=None to stream (fcn_filters="
                    "'auto' built the branch for these long univariate series)."
                    if auto
                    else "."
                )
            )
        engine = self._network().stream(
            self._params, int(n_streams), self.__dict__.get("_inference_precision", "float32")
        )
        return Stream(self, engine, _threads(self.n_jobs))

    def _stream_input(self, x, n_streams: int) -> tuple[np.ndarray, bool]:
        """One step's input as [n_streams, F]; and whether it was one stream's 1-D row."""
        arr = np.asarray(x, dtype=self._dtype)
        n_features = self.n_features_in_
        if arr.ndim == 2 and arr.shape == (n_streams, n_features):
            return np.ascontiguousarray(arr), False
        if arr.ndim <= 1 and arr.size == n_streams * n_features:
            # One stream's row [F], or a scalar for one feature: its output alone.
            single = n_streams == 1 and (arr.ndim == 0 or n_features > 1)
            return np.ascontiguousarray(arr.reshape(n_streams, n_features)), single
        raise ValueError(
            f"a step's input must be [n_streams, n_features] = [{n_streams}, {n_features}]"
            f"{' (or [n_features] for one stream)' if n_streams == 1 else ''}; got shape "
            f"{arr.shape}"
        )

    def _stream_squeeze(self) -> bool:
        """Whether a step's [n_streams, O] outputs lose their last axis, as predict's do."""
        return False


class _WeightsInOut:
    """Weights from and to PyTorch and Keras, for LSTMRegressor and LSTMClassifier."""

    @classmethod
    def from_torch(cls, lstm, head, *, classes=None, return_sequences: bool = False, **params):
        """An estimator with the weights of a ``torch.nn.LSTM`` and a ``torch.nn.Linear``.

        The estimator computes ``head`` on the final hidden state of the top
        layer (both directions concatenated: ``h_n``, Keras' semantics), or on
        every step's output with ``return_sequences=True``; a classifier
        applies softmax to the head's output. It predicts what that PyTorch
        model computes and can be fine-tuned with ``partial_fit``.

        Parameters
        ----------
        lstm : torch.nn.LSTM
            Any sizes, layers and directions; ``proj_size`` must be 0. The
            LSTM's batch_first setting does not matter: estimators take
            ``[n, T, F]``.
        head : torch.nn.Linear
            From ``directions * hidden_size`` features to the outputs.
        classes : array-like, optional
            A classifier's labels, one per output of the head (default
            ``0 .. n_outputs - 1``).
        return_sequences : bool, default=False
            Apply the head at every step.
        **params
            Other estimator parameters (learning rate, ... for fine-tuning).

        Returns
        -------
        estimator
            Fitted (``n_iter_ == 0``), with a fresh optimizer state.
        """
        from ._interop import from_torch

        return from_torch(
            cls, lstm, head, classes=classes, return_sequences=return_sequences, **params
        )

    @classmethod
    def from_keras(cls, model, *, classes=None, **params):
        """An estimator with the weights of a Keras ``Sequential`` model.

        The model is ``LSTM`` or ``Bidirectional(LSTM)`` layers (tanh and
        sigmoid activations, not stateful; ``Dropout`` layers are inactive in
        prediction and skipped) and a ``Dense`` head: linear for a regressor,
        softmax for a classifier (or sigmoid with one unit: two classes). A
        last LSTM with ``return_sequences=True`` gives a per-step model.
        Keras' kernel ``[F, 4H]`` is transposed into lstmlearn's (PyTorch's)
        ``[4H, F]``; the gate order (i, f, c, o) is the same.

        Parameters
        ----------
        model : keras.Sequential
        classes : array-like, optional
            A classifier's labels, one per output (default ``0 .. O - 1``).
        **params
            Other estimator parameters.

        Returns
        -------
        estimator
            Fitted (``n_iter_ == 0``), with a fresh optimizer state.
        """
        from ._interop import from_keras

        return from_keras(cls, model, classes=classes, **params)

    def to_torch(self):
        """A ``torch.nn.Module`` (``.lstm``, an ``nn.LSTM``, and ``.head``, an ``nn.Linear``).

        Its ``forward(x)`` on ``x [n, T, F]`` returns what :meth:`predict`
        (regressor, as ``[n, O]`` / ``[n, T, O]``) or :meth:`predict_proba`
        (classifier) returns. Models that ``nn.LSTM`` cannot express (a conv
        front end, pooling other than 'last', layers of different sizes,
        ``merge_mode`` other than 'concat') are refused.

        Returns
        -------
        torch.nn.Module
        """
        from ._interop import to_torch

        return to_torch(self)


# Parameters every model shares: network size, optimizer and training loop.
_COMMON_PARAMS = (
    "hidden_layer_sizes",
    "optimizer",
    "learning_rate",
    "momentum",
    "nesterov",
    "beta_1",
    "beta_2",
    "epsilon",
    "rho",
    "clipnorm",
    "batch_size",
    "max_iter",
    "shuffle",
    "tol",
    "n_iter_no_change",
    "lr_schedule",
    "lr_factor",
    "lr_patience",
    "min_learning_rate",
    "random_state",
    "n_jobs",
    "verbose",
    "warm_start",
    "callbacks",
    "dtype",
)


def _constraints(*names: str) -> dict:
    """The estimators' parameter constraints for `names`."""
    return {name: _BaseLSTM._parameter_constraints[name] for name in names}


class LSTMRegressor(_Streamable, _WeightsInOut, RegressorMixin, _BaseLSTM):
    """LSTM regression for sequences, trained by the C++ engine.

    Input is ``[samples, timesteps, features]`` like Keras (a 2-D array is one
    feature per step; a list of 2-D sequences of different lengths is padded
    and masked automatically). The output is predicted from the last step, or
    at every step (``return_sequences``).

    Parameters
    ----------
    hidden_layer_sizes : int or tuple of int, default=(64,)
        Units of each stacked LSTM layer.
    bidirectional : bool, default=False
        Run each layer over the sequence in both directions.
    merge_mode : {'concat', 'sum', 'mul', 'ave'}, default='concat'
        How the two directions of a bidirectional layer are combined (Keras).
    return_sequences : bool or None, default=None
        Predict at every step. None infers it from y's shape only where that
        is unambiguous: a 3-D y ``[n, T, O]``, or a list of per-step arrays
        for a list of sequences, is per step; a 2-D y ``[n, k]`` is ``k``
        outputs per sequence, even when ``k`` equals the number of timesteps.
        For per-step targets ``[n, T]`` (a classifier's per-step labels
        included), set True. The mode used is ``return_sequences_``.
    dropout : float, default=0.0
        Fraction of each layer's input features dropped per sample in training.
    recurrent_dropout : float, default=0.0
        Fraction of the recurrent state dropped per sample in training.
    head_dropout : float, default=0.0
        Fraction of the LSTM's output features dropped before the output
        layer in training (inverted dropout per sample, and per step for
        per-step targets): Keras's ``Dropout`` layer between ``LSTM`` and
        ``Dense``. With ``fcn_filters`` it drops the LSTM branch only, as the
        LSTM-FCN papers' ``Dropout(0.8)`` does.
    alpha : float, default=0.0
        L2 penalty on the weights (not biases), as in scikit-learn's MLP.
    optimizer : {'adam', 'sgd', 'rmsprop'}, default='adam'
        Update rule (Keras's formulas).
    learning_rate : float, default=0.001
        Step size.
    momentum : float, default=0.0
        Momentum of SGD and RMSprop.
    nesterov : bool, default=False
        Nesterov momentum for SGD.
    beta_1, beta_2 : float, default=0.9, 0.999
        Adam's moment decay rates.
    epsilon : float, default=1e-7
        Adam's and RMSprop's numerical stabiliser.
    rho : float, default=0.9
        RMSprop's decay rate.
    clipnorm : float or None, default=None
        Clip each gradient tensor to this norm (Keras).
    batch_size : int or 'auto', default='auto'
        Samples per mini-batch. ``'auto'``: ``min(32, ceil(n / 16))`` for
        ``n`` training sequences (those of the call, for ``partial_fit``), so
        that an epoch makes at least 16 updates; 32 (Keras's default) from 497
        sequences on. Chosen by cross-validation
        on the training splits of eight UCR/UEA sets (see benchmarks/README).
    max_iter : int, default=200
        Maximum epochs.
    shuffle : bool, default=True
        Shuffle the samples every epoch.
    tol : float, default=1e-4
        Improvement that counts, for the schedule and for stopping (as
        scikit-learn's MLP and Keras' ``min_delta``).
    n_iter_no_change : int, default=10
        Epochs without an improvement of ``tol`` before training stops; with
        ``lr_schedule='plateau'``, counted at ``min_learning_rate`` only, so
        that a plateau of the loss early in training reduces the rate rather
        than ending the fit (as scikit-learn's MLP with
        ``learning_rate='adaptive'``). The stopping quantity is the validation
        score when there is validation data, else the training loss.
    early_stopping : bool, default=False
        Hold out ``validation_fraction`` of the data and stop when its score
        stops improving (see ``n_iter_no_change``).
    validation_fraction : float, default=0.1
        Share of the data held out for early stopping.
    validation_split : {'shuffle', 'last'}, default='shuffle'
        Which samples early stopping holds out: a shuffled share (stratified
        for a classifier), or the last ``validation_fraction`` of the samples
        in the order given (as Keras' ``validation_split``): for windows of
        one series, the latest ones, so that no window of the validation
        period overlaps one in training.
    restore_best_weights : bool, default=True
        End with the weights of the epoch with the best validation score
        (with validation data), else of the lowest training loss; the epoch
        is ``best_epoch_``.
    lr_schedule : {'plateau', 'constant'}, default='plateau'
        ``'plateau'`` multiplies the learning rate by ``lr_factor`` after
        ``lr_patience`` epochs without an improvement of ``tol`` of the
        monitored loss (the validation loss when there is validation data,
        else the training loss), down to ``min_learning_rate``, as Keras'
        ``ReduceLROnPlateau``; ``'constant'`` keeps ``learning_rate``. The
        rate reached is ``learning_rate_``; ``warm_start`` continues at it.
    lr_factor : float, default=0.2
        Factor of each reduction, in (0, 1).
    lr_patience : int, default=10
        Epochs without improvement before the rate is reduced.
    min_learning_rate : float, default=1e-5
        The rate is not reduced below this (positive) value; training may stop
        only there.
    loss : {'squared_error', 'absolute_error', 'huber'}, default='squared_error'
        Training loss.
    random_state : int, RandomState instance or None, default=None
        Seeds initialisation, shuffling, dropout and the validation split.
        Fits with the same seed are identical, for any n_jobs.
    n_jobs : int or None, default=None
        Compute threads. None: ``LSTMLEARN_NUM_THREADS`` if set, else
        ``OMP_NUM_THREADS`` if set, else the CPUs this process may use (its
        cgroup CPU quota, then its affinity mask). Negative values count
        back from those CPUs (-1: all). threadpoolctl's ``threadpool_limits``
        caps every value.
    verbose : {0, 1, 2}, default=0
        1: a progress bar over epochs; 2: one line per epoch.
    warm_start : bool, default=False
        Continue from the fitted weights and optimizer state on the next fit.
    callbacks : callable or list of callables, default=None
        Each is called after every epoch as ``callback(estimator, logs)``;
        ``logs`` holds epoch, loss, seconds, learning_rate and, with
        validation data, val_loss and val_score. A callback returning True stops training.
    dtype : {np.float32, np.float64}, default=np.float32
        Precision of training and prediction.
    conv_filters : int or None, default=None
        Filters of a time-distributed convolution front end (CNN-LSTM); None
        for none. Each time step's input goes through convolution (valid
        padding), ReLU and max pooling, flattened, before the first LSTM layer;
        the block is trained with the rest of the network.
    conv_kernel_size : int or (int, int), default=3
        With an int, a 1-D convolution over sub-sequences: X is
        ``[samples, timesteps, steps, features]``. With a pair ``(kh, kw)``, a
        2-D convolution over frames: X is ``[samples, timesteps, height,
        width]`` or ``[samples, timesteps, height, width, channels]``.
    pool_size : int, default=2
        Max-pooling window and stride of the front end (``p x p`` in 2-D).
    pooling : {'last', 'mean', 'attention'}, default='last'
        How a one-output-per-sequence head sees the sequence: the last step,
        the mean over the real steps, or attention pooling (a learned score
        ``v . tanh(W h_t + b)`` per step, softmax over the real steps; see
        :meth:`attention_weights`). Not for per-step targets.
    attention_units : int, default=16
        Units of the attention score with ``pooling='attention'``.
    missing : {'raise', 'mask'}, default='raise'
        A step of X holding NaN is an error, or (``'mask'``) a missing step:
        masked out as padding is (the state is carried over it, and it counts
        in no loss or pooling), in fit and in predict.
    tbptt_steps : int or None, default=None
        Truncated backpropagation through time for long sequences: each
        mini-batch's sequences are cut into chunks of this many steps; the
        state (h, c of every layer) is carried from one chunk into the next,
        and gradients stop at chunk borders, so that training memory grows
        with ``tbptt_steps`` rather than with the sequence length. With
        per-step targets the loss of each chunk is backpropagated within it
        and the optimizer steps once per chunk (TBPTT(k, k)); with one target
        per sequence, the earlier chunks run forward only and the last chunk
        is backpropagated. Dropout masks are drawn anew for each chunk. None,
        or a value of at least the sequence length, trains on whole sequences
        (the same result). Not for bidirectional layers or
        ``pooling='mean'``/``'attention'``, which need every step at once.
    fcn_filters : tuple of int, 'auto' or None, default=None
        LSTM-FCN (Karim et al. 2017): filters of each block of a fully
        convolutional branch run beside the LSTM layers, e.g. the papers'
        ``(128, 256, 128)``. Each block is a 1-D convolution over time ('same'
        padding, stride 1), batch normalisation and ReLU; global average
        pooling over time ends the branch, and its output is concatenated
        after the LSTM's (last step or ``pooling``) into the output layer.
        Batch normalisation uses the batch's statistics in training and its
        running statistics (momentum 0.1, eps 1e-5, as PyTorch's
        ``BatchNorm1d``) in predict; they are saved with the model. With
        sequences of different lengths, padding steps enter no convolution,
        statistic or pooling. None: no branch (the model is exactly as
        without these parameters). One output per sequence only; not with a
        conv front end or ``tbptt_steps``, and not for :meth:`stream` or
        ``to_torch`` (``to_onnx`` exports it). ``'auto'`` (the default of
        :class:`LSTMClassifier`): a branch of ``(32, 64, 32)`` filters with
        ``dimension_shuffle`` for univariate sequences of one length of 101
        to 1,000 steps with one target each (not with ``tbptt_steps``,
        ``missing='mask'``, a conv front end or an integer ``patch_size``),
        none otherwise;
        ``fcn_filters_`` holds the choice, kept by ``warm_start`` and
        ``partial_fit``. Chosen by cross-validation on the training splits
        of UCR series, where it beat patches on 150 to 427 steps and lost on
        1,460 (``benchmarks/README.md``).
    fcn_kernel_sizes : tuple of int, default=(8, 5, 3)
        Kernel size of each block of ``fcn_filters`` (one per block).
    fcn_squeeze_excitation : bool or 'auto', default='auto'
        MLSTM-FCN (Karim et al. 2019): squeeze-and-excitation after every
        block but the last (global average pooling, a dense layer of
        ``max(1, filters // 16)`` units with ReLU, a dense layer with a
        sigmoid, scaling each channel; no biases, as the papers' code).
        'auto': on when X has more than one feature.
    dimension_shuffle : bool, default=False
        The LSTM layers read each sequence transposed, as the papers do: the
        ``F`` features become the steps and the ``T`` time steps the features
        of each. Every sequence must then have the length seen in fit,
        without missing steps. The FCN branch always reads X as it is.
    patch_size : int, 'auto' or None, default='auto'
        Read every ``patch_size`` consecutive steps as one LSTM step of
        ``patch_size * n_features`` values (the patches of PatchTST), so that
        a long series reaches the LSTM as tens of steps instead of thousands:
        faster, and much easier to train. Each sequence is aligned on its last
        step (a length that the patch size does not divide gets zeros before
        its first step). ``'auto'``: sequences longer than 100 steps are read
        in patches of ``ceil(T / 50)`` steps, shorter ones step by step; never
        with per-step targets, ``tbptt_steps``, a conv front end or an FCN
        branch (so not where :class:`LSTMClassifier`'s ``fcn_filters='auto'``
        builds one). None: one
        step at a time. The rule was chosen by cross-validation on the
        training splits of long UCR series (``benchmarks/README.md``).
        ``stream()`` and ``to_torch()`` need ``patch_size_ == 1``;
        ``to_onnx()`` exports the patching into the graph.

    Attributes
    ----------
    n_features_in_ : int
        Features per step seen in fit (with a conv front end, the size of one
        flattened frame).
    patch_size_ : int
        Steps per LSTM step chosen in fit (1: no patches).
    fcn_filters_ : tuple of int or None
        Filters of the fitted FCN branch (``fcn_filters``, or the choice of
        ``'auto'``); None without one.
    frame_shape_ : tuple of int or None
        With a conv front end, the frame seen in fit: ``(steps, features)``
        or ``(height, width, channels)``.
    loss_curve_ : list of float
        Training loss of each epoch (with the L2 penalty).
    validation_scores_ : list of float or None
        R² on the held-out data at each epoch, with validation data.
    best_loss_ : float
        Lowest training loss.
    best_validation_score_ : float or None
        Highest validation score, with early stopping.
    n_iter_ : int
        Epochs run.
    history_ : dict of lists
        Per epoch: loss, seconds, learning_rate (the rate the epoch used)
        and, with validation data, val_loss and val_score.
    learning_rate_ : float
        The current learning rate (after the schedule's reductions).
    best_epoch_ : int or None
        The epoch (1-based, counting all epochs in ``history_``) whose weights
        ``restore_best_weights`` restored at the end of the last fit; None
        without it.
    return_sequences_ : bool
        Whether the model predicts at every step (see ``return_sequences``).

    Examples
    --------
    >>> import numpy as np
    >>> from lstmlearn import LSTMRegressor
    >>> X = np.random.rand(64, 10, 1)
    >>> y = X.sum(axis=(1, 2))
    >>> model = LSTMRegressor(hidden_layer_sizes=8, max_iter=5, random_state=0).fit(X, y)
    >>> model.predict(X[:2]).shape
    (2,)
    """

    _parameter_constraints: ClassVar[dict] = {
        **_BaseLSTM._parameter_constraints,
        "loss": [StrOptions({"squared_error", "absolute_error", "huber"})],
    }

    def _encode_targets(self, y, seqs, first, classes=None):
        padded = per_step_target(y, seqs)
        if padded is not None:
            y_arr = padded
        else:
            y_arr = np.asarray(y)
            if y_arr.dtype == object:
                try:
                    y_arr = y_arr.astype(np.float64)
                except (TypeError, ValueError):
                    raise ValueError(
                        "Unknown label type: y must hold real numbers for a regressor"
                    ) from None
        if y_arr.dtype.kind not in "biuf":
            raise ValueError(
                f"Unknown label type: y must hold real numbers for a regressor; got dtype "
                f"{y_arr.dtype}"
            )
        n = seqs.x.shape[0]
        if y_arr.ndim == 0 or y_arr.shape[0] != n:
            raise ValueError(
                f"X and y have different numbers of samples: {n} and "
                f"{y_arr.shape[0] if y_arr.ndim else 'a scalar'}"
            )
        if not np.isfinite(y_arr).all():
            raise ValueError("Input y contains NaN or infinity")
        per_step = self._infer_per_step(y_arr, padded is not None, 3) if first else self._per_step
        if per_step:
            steps = seqs.x.shape[1]
            if y_arr.ndim not in (2, 3) or y_arr.shape[1] != steps:
                raise ValueError(
                    f"Per-step targets must have shape ({n}, {steps}) or ({n}, {steps}, outputs);"
                    f" got {y_arr.shape}"
                )
            self._y_ndim = y_arr.ndim if first else self._y_ndim
            y3 = y_arr.reshape(n, steps, -1)
            return y3, y3.shape[2], True
        if y_arr.ndim > 2:
            raise ValueError(f"y must be 1-D or 2-D for one output per sequence; got {y_arr.shape}")
        if first:
            self._y_ndim = y_arr.ndim
        y2 = y_arr.reshape(n, -1)
        return y2, y2.shape[1], False

    def _score_outputs(self, out, y_enc, mask):
        if self._per_step:
            keep = np.ones(out.shape[:2], bool) if mask is None else mask.astype(bool)
            return r2_score(y_enc[keep], out[keep])
        return r2_score(y_enc, out)

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y, sample_weight=None, validation_data=None) -> LSTMRegressor:
        """Fit the model to sequences X and targets y.

        Parameters
        ----------
        X : array-like of shape (n, T, F) or (n, T), or list of (T_i, F) arrays
            Training sequences.
        y : array-like of shape (n,), (n, O), (n, T) or (n, T, O), or list of per-step arrays
            Targets, per sequence or per step.
        sample_weight : array-like of shape (n,), optional
            Weight of each sequence in the loss.
        validation_data : tuple (X_val, y_val) or (X_val, y_val, sample_weight_val), optional
            Held-out data to monitor at every epoch (as Keras), used instead
            of a ``validation_fraction`` split: the schedule watches its loss,
            the stopping rule and ``restore_best_weights`` its score, with or
            without ``early_stopping``.

        Returns
        -------
        self : LSTMRegressor
        """
        return self._fit(X, y, sample_weight, incremental=False, validation_data=validation_data)

    @_fit_context(prefer_skip_nested_validation=True)
    def partial_fit(self, X, y, sample_weight=None) -> LSTMRegressor:
        """Train one epoch on (X, y), starting from the current weights if fitted.

        Parameters
        ----------
        X, y, sample_weight
            As in :meth:`fit`.

        Returns
        -------
        self : LSTMRegressor
        """
        return self._fit(X, y, sample_weight, incremental=True)

    def predict(self, X) -> np.ndarray | list[np.ndarray]:
        """Predict targets for sequences X.

        Parameters
        ----------
        X : array-like of shape (n, T, F) or (n, T), or list of (T_i, F) arrays
            Sequences; their length may differ from those seen in fit.

        Returns
        -------
        y : ndarray of shape (n,) or (n, O); per step (n, T) or (n, T, O), or a
            list of per-step arrays for a list of sequences of different lengths.
        """
        seqs = self._check_predict_input(X)
        out = self._raw_predict(seqs).astype(np.float64)
        if self._per_step:
            if self._y_ndim == 2:
                out = out[:, :, 0]
            return unpad(out, seqs.lengths)
        return out[:, 0] if self._y_ndim == 1 else out

    def _stream_squeeze(self) -> bool:
        return self._y_ndim == 2 if self._per_step else self._y_ndim == 1

    def score(self, X, y, sample_weight=None) -> float:
        """R² of the predictions (over real steps for per-step targets).

        Parameters
        ----------
        X : sequences, as in :meth:`predict`
        y : targets, as in :meth:`fit`
        sample_weight : array-like of shape (n,), optional

        Returns
        -------
        score : float
        """
        if not getattr(self, "_per_step", False):
            return super().score(X, y, sample_weight)
        seqs = self._check_predict_input(X)
        y_enc, _, _ = self._encode_targets(y, seqs, first=False)
        return self._score_outputs(self._raw_predict(seqs), y_enc, seqs.mask)


class LSTMClassifier(_Streamable, _WeightsInOut, ClassifierMixin, _BaseLSTM):
    """LSTM classification for sequences, trained by the C++ engine.

    One label per sequence (from the last step) or one label per step
    (``y`` of shape ``[n, T]``). Labels may be of any hashable type; binary and
    multiclass problems use a softmax output and log loss.

    Parameters
    ----------
    hidden_layer_sizes, bidirectional, merge_mode, return_sequences, dropout,
    recurrent_dropout, head_dropout, alpha, optimizer, learning_rate, momentum,
    nesterov, beta_1, beta_2, epsilon, rho, clipnorm, batch_size, max_iter, shuffle, tol,
    n_iter_no_change, early_stopping, validation_fraction, validation_split,
    restore_best_weights, lr_schedule, lr_factor, lr_patience,
    min_learning_rate, random_state, n_jobs, verbose, warm_start,
    callbacks, dtype, conv_filters, conv_kernel_size, pool_size, pooling,
    attention_units, missing, tbptt_steps, fcn_kernel_sizes,
    fcn_squeeze_excitation, dimension_shuffle, patch_size
        As in :class:`LSTMRegressor`; the validation score is accuracy.
    fcn_filters : tuple of int, 'auto' or None, default='auto'
        As in :class:`LSTMRegressor`, whose default is None. ``'auto'``: the
        LSTM-FCN branch of ``(32, 64, 32)`` filters, with the dimension
        shuffle, for univariate sequences of one length of 101 to 1,000 steps
        and one label each; none otherwise (shorter, longer, multivariate or
        variable-length sequences, labels per step, ``tbptt_steps``,
        ``missing='mask'``, a conv front end, an integer ``patch_size``). On
        UCR series of 150 to 427 steps it beat the LSTM on patches in
        cross-validation on the training splits (``benchmarks/README.md``).
        Such a model predicts sequences of the fitted length only, and
        cannot be streamed; set ``fcn_filters=None`` for the LSTM alone.
    loss : {'log_loss'}, default='log_loss'
        Training loss.
    class_weight : dict, 'balanced' or None, default=None
        Weights of the classes in the loss.

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
        Class labels.
    n_features_in_, frame_shape_, patch_size_, fcn_filters_, loss_curve_, validation_scores_,
    best_loss_, best_validation_score_, n_iter_, history_, learning_rate_, best_epoch_,
    return_sequences_
        As in :class:`LSTMRegressor`.

    Examples
    --------
    >>> import numpy as np
    >>> from lstmlearn import LSTMClassifier
    >>> X = np.random.rand(64, 10, 1)
    >>> y = np.where(X[:, 0, 0] > 0.5, "high", "low")
    >>> model = LSTMClassifier(hidden_layer_sizes=8, max_iter=5, random_state=0).fit(X, y)
    >>> model.predict_proba(X[:2]).shape
    (2, 2)
    """

    _parameter_constraints: ClassVar[dict] = {
        **_BaseLSTM._parameter_constraints,
        "loss": [StrOptions({"log_loss"})],
        "class_weight": [dict, StrOptions({"balanced"}), None],
    }

    def __init__(
        self,
        hidden_layer_sizes: int | Sequence[int] = (64,),
        *,
        bidirectional: bool = False,
        merge_mode: str = "concat",
        return_sequences: bool | None = None,
        dropout: float = 0.0,
        recurrent_dropout: float = 0.0,
        alpha: float = 0.0,
        optimizer: str = "adam",
        learning_rate: float = 0.001,
        momentum: float = 0.0,
        nesterov: bool = False,
        beta_1: float = 0.9,
        beta_2: float = 0.999,
        epsilon: float = 1e-7,
        rho: float = 0.9,
        clipnorm: float | None = None,
        batch_size: int | str = "auto",
        max_iter: int = 200,
        shuffle: bool = True,
        tol: float = 1e-4,
        n_iter_no_change: int = 10,
        early_stopping: bool = False,
        validation_fraction: float = 0.1,
        validation_split: str = "shuffle",
        restore_best_weights: bool = True,
        lr_schedule: str = "plateau",
        lr_factor: float = LR_FACTOR,
        lr_patience: int = LR_PATIENCE,
        min_learning_rate: float = MIN_LEARNING_RATE,
        loss: str = "log_loss",
        class_weight: dict | str | None = None,
        random_state: int | np.random.RandomState | None = None,
        n_jobs: int | None = None,
        verbose: int = 0,
        warm_start: bool = False,
        callbacks: Callable | Sequence[Callable] | None = None,
        dtype: type | str = np.float32,
        conv_filters: int | None = None,
        conv_kernel_size: int | tuple[int, int] = 3,
        pool_size: int = 2,
        pooling: str = "last",
        attention_units: int = 16,
        missing: str = "raise",
        tbptt_steps: int | None = None,
        fcn_filters: Sequence[int] | str | None = "auto",
        fcn_kernel_sizes: Sequence[int] = (8, 5, 3),
        fcn_squeeze_excitation: bool | str = "auto",
        dimension_shuffle: bool = False,
        patch_size: int | str | None = "auto",
        head_dropout: float = 0.0,
    ) -> None:
        super().__init__(
            hidden_layer_sizes,
            bidirectional=bidirectional,
            merge_mode=merge_mode,
            return_sequences=return_sequences,
            dropout=dropout,
            recurrent_dropout=recurrent_dropout,
            alpha=alpha,
            optimizer=optimizer,
            learning_rate=learning_rate,
            momentum=momentum,
            nesterov=nesterov,
            beta_1=beta_1,
            beta_2=beta_2,
            epsilon=epsilon,
            rho=rho,
            clipnorm=clipnorm,
            batch_size=batch_size,
            max_iter=max_iter,
            shuffle=shuffle,
            tol=tol,
            n_iter_no_change=n_iter_no_change,
            early_stopping=early_stopping,
            validation_fraction=validation_fraction,
            validation_split=validation_split,
            restore_best_weights=restore_best_weights,
            lr_schedule=lr_schedule,
            lr_factor=lr_factor,
            lr_patience=lr_patience,
            min_learning_rate=min_learning_rate,
            loss=loss,
            random_state=random_state,
            n_jobs=n_jobs,
            verbose=verbose,
            warm_start=warm_start,
            callbacks=callbacks,
            dtype=dtype,
            conv_filters=conv_filters,
            conv_kernel_size=conv_kernel_size,
            pool_size=pool_size,
            pooling=pooling,
            attention_units=attention_units,
            missing=missing,
            tbptt_steps=tbptt_steps,
            fcn_filters=fcn_filters,
            fcn_kernel_sizes=fcn_kernel_sizes,
            fcn_squeeze_excitation=fcn_squeeze_excitation,
            dimension_shuffle=dimension_shuffle,
            patch_size=patch_size,
            head_dropout=head_dropout,
        )
        self.class_weight = class_weight

    def _encode_targets(self, y, seqs, first, classes=None):
        padded = per_step_target(y, seqs)
        y_arr = padded if padded is not None else np.asarray(y)
        n = seqs.x.shape[0]
        if y_arr.ndim == 2 and y_arr.shape[1] == 1 and seqs.x.shape[1] != 1:
            warnings.warn(
                "A column-vector y was passed when a 1d array was expected; y is flattened",
                DataConversionWarning,
                stacklevel=4,
            )
            y_arr = y_arr.ravel()
        _check_labels(y_arr)
        if y_arr.size and type_of_target(y_arr.ravel()) == "continuous":
            raise ValueError(
                "Unknown label type: continuous. LSTMClassifier needs class labels; use "
                "LSTMRegressor for continuous targets"
            )
        if y_arr.ndim == 0 or y_arr.shape[0] != n:
            raise ValueError(
                f"X and y have different numbers of samples: {n} and "
                f"{y_arr.shape[0] if y_arr.ndim else 'a scalar'}"
            )
        steps = seqs.x.shape[1]
        if y_arr.ndim > 2 or (y_arr.ndim == 2 and y_arr.shape[1] != steps):
            raise ValueError(
                f"y must be labels of shape ({n},), or per-step labels of shape "
                f"({n}, {steps}) with return_sequences=True; got {y_arr.shape}. One-hot labels: "
                "pass y.argmax(axis=1)"
            )
        per_step = self._infer_per_step(y_arr, padded is not None, 3) if first else self._per_step
        if per_step and y_arr.ndim != 2:
            raise ValueError(
                f"This model labels every step (return_sequences); y must have shape ({n}, "
                f"{steps}); got {y_arr.shape}"
            )
        if not per_step and y_arr.ndim != 1:
            hint = (
                "set return_sequences=True for a label at every step"
                if first
                else "the model was fitted with one label per sequence"
            )
            raise ValueError(
                f"y has shape {y_arr.shape}, but this model takes one label per sequence, shape "
                f"({n},): {hint}. One-hot labels: pass y.argmax(axis=1)"
            )
        keep = None
        if per_step and seqs.mask is not None:
            keep = seqs.mask.astype(bool)
        seen = y_arr[keep] if keep is not None else y_arr.ravel()
        if first:
            found = np.unique(seen)
            if classes is not None:
                self.classes_ = np.unique(np.asarray(classes))
                unknown = np.setdiff1d(found, self.classes_)
                if unknown.size:
                    raise ValueError(f"y has labels {unknown.tolist()} that are not in classes")
            else:
                self.classes_ = found
            if len(self.classes_) < 2:
                raise ValueError(
                    "The classifier needs samples of at least 2 classes in the data; got 1 "
                    f"class: {self.classes_.tolist()}"
                )
        else:
            unknown = np.setdiff1d(np.unique(seen), self.classes_)
            if unknown.size:
                raise ValueError(
                    f"y has labels {unknown.tolist()} not seen in the first fit; known classes "
                    f"are {self.classes_.tolist()}"
                )
        codes = np.zeros(y_arr.shape, dtype=np.int32)
        if keep is not None:
            codes[keep] = np.searchsorted(self.classes_, y_arr[keep])
        else:
            codes = np.searchsorted(self.classes_, y_arr).astype(np.int32)
        return codes, len(self.classes_), per_step

    def _class_weights(self, y_enc):
        if self.class_weight is None:
            return None
        cw = (
            compute_class_weight(
                self.class_weight, classes=np.arange(len(self.classes_)), y=y_enc.ravel()
            )
            if self.class_weight == "balanced"
            else np.array([float(self.class_weight.get(c, 1.0)) for c in self.classes_])
        )
        return cw[y_enc]

    def _score_outputs(self, out, y_enc, mask):
        pred = out.argmax(axis=-1)
        if self._per_step:
            keep = np.ones(pred.shape, bool) if mask is None else mask.astype(bool)
            return accuracy_score(y_enc[keep], pred[keep])
        return accuracy_score(y_enc, pred)

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y, sample_weight=None, validation_data=None) -> LSTMClassifier:
        """Fit the model to sequences X and labels y.

        Parameters
        ----------
        X : array-like of shape (n, T, F) or (n, T), or list of (T_i, F) arrays
            Training sequences.
        y : array-like of shape (n,) or (n, T), or list of per-step label arrays
            Labels, per sequence or per step.
        sample_weight : array-like of shape (n,), optional
            Weight of each sequence in the loss.
        validation_data : tuple (X_val, y_val) or (X_val, y_val, sample_weight_val), optional
            Held-out data to monitor at every epoch (as Keras), used instead
            of a ``validation_fraction`` split: the schedule watches its loss,
            the stopping rule and ``restore_best_weights`` its score, with or
            without ``early_stopping``.

        Returns
        -------
        self : LSTMClassifier
        """
        return self._fit(X, y, sample_weight, incremental=False, validation_data=validation_data)

    @_fit_context(prefer_skip_nested_validation=True)
    def partial_fit(self, X, y, classes=None, sample_weight=None) -> LSTMClassifier:
        """Train one epoch on (X, y), starting from the current weights if fitted.

        Parameters
        ----------
        X, y, sample_weight
            As in :meth:`fit`.
        classes : array-like, optional
            All labels the model will ever see; required on the first call.

        Returns
        -------
        self : LSTMClassifier
        """
        if not hasattr(self, "_params") and classes is None:
            raise ValueError("classes must be passed on the first call to partial_fit")
        return self._fit(X, y, sample_weight, incremental=True, classes=classes)

    def predict_proba(self, X) -> np.ndarray | list[np.ndarray]:
        """Class probabilities.

        Parameters
        ----------
        X : sequences, as in :meth:`fit`

        Returns
        -------
        proba : ndarray of shape (n, n_classes), or (n, T, n_classes) per step
            Columns follow ``classes_``.
        """
        seqs = self._check_predict_input(X)
        out = self._raw_predict(seqs).astype(np.float64)
        return unpad(out, seqs.lengths) if self._per_step else out

    def predict(self, X) -> np.ndarray | list[np.ndarray]:
        """Most probable label of each sequence (or step).

        Parameters
        ----------
        X : sequences, as in :meth:`fit`

        Returns
        -------
        labels : ndarray of shape (n,), or (n, T) per step
        """
        seqs = self._check_predict_input(X)
        labels = self.classes_[self._raw_predict(seqs).argmax(axis=-1)]
        return unpad(labels, seqs.lengths) if self._per_step else labels

    def score(self, X, y, sample_weight=None) -> float:
        """Accuracy (over real steps for per-step labels).

        Parameters
        ----------
        X : sequences, as in :meth:`fit`
        y : labels, as in :meth:`fit`
        sample_weight : array-like of shape (n,), optional

        Returns
        -------
        score : float
        """
        if not getattr(self, "_per_step", False):
            return super().score(X, y, sample_weight)
        seqs = self._check_predict_input(X)
        y_enc, _, _ = self._encode_targets(y, seqs, first=False)
        return self._score_outputs(self._raw_predict(seqs), y_enc, seqs.mask)
