"""Streaming inference: feed a fitted model one time step at a time.

``model.stream(n_streams)`` returns a :class:`Stream`. The engine keeps the
state (h, c of every layer) of each stream, so a step costs one step of work
whatever the length of the sequence so far. The outputs are bitwise those
:meth:`predict` gives on the whole sequence: the engine's inference computes
every row's products in an order that depends neither on how many rows nor on
how many steps a call has.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["Stream"]


class Stream:
    """One-step inference over ``n_streams`` independent sequences.

    Made by ``model.stream(n_streams)`` on a fitted :class:`LSTMRegressor`,
    :class:`LSTMClassifier` or :class:`LSTMGenerator`; it uses a copy of the
    weights the model had then (a later fit does not change it).

    Each stream starts from the zero state, as a sequence given to
    :meth:`predict` does. :meth:`step` advances every stream by one step and
    returns the model's output for that step: for a per-step model, the
    step's prediction, as ``predict`` gives it at that step; for a model with
    one output per sequence, the output as if the sequence ended at this
    step. A classifier's or generator's stream returns class (token)
    probabilities, as ``predict_proba``.

    The number of streams may change at any time: :meth:`resize` keeps the
    state of the streams it keeps, :meth:`add` opens new ones, and
    :meth:`reset` starts one (or all) again from the zero state.

    Each call holds the GIL while the engine steps, so it is atomic: steps
    from several threads are applied one after the other, in whatever order
    the threads reach them.
    """

    def __init__(self, model: Any, engine: Any, n_threads: int) -> None:
        self._model = model
        self._engine = engine
        self._n_threads = n_threads
        self._step = engine.step
        self._dtype = model._dtype
        self._features = model.n_features_in_
        self._arrays = model._stream_takes_arrays  # else the model converts (tokens)
        # Decided once, from the model as it was (as the weights are).
        self._squeeze = model._stream_squeeze()
        self._sync()
        if self._arrays and not self._squeeze:
            # The whole call in C++ (the same checks and results as step
            # below; other input goes through the model's _stream_input): a
            # Python frame per step cost about a tenth of a medium step.
            engine.set_public(model._stream_input, n_threads)
            self.step = engine.public_step

    def _sync(self) -> None:
        """Cache the number of streams and the input shapes that need no conversion."""
        self._n = int(self._engine.n_streams)
        self._shape = (self._n, self._features)
        # One stream's row [F] (F > 1) comes back as that stream's output alone.
        self._row_shape = (self._features,) if self._n == 1 and self._features > 1 else None

    @property
    def n_streams(self) -> int:
        """Streams currently open."""
        return self._n

    def step(self, x) -> np.ndarray:
        """Advance every stream by one step.

        Parameters
        ----------
        x : array-like of shape (n_streams, n_features), or (n_features,) when
            n_streams is 1, or (n_streams,) when there is one feature
            For an :class:`LSTMGenerator`: one token per stream (an int, or a
            character of a text model), or a sequence of them.

        Returns
        -------
        out : ndarray
            The output of each stream for this step, shaped as ``predict``
            (``predict_proba`` for a classifier or generator) shapes one
            sample's output, with a leading axis of n_streams unless x was
            one stream's 1-D input (or one token).
        """
        # The common case first, with as few checks as a step of a few
        # microseconds affords: an array of the model's dtype (the built-in
        # dtype object, so `is` decides), already [S, F] or one stream's [F],
        # goes to the engine as it is (the binding copies it if it is not
        # C-contiguous).
        if (
            self._arrays
            and type(x) is np.ndarray
            and x.dtype is self._dtype
            and (x.shape == self._shape or x.shape == self._row_shape)
        ):
            batch, single = x, x.ndim == 1
        else:
            batch, single = self._model._stream_input(x, self._n)
        out = self._step(batch, self._n_threads)
        if self._squeeze:
            out = out[:, 0]
        return out[0] if single else out

    def reset(self, i: int | None = None) -> None:
        """Zero the state of stream ``i``, or of every stream when None."""
        if i is None:
            self._engine.reset(-1)
            return
        n = self._n
        if not isinstance(i, (int, np.integer)) or isinstance(i, bool) or not -n <= i < n:
            raise IndexError(f"stream index {i!r} is out of range for {n} stream(s)")
        self._engine.reset(int(i) % n)

    def resize(self, n_streams: int) -> None:
        """Keep the first ``min(old, new)`` streams' state; new streams start at zero."""
        if (
            not isinstance(n_streams, (int, np.integer))
            or isinstance(n_streams, bool)
            or n_streams < 1
        ):
            raise ValueError(f"n_streams must be a positive integer; got {n_streams!r}")
        self._engine.resize(int(n_streams))
        self._sync()

    def add(self, n: int = 1) -> range:
        """Open ``n`` new streams (zero state); returns their indices."""
        if not isinstance(n, (int, np.integer)) or isinstance(n, bool) or n < 1:
            raise ValueError(f"n must be a positive integer; got {n!r}")
        first = self._n
        self.resize(first + int(n))
        return range(first, first + int(n))

    def __repr__(self) -> str:
        return f"Stream({type(self._model).__name__}, n_streams={self.n_streams})"
