"""Encoder-decoder LSTM (sequence to sequence) in scikit-learn's idiom: LSTMSeq2Seq."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from numbers import Integral
from typing import Any, ClassVar

import numpy as np
import scipy.sparse as sp
from sklearn.base import _fit_context
from sklearn.metrics import r2_score
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_is_fitted

from . import _engine, _training
from ._training import FitPlan, aligned_copy
from .estimators import (
    _COMMON_PARAMS,
    LR_FACTOR,
    LR_PATIENCE,
    MAX_SIZE,
    MIN_LEARNING_RATE,
    _BaseLSTM,
    _check_layer_sizes,
    _constraints,
    _glorot,
    _orthogonal,
    _threads,
)

__all__ = ["LSTMSeq2Seq"]

_MODELS = {np.dtype(np.float32): "Seq2SeqF32", np.dtype(np.float64): "Seq2SeqF64"}
_PREDICT_BATCH = 256


@dataclass
class _Side:
    """One side (input or output) of a data set, ready for the engine.

    Attributes
    ----------
    data : ndarray
        Tokens [n, T] of int32, or values [n, T, F] in the model's dtype.
    mask : ndarray of shape (n, T) of uint8, or None
        1 for real steps (for outputs: the steps that count in the loss).
    tokens : bool
        Whether `data` holds tokens.
    ragged : bool
        Whether the sequences came as a list of different lengths.
    ndim : int
        Number of dimensions of the user's array (to give predictions back the
        same way).
    lengths : ndarray of shape (n,) or None
        Lengths of ragged sequences.
    """

    data: np.ndarray
    mask: np.ndarray | None
    tokens: bool
    ragged: bool
    ndim: int
    lengths: np.ndarray | None = None


def _is_ragged_list(X: object) -> bool:
    if isinstance(X, np.ndarray):
        return X.dtype == object
    if not isinstance(X, (list, tuple)) or not X:
        return False
    lengths = {len(np.asarray(s).reshape(-1)) if np.ndim(s) <= 1 else -1 for s in X}
    return len(lengths) > 1


def _as_side(X: object, name: str, dtype: np.dtype) -> _Side:
    """Token or numeric sequences from what the user passed as X or y."""
    if X is None:
        what = "the target y" if name == "y" else name
        raise ValueError(f"LSTMSeq2Seq requires {name} to be passed, but {what} is None")
    if sp.issparse(X):
        raise TypeError(
            f"Sparse data was passed for {name}, but dense data is required: sequences are "
            "[n, T] or [n, T, F] arrays"
        )
    if isinstance(X, np.ndarray) and X.dtype == object and all(np.ndim(e) == 0 for e in X.flat):
        # Numbers stored as objects (anything else raises TypeError here).
        X = np.array(X.tolist())
        if X.dtype == object:
            X = X.astype(np.float64)
    if _is_ragged_list(X):
        seqs = [np.asarray(s) for s in X]
        for i, s in enumerate(seqs):
            if s.ndim != 1:
                raise ValueError(
                    f"{name}[{i}] has shape {s.shape}; sequences of different lengths must be "
                    "1-D token sequences"
                )
            if s.size and s.dtype.kind not in "iu":
                raise ValueError(
                    f"{name}[{i}] has dtype {s.dtype}; sequences of different lengths must hold "
                    "integer tokens"
                )
            if s.size == 0:
                raise ValueError(f"{name}[{i}] is an empty sequence; each needs one token")
            _check_token_range(s[None], name, i)
        lengths = np.array([len(s) for s in seqs])
        data = np.zeros((len(seqs), lengths.max()), dtype=np.int64)
        for i, s in enumerate(seqs):
            data[i, : len(s)] = s
        mask = (np.arange(data.shape[1])[None] < lengths[:, None]).astype(np.uint8)
        return _Side(data, mask, True, True, 2, lengths)
    a = np.asarray(X)
    if a.dtype.kind == "c":
        raise ValueError(f"Complex data not supported: {name} has dtype {a.dtype}")
    if a.dtype.kind not in "biuf":
        raise ValueError(f"{name} must hold integer tokens or numbers, got dtype {a.dtype}")
    if a.ndim == 0 or a.shape[0] == 0:
        raise ValueError(
            f"{name} is empty: found an array of shape {a.shape}, while a minimum of 1 sample "
            "is required."
        )
    if a.ndim > 3 or (name == "X" and a.ndim == 1):
        raise ValueError(
            f"{name} must be {'1-D, ' if name == 'y' else ''}2-D or 3-D ([n, T] tokens or values, "
            f"or [n, T, F] values); got an array of shape {a.shape}. Reshape your data: "
            "a single sequence x as x[None]"
        )
    if a.ndim > 1 and a.shape[1] == 0:
        raise ValueError(
            f"0 feature(s) (shape={a.shape}) while a minimum of 1 is required: {name} has "
            "sequences of 0 steps"
        )
    if a.ndim == 3 and a.shape[2] == 0:
        raise ValueError(f"{name} has 0 features per step (shape {a.shape})")
    tokens = a.dtype.kind in "iu" and a.ndim <= 2
    if tokens:
        data = a.reshape(a.shape[0], -1)
        _check_token_range(data, name)
        data = data.astype(np.int64)
    else:
        data = a.astype(dtype).reshape(a.shape[0], a.shape[1] if a.ndim > 1 else 1, -1)
        if not np.isfinite(data).all():
            raise ValueError(f"Input {name} contains NaN or infinity.")
        data = np.ascontiguousarray(data)
    return _Side(data, None, tokens, False, a.ndim)


def _check_token_range(tokens: np.ndarray, name: str, row: int = 0) -> None:
    """Refuse token ids the engine cannot hold, before any cast could wrap them."""
    big = tokens > MAX_SIZE - 1
    if big.any():
        i, t = np.argwhere(big)[0]
        raise ValueError(
            f"token {tokens[i, t]} at {name}[{row + i}][{t}] is too large: token ids must be "
            f"integers in [0, {MAX_SIZE}) (each id takes a row of the embedding or output "
            "layer); map the tokens to consecutive ids first"
        )


def _check_vocabulary(side: _Side, size: int, name: str, what: str) -> None:
    """Raise naming the first token outside [0, size)."""
    data = side.data
    bad = (data < 0) | (data >= size)
    if side.mask is not None:
        bad &= side.mask.astype(bool)
    if bad.any():
        i, t = np.argwhere(bad)[0]
        raise ValueError(
            f"token {data[i, t]} at {name}[{i}][{t}] is outside the {what} vocabulary of size "
            f"{size} (tokens must be integers in [0, {size})); set {what}_vocab_size to cover "
            "every token"
        )


class LSTMSeq2Seq(_BaseLSTM):
    """Encoder-decoder LSTM: maps an input sequence to an output sequence.

    An encoder LSTM (stacked when ``hidden_layer_sizes`` has several entries)
    reads the input; a decoder LSTM with as many units as the top encoder layer
    writes the output, one step at a time, through a dense layer (softmax over
    the output vocabulary for tokens, linear for numbers). The whole training
    epoch, evaluation and greedy decoding run in C++.

    Parameters
    ----------
    hidden_layer_sizes : int or sequence of int, default=(64,)
        Units of each encoder layer; the decoder has ``hidden_layer_sizes[-1]``.
    mode : {'teacher_forcing', 'repeat'}, default='teacher_forcing'
        ``'teacher_forcing'``: the decoder starts from the encoder's final
        state and reads, at step t, the target of step t-1 (a start symbol at
        t = 0); prediction feeds back its own greedy output, up to
        ``max_length`` steps or the end of the sequence. ``'repeat'``: the
        encoder's final hidden state is repeated at every decoder step (Keras's
        RepeatVector), for outputs of one fixed length.
    attention : {'dot', 'additive'} or None, default=None
        Luong-style attention of the decoder outputs over the encoder outputs
        (dot or additive scores); the dense layer then reads
        [context; decoder output]. See :meth:`attention_weights`.
    attention_units : int or None, default=None
        Units of the additive score; None uses the decoder's units.
    embedding_dim : int, default=32
        Width of the token embeddings (input tokens, and fed-back output tokens
        in teacher-forcing mode).
    input_vocab_size, output_vocab_size : int or None, default=None
        Number of input / output tokens: tokens are integers in ``[0, size)``.
        None infers it from the first ``fit`` as the largest token plus one;
        set it when later data (``predict``, ``partial_fit``) may hold larger
        tokens. Ignored for numeric sequences.
    max_length : int or None, default=None
        Output steps produced by ``predict``; None uses the length of the
        training outputs (for sequences of different lengths, the longest plus
        one for the end symbol).
    tbptt_steps : int or None, default=None
        Truncated backpropagation through time for long input sequences: the
        encoder reads each mini-batch's inputs in chunks of this many steps,
        carrying its state (h, c of every layer) from one chunk into the next.
        The chunks before the last run forward only, keeping nothing for the
        backward pass, and gradients flow through the last chunk and the
        decoder, so that training memory grows with ``tbptt_steps`` rather
        than with the input length (as for the one-target-per-sequence case
        of :class:`LSTMRegressor`). None, or a value of at least the input
        length, trains on whole sequences (the same result). Not with
        ``attention``, which reads the encoder's output at every input step.
    optimizer, learning_rate, momentum, nesterov, beta_1, beta_2, epsilon, rho, clipnorm
        As in :class:`LSTMRegressor`.
    batch_size, max_iter, shuffle, tol, n_iter_no_change, restore_best_weights, \
