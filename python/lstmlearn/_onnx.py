"""ONNX export of fitted models: :func:`to_onnx`, and converters for skl2onnx.

What each model exports (``B`` = batch, ``T`` = time steps; both symbolic):

``LSTMRegressor``
    Input ``X`` ``[B, T, F]`` in the model's dtype (with a conv front end the
    frames: ``[B, T, steps, features]`` for conv1d, ``[B, T, height, width]``
    for conv2d frames of one channel, ``[B, T, height, width, channels]``
    otherwise). Output ``variable``, shaped as
    :meth:`~lstmlearn.LSTMRegressor.predict` shapes it for a 3-D X: ``[B]``
    or ``[B, O]``; per step ``[B, T]`` or ``[B, T, O]``.
``LSTMClassifier``
    Input ``X`` as above. Outputs ``label``, the values of ``classes_`` (int64
    for integer or boolean classes, strings for text classes, float64 for
    float classes) as :meth:`~lstmlearn.LSTMClassifier.predict`, and
    ``probabilities`` ``[B, n_classes]``, columns in the order of
    ``classes_``; per step ``[B, T]`` and ``[B, T, n_classes]``.
``LSTMGenerator``
    One step of the language model: inputs ``token`` (int64 ``[B]``, one-hot
    encoded in the graph) and the state ``h_<i>``, ``c_<i>`` ``[B, H_i]`` of
    each layer ``i`` (zeros to start); outputs ``probabilities``
    ``[B, n_tokens]`` of the next token and the new state ``next_h_<i>``,
    ``next_c_<i>``. Feeding a context token by token from zero states gives
    :meth:`~lstmlearn.LSTMGenerator.predict_proba` of that context (of at
    most ``seq_length`` tokens: the estimator reads only the last
    ``seq_length``). A text model's characters are in the metadata
    ``vocabulary`` (JSON), in token order.
``LSTMSeq2Seq``
    Two graphs, an encoder and a decoder step; see :func:`to_onnx`.

Variable lengths: with ``sequence_lens=True`` the sequence graphs take a
second input ``sequence_lens`` (int32 ``[B]``), the real length of each
sequence of ``X`` padded at the end, as the estimators pad a list of sequences
of different lengths. The recurrence keeps a sequence's state over its
padding (the ONNX LSTM operator's ``sequence_lens``), ``pooling='last'`` reads
its last real step, and 'mean' and 'attention' pool over its real steps only,
as the engine does. Per-step outputs at padding steps are not defined (the
estimators drop them).

Patches (``patch_size_ > 1``): the graph groups every ``k`` steps of ``X``
into one LSTM step of ``k * F`` values, as the estimators do: a length that
``k`` does not divide gets zeros before its first step (with
``sequence_lens``, each sequence on its own, its padding read as zeros), so
``X`` keeps its original steps and any length.

LSTM-FCN (``fcn_filters``): the fully convolutional branch runs beside the
LSTM on ``X`` as it is (Conv1D with 'same' padding, batch normalisation with
the running statistics, ReLU, squeeze-and-excitation when fitted, global
average pooling), concatenated after the LSTM's output. With
``sequence_lens`` the padding steps enter no convolution, squeeze or pooling,
as in the engine (each sequence as if alone). With ``dimension_shuffle`` the
LSTM reads ``X`` transposed, so ``X`` must have the fitted number of steps
(fixed in the input's shape) and ``sequence_lens`` cannot be exported.

Operators: the recurrence is the standard ONNX ``LSTM`` operator (gates
reordered from the engine's PyTorch order i, f, g, o to ONNX's i, o, f, c;
``layout=0`` between Transpose nodes), or with ``recurrence='scan'`` a
``Scan`` over the cell's equations. ONNX Runtime's CPU kernels of ``LSTM`` and
``Conv`` compute in float32 only, so float64 models use ``'scan'`` by default,
their conv front end is a Gather of the patches and a MatMul, and their FCN
convolutions stack the shifted inputs for one MatMul.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.utils.validation import check_is_fitted

try:
    import onnx
    from onnx import TensorProto, helper, numpy_helper
except ImportError as error:  # pragma: no cover - depends on the environment
    raise ImportError(
        "ONNX export needs the onnx package: pip install 'lstmlearn[onnx]' (onnx, onnxruntime "
        "and skl2onnx)"
    ) from error

from ._persist import atomic_write
from .estimators import LSTMClassifier, LSTMRegressor
from .generator import LSTMGenerator
from .seq2seq import LSTMSeq2Seq

__all__ = ["DEFAULT_OPSET", "MIN_OPSET", "register_skl2onnx", "to_onnx"]

DEFAULT_OPSET = 17
MIN_OPSET = 14  # the LSTM operator's `layout` attribute


# -- a graph under construction ------------------------------------------------------


def _tensor(value: np.ndarray, name: str) -> TensorProto:
    if value.dtype.kind in "UO":
        flat = [str(v).encode("utf-8") for v in value.ravel()]
        return helper.make_tensor(name, TensorProto.STRING, value.shape, flat)
    return numpy_helper.from_array(np.array(value, order="C"), name)  # keeps 0-D


class _Graph:
    """Nodes and constants of an ONNX graph being built, with fresh names.

    Parameters
    ----------
    dtype : numpy dtype
        The float type of the model.
    prefix : str
        Prepended to every name made here (unique names inside a larger graph).
    inline : bool
        Constants as ``Constant`` nodes (for a ``Scan`` body) instead of
        initializers.
    """

    def __init__(self, dtype: np.dtype, prefix: str = "", inline: bool = False) -> None:
        self.dtype = np.dtype(dtype)
        self.elem = helper.np_dtype_to_tensor_dtype(self.dtype)
        self.prefix = prefix
        self.inline = inline
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[TensorProto] = []
        self._count = 0
        self._ints: dict[tuple, str] = {}

    def fresh(self, hint: str) -> str:
        self._count += 1
        return f"{self.prefix}{hint}_{self._count}"

    def const(self, value: Any, hint: str = "const", dtype: Any = None) -> str:
        """A constant: floats in the model's dtype unless `dtype` says otherwise."""
        array = np.asarray(value, dtype=self.dtype if dtype is None else dtype)
        name = self.fresh(hint)
        tensor = _tensor(array, name)
        if self.inline:
            self.nodes.append(helper.make_node("Constant", [], [name], value=tensor))
        else:
            self.initializers.append(tensor)
        return name

    def ints(self, *values: int) -> str:
        """A 1-D int64 constant (shapes, axes, slice bounds), made once."""
        if values not in self._ints:
            self._ints[values] = self.const(values, "ints", np.int64)
        return self._ints[values]

    def scalar(self, value: int) -> str:
        """A 0-D int64 constant (a Gather index that drops the axis)."""
        key = ("scalar", value)
        if key not in self._ints:
            self._ints[key] = self.const(value, "index", np.int64)
        return self._ints[key]

    def op(
        self, op_type: str, inputs: Sequence[str], outputs: int | Sequence[str] = 1, **attrs: Any
    ) -> Any:
        """Add a node; returns its output name (or the list of them)."""
        if isinstance(outputs, int):
            names = [self.fresh(op_type.lower()) for _ in range(outputs)]
        else:
            names = list(outputs)
        node = helper.make_node(
            op_type, list(inputs), names, name=self.fresh(f"{op_type}_node"), **attrs
        )
        self.nodes.append(node)
        return names[0] if len(names) == 1 else names


