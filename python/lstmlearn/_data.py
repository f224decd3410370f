"""Turning user input into the engine's arrays: sequences, masks and targets."""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np


@dataclass
class Sequences:
    """Sequences ready for the engine.

    Attributes
    ----------
    x : ndarray of shape (n, T, F)
        C-contiguous, in the model's dtype; padding steps hold zeros.
    mask : ndarray of shape (n, T) of uint8, or None
        1 for real steps; None when every step is real.
    lengths : ndarray of shape (n,) or None
        Length of each sequence when the input was a list of different lengths.
    """

    x: np.ndarray
    mask: np.ndarray | None
    lengths: np.ndarray | None

    @property
    def ragged(self) -> bool:
        return self.lengths is not None


def _describe(a: np.ndarray) -> str:
    return f"an array of shape {a.shape}"


def _check_numeric(a: np.ndarray, name: str) -> None:
    if a.dtype.kind == "c":
        raise ValueError(f"Complex data not supported: {name} has dtype {a.dtype}")
    if a.dtype.kind not in "biuf":
        raise ValueError(f"{name} must hold real numbers; got an array of dtype {a.dtype}")


def _check_finite(a: np.ndarray, name: str) -> None:
    if np.isinf(a).any():
        raise ValueError(
            f"Input {name} contains NaN or infinity (infinity); replace those values first"
        )
    if np.isnan(a).any():
        i, t = np.argwhere(np.isnan(a).any(axis=-1))[0] if a.ndim == 3 else (0, 0)
        raise ValueError(
            f"Input {name} contains NaN or infinity (NaN at step {t} of sequence {i}); impute "
            "those values, or pass missing='mask' to mask out the steps that hold NaN, as "
            "padding is"
        )


def _mask_missing(x: np.ndarray, mask: np.ndarray | None) -> np.ndarray:
    """Mask out (and zero) the steps holding NaN; returns the combined mask."""
    if np.isinf(x).any():
        raise ValueError("Input X contains NaN or infinity (infinity); replace those values first")
    missing = np.isnan(x).any(axis=2)
    x[np.isnan(x)] = 0
    keep = ~missing if mask is None else (mask.astype(bool) & ~missing)
    empty = np.flatnonzero(~keep.any(axis=1))
    if empty.size:
        raise ValueError(
            f"Sequence {int(empty[0])} of X has no step without NaN; every sequence needs one"
        )
    return keep.astype(np.uint8)


def _is_ragged_list(X: object) -> bool:
    """A list of sequences of different shapes (lengths, or widths: then an error follows)."""
    if not isinstance(X, (list, tuple)) or len(X) == 0:
        return False
    if not all(hasattr(s, "__len__") for s in X):
        return False
    return len({_shape(s) for s in X}) > 1


def _shape(s: object) -> tuple[int, ...]:
    try:
        return np.shape(s)
    except ValueError:  # a nested list of rows of different lengths: refused later
        return (len(s), -1)


def _is_nested_frame(X: object) -> bool:
    # sktime's "nested_univ": a DataFrame whose cells hold one series each.
    if not (hasattr(X, "columns") and hasattr(X, "iloc") and hasattr(X, "dtypes")):
        return False
    if X.shape[0] == 0 or X.shape[1] == 0:
        return False
    if not all(getattr(d, "kind", None) == "O" for d in X.dtypes):
        return False
    first = X.iloc[0, 0]
    return not isinstance(first, (str, bytes)) and np.ndim(first) == 1


def sequence_list(X: object) -> object:
    """The sequences of the time-series ecosystem's containers, as a list; else X unchanged.

    - a 1-D NumPy object array of sequences (the container aeon and sktime use
      for series of different lengths), each in lstmlearn's layout
      ``[T_i, F]`` or ``[T_i]`` (aeon's own ``[channels, T_i]`` must be
      transposed): the list of its elements, so it gives what that list gives;
    - a pandas DataFrame of series (sktime's ``nested_univ``: a row per
      sequence, a column per feature, each cell a Series or array of the
      sequence's steps): a list of ``[T_i, n_columns]`` arrays.

    Anything else (arrays, lists, flat DataFrames) is returned as it came.
    """
    if isinstance(X, np.ndarray) and X.dtype == object and X.ndim == 1 and X.size:
        if all(np.ndim(s) > 0 for s in X):
            return [np.asarray(s) for s in X]
        return X
    if _is_nested_frame(X):
        rows = []
        for k in range(X.shape[0]):
            cells = [np.asarray(c) for c in X.iloc[k]]
            lengths = {c.shape for c in cells}
            if len(lengths) > 1 or cells[0].ndim != 1:
                raise ValueError(
                    f"Row {k} of the nested DataFrame X holds series of shapes "
                    f"{sorted(lengths)}; each cell must be a 1-D series, and the cells of one "
                    "row (the features of one sequence) must have the same length"
                )
            rows.append(np.stack(cells, axis=1))
        return rows
    if hasattr(X, "to_numpy") and hasattr(X, "dtype") and X.dtype == object and X.ndim == 1:
        return sequence_list(X.to_numpy())  # a pandas Series of sequences
    return X


