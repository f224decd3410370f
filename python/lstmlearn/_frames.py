"""Input of CNN-LSTM models: sub-sequences and frames, flattened per time step."""

from __future__ import annotations

from dataclasses import dataclass
from numbers import Integral

import numpy as np


@dataclass(frozen=True)
class FrontEnd:
    """A time-distributed convolution block, as the engine takes it.

    Attributes
    ----------
    kind : {'conv1d', 'conv2d'}
    kernel : tuple of int
        ``(k,)`` or ``(kh, kw)``.
    filters, pool : int
    """

    kind: str
    kernel: tuple[int, ...]
    filters: int
    pool: int

    @classmethod
    def from_params(cls, filters, kernel_size, pool_size) -> FrontEnd | None:
        """The front end of an estimator's parameters, or None without one."""
        if filters is None:
            return None
        if isinstance(kernel_size, Integral) and not isinstance(kernel_size, bool):
            kernel, kind = (int(kernel_size),), "conv1d"
        elif (
            isinstance(kernel_size, (tuple, list))
            and len(kernel_size) == 2
            and all(isinstance(k, Integral) and not isinstance(k, bool) for k in kernel_size)
        ):
            kernel, kind = (int(kernel_size[0]), int(kernel_size[1])), "conv2d"
        else:
            raise ValueError(
                "conv_kernel_size must be an int (conv1d over sub-sequences) or a pair of ints "
                f"(kh, kw) (conv2d over frames); got {kernel_size!r}"
            )
        if min(kernel) < 1:
            raise ValueError(f"conv_kernel_size must be positive; got {kernel_size!r}")
        return cls(kind, kernel, int(filters), int(pool_size))

    def expected_input(self) -> str:
        if self.kind == "conv1d":
            return "a 4-D array [samples, timesteps, steps, features] (conv1d, int kernel)"
        return (
            "a 4-D array [samples, timesteps, height, width] or a 5-D array "
            "[samples, timesteps, height, width, channels] (conv2d, (kh, kw) kernel)"
        )

    def frame_of(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        """The engine's frame ([S, C] or [Y, X, C]) of an input of this shape."""
        if self.kind == "conv1d":
            if len(shape) != 4:
                raise ValueError(
                    f"A conv1d front end expects {self.expected_input()}; got an array of "
                    f"shape {shape}"
                )
            return (shape[2], shape[3])
        if len(shape) == 4:
            return (shape[2], shape[3], 1)
        if len(shape) == 5:
            return tuple(shape[2:5])
        raise ValueError(
            f"A conv2d front end expects {self.expected_input()}; got an array of shape {shape}"
        )

    def check_fits(self, frame: tuple[int, ...]) -> None:
        """Raise when the kernel and pool window do not fit in the frame."""
        sizes = frame[:-1]  # S, or (Y, X)
        names = ("steps",) if self.kind == "conv1d" else ("height", "width")
        for name, size, k in zip(names, sizes, self.kernel, strict=True):
            if k > size:
                raise ValueError(
                    f"conv_kernel_size {k} is larger than the input's {name} {size}; use a "
                    f"kernel of at most {size}"
                )
            if (size - k + 1) // self.pool < 1:
                raise ValueError(
                    f"pool_size {self.pool} is larger than the convolution output's {name} "
                    f"{size - k + 1} (input {name} {size} - kernel {k} + 1); use a smaller "
                    "pool_size or kernel"
                )

    def output_width(self, frame: tuple[int, ...]) -> int:
        """Features per step that the conv block hands the LSTM."""
        width = self.filters
        for size, k in zip(frame[:-1], self.kernel, strict=True):
            width *= (size - k + 1) // self.pool
        return width


def flatten_frames(X: object, front: FrontEnd, frame: tuple[int, ...] | None):
    """Check a CNN-LSTM input and flatten each step's frame.

    Parameters
    ----------
    X : array-like
        ``[n, T, steps, F]`` for conv1d; ``[n, T, h, w]`` or ``[n, T, h, w, c]``
        for conv2d.
    front : FrontEnd
    frame : tuple of int or None
        The frame seen in fit (None while fitting).

    Returns
    -------
    flat : ndarray of shape (n, T, prod(frame))
        For :func:`as_sequences` to check values and dtype.
    frame : tuple of int
    """
    if X is None:
        raise ValueError(f"X is None; expected {front.expected_input()}")
    if hasattr(X, "tocsr") or hasattr(X, "todense"):
        raise TypeError("Sparse input is not supported; convert X with X.toarray() first")
    if isinstance(X, (list, tuple)) and X and len({np.shape(s) for s in X}) > 1:
        raise ValueError(
            "Sequences of different lengths are not supported with a conv front end; pad "
            f"them to one length and pass {front.expected_input()}"
        )
    arr = np.asarray(X)
    if arr.dtype == object:
        raise ValueError(f"X must be a numeric array; expected {front.expected_input()}")
    seen = front.frame_of(arr.shape)
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ValueError(f"X has shape {arr.shape}: at least one sample and one timestep needed")
    if frame is not None and tuple(seen) != tuple(frame):
        raise ValueError(
            f"X has frames of shape {tuple(arr.shape[2:])} (as {front.kind} frame {seen}); the "
            f"model was fitted on frames {tuple(frame)}"
        )
    if frame is None:
        front.check_fits(seen)
    return arr.reshape(arr.shape[0], arr.shape[1], int(np.prod(seen))), tuple(seen)