lr_schedule, lr_factor, lr_patience, min_learning_rate
        As in :class:`LSTMRegressor`: the schedule and the stopping rule
        watch the training loss, or ``validation_data`` passed to :meth:`fit`
        (its loss, and its score: exact match for tokens, R² for numbers).
    random_state, n_jobs, verbose, warm_start, callbacks, dtype
        As in :class:`LSTMRegressor`.

    Attributes
    ----------
    input_vocab_size_, output_vocab_size_ : int or None
        Vocabulary sizes in use (None for numeric sequences).
    end_token_ : int or None
        When the training outputs are sequences of different lengths, the model
        learns an end symbol with this id (``output_vocab_size_``, one past the
        user's tokens); predictions stop there and never contain it.
    n_features_in_ : int
        Features per input step (1 for tokens).
    n_iter_, loss_curve_, history_, best_loss_, t_, validation_scores_, \
best_validation_score_, learning_rate_, best_epoch_
        As in :class:`LSTMRegressor`.

    Notes
    -----
    Inputs: integer token arrays ``[n, T]``, lists of integer sequences of
    different lengths (padded and masked), or numbers ``[n, T]`` /
    ``[n, T, F]`` (floats). Outputs: integer tokens ``[n, T_out]`` or lists of
    token sequences; numbers ``[n, T_out]`` or ``[n, T_out, F_out]``. A 1-D
    ``y`` is one output step per sample.
    """

    _parameter_constraints: ClassVar[dict] = {
        **_constraints(*_COMMON_PARAMS, "restore_best_weights"),
        "mode": [StrOptions({"teacher_forcing", "repeat"})],
        "attention": [StrOptions({"dot", "additive"}), None],
        "attention_units": [Interval(Integral, 1, MAX_SIZE, closed="both"), None],
        "embedding_dim": [Interval(Integral, 1, MAX_SIZE, closed="both")],
        "input_vocab_size": [Interval(Integral, 1, MAX_SIZE, closed="both"), None],
        "output_vocab_size": [Interval(Integral, 1, MAX_SIZE, closed="both"), None],
        "max_length": [Interval(Integral, 1, MAX_SIZE, closed="both"), None],
        **_constraints("tbptt_steps"),
    }

    def __init__(
        self,
        hidden_layer_sizes: int | Sequence[int] = (64,),
        *,
        mode: str = "teacher_forcing",
        attention: str | None = None,
        attention_units: int | None = None,
        embedding_dim: int = 32,
        input_vocab_size: int | None = None,
        output_vocab_size: int | None = None,
        max_length: int | None = None,
        tbptt_steps: int | None = None,
        optimizer: str = "adam",
        learning_rate: float = 0.001,
        momentum: float = 0.0,
        nesterov: bool = False,
        beta_1: float = 0.9,
        beta_2: float = 0.999,
        epsilon: float = 1e-7,
        rho: float = 0.9,
        clipnorm: float | None = None,
        batch_size: int | str = 32,
        max_iter: int = 200,
        shuffle: bool = True,
        tol: float = 1e-4,
        n_iter_no_change: int = 10,
        restore_best_weights: bool = False,
        lr_schedule: str = "plateau",
        lr_factor: float = LR_FACTOR,
        lr_patience: int = LR_PATIENCE,
        min_learning_rate: float = MIN_LEARNING_RATE,
        random_state: int | np.random.RandomState | None = None,
        n_jobs: int | None = None,
        verbose: int = 0,
        warm_start: bool = False,
        callbacks: Callable | Sequence[Callable] | None = None,
        dtype: type | str = np.float32,
    ) -> None:
        self.hidden_layer_sizes = hidden_layer_sizes
        self.mode = mode
        self.attention = attention
        self.attention_units = attention_units
        self.embedding_dim = embedding_dim
        self.input_vocab_size = input_vocab_size
        self.output_vocab_size = output_vocab_size
        self.max_length = max_length
        self.tbptt_steps = tbptt_steps
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
        self.restore_best_weights = restore_best_weights
        self.lr_schedule = lr_schedule
        self.lr_factor = lr_factor
        self.lr_patience = lr_patience
        self.min_learning_rate = min_learning_rate
        self.random_state = random_state
        self.n_jobs = n_jobs
        self.verbose = verbose
        self.warm_start = warm_start
        self.callbacks = callbacks
        self.dtype = dtype

    # -- the engine -----------------------------------------------------------

    def _s2s_architecture(self) -> tuple:
        return (
            self._hidden,
            self.mode,
            self.attention,
            self.attention_units,
            self.embedding_dim,
            self._dtype,
        )

    def set_inference_precision(self, precision: str):
        """Not available: LSTMSeq2Seq predicts in its dtype only.

        Its encoder-decoder engine has no reduced-precision path;
        :class:`LSTMRegressor`, :class:`LSTMClassifier`, :class:`LSTMGenerator`
        and :class:`LSTMForecaster` have one.

        Raises
        ------
        NotImplementedError
            Always.
        """
        raise NotImplementedError(
            f"LSTMSeq2Seq cannot predict in reduced precision (asked for {precision!r}): its "
            "encoder-decoder engine runs in its dtype only. set_inference_precision is available "
            "on LSTMRegressor, LSTMClassifier, LSTMGenerator and LSTMForecaster."
        )

    def _network(self):
        """The engine object; rebuilt after unpickling (it is not picklable)."""
        net = self.__dict__.get("_net")
        if net is None:
            hidden, mode, attention, units, embedding, dtype = self._s2s_arch
            net = getattr(_engine.core, _MODELS[dtype])(
                self.input_vocab_size_ or 0,
                self.n_features_in_,
                self._n_classes if self.output_vocab_size_ is not None else 0,
                self.n_features_out_,
                embedding,
                hidden,
                mode,
                attention or "none",
                units or 0,
            )
            self.__dict__["_net"] = net
        return net

    def _init_parameters(self, rng: np.random.RandomState) -> None:
        """Glorot-uniform input weights, orthogonal recurrent weights, forget bias 1,
        embeddings uniform in +-0.05 (Keras's defaults)."""
        net = self._network()
        params = np.zeros(net.parameter_count, dtype=self._dtype)
        for name, offset, shape in net.layout():
            size = int(np.prod(shape))
            view = params[offset : offset + size].reshape(shape)
            leaf = name.rsplit(".", 1)[-1]
            if "weight_ih" in leaf or leaf in ("weight", "Wq", "Wk"):
                view[...] = _glorot(rng, shape)
            elif "weight_hh" in leaf:
                view[...] = _orthogonal(rng, shape)
            elif "bias_ih" in leaf:
                hidden = shape[0] // 4
                view[hidden : 2 * hidden] = 1.0  # forget gate
            elif leaf == "embedding":
                view[...] = rng.uniform(-0.05, 0.05, size=shape)
            elif leaf == "v":
                view[...] = _glorot(rng, (1, shape[0]))[0]
        self._params = aligned_copy(params)
        _training.params_written(self)
        self._opt_m = aligned_copy(np.zeros_like(params))
        self._opt_v = aligned_copy(np.zeros_like(params))
        self._opt_step = 0

    # -- data ---------------------------------------------------------------------

    def _inputs(self, X, dtype, fitted: bool) -> _Side:
        """Input sequences checked against the fitted model (when `fitted`)."""
        side = _as_side(X, "X", dtype)
        if fitted:
            if side.tokens != (self.input_vocab_size_ is not None):
                want = "integer tokens" if self.input_vocab_size_ is not None else "numbers"
                raise ValueError(f"X must hold {want}, as the data the model was fitted on")
            if not side.tokens and side.data.shape[2] != self.n_features_in_:
                raise ValueError(
                    f"X has {side.data.shape[2]} features per step, but LSTMSeq2Seq is expecting "
                    f"{self.n_features_in_} features as input"
                )
        if side.tokens:
            size = self.input_vocab_size_ if fitted else self.input_vocab_size
            if size is None:
                size = int(max(side.data.max(), 0)) + 1
            _check_vocabulary(side, size, "X", "input")
            side.data = side.data.astype(np.int32)
        return side

    def _outputs(self, y, n: int, dtype, fitted: bool) -> _Side:
        side = _as_side(y, "y", dtype)
        if side.data.shape[0] != n:
            raise ValueError(
                f"Found input variables with inconsistent numbers of samples: [{n}, "
                f"{side.data.shape[0]}]"
            )
        if fitted:
            if side.tokens != (self.output_vocab_size_ is not None):
                want = "integer tokens" if self.output_vocab_size_ is not None else "numbers"
                raise ValueError(f"y must hold {want}, as the data the model was fitted on")
            if not side.tokens and side.data.shape[2] != self.n_features_out_:
                raise ValueError(
                    f"y has {side.data.shape[2]} features per step; the fitted model has "
                    f"{self.n_features_out_}"
                )
            if side.ragged != (self.end_token_ is not None):
                raise ValueError(
                    "y must be "
                    + (
                        "a list of token sequences of different lengths"
                        if self.end_token_ is not None
                        else "an array of one output length"
                    )
                    + ", as the data the model was fitted on"
                )
        if side.tokens:
            size = self.output_vocab_size_ if fitted else self.output_vocab_size
            if size is None:
                size = int(max(side.data.max(), 0)) + 1
            _check_vocabulary(side, size, "y", "output")
            if side.ragged:
                # Append the end symbol `size` and count it in the loss.
                data = np.full((n, side.data.shape[1] + 1), size, dtype=np.int64)
                data[:, :-1] = np.where(side.mask.astype(bool), side.data, size)
                side.mask = (np.arange(data.shape[1])[None] <= side.lengths[:, None]).astype(
                    np.uint8
                )
                side.data = data
            side.data = side.data.astype(np.int32)
        return side

    # -- fitting ------------------------------------------------------------------

    def _fit(self, X, y, incremental: bool, validation_data=None):
        return _training.fit(
            self,
            lambda: self._prepare_fit(X, y, incremental, validation_data),
            incremental=incremental,
        )

    def _validation_metrics(self, val) -> tuple[float, float]:
        xs, ys, X_val, y_val = val
        loss = self._network().evaluate(
            self._params,
            xs.data,
            xs.mask,
            ys.data,
            ys.mask,
            min(_PREDICT_BATCH, xs.data.shape[0]),
            _threads(self.n_jobs),
        )
        return float(loss), self.score(X_val, y_val)

    def _prepare_fit(self, X, y, incremental: bool, validation_data=None) -> FitPlan:
        """Check the input and set up the state to train (see _training)."""
        dtype = self._float_dtype()
        hidden = self._hidden_sizes()
        fitted = hasattr(self, "_params")
        reuse = fitted and (incremental or self.warm_start)
        arch = (hidden, self.mode, self.attention, self.attention_units, self.embedding_dim, dtype)
        if reuse and arch != self._s2s_arch:
            raise ValueError(
                "hidden_layer_sizes, mode, attention, attention_units, embedding_dim and dtype "
                "cannot change between fits when warm_start=True or in partial_fit; fit a fresh "
                "estimator instead"
            )
        tbptt = getattr(self, "tbptt_steps", None)
        if tbptt is not None and self.attention is not None:
            raise ValueError(
                f"tbptt_steps={tbptt} cannot be used with attention="
                f"{self.attention!r}: the attention reads the encoder's output at every input "
                "step. Use attention=None or tbptt_steps=None."
            )
        xs = self._inputs(X, dtype, reuse)
        ys = self._outputs(y, xs.data.shape[0], dtype, reuse)
        if not reuse:
            self.__dict__.pop("_net", None)
            _training.forget_history(self)
            self._dtype = dtype
            self._hidden = hidden
            self._s2s_arch = arch
            self.n_features_in_ = 1 if xs.tokens else xs.data.shape[2]
            self.input_vocab_size_ = (
                (self.input_vocab_size or int(xs.data.max()) + 1) if xs.tokens else None
            )
            if ys.tokens:
                user = int(ys.data.max()) + (0 if ys.ragged else 1)
                self.output_vocab_size_ = self.output_vocab_size or user
                self.end_token_ = self.output_vocab_size_ if ys.ragged else None
                self._n_classes = self.output_vocab_size_ + ys.ragged
                self.n_features_out_ = 1
            else:
                self.output_vocab_size_ = self.end_token_ = self._n_classes = None
                self.n_features_out_ = ys.data.shape[2]
            self._check_sizes()
            self._y_ndim = ys.ndim
            self._out_steps = ys.data.shape[1]
            self._rng = _training.make_rng(self.random_state)
            self._init_parameters(self._rng)
        val = None
        if validation_data is not None and not incremental:
            if not isinstance(validation_data, (tuple, list)) or len(validation_data) != 2:
                raise ValueError(
                    "validation_data must be a tuple (X_val, y_val); got "
                    f"{type(validation_data).__name__}"
                )
            X_val, y_val = validation_data
            try:
                xv = self._inputs(X_val, dtype, True)
                val = (xv, self._outputs(y_val, xv.data.shape[0], dtype, True), X_val, y_val)
            except ValueError as error:
                raise ValueError(f"validation_data: {error}") from error
        return FitPlan((xs, ys), xs.data.shape[0], 1 if incremental else self.max_iter, val)

    def _check_sizes(self) -> None:
        """Refuse embeddings and output layers the engine cannot index."""
        units = self._hidden[-1]
        for what, rows, cols in (
            ("input_vocab_size", self.input_vocab_size_ or 0, self.embedding_dim),
            ("output_vocab_size", self.output_vocab_size_ or 0, max(self.embedding_dim, units)),
        ):
            if rows * cols > MAX_SIZE:
                raise ValueError(
                    f"{what}={rows} gives a {rows} x {cols} weight of {rows * cols} elements; the "
                    f"engine's limit is {MAX_SIZE} elements per tensor. Map the tokens to a "
                    "smaller range of ids"
                )
        _check_layer_sizes(self._hidden, max(self.n_features_in_, self.embedding_dim), False)

    def _check_restored(self) -> None:
        super()._check_restored()
        ragged = self.end_token_ is not None
        if self.output_vocab_size_ is None:
            ok = self._n_classes is None and not ragged
        else:
            ok = self._n_classes == self.output_vocab_size_ + ragged and (
                not ragged or self.end_token_ == self.output_vocab_size_
            )
        if not ok:
            raise ValueError(
                f"_n_classes={self._n_classes}, output_vocab_size_={self.output_vocab_size_} and "
                f"end_token_={self.end_token_} do not agree"
            )

    def _train_epoch(self, train) -> tuple[str, float, int]:
        xs, ys = train
        status, loss, _batches, step = self._network().train_epoch(
            self._params,
            self._opt_m,
            self._opt_v,
            self._opt_step,
            xs.data,
            xs.mask,
            ys.data,
            ys.mask,
            _training.batch_size(self.batch_size, xs.data.shape[0]),
            self.shuffle,
            float(self.clipnorm or 0.0),
            *self._optimizer_args(),
            tbptt_steps=int(getattr(self, "tbptt_steps", None) or 0),
        )
        return status, loss, step

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y, validation_data=None) -> LSTMSeq2Seq:
        """Fit the model to input sequences X and output sequences y.

        Parameters
        ----------
        X : array-like of shape (n, T) or (n, T, F), or list of token sequences
            Integer tokens ``[n, T]``, token sequences of different lengths, or
            numbers (floats) ``[n, T]`` / ``[n, T, F]``.
        y : array-like of shape (n,), (n, T_out) or (n, T_out, F_out), or list
            Output tokens or numbers, as X; a list of token sequences of
            different lengths makes the model learn where a sequence ends.
        validation_data : tuple (X_val, y_val), optional
            Held-out sequences, as X and y, monitored at every epoch: the
            schedule watches their loss; the stopping rule and
            ``restore_best_weights`` their score (:meth:`score`).

        Returns
        -------
        self : LSTMSeq2Seq
            The fitted model.
        """
        return self._fit(X, y, incremental=False, validation_data=validation_data)

    def partial_fit(self, X, y) -> LSTMSeq2Seq:
        """Train one more epoch on (X, y), starting from the fitted weights.

        Parameters
        ----------
        X, y
            As in :meth:`fit`; the kinds, features and vocabularies must match
            the first fit.

        Returns
        -------
        self : LSTMSeq2Seq
            The updated model.
        """
        if not hasattr(self, "_params"):
            self._validate_params()
        return self._fit(X, y, incremental=True)

    # -- prediction ----------------------------------------------------------------

    def _steps(self, steps: int | None) -> int:
        if steps is not None:
            return steps
        return self.max_length or self._out_steps

    def _decode(self, X, steps: int | None, weights: bool):
        check_is_fitted(self, "_params")
        xs = self._inputs(X, self._dtype, fitted=True)
        return self._network().predict(
            self._params,
            xs.data,
            xs.mask,
            self._steps(steps),
            -1 if self.end_token_ is None else self.end_token_,
            weights,
            _PREDICT_BATCH,
            _threads(self.n_jobs),
        )

    def predict(self, X) -> np.ndarray | list[np.ndarray]:
        """Decode output sequences greedily.

        Parameters
        ----------
        X : array-like or list of token sequences
            Input sequences, as in :meth:`fit`.

        Returns
        -------
        y : ndarray or list of ndarray
            Tokens ``[n, T_out]`` (or a list of 1-D token arrays, cut before
            the end symbol, when the model was fitted on sequences of different
            lengths), or numbers ``[n, T_out, F_out]`` (``[n, T_out]`` /
            ``[n]`` when y was fitted 2-D / 1-D).
        """
        return self._predict(X, None)

    def _predict(self, X, steps: int | None):
        out, _ = self._decode(X, steps, weights=False)
        if self.output_vocab_size_ is not None:
            out = out.astype(np.int64)
            if self.end_token_ is not None:
                cut = [np.flatnonzero(row == self.end_token_) for row in out]
                return [row[: c[0]] if c.size else row for row, c in zip(out, cut, strict=True)]
            return out[:, 0] if self._y_ndim == 1 else out
        if self._y_ndim == 1:
            return out[:, 0, 0]
        return out[:, :, 0] if self._y_ndim == 2 else out

    def attention_weights(self, X) -> np.ndarray:
        """Attention weights of the decoder steps over the input steps.

        Parameters
        ----------
        X : array-like or list of token sequences
            Input sequences, as in :meth:`fit`.

        Returns
        -------
        weights : ndarray of shape (n, T_out, T)
            ``weights[i, t, s]`` is the weight of input step s when producing
            output step t of :meth:`predict` (0 at padding steps; each row sums
            to 1). Steps after a predicted end symbol are included.
        """
        check_is_fitted(self, "_params")
        if self.attention is None:
            raise ValueError(
                "attention_weights needs a model fitted with attention='dot' or 'additive'"
            )
        return self._decode(X, None, weights=True)[1]

    def score(self, X, y) -> float:
        """Exact-match sequence accuracy (tokens) or R² (numbers).

        Parameters
        ----------
        X : array-like or list of token sequences
            Input sequences.
        y : array-like or list
            True output sequences, as in :meth:`fit`.

        Returns
        -------
        score : float
            For tokens, the fraction of samples whose whole predicted sequence
            equals the true one; for numbers, R² over every output value.
        """
        check_is_fitted(self, "_params")
        ys = _as_side(y, "y", self._dtype)
        if self.output_vocab_size_ is not None:
            if self.end_token_ is not None:
                pred = self._predict(X, None)
                truth = [np.asarray(s).reshape(-1) for s in y]
                if len(truth) != len(pred):
                    raise ValueError("X and y have different numbers of samples")
                return float(
                    np.mean([np.array_equal(p, t) for p, t in zip(pred, truth, strict=True)])
                )
            pred = self._decode(X, ys.data.shape[1], weights=False)[0]
            if pred.shape != ys.data.shape:
                raise ValueError(f"y has shape {ys.data.shape}; predictions have {pred.shape}")
            return float(np.mean(np.all(pred == ys.data, axis=1)))
        pred = self._decode(X, ys.data.shape[1], weights=False)[0]
        if pred.shape != ys.data.shape:
            raise ValueError(f"y has shape {ys.data.shape}; predictions have {pred.shape}")
        n = pred.shape[0]
        return float(r2_score(ys.data.reshape(n, -1), pred.reshape(n, -1)))

    # -- scikit-learn plumbing ----------------------------------------------------

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.required = True
        tags.target_tags.multi_output = True
        return tags

    def _more_tags(self) -> dict[str, Any]:  # scikit-learn < 1.6
        return {"X_types": ["2darray", "3darray"], "requires_y": True}
