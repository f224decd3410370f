"""One safe file per model: ``model.save(path)`` and ``lstmlearn.load(path)``.

The file is a safetensors file: the model's numeric arrays (weights, optimizer
state, the random generator's key) are its tensors, and everything else is one
JSON document in its metadata under the key ``"lstmlearn"``::

    {"format": "lstmlearn", "format_version": 1, "lstmlearn_version": "...",
     "class": "LSTMRegressor", "params": {...}, "state": {...}, "checksum": "..."}

Loading runs no code from the file and imports nothing it names: the class
comes from a fixed table of lstmlearn's estimators, JSON values decode into a
fixed set of plain types (tagged tuples, dicts, arrays, non-finite floats),
and every fitted attribute is checked against a schema and against the
network the parameters build. The checksum (SHA-256 over the JSON and every
tensor's name, dtype, shape and bytes) catches damage and hand edits; the
checks catch what a recomputed checksum would let through.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import warnings
from pathlib import Path

import numpy as np

__all__ = ["atomic_write", "load", "save"]

FORMAT = "lstmlearn"
FORMAT_VERSION = 1
_KEY = "lstmlearn"


def _version() -> str:
    from ._config import _version

    return _version()


def _classes() -> dict[str, type]:
    from .estimators import LSTMClassifier, LSTMRegressor
    from .generator import LSTMGenerator
    from .seq2seq import LSTMSeq2Seq

    return {c.__name__: c for c in (LSTMRegressor, LSTMClassifier, LSTMGenerator, LSTMSeq2Seq)}


# -- writing -----------------------------------------------------------------------


def atomic_write(path: str | os.PathLike, data: bytes) -> None:
    """Write `data` to `path` so that a crash or Ctrl-C leaves the old file intact.

    The bytes go to a temporary file in the same folder, which is flushed to
    disk and then renamed over `path` (an atomic replacement on POSIX and
    Windows).
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent or ".")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    if hasattr(os, "O_DIRECTORY"):  # make the rename itself durable (POSIX)
        dir_fd = os.open(path.parent or ".", os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


class _Encoder:
    """Plain values to JSON, numeric arrays to tensors."""

    def __init__(self) -> None:
        self.tensors: dict[str, np.ndarray] = {}

    def encode(self, value: object, where: str) -> object:
        if value is None or isinstance(value, (bool, str)):
            return value
        if isinstance(value, (int, np.integer)):
            return int(value)
        if isinstance(value, (float, np.floating)):
            value = float(value)
            return value if np.isfinite(value) else {"$float": repr(value)}
        if isinstance(value, np.ndarray):
            if value.dtype.kind in "biuf":
                self.tensors[where] = np.ascontiguousarray(value)
                return {"$array": where}
            if value.dtype.kind in "UO":
                return {
                    "$values": [self.encode(v, f"{where}/{k}") for k, v in enumerate(value.flat)],
                    "shape": list(value.shape),
                    "dtype": value.dtype.str if value.dtype.kind == "U" else "object",
                }
        if isinstance(value, (list, tuple)):
            items = [self.encode(v, f"{where}/{k}") for k, v in enumerate(value)]
            return items if isinstance(value, list) else {"$tuple": items}
        if isinstance(value, dict) and all(isinstance(k, str) for k in value):
            return {"$dict": {k: self.encode(v, f"{where}/{k}") for k, v in value.items()}}
        raise TypeError(f"{where} holds a {type(value).__name__}, which cannot be saved")


def _checksum(document: dict, tensors: dict[str, np.ndarray]) -> str:
    digest = hashlib.sha256(json.dumps(document, sort_keys=True).encode())
    for name in sorted(tensors):
        t = tensors[name]
        digest.update(f"{name}|{t.dtype.str}|{t.shape}|".encode())
        digest.update(np.ascontiguousarray(t).tobytes())
    return digest.hexdigest()


def save(est, path: str | os.PathLike) -> None:
    """Write a fitted estimator to one safetensors file (see the module docstring)."""
    from safetensors.numpy import save as save_tensors
    from sklearn.utils.validation import check_is_fitted

    check_is_fitted(est, "_params")
    plain = est.__getstate__()
    names = est._get_param_names()
    params = {name: plain.get(name) for name in names}
    if params.get("callbacks") is not None:
        warnings.warn(
            "callbacks are not saved (a file holds no code); the loaded model has callbacks=None",
            UserWarning,
            stacklevel=3,
        )
        params["callbacks"] = None
    if isinstance(params.get("random_state"), np.random.RandomState):
        params["random_state"] = params["random_state"].get_state()
    state = {k: v for k, v in plain.items() if k not in names}
    encoder = _Encoder()
    document = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "lstmlearn_version": _version(),
        "class": type(est).__name__,
        "params": encoder.encode(params, "params"),
        "state": encoder.encode(state, "state"),
    }
    document["checksum"] = _checksum(document, encoder.tensors)
    data = save_tensors(encoder.tensors, metadata={_KEY: json.dumps(document, allow_nan=False)})
    atomic_write(path, data)