# -- small pieces ---------------------------------------------------------------------


def _transpose(g: _Graph, x: str, perm: Sequence[int]) -> str:
    return g.op("Transpose", [x], perm=list(perm))


def _unsqueeze(g: _Graph, x: str, *axes: int) -> str:
    return g.op("Unsqueeze", [x, g.ints(*axes)])


def _squeeze(g: _Graph, x: str, *axes: int) -> str:
    return g.op("Squeeze", [x, g.ints(*axes)])


def _dim(g: _Graph, x: str, axis: int) -> str:
    """Size of `axis` of `x` as a 1-D int64 tensor of one element."""
    return g.op("Slice", [g.op("Shape", [x]), g.ints(axis), g.ints(axis + 1)])


def _dense(g: _Graph, x: str, weight: np.ndarray, bias: np.ndarray) -> str:
    """x W^T + b over the last axis of x (any rank)."""
    return g.op("Add", [g.op("MatMul", [x, g.const(weight.T, "dense_wt")]), g.const(bias, "b")])


def _zeros_state(g: _Graph, x_tm: str, hidden: int) -> str:
    """Zeros [B, hidden] for the batch of the time-major `x_tm` [T, B, F]."""
    shape = g.op("Concat", [_dim(g, x_tm, 1), g.ints(hidden)], axis=0)
    return g.op(
        "ConstantOfShape", [shape], value=numpy_helper.from_array(np.zeros(1, dtype=g.dtype))
    )


def _time_mask(g: _Graph, x_tm: str, lengths: str) -> str:
    """Bool [T, B, 1]: step t of sequence b is real, for time-major x_tm [T, B, F]."""
    steps = g.op("Squeeze", [_dim(g, x_tm, 0), g.ints(0)])
    t = g.op("Range", [g.scalar(0), steps, g.scalar(1)])
    lens = g.op("Cast", [lengths], to=TensorProto.INT64)
    mask = g.op("Less", [_unsqueeze(g, t, 1), _unsqueeze(g, lens, 0)])
    return _unsqueeze(g, mask, 2)


# -- the LSTM layer -------------------------------------------------------------------


def _onnx_gates(a: np.ndarray) -> np.ndarray:
    """Rows of the engine's gate order i, f, g, o in ONNX's order i, o, f, c."""
    i, f, g, o = np.split(a, 4, axis=0)
    return np.concatenate([i, o, f, g], axis=0)


def _lstm_op(
    g: _Graph, x_tm: str, blocks: list, lengths: str | None, h0: str | None, c0: str | None
) -> tuple[str, str, str]:
    """The ONNX LSTM operator over x_tm [T, B, F]: Y [T, D, B, H], Y_h and Y_c [D, B, H]."""
    hidden = blocks[0][1].shape[1]
    w = np.stack([_onnx_gates(w_ih) for w_ih, _, _, _ in blocks])
    r = np.stack([_onnx_gates(w_hh) for _, w_hh, _, _ in blocks])
    b = np.stack([np.concatenate([_onnx_gates(bi), _onnx_gates(bh)]) for _, _, bi, bh in blocks])
    inputs = [x_tm, g.const(w, "W"), g.const(r, "R"), g.const(b, "B")]
    inputs += [lengths or "", h0 or "", c0 or ""]
    while inputs[-1] == "":
        inputs.pop()
    y, y_h, y_c = g.op(
        "LSTM",
        inputs,
        outputs=3,
        hidden_size=int(hidden),
        direction="bidirectional" if len(blocks) == 2 else "forward",
        layout=0,
    )
    return y, y_h, y_c


def _cell_body(dtype: np.dtype, w_hh: np.ndarray, masked: bool, prefix: str) -> onnx.GraphProto:
    """Scan body of one LSTM step (engine equations; a masked step carries the state).

    State inputs h, c [B, H]; scan inputs a_x [B, 4H] (x W_ih^T + b_ih + b_hh)
    and, when `masked`, m [B, 1] bool. Outputs h', c' and y = h'. Every name
    starts with `prefix`: a subgraph may not reuse a name of the graph around it.
    """
    g = _Graph(dtype, prefix=prefix, inline=True)
    h, c, a_x, m = (f"{prefix}{name}" for name in ("h", "c", "a_x", "m"))
    hidden = w_hh.shape[1]
    a = g.op("Add", [a_x, g.op("MatMul", [h, g.const(w_hh.T, "w_hh_t")])])

    def gate(k: int) -> str:
        return g.op("Slice", [a, g.ints(k * hidden), g.ints((k + 1) * hidden), g.ints(1)])

    i, f = g.op("Sigmoid", [gate(0)]), g.op("Sigmoid", [gate(1)])
    cand, o = g.op("Tanh", [gate(2)]), g.op("Sigmoid", [gate(3)])
    c_new = g.op("Add", [g.op("Mul", [f, c]), g.op("Mul", [i, cand])])
    h_new = g.op("Mul", [o, g.op("Tanh", [c_new])])
    if masked:
        h_new = g.op("Where", [m, h_new, h])
        c_new = g.op("Where", [m, c_new, c])
    outputs = [g.op("Identity", [value]) for value in (h_new, c_new, h_new)]
    state = [None, hidden]
    inputs = [
        helper.make_tensor_value_info(h, g.elem, state),
        helper.make_tensor_value_info(c, g.elem, state),
        helper.make_tensor_value_info(a_x, g.elem, [None, 4 * hidden]),
    ]
    if masked:
        inputs.append(helper.make_tensor_value_info(m, TensorProto.BOOL, [None, 1]))
    outputs = [helper.make_tensor_value_info(name, g.elem, state) for name in outputs]
    return helper.make_graph(g.nodes, "lstm_step", inputs, outputs)


def _lstm_scan(
    g: _Graph, x_tm: str, blocks: list, mask: str | None, h0: str | None, c0: str | None
) -> tuple[str, str, str]:
    """The same as _lstm_op, as a Scan over the cell's equations per direction."""
    ys, hs, cs = [], [], []
    for d, (w_ih, w_hh, b_ih, b_hh) in enumerate(blocks):
        hidden = w_hh.shape[1]
        a_x = _dense(g, x_tm, w_ih, b_ih + b_hh)  # [T, B, 4H], the engine's summed bias
        h = _zeros_state(g, x_tm, hidden) if h0 is None else g.op("Gather", [h0, g.scalar(d)])
        c = _zeros_state(g, x_tm, hidden) if c0 is None else g.op("Gather", [c0, g.scalar(d)])
        scanned = [a_x] if mask is None else [a_x, mask]
        h_n, c_n, y = g.op(
            "Scan",
            [h, c, *scanned],
            outputs=3,
            body=_cell_body(g.dtype, w_hh, mask is not None, g.fresh("cell") + "_"),
            num_scan_inputs=len(scanned),
            scan_input_directions=[d] * len(scanned),
            scan_output_directions=[d],
        )
        ys.append(_unsqueeze(g, y, 1))
        hs.append(_unsqueeze(g, h_n, 0))
        cs.append(_unsqueeze(g, c_n, 0))
    if len(blocks) == 1:
        return ys[0], hs[0], cs[0]
    return tuple(g.op("Concat", parts, axis=k) for parts, k in ((ys, 1), (hs, 0), (cs, 0)))


