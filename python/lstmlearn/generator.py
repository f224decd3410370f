"""LSTMGenerator: next-token language model over characters or integer tokens."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from numbers import Integral, Real
from typing import ClassVar

import numpy as np
from sklearn.base import _fit_context
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval
from sklearn.utils.validation import check_is_fitted

from . import _training
from ._data import Sequences
from ._training import FitPlan
from .estimators import (
    _COMMON_PARAMS,
    LR_FACTOR,
    LR_PATIENCE,
    MAX_SIZE,
    MIN_LEARNING_RATE,
    _BaseLSTM,
    _constraints,
    _Streamable,
)

__all__ = ["LSTMGenerator"]


def _tokens(seq: object, k: int) -> np.ndarray:
    """One token sequence as int64, with a clear error for anything else."""
    a = np.asarray(seq)
    if a.dtype.kind == "c":
        raise ValueError(f"Complex data not supported: sequence {k} has dtype {a.dtype}")
    if a.dtype == object:
        try:
            a = a.astype(np.float64)
        except (TypeError, ValueError):
            raise ValueError(f"Sequence {k} could not be read as integer tokens") from None
    if a.ndim != 1 or (a.size and a.dtype.kind not in "biuf"):
        raise ValueError(
            "Token sequences must be 1-D arrays of integers; sequence "
            f"{k} is an array of shape {a.shape} and dtype {a.dtype}"
        )
    if a.dtype.kind == "f":
        if not np.isfinite(a).all():
            raise ValueError(f"Input X contains NaN or infinity (sequence {k})")
        whole = a == np.round(a)
        if not whole.all():
            i = int(np.flatnonzero(~whole)[0])
            raise ValueError(f"Tokens must be integers; sequence {k} has {a[i]:g} at position {i}")
    return a.astype(np.int64)


class LSTMGenerator(_Streamable, _BaseLSTM):
    """Generative LSTM: learns the next token of text or of integer token sequences.

    The model reads windows of ``seq_length`` tokens, one-hot encoded, and
    predicts the next token at every step (a softmax over the vocabulary,
    trained with log loss by the C++ engine, as the classic Keras
    character-level text generator). :meth:`generate` then samples one token
    at a time from a sliding window of the last ``seq_length`` tokens, or,
    with ``carry_state=True``, carrying the LSTM state from token to token
    (one step per token, in the engine).

    Parameters
    ----------
    hidden_layer_sizes : int or tuple of int, default=(128,)
        Units of each stacked LSTM layer.
    seq_length : int, default=40
        Length of the training windows, and of the context :meth:`generate`
        and :meth:`score` use.
    step : int, default=1
        Stride between the starts of consecutive training windows.
    n_tokens : int or None, default=None
        Vocabulary size for integer tokens (tokens are ``0 .. n_tokens - 1``);
        None takes the largest token seen by the first fit plus one. Not used
        for text, whose vocabulary is the set of characters of the first fit.
    dropout, recurrent_dropout, alpha, optimizer, learning_rate, momentum, nesterov, \