# -- reading -----------------------------------------------------------------------


class _Damaged(ValueError):
    pass


def _fail(path, why: str):
    raise ValueError(f"{path} is not a valid lstmlearn model file: {why}")


def _header(data: bytes) -> dict:
    """The safetensors header, checked before the tensors are read."""
    if len(data) < 8:
        raise _Damaged(f"{len(data)} bytes, too short for a safetensors header")
    size = int.from_bytes(data[:8], "little")
    if size > len(data) - 8 or size > 100_000_000:
        raise _Damaged(f"the header claims {size} bytes; the file has {len(data) - 8} after it")
    try:
        header = json.loads(data[8 : 8 + size])
    except (UnicodeDecodeError, ValueError) as error:
        raise _Damaged(f"its header is not JSON ({error})") from None
    if not isinstance(header, dict) or not isinstance(header.get("__metadata__"), dict):
        raise _Damaged("it has no lstmlearn metadata (a safetensors file from elsewhere?)")
    return header


class _Decoder:
    """JSON and tensors back to plain values, refusing anything else."""

    def __init__(self, tensors: dict[str, np.ndarray]) -> None:
        self.tensors = tensors
        self.used: set[str] = set()

    def decode(self, value: object, where: str) -> object:
        if value is None or isinstance(value, (bool, str, int, float)):
            return value
        if isinstance(value, list):
            return [self.decode(v, f"{where}/{k}") for k, v in enumerate(value)]
        if not isinstance(value, dict) or len(value) not in (1, 3):
            raise _Damaged(f"{where}: unexpected value {str(value)[:80]}")
        tag = next(iter(value))
        body = value[tag]
        if tag == "$float" and body in ("inf", "-inf", "nan") and len(value) == 1:
            return float(body)
        if tag == "$tuple" and isinstance(body, list) and len(value) == 1:
            return tuple(self.decode(v, f"{where}/{k}") for k, v in enumerate(body))
        if tag == "$dict" and isinstance(body, dict) and len(value) == 1:
            return {k: self.decode(v, f"{where}/{k}") for k, v in body.items()}
        if tag == "$array" and isinstance(body, str) and len(value) == 1:
            if body not in self.tensors:
                raise _Damaged(f"{where}: tensor {body!r} is missing")
            self.used.add(body)
            return self.tensors[body].copy()
        if tag == "$values" and isinstance(body, list):
            return self._strings(value, body, where)
        raise _Damaged(f"{where}: unknown tag {tag!r}")

    def _strings(self, value: dict, body: list, where: str) -> np.ndarray:
        shape, dtype = value.get("shape"), value.get("dtype")
        if not (isinstance(shape, list) and all(_is_int(s) and 0 <= s for s in shape)):
            raise _Damaged(f"{where}: bad shape {shape!r}")
        if int(np.prod(shape)) != len(body):
            raise _Damaged(f"{where}: shape {shape} does not hold {len(body)} values")
        items = [self.decode(v, f"{where}/{k}") for k, v in enumerate(body)]
        if any(not isinstance(v, (str, int, float, bool)) for v in items):
            raise _Damaged(f"{where}: values must be strings or numbers")
        if dtype == "object":
            out = np.empty(len(items), dtype=object)
            out[:] = items
        elif isinstance(dtype, str) and dtype.lstrip("<>|=").startswith("U"):
            out = np.array(items, dtype=np.dtype(dtype)) if items else np.array([], dtype=str)
        else:
            raise _Damaged(f"{where}: bad dtype {dtype!r}")
        return out.reshape(shape)