def _lstm(
    g: _Graph,
    x_tm: str,
    blocks: list,
    recurrence: str,
    lengths: str | None = None,
    mask: str | None = None,
    h0: str | None = None,
    c0: str | None = None,
) -> tuple[str, str, str]:
    """One LSTM layer (one or two directions) over x_tm [T, B, F].

    `blocks` holds (weight_ih, weight_hh, bias_ih, bias_hh) of each direction,
    in the engine's layout; `lengths` (int32 [B]) and `mask` (bool [T, B, 1])
    describe the same padding; `h0`, `c0` [D, B, H] default to zeros.
    Returns Y [T, D, B, H], Y_h and Y_c [D, B, H].
    """
    if recurrence == "lstm":
        return _lstm_op(g, x_tm, blocks, lengths, h0, c0)
    return _lstm_scan(g, x_tm, blocks, mask, h0, c0)


def _merge(g: _Graph, y: str, axis: int, mode: str, directions: int) -> str:
    """Combine the directions of `y` along `axis` (Keras's merge modes)."""
    if directions == 1:
        return _squeeze(g, y, axis)
    if mode == "concat":
        if axis == 1:  # [T, D, B, H] -> [T, B, D*H]
            return g.op("Reshape", [_transpose(g, y, (0, 2, 1, 3)), g.ints(0, 0, -1)])
        return g.op("Reshape", [_transpose(g, y, (1, 0, 2)), g.ints(0, -1)])  # [D, B, H]
    forward = g.op("Gather", [y, g.scalar(0)], axis=axis)
    backward = g.op("Gather", [y, g.scalar(1)], axis=axis)
    if mode == "sum":
        return g.op("Add", [forward, backward])
    if mode == "mul":
        return g.op("Mul", [forward, backward])
    return g.op("Mul", [g.const(0.5, "half"), g.op("Add", [forward, backward])])  # ave


def _params(est: Any) -> dict[str, np.ndarray]:
    """The named parameter views of a fitted model, over its flat buffer."""
    params = np.asarray(est._params)
    views = {}
    for name, offset, shape in est._network().layout():
        size = int(np.prod(shape))
        views[name] = params[offset : offset + size].reshape(shape)
    return views