def as_sequences(
    X: object,
    dtype: np.dtype,
    n_features: int | None = None,
    missing: str = "raise",
    check_layout: bool = False,
) -> Sequences:
    """Validate sequence input.

    Parameters
    ----------
    X : array-like of shape (n, T, F) or (n, T), or list of arrays (T_i, F) or (T_i,)
        A 2-D array is taken as one feature per step. A list of sequences of
        different lengths is padded at the end and masked. The containers of
        :func:`sequence_list` (object arrays, nested DataFrames) are read as
        the list of their sequences.
    dtype : numpy dtype
        The model's float dtype.
    n_features : int, optional
        Features per step the model was fitted with.
    missing : {'raise', 'mask'}, default='raise'
        What a step holding NaN means: an error, or a missing step, masked
        out as padding is (the state is carried over it).
    check_layout : bool, default=False
        Warn when a 3-D array looks like ``[n, channels, timepoints]`` (see
        :func:`_warn_channels_first`); for a fresh fit.
    """
    lengths = None
    if X is None:
        raise ValueError("X is None; expected sequences of shape (samples, timesteps, features)")
    if hasattr(X, "tocsr") or hasattr(X, "todense"):
        raise TypeError(
            "Sparse input is not supported: LSTMs need dense sequences; convert X with "
            "X.toarray() first"
        )
    X = sequence_list(X)
    if _is_ragged_list(X):
        seqs = [np.asarray(s) for s in X]
        for k, s in enumerate(seqs):
            _check_numeric(s, f"X[{k}]")
            if s.ndim not in (1, 2):
                raise ValueError(
                    "Each sequence in a list must be 1-D (timesteps,) or 2-D (timesteps, "
                    f"features); X[{k}] is {_describe(s)}"
                )
        seqs = [s[:, None] if s.ndim == 1 else s for s in seqs]
        widths = {s.shape[1] for s in seqs}
        if len(widths) > 1:
            hint = ""
            if len({len(s) for s in seqs}) == 1:
                hint = (
                    f". Every sequence has {len(seqs[0])} rows: if those are channels (aeon's "
                    "and sktime's [channels, timepoints] layout), transpose each sequence to "
                    "[timesteps, features]: [x.T for x in X]"
                )
            raise ValueError(
                f"All sequences must have the same number of features; got {sorted(widths)}" + hint
            )
        lengths = np.array([len(s) for s in seqs])
        if lengths.min() == 0:
            raise ValueError(
                f"Sequence X[{int(lengths.argmin())}] is empty; every sequence needs a step"
            )
        x = np.zeros((len(seqs), int(lengths.max()), seqs[0].shape[1]), dtype=dtype)
        for k, s in enumerate(seqs):
            x[k, : len(s)] = s
    else:
        x = np.asarray(X)
        if x.dtype == object:
            try:
                x = x.astype(np.float64)
            except ValueError as error:
                raise ValueError(
                    f"X could not be read as a numeric array ({error}); pass an array of shape "
                    "(samples, timesteps, features) or a list of 2-D sequences"
                ) from None
        _check_numeric(x, "X")
        if x.ndim == 2:
            if x.shape[1] == 0:
                raise ValueError(
                    f"Found array with 0 feature(s) (shape={x.shape}) while a minimum of 1 is "
                    "required."
                )
            x = x[:, :, None]
        elif x.ndim != 3:
            raise ValueError(
                "Expected a 3-D array (samples, timesteps, features) or a 2-D array (samples, "
                f"timesteps); got {x.ndim}-D {_describe(x)}. Reshape your data: "
                "X.reshape(1, -1) for one sequence of one feature per step, "
                "X[None] for one (timesteps, features) sequence"
            )
        x = np.ascontiguousarray(x, dtype=dtype)
        if check_layout and x.ndim == 3:
            _warn_channels_first(x.shape)
    if x.shape[0] == 0:
        raise ValueError(
            f"Found array with 0 sample(s) (shape={x.shape}) while a minimum of 1 is required."
        )
    if x.shape[1] == 0 or x.shape[2] == 0:
        raise ValueError(f"Found array with 0 timestep(s) or feature(s): shape={x.shape}")
    if missing == "raise":
        _check_finite(x, "X")
    if n_features is not None and x.shape[2] != n_features:
        hint = ""
        if lengths is None and x.shape[1] == n_features:
            hint = (
                f". X has {n_features} steps: if X is [samples, channels, timepoints] (aeon's "
                "and sktime's layout), pass X.transpose(0, 2, 1), as lstmlearn reads "
                "[samples, timesteps, features]"
            )
        raise ValueError(
            f"X has {x.shape[2]} features per step, but this model was fitted with "
            f"{n_features} features per step{hint}"
        )
    mask = None
    if lengths is not None:
        mask = (np.arange(x.shape[1])[None, :] < lengths[:, None]).astype(np.uint8)
    if missing == "mask" and not np.isfinite(x).all():
        x = x.copy()  # x may be the caller's array: never write into it
        mask = _mask_missing(x, mask)
    return Sequences(x, mask, lengths)