def _is_int(v: object) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _read(path) -> tuple[str, dict, dict]:
    """(class name, params, state) of a file, decoded and checksummed."""
    from safetensors.numpy import load as load_tensors

    data = Path(path).read_bytes()
    header = _header(data)
    text = header["__metadata__"].get(_KEY)
    if not isinstance(text, str):
        raise _Damaged("it has no lstmlearn metadata (a safetensors file from elsewhere?)")
    try:
        document = json.loads(text)
    except ValueError as error:
        raise _Damaged(f"its metadata is not JSON ({error})") from None
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise _Damaged("its metadata is not an lstmlearn document")
    version = document.get("format_version")
    if version != FORMAT_VERSION:
        raise _Damaged(
            f"format version {version!r}; this lstmlearn ({_version()}) reads version "
            f"{FORMAT_VERSION}. Load it with the lstmlearn that wrote it "
            f"({document.get('lstmlearn_version')!r})"
        )
    try:
        tensors = load_tensors(data)
    except Exception as error:  # safetensors raises its own error types
        raise _Damaged(f"its tensors cannot be read ({error})") from None
    checksum = document.pop("checksum", None)
    if checksum != _checksum(document, tensors):
        raise _Damaged("the checksum does not match: the file was damaged or edited")
    name = document.get("class")
    if name not in _classes():
        raise _Damaged(f"class {name!r} is not one of lstmlearn's estimators {sorted(_classes())}")
    decoder = _Decoder(tensors)
    params = decoder.decode(document.get("params"), "params")
    state = decoder.decode(document.get("state"), "state")
    if not isinstance(params, dict) or not isinstance(state, dict):
        raise _Damaged("params and state must be mappings")
    unused = set(tensors) - decoder.used
    if unused:
        raise _Damaged(f"tensors {sorted(unused)[:5]} belong to no attribute")
    return name, params, state


def load(path: str | os.PathLike):
    """Load a model written by ``save``.

    Parameters
    ----------
    path : str or path-like
        The file.

    Returns
    -------
    estimator
        The fitted estimator, predicting bitwise as the saved one did, with
        its optimizer state, so that ``partial_fit`` and ``warm_start``
        continue where it left off.

    Raises
    ------
    ValueError
        If the file is damaged, truncated, edited, of another format version,
        or describes something other than an lstmlearn estimator.
    """
    try:
        name, params, state = _read(path)
        cls = _classes()[name]
        est = _build(cls, params, state)
    except _Damaged as error:
        _fail(path, str(error))
    except (ValueError, TypeError, AttributeError, KeyError, IndexError, OverflowError) as error:
        # A check that did not foresee this file: still the same clear error.
        raise ValueError(
            f"{path} is not a valid lstmlearn model file: {type(error).__name__}: {error}"
        ) from error
    return est