def _blocks(p: dict[str, np.ndarray], prefix: str, bidirectional: bool) -> list:
    suffixes = ["_l0", "_l0_reverse"] if bidirectional else ["_l0"]
    return [
        tuple(p[f"{prefix}{kind}{s}"] for kind in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"))
        for s in suffixes
    ]


# -- LSTMRegressor and LSTMClassifier ---------------------------------------------------


def _conv_matmul(g: _Graph, rows: str, weight: np.ndarray, bias: np.ndarray, frame: tuple) -> str:
    """Valid convolution of channels-last rows [N, Y, X, C] as one Gather and one MatMul.

    For float64 (ONNX Runtime has no float64 Conv kernel): the patches of
    every output position (kernel row, column, channel: the engine's im2col
    order) are gathered from the flattened frame, then multiplied by the
    weights permuted to that order. Returns [N, K, Oy, Ox] for MaxPool.
    """
    height, width, channels = frame
    filters, _, kh, kw = weight.shape
    oy, ox = height - kh + 1, width - kw + 1
    pos = np.arange(height * width * channels).reshape(height, width, channels)
    patches = np.stack(
        [pos[y : y + kh, x : x + kw, :].ravel() for y in range(oy) for x in range(ox)]
    )  # [Oy*Ox, kh*kw*C]
    flat = g.op("Reshape", [rows, g.ints(0, -1)])
    cols = g.op("Gather", [flat, g.const(patches, "patches", np.int64)], axis=1)
    w = weight.transpose(0, 2, 3, 1).reshape(filters, -1)  # [K, kh*kw*C]
    z = _dense(g, cols, w, bias)  # [N, Oy*Ox, K]
    z = g.op("Reshape", [z, g.ints(0, oy, ox, filters)])
    return _transpose(g, z, (0, 3, 1, 2))


def _conv_front(g: _Graph, x: str, est: Any) -> str:
    """The time-distributed conv block: frames of x -> [B, T, F_0] (engine's flatten order)."""
    front = est._arch[0]
    frame = tuple(int(s) for s in est.frame_shape_)  # (S, C) or (Y, X, C)
    p = _params(est)
    one_d = front.kind == "conv1d"
    rows = g.op("Reshape", [x, g.ints(-1, *frame)])  # [B*T, *frame], channels last
    if g.dtype == np.float32:
        nchw = _transpose(g, rows, (0, 2, 1) if one_d else (0, 3, 1, 2))
        weight, bias = g.const(p["conv.weight"], "conv_w"), g.const(p["conv.bias"], "b")
        z = g.op("Conv", [nchw, weight, bias])
    else:
        weight = p["conv.weight"][:, :, None, :] if one_d else p["conv.weight"]
        z = _conv_matmul(g, rows, weight, p["conv.bias"], (1, *frame) if one_d else frame)
        if one_d:
            z = _squeeze(g, z, 2)  # [N, K, 1, L] -> [N, K, L]
    window = [front.pool] if one_d else [front.pool, front.pool]
    pooled = g.op("MaxPool", [z], kernel_shape=window, strides=window)
    y = g.op("Relu", [pooled])  # the engine's relu(max(z))
    nhwc = _transpose(g, y, (0, 2, 1) if one_d else (0, 2, 3, 1))
    width = front.output_width(frame)
    shape = g.op("Concat", [_dim(g, x, 0), _dim(g, x, 1), g.ints(width)], axis=0)
    return g.op("Reshape", [nhwc, shape])


# The FCN branch's batch normalisation epsilon: FcnSpec::epsilon (fcn.hpp), which the
# estimators leave at PyTorch's BatchNorm1d default.
_BN_EPSILON = 1e-5


def _patches(g: _Graph, x: str, k: int, width: int, lengths: str | None) -> tuple[str, str | None]:
    """Every `k` steps of x [B, T, F] as one step of k*F values: [B, ceil(T/k), k*F].

    As _data.patch_steps: each sequence is aligned on its last real step, a
    length that k does not divide getting zeros before its first step. With
    `lengths` (int32 [B], sequences padded at the end) each sequence is
    shifted on its own and its padding steps read as zeros; the patched
    lengths ceil(L/k) are returned beside (None without `lengths`).
    """
    kk = g.ints(k)
    steps = _dim(g, x, 1)
    if lengths is None:
        pad = g.op("Mod", [g.op("Sub", [kk, g.op("Mod", [steps, kk])]), kk])  # (-T) mod k
        pads = g.op("Concat", [g.ints(0), pad, g.ints(0, 0, 0, 0)], axis=0)
        x = g.op("Pad", [x, pads])
        return g.op("Reshape", [x, g.ints(0, -1, width)]), None
    lens = g.op("Cast", [lengths], to=TensorProto.INT64)  # [B]
    patches = g.op("Div", [g.op("Add", [lens, g.ints(k - 1)]), kk])  # ceil(L / k)
    start = g.op("Sub", [g.op("Mul", [patches, kk]), lens])  # leading zeros of each sequence
    total = g.op("Mul", [g.op("Div", [g.op("Add", [steps, g.ints(k - 1)]), kk]), kk])
    s = g.op("Range", [g.scalar(0), _squeeze(g, total, 0), g.scalar(1)])  # [S]
    source = g.op("Sub", [_unsqueeze(g, s, 0), _unsqueeze(g, start, 1)])  # [B, S]: step of x
    valid = g.op(
        "And",
        [
            g.op("GreaterOrEqual", [source, g.scalar(0)]),
            g.op("Less", [source, _unsqueeze(g, lens, 1)]),
        ],
    )
    index = _unsqueeze(g, g.op("Where", [valid, source, g.scalar(0)]), 2)  # [B, S, 1]
    gathered = g.op("GatherND", [x, index], batch_dims=1)  # [B, S, F]
    shifted = g.op("Where", [_unsqueeze(g, valid, 2), gathered, g.const(0.0, "zero")])
    out = g.op("Reshape", [shifted, g.ints(0, -1, width)])
    return out, g.op("Cast", [patches], to=TensorProto.INT32)


def _fcn_conv(g: _Graph, y: str, weight: np.ndarray, bias: np.ndarray) -> str:
    """Conv1D over time with 'same' padding (left (k-1)//2, as the engine): [B, C, T] -> [B, K, T].

    float32: the Conv operator. float64 (ONNX Runtime has no float64 Conv
    kernel): the k shifted copies of the padded input stacked on the channel
    axis (tap-major) and one MatMul by the weights in that order.
    """
    filters, channels, k = weight.shape
    left = (k - 1) // 2
    if g.dtype == np.float32:
        w, b = g.const(weight, "fcn_w"), g.const(bias, "b")
        return g.op("Conv", [y, w, b], kernel_shape=[k], pads=[left, k - 1 - left])
    padded = g.op("Pad", [y, g.ints(0, 0, left, 0, 0, k - 1 - left)])
    steps = _dim(g, y, 2)
    taps = [
        g.op("Slice", [padded, g.ints(j), g.op("Add", [steps, g.ints(j)]), g.ints(2)])
        for j in range(k)
    ]
    cols = taps[0] if k == 1 else g.op("Concat", taps, axis=1)  # [B, k*C, T]
    w = weight.transpose(0, 2, 1).reshape(filters, k * channels)  # [K, (tap, channel)]
    z = g.op("MatMul", [g.const(w, "fcn_w"), cols])  # [B, K, T]
    return g.op("Add", [z, g.const(bias[:, None], "b")])


def _fcn_branch(g: _Graph, x: str, est: Any, p: dict[str, np.ndarray], lengths: str | None) -> str:
    """The LSTM-FCN branch in inference, x [B, T, F] -> [B, K_last] (cpp/src/fcn.cpp).

    Each block: 'same' Conv1D, batch normalisation with the running statistics,
    ReLU, and squeeze-and-excitation after every block but the last when the
    model has it; then the mean over time. With `lengths`, as the engine's
    mask: padding steps enter the first convolution as zeros, every block's
    output is zero there, and the squeeze and the pooling average the real
    steps only (each sequence as if alone).
    """
    filters, _, se, _, _ = est._fcn
    y = _transpose(g, x, (0, 2, 1))  # [B, F, T]: channels first, as Conv takes them
    zero = g.const(0.0, "zero")
    mask = None
    if lengths is None:
        count = g.op("Cast", [_dim(g, y, 2)], to=g.elem)  # [1]
    else:
        mask = _transpose(g, _time_mask(g, _transpose(g, x, (1, 0, 2)), lengths), (1, 2, 0))
        y = g.op("Where", [mask, y, zero])  # [B, 1, T] mask; Where, not Mul: NaN padding
        lens = g.op("Max", [lengths, g.const(1, "one", np.int32)])  # the engine skips n = 0
        count = g.op("Cast", [_unsqueeze(g, lens, 1)], to=g.elem)  # [B, 1]
    eps = g.dtype.type(_BN_EPSILON)
    for i in range(len(filters)):
        z = _fcn_conv(g, y, p[f"fcn.conv{i}.weight"], p[f"fcn.conv{i}.bias"])
        # Running statistics folded as the engine folds them, in the model's dtype.
        scale = p[f"fcn.bn{i}.gamma"] / np.sqrt(p[f"fcn.bn{i}.running_var"] + eps)
        shift = p[f"fcn.bn{i}.beta"] - p[f"fcn.bn{i}.running_mean"] * scale
        z = g.op("Mul", [z, g.const(scale[:, None], "bn_scale")])
        y = g.op("Relu", [g.op("Add", [z, g.const(shift[:, None], "bn_shift")])])
        if mask is not None:
            y = g.op("Where", [mask, y, zero])
        if se and i + 1 < len(filters):  # squeeze-excitation (no biases, as the papers)
            w1 = g.const(p[f"fcn.se{i}.weight1"].T, "se_w1t")
            w2 = g.const(p[f"fcn.se{i}.weight2"].T, "se_w2t")
            squeeze = g.op("Div", [g.op("ReduceSum", [y, g.ints(2)], keepdims=0), count])
            e = g.op(
                "Sigmoid", [g.op("MatMul", [g.op("Relu", [g.op("MatMul", [squeeze, w1])]), w2])]
            )
            y = g.op("Mul", [y, _unsqueeze(g, e, 2)])  # [B, K, T] scaled per channel
    return g.op("Div", [g.op("ReduceSum", [y, g.ints(2)], keepdims=0), count])


def _class_values(est: Any, for_skl2onnx: bool = False) -> np.ndarray | None:
    """classes_ as a constant for the label output; None: the index is the label."""
    classes = np.asarray(np.asarray(est.classes_).tolist())
    if classes.dtype.kind in "US":
        return classes.astype(object)
    if classes.dtype.kind in "biu":
        classes = classes.astype(np.int64)
        return None if np.array_equal(classes, np.arange(len(classes))) else classes
    if for_skl2onnx:  # skl2onnx's convention; the estimator takes integral floats only
        return classes.astype(np.int64)
    return classes.astype(np.float64)  # exact class values, whatever the model dtype


def _label_type(values: np.ndarray | None) -> int:
    """ONNX type of the label output for the class constant `values`."""
    if values is None:
        return TensorProto.INT64
    if values.dtype == object:
        return TensorProto.STRING
    return helper.np_dtype_to_tensor_dtype(values.dtype)


def _sequence_model(
    g: _Graph,
    est: Any,
    x: str,
    given_lengths: str | None,
    outputs: Sequence[str],
    recurrence: str,
    classes: np.ndarray | None = None,
) -> None:
    """Nodes from X (batch-first) to the outputs of a regressor or a classifier.

    A classifier's label is ``classes[argmax]``, or the index when `classes` is None.
    """
    front, pooling, _ = est._arch
    directions = 2 if est.bidirectional else 1
    merge = est.merge_mode if est.bidirectional else "concat"
    p = _params(est)
    fcn = est._fcn  # (filters, kernels, squeeze-excitation, dimension shuffle, steps) or None
    # The FCN branch reads X as it is, beside the LSTM.
    branch = _fcn_branch(g, x, est, p, given_lengths) if fcn is not None and fcn[0] else None
    features = _conv_front(g, x, est) if front is not None else x
    lengths = given_lengths
    if est._patch > 1:
        width = est._patch * int(est.n_features_in_)
        features, lengths = _patches(g, features, est._patch, width, given_lengths)
    if fcn is not None and fcn[3]:  # dimension shuffle: the features are the LSTM's steps
        seq = _transpose(g, features, (2, 0, 1))  # [F, B, T]
    else:
        seq = _transpose(g, features, (1, 0, 2))  # [T, B, F_0]
    mask = None if lengths is None else _time_mask(g, seq, lengths)
    y_h = None
    for i in range(len(est._hidden)):
        blocks = _blocks(p, f"layer{i}.", est.bidirectional)
        y, y_h, _ = _lstm(g, seq, blocks, recurrence, lengths, mask)
        seq = _merge(g, y, 1, merge, directions)  # [T, B, W_i]
    weight, bias = p["dense.weight"], p["dense.bias"]
    if est._per_step:
        out = _dense(g, _transpose(g, seq, (1, 0, 2)), weight, bias)  # [B, T, O]
    else:
        if pooling == "last":
            pooled = _merge(g, y_h, 0, merge, directions)
        elif pooling == "mean":  # over the real steps
            if mask is None:
                total = g.op("ReduceSum", [seq, g.ints(0)], keepdims=0)
                count = g.op("Cast", [_dim(g, seq, 0)], to=g.elem)
            else:
                keep = g.op("Cast", [mask], to=g.elem)
                total = g.op("ReduceSum", [g.op("Mul", [seq, keep]), g.ints(0)], keepdims=0)
                count = g.op("Cast", [_unsqueeze(g, lengths, 1)], to=g.elem)
            pooled = g.op("Div", [total, count])
        else:  # attention: v . tanh(W h_t + b), softmax over the real steps
            energy = g.op("Tanh", [_dense(g, seq, p["pool.weight"], p["pool.bias"])])
            score = g.op("MatMul", [energy, g.const(p["pool.v"][:, None], "pool_v")])
            if mask is not None:
                score = g.op("Where", [mask, score, g.const(-np.inf, "minus_inf")])
            weights = g.op("Softmax", [score], axis=0)  # [T, B, 1]
            pooled = g.op(
                "ReduceSum", [g.op("Mul", [weights, seq]), g.ints(0)], keepdims=0
            )  # [B, W]
        if branch is not None:
            pooled = g.op("Concat", [pooled, branch], axis=1)  # [LSTM | FCN], as the engine
        out = _dense(g, pooled, weight, bias)  # [B, O]
    if isinstance(est, LSTMClassifier):
        label_out, proba_out = outputs
        proba = g.op("Softmax", [out], outputs=[proba_out], axis=-1)
        index = g.op("ArgMax", [proba], axis=-1, keepdims=0)
        if classes is None:
            g.op("Identity", [index], outputs=[label_out])
        else:
            g.op("Gather", [g.const(classes, "classes", classes.dtype), index], outputs=[label_out])
        return
    if est._per_step:  # y was [n, T] or [n, T, O]
        squeeze = 2 if est._y_ndim == 2 else None
    else:  # y was [n] or [n, O]
        squeeze = 1 if est._y_ndim == 1 else None
    if squeeze is None:
        g.op("Identity", [out], outputs=list(outputs))
    else:
        g.op("Squeeze", [out, g.ints(squeeze)], outputs=list(outputs))


def _input_shape(est: Any) -> list:
    front = est._arch[0]
    fcn = est._fcn
    if fcn is not None and fcn[3]:  # dimension shuffle: the length is one of the LSTM's sizes
        return ["batch", int(fcn[4]), int(est.n_features_in_)]
    if front is None:
        return ["batch", "sequence", int(est.n_features_in_)]
    frame = [int(s) for s in est.frame_shape_]
    if front.kind == "conv2d" and frame[-1] == 1:
        frame = frame[:-1]  # [B, T, height, width], as the estimator takes one channel
    return ["batch", "sequence", *frame]


def _estimator_model(est: Any, recurrence: str, sequence_lens: bool) -> tuple:
    g = _Graph(est._dtype)
    inputs = [helper.make_tensor_value_info("X", g.elem, _input_shape(est))]
    given = _lengths_input(g, inputs) if sequence_lens else None
    per_step = est._per_step
    classes = None
    if isinstance(est, LSTMClassifier):
        n = len(est.classes_)
        classes = _class_values(est)
        outputs = [
            helper.make_tensor_value_info(
                "label", _label_type(classes), ["batch", "sequence"] if per_step else ["batch"]
            ),
            helper.make_tensor_value_info(
                "probabilities", g.elem, ["batch", "sequence", n] if per_step else ["batch", n]
            ),
        ]
    else:
        shape = ["batch", "sequence"] if per_step else ["batch"]
        if est._y_ndim == (3 if per_step else 2):
            shape.append(int(est._n_outputs))
        outputs = [helper.make_tensor_value_info("variable", g.elem, shape)]
    _sequence_model(g, est, "X", given, [o.name for o in outputs], recurrence, classes)
    return g, inputs, outputs


def _lengths_input(g: _Graph, inputs: list) -> str:
    """Declare the `sequence_lens` input: int32 [B], each sequence's real length."""
    inputs.append(helper.make_tensor_value_info("sequence_lens", TensorProto.INT32, ["batch"]))
    return "sequence_lens"


# -- LSTMGenerator ----------------------------------------------------------------------


def _generator_step(est: LSTMGenerator, recurrence: str) -> tuple:
    g = _Graph(est._dtype)
    p = _params(est)
    vocab = int(est.n_tokens_)
    inputs = [helper.make_tensor_value_info("token", TensorProto.INT64, ["batch"])]
    outputs = [helper.make_tensor_value_info("probabilities", g.elem, ["batch", vocab])]
    # float32 one-hot values (ONNX Runtime has no float64 OneHot kernel), exact in either type
    off_on = g.const([0, 1], "off_on", np.float32)
    hot = g.op("Cast", [g.op("OneHot", ["token", g.ints(vocab), off_on], axis=-1)], to=g.elem)
    seq = _unsqueeze(g, hot, 0)  # [1, B, V]
    h = None
    for i, hidden in enumerate(est._hidden):
        for s in ("h", "c"):
            inputs.append(helper.make_tensor_value_info(f"{s}_{i}", g.elem, ["batch", hidden]))
            outputs.append(
                helper.make_tensor_value_info(f"next_{s}_{i}", g.elem, ["batch", hidden])
            )
        y, y_h, y_c = _lstm(
            g,
            seq,
            _blocks(p, f"layer{i}.", False),
            recurrence,
            h0=_unsqueeze(g, f"h_{i}", 0),
            c0=_unsqueeze(g, f"c_{i}", 0),
        )
        h = g.op("Squeeze", [y_h, g.ints(0)], outputs=[f"next_h_{i}"])
        g.op("Squeeze", [y_c, g.ints(0)], outputs=[f"next_c_{i}"])
        seq = _squeeze(g, y, 1)  # [1, B, H_i]
    logits = _dense(g, h, p["dense.weight"], p["dense.bias"])
    g.op("Softmax", [logits], outputs=["probabilities"], axis=-1)
    return g, inputs, outputs


# -- LSTMSeq2Seq ------------------------------------------------------------------------


def _seq2seq_encoder(est: LSTMSeq2Seq, recurrence: str, sequence_lens: bool) -> tuple:
    g = _Graph(est._dtype)
    p = _params(est)
    hidden = est._hidden
    tokens = est.input_vocab_size_ is not None
    if tokens:
        inputs = [helper.make_tensor_value_info("X", TensorProto.INT64, ["batch", "sequence"])]
    else:
        shape = ["batch", "sequence", int(est.n_features_in_)]
        inputs = [helper.make_tensor_value_info("X", g.elem, shape)]
    given = _lengths_input(g, inputs) if sequence_lens else None
    top = hidden[-1]
    outputs = [
        helper.make_tensor_value_info("encoder_outputs", g.elem, ["batch", "sequence", top]),
        helper.make_tensor_value_info("h", g.elem, ["batch", top]),
        helper.make_tensor_value_info("c", g.elem, ["batch", top]),
    ]
    x = g.op("Gather", [g.const(p["encoder.embedding"], "embedding"), "X"]) if tokens else "X"
    seq = _transpose(g, x, (1, 0, 2))
    mask = None if given is None else _time_mask(g, seq, given)
    for i in range(len(hidden)):
        blocks = _blocks(p, f"encoder.layer{i}.", False)
        y, y_h, y_c = _lstm(g, seq, blocks, recurrence, given, mask)
        seq = _squeeze(g, y, 1)
    g.op("Transpose", [seq], outputs=["encoder_outputs"], perm=[1, 0, 2])
    g.op("Squeeze", [y_h, g.ints(0)], outputs=["h"])
    g.op("Squeeze", [y_c, g.ints(0)], outputs=["c"])
    return g, inputs, outputs


def _seq2seq_step(est: LSTMSeq2Seq, recurrence: str, sequence_lens: bool) -> tuple:
    g = _Graph(est._dtype)
    p = _params(est)
    H = est._hidden[-1]
    n_out = int(est._n_classes) if est.output_vocab_size_ is not None else int(est.n_features_out_)
    tokens_out = est.output_vocab_size_ is not None
    state = ["batch", H]
    if est.mode == "repeat":
        inputs = [helper.make_tensor_value_info("decoder_input", g.elem, state)]
        x = "decoder_input"
    elif tokens_out:
        inputs = [helper.make_tensor_value_info("token", TensorProto.INT64, ["batch"])]
        x = g.op("Gather", [g.const(p["decoder.embedding"], "embedding"), "token"])
    else:
        inputs = [helper.make_tensor_value_info("previous", g.elem, ["batch", n_out])]
        x = "previous"
    inputs += [
        helper.make_tensor_value_info("h", g.elem, state),
        helper.make_tensor_value_info("c", g.elem, state),
    ]
    name = "probabilities" if tokens_out else "values"
    outputs = [
        helper.make_tensor_value_info(name, g.elem, ["batch", n_out]),
        helper.make_tensor_value_info("next_h", g.elem, state),
        helper.make_tensor_value_info("next_c", g.elem, state),
    ]
    _, y_h, y_c = _lstm(
        g,
        _unsqueeze(g, x, 0),
        _blocks(p, "decoder.", False),
        recurrence,
        h0=_unsqueeze(g, "h", 0),
        c0=_unsqueeze(g, "c", 0),
    )
    h = g.op("Squeeze", [y_h, g.ints(0)], outputs=["next_h"])
    g.op("Squeeze", [y_c, g.ints(0)], outputs=["next_c"])
    features = h
    if est.attention is not None:
        keys = "encoder_outputs"
        inputs.append(helper.make_tensor_value_info(keys, g.elem, ["batch", "sequence", H]))
        given = _lengths_input(g, inputs) if sequence_lens else None
        outputs.append(
            helper.make_tensor_value_info("attention_weights", g.elem, ["batch", "sequence"])
        )
        if est.attention == "dot":
            score = g.op("MatMul", [keys, _unsqueeze(g, h, 2)])  # [B, Tk, 1]
        else:
            kp = _dense(g, keys, p["attention.Wk"], p["attention.bias"])  # [B, Tk, A]
            qp = g.op("MatMul", [h, g.const(p["attention.Wq"].T, "wq_t")])  # [B, A]
            energy = g.op("Tanh", [g.op("Add", [kp, _unsqueeze(g, qp, 1)])])
            score = g.op("MatMul", [energy, g.const(p["attention.v"][:, None], "v")])
        score = _squeeze(g, score, 2)  # [B, Tk]
        if given is not None:  # softmax over the real steps
            mask = _time_mask(g, _transpose(g, keys, (1, 0, 2)), given)  # [Tk, B, 1]
            mask = _transpose(g, _squeeze(g, mask, 2), (1, 0))
            score = g.op("Where", [mask, score, g.const(-np.inf, "minus_inf")])
        weights = g.op("Softmax", [score], outputs=["attention_weights"], axis=-1)
        context = _squeeze(g, g.op("MatMul", [_unsqueeze(g, weights, 1), keys]), 1)
        features = g.op("Concat", [context, h], axis=1)  # [context; decoder output]
    z = _dense(g, features, p["dense.weight"], p["dense.bias"])
    if tokens_out:
        g.op("Softmax", [z], outputs=[name], axis=-1)
    else:
        g.op("Identity", [z], outputs=[name])
    return g, inputs, outputs


# -- models and files ---------------------------------------------------------------------


def _version() -> str:
    from . import __version__

    return str(__version__)


def _model(
    built: tuple, est: Any, opset: int, doc: str, metadata: dict[str, Any]
) -> onnx.ModelProto:
    g, inputs, outputs = built
    graph = helper.make_graph(
        g.nodes, type(est).__name__, inputs, outputs, initializer=g.initializers
    )
    opsets = [helper.make_opsetid("", opset)]
    model = helper.make_model(
        graph,
        opset_imports=opsets,
        producer_name="lstmlearn",
        producer_version=_version(),
        doc_string=doc,
        ir_version=helper.find_min_ir_version_for(opsets),
    )
    props = {"lstmlearn.class": type(est).__name__}
    props.update({key: json.dumps(value) for key, value in metadata.items()})
    helper.set_model_props(model, props)
    onnx.checker.check_model(model, full_check=True)
    return model


def _check_opset(opset: int | None) -> int:
    if opset is None:
        return DEFAULT_OPSET
    latest = onnx.defs.onnx_opset_version()
    if not isinstance(opset, (int, np.integer)) or not MIN_OPSET <= opset <= latest:
        raise ValueError(
            f"opset must be an int from {MIN_OPSET} (the LSTM operator's layout attribute) to "
            f"{latest} (the installed onnx package's latest); got {opset!r}"
        )
    return int(opset)


def _check_recurrence(recurrence: str | None, dtype: np.dtype) -> str:
    if recurrence is None:
        return "lstm" if dtype == np.float32 else "scan"
    if recurrence not in ("lstm", "scan"):
        raise ValueError(f"recurrence must be 'lstm', 'scan' or None; got {recurrence!r}")
    return recurrence


def _classes_metadata(est: Any) -> list:
    return [v.item() if isinstance(v, np.generic) else v for v in np.asarray(est.classes_)]


def to_onnx(
    estimator: Any,
    path: str | os.PathLike | None = None,
    opset: int | None = None,
    *,
    sequence_lens: bool = False,
    recurrence: str | None = None,
) -> onnx.ModelProto | dict[str, onnx.ModelProto]:
    """Export a fitted lstmlearn model to ONNX.

    Parameters
    ----------
    estimator : LSTMRegressor, LSTMClassifier, LSTMGenerator or LSTMSeq2Seq
        A fitted model.
    path : str or path-like, optional
        Where to write the model, atomically (a temporary file in the same
        folder, flushed to disk, then renamed over `path`). For an
        LSTMSeq2Seq, `path` gets the decoder step and
        ``path.with_suffix('.encoder.onnx')`` the encoder (``model.onnx`` and
        ``model.encoder.onnx``).
    opset : int, optional
        Opset of the default ONNX domain, from 14 (the LSTM operator's
        ``layout``); default 17.
    sequence_lens : bool, default=False
        Add the input ``sequence_lens`` (int32 ``[batch]``): the real length
        of each sequence of ``X``, for sequences of different lengths padded
        at the end (see the module docstring). It must then be fed, with
        ``T`` for full-length sequences. No effect on an LSTMGenerator's step.
    recurrence : {'lstm', 'scan'} or None, default=None
        'lstm': the ONNX LSTM operator; 'scan': a Scan over the cell's
        equations (the same results). None: 'lstm' for float32 models,
        'scan' for float64 ones, whose LSTM operator ONNX Runtime cannot run.

    Returns
    -------
    model : onnx.ModelProto, or dict of them
        For an LSTMSeq2Seq, ``{'encoder': ..., 'decoder_step': ...}``:

        - the encoder takes ``X`` (int64 tokens ``[batch, T]``, or values
          ``[batch, T, F]``; a 2-D numeric X was fitted as ``F = 1``) and
          ``sequence_lens`` when exported with it; it gives
          ``encoder_outputs`` ``[batch, T, H]`` (the top layer at every step)
          and ``h``, ``c`` ``[batch, H]`` (the top layer's final state);
        - the decoder step takes the previous output, the state ``h``, ``c``
          and, with attention, ``encoder_outputs`` (and ``sequence_lens``);
          it gives ``probabilities`` ``[batch, O]`` (softmax over the output
          tokens) or ``values`` ``[batch, O]``, the new state ``next_h``,
          ``next_c`` and, with attention, ``attention_weights``
          ``[batch, T]``. The previous output is ``token`` (int64
          ``[batch]``: the metadata ``start_token`` at the first step, then
          the argmax of ``probabilities``) or ``previous`` (``[batch, O]``:
          zeros, then ``values``); the state starts as the encoder's ``h``,
          ``c``. In ``mode='repeat'`` the input is ``decoder_input``
          ``[batch, H]``, the encoder's ``h`` at every step, and the state
          starts at zeros. Greedy decoding runs the metadata
          ``output_steps`` steps (``predict``'s length); with an end symbol
          (metadata ``end_token``), a sequence ends before its first one.

    Raises
    ------
    sklearn.exceptions.NotFittedError
        When the model is not fitted.
    TypeError
        When `estimator` is not an lstmlearn model.
    ValueError
        When `opset` or `recurrence` is not supported, or when
        `sequence_lens` is asked of a model fitted with
        ``dimension_shuffle=True`` (its LSTM reads every sequence's time
        steps as features, so all sequences have the fitted length).

    Notes
    -----
    The inputs and outputs of each model are described in the module
    docstring. Float outputs are in the model's dtype (``predict`` returns
    float64). Dropout is not applied (inference). Every graph is checked
    with ``onnx.checker.check_model(model, full_check=True)``. The metadata
    (``model.metadata_props``) holds ``lstmlearn.class`` and, JSON-encoded, the
    classifier's ``classes``, the generator's ``vocabulary`` and
    ``seq_length``, and the seq2seq model's ``mode``, ``attention``,
    ``start_token``, ``end_token`` and ``output_steps``.

    Examples
    --------
    >>> import numpy as np
    >>> from lstmlearn import LSTMRegressor
    >>> from lstmlearn._onnx import to_onnx
    >>> X = np.random.rand(32, 10, 1)
    >>> model = LSTMRegressor(8, max_iter=2, random_state=0).fit(X, X.sum(axis=(1, 2)))
    >>> [i.name for i in to_onnx(model, sequence_lens=True).graph.input]
    ['X', 'sequence_lens']
    """
    if not isinstance(estimator, (LSTMRegressor, LSTMClassifier, LSTMGenerator, LSTMSeq2Seq)):
        raise TypeError(
            "to_onnx exports LSTMRegressor, LSTMClassifier, LSTMGenerator and LSTMSeq2Seq "
            f"models; got {type(estimator).__name__}"
        )
    check_is_fitted(estimator, "_params")
    fcn = getattr(estimator, "_fcn", None)
    if sequence_lens and fcn is not None and fcn[3]:
        raise ValueError(
            f"sequence_lens=True cannot be exported for a model fitted with "
            f"dimension_shuffle=True: its LSTM reads the {fcn[4]} time steps of each sequence "
            f"as the features of one step, so every sequence must have exactly {fcn[4]} steps "
            "(as predict requires). Export it with sequence_lens=False and feed X of shape "
            f"[batch, {fcn[4]}, {estimator.n_features_in_}]"
        )
    opset = _check_opset(opset)
    recurrence = _check_recurrence(recurrence, np.dtype(estimator._dtype))
    name = type(estimator).__name__
    if isinstance(estimator, LSTMSeq2Seq):
        start = estimator._n_classes if estimator.output_vocab_size_ is not None else None
        meta = {
            "mode": estimator.mode,
            "attention": estimator.attention,
            "start_token": start,
            "end_token": estimator.end_token_,
            "output_steps": estimator._steps(None),
        }
        models = {
            "encoder": _model(
                _seq2seq_encoder(estimator, recurrence, sequence_lens),
                estimator,
                opset,
                f"{name} encoder, exported by lstmlearn",
                meta,
            ),
            "decoder_step": _model(
                _seq2seq_step(estimator, recurrence, sequence_lens),
                estimator,
                opset,
                f"{name} decoder step (greedy decoding feeds back its output), by lstmlearn",
                meta,
            ),
        }
        if path is not None:
            path = Path(path)
            atomic_write(path.with_suffix(".encoder.onnx"), models["encoder"].SerializeToString())
            atomic_write(path, models["decoder_step"].SerializeToString())
        return models
    if isinstance(estimator, LSTMGenerator):
        built = _generator_step(estimator, recurrence)
        meta = {"vocabulary": estimator.vocabulary_, "seq_length": int(estimator.seq_length)}
        doc = f"{name} step: next-token probabilities and state, exported by lstmlearn"
    else:
        built = _estimator_model(estimator, recurrence, sequence_lens)
        meta = {"classes": _classes_metadata(estimator)} if hasattr(estimator, "classes_") else {}
        doc = f"{name}, exported by lstmlearn"
    model = _model(built, estimator, opset, doc, meta)
    if path is not None:
        atomic_write(path, model.SerializeToString())
    return model


# -- skl2onnx ------------------------------------------------------------------------------


def _skl2onnx_classes(est: Any, options: dict) -> np.ndarray | None:
    """The label constant under skl2onnx's options: indices with ``nocl``."""
    return None if options.get("nocl") else _class_values(est, for_skl2onnx=True)


def _skl2onnx_shape(operator: Any) -> None:
    """Output types of an lstmlearn estimator inside a skl2onnx graph."""
    from skl2onnx.common.data_types import (
        DoubleTensorType,
        FloatTensorType,
        Int64TensorType,
        StringTensorType,
    )

    est = operator.raw_operator
    check_is_fitted(est, "_params")
    n = operator.inputs[0].get_first_dimension()
    floats = FloatTensorType if np.dtype(est._dtype) == np.float32 else DoubleTensorType
    steps = [n, None] if est._per_step else [n]
    if isinstance(est, LSTMClassifier):
        options = operator.scope_inst.get_options(est, {"nocl": False, "zipmap": True})
        if options["zipmap"] is not False and (est._per_step or floats is DoubleTensorType):
            what = "labels per step" if est._per_step else "float64 probabilities"
            raise ValueError(
                f"skl2onnx's ZipMap takes float32 probabilities of one label per sample; this "
                f"LSTMClassifier gives {what}. Convert it with the option zipmap=False: "
                "options={id(estimator): {'zipmap': False}}"
            )
        label = _label_type(_skl2onnx_classes(est, options))
        types = {TensorProto.INT64: Int64TensorType, TensorProto.STRING: StringTensorType}
        operator.outputs[0].type = types[label](steps)
        operator.outputs[1].type = floats([*steps, len(est.classes_)])
        return
    shape = list(steps)
    if est._y_ndim == (3 if est._per_step else 2):
        shape.append(int(est._n_outputs))
    operator.outputs[0].type = floats(shape)


def _skl2onnx_convert(scope: Any, operator: Any, container: Any) -> None:
    """Add the estimator's graph (built by to_onnx's code) to a skl2onnx container."""
    est = operator.raw_operator
    g = _Graph(est._dtype, prefix=scope.get_unique_variable_name("lstmlearn") + "_")
    x = operator.inputs[0].full_name
    source = operator.inputs[0].type
    if source.to_onnx_type().tensor_type.elem_type != g.elem:
        x = g.op("Cast", [x], to=g.elem)
    rank = len(source.shape) if source.shape is not None else None
    if est._arch[0] is None and rank == 2:
        x = _unsqueeze(g, x, 2)  # [n, T]: one feature per step, as the estimators read it
    classes = None
    if isinstance(est, LSTMClassifier):
        classes = _skl2onnx_classes(est, container.get_options(est, {"nocl": False}))
    outputs = [o.full_name for o in operator.outputs]
    recurrence = _check_recurrence(None, np.dtype(est._dtype))
    _sequence_model(g, est, x, None, outputs, recurrence, classes)
    for tensor in g.initializers:
        content = list(tensor.string_data) if tensor.data_type == TensorProto.STRING else tensor
        container.add_initializer(tensor.name, tensor.data_type, list(tensor.dims), content)
    for node in g.nodes:
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        container.add_node(
            node.op_type, list(node.input), list(node.output), name=node.name, **attrs
        )


_REGISTERED = False


def register_skl2onnx() -> None:
    """Register converters for LSTMRegressor and LSTMClassifier with skl2onnx.

    Then ``skl2onnx.to_onnx`` converts them, alone or as the last step of a
    Pipeline whose other steps skl2onnx converts. The graph is the one of
    :func:`to_onnx` without ``sequence_lens`` (every sequence has the input's
    length). The classifier's outputs follow skl2onnx: ``label`` (int64, or
    strings) and ``probabilities``, turned into a list of dicts by a ZipMap
    unless the option ``{'zipmap': False}`` is given (a ZipMap needs float32
    probabilities of one label per sequence, so float64 and per-step
    classifiers need ``zipmap=False``).

    Notes
    -----
    A 2-D input ``[n, T]`` is one feature per step, as for the estimators, so
    steps such as StandardScaler or MinMaxScaler (which scale each time step
    over the samples) may come before the LSTM in a Pipeline. No scikit-learn
    transformer that skl2onnx converts takes 3-D input: with ``[n, T, F]``
    input the lstmlearn estimator must come first. Calling this again does
    nothing.
    """
    global _REGISTERED
    if _REGISTERED:
        return
    from skl2onnx import update_registered_converter

    update_registered_converter(
        LSTMRegressor, "LstmlearnLSTMRegressor", _skl2onnx_shape, _skl2onnx_convert
    )
    update_registered_converter(
        LSTMClassifier,
        "LstmlearnLSTMClassifier",
        _skl2onnx_shape,
        _skl2onnx_convert,
        options={"zipmap": [True, False, "columns"], "nocl": [False, True]},
    )
    _REGISTERED = True