beta_1, beta_2, epsilon, rho, clipnorm, batch_size, max_iter, shuffle, tol, \
n_iter_no_change, early_stopping, validation_fraction, validation_split, \
restore_best_weights, lr_schedule, lr_factor, lr_patience, min_learning_rate, \
random_state, n_jobs, verbose, warm_start, callbacks, dtype
        As in :class:`LSTMClassifier`. With ``early_stopping`` the validation
        score is the mean log-likelihood of the held-out windows.
    tbptt_steps : int or None, default=None
        Truncated backpropagation through time (see :class:`LSTMRegressor`):
        each window is trained in chunks of this many steps, the state carried
        from one chunk to the next, one optimizer step per chunk. For long
        ``seq_length``.

    Attributes
    ----------
    vocabulary_ : list of str or None
        The characters of a text model, in token order; None for integer tokens.
    n_tokens_ : int
        Vocabulary size (the width of the one-hot input and of the softmax).
    n_iter_ : int
        Epochs run.
    loss_curve_ : list of float
        Mean training loss (nats per token) of each epoch.

    Notes
    -----
    The input is one-hot: a training set takes ``windows x seq_length x
    n_tokens`` values of the model's dtype, so a large integer vocabulary
    wants a larger ``step``.

    Examples
    --------
    >>> from lstmlearn import LSTMGenerator
    >>> text = "the cat sat on the mat. " * 20
    >>> gen = LSTMGenerator(32, seq_length=12, max_iter=30, random_state=0).fit(text)
    >>> len(gen.generate("the ", length=20, random_state=0))
    20
    """

    bidirectional = False  # a generator must not see the future
    merge_mode = "concat"
    return_sequences = True
    loss = "log_loss"
    conv_filters = None  # no convolutional front end
    conv_kernel_size = 3
    pool_size = 2
    pooling = "last"  # a prediction at every step
    attention_units = 16

    _parameter_constraints: ClassVar[dict] = {
        **_constraints(
            *_COMMON_PARAMS,
            "dropout",
            "recurrent_dropout",
            "alpha",
            "early_stopping",
            "validation_fraction",
            "validation_split",
            "restore_best_weights",
        ),
        "seq_length": [Interval(Integral, 1, MAX_SIZE, closed="both")],
        "step": [Interval(Integral, 1, MAX_SIZE, closed="both")],
        "n_tokens": [Interval(Integral, 2, MAX_SIZE, closed="both"), None],
        **_constraints("tbptt_steps"),
    }

    def __init__(
        self,
        hidden_layer_sizes: int | Sequence[int] = (128,),
        *,
        seq_length: int = 40,
        step: int = 1,
        n_tokens: int | None = None,
        dropout: float = 0.0,
        recurrent_dropout: float = 0.0,
        alpha: float = 0.0,
        optimizer: str = "adam",
        learning_rate: float = 0.01,
        momentum: float = 0.0,
        nesterov: bool = False,
        beta_1: float = 0.9,
        beta_2: float = 0.999,
        epsilon: float = 1e-7,
        rho: float = 0.9,
        clipnorm: float | None = None,
        batch_size: int | str = 64,
        max_iter: int = 50,
        shuffle: bool = True,
        tol: float = 1e-4,
        n_iter_no_change: int = 10,
        early_stopping: bool = False,
        validation_fraction: float = 0.1,
        validation_split: str = "shuffle",
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
        tbptt_steps: int | None = None,
    ) -> None:
        self.hidden_layer_sizes = hidden_layer_sizes
        self.seq_length = seq_length
        self.step = step
        self.n_tokens = n_tokens
        self.dropout = dropout
        self.recurrent_dropout = recurrent_dropout
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
        self.random_state = random_state
        self.n_jobs = n_jobs
        self.verbose = verbose
        self.warm_start = warm_start
        self.callbacks = callbacks
        self.dtype = dtype
        self.tbptt_steps = tbptt_steps

    # -- tokens -----------------------------------------------------------------

    def _documents(self, X: object, first: bool) -> list[np.ndarray]:
        """X as a list of int64 token arrays; on the first fit, the vocabulary."""
        if isinstance(X, str):
            X = [X]
        if X is None or (isinstance(X, (list, tuple)) and len(X) == 0):
            raise ValueError(
                "X is empty; LSTMGenerator needs a text (str), a list of texts, or integer "
                f"token sequences; got {X!r}"
            )
        if isinstance(X, (list, tuple)) and all(isinstance(d, str) for d in X):
            return self._encode_text(list(X), first)
        if isinstance(X, (list, tuple)) and any(isinstance(d, str) for d in X):
            raise ValueError("X mixes texts and token sequences; pass one kind")
        if hasattr(X, "tocsr") or hasattr(X, "todense"):
            raise TypeError(
                "Sparse input is not supported: pass token sequences as a dense integer array "
                "or a list of 1-D arrays (convert with X.toarray())"
            )
        if isinstance(X, (list, tuple)) and len(X) and np.ndim(X[0]) == 0:
            X = [X]  # one sequence given as a flat list of tokens
        if not isinstance(X, (list, tuple)):
            X = np.asarray(X)
            if X.ndim == 2 and X.shape[1] == 0:
                raise ValueError(
                    f"Found array with 0 feature(s) (shape={X.shape}) while a minimum of 2 is "
                    "required: each row is a token sequence"
                )
            if X.ndim not in (1, 2):
                raise ValueError(
                    "Expected a text, a 1-D array of integer tokens or a 2-D array with one "
                    f"token sequence per row; got a {X.ndim}-D array of shape {X.shape}"
                )
            X = [X] if X.ndim == 1 else list(X)
        return self._encode_tokens([_tokens(d, k) for k, d in enumerate(X)], first)

    def _encode_text(self, texts: list[str], first: bool) -> list[np.ndarray]:
        if first:
            if not any(texts):
                raise ValueError("X is empty text; LSTMGenerator needs at least 2 characters")
            self.vocabulary_ = sorted(set("".join(texts)))
            self.n_tokens_ = max(2, len(self.vocabulary_))
        elif self.vocabulary_ is None:
            raise ValueError(
                "This LSTMGenerator was fitted on integer tokens; pass token sequences, not text"
            )
        index = {ch: k for k, ch in enumerate(self.vocabulary_)}
        unknown = sorted({ch for t in texts for ch in t} - index.keys())
        if unknown:
            raise ValueError(
                f"Characters {unknown} are not in the vocabulary of the fitted model "
                f"({len(self.vocabulary_)} characters: {''.join(self.vocabulary_)!r})"
            )
        return [np.array([index[ch] for ch in t], dtype=np.int64) for t in texts]

    def _encode_tokens(self, docs: list[np.ndarray], first: bool) -> list[np.ndarray]:
        if first:
            if not any(d.size for d in docs):
                raise ValueError("X holds no tokens; LSTMGenerator needs at least 2 tokens")
            top = max(int(d.max()) for d in docs if d.size)
            self.vocabulary_ = None
            self.n_tokens_ = int(self.n_tokens) if self.n_tokens is not None else max(2, top + 1)
        elif self.vocabulary_ is not None:
            raise ValueError("This LSTMGenerator was fitted on text; pass text, not token ids")
        for k, d in enumerate(docs):
            bad = np.flatnonzero((d < 0) | (d >= self.n_tokens_))
            if bad.size:
                i = int(bad[0])
                what = "Negative values in data: token" if d[i] < 0 else "Token"
                raise ValueError(
                    f"{what} {int(d[i])} at position {i} of sequence {k} is outside the "
                    f"vocabulary: tokens must be in [0, {self.n_tokens_})"
                )
        return docs

    def _one_hot(self, windows: list[np.ndarray]) -> Sequences:
        """Inputs [n, T, V] (padded and masked when the windows differ in length)."""
        lengths = np.array([len(w) for w in windows])
        steps = int(lengths.max())
        x = np.zeros((len(windows), steps, self.n_tokens_), dtype=self._dtype)
        for k, w in enumerate(windows):
            x[k, np.arange(len(w)), w] = 1.0
        if (lengths == steps).all():
            return Sequences(x, None, None)
        mask = (np.arange(steps)[None, :] < lengths[:, None]).astype(np.uint8)
        return Sequences(x, mask, lengths)

    def _windows(self, docs: list[np.ndarray], stride: int) -> list[np.ndarray]:
        """Windows of up to seq_length + 1 tokens: inputs are [:-1], targets [1:]."""
        size = self.seq_length + 1
        out = []
        for d in docs:
            if len(d) < 2:
                continue
            last = max(0, len(d) - size)
            starts = list(range(0, last + 1, stride))
            if starts[-1] != last:
                starts.append(last)  # the tail of the document is learned too
            out.extend(d[s : s + size] for s in starts)
        if not out:
            raise ValueError(
                "X is too short: every text or token sequence has fewer than 2 tokens (found "
                "array with 1 feature(s) per sequence at most), so there is no next token to learn"
            )
        return out

    # -- _BaseLSTM hooks -------------------------------------------------------

    def _encode_targets(self, y, seqs, first, classes=None):
        labels = np.zeros(seqs.x.shape[:2], dtype=np.int32)
        for k, w in enumerate(y):
            labels[k, : len(w)] = w
        return labels, self.n_tokens_, True

    def _engine_targets(self, y_enc):
        return None, np.ascontiguousarray(y_enc, dtype=np.int32)

    def _score_outputs(self, out, y_enc, mask):
        return self._log_likelihood(out, y_enc, mask)

    @staticmethod
    def _log_likelihood(out: np.ndarray, labels: np.ndarray, mask: np.ndarray | None) -> float:
        p = np.take_along_axis(out, labels[..., None].astype(np.intp), axis=-1)[..., 0]
        logp = np.log(np.maximum(p.astype(np.float64), np.finfo(np.float64).tiny))
        if mask is not None:
            logp = logp[mask.astype(bool)]
        return float(logp.mean())

    def _train(self, X, incremental: bool, validation_data=None):
        return _training.fit(
            self,
            lambda: self._prepare_windows(X, incremental, validation_data),
            incremental=incremental,
        )

    def _inputs_and_targets(self, windows: list[np.ndarray]) -> tuple[object, list]:
        seqs = self._one_hot([w[:-1] for w in windows])
        inputs = seqs.x
        if seqs.lengths is not None:
            inputs = [seqs.x[k, :n] for k, n in enumerate(seqs.lengths)]
        return inputs, [w[1:] for w in windows]

    def _prepare_windows(self, X, incremental: bool, validation_data=None) -> FitPlan:
        """Tokens to one-hot windows and their next tokens, then the shared set-up."""
        first = not hasattr(self, "_params") or not (incremental or self.warm_start)
        docs = self._documents(X, first)
        windows = self._windows(docs, int(self.step))
        self._dtype = self._float_dtype()
        val = None
        if validation_data is not None and not incremental:
            try:
                val = self._windows(self._documents(validation_data, False), int(self.step))
            except ValueError as error:
                raise ValueError(f"validation_data: {error}") from error
            if not val:
                raise ValueError("validation_data: no text or sequence has 2 tokens or more")
            val = self._inputs_and_targets(val)
        inputs, targets = self._inputs_and_targets(windows)
        plan = self._prepare_fit(inputs, targets, None, incremental, validation_data=val)
        if first:
            self._default_seed = windows[0][:-1]
        return plan

    def _check_restored(self) -> None:
        super()._check_restored()
        if not self.n_tokens_ == self.n_features_in_ == self._n_outputs:
            raise ValueError(
                f"n_tokens_={self.n_tokens_} does not match the network's {self.n_features_in_} "
                f"inputs and {self._n_outputs} outputs"
            )
        if self.vocabulary_ is not None and len(self.vocabulary_) > self.n_tokens_:
            raise ValueError(f"{len(self.vocabulary_)} characters for {self.n_tokens_} tokens")
        seed = self._default_seed
        if seed.size == 0 or seed.min() < 0 or seed.max() >= self.n_tokens_:
            raise ValueError("the default seed holds tokens outside the vocabulary")

    # -- public API -----------------------------------------------------------------

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None, validation_data=None) -> LSTMGenerator:
        """Learn the next token of the text or token sequences X.

        Parameters
        ----------
        X : str, list of str, or integer token sequences
            A text, several texts (windows never span two of them), a 1-D
            array of integer tokens, a 2-D array of them (one sequence per
            row), or a list of 1-D integer sequences.
        y : None
            Ignored; the targets are the next tokens of X.
        validation_data : str, list of str, or integer token sequences, optional
            Held-out text or tokens, as X, monitored at every epoch instead of
            a ``validation_fraction`` split (see :class:`LSTMRegressor`);
            the score is the mean log-likelihood of its windows.

        Returns
        -------
        self : LSTMGenerator
        """
        return self._train(X, incremental=False, validation_data=validation_data)

    @_fit_context(prefer_skip_nested_validation=True)
    def partial_fit(self, X, y=None) -> LSTMGenerator:
        """Train one epoch on X, starting from the current weights if fitted.

        The vocabulary is fixed by the first call.

        Parameters
        ----------
        X : as in :meth:`fit`
        y : None
            Ignored.

        Returns
        -------
        self : LSTMGenerator
        """
        return self._train(X, incremental=True)

    def _next_proba(self, context: np.ndarray) -> np.ndarray:
        out = self._raw_predict(self._one_hot([context]))
        return out[0, -1].astype(np.float64)

    def predict_proba(self, X) -> np.ndarray:
        """Probabilities of the next token after each text or token sequence.

        Parameters
        ----------
        X : as in :meth:`fit`
            Each text or sequence is a context; its last ``seq_length`` tokens
            are read.

        Returns
        -------
        proba : ndarray of shape (n_sequences, n_tokens_)
            Columns follow the token ids (for text, ``vocabulary_``).
        """
        check_is_fitted(self, "_params")
        docs = self._documents(X, False)
        for k, d in enumerate(docs):
            if d.size == 0:
                raise ValueError(f"Sequence {k} of X is empty; a context needs at least one token")
        contexts = [d[-self.seq_length :] for d in docs]
        out = self._raw_predict(self._one_hot(contexts))
        last = np.array([len(c) - 1 for c in contexts])
        return out[np.arange(len(contexts)), last].astype(np.float64)

    _stream_takes_arrays = False  # a step takes tokens

    def _stream_input(self, x, n_streams: int) -> tuple[np.ndarray, bool]:
        """Tokens (ids or characters), one per stream, as one-hot rows [n_streams, V]."""
        single = isinstance(x, (str, int, np.integer))
        if isinstance(x, str):
            x = list(x)
        tokens = list(x) if isinstance(x, (list, tuple, np.ndarray)) else [x]
        if len(tokens) != n_streams:
            raise ValueError(f"a step takes one token per stream ({n_streams}); got {len(tokens)}")
        ids = np.empty(n_streams, dtype=np.int64)
        index = self._char_index()
        for k, t in enumerate(tokens):
            if isinstance(t, str):
                if t not in index:
                    raise ValueError(f"character {t!r} is not in the vocabulary")
                ids[k] = index[t]
            elif isinstance(t, (int, np.integer)) and not isinstance(t, bool):
                if not 0 <= t < self.n_tokens_:
                    raise ValueError(f"token {t} is outside the vocabulary [0, {self.n_tokens_})")
                ids[k] = t
            else:
                raise ValueError(f"a token must be an int or a character; got {t!r}")
        out = np.zeros((n_streams, self.n_tokens_), dtype=self._dtype)
        out[np.arange(n_streams), ids] = 1.0
        return out, single

    def _char_index(self) -> dict:
        return {c: k for k, c in enumerate(self.vocabulary_ or ())}

    def predict(self, X) -> str | np.ndarray:
        """The most probable next token after each text or token sequence.

        Parameters
        ----------
        X : as in :meth:`fit`

        Returns
        -------
        next : str or ndarray
            For one text, the next character (a str); for several texts, an
            array of characters; for token sequences, an int64 array of ids.
        """
        ids = self.predict_proba(X).argmax(axis=1)
        if self.vocabulary_ is None:
            return ids.astype(np.int64)
        chars = np.array([self.vocabulary_[t] for t in ids])
        return str(chars[0]) if isinstance(X, str) else chars

    def generate(
        self,
        seed: str | Sequence[int] | np.ndarray | None = None,
        length: int = 100,
        temperature: float = 1.0,
        random_state: int | np.random.RandomState | None = None,
        carry_state: bool = False,
    ) -> str | np.ndarray:
        """Sample a continuation of `seed`, one token at a time.

        Parameters
        ----------
        seed : str or sequence of int, optional
            The start of the text (characters of the vocabulary) or of the
            token sequence; at least one token. None starts from the first
            ``seq_length`` tokens the model was fitted on.
        length : int, default=100
            Tokens to generate.
        temperature : float, default=1.0
            Divides the log-probabilities before sampling: below 1 the text is
            more conservative, above 1 more surprising; 0 always takes the
            most probable token.
        random_state : int, RandomState or None, default=None
            Seed of the sampling.
        carry_state : bool, default=False
            How the model reads its context.

            - False: each token is predicted from the last ``seq_length``
              tokens, read from the zero state, as the model was trained (on
              windows of ``seq_length`` tokens, each from the zero state).
              That costs ``seq_length`` LSTM steps and a call of
              :meth:`predict_proba` per token.
            - True: the model reads the whole seed once, then carries its
              LSTM state from token to token, one step per token, as
              char-rnn and stateful Keras sampling loops do: each token is
              conditioned on the whole history, including what lies beyond
              ``seq_length`` tokens back, which the model never saw in
              training (a model trained on short windows may drift over
              long texts). The whole loop runs in the engine, many times
              faster (see ``benchmarks/README.md``). The step is the one
              :meth:`stream` takes: the probabilities are those of a
              ``stream(1)`` fed the seed and then each drawn token, at the
              precision :meth:`set_inference_precision` set.

        Returns
        -------
        continuation : str or ndarray of int64
            The ``length`` generated tokens (without the seed): a str for a
            text model, an array of token ids otherwise.

        Notes
        -----
        With ``carry_state=True`` the uniform variates of the draws are taken
        from ``random_state`` up front, one per token, and each token is the
        first whose cumulative weight exceeds its variate times the total
        weight (weights ``exp((z - max(z)) / temperature)`` of the logits
        ``z``): the output depends on the random state alone, not on
        ``n_jobs``. It differs from ``carry_state=False``'s draws for the
        same random state (which uses :meth:`numpy.random.RandomState.choice`
        per token, unchanged).
        """
        check_is_fitted(self, "_params")
        if not isinstance(length, Integral) or length < 0:
            raise ValueError(f"length must be a non-negative integer; got {length!r}")
        if not isinstance(temperature, Real) or not temperature >= 0:
            raise ValueError(f"temperature must be a number >= 0; got {temperature!r}")
        if not isinstance(carry_state, (bool, np.bool_)):
            raise ValueError(f"carry_state must be True or False; got {carry_state!r}")
        if seed is None:
            context = self._default_seed
        else:
            if self.vocabulary_ is not None and not isinstance(seed, str):
                raise ValueError(f"This model was fitted on text; seed must be a str, got {seed!r}")
            context = self._documents(seed if isinstance(seed, str) else [np.asarray(seed)], False)[
                0
            ]
            if context.size == 0:
                raise ValueError("seed is empty; give at least one token to continue from")
        rng = check_random_state(random_state)
        if carry_state:
            out = self._sample_carried(context, int(length), float(temperature), rng)
        else:
            out = self._sample_windows(context, int(length), temperature, rng)
        if self.vocabulary_ is not None:
            # Python ints, not NumPy scalars: half the time of a 400-token join.
            return "".join([self.vocabulary_[t] for t in out.tolist()])
        return out

    def _sample_windows(
        self, context: np.ndarray, length: int, temperature: float, rng: np.random.RandomState
    ) -> np.ndarray:
        """generate(carry_state=False): each token from the last seq_length, from zero."""
        context = list(context[-self.seq_length :])
        out = np.empty(length, dtype=np.int64)
        for i in range(length):
            p = self._next_proba(np.asarray(context))
            if temperature == 0:
                token = int(p.argmax())
            else:
                # Shifted before dividing: the top token's logit is 0 for any
                # temperature, so a tiny one tends to greedy instead of inf - inf.
                logp = np.log(np.maximum(p, 1e-300))
                q = np.exp((logp - logp.max()) / temperature)
                token = int(rng.choice(len(q), p=q / q.sum()))
            out[i] = token
            context.append(token)
            del context[: -self.seq_length]
        return out

    def _sample_carried(
        self, context: np.ndarray, length: int, temperature: float, rng: np.random.RandomState
    ) -> np.ndarray:
        """generate(carry_state=True): the whole loop in the engine, on a stream of its own."""
        uniforms = rng.random_sample(length)  # up front: the same draws for any n_jobs
        # One stream for every call while the parameters, n_jobs and the
        # inference precision stay the same: it keeps its packed weights (each
        # call starts from a zero state).
        precision = self.__dict__.get("_inference_precision", "float32")
        key = (self._version(), id(self._params), self.n_jobs, precision)
        cached = self.__dict__.get("_sampler")
        if cached is None or cached[0] != key:
            cached = (key, self.stream(1))
            self.__dict__["_sampler"] = cached
        stream = cached[1]
        seed = np.ascontiguousarray(context, dtype=np.int64)
        return stream._engine.sample(seed, uniforms, temperature, stream._n_threads)

    def score(self, X, y=None) -> float:
        """Mean log-likelihood of the next token over X, in nats per token.

        Every token after the first of each text or sequence is predicted once,
        from a context of up to ``seq_length`` tokens (non-overlapping windows).

        Parameters
        ----------
        X : as in :meth:`fit`
        y : None
            Ignored.

        Returns
        -------
        score : float
            Higher is better; ``exp(-score)`` is the perplexity.
        """
        check_is_fitted(self, "_params")
        size = self.seq_length + 1
        windows = [
            d[s : s + size]
            for d in self._documents(X, False)
            for s in range(0, len(d) - 1, self.seq_length)
        ]
        if not windows:
            raise ValueError("X is too short: it needs at least 2 tokens to score a prediction")
        seqs = self._one_hot([w[:-1] for w in windows])
        labels = np.zeros(seqs.x.shape[:2], dtype=np.int64)
        for k, w in enumerate(windows):
            labels[k, : len(w) - 1] = w[1:]
        return self._log_likelihood(self._raw_predict(seqs), labels, seqs.mask)

    def perplexity(self, X) -> float:
        """Perplexity of the model on X: ``exp(-score(X))``; lower is better.

        Parameters
        ----------
        X : as in :meth:`fit`

        Returns
        -------
        perplexity : float
            Between 1 (certain and right) and, for a uniform guess, ``n_tokens_``.
        """
        return float(np.exp(-self.score(X)))

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.two_d_array = True  # integer tokens, one sequence per row
        tags.input_tags.three_d_array = False
        tags.input_tags.string = True
        tags.input_tags.categorical = True  # token ids
        tags.input_tags.positive_only = True
        tags.target_tags.required = False
        return tags