# The fitted state of each estimator: attribute -> kind (see _KINDS).
_COMMON = {
    "_dtype": "dtype",
    "_hidden": "sizes",
    "n_features_in_": "size",
    "_rng": "rng",
    "_params": "floats_array",
    "_opt_m": "floats_array",
    "_opt_v": "floats_array",
    "_opt_step": "count",
    "loss_curve_": "floats",
    "history_": "history",
    "best_loss_": "float",
    "validation_scores_": "floats?",
    "best_validation_score_": "float?",
    "n_iter_": "count",
    "t_": "count",
    "_no_improvement": "count",
    "learning_rate_": "positive",
    "_initial_learning_rate": "positive",
    "best_epoch_": "size?",
    "_first_loss": "float?",
    "_plateau_left": "bool",
    "_inference_precision": "precision",
}
# Fitted attributes added after format version 1 was first written: a file
# without them loads (their values start anew on the next fit).
_LATER = {
    "learning_rate_",
    "_initial_learning_rate",
    "best_epoch_",
    "_first_loss",
    "_plateau_left",
    "patch_size_",  # absent: read one step at a time, as before patches
    "_inference_precision",  # absent: float32
}
_NETWORK = {
    **_COMMON,
    "_n_outputs": "size",
    "_per_step": "bool",
    "return_sequences_": "bool",
    "_fitted_arch": "arch",
    "_fcn_arch": "fcn_arch?",
    "frame_shape_": "sizes_tuple?",
    "patch_size_": "size",
    "_net_config_used": "net_config",
}
_SCHEMA = {
    "LSTMRegressor": {**_NETWORK, "_y_ndim": "count"},
    "LSTMClassifier": {**_NETWORK, "classes_": "array"},
    "LSTMGenerator": {
        **_NETWORK,
        "vocabulary_": "strings?",
        "n_tokens_": "size",
        "_default_seed": "ints_array",
    },
    "LSTMSeq2Seq": {
        **_COMMON,
        "_s2s_arch": "s2s_arch",
        "input_vocab_size_": "size?",
        "output_vocab_size_": "size?",
        "end_token_": "count?",
        "_n_classes": "size?",
        "n_features_out_": "size",
        "_y_ndim": "count",
        "_out_steps": "size",
    },
}


def _is_number(v: object) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _is_size(v: object) -> bool:
    return _is_int(v) and 1 <= v < 2**31


def _is_front_end(v: object) -> bool:
    # (kind, kernel, filters, pool), as __getstate__ writes a FrontEnd
    return (
        isinstance(v, tuple)
        and len(v) == 4
        and v[0] in ("conv1d", "conv2d")
        and isinstance(v[1], list)
        and len(v[1]) == (1 if v[0] == "conv1d" else 2)
        and all(_is_size(k) for k in v[1])
        and _is_size(v[2])
        and _is_size(v[3])
    )


_KINDS = {
    "arch": lambda v: (
        isinstance(v, tuple)
        and len(v) == 3
        and (v[0] is None or _is_front_end(v[0]))
        and v[1] in ("last", "mean", "attention")
        and (v[2] is None or _is_size(v[2]))
    ),
    # (filters, kernels, squeeze-excitation, dimension shuffle, sequence length)
    "fcn_arch": lambda v: (
        isinstance(v, tuple)
        and len(v) == 5
        and isinstance(v[0], tuple)
        and isinstance(v[1], tuple)
        and len(v[0]) == len(v[1])
        and all(_is_size(x) for x in v[0] + v[1])
        and isinstance(v[2], bool)
        and isinstance(v[3], bool)
        and (v[0] or v[3])
        and _is_int(v[4])
        and (v[4] >= 1 if v[3] else v[4] == 0)
    ),
    "net_config": lambda v: (
        isinstance(v, tuple)
        and len(v) in (4, 5)  # files written before head_dropout have 4
        and isinstance(v[0], bool)
        and v[1] in ("concat", "sum", "mul", "ave")
        and all(_is_number(x) and 0 <= x < 1 for x in v[2:])
    ),
    "s2s_arch": lambda v: (
        isinstance(v, tuple)
        and len(v) == 6
        and isinstance(v[0], list)
        and v[0]
        and all(_is_size(x) for x in v[0])
        and v[1] in ("teacher_forcing", "repeat")
        and v[2] in (None, "dot", "additive")
        and (v[3] is None or _is_size(v[3]))
        and _is_size(v[4])
        and v[5] in ("float32", "float64")
    ),
    "bool": lambda v: isinstance(v, bool),
    "count": lambda v: _is_int(v) and v >= 0,
    "size": lambda v: _is_int(v) and 1 <= v < 2**31,
    "float": _is_number,
    "positive": lambda v: _is_number(v) and 0 < v < np.inf,
    "floats": lambda v: isinstance(v, list) and all(_is_number(x) for x in v),
    "sizes": lambda v: isinstance(v, list) and v and all(_is_int(x) and 1 <= x < 2**31 for x in v),
    "sizes_tuple": lambda v: isinstance(v, tuple) and all(_is_int(x) and 1 <= x < 2**31 for x in v),
    "strings": lambda v: isinstance(v, list) and all(isinstance(x, str) for x in v),
    "tuple": lambda v: isinstance(v, tuple),
    "dtype": lambda v: v in ("float32", "float64"),
    "precision": lambda v: v in ("float32", "bfloat16", "int8"),
    "array": lambda v: isinstance(v, np.ndarray) and v.ndim == 1,
    "floats_array": lambda v: isinstance(v, np.ndarray) and v.ndim == 1 and v.dtype.kind == "f",
    "ints_array": lambda v: isinstance(v, np.ndarray) and v.ndim == 1 and v.dtype.kind in "iu",
    "history": lambda v: (
        isinstance(v, dict)
        and all(isinstance(x, list) and all(_is_number(y) for y in x) for x in v.values())
    ),
    "rng": lambda v: (
        isinstance(v, tuple)
        and len(v) == 5
        and v[0] == "MT19937"
        and isinstance(v[1], np.ndarray)
        and v[1].shape == (624,)
        and _is_int(v[2])
        and _is_int(v[3])
        and _is_number(v[4])
    ),
}