# A 3-D X of at most _FEW_STEPS steps with at least _WIDE times as many features
# per step (and at least _MIN_WIDE) is more likely aeon's [n, channels, T] than
# [n, T, F]: see _warn_channels_first.
_FEW_STEPS, _WIDE, _MIN_WIDE = 10, 10, 20


def _warn_channels_first(shape: tuple[int, ...]) -> None:
    """Warn, never refuse: an X of few steps and many features may be [n, channels, T].

    aeon and sktime hold collections as [n, channels, timepoints]; passed as
    is, a univariate set [n, 1, T] becomes one step of T features, and the
    LSTM sees no sequence at all. Few steps of many features are also valid
    input (the Keras tutorials' [samples, 1, lags] framing), so this only
    warns, and only where channels-first is the likelier reading.
    """
    _, steps, features = shape
    if steps <= _FEW_STEPS and features >= max(_WIDE * steps, _MIN_WIDE):
        warnings.warn(
            f"X has shape {tuple(shape)}: {steps} time step(s) of {features} features each. "
            "lstmlearn reads X as [samples, timesteps, features], like Keras; if X is "
            "[samples, channels, timepoints] (aeon's and sktime's layout), pass "
            "X.transpose(0, 2, 1). If the layout is intended, ignore this warning.",
            UserWarning,
            stacklevel=2,
        )


# patch_size='auto': sequences longer than AUTO_PATCH_ABOVE steps are read in
# patches of ceil(T / AUTO_PATCH_STEPS) steps, so that the LSTM sees about
# AUTO_PATCH_STEPS steps. Chosen by cross-validation on the training splits of
# long univariate UCR series: see benchmarks/README.md (bench_accuracy.py).
AUTO_PATCH_ABOVE = 100
AUTO_PATCH_STEPS = 50


def auto_patch_size(steps: int) -> int:
    """The patch size that ``patch_size='auto'`` gives sequences of `steps` steps."""
    if steps <= AUTO_PATCH_ABOVE:
        return 1
    return -(-steps // AUTO_PATCH_STEPS)


def patch_steps(seqs: Sequences, k: int) -> Sequences:
    """Group every `k` consecutive steps of each sequence into one step of k*F features.

    Each sequence is aligned on its last real step: a length that `k` does not
    divide is padded with zeros at its start, so that the last patch always ends
    on the last observation. A patch is real (mask 1) if any of its steps is.
    Sequences of different lengths keep their own number of patches.
    """
    if k == 1:
        return seqs
    x, mask = seqs.x, seqs.mask
    n, T, F = x.shape
    if mask is None:
        pad = (-T) % k
        if pad:
            x = np.concatenate([np.zeros((n, pad, F), x.dtype), x], axis=1)
        return Sequences(np.ascontiguousarray(x.reshape(n, -1, k * F)), None, None)
    lengths = seqs.lengths if seqs.lengths is not None else np.full(n, T)
    patches = -(-lengths // k)  # ceil
    out = np.zeros((n, int(patches.max()) * k, F), x.dtype)
    keep = np.zeros((n, out.shape[1]), np.uint8)
    for i, (length, m) in enumerate(zip(lengths, patches, strict=True)):
        start = int(m) * k - int(length)
        out[i, start : start + length] = x[i, :length]
        keep[i, start : start + length] = mask[i, :length]
    real = keep.reshape(n, -1, k).any(axis=2).astype(np.uint8)
    return Sequences(out.reshape(n, -1, k * F), real, None if seqs.lengths is None else patches)


def per_step_target(y: object, seqs: Sequences, name: str = "y") -> np.ndarray | None:
    """Pad a per-step target given as a list of arrays; None if `y` is not such a list."""
    if not seqs.ragged or not isinstance(y, (list, tuple)):
        return None
    parts = [np.asarray(v) for v in y]
    if any(p.ndim == 0 for p in parts):
        return None  # one target per sequence, as a plain list
    if len(parts) != len(seqs.lengths) or any(
        len(p) != n for p, n in zip(parts, seqs.lengths, strict=False)
    ):
        return None
    T = seqs.x.shape[1]
    tail = parts[0].shape[1:]
    out = np.zeros((len(parts), T, *tail), dtype=np.result_type(*parts))
    for k, p in enumerate(parts):
        if p.shape[1:] != tail:
            raise ValueError(f"{name}[{k}] has shape {p.shape}; expected (length, *{tail})")
        out[k, : len(p)] = p
    return out


def unpad(out: np.ndarray, lengths: np.ndarray | None) -> np.ndarray | list[np.ndarray]:
    """Per-step outputs of ragged input back to a list of arrays of each length."""
    if lengths is None:
        return out
    return [out[k, :n] for k, n in enumerate(lengths)]
