"""Weights in and out: PyTorch (``nn.LSTM`` + ``nn.Linear``) and Keras (``Sequential``).

The engine's LSTM uses PyTorch's gate order (i, f, g, o) and shapes
(``weight_ih [4H, F]``, ``weight_hh [4H, H]``, ``bias_ih``, ``bias_hh``), so
PyTorch weights map one to one. Keras stores ``kernel [F, 4H]``,
``recurrent_kernel [H, 4H]`` and one ``bias [4H]`` in the same gate order
(i, f, c, o): they are transposed, and the bias goes to ``bias_ih`` with a zero
``bias_hh``. A model with one output per sequence reads the final hidden state
of the top layer (both directions of a bidirectional layer: Keras' semantics,
which for PyTorch is ``h_n`` of the top layer, not ``output[:, -1]`` of its
reverse direction).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from . import _training

__all__ = ["from_keras", "from_torch", "to_torch"]


def _import(cls, layers, dense_w, dense_b, *, merge_mode, per_step, classes, params):
    """A fitted estimator of `cls` with the given weights (PyTorch layout).

    Parameters
    ----------
    layers : list of list of dict
        Per layer, per direction: ``weight_ih``, ``weight_hh``, ``bias_ih``,
        ``bias_hh`` arrays.
    dense_w, dense_b : ndarray
        The output layer, ``[O, W]`` and ``[O]``.
    """
    from sklearn.base import ClassifierMixin

    directions = len(layers[0])
    hidden = [int(layer[0]["weight_hh"].shape[1]) for layer in layers]
    n_features = int(layers[0][0]["weight_ih"].shape[1])
    dtype = np.result_type(*(a for layer in layers for d in layer for a in d.values()))
    if dtype not in (np.float32, np.float64):
        dtype = np.dtype(np.float32)
    n_outputs = int(dense_w.shape[0])
    est = cls(
        hidden_layer_sizes=tuple(hidden),
        bidirectional=directions == 2,
        merge_mode=merge_mode,
        return_sequences=per_step,
        dtype=np.dtype(dtype).name,
        **params,
    )
    est._validate_params()
    if getattr(est, "fcn_filters", None) not in (None, "auto") or getattr(
        est, "dimension_shuffle", False
    ):
        raise ValueError(
            "weights of an LSTM stack and a dense head make no FCN branch: fcn_filters and "
            "dimension_shuffle cannot be used here; fit an LSTM-FCN model instead"
        )
    if issubclass(cls, ClassifierMixin):
        if n_outputs < 2:
            raise ValueError(f"a classifier needs at least 2 outputs; the head has {n_outputs}")
        classes = np.arange(n_outputs) if classes is None else np.asarray(classes)
        if classes.shape != (n_outputs,) or len(np.unique(classes)) != n_outputs:
            raise ValueError(
                f"classes must be {n_outputs} distinct labels, one per output of the head; got "
                f"{classes!r}"
            )
        order = np.argsort(classes, kind="stable")  # classes_ is sorted; rows follow it
        est.classes_ = classes[order]
        dense_w, dense_b = dense_w[order], dense_b[order]
    else:
        est._y_ndim = (2 if n_outputs == 1 else 3) if per_step else (1 if n_outputs == 1 else 2)
    est._new_network(
        np.dtype(dtype), hidden, n_features, n_outputs, per_step, est._architecture(), None
    )
    est.__dict__["_net_config_used"] = est._net_config()
    _training.start_history(est, validation=False)
    est._no_improvement = 0
    # Trained weights: fine-tuning them starts past any initial plateau.
    est._plateau_left, est._first_loss = True, None
    est._inference_precision = "float32"
    tensors = {"dense.weight": dense_w, "dense.bias": dense_b}
    for k, layer in enumerate(layers):
        for d, tensors_d in enumerate(layer):
            suffix = "_reverse" if d else ""
            for name, value in tensors_d.items():
                tensors[f"layer{k}.{name}_l0{suffix}"] = value
    for name, offset, shape in est._network().layout():
        value = np.asarray(tensors.pop(name))
        if value.shape != tuple(shape):
            raise ValueError(f"{name} has shape {value.shape}; the model needs {tuple(shape)}")
        if not np.isfinite(value).all():
            raise ValueError(f"{name} holds NaN or infinity")
        est._params[offset : offset + int(np.prod(shape))] = value.reshape(-1)
    if tensors:
        raise ValueError(f"tensors {sorted(tensors)} have no place in the model")
    _training.params_written(est)
    return est


def _numpy(tensor) -> np.ndarray:
    return tensor.detach().cpu().numpy().copy()


def from_torch(cls, lstm, head, *, classes=None, return_sequences=False, **params):
    """An estimator with the weights of a ``torch.nn.LSTM`` and a ``torch.nn.Linear`` head.

    See :meth:`LSTMRegressor.from_torch`.
    """
    kind = type(lstm).__name__
    if kind != "LSTM" or not hasattr(lstm, "weight_ih_l0"):
        raise TypeError(f"from_torch takes a torch.nn.LSTM; got {kind}")
    if getattr(lstm, "proj_size", 0):
        raise ValueError(
            f"an LSTM with proj_size={lstm.proj_size} cannot be mapped: lstmlearn's LSTM has no "
            "projection"
        )
    if type(head).__name__ != "Linear" or not hasattr(head, "weight"):
        raise TypeError(f"from_torch takes a torch.nn.Linear head; got {type(head).__name__}")
    directions = 2 if lstm.bidirectional else 1
    width = directions * lstm.hidden_size
    if head.in_features != width:
        raise ValueError(
            f"the head takes {head.in_features} features; the LSTM gives {width} "
            f"({directions} x hidden_size {lstm.hidden_size})"
        )
    layers = []
    for k in range(lstm.num_layers):
        layer = []
        for suffix in ("", "_reverse")[:directions]:
            tensors = {}
            for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
                tensor = getattr(lstm, f"{name}_l{k}{suffix}", None)
                if tensor is not None:
                    tensors[name] = _numpy(tensor)
                else:  # bias=False
                    rows = 4 * lstm.hidden_size
                    tensors[name] = np.zeros(rows, dtype=_numpy(lstm.weight_ih_l0).dtype)
            layer.append(tensors)
        layers.append(layer)
    bias = _numpy(head.bias) if head.bias is not None else np.zeros(head.out_features)
    return _import(
        cls,
        layers,
        _numpy(head.weight),
        bias,
        merge_mode="concat",
        per_step=bool(return_sequences),
        classes=classes,
        params=params,
    )


def to_torch(est):
    """A ``torch.nn.Module`` computing what `est` predicts; see :meth:`LSTMRegressor.to_torch`."""
    import torch
    from sklearn.base import ClassifierMixin
    from sklearn.utils.validation import check_is_fitted

    check_is_fitted(est, "_params")
    est._check_unpatched("to_torch()")
    front, pooling, _ = est._arch
    hidden = est._hidden
    if front is not None or pooling != "last":
        raise ValueError(
            "to_torch maps an LSTM stack and its dense head; this model has "
            + ("a conv front end" if front is not None else f"pooling={pooling!r}")
        )
    if getattr(est, "_fcn", None) is not None:
        raise ValueError(
            "to_torch maps an LSTM stack and its dense head; this model has an FCN branch or "
            "dimension_shuffle (fcn_filters, dimension_shuffle)"
        )
    if len(set(hidden)) > 1:
        raise ValueError(
            f"torch.nn.LSTM has one hidden_size for every layer; this model has {hidden}"
        )
    if est.bidirectional and est.merge_mode != "concat":
        raise ValueError(
            f"torch.nn.LSTM concatenates the two directions; this model merges them with "
            f"merge_mode={est.merge_mode!r}"
        )
    dtype = torch.float64 if est._dtype == np.float64 else torch.float32
    lstm = torch.nn.LSTM(
        est.n_features_in_,
        hidden[0],
        num_layers=len(hidden),
        bidirectional=est.bidirectional,
        batch_first=True,
        dtype=dtype,
    )
    head = torch.nn.Linear((est.bidirectional and 2 * hidden[0]) or hidden[0], est._n_outputs)
    head = head.to(dtype)
    views = {}
    for name, offset, shape in est._network().layout():
        views[name] = est._params[offset : offset + int(np.prod(shape))].reshape(shape)
    with torch.no_grad():
        for name, value in views.items():
            if name.startswith("dense."):
                target = getattr(head, name.split(".")[1])
            else:
                layer, rest = name.split(".")
                target = getattr(lstm, rest.replace("_l0", f"_l{layer[5:]}"))
            target.copy_(torch.from_numpy(value.copy()))
    classifier = isinstance(est, ClassifierMixin)
    return _TorchModel(lstm, head, est._per_step, classifier)


def _TorchModel(lstm, head, per_step: bool, classifier: bool):
    import torch

    class LSTMModel(torch.nn.Module):
        """``lstm`` and ``head`` as lstmlearn computes them: batch-first input
        ``[n, T, F]``; the head reads every step (per-step models) or the final
        hidden state of the top layer (both directions concatenated); a
        classifier's output is the softmax over the classes."""

        def __init__(self) -> None:
            super().__init__()
            self.lstm, self.head = lstm, head
            self.per_step, self.classifier = per_step, classifier

        def forward(self, x):
            out, (h_n, _) = self.lstm(x)
            if self.per_step:
                features = out
            elif self.lstm.bidirectional:
                features = torch.cat([h_n[-2], h_n[-1]], dim=1)
            else:
                features = h_n[-1]
            y = self.head(features)
            return torch.softmax(y, dim=-1) if self.classifier else y

    return LSTMModel()


