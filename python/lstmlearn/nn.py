"""Low-level LSTM module: forward and backward passes on NumPy arrays.

This is the engine with a thin, checked NumPy interface, for users who want
the gradients themselves (custom training loops, tests against other
frameworks). Most users want the scikit-learn estimators instead.
"""

from __future__ import annotations

import threading
from typing import Any, NamedTuple

import numpy as np
from numpy.typing import ArrayLike, DTypeLike

from . import _engine
from ._threads import resolve as resolve_threads

__all__ = ["LSTM", "LSTMGradients"]

_DTYPES = {np.dtype(np.float32): "LSTMF32", np.dtype(np.float64): "LSTMF64"}


class LSTMGradients(NamedTuple):
    """Gradients returned by :meth:`LSTM.backward`.

    Attributes
    ----------
    dx : ndarray of shape (batch, timesteps, input_size)
        Gradient of the input sequences.
    dh0, dc0 : ndarray of shape (num_layers * directions, batch, hidden_size)
        Gradients of the initial hidden and cell states.
    parameters : dict of str to ndarray
        Gradient of every parameter, under PyTorch's names.
    """

    dx: np.ndarray
    dh0: np.ndarray
    dc0: np.ndarray
    parameters: dict[str, np.ndarray]


def _describe(a: np.ndarray) -> str:
    return f"a {a.ndim}-D array of shape {a.shape}"


def _float_array(value: ArrayLike, name: str, dtype: np.dtype) -> np.ndarray:
    """Convert to a C-contiguous array of `dtype`, refusing non-numeric and non-finite data."""
    a = np.asarray(value)
    if a.dtype.kind not in "biuf":
        raise TypeError(f"{name} must hold real numbers; got an array of dtype {a.dtype}")
    a = np.ascontiguousarray(a, dtype=dtype)
    if not np.isfinite(a).all():
        raise ValueError(f"{name} contains NaN or infinity; replace or mask those values first")
    return a


def _check_shape(a: np.ndarray, name: str, expected: tuple[int, ...], meaning: str) -> None:
    if a.shape != expected:
        raise ValueError(f"{name} must have shape {expected} {meaning}; got {_describe(a)}")


