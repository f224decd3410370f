"""Getting data into sequence shape: windows of a series, scaling, padding, one-hot tokens.

Size key: n = sequences (samples), T = time steps, F = features per step, k = target
columns, e = exogenous columns, C = categories (tokens).

- :func:`make_windows` cuts a series [T] or [T, k] into supervised pairs: ``X [n, window, F]``
  and ``y [n, horizon]`` (or ``[n, horizon, k]``).
- :class:`SequenceScaler` scales each feature over every sample and step of 3-D input,
  or of a list of sequences of different lengths.
- :func:`pad_sequences` pads and truncates a list of sequences as Keras does, and returns
  the mask of real steps.
- :class:`SequenceOneHotEncoder` one-hot encodes token sequences into ``[n, T, C]``.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from numbers import Integral
from typing import Any, ClassVar

import numpy as np
from numpy.typing import ArrayLike, DTypeLike
from sklearn.base import BaseEstimator, TransformerMixin, _fit_context, clone
from sklearn.preprocessing import OneHotEncoder, StandardScaler
from sklearn.utils import get_tags
from sklearn.utils._param_validation import HasMethods, Interval, StrOptions, validate_params
from sklearn.utils.metaestimators import available_if
from sklearn.utils.validation import check_is_fitted

from ._data import sequence_list

__all__ = ["SequenceOneHotEncoder", "SequenceScaler", "make_windows", "pad_sequences"]


# -- helpers ---------------------------------------------------------------------------------


def _is_pandas(obj: object) -> bool:
    # pandas is optional: an object can only be a pandas one if pandas was imported.
    pd = sys.modules.get("pandas")
    return pd is not None and isinstance(obj, (pd.Series, pd.DataFrame))


def _describe(obj: object) -> str:
    """A short description of what a user passed, for error messages."""
    if isinstance(obj, np.ndarray):
        return f"a {obj.ndim}-D array of shape {obj.shape}"
    return f"{obj!r} ({type(obj).__name__})"


def _pandas_values(obj: Any) -> np.ndarray:
    """The values of a Series or DataFrame; numeric columns with pd.NA give NaN."""
    values = obj.to_numpy()
    if values.dtype == object:
        from pandas.api.types import is_numeric_dtype

        dtypes = [obj.dtype] if obj.ndim == 1 else list(obj.dtypes)
        if all(is_numeric_dtype(d) for d in dtypes):
            values = obj.to_numpy(dtype=np.float64, na_value=np.nan)
    return values


def _as_columns(obj: object, name: str) -> tuple[np.ndarray, Any, list | None]:
    """A series-like as [T, columns], with its pandas index and column names (or None)."""
    index = columns = None
    if _is_pandas(obj):
        index = obj.index
        columns = [obj.name] if obj.ndim == 1 else list(obj.columns)
        values = _pandas_values(obj)
    else:
        values = np.asarray(obj)
    if values.ndim not in (1, 2):
        raise ValueError(
            f"{name} must be 1-D (timesteps,) or 2-D (timesteps, columns); got {_describe(values)}"
        )
    if values.ndim == 1:
        values = values[:, None]
    if values.shape[1] == 0:
        raise ValueError(f"{name} has no columns: got {_describe(values)}")
    return values, index, columns


# -- make_windows ----------------------------------------------------------------------------


@validate_params(
    {
        "series": ["array-like"],
        "window": [Interval(Integral, 1, None, closed="left")],
        "horizon": [Interval(Integral, 1, None, closed="left")],
        "stride": [Interval(Integral, 1, None, closed="left")],
        "exog": ["array-like", None],
    },
    prefer_skip_nested_validation=True,
)
def make_windows(
    series: ArrayLike,
    window: int,
    horizon: int = 1,
    stride: int = 1,
    exog: ArrayLike | None = None,
) -> tuple[np.ndarray, Any]:
    """Cut a time series into windows of inputs and the steps that follow them.

    This is the "series to supervised" step of forecasting: window ``i`` covers steps
    ``[s, s + window)`` with ``s = i * stride``, and its targets are the next ``horizon``
    steps, ``[s + window, s + window + horizon)``. Windows whose targets would run past the
    end of the series are not made.

    Parameters
    ----------
    series : array-like of shape (T,) or (T, k), pandas Series or DataFrame
        The values to forecast: one target (1-D, or one column) or ``k`` targets.
    window : int
        Steps of input per window (``>= 1``).
    horizon : int, default=1
        Steps ahead to forecast per window (``>= 1``).
    stride : int, default=1
        Steps between the starts of consecutive windows (``>= 1``).
    exog : array-like of shape (T,) or (T, e), pandas Series or DataFrame, default=None
        Exogenous (past) covariates aligned with ``series``, one row per step; they are
        appended to each window's steps as extra features. They are not targets.

    Returns
    -------
    X : ndarray of shape (n, window, k + e)
        Each step's features: the target columns' own values, then the ``exog`` columns.
        ``n = (T - window - horizon) // stride + 1``.
    y : ndarray of shape (n, horizon) for one target, or (n, horizon, k) for ``k`` targets
        When ``series`` or ``exog`` is a pandas object, ``y`` is a pandas object indexed by
        the label of each window's last step (the "now" of the forecast): a Series named
        ``"t+1"`` for one target and ``horizon=1``, otherwise a DataFrame with columns
        ``"t+1"`` ... ``"t+h"`` (one target) or a MultiIndex ``(target, step)`` (several
        targets, named by the series' columns). ``X`` is always a NumPy array.

    Raises
    ------
    ValueError
        If ``series`` has fewer than ``window + horizon`` steps, ``exog`` has another number
        of steps (or, both being pandas objects, another index), or either is not 1-D/2-D.

    Notes
    -----
    Missing values are not dropped: a NaN in the series or in ``exog`` passes through into
    every window (and target) that covers its step, and the number of windows does not
    change. lstmlearn's estimators refuse NaN in a 3-D array, so impute before, or drop the
    windows afterwards, e.g. with NumPy output::

        keep = ~np.isnan(X).any(axis=(1, 2)) & ~np.isnan(y).reshape(len(y), -1).any(axis=1)
        X, y = X[keep], y[keep]

    Examples
    --------
    >>> import numpy as np
    >>> X, y = make_windows(np.arange(6.0), window=3, horizon=2)
    >>> X[:, :, 0]
    array([[0., 1., 2.],
           [1., 2., 3.]])
    >>> y
    array([[3., 4.],
           [4., 5.]])
    """
    values, index, names = _as_columns(series, "series")
    T, k = values.shape
    if T < window + horizon:
        raise ValueError(
            f"series has {T} steps, but window={window} and horizon={horizon} need at least "
            f"window + horizon = {window + horizon} steps"
        )
    features = values
    if exog is not None:
        exog_values, exog_index, _ = _as_columns(exog, "exog")
        if len(exog_values) != T:
            raise ValueError(
                f"exog has {len(exog_values)} steps, but series has {T}; exog must be aligned "
                "with the series, one row per step"
            )
        if index is not None and exog_index is not None and not index.equals(exog_index):
            raise ValueError(
                "exog's index differs from series' index; align them first, e.g. "
                "exog = exog.reindex(series.index)"
            )
        if index is None:
            index = exog_index
        features = np.concatenate([values, exog_values], axis=1)

    n = (T - window - horizon) // stride + 1
    view = np.lib.stride_tricks.sliding_window_view
    # sliding_window_view puts the window axis last: (starts, columns, window) -> (n, window, F)
    X = view(features[: T - horizon], window, axis=0)[::stride].transpose(0, 2, 1)
    Y = view(values[window:], horizon, axis=0)[::stride].transpose(0, 2, 1)  # (n, horizon, k)
    X, Y = np.ascontiguousarray(X[:n]), np.ascontiguousarray(Y[:n])
    if k == 1:
        Y = Y[:, :, 0]
    if index is None:
        return X, Y

    import pandas as pd

    labels = index[window - 1 :: stride][:n]  # each window's last step
    steps = [f"t+{h}" for h in range(1, horizon + 1)]
    if k == 1 and horizon == 1:
        return X, pd.Series(Y[:, 0], index=labels, name="t+1")
    if k == 1:
        return X, pd.DataFrame(Y, index=labels, columns=pd.Index(steps, name="step"))
    targets = names if names is not None else list(range(k))
    columns = pd.MultiIndex.from_product([targets, steps], names=["target", "step"])
    # (n, horizon, k) -> (n, k, horizon): columns run over the steps of each target
    return X, pd.DataFrame(Y.transpose(0, 2, 1).reshape(n, -1), index=labels, columns=columns)


# -- sequences in and out --------------------------------------------------------------------


@dataclass
class _Layout:
    """How steps flattened to rows go back to the structure they came from.

    ``shape`` is (n, T) for an array (``three_d`` tells a 3-D one from a 2-D one with one
    feature per step); ``lengths`` and ``one_d`` (per sequence) describe a list.
    """

    shape: tuple[int, int] | None = None
    three_d: bool = True
    lengths: np.ndarray | None = None
    one_d: list[bool] | None = None

    def rebuild(self, rows: np.ndarray, squeeze: bool = True) -> np.ndarray | list[np.ndarray]:
        """Rows [N, W] back to [n, T, W] (or [n, T]), or to a list of [T_i, W] (or [T_i])."""
        if self.lengths is None:
            out = rows.reshape(*self.shape, rows.shape[1])
            return out[:, :, 0] if squeeze and not self.three_d else out
        parts = np.split(rows, np.cumsum(self.lengths)[:-1])
        return [
            p[:, 0] if squeeze and flat else p for p, flat in zip(parts, self.one_d, strict=True)
        ]

    def locate(self, row: int) -> str:
        """Where flattened row `row` came from, for error messages."""
        if self.lengths is None:
            return f"X[{row // self.shape[1]}, {row % self.shape[1]}]"
        k = int(np.searchsorted(np.cumsum(self.lengths), row, side="right"))
        return f"X[{k}][{row - int(np.sum(self.lengths[:k]))}]"


def _list_steps(X: list | tuple, what: str) -> tuple[list[np.ndarray], _Layout]:
    """Each sequence of a list as [T_i, W]; 1-D sequences get one column."""
    seqs = []
    for k, s in enumerate(X):
        a = np.asarray(s)
        if a.ndim not in (1, 2):
            given = _describe(s if a.ndim == 0 else a)
            raise ValueError(f"Each sequence in a list must be {what}; X[{k}] is {given}")
        seqs.append(a)
    layout = _Layout(
        lengths=np.array([len(s) for s in seqs], dtype=np.intp), one_d=[s.ndim == 1 for s in seqs]
    )
    return [s[:, None] if s.ndim == 1 else s for s in seqs], layout


def _feature_rows(X: object) -> tuple[np.ndarray, _Layout]:
    """Real steps of numeric sequences as rows [N, F], and their layout."""
    X = sequence_list(X)  # object arrays and nested frames: as the list of their sequences
    if isinstance(X, (list, tuple)):
        if len(X) == 0:
            raise ValueError("X is an empty list; expected at least one sequence")
        seqs, layout = _list_steps(X, "1-D (timesteps,) or 2-D (timesteps, features)")
        widths = [s.shape[1] for s in seqs]
        if len(set(widths)) > 1:
            other = next(k for k, w in enumerate(widths) if w != widths[0])
            raise ValueError(
                "All sequences must have the same number of features per step; X[0] has "
                f"{widths[0]} and X[{other}] has {widths[other]}"
            )
        return np.concatenate(seqs), layout
    x = _as_array(X)
    if x.ndim not in (2, 3):
        hint = (
            ". Reshape your data: X.reshape(1, -1) for one sequence of one feature per step, "
            "X[None] for one (timesteps, features) sequence"
            if x.ndim == 1
            else ""
        )
        raise ValueError(
            "Expected a 3-D array (samples, timesteps, features), a 2-D array (samples, "
            f"timesteps) or a list of sequences (timesteps, features); got {_describe(x)}{hint}"
        )
    _check_not_empty(x)
    if x.ndim == 2:
        return x.reshape(-1, 1), _Layout(shape=x.shape, three_d=False)
    return x.reshape(-1, x.shape[2]), _Layout(shape=x.shape[:2])


def _as_array(X: object) -> np.ndarray:
    if hasattr(X, "tocsr") or hasattr(X, "todense"):
        raise TypeError(
            "Sparse input is not supported: sequences are dense; convert X with X.toarray() first"
        )
    return X.to_numpy() if _is_pandas(X) else np.asarray(X)


def _check_not_empty(x: np.ndarray) -> None:
    """scikit-learn's messages for arrays without samples or steps."""
    if x.shape[0] == 0:
        raise ValueError(
            f"Found array with 0 sample(s) (shape={x.shape}) while a minimum of 1 is required."
        )
    if x.ndim == 2 and x.shape[1] == 0:
        raise ValueError(
            f"Found array with 0 feature(s) (shape={x.shape}) while a minimum of 1 is required "
            "(a 2-D array is read as (samples, timesteps): it has no steps)."
        )


# -- SequenceScaler --------------------------------------------------------------------------


def _scaler_has(method: str) -> Callable[[SequenceScaler], bool]:
    def check(self: SequenceScaler) -> bool:
        scaler = self.scaler_ if hasattr(self, "scaler_") else self._make_scaler()
        return hasattr(scaler, method)

    return check


class SequenceScaler(TransformerMixin, BaseEstimator):
    """Scale each feature over every sample and time step of sequences.

    A clone of ``scaler`` is fitted on the steps of all sequences stacked as rows, one
    column per feature, so each feature is scaled with statistics over every sample and
    every step. Transforms give back the structure they are given.

    Parameters
    ----------
    scaler : scikit-learn transformer, default=None
        The scaler to fit (cloned; the given one is left untouched), e.g. ``MinMaxScaler()``
        or ``RobustScaler()``. It must keep the number of features, as scalers do. None
        means ``StandardScaler()``.

    Attributes
    ----------
    scaler_ : transformer
        The fitted clone of ``scaler``.
    n_features_in_ : int
        Features per step seen in :meth:`fit`.

    Notes
    -----
    Input may be a 3-D array (samples, timesteps, features), a 2-D array (samples,
    timesteps) read as one feature per step, or a list of sequences (timesteps, features)
    or (timesteps,) of different lengths; a list comes back as a list of arrays of the
    same shapes. For a list only the real steps count, so scale sequences before padding
    them: zeros of padding in a 3-D array would count as values. NaN values are ignored in
    fitting and stay NaN in the output when the scaler does so, as scikit-learn's scalers
    do.

    Examples
    --------
    >>> import numpy as np
    >>> X = np.arange(12.0).reshape(2, 3, 2)
    >>> scaler = SequenceScaler().fit(X)
    >>> scaler.scaler_.mean_
    array([5., 6.])
    >>> scaler.transform([np.array([[5.0, 6.0]])])
    [array([[0., 0.]])]
    """

    _parameter_constraints: ClassVar[dict] = {
        "scaler": [HasMethods(["fit", "transform"]), None],
    }

    def __init__(self, scaler: Any = None) -> None:
        self.scaler = scaler

    def _make_scaler(self) -> Any:
        return StandardScaler() if self.scaler is None else self.scaler

    @_fit_context(prefer_skip_nested_validation=False)
    def fit(self, X: Any, y: Any = None) -> SequenceScaler:
        """Fit the scaler on the steps of every sequence.

        Parameters
        ----------
        X : array-like of shape (n, T, F) or (n, T), or list of arrays (T_i, F) or (T_i,)
            The sequences.
        y : None
            Ignored.

        Returns
        -------
        self : SequenceScaler
        """
        rows, _ = _feature_rows(X)
        if len(rows) == 0:
            raise ValueError("X has no time steps to fit on; every sequence is empty")
        self.scaler_ = clone(self._make_scaler()).fit(rows)
        self.n_features_in_ = rows.shape[1]
        return self

    def _rows(self, X: Any, method: str) -> tuple[np.ndarray, _Layout]:
        check_is_fitted(self)
        rows, layout = _feature_rows(X)
        if rows.shape[1] != self.n_features_in_:
            hint = (
                " (a 2-D array is read as (samples, timesteps), one feature per step)"
                if layout.lengths is None and not layout.three_d
                else ""
            )
            raise ValueError(
                f"X has {rows.shape[1]} features per step{hint}, but SequenceScaler was fitted "
                f"with {self.n_features_in_} features per step; {method} needs the same number"
            )
        return rows, layout

    def transform(self, X: Any) -> np.ndarray | list[np.ndarray]:
        """Scale the sequences.

        Parameters
        ----------
        X : array-like of shape (n, T, F) or (n, T), or list of arrays (T_i, F) or (T_i,)
            The sequences, with as many features per step as in :meth:`fit`.

        Returns
        -------
        X_scaled : ndarray of the shape of X, or list of arrays of the shapes of X's
        """
        rows, layout = self._rows(X, "transform")
        if len(rows) == 0:  # only empty sequences: nothing to scale
            return layout.rebuild(rows)
        return layout.rebuild(self.scaler_.transform(rows))

    @available_if(_scaler_has("inverse_transform"))
    def inverse_transform(self, X: Any) -> np.ndarray | list[np.ndarray]:
        """Undo the scaling.

        Parameters
        ----------
        X : array-like of shape (n, T, F) or (n, T), or list of arrays (T_i, F) or (T_i,)
            Scaled sequences.

        Returns
        -------
        X_original : ndarray of the shape of X, or list of arrays of the shapes of X's
        """
        rows, layout = self._rows(X, "inverse_transform")
        if len(rows) == 0:
            return layout.rebuild(rows)
        return layout.rebuild(self.scaler_.inverse_transform(rows))

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        inner = get_tags(self._make_scaler())
        tags.input_tags.two_d_array = True
        tags.input_tags.three_d_array = True
        tags.input_tags.allow_nan = inner.input_tags.allow_nan
        if tags.transformer_tags is not None and inner.transformer_tags is not None:
            tags.transformer_tags.preserves_dtype = list(inner.transformer_tags.preserves_dtype)
        return tags

    def _more_tags(self) -> dict[str, Any]:  # scikit-learn < 1.6
        return {"X_types": ["2darray", "3darray"], "allow_nan": True}


# -- pad_sequences ---------------------------------------------------------------------------


@validate_params(
    {
        "sequences": ["array-like"],
        "maxlen": [Interval(Integral, 1, None, closed="left"), None],
        "padding": [StrOptions({"pre", "post"})],
        "truncating": [StrOptions({"pre", "post"})],
        "value": "no_validation",
        "dtype": "no_validation",
    },
    prefer_skip_nested_validation=True,
)
def pad_sequences(
    sequences: ArrayLike,
    maxlen: int | None = None,
    padding: str = "pre",
    truncating: str = "pre",
    value: Any = 0.0,
    dtype: DTypeLike | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Pad (and truncate) sequences of different lengths to one length, as Keras does.

    The semantics of ``keras.utils.pad_sequences``: sequences longer than ``maxlen`` lose
    steps at the start (``truncating='pre'``) or the end (``'post'``); shorter ones get
    ``value`` before (``padding='pre'``) or after (``'post'``) their steps. Unlike Keras,
    the dtype defaults to the sequences' own, and the mask of real steps comes back too.

    Parameters
    ----------
    sequences : list of array-likes of shape (T_i,) or (T_i, F)
        The sequences; every step must have the same shape. Empty sequences are allowed
        (all padding).
    maxlen : int, default=None
        Length of the output; None means the longest sequence's length.
    padding : {'pre', 'post'}, default='pre'
        Pad before or after each sequence.
    truncating : {'pre', 'post'}, default='pre'
        Drop steps from the start or the end of sequences longer than ``maxlen``.
    value : scalar, default=0.0
        The value of padding steps.
    dtype : dtype, default=None
        dtype of the output (values are cast as NumPy casts them, like Keras does); None
        means the common dtype of the non-empty sequences (float64 if all are empty).

    Returns
    -------
    padded : ndarray of shape (n, maxlen) or (n, maxlen, F)
        The padded sequences.
    mask : ndarray of bool, shape (n, maxlen)
        True at real steps, False at padding.

    Raises
    ------
    ValueError
        If a sequence is not a sequence, the steps' shapes differ, or, with ``dtype=None``,
        ``value`` does not fit the sequences' dtype (e.g. 0.5 or NaN for integer tokens, a
        number for string tokens).

    Examples
    --------
    >>> padded, mask = pad_sequences([[1, 2, 3], [4]], maxlen=2)
    >>> padded
    array([[2, 3],
           [0, 4]])
    >>> mask
    array([[ True,  True],
           [False,  True]])
    """
    seqs = []
    for k, s in enumerate(sequences):
        a = np.asarray(s)
        if a.ndim == 0:
            raise ValueError(
                "sequences must be a list of sequences, each of shape (timesteps,) or "
                f"(timesteps, features); sequences[{k}] is {_describe(s)}"
            )
        seqs.append(a)
    tails = [(k, s.shape[1:]) for k, s in enumerate(seqs) if len(s)]
    tail = tails[0][1] if tails else ()
    for k, shape in tails:
        if shape != tail:
            raise ValueError(
                f"All steps must have the same shape; sequences[{tails[0][0]}] has steps of "
                f"shape {tail} and sequences[{k}] has steps of shape {shape}"
            )
    if dtype is None:
        dtype = np.result_type(*[s.dtype for s in seqs if len(s)] if tails else [np.float64])
        _check_pad_value(value, dtype)
        if dtype.kind in "US":  # room for the padding token
            dtype = np.result_type(dtype, np.asarray(value).dtype)
    dtype = np.dtype(dtype)
    if isinstance(value, str) and dtype.kind not in "OUS":
        raise ValueError(
            f"value={value!r} is a string, but dtype is {dtype}; pass dtype=object or a "
            "string dtype to pad with strings"
        )

    lengths = np.array([len(s) for s in seqs], dtype=np.intp)
    if maxlen is None:
        maxlen = int(lengths.max()) if len(seqs) else 0
    kept = np.minimum(lengths, maxlen)
    steps = np.arange(maxlen)
    if padding == "pre":
        mask = steps[None, :] >= (maxlen - kept)[:, None]
    else:
        mask = steps[None, :] < kept[:, None]
    padded = np.full((len(seqs), maxlen, *tail), value, dtype=dtype)
    pieces = [
        s[len(s) - n :] if truncating == "pre" else s[:n]
        for s, n in zip(seqs, kept.tolist(), strict=True)
        if n
    ]
    if pieces:
        # Row-major order of the mask's True entries is the order of the kept steps.
        padded[mask] = np.concatenate(pieces).astype(dtype, copy=False)
    return padded, mask


def _check_pad_value(value: Any, dtype: np.dtype) -> None:
    """Refuse a padding value that the inferred dtype would silently change."""
    if dtype.kind in "US" and not isinstance(value, str):
        raise ValueError(
            f"The sequences hold strings ({dtype}), but value={value!r} is not a string; pass "
            "a padding token such as value='' (or an explicit dtype)"
        )
    if (
        dtype.kind in "biu"
        and isinstance(value, (int, float, np.number))
        and not (np.isfinite(value) and float(value).is_integer())
    ):
        raise ValueError(
            f"The sequences hold integers ({dtype}), but value={value!r} is not an integer; "
            "pass an integer value, or dtype=float to pad with it"
        )


# -- SequenceOneHotEncoder -------------------------------------------------------------------


def _token_rows(X: object) -> tuple[np.ndarray, _Layout]:
    """Tokens of every step as one column [N, 1], and their layout."""
    if isinstance(X, (list, tuple)):
        if len(X) == 0:
            raise ValueError("X is an empty list; expected at least one sequence of tokens")
        seqs, layout = _list_steps(X, "a 1-D sequence of tokens (timesteps,)")
        if not all(layout.one_d):
            k = layout.one_d.index(False)
            raise ValueError(
                f"Each sequence in a list must be a 1-D sequence of tokens (timesteps,); X[{k}] "
                f"is {_describe(seqs[k])}"
            )
        kinds = {"string" if s.dtype.kind in "US" else s.dtype.kind for s in seqs if len(s)}
        if "string" in kinds and len(kinds) > 1:
            raise TypeError(
                "Tokens must be all strings or all numbers (or objects); the sequences hold "
                f"dtypes {sorted({str(s.dtype) for s in seqs if len(s)})}"
            )
        rows = np.concatenate(seqs) if any(len(s) for s in seqs) else np.empty((0, 1), object)
        return rows, layout
    x = _as_array(X)
    if x.ndim != 2:
        hint = ". Reshape your data: X.reshape(1, -1) for one sequence" if x.ndim == 1 else ""
        raise ValueError(
            "Expected a 2-D array (samples, timesteps) of tokens or a list of 1-D token "
            f"sequences; got {_describe(x)}{hint}"
        )
    _check_not_empty(x)
    return x.reshape(-1, 1), _Layout(shape=x.shape, three_d=False)


def _code_rows(X: object, n_categories: int) -> tuple[np.ndarray, _Layout]:
    """One-hot (or scored) steps as rows [N, C], and their layout."""
    if isinstance(X, (list, tuple)):
        if len(X) == 0:
            raise ValueError("X is an empty list; expected at least one sequence")
        rows, layout = _feature_rows(X)
    else:
        x = _as_array(X)
        if x.ndim != 3:
            raise ValueError(
                "Expected a 3-D array (samples, timesteps, categories) or a list of 2-D arrays "
                f"(timesteps, categories); got {_describe(x)}"
            )
        rows, layout = x.reshape(-1, x.shape[2]), _Layout(shape=x.shape[:2])
    if rows.shape[1] != n_categories:
        raise ValueError(
            f"X has {rows.shape[1]} columns per step, but the encoder has {n_categories} "
            "categories; expected one column per category"
        )
    return rows, layout


class SequenceOneHotEncoder(TransformerMixin, BaseEstimator):
    """One-hot encode sequences of categorical tokens, one code per step.

    scikit-learn's :class:`~sklearn.preprocessing.OneHotEncoder` is fitted on the tokens of
    every step of every sequence, as one column, and encodes each step.

    Parameters
    ----------
    categories : 'auto' or array-like of shape (n_categories,), default='auto'
        The tokens, in the order of the output's columns; 'auto' takes the sorted unique
        tokens seen in :meth:`fit`. Numeric tokens must be given sorted.
    handle_unknown : {'error', 'ignore'}, default='error'
        What a token not among the categories does in :meth:`transform` (and, with given
        ``categories``, in :meth:`fit`): 'error' raises naming it and where it is, 'ignore'
        encodes the step as all zeros.
    dtype : numpy dtype, default=np.float32
        dtype of the output.

    Attributes
    ----------
    categories_ : ndarray of shape (n_categories,)
        The tokens, in the order of the output's columns (one array, not the list of one
        array per column that OneHotEncoder has).
    encoder_ : OneHotEncoder
        The fitted scikit-learn encoder.

    Notes
    -----
    Input may be a 2-D array (samples, timesteps) of integer or string tokens, or a list
    of 1-D token sequences of different lengths; a list comes back as a list of arrays.
    A missing value (None or NaN) is a category of its own, as in OneHotEncoder.

    Examples
    --------
    >>> enc = SequenceOneHotEncoder(dtype=int).fit([["a", "b", "a"], ["c"]])
    >>> enc.categories_
    array(['a', 'b', 'c'], dtype='<U1')
    >>> enc.transform([["b", "c"]])
    [array([[0, 1, 0],
           [0, 0, 1]])]
    """

    _parameter_constraints: ClassVar[dict] = {
        "categories": [StrOptions({"auto"}), "array-like"],
        "handle_unknown": [StrOptions({"error", "ignore"})],
        "dtype": "no_validation",  # OneHotEncoder validates it
    }

    def __init__(
        self,
        categories: str | ArrayLike = "auto",
        handle_unknown: str = "error",
        dtype: DTypeLike = np.float32,
    ) -> None:
        self.categories = categories
        self.handle_unknown = handle_unknown
        self.dtype = dtype

    def _encoder(self) -> OneHotEncoder:
        if isinstance(self.categories, str):
            categories = self.categories
        else:
            given = np.asarray(self.categories)
            if given.ndim != 1:
                raise ValueError(
                    "categories must be 'auto' or a 1-D array-like of tokens; got "
                    f"{_describe(given)}"
                )
            categories = [given]
        return OneHotEncoder(
            categories=categories,
            handle_unknown=self.handle_unknown,
            sparse_output=False,
            dtype=self.dtype,
        )

    def _call(self, encoder: OneHotEncoder, method: str, rows: np.ndarray, layout: _Layout):
        """encoder.method(rows), with an unknown token named and located in X."""
        try:
            return getattr(encoder, method)(rows)
        except ValueError as error:
            if "unknown categor" not in str(error):
                raise
            # In fit only given categories can leave a token unknown.
            categories = encoder.categories_[0] if method == "transform" else encoder.categories[0]
            known = set(np.asarray(categories).tolist())
            tokens = rows[:, 0].tolist()
            unknown = [k for k, v in enumerate(tokens) if v not in known]
            if not unknown:
                raise
            more = len({tokens[k] for k in unknown}) - 1
            raise ValueError(
                f"Found unknown token {tokens[unknown[0]]!r} at {layout.locate(unknown[0])}"
                + (f" (and {more} other unknown token(s))" if more else "")
                + f" during {method}; the known tokens are {_preview(np.asarray(categories))}. "
                "Pass handle_unknown='ignore' to encode unknown tokens as all-zero steps"
                + ("" if isinstance(self.categories, str) else ", or add it to categories")
            ) from None

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X: Any, y: Any = None) -> SequenceOneHotEncoder:
        """Fit the encoder on the tokens of every step.

        Parameters
        ----------
        X : array-like of shape (n, T), or list of 1-D arrays (T_i,)
            Token sequences.
        y : None
            Ignored.

        Returns
        -------
        self : SequenceOneHotEncoder
        """
        rows, layout = _token_rows(X)
        if len(rows) == 0:
            raise ValueError("X has no tokens to fit on; every sequence is empty")
        encoder = self._call(self._encoder(), "fit", rows, layout)
        self.encoder_ = encoder
        self.categories_ = encoder.categories_[0]
        return self

    def transform(self, X: Any) -> np.ndarray | list[np.ndarray]:
        """One-hot encode token sequences.

        Parameters
        ----------
        X : array-like of shape (n, T), or list of 1-D arrays (T_i,)
            Token sequences.

        Returns
        -------
        X_onehot : ndarray of shape (n, T, n_categories), or list of arrays (T_i, n_categories)
            One 1 per step in the column of its token; all zeros for an unknown token when
            ``handle_unknown='ignore'``.
        """
        check_is_fitted(self)
        rows, layout = _token_rows(X)
        return layout.rebuild(self._call(self.encoder_, "transform", rows, layout), squeeze=False)

    def inverse_transform(self, X: Any) -> np.ndarray | list[np.ndarray]:
        """Tokens back from one-hot codes.

        Parameters
        ----------
        X : array-like of shape (n, T, n_categories), or list of arrays (T_i, n_categories)
            One-hot codes, or per-step scores such as class probabilities: each step gives
            the token of its largest entry.

        Returns
        -------
        tokens : ndarray of shape (n, T), or list of arrays (T_i,)
            An all-zero step (an unknown token, or padding) gives None, whatever
            ``handle_unknown`` is; the output then has dtype object.
        """
        check_is_fitted(self)
        rows, layout = _code_rows(X, len(self.categories_))
        zero = ~rows.any(axis=1)
        if zero.any():
            tokens = np.full((len(rows), 1), None, dtype=object)
            if not zero.all():
                tokens[~zero] = self.encoder_.inverse_transform(rows[~zero])
        else:
            tokens = self.encoder_.inverse_transform(rows)
        # one token per step: [n, T] or a list of [T_i]
        layout.three_d = False
        layout.one_d = None if layout.one_d is None else [True] * len(layout.one_d)
        return layout.rebuild(tokens)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.two_d_array = True
        tags.input_tags.categorical = True
        tags.input_tags.string = True
        tags.input_tags.allow_nan = True
        if tags.transformer_tags is not None:
            tags.transformer_tags.preserves_dtype = []
        return tags

    def _more_tags(self) -> dict[str, Any]:  # scikit-learn < 1.6
        return {"X_types": ["2darray", "categorical", "string"], "allow_nan": True}


def _preview(tokens: np.ndarray, limit: int = 10) -> str:
    shown = ", ".join(repr(t) for t in tokens[:limit].tolist())
    return f"[{shown}{', ...' if len(tokens) > limit else ''}] ({len(tokens)} in all)"