def from_keras(cls, model, *, classes=None, **params):
    """An estimator with the weights of a Keras ``Sequential`` of LSTM layers and a Dense head.

    See :meth:`LSTMRegressor.from_keras`.
    """
    from sklearn.base import ClassifierMixin

    layers = list(getattr(model, "layers", []))
    kinds = [type(layer).__name__ for layer in layers]
    body = [layer for layer in layers if type(layer).__name__ not in ("InputLayer", "Dropout")]
    if not body or type(body[-1]).__name__ != "Dense":
        raise ValueError(
            f"from_keras takes a Sequential of LSTM or Bidirectional(LSTM) layers and a Dense "
            f"head; got layers {kinds}"
        )
    dense, recurrent = body[-1], body[:-1]
    if not recurrent:
        raise ValueError(f"from_keras found no LSTM layer among {kinds}")
    merge = None
    weights, per_step = [], False
    for k, layer in enumerate(recurrent):
        kind = type(layer).__name__
        if kind == "Bidirectional":
            inner = [layer.forward_layer, layer.backward_layer]
            if merge not in (None, layer.merge_mode) or layer.merge_mode not in (
                "concat",
                "sum",
                "mul",
                "ave",
            ):
                raise ValueError(
                    f"Bidirectional merge_mode {layer.merge_mode!r} cannot be mapped: lstmlearn "
                    "takes one of 'concat', 'sum', 'mul', 'ave' for every layer"
                )
            merge = layer.merge_mode
        elif kind == "LSTM":
            inner = [layer]
        else:
            raise ValueError(
                f"layer {k} is a {kind}; from_keras maps LSTM and Bidirectional(LSTM) layers "
                "(and Dropout, inactive in prediction)"
            )
        if weights and len(inner) != len(weights[0]):
            raise ValueError("every LSTM layer must be bidirectional, or none")
        directions = []
        for d, lstm in enumerate(inner):
            _check_keras_lstm(lstm, backward=d == 1)
            kernel, recurrent_kernel, *bias = (np.asarray(w) for w in lstm.get_weights())
            units = recurrent_kernel.shape[0]
            directions.append(
                {
                    "weight_ih": kernel.T,
                    "weight_hh": recurrent_kernel.T,
                    "bias_ih": bias[0] if bias else np.zeros(4 * units, kernel.dtype),
                    "bias_hh": np.zeros(4 * units, kernel.dtype),
                }
            )
        weights.append(directions)
        last = k == len(recurrent) - 1
        sequences = bool(inner[0].return_sequences)
        if not last and not sequences:
            raise ValueError(f"layer {k} has return_sequences=False but feeds another LSTM layer")
        per_step = sequences if last else per_step
    kernel, *bias = (np.asarray(w) for w in dense.get_weights())
    dense_w = kernel.T
    dense_b = bias[0] if bias else np.zeros(kernel.shape[1], kernel.dtype)
    activation = getattr(dense.activation, "__name__", str(dense.activation))
    if issubclass(cls, ClassifierMixin):
        if activation == "sigmoid" and dense_w.shape[0] == 1:
            # sigmoid(z) is the softmax of (0, z): two classes, the second for z.
            dense_w = np.concatenate([np.zeros_like(dense_w), dense_w])
            dense_b = np.concatenate([np.zeros_like(dense_b), dense_b])
        elif activation != "softmax":
            raise ValueError(
                f"a classifier's Dense head must use softmax (or sigmoid with one unit); this "
                f"one uses {activation!r}"
            )
    elif activation != "linear":
        raise ValueError(f"a regressor's Dense head must be linear; this one uses {activation!r}")
    return _import(
        cls,
        weights,
        dense_w,
        dense_b,
        merge_mode=merge or "concat",
        per_step=per_step,
        classes=classes,
        params=params,
    )


def _check_keras_lstm(layer: Any, backward: bool) -> None:
    kind = type(layer).__name__
    if kind != "LSTM":
        raise ValueError(f"from_keras maps LSTM layers; got a {kind}")
    for what, expected in (("activation", "tanh"), ("recurrent_activation", "sigmoid")):
        got = getattr(getattr(layer, what), "__name__", str(getattr(layer, what)))
        if got != expected:
            raise ValueError(
                f"LSTM layer {layer.name!r} uses {what}={got!r}; lstmlearn's LSTM computes "
                f"{expected}"
            )
    if getattr(layer, "stateful", False):
        raise ValueError(
            f"LSTM layer {layer.name!r} is stateful; lstmlearn's estimators start every sequence "
            "from a zero state (use stateful=False)"
        )
    if bool(getattr(layer, "go_backwards", False)) != backward:
        raise ValueError(
            f"LSTM layer {layer.name!r} has go_backwards={layer.go_backwards}; outside a "
            "Bidirectional wrapper lstmlearn runs forward in time"
        )