class LSTM:
    """A stack of LSTM layers, computed by the C++ engine.

    Gates are in PyTorch's order (input, forget, cell, output) and parameters
    carry PyTorch's names and shapes (``weight_ih_l0 [4H, F]``,
    ``weight_hh_l0 [4H, H]``, ``bias_ih_l0 [4H]``, ``bias_hh_l0 [4H]``, with
    ``_reverse`` for the backward direction), so weights move one to one
    between the two. Arrays are batch-first: ``[batch, timesteps, features]``.

    Parameters
    ----------
    input_size : int
        Features per time step.
    hidden_size : int
        Hidden units per layer and direction.
    num_layers : int, default=1
        Stacked layers.
    bidirectional : bool, default=False
        Also run each layer over the reversed sequence and concatenate the
        two outputs, as PyTorch does.
    dtype : {np.float32, np.float64}, default=np.float32
        Precision of parameters and computation.
    random_state : int, numpy.random.Generator or None, default=None
        Seed of the initial weights, drawn like PyTorch's from
        U(-1/sqrt(hidden_size), 1/sqrt(hidden_size)).
    n_threads : int or None, default=None
        Compute threads. None follows the package's rule (see
        :func:`lstmlearn.show_config`): ``LSTMLEARN_NUM_THREADS``, else
        ``OMP_NUM_THREADS``, else the CPUs this process may use; negative
        values count back from those CPUs as joblib does (-1: all).
        threadpoolctl's ``threadpool_limits`` caps every value.
        Results are bitwise identical for every thread count.

    Notes
    -----
    **Thread safety.** Calls on one module from several threads never crash:
    the engine runs one call at a time per module. But :meth:`backward`
    pairs with the last :meth:`forward` made on the module, so
    forward/backward pairs from several threads would mix up their batches;
    a backward whose forward was followed by another thread's raises
    ``RuntimeError`` instead. Give each thread its own module
    (``copy.deepcopy(module)`` copies the weights into a new one), or hold a
    lock around each forward + backward pair. Writing parameters while
    another thread computes is a data race, as with any NumPy array.
    Forward-only calls (inference) may share one module freely, and a process
    forked while another thread computes gets a usable module.

    Examples
    --------
    >>> import numpy as np
    >>> from lstmlearn.nn import LSTM
    >>> lstm = LSTM(input_size=3, hidden_size=8, random_state=0)
    >>> y, (h_n, c_n) = lstm.forward(np.zeros((2, 5, 3)))
    >>> y.shape, h_n.shape
    ((2, 5, 8), (1, 2, 8))
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        bidirectional: bool = False,
        dtype: DTypeLike = np.float32,
        *,
        random_state: int | np.random.Generator | None = None,
        n_threads: int | None = None,
    ) -> None:
        for name, value in (
            ("input_size", input_size),
            ("hidden_size", hidden_size),
            ("num_layers", num_layers),
        ):
            if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive integer; got {value!r}")
        dt = np.dtype(dtype)
        if dt not in _DTYPES:
            raise ValueError(f"dtype must be float32 or float64; got {dt}")
        # The engine refuses sizes whose tensors it cannot index (ValueError
        # naming the size and the limit) before allocating anything.
        self._build(
            int(input_size), int(hidden_size), int(num_layers), bool(bidirectional), dt, n_threads
        )
        rng = np.random.default_rng(random_state)
        bound = 1.0 / np.sqrt(hidden_size)
        flat = self._impl.parameters
        flat[:] = rng.uniform(-bound, bound, size=flat.size)

    def _build(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int,
        bidirectional: bool,
        dtype: np.dtype,
        n_threads: int | None,
    ) -> None:
        """Set every attribute, with a new engine object (parameters all zero)."""
        state = self.__dict__
        state["input_size"] = input_size
        state["hidden_size"] = hidden_size
        state["num_layers"] = num_layers
        state["bidirectional"] = bidirectional
        state["dtype"] = dtype
        state["n_threads"] = None if n_threads is None else int(n_threads)
        state["_impl"] = getattr(_engine.core, _DTYPES[dtype])(
            input_size, hidden_size, num_layers, bidirectional
        )
        flat = self._impl.parameters  # a view: the engine's buffer is never reallocated
        state["_layout"] = [
            (name, offset, tuple(shape)) for name, offset, shape in self._impl.layout()
        ]
        state["_params"] = {
            name: flat[offset : offset + int(np.prod(shape))].reshape(shape)
            for name, offset, shape in self._layout
        }
        # (B, T, thread id) of the last forward pass; the engine keeps the
        # authoritative record, under its lock (see backward).
        state["_batch"] = None

    # -- copying and pickling ---------------------------------------------

    def __getstate__(self) -> dict[str, Any]:
        return {
            "input_size": self.input_size,
            "hidden_size": self.hidden_size,
            "num_layers": self.num_layers,
            "bidirectional": self.bidirectional,
            "dtype": self.dtype.name,
            "n_threads": self.n_threads,
            "parameters": self._impl.parameters.copy(),
        }

    def __setstate__(self, state: dict[str, Any]) -> None:
        # A new engine object of the same sizes: the copy shares no cache,
        # gradient or lock with the original, so each thread may own one.
        self._build(
            int(state["input_size"]),
            int(state["hidden_size"]),
            int(state["num_layers"]),
            bool(state["bidirectional"]),
            np.dtype(state["dtype"]),
            state["n_threads"],
        )
        flat = self._impl.parameters
        values = np.asarray(state["parameters"])
        if values.shape != flat.shape:
            raise ValueError(
                f"the saved parameters have shape {values.shape}; this LSTM needs {flat.shape}"
            )
        flat[...] = values

    def __deepcopy__(self, memo: dict[int, Any]) -> LSTM:
        new = type(self).__new__(type(self))
        memo[id(self)] = new
        new.__setstate__(self.__getstate__())
        return new

    # -- parameters -------------------------------------------------------

    @property
    def directions(self) -> int:
        """1, or 2 when bidirectional."""
        return 2 if self.bidirectional else 1

    @property
    def parameter_names(self) -> tuple[str, ...]:
        """Names of all parameters, in PyTorch's order."""
        return tuple(self._params)

    def named_parameters(self) -> dict[str, np.ndarray]:
        """Return writable views of every parameter, keyed by PyTorch's names."""
        return dict(self._params)

    @property
    def flat_parameters(self) -> np.ndarray:
        """All parameters as one writable 1-D view, in :attr:`parameter_names` order."""
        return self._impl.parameters

    def __getattr__(self, name: str) -> Any:
        params = self.__dict__.get("_params", {})
        if name in params:
            return params[name]
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def __setattr__(self, name: str, value: Any) -> None:
        params = self.__dict__.get("_params", {})
        if name not in params:
            if name in self.__dict__ or name in ("input_size", "hidden_size", "num_layers"):
                raise AttributeError(f"{name} cannot be changed after construction")
            raise AttributeError(f"{type(self).__name__!r} object has no parameter {name!r}")
        target = params[name]
        array = _float_array(value, name, self.dtype)
        _check_shape(array, name, target.shape, "like PyTorch's")
        target[...] = array

    def __dir__(self) -> list[str]:
        return [*super().__dir__(), *self._params]

    def __repr__(self) -> str:
        return (
            f"LSTM(input_size={self.input_size}, hidden_size={self.hidden_size}, "
            f"num_layers={self.num_layers}, bidirectional={self.bidirectional}, "
            f"dtype={self.dtype.name})"
        )

    @classmethod
    def from_torch(cls, module: Any, *, n_threads: int | None = None) -> LSTM:
        """Copy a ``torch.nn.LSTM`` (its sizes, dtype and weights).

        Parameters
        ----------
        module : torch.nn.LSTM
            The module to copy. ``proj_size`` must be 0; a module built with
            ``bias=False`` gets zero biases.
        n_threads : int or None, default=None
            Compute threads of the new module.

        Returns
        -------
        LSTM
        """
        if type(module).__name__ != "LSTM" or not hasattr(module, "weight_ih_l0"):
            raise TypeError(f"expected a torch.nn.LSTM; got {type(module).__name__}")
        if getattr(module, "proj_size", 0):
            raise ValueError("LSTMs with proj_size > 0 are not supported")
        dtype = module.weight_ih_l0.detach().cpu().numpy().dtype
        if dtype not in _DTYPES:
            raise ValueError(f"torch module has dtype {dtype}; expected float32 or float64")
        new = cls(
            module.input_size,
            module.hidden_size,
            module.num_layers,
            module.bidirectional,
            dtype,
            n_threads=n_threads,
        )
        for name, view in new._params.items():
            tensor = getattr(module, name, None)
            if tensor is None:  # bias=False
                view[...] = 0
                continue
            value = tensor.detach().cpu().numpy()
            # Exactly PyTorch's shape: NumPy would broadcast a (4H, 1) weight
            # or a (1,) bias into the view without a word.
            if value.shape != view.shape:
                raise ValueError(
                    f"{name} of the torch module has shape {tuple(value.shape)}; an LSTM with "
                    f"input_size={new.input_size}, hidden_size={new.hidden_size} needs "
                    f"{view.shape}"
                )
            view[...] = value
        return new

    # -- computation ------------------------------------------------------

    def _threads(self, n_threads: int | None) -> int:
        return resolve_threads(self.n_threads if n_threads is None else int(n_threads))

    def _state(self, value: ArrayLike | None, name: str, batch: int) -> np.ndarray:
        shape = (self.num_layers * self.directions, batch, self.hidden_size)
        if value is None:
            return np.zeros(shape, dtype=self.dtype)
        a = _float_array(value, name, self.dtype)
        _check_shape(a, name, shape, "[num_layers * directions, batch, hidden_size]")
        return a

    def forward(
        self,
        x: ArrayLike,
        h0: ArrayLike | None = None,
        c0: ArrayLike | None = None,
        mask: ArrayLike | None = None,
        *,
        recurrent_mask: ArrayLike | None = None,
        n_threads: int | None = None,
    ) -> tuple[np.ndarray, tuple[np.ndarray, np.ndarray]]:
        """Run the layers over whole sequences.

        Parameters
        ----------
        x : array-like of shape (batch, timesteps, input_size)
            Input sequences. Other real dtypes are converted; NaN and infinity
            are refused (mask missing steps instead).
        h0, c0 : array-like of shape (num_layers * directions, batch, hidden_size), optional
            Initial states; zeros when omitted.
        mask : array-like of shape (batch, timesteps), optional
            False (0) marks a padded or missing step: there the state is
            carried unchanged and the output repeats the previous output.
        recurrent_mask : array-like of shape (num_layers * directions, batch, hidden_size), optional
            Multiplies h_{t-1} where it enters the recurrent product, at every
            step (recurrent dropout as Keras does it: pass the keep mask already
            divided by the keep probability).
        n_threads : int, optional
            Overrides the module's thread count for this call.

        Returns
        -------
        y : ndarray of shape (batch, timesteps, directions * hidden_size)
            Hidden output of the last layer at every step.
        (h_n, c_n) : ndarrays of shape (num_layers * directions, batch, hidden_size)
            Final states of every layer and direction.
        """
        x = np.asarray(x)
        if x.ndim != 3:
            raise ValueError(
                "x must be a 3-D array [batch, timesteps, features]; got " + _describe(x)
            )
        if x.shape[2] != self.input_size:
            raise ValueError(
                f"x has {x.shape[2]} features per step; this LSTM expects "
                f"input_size={self.input_size}"
            )
        if x.shape[0] == 0 or x.shape[1] == 0:
            raise ValueError(f"x needs at least one sequence and one step; got shape {x.shape}")
        x = _float_array(x, "x", self.dtype)
        batch, steps = x.shape[:2]
        h0a = self._state(h0, "h0", batch)
        c0a = self._state(c0, "c0", batch)
        m = None
        if mask is not None:
            m = np.asarray(mask)
            _check_shape(m, "mask", (batch, steps), "[batch, timesteps]")
            m = np.ascontiguousarray(m != 0, dtype=np.uint8)
        rmask = None
        if recurrent_mask is not None:
            rmask = self._state(recurrent_mask, "recurrent_mask", batch)
        y = np.empty((batch, steps, self.directions * self.hidden_size), dtype=self.dtype)
        h_n = np.empty_like(h0a)
        c_n = np.empty_like(c0a)
        self._impl.forward(x, h0a, c0a, m, rmask, y, h_n, c_n, self._threads(n_threads))
        self.__dict__["_batch"] = (batch, steps, threading.get_ident())
        return y, (h_n, c_n)

    __call__ = forward

    def backward(
        self,
        dy: ArrayLike,
        dh_n: ArrayLike | None = None,
        dc_n: ArrayLike | None = None,
        *,
        n_threads: int | None = None,
    ) -> LSTMGradients:
        """Backpropagate through time for the last :meth:`forward` call.

        Parameters
        ----------
        dy : array-like of shape (batch, timesteps, directions * hidden_size)
            Gradient of the loss with respect to ``y``.
        dh_n, dc_n : array-like of shape (num_layers * directions, batch, hidden_size), optional
            Gradients with respect to ``h_n`` and ``c_n``; zero when omitted.
        n_threads : int, optional
            Overrides the module's thread count for this call.

        Returns
        -------
        LSTMGradients
            ``dx``, ``dh0``, ``dc0`` and a dict of parameter gradients, all
            new arrays of this call.

        Raises
        ------
        RuntimeError
            When the last forward on this module was made by another thread
            (see the class's notes on thread safety).
        """
        last = self._batch
        if last is None:
            raise RuntimeError("backward needs a forward pass first; call forward(x) before it")
        width = self.directions * self.hidden_size
        dya = _float_array(dy, "dy", self.dtype)
        if last[2] == threading.get_ident():
            # Friendly checks against this thread's last forward. Were it
            # another thread's, the engine says so below: it checks, under
            # its lock, that the last forward is this thread's and that every
            # array fits that forward's cache.
            _check_shape(dya, "dy", (*last[:2], width), "(the shape of the last forward output)")
        elif dya.ndim != 3 or dya.shape[2] != width:
            raise ValueError(
                f"dy must be a 3-D array [batch, timesteps, {width}] (directions * hidden_size); "
                f"got {_describe(dya)}"
            )
        batch, steps = dya.shape[:2]
        dh = None if dh_n is None else self._state(dh_n, "dh_n", batch)
        dc = None if dc_n is None else self._state(dc_n, "dc_n", batch)
        dx = np.empty((batch, steps, self.input_size), dtype=self.dtype)
        shape = (self.num_layers * self.directions, batch, self.hidden_size)
        dh0 = np.empty(shape, dtype=self.dtype)
        dc0 = np.empty(shape, dtype=self.dtype)
        # The engine copies the parameter gradients into `flat` under its
        # lock: a view of its own buffer would change under the next backward.
        flat = np.empty(self._impl.parameters.size, dtype=self.dtype)
        self._impl.backward(dya, dh, dc, dx, dh0, dc0, self._threads(n_threads), flat)
        grads = {
            name: flat[offset : offset + int(np.prod(shape))].reshape(shape)
            for name, offset, shape in self._layout
        }
        return LSTMGradients(dx, dh0, dc0, grads)