# Fitted attributes that only models using a feature have.
_ABSENT_WHEN_UNUSED = frozenset({"_fcn_arch"})


def check_state(cls, state: dict) -> None:
    """Refuse a fitted state that does not match the class's schema."""
    schema = _SCHEMA[cls.__name__]
    missing = sorted(schema.keys() - state.keys() - _ABSENT_WHEN_UNUSED - _LATER)
    extra = sorted(state.keys() - schema.keys())
    if missing or extra:
        raise _Damaged(f"fitted attributes missing {missing[:5]}, unexpected {extra[:5]}")
    for name, kind in schema.items():
        if name not in state:  # one of _ABSENT_WHEN_UNUSED or _LATER
            continue
        value = state[name]
        optional = kind.endswith("?")
        if optional and value is None:
            continue
        try:
            valid = bool(_KINDS[kind.rstrip("?")](value))
        except (TypeError, ValueError):  # e.g. an array where a scalar belongs
            valid = False
        if not valid:
            raise _Damaged(f"fitted attribute {name} = {str(value)[:60]} is not a valid {kind}")


def _build(cls, params: dict, state: dict):
    names = cls._get_param_names()
    unknown = set(params) - set(names)
    if unknown:
        raise _Damaged(f"unknown parameters {sorted(unknown)} for {cls.__name__}")
    for name, old in getattr(cls, "_PARAMS_BEFORE_THEY_EXISTED", ()):
        if name in names:  # a file written before the parameter existed
            params.setdefault(name, old)
    rs = params.get("random_state")
    if isinstance(rs, tuple):  # a RandomState, saved as its state
        if not _KINDS["rng"](rs):
            raise _Damaged(f"random_state = {str(rs)[:60]} is not a random generator's state")
        params["random_state"] = np.random.RandomState()
        params["random_state"].set_state(rs)
    est = cls(**params)
    try:
        est._validate_params()
    except ValueError as error:
        raise _Damaged(f"invalid parameters: {error}") from None
    check_state(cls, state)
    try:
        est.__setstate__(state)
        est._check_restored()
    except (
        ValueError,
        TypeError,
        AttributeError,
        KeyError,
        IndexError,
        OverflowError,
        MemoryError,
    ) as error:
        raise _Damaged(f"its fitted state is inconsistent: {error}") from None
    return est
