"""Every model family, not only stacks of LSTMs: lstmlearn against PyTorch and Keras 3.

Six workloads, each built as the same model in every library (same layers,
loss, Adam with learning rate 1e-3 and epsilon 1e-7, batch, float32):

- ``seq2seq``: the encoder-decoder with additive attention of the addition
  example (``examples/seq2seq_addition.py``): training with teacher forcing,
  inference by greedy decoding;
- ``cnn_lstm``: the CNN-LSTM of the moving-square example
  (``examples/cnn_lstm_moving_square.py``): a time-distributed conv2d, ReLU
  and max pooling on each frame, then an LSTM and a softmax head;
- ``bidir_attention``: a bidirectional 2-layer LSTM classifier with attention
  pooling over time;
- ``long``: a regressor on long sequences (B 32, T 1500, F 1, H 64, a head on
  the last step);
- ``sampling``: characters per second of ``LSTMGenerator.generate(...,
  carry_state=True)`` (the model's state carried from character to
  character, the loop in the engine) against a stateful step-by-step
  sampling loop over the same model in PyTorch and in Keras; extra lines:
  ``generate``'s default window mode and a ``stream()`` loop;
- ``search``: wall time of ``GridSearchCV(n_jobs=2)`` over 12 candidates x 3
  folds of a tiny regressor, against the same search through skorch
  (PyTorch) and scikeras (Keras).

Training throughput counts samples per second over whole Adam steps,
inference throughput samples per second of one prediction call on a batch of
256. The peers are given lstmlearn's weights (as its first, untimed training
call left them), and before timing the script checks that each peer's output
on the inference batch equals lstmlearn's and that the parameter counts agree.

As in ``bench_suite.py``, each library runs in a spawned worker process of
its own, the parent interleaves the timed repeats of the libraries (in
alternating order), and the table shows medians. See ``benchmarks/README.md``
for what exactly is timed and what is not identical.

Run ``python benchmarks/bench_family.py --help`` for the options.
"""

from __future__ import annotations

import argparse
import datetime
import gc
import importlib.util
import json
import os
import statistics
import sys
import time
import traceback
import warnings
from collections.abc import Callable
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import numpy as np
from bench_suite import (
    PipeWorker,
    available_cpus,
    calibrate,
    complete_timing_arguments,
    flush_peer_denormals,
    limit_threads_environment,
    load_average,
    machine_info,
    split_names,
    time_repeat,
)

LIBRARIES = ("lstmlearn", "pytorch", "keras")
WORKLOADS = ("seq2seq", "cnn_lstm", "bidir_attention", "long", "sampling", "search")
LEARNING_RATE = 1e-3
ADAM_EPSILON = 1e-7  # Keras's and lstmlearn's default; PyTorch is given the same
INFER_BATCH = 256
DEFAULT_JSON = Path(__file__).resolve().parent / "results" / "family.json"
PAUSE_BETWEEN_LIBRARIES = 0.05  # seconds: lets the previous library's spinning threads go idle
# Largest difference allowed between a peer's output and lstmlearn's on the
# same weights (probabilities, regression outputs; float32 throughout).
CHECK_TOLERANCE = 1e-3
# Smallest share of greedy tokens that must agree (a near tie may flip one).
CHECK_TOKEN_AGREEMENT = 0.99

REQUIRED_MODULES = {
    "lstmlearn": ("lstmlearn",),
    "pytorch": ("torch",),
    "keras": ("tensorflow", "keras"),
}
# The wrapper each peer's grid search goes through.
SEARCH_WRAPPERS = {"lstmlearn": "lstmlearn", "pytorch": "skorch", "keras": "scikeras"}

# The sizes of each workload. k is the number of optimizer steps (mini-batches)
# of one timed training call.
SIZES: dict[str, dict[str, Any]] = {
    "seq2seq": {
        "batch": 32,
        "k": 16,
        "in_steps": 5,  # "99+99", questions left-padded with a blank
        "out_steps": 3,  # answers as three digits, "042"
        "in_vocab": 12,  # '0'-'9', '+', blank
        "out_vocab": 10,  # '0'-'9'; the decoder's start symbol is row 10 of its embedding
        "embedding": 16,
        "hidden": 64,
        "attention_units": 64,
    },
    "cnn_lstm": {
        "batch": 32,
        "k": 16,
        "frames": 6,
        "size": 8,
        "filters": 4,
        "kernel": 3,
        "pool": 2,
        "hidden": 16,
        "classes": 4,
    },
    "bidir_attention": {
        "batch": 64,
        "k": 4,
        "steps": 50,
        "features": 8,
        "hidden": 64,
        "layers": 2,
        "attention_units": 16,
        "classes": 5,
    },
    "long": {"batch": 32, "k": 1, "steps": 1500, "features": 1, "hidden": 64},
    "sampling": {
        "hidden": 128,
        "seq_length": 40,
        "length": 400,
        "temperature": 1.0,
        "seed_text": "Beautiful is ",
    },
    "search": {
        "batch": 32,
        "steps": 24,
        "features": 1,
        "hidden": 32,
        "samples": 960,
        "epochs": 5,
        "folds": 3,
        "n_jobs": 2,
        "learning_rates": [3e-4, 1e-3, 3e-3, 1e-2],
        "beta_1": [0.8, 0.9, 0.95],
    },
}
# --quick: one optimizer step per training call, a shorter text, and a search
# of 2 candidates x 3 folds of 1 epoch on fewer samples (scikeras's search
# of 12 candidates took two minutes alone, building a model for every fit).
QUICK: dict[str, dict[str, Any]] = {
    "seq2seq": {"k": 1},
    "cnn_lstm": {"k": 1},
    "bidir_attention": {"k": 1},
    "long": {},
    "sampling": {"length": 100},
    "search": {"samples": 384, "epochs": 1, "learning_rates": [1e-3, 1e-2], "beta_1": [0.9]},
}
FIGURES = {
    "seq2seq": ("train", "infer"),
    "cnn_lstm": ("train", "infer"),
    "bidir_attention": ("train", "infer"),
    "long": ("train", "infer"),
    "sampling": ("sample", "window", "stream"),
    "search": ("search",),
}
# Figures only some libraries have.
FIGURE_LIBRARIES = {"window": ("lstmlearn",), "stream": ("lstmlearn",)}

Calls = dict[str, Callable[[], object]]


def workload_sizes(name: str, quick: bool) -> dict[str, Any]:
    """Return the sizes of workload `name` (reduced by --quick)."""
    sizes = dict(SIZES[name])
    if quick:
        sizes.update(QUICK[name])
    return sizes


# -- data (made in the parent, sent to every worker) --------------------------


def make_data(name: str, sizes: dict[str, Any], seed: int) -> dict[str, Any]:
    """Build the arrays of workload `name`, the same for every library.

    Training inputs hold ``batch * k`` samples (k whole mini-batches, no
    shuffling); ``x_infer`` is the batch of 256 of the inference call.
    """
    from lstmlearn.datasets import (
        make_addition_strings,
        make_moving_square,
        make_noisy_sine,
        zen_of_python,
    )

    rng = np.random.default_rng(seed)
    s = sizes
    if name == "seq2seq":
        n = s["batch"] * s["k"]
        blank = s["in_vocab"] - 1
        questions, answers = make_addition_strings(n + INFER_BATCH, max_value=99, random_state=seed)
        x = np.full((n + INFER_BATCH, s["in_steps"]), blank, dtype=np.int64)
        for i, q in enumerate(questions):
            x[i, s["in_steps"] - len(q) :] = q
        y = np.zeros((n + INFER_BATCH, s["out_steps"]), dtype=np.int64)  # leading zeros
        for i, a in enumerate(answers):
            y[i, s["out_steps"] - len(a) :] = a
        return {"x_train": x[:n], "y_train": y[:n], "x_infer": x[n:]}
    if name == "cnn_lstm":
        n = s["batch"] * s["k"]
        frames, labels = make_moving_square(
            n + INFER_BATCH, frames=s["frames"], size=s["size"], random_state=seed
        )
        _, y = np.unique(labels, return_inverse=True)
        x = frames.astype(np.float32)
        return {"x_train": x[:n], "y_train": y[:n].astype(np.int64), "x_infer": x[n:]}
    if name == "bidir_attention":
        n = s["batch"] * s["k"]
        x = rng.standard_normal((n + INFER_BATCH, s["steps"], s["features"]), dtype=np.float32)
        y = rng.integers(0, s["classes"], size=n).astype(np.int64)
        return {"x_train": x[:n], "y_train": y, "x_infer": x[n:]}
    if name == "long":
        n = s["batch"] * s["k"]
        x = rng.standard_normal((n + INFER_BATCH, s["steps"], s["features"]), dtype=np.float32)
        y = rng.standard_normal(n).astype(np.float32)
        return {"x_train": x[:n], "y_train": y, "x_infer": x[n:]}
    if name == "sampling":
        return {"text": zen_of_python()}
    if name == "search":
        x, y = make_noisy_sine(s["samples"], timesteps=s["steps"], random_state=seed)
        return {"x": x.astype(np.float32), "y": y.astype(np.float32)}
    raise ValueError(f"unknown workload {name!r}")


def batches(sizes: dict[str, Any]) -> list[slice]:
    """Return the k mini-batch slices of the training data, in order."""
    b = sizes["batch"]
    return [slice(i * b, (i + 1) * b) for i in range(sizes["k"])]


def teacher_forcing_input(y: np.ndarray, start: int) -> np.ndarray:
    """Return the decoder's input for targets `y`: the start symbol, then y shifted by one."""
    out = np.empty_like(y)
    out[:, 0] = start
    out[:, 1:] = y[:, :-1]
    return out


def one_hot(tokens: np.ndarray, size: int) -> np.ndarray:
    """Return float32 one-hot codes of integer `tokens`."""
    return np.eye(size, dtype=np.float32)[tokens]


# -- lstmlearn ----------------------------------------------------------------


def _lstmlearn_common(sizes: dict[str, Any], threads: int, seed: int) -> dict[str, Any]:
    """Return the estimator parameters every lstmlearn workload shares."""
    return {
        "batch_size": sizes.get("batch", 32),
        "max_iter": 1,
        "shuffle": False,
        "optimizer": "adam",
        "learning_rate": LEARNING_RATE,
        "epsilon": ADAM_EPSILON,
        "lr_schedule": "constant",  # the peers have no schedule
        "random_state": seed,
        "n_jobs": threads,
        "dtype": np.float32,
    }


def named_parameters(estimator: Any) -> dict[str, np.ndarray]:
    """Return a fitted lstmlearn estimator's parameters by name (the engine's layout)."""
    # The flat parameter vector and its layout are internal to the estimators;
    # the benchmark reads them to give the peers the same initial weights.
    flat = estimator._params
    out = {}
    for name, offset, shape in estimator._network().layout():
        size = int(np.prod(shape))
        out[name] = np.array(flat[offset : offset + size].reshape(shape), dtype=np.float32)
    return out


def parameter_counts(named_sizes: dict[str, int]) -> dict[str, int]:
    """Return the parameter count and the count without the second LSTM bias (bias_hh).

    lstmlearn and PyTorch give each LSTM layer two bias vectors (b_ih and
    b_hh) whose sum is what the gates see; Keras has one. The second count is
    the one that must agree across libraries.
    """
    total = sum(named_sizes.values())
    second = sum(n for name, n in named_sizes.items() if "bias_hh" in name)
    return {"parameters": total, "parameters_one_lstm_bias": total - second}


def build_lstmlearn(
    name: str, sizes: dict[str, Any], data: dict[str, Any], shared: Any, threads: int, seed: int
) -> tuple[dict[str, Calls], dict[str, Any]]:
    """Build lstmlearn's estimator for workload `name` and its timed calls.

    A training call is one ``partial_fit`` epoch over ``batch * k`` samples,
    ``shuffle=False``: k whole Adam steps. The first ``partial_fit``
    (initialisation) is not timed; the weights it leaves are sent to the peers.
    """
    from lstmlearn import LSTMClassifier, LSTMGenerator, LSTMRegressor, LSTMSeq2Seq

    s = sizes
    common = _lstmlearn_common(s, threads, seed)
    info: dict[str, Any] = {}
    if name == "search":
        return build_search("lstmlearn", s, data, threads, seed, "graph")
    if name == "sampling":
        return _lstmlearn_sampling(LSTMGenerator, s, data, common)
    x, y = data.get("x_train"), data.get("y_train")
    estimator: Any
    if name == "seq2seq":
        estimator = LSTMSeq2Seq(
            hidden_layer_sizes=s["hidden"],
            attention="additive",
            attention_units=s["attention_units"],
            embedding_dim=s["embedding"],
            input_vocab_size=s["in_vocab"],
            output_vocab_size=s["out_vocab"],
            **common,
        )
        estimator.partial_fit(x, y)
        predict = estimator.predict
    elif name == "cnn_lstm":
        estimator = LSTMClassifier(
            hidden_layer_sizes=s["hidden"],
            conv_filters=s["filters"],
            conv_kernel_size=(s["kernel"], s["kernel"]),
            pool_size=s["pool"],
            patch_size=None,
            **common,
        )
        estimator.partial_fit(x, y, classes=np.arange(s["classes"]))
        predict = estimator.predict_proba
    elif name == "bidir_attention":
        estimator = LSTMClassifier(
            hidden_layer_sizes=(s["hidden"],) * s["layers"],
            bidirectional=True,
            pooling="attention",
            attention_units=s["attention_units"],
            patch_size=None,
            **common,
        )
        estimator.partial_fit(x, y, classes=np.arange(s["classes"]))
        predict = estimator.predict_proba
    elif name == "long":
        # patch_size=None: 'auto' would read these 1500 steps in patches of 30,
        # a different (and much cheaper) model.
        estimator = LSTMRegressor(hidden_layer_sizes=s["hidden"], patch_size=None, **common)
        estimator.partial_fit(x, y)
        predict = estimator.predict
    else:
        raise ValueError(f"unknown workload {name!r}")
    named = named_parameters(estimator)
    info.update(parameter_counts({k: v.size for k, v in named.items()}))
    info["check"] = np.asarray(predict(data["x_infer"]))
    info["shared"] = named
    calls = {
        "train": lambda: estimator.partial_fit(x, y),
        "infer": lambda: predict(data["x_infer"]),
    }
    return {"": calls}, info


def _lstmlearn_sampling(
    generator_class: Any, s: dict[str, Any], data: dict[str, Any], common: dict[str, Any]
) -> tuple[dict[str, Calls], dict[str, Any]]:
    """LSTMGenerator fitted for one epoch on the Zen of Python; ``generate`` is timed.

    ``sample`` is ``generate(..., carry_state=True)``: the state carried from
    character to character, one LSTM step each, as the peers' loops do, the
    whole loop in the engine. Two extra lines: ``window``, ``generate``'s
    default, which re-reads the last ``seq_length`` characters from the zero
    state for every character; and ``stream``, the peers' loop over
    ``stream()`` with NumPy sampling.
    """
    common = dict(common, batch_size=32)
    generator = generator_class(s["hidden"], seq_length=s["seq_length"], **common)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        generator.fit(data["text"])
    named = named_parameters(generator)
    vocabulary = list(generator.vocabulary_)
    if vocabulary != sorted(set(data["text"])):  # the order the peers assume
        raise RuntimeError("LSTMGenerator's vocabulary is not the sorted characters of the text")
    seed_text, length, temperature = s["seed_text"], s["length"], s["temperature"]
    rng = np.random.RandomState(0)

    def generate() -> str:
        return generator.generate(
            seed_text, length=length, temperature=temperature, random_state=rng, carry_state=True
        )

    def generate_windows() -> str:
        return generator.generate(
            seed_text, length=length, temperature=temperature, random_state=rng
        )

    index = {c: k for k, c in enumerate(vocabulary)}
    seed_ids = [index[c] for c in seed_text]

    def stream_loop() -> str:
        stream = generator.stream(1)
        for token in seed_ids[:-1]:
            stream.step(token)
        p = np.asarray(stream.step(seed_ids[-1]), dtype=np.float64).ravel()
        out = []
        for i in range(length):
            if temperature != 1.0:
                p = p ** (1.0 / temperature)
            cdf = np.cumsum(p)
            token = min(
                int(np.searchsorted(cdf, rng.random_sample() * cdf[-1], "right")), p.size - 1
            )
            out.append(token)
            if i < length - 1:
                p = np.asarray(stream.step(token), dtype=np.float64).ravel()
        return "".join(vocabulary[t] for t in out)

    info = parameter_counts({k: v.size for k, v in named.items()})
    info["check"] = generator.predict_proba(seed_text)[0]
    info["shared"] = named
    return {"": {"sample": generate, "window": generate_windows, "stream": stream_loop}}, info


# -- PyTorch ------------------------------------------------------------------


def _torch_setup(threads: int, seed: int) -> Any:
    """Import torch with the thread count and denormal flushing set; seed it."""
    import torch

    torch.set_num_threads(threads)
    torch.set_flush_denormal(flush_peer_denormals())
    torch.manual_seed(seed)
    return torch


def _torch_copy(parameter: Any, array: np.ndarray) -> None:
    """Copy `array` into the torch `parameter`, checking the shape."""
    import torch

    if tuple(parameter.shape) != tuple(array.shape):
        raise ValueError(f"shape {tuple(array.shape)} does not fit {tuple(parameter.shape)}")
    with torch.no_grad():
        parameter.copy_(torch.from_numpy(np.ascontiguousarray(array)))


def _torch_load_lstm(lstm: Any, named: dict[str, np.ndarray], prefix: str, layer: int) -> None:
    """Load lstmlearn's LSTM layer `prefix` into layer `layer` of the ``nn.LSTM`` `lstm`."""
    suffixes = ("", "_reverse") if lstm.bidirectional else ("",)
    for suffix in suffixes:
        for key in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
            array = named[f"{prefix}{key}_l0{suffix}"]
            _torch_copy(getattr(lstm, f"{key}_l{layer}{suffix}"), array)


def _torch_counts(model: Any) -> dict[str, int]:
    return parameter_counts({n: p.numel() for n, p in model.named_parameters()})


def _torch_models() -> dict[str, type]:
    """Define the PyTorch modules (torch is imported only in PyTorch's worker)."""
    import torch
    from torch import nn

    class Seq2Seq(nn.Module):
        """Embedding, LSTM encoder, LSTM decoder from its final state, additive
        attention of the decoder outputs over the encoder outputs, dense layer on
        [context; decoder output]."""

        def __init__(self, s: dict[str, Any]) -> None:
            super().__init__()
            e, h, a = s["embedding"], s["hidden"], s["attention_units"]
            self.start = s["out_vocab"]
            self.enc_embedding = nn.Embedding(s["in_vocab"], e)
            self.encoder = nn.LSTM(e, h, batch_first=True)
            self.dec_embedding = nn.Embedding(s["out_vocab"] + 1, e)  # + the start symbol
            self.decoder = nn.LSTM(e, h, batch_first=True)
            self.wq = nn.Linear(h, a, bias=False)
            self.wk = nn.Linear(h, a)
            self.v = nn.Parameter(torch.empty(a).uniform_(-0.1, 0.1))
            self.dense = nn.Linear(2 * h, s["out_vocab"])

        def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, Any]:
            keys_in, state = self.encoder(self.enc_embedding(x))
            return keys_in, self.wk(keys_in), state

        def head(self, dec: torch.Tensor, enc: torch.Tensor, keys: torch.Tensor) -> torch.Tensor:
            # score[b, i, j] = v . tanh(Wq q_i + Wk k_j + bias)
            energy = torch.tanh(self.wq(dec).unsqueeze(2) + keys.unsqueeze(1))
            weights = torch.softmax(energy @ self.v, dim=-1)
            context = weights @ enc
            return self.dense(torch.cat((context, dec), dim=-1))

        def forward(self, x: torch.Tensor, dec_in: torch.Tensor) -> torch.Tensor:
            enc, keys, state = self.encode(x)
            dec, _ = self.decoder(self.dec_embedding(dec_in), state)
            return self.head(dec, enc, keys)

        def greedy(self, x: torch.Tensor, steps: int) -> torch.Tensor:
            enc, keys, state = self.encode(x)
            token = torch.full((x.shape[0], 1), self.start, dtype=torch.long)
            out = []
            for _ in range(steps):
                dec, state = self.decoder(self.dec_embedding(token), state)
                token = self.head(dec, enc, keys).argmax(dim=-1)
                out.append(token)
            return torch.cat(out, dim=1)

    class CnnLstm(nn.Module):
        """Conv2d + ReLU + max pooling on each frame, LSTM, dense head on the last step."""

        def __init__(self, s: dict[str, Any]) -> None:
            super().__init__()
            self.pool = s["pool"]
            side = (s["size"] - s["kernel"] + 1) // s["pool"]
            self.conv = nn.Conv2d(1, s["filters"], s["kernel"])
            self.lstm = nn.LSTM(s["filters"] * side * side, s["hidden"], batch_first=True)
            self.dense = nn.Linear(s["hidden"], s["classes"])

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            b, t = x.shape[:2]
            z = x.reshape(b * t, 1, x.shape[2], x.shape[3])
            z = torch.nn.functional.max_pool2d(torch.relu(self.conv(z)), self.pool)
            _, (h, _) = self.lstm(z.reshape(b, t, -1))
            return self.dense(h[-1])

    class BidirAttention(nn.Module):
        """Stacked bidirectional LSTM, attention pooling over time, dense head."""

        def __init__(self, s: dict[str, Any]) -> None:
            super().__init__()
            h, a = s["hidden"], s["attention_units"]
            self.lstm = nn.LSTM(s["features"], h, s["layers"], batch_first=True, bidirectional=True)
            self.score = nn.Linear(2 * h, a)
            self.v = nn.Linear(a, 1, bias=False)
            self.dense = nn.Linear(2 * h, s["classes"])

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            seq, _ = self.lstm(x)  # [B, T, 2H]
            weights = torch.softmax(self.v(torch.tanh(self.score(seq))), dim=1)  # [B, T, 1]
            pooled = (weights * seq).sum(dim=1)
            return self.dense(pooled)

    class LastStep(nn.Module):
        """LSTM and a dense head on the final hidden state."""

        def __init__(self, features: int, hidden: int, outputs: int) -> None:
            super().__init__()
            self.lstm = nn.LSTM(features, hidden, batch_first=True)
            self.dense = nn.Linear(hidden, outputs)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            _, (h, _) = self.lstm(x)
            return self.dense(h[-1])

    class CharModel(nn.Module):
        """One-hot characters in, LSTM, dense layer to the next character's logits."""

        def __init__(self, vocabulary: int, hidden: int) -> None:
            super().__init__()
            self.lstm = nn.LSTM(vocabulary, hidden, batch_first=True)
            self.dense = nn.Linear(hidden, vocabulary)

    return {
        "Seq2Seq": Seq2Seq,
        "CnnLstm": CnnLstm,
        "BidirAttention": BidirAttention,
        "LastStep": LastStep,
        "CharModel": CharModel,
    }


def _torch_load(name: str, model: Any, named: dict[str, np.ndarray], s: dict[str, Any]) -> None:
    """Load lstmlearn's weights `named` into the PyTorch model of workload `name`."""
    if name == "seq2seq":
        _torch_copy(model.enc_embedding.weight, named["encoder.embedding"])
        _torch_load_lstm(model.encoder, named, "encoder.layer0.", 0)
        _torch_copy(model.dec_embedding.weight, named["decoder.embedding"])
        _torch_load_lstm(model.decoder, named, "decoder.", 0)
        _torch_copy(model.wq.weight, named["attention.Wq"])
        _torch_copy(model.wk.weight, named["attention.Wk"])
        _torch_copy(model.wk.bias, named["attention.bias"])
        _torch_copy(model.v, named["attention.v"])
    elif name == "cnn_lstm":
        _torch_copy(model.conv.weight, named["conv.weight"])
        _torch_copy(model.conv.bias, named["conv.bias"])
        # lstmlearn flattens each pooled frame channels-last, (y, x, filter);
        # PyTorch's reshape of NCHW gives (filter, y, x): permute the columns.
        side = (s["size"] - s["kernel"] + 1) // s["pool"]
        w = named["layer0.weight_ih_l0"].reshape(-1, side, side, s["filters"])
        named = dict(named, **{"layer0.weight_ih_l0": w.transpose(0, 3, 1, 2).reshape(len(w), -1)})
        _torch_load_lstm(model.lstm, named, "layer0.", 0)
    elif name == "bidir_attention":
        for layer in range(s["layers"]):
            _torch_load_lstm(model.lstm, named, f"layer{layer}.", layer)
        _torch_copy(model.score.weight, named["pool.weight"])
        _torch_copy(model.score.bias, named["pool.bias"])
        _torch_copy(model.v.weight, named["pool.v"][None, :])
    else:  # long, sampling
        _torch_load_lstm(model.lstm, named, "layer0.", 0)
    _torch_copy(model.dense.weight, named["dense.weight"])
    _torch_copy(model.dense.bias, named["dense.bias"])


def build_pytorch(
    name: str, sizes: dict[str, Any], data: dict[str, Any], shared: Any, threads: int, seed: int
) -> tuple[dict[str, Calls], dict[str, Any]]:
    """Build the PyTorch model of workload `name` and its timed calls.

    A training call loops over the same k mini-batches: ``zero_grad``,
    forward, loss, ``backward``, ``Adam(fused=True).step``. Inference runs
    under ``torch.inference_mode`` from NumPy to NumPy.
    """
    if name == "search":
        return build_search("pytorch", sizes, data, threads, seed, "graph")
    torch = _torch_setup(threads, seed)
    models = _torch_models()
    s = sizes
    if name == "sampling":
        return _torch_sampling(torch, models["CharModel"], s, data, shared)
    model: Any
    if name == "seq2seq":
        model = models["Seq2Seq"](s)
    elif name == "cnn_lstm":
        model = models["CnnLstm"](s)
    elif name == "bidir_attention":
        model = models["BidirAttention"](s)
    elif name == "long":
        model = models["LastStep"](s["features"], s["hidden"], 1)
    else:
        raise ValueError(f"unknown workload {name!r}")
    if shared is not None:
        _torch_load(name, model, shared, s)
    info = _torch_counts(model)
    optimizer = torch.optim.Adam(model.parameters(), lr=LEARNING_RATE, eps=ADAM_EPSILON, fused=True)
    x_train = torch.from_numpy(data["x_train"])
    y_train = torch.from_numpy(data["y_train"])
    x_infer = torch.from_numpy(data["x_infer"])
    if name == "seq2seq":
        dec_in = torch.from_numpy(teacher_forcing_input(data["y_train"], s["out_vocab"]))
        cross_entropy = torch.nn.CrossEntropyLoss()
        steps = [((x_train[b], dec_in[b]), y_train[b]) for b in batches(s)]

        def loss_of(out: Any, target: Any) -> Any:
            return cross_entropy(out.reshape(-1, s["out_vocab"]), target.reshape(-1))

        def predict() -> np.ndarray:
            model.eval()
            with torch.inference_mode():
                return model.greedy(x_infer, s["out_steps"]).numpy()

    else:
        steps = [((x_train[b],), y_train[b]) for b in batches(s)]
        if name == "long":
            squared = torch.nn.MSELoss()

            def loss_of(out: Any, target: Any) -> Any:
                return squared(out[:, 0], target)

            def predict() -> np.ndarray:
                model.eval()
                with torch.inference_mode():
                    return model(x_infer).numpy()

        else:
            loss_of = torch.nn.CrossEntropyLoss()

            def predict() -> np.ndarray:
                model.eval()
                with torch.inference_mode():
                    return torch.softmax(model(x_infer), dim=-1).numpy()

    def train() -> None:
        model.train()
        for inputs, target in steps:
            optimizer.zero_grad(set_to_none=True)
            loss = loss_of(model(*inputs), target)
            loss.backward()
            optimizer.step()

    info["check"] = predict()  # before any training: on lstmlearn's weights
    train()  # the first step allocates Adam's state: not timed
    return {"": {"train": train, "infer": predict}}, info


def _torch_sampling(
    torch: Any, char_model: type, s: dict[str, Any], data: dict[str, Any], shared: Any
) -> tuple[dict[str, Calls], dict[str, Any]]:
    """A stateful sampling loop: the seed in one call, then one LSTM step per character."""
    vocabulary = sorted(set(data["text"]))  # as LSTMGenerator orders its characters
    size = len(vocabulary)
    model = char_model(size, s["hidden"])
    if shared is not None:
        _torch_load("sampling", model, shared, s)
    model.eval()
    index = {c: k for k, c in enumerate(vocabulary)}
    seed_x = torch.from_numpy(one_hot(np.array([index[c] for c in s["seed_text"]]), size)[None])
    length, temperature = s["length"], s["temperature"]
    generator = torch.Generator().manual_seed(0)
    lstm, dense = model.lstm, model.dense
    # One step of nn.LSTM costs about twice an nn.LSTMCell step (measured with
    # 1 and 2 threads): the loop steps a cell that holds the LSTM's tensors.
    cell = torch.nn.LSTMCell(size, s["hidden"])
    for key in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
        setattr(cell, key, getattr(lstm, f"{key}_l0"))

    def sample() -> str:
        with torch.inference_mode():
            out, (h, c) = lstm(seed_x)  # the seed in one call
            h, c = h[0], c[0]
            logits = dense(out[:, -1])
            x = torch.zeros(1, size)
            tokens = []
            for i in range(length):
                if i:
                    h, c = cell(x, (h, c))
                    logits = dense(h)
                token = torch.multinomial(
                    torch.softmax(logits / temperature, -1), 1, generator=generator
                )
                tokens.append(token)
                x.zero_()
                x.scatter_(1, token, 1.0)
            ids = torch.cat(tokens).view(-1).tolist()
        return "".join(vocabulary[t] for t in ids)

    with torch.inference_mode():
        out, _ = lstm(seed_x)
        check = torch.softmax(dense(out[:, -1]), -1)[0].numpy()
    info = _torch_counts(model)
    info["check"] = check
    return {"": {"sample": sample}}, info


# -- Keras 3 (TensorFlow) -----------------------------------------------------


def _keras_setup(threads: int, seed: int) -> tuple[Any, Any]:
    """Import TensorFlow and Keras with the thread counts set; seed Keras."""
    import tensorflow as tf

    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(1)
    except RuntimeError:  # set by an earlier workload of this worker (the same values)
        pass
    import keras

    keras.utils.set_random_seed(seed)
    return tf, keras


def _keras_lstm_weights(named: dict[str, np.ndarray], prefix: str, suffix: str = "") -> list:
    """Return lstmlearn's LSTM layer `prefix` as Keras's [kernel, recurrent_kernel, bias].

    Keras's gate order (i, f, c, o) is PyTorch's and lstmlearn's; its one bias
    is the sum of the two.
    """
    w = {
        k: named[f"{prefix}{k}_l0{suffix}"]
        for k in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")
    }
    return [w["weight_ih"].T, w["weight_hh"].T, w["bias_ih"] + w["bias_hh"]]


def _keras_counts(model: Any) -> dict[str, int]:
    total = int(model.count_params())
    return {"parameters": total, "parameters_one_lstm_bias": total}


def _keras_adam(keras: Any) -> Any:
    return keras.optimizers.Adam(learning_rate=LEARNING_RATE, epsilon=ADAM_EPSILON)


def build_keras(
    name: str,
    sizes: dict[str, Any],
    data: dict[str, Any],
    shared: Any,
    threads: int,
    seed: int,
    jit: str = "auto",
) -> tuple[dict[str, Calls], dict[str, Any]]:
    """Build the Keras model of workload `name` with XLA and without, and their calls.

    `jit` is "auto" (both variants; the worker keeps the faster per figure),
    "xla" or "graph". Training is ``train_on_batch`` over the k mini-batches
    of a model compiled with ``jit_compile`` True (XLA) or False (a
    ``tf.function`` graph); inference ``predict_on_batch``, or for greedy
    decoding and sampling a ``tf.function`` of the whole loop.
    """
    if name == "search":
        return build_search("keras", sizes, data, threads, seed, "xla" if jit == "xla" else "graph")
    modes = ("xla", "graph") if jit == "auto" else (jit,)
    variants: dict[str, Calls] = {}
    info: dict[str, Any] = {"checks": {}}
    for mode in modes:
        calls, details = _keras_variant(name, sizes, data, shared, threads, seed, mode == "xla")
        variants[mode] = calls
        info["checks"][mode] = details.pop("check")
        info.update(details)
    info["check"] = info["checks"][modes[0]]  # setup_workload compares every variant's
    return variants, info


def _keras_variant(
    name: str,
    s: dict[str, Any],
    data: dict[str, Any],
    shared: Any,
    threads: int,
    seed: int,
    xla: bool,
) -> tuple[Calls, dict[str, Any]]:
    tf, keras = _keras_setup(threads, seed)
    layers = keras.layers
    if name == "sampling":
        return _keras_sampling(tf, keras, s, data, shared, xla)
    if name == "seq2seq":
        return _keras_seq2seq(tf, keras, s, data, shared, xla)
    if name == "cnn_lstm":
        frames = layers.Input((s["frames"], s["size"], s["size"], 1))
        conv = layers.Conv2D(s["filters"], s["kernel"], activation="relu")
        h = layers.TimeDistributed(conv)(frames)
        h = layers.TimeDistributed(layers.MaxPooling2D(s["pool"]))(h)
        h = layers.TimeDistributed(layers.Flatten())(h)
        lstm = layers.LSTM(s["hidden"])
        dense = layers.Dense(s["classes"])
        logits = dense(lstm(h))
        model = keras.Model(frames, logits)
        if shared is not None:
            conv.set_weights([shared["conv.weight"].transpose(2, 3, 1, 0), shared["conv.bias"]])
            lstm.set_weights(_keras_lstm_weights(shared, "layer0."))
        inputs: Any = data["x_train"][..., None]  # channels-last frames, made once
        x_infer: Any = data["x_infer"][..., None]
    elif name == "bidir_attention":
        x = layers.Input((s["steps"], s["features"]))
        h = x
        stack = [
            layers.Bidirectional(layers.LSTM(s["hidden"], return_sequences=True))
            for _ in range(s["layers"])
        ]
        for bidirectional in stack:
            h = bidirectional(h)
        score = layers.Dense(s["attention_units"], activation="tanh")
        v = layers.Dense(1, use_bias=False)
        weights = layers.Softmax(axis=1)(v(score(h)))  # [B, T, 1]
        pooled = layers.Flatten()(layers.Dot(axes=1)([weights, h]))  # [B, 2H]
        dense = layers.Dense(s["classes"])
        model = keras.Model(x, dense(pooled))
        if shared is not None:
            for i, bidirectional in enumerate(stack):
                bidirectional.forward_layer.set_weights(_keras_lstm_weights(shared, f"layer{i}."))
                bidirectional.backward_layer.set_weights(
                    _keras_lstm_weights(shared, f"layer{i}.", "_reverse")
                )
            score.set_weights([shared["pool.weight"].T, shared["pool.bias"]])
            v.set_weights([shared["pool.v"][:, None]])
        inputs, x_infer = data["x_train"], data["x_infer"]
    elif name == "long":
        x = layers.Input((s["steps"], s["features"]))
        lstm = layers.LSTM(s["hidden"])
        dense = layers.Dense(1)
        model = keras.Model(x, dense(lstm(x)))
        if shared is not None:
            lstm.set_weights(_keras_lstm_weights(shared, "layer0."))
        inputs, x_infer = data["x_train"], data["x_infer"]
    else:
        raise ValueError(f"unknown workload {name!r}")
    if shared is not None:
        dense.set_weights([shared["dense.weight"].T, shared["dense.bias"]])
    regression = name == "long"
    loss: Any = (
        "mse" if regression else keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    )
    model.compile(optimizer=_keras_adam(keras), loss=loss, jit_compile=xla)
    if regression:
        predictor = model
    else:
        predictor = keras.Model(model.inputs, layers.Softmax()(model.outputs[0]))
        predictor.compile(jit_compile=xla)
    y = data["y_train"]
    pairs = [(inputs[b], y[b]) for b in batches(s)]

    def train() -> None:
        for xb, yb in pairs:
            model.train_on_batch(xb, yb)

    def predict() -> np.ndarray:
        return predictor.predict_on_batch(x_infer)

    info = _keras_counts(model)
    info["check"] = np.asarray(predict())  # before any training: on lstmlearn's weights
    train()  # the first call traces and compiles the training step: not timed
    return {"train": train, "infer": predict}, info


def _keras_seq2seq(
    tf: Any, keras: Any, s: dict[str, Any], data: dict[str, Any], shared: Any, xla: bool
) -> tuple[Calls, dict[str, Any]]:
    """The attention encoder-decoder from Keras layers; greedy decoding in one tf.function."""
    layers = keras.layers
    h_units, start = s["hidden"], s["out_vocab"]
    enc_tokens = layers.Input((s["in_steps"],), dtype="int32")
    dec_tokens = layers.Input((s["out_steps"],), dtype="int32")
    enc_embedding = layers.Embedding(s["in_vocab"], s["embedding"])
    encoder = layers.LSTM(h_units, return_sequences=True, return_state=True)
    dec_embedding = layers.Embedding(s["out_vocab"] + 1, s["embedding"])
    decoder = layers.LSTM(h_units, return_sequences=True)
    wq = layers.Dense(s["attention_units"], use_bias=False)
    wk = layers.Dense(s["attention_units"])
    # score = sum(scale * tanh(query + key)): with the projections above, the
    # additive attention v . tanh(Wq q + Wk k + bias), v = scale.
    attention = layers.AdditiveAttention(use_scale=True)
    dense = layers.Dense(s["out_vocab"])

    enc, h, c = encoder(enc_embedding(enc_tokens))
    keys = wk(enc)
    dec = decoder(dec_embedding(dec_tokens), initial_state=[h, c])
    context = attention([wq(dec), enc, keys])
    logits = dense(layers.Concatenate()([context, dec]))
    model = keras.Model([enc_tokens, dec_tokens], logits)
    if shared is not None:
        enc_embedding.set_weights([shared["encoder.embedding"]])
        encoder.set_weights(_keras_lstm_weights(shared, "encoder.layer0."))
        dec_embedding.set_weights([shared["decoder.embedding"]])
        decoder.set_weights(_keras_lstm_weights(shared, "decoder."))
        wq.set_weights([shared["attention.Wq"].T])
        wk.set_weights([shared["attention.Wk"].T, shared["attention.bias"]])
        attention.set_weights([shared["attention.v"]])
        dense.set_weights([shared["dense.weight"].T, shared["dense.bias"]])
    model.compile(
        optimizer=_keras_adam(keras),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        jit_compile=xla,
    )
    cell = decoder.cell

    @tf.function(jit_compile=xla)
    def greedy(x: Any) -> Any:
        enc, h, c = encoder(enc_embedding(x), training=False)
        keys = wk(enc)
        token = tf.fill([tf.shape(x)[0]], start)
        out = []
        for _ in range(s["out_steps"]):
            dec, (h, c) = cell(dec_embedding(token), [h, c], training=False)
            context = attention([wq(dec)[:, None], enc, keys])[:, 0]
            token = tf.cast(tf.argmax(dense(tf.concat([context, dec], -1)), -1), tf.int32)
            out.append(token)
        return tf.stack(out, axis=1)

    x_train = data["x_train"].astype(np.int32)
    dec_in = teacher_forcing_input(data["y_train"], start).astype(np.int32)
    y = data["y_train"].astype(np.int32)
    pairs = [([x_train[b], dec_in[b]], y[b]) for b in batches(s)]
    x_infer = tf.constant(data["x_infer"].astype(np.int32))

    def train() -> None:
        for xb, yb in pairs:
            model.train_on_batch(xb, yb)

    def predict() -> np.ndarray:
        return greedy(x_infer).numpy()

    info = _keras_counts(model)
    info["check"] = predict()
    train()
    return {"train": train, "infer": predict}, info


def _keras_sampling(
    tf: Any, keras: Any, s: dict[str, Any], data: dict[str, Any], shared: Any, xla: bool
) -> tuple[Calls, dict[str, Any]]:
    """A stateful sampling loop: the whole generation (seed, then one LSTM cell step
    per character) in one ``tf.function``."""
    layers = keras.layers
    vocabulary = sorted(set(data["text"]))  # as LSTMGenerator orders its characters
    size, units = len(vocabulary), s["hidden"]
    x = layers.Input((None, size))
    lstm = layers.LSTM(units, return_sequences=True)
    dense = layers.Dense(size)
    model = keras.Model(x, dense(lstm(x)))
    if shared is not None:
        lstm.set_weights(_keras_lstm_weights(shared, "layer0."))
        dense.set_weights([shared["dense.weight"].T, shared["dense.bias"]])
    index = {c: k for k, c in enumerate(vocabulary)}
    seed_x = tf.constant(one_hot(np.array([index[c] for c in s["seed_text"]]), size)[None])
    length, temperature = s["length"], s["temperature"]
    cell = lstm.cell

    @tf.function(jit_compile=xla)
    def generate(seed_x: Any, key: Any) -> Any:
        h = tf.zeros([1, units])
        c = tf.zeros([1, units])
        for t in range(len(s["seed_text"])):
            out, (h, c) = cell(seed_x[:, t], [h, c], training=False)
        logits = dense(out)
        tokens = tf.TensorArray(tf.int32, size=length)
        for i in tf.range(length):
            token = tf.random.stateless_categorical(
                logits / temperature, 1, seed=tf.stack([key, i]), dtype=tf.int32
            )[0, 0]
            tokens = tokens.write(i, token)
            out, (h, c) = cell(tf.one_hot([token], size), [h, c], training=False)
            logits = dense(out)
        return tokens.stack()

    calls_made = [0]

    def sample() -> str:
        calls_made[0] += 1
        ids = generate(seed_x, tf.constant(calls_made[0], tf.int32)).numpy()
        return "".join(vocabulary[t] for t in ids)

    info = _keras_counts(model)
    info["check"] = tf.nn.softmax(model(seed_x)[0, -1]).numpy()
    return {"sample": sample}, info


# -- the grid search ----------------------------------------------------------


def _search_estimator(library: str, s: dict[str, Any], seed: int, xla: bool) -> tuple[Any, dict]:
    """Return the tiny regressor of `library` and its grid (12 candidates)."""
    epochs, batch = s["epochs"], s["batch"]
    if library == "lstmlearn":
        from lstmlearn import LSTMRegressor

        estimator = LSTMRegressor(
            hidden_layer_sizes=s["hidden"],
            batch_size=batch,
            max_iter=epochs,
            tol=0.0,
            n_iter_no_change=epochs,  # never stops early: every fit runs all epochs
            lr_schedule="constant",
            epsilon=ADAM_EPSILON,
            patch_size=None,
            random_state=seed,
        )
        grid = {"learning_rate": s["learning_rates"], "beta_1": s["beta_1"]}
        return estimator, grid
    if library == "pytorch":
        import torch
        from skorch import NeuralNetRegressor

        estimator = NeuralNetRegressor(
            module=_torch_models()["LastStep"],
            module__features=s["features"],
            module__hidden=s["hidden"],
            module__outputs=1,
            criterion=torch.nn.MSELoss,
            optimizer=torch.optim.Adam,
            optimizer__eps=ADAM_EPSILON,
            optimizer__fused=True,
            lr=LEARNING_RATE,
            max_epochs=epochs,
            batch_size=batch,
            train_split=None,  # no internal validation split, as the others
            iterator_train__shuffle=True,
            verbose=0,
        )
        grid = {"lr": s["learning_rates"], "optimizer__betas": [(b, 0.999) for b in s["beta_1"]]}
        return estimator, grid
    if library == "keras":
        import keras
        from scikeras.wrappers import KerasRegressor

        steps, features, hidden = s["steps"], s["features"], s["hidden"]

        def tiny_model(compile_kwargs: dict[str, Any]) -> Any:
            import keras

            model = keras.Sequential(
                [keras.Input((steps, features)), keras.layers.LSTM(hidden), keras.layers.Dense(1)]
            )
            model.compile(**compile_kwargs, jit_compile=xla)
            return model

        estimator = KerasRegressor(
            model=tiny_model,
            loss="mse",
            optimizer=keras.optimizers.Adam,
            optimizer__learning_rate=LEARNING_RATE,
            optimizer__epsilon=ADAM_EPSILON,
            epochs=epochs,
            batch_size=batch,
            shuffle=True,
            verbose=0,
            # No random_state: scikeras would make TensorFlow's ops deterministic.
        )
        grid = {"optimizer__learning_rate": s["learning_rates"], "optimizer__beta_1": s["beta_1"]}
        return estimator, grid
    raise ValueError(f"unknown library {library!r}")


def _thread_probe(library: str) -> dict[str, Any]:
    """What a search worker process sees: its thread settings (run in the pool)."""
    seen: dict[str, Any] = {
        k: os.environ.get(k) for k in ("OMP_NUM_THREADS", "TF_NUM_INTRAOP_THREADS")
    }
    if library == "lstmlearn":
        import lstmlearn

        seen["lstmlearn_threads"] = lstmlearn.config()["threads"]
    elif library == "pytorch":
        import skorch  # noqa: F401 (imported to warm the worker up)
        import torch

        seen["torch_threads"] = torch.get_num_threads()
    else:
        import scikeras  # noqa: F401
        import tensorflow as tf

        seen["tf_intra_op_threads"] = tf.config.threading.get_intra_op_parallelism_threads()
    return seen


def build_search(
    library: str, s: dict[str, Any], data: dict[str, Any], threads: int, seed: int, jit: str
) -> tuple[dict[str, Calls], dict[str, Any]]:
    """Build one library's ``GridSearchCV(n_jobs=2)`` and its timed call.

    The searches run in joblib's loky processes, two at a time, each fit on
    ``threads // n_jobs`` threads (one on 2 cores): loky sets OMP_NUM_THREADS,
    which lstmlearn reads; MKL_NUM_THREADS (PyTorch) and
    TF_NUM_INTRAOP_THREADS (TensorFlow) are set here for the pool to inherit.
    ``refit=True`` refits the best candidate in this process afterwards. The
    warm-up is a search of one candidate over 2 folds, which starts the
    pool's processes and imports the library in them.
    """
    from joblib import Parallel, delayed
    from sklearn.model_selection import GridSearchCV, KFold

    if library == "keras":
        _keras_setup(threads, seed)
    elif library == "pytorch":
        _torch_setup(threads, seed)
    # Inherited by the pool's processes. joblib sets OMP_NUM_THREADS there but
    # keeps an MKL_NUM_THREADS already set (limit_threads_environment sets it to
    # --threads), and PyTorch takes its thread count from MKL_NUM_THREADS.
    per_process = str(max(1, threads // s["n_jobs"]))
    for variable in ("MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "TF_NUM_INTRAOP_THREADS"):
        os.environ[variable] = per_process
    os.environ["TF_NUM_INTEROP_THREADS"] = "1"
    x, y = data["x"], data["y"]
    if library == "pytorch":
        y = y[:, None]  # skorch's MSELoss compares [n, 1] outputs with [n, 1] targets
    estimator, grid = _search_estimator(library, s, seed, jit == "xla")
    last: dict[str, Any] = {}

    def search(param_grid: dict, folds: int) -> Any:
        gs = GridSearchCV(estimator, param_grid, cv=KFold(folds), n_jobs=s["n_jobs"])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            gs.fit(x, y)
        return gs

    def run() -> None:
        last["search"] = search(grid, s["folds"])

    def warm() -> None:
        search({k: v[:1] for k, v in grid.items()}, 2)

    def report() -> dict[str, Any]:
        gs = last["search"]
        best = gs.best_estimator_
        if library == "lstmlearn":
            epochs = best.n_iter_
            counts = parameter_counts({k: v.size for k, v in named_parameters(best).items()})
        elif library == "pytorch":
            epochs = len(best.history)
            counts = _torch_counts(best.module_)
        else:
            epochs = len(best.history_["loss"])
            counts = _keras_counts(best.model_)
        scores = np.asarray(gs.cv_results_["mean_test_score"], dtype=float)
        return {
            **counts,
            "candidates": len(gs.cv_results_["params"]),
            "folds": gs.n_splits_,
            "fits": len(gs.cv_results_["params"]) * gs.n_splits_ + 1,
            "epochs_of_refit": epochs,
            "scores_finite": bool(np.isfinite(scores).all()),
            "best_params": {k: str(v) for k, v in gs.best_params_.items()},
            "best_score_r2": float(gs.best_score_),
        }

    probe = Parallel(n_jobs=s["n_jobs"])(delayed(_thread_probe)(library) for _ in range(2))
    info = {
        "wrapper": SEARCH_WRAPPERS[library],
        "wrapper_version": _version(SEARCH_WRAPPERS[library]),
        "pool_threads": probe,
        "keras_jit": jit if library == "keras" else None,
        "_report": report,
    }
    return {"": {"search": run, "search:warmup": warm}}, info


def _version(distribution: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(distribution)
    except PackageNotFoundError:
        return None


BUILDERS: dict[str, Callable[..., tuple[dict[str, Calls], dict[str, Any]]]] = {
    "lstmlearn": build_lstmlearn,
    "pytorch": build_pytorch,
    "keras": build_keras,
}


# -- workers ------------------------------------------------------------------


def choose_variant(
    variants: dict[str, Calls], figure: str, warmup: int, target: float
) -> tuple[str, int, dict[str, Any]]:
    """Warm up every variant of `figure`, time each briefly and return the fastest.

    Returns the variant's name, its calls per repeat and the seconds per call
    each variant took (or its error).
    """
    measured: dict[str, Any] = {}
    iterations: dict[str, int] = {}
    for mode, calls in variants.items():
        try:
            iterations[mode] = calibrate(calls[figure], warmup, target)
        except Exception as error:  # a variant that fails to compile is left out
            measured[mode] = f"failed: {type(error).__name__}: {str(error)[:300]}"
    for _ in range(2):
        for mode in iterations:
            seconds = time_repeat(variants[mode][figure], iterations[mode]) / iterations[mode]
            measured.setdefault(mode, []).append(seconds)
    if not iterations:
        raise RuntimeError(f"every variant of {figure} failed: {measured}")
    best = min(iterations, key=lambda mode: statistics.median(measured[mode]))
    return best, iterations[best], measured


def stop_search_pool() -> None:
    """Shut joblib's worker processes down (else they idle until their timeout)."""
    from joblib.externals.loky import get_reusable_executor

    get_reusable_executor(reuse=True).shutdown(wait=True)


def worker_main(library: str, threads: int, seed: int, jit: str, conn: Connection) -> None:
    """Serve the parent's commands for one library, in a process of its own.

    Commands: ``("setup", workload, sizes, data, shared)``, ``("calibrate",
    figure, warmup, target_seconds)``, ``("time", figure, iterations)``,
    ``("report",)``, ``("release",)`` and ``("close",)``; each is answered
    with ``("ok", value)`` or ``("error", traceback)``.
    """
    variants: dict[str, Calls] = {}
    chosen: dict[str, str] = {}
    report: Callable[[], dict[str, Any]] | None = None
    pool = False  # whether a grid search started joblib's processes
    while True:
        command = conn.recv()
        try:
            kind = command[0]
            if kind in ("release", "close") and pool:
                stop_search_pool()
                pool = False
            if kind == "close":
                conn.send(("ok", None))
                return
            if kind == "setup":
                _, name, sizes, data, shared = command
                variants, chosen, report = {}, {}, None
                gc.collect()
                pool = pool or name == "search"
                extra = {"jit": jit} if library == "keras" else {}
                variants, info = BUILDERS[library](
                    name, sizes, data, shared, threads, seed, **extra
                )
                report = info.pop("_report", None)
                conn.send(("ok", info))
            elif kind == "calibrate":
                _, figure, warmup, target = command
                warm = variants[next(iter(variants))].get(f"{figure}:warmup")
                if warm is not None:  # one timed unit is long (a whole search)
                    for _ in range(warmup):
                        warm()
                    chosen[figure] = next(iter(variants))
                    conn.send(("ok", (1, None)))
                elif len(variants) == 1:
                    chosen[figure] = next(iter(variants))
                    iterations = calibrate(variants[chosen[figure]][figure], warmup, target)
                    conn.send(("ok", (iterations, None)))
                else:
                    best, iterations, measured = choose_variant(variants, figure, warmup, target)
                    chosen[figure] = best
                    conn.send(("ok", (iterations, {"chosen": best, "seconds_per_call": measured})))
            elif kind == "time":
                _, figure, iterations = command
                conn.send(("ok", time_repeat(variants[chosen[figure]][figure], iterations)))
            elif kind == "report":
                conn.send(("ok", report() if report is not None else {}))
            elif kind == "release":
                variants, chosen, report = {}, {}, None
                if library == "keras":
                    import keras

                    keras.backend.clear_session()
                gc.collect()
                conn.send(("ok", None))
            else:
                raise ValueError(f"unknown command {kind!r}")
        except Exception:  # reported to the parent, which decides
            conn.send(("error", traceback.format_exc()))


class Worker(PipeWorker):
    """A library's worker process (see :func:`worker_main`)."""

    def __init__(self, library: str, threads: int, seed: int, jit: str) -> None:
        # The worker runs this file as the module bench_family, not as __main__:
        # the grid searches send its functions to joblib's processes, which
        # find them by module name.
        import bench_family

        self.library = library
        # Not a daemon: a daemonic process may not start the search's processes.
        super().__init__(
            library,
            bench_family.worker_main,
            (library, threads, seed, jit),
            daemon=False,
            join_timeout=60,
        )


# -- one workload -------------------------------------------------------------


def compare(name: str, reference: Any, other: Any) -> dict[str, Any]:
    """Compare a peer's check output with lstmlearn's on the same weights."""
    a, b = np.asarray(reference), np.asarray(other)
    squeezed = (tuple(d for d in a.shape if d != 1), tuple(d for d in b.shape if d != 1))
    if squeezed[0] != squeezed[1]:
        return {"ok": False, "why": f"shape {b.shape} against lstmlearn's {a.shape}"}
    if name == "seq2seq":  # greedy tokens
        agreement = float(np.mean(a.reshape(b.shape) == b))
        return {"ok": agreement >= CHECK_TOKEN_AGREEMENT, "token_agreement": agreement}
    diff = float(np.max(np.abs(a.reshape(b.shape).astype(np.float64) - b)))
    return {"ok": diff <= CHECK_TOLERANCE, "max_abs_diff": diff}


def setup_workload(
    workers: list[Worker], name: str, sizes: dict[str, Any], data: dict[str, Any]
) -> dict[str, dict[str, Any]]:
    """Set every worker up for workload `name`; lstmlearn first, its weights to the peers.

    A worker whose setup fails is reported and left out of this workload.
    Returns each ready library's setup information.
    """
    infos: dict[str, dict[str, Any]] = {}
    shared = None
    ordered = sorted(workers, key=lambda w: w.library != "lstmlearn")
    if ordered and ordered[0].library == "lstmlearn":
        try:
            infos["lstmlearn"] = ordered[0].ask("setup", name, sizes, data, None)
            shared = infos["lstmlearn"].pop("shared", None)
        except RuntimeError as error:
            print(f"  lstmlearn: setup failed, left out\n{error}", file=sys.stderr)
        ordered = ordered[1:]
    sent = []
    for worker in ordered:  # the peers set up at once: imports and tracing are not timed
        try:
            worker.send("setup", name, sizes, data, shared)
            sent.append(worker)
        except RuntimeError as error:
            print(f"  {worker.library}: setup failed, left out\n{error}", file=sys.stderr)
    for worker in sent:
        try:
            infos[worker.library] = worker.answer()
        except RuntimeError as error:
            print(f"  {worker.library}: setup failed, left out\n{error}", file=sys.stderr)
    reference = infos.get("lstmlearn", {}).get("check")
    for library, info in infos.items():
        checks = info.pop("checks", None)
        check = info.pop("check", None)
        if library == "lstmlearn" or reference is None or check is None:
            continue
        outcomes = {m: compare(name, reference, c) for m, c in (checks or {"": check}).items()}
        info["check_against_lstmlearn"] = outcomes if checks else outcomes[""]
    return infos


def time_figures(
    workers: list[Worker], name: str, repeats: int, warmup: int, target: float
) -> dict[str, dict[str, Any]]:
    """Time every figure of workload `name`, interleaving the libraries' repeats."""
    results: dict[str, dict[str, Any]] = {w.library: {} for w in workers}
    for figure in FIGURES[name]:
        active = [w for w in workers if w.library in FIGURE_LIBRARIES.get(figure, LIBRARIES)]
        if not active:
            continue
        iterations, variant = {}, {}
        for worker in list(active):
            try:
                iterations[worker.library], variant[worker.library] = worker.ask(
                    "calibrate", figure, warmup, target
                )
            except RuntimeError as error:
                print(f"  {worker.library}: {figure} failed, left out\n{error}", file=sys.stderr)
                active.remove(worker)
        seconds: dict[str, list[float]] = {w.library: [] for w in active}
        for r in range(repeats):
            for worker in active if r % 2 == 0 else active[::-1]:
                time.sleep(PAUSE_BETWEEN_LIBRARIES)
                seconds[worker.library].append(
                    worker.ask("time", figure, iterations[worker.library])
                )
        for worker in active:
            entry: dict[str, Any] = {
                "calls_per_repeat": iterations[worker.library],
                "repeat_seconds": seconds[worker.library],
            }
            if variant[worker.library] is not None:
                entry["keras_jit"] = variant[worker.library]
            results[worker.library][figure] = entry
    return results


def summarize(name: str, sizes: dict[str, Any], figure: str, raw: dict[str, Any]) -> dict:
    """Add the median and the figure's throughput (or wall time) to the raw timings."""
    per_call = statistics.median(raw["repeat_seconds"]) / raw["calls_per_repeat"]
    out = dict(raw, median_seconds_per_call=per_call)
    if figure == "train":
        out["samples_per_second"] = sizes["batch"] * sizes["k"] / per_call
    elif figure == "infer":
        out["samples_per_second"] = INFER_BATCH / per_call
    elif figure in ("sample", "window", "stream"):
        out["characters_per_second"] = sizes["length"] / per_call
    else:
        out["seconds"] = per_call
    return out


# -- the table ----------------------------------------------------------------

ROWS = (
    ("train", "train samples/s", "samples_per_second", "higher"),
    ("infer", "infer samples/s B256", "samples_per_second", "higher"),
    ("sample", "sample chars/s", "characters_per_second", "higher"),
    ("window", "chars/s window mode", "characters_per_second", None),
    ("stream", "chars/s stream() loop", "characters_per_second", None),
    ("search", "search wall s", "seconds", "lower"),
)


def format_cell(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:,.0f}" if value >= 100 else f"{value:.3g}"


def table_lines(results: list[dict[str, Any]], libraries: list[str]) -> list[str]:
    """Return the printed table, the checks and the Keras variants chosen."""
    width = 12
    lines = [
        "ratio = lstmlearn's speed / the best peer's: throughput / throughput, or the best "
        "peer's wall time / lstmlearn's;",
        "ratio > 1 means lstmlearn is faster. Peers in the search row: skorch (pytorch), "
        "scikeras (keras).",
        "",
    ]
    header = f"{'workload':<16} {'figure':<22}" + "".join(f" {lib:>{width}}" for lib in libraries)
    header += f" {'best peer':>10} {'ratio':>6}"
    lines += [header, "-" * len(header)]
    peers = [lib for lib in libraries if lib != "lstmlearn"]
    for entry in results:
        for figure, label, key, better in ROWS:
            values = {
                lib: entry["libraries"].get(lib, {}).get(figure, {}).get(key) for lib in libraries
            }
            if all(v is None for v in values.values()):
                continue
            line = f"{entry['workload']:<16} {label:<22}"
            line += "".join(f" {format_cell(values[lib]):>{width}}" for lib in libraries)
            measured = {lib: values[lib] for lib in peers if values[lib] is not None}
            ours = values.get("lstmlearn")
            best, ratio = "-", "-"
            if better is not None and measured:
                pick = max if better == "higher" else min
                best = pick(measured, key=lambda lib: measured[lib])
                if ours:
                    speed = ours / measured[best] if better == "higher" else measured[best] / ours
                    ratio = f"{speed:.2f}"
            lines.append(line + f" {best:>10} {ratio:>6}")
    lines.append("")
    lines.append("parameters (without the second LSTM bias, which Keras does not have):")
    for entry in results:
        setup = entry["setup"]
        counts = {
            lib: (info.get("parameters"), info.get("parameters_one_lstm_bias"))
            for lib, info in setup.items()
            if info.get("parameters") is not None
        }
        same = len({c[1] for c in counts.values()}) == 1
        cells = ", ".join(f"{lib} {c[0]:,} ({c[1]:,})" for lib, c in counts.items())
        lines.append(f"  {entry['workload']:<16} {cells}  {'equal' if same else 'DIFFERENT'}")
    lines.append("outputs on lstmlearn's weights (inference batch; sampling: the first character):")
    for entry in results:
        cells = []
        for lib, info in entry["setup"].items():
            check = info.get("check_against_lstmlearn")
            if check is None:
                continue
            for mode, outcome in check.items() if "ok" not in check else [("", check)]:
                what = (
                    f"tokens agree {outcome['token_agreement']:.3f}"
                    if "token_agreement" in outcome
                    else f"max |diff| {outcome['max_abs_diff']:.1e}"
                    if "max_abs_diff" in outcome
                    else outcome.get("why", "")
                )
                tag = f"{lib} {mode}".strip()
                cells.append(f"{tag}: {what}{'' if outcome['ok'] else ' MISMATCH'}")
        if cells:
            lines.append(f"  {entry['workload']:<16} " + "; ".join(cells))
    chosen = []
    for entry in results:
        keras = entry["libraries"].get("keras", {})
        picks = [
            f"{fig} {v['keras_jit']['chosen']}" for fig, v in keras.items() if "keras_jit" in v
        ]
        if picks:
            chosen.append(f"{entry['workload']}: " + ", ".join(picks))
        search = entry["setup"].get("keras", {}).get("keras_jit")
        if search is not None:
            chosen.append(f"{entry['workload']}: {search}")
    if chosen:
        lines.append("Keras's faster mode (xla: jit_compile=True, graph: tf.function without XLA):")
        lines.append("  " + "; ".join(chosen))
    return lines


# -- command line -------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Time lstmlearn against PyTorch and Keras 3 on every model family: "
        "attention seq2seq, CNN-LSTM, bidirectional attention classifier, a long sequence, "
        "text sampling and a grid search.",
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=available_cpus(),
        help="compute threads of every library (default: CPUs available, %(default)s here)",
    )
    parser.add_argument(
        "--workloads", default=",".join(WORKLOADS), help="comma-separated (default: %(default)s)"
    )
    parser.add_argument(
        "--libraries",
        default=",".join(LIBRARIES),
        help="comma-separated, each run only if installed (default: %(default)s)",
    )
    parser.add_argument(
        "--repeats", type=int, help="timed repeats per figure (default: 5, or 2 with --quick)"
    )
    parser.add_argument(
        "--search-repeats",
        type=int,
        help="timed repeats of each grid search (default: 2, or 1 with --quick)",
    )
    parser.add_argument(
        "--warmup", type=int, help="untimed calls first (default: 2, or 1 with --quick)"
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="smaller work and few, short repeats: a smoke run, not a measurement",
    )
    parser.add_argument(
        "--keras-jit",
        choices=("auto", "xla", "graph"),
        default="auto",
        help="Keras's compilation: 'auto' builds both, times each briefly and keeps the faster "
        "per figure; the grid search uses 'graph' unless 'xla' is forced (default: %(default)s)",
    )
    parser.add_argument(
        "--omp-wait-policy",
        choices=("default", "passive", "active"),
        default="default",
        help="OMP_WAIT_POLICY of the workers, as in bench_suite.py (default: %(default)s)",
    )
    parser.add_argument(
        "--peer-denormals",
        choices=("flush", "keep"),
        default="flush",
        help="whether PyTorch flushes denormal floats to zero, as lstmlearn and TensorFlow do "
        "(default: %(default)s)",
    )
    parser.add_argument(
        "--json",
        type=Path,
        default=DEFAULT_JSON,
        help="where to write the results (default: benchmarks/results/family.json)",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of weights and data")
    args = parser.parse_args(argv)
    try:
        args.workloads = split_names(args.workloads, WORKLOADS, "workload")
        args.libraries = split_names(args.libraries, LIBRARIES, "library")
    except argparse.ArgumentTypeError as error:
        parser.error(str(error))
    complete_timing_arguments(
        parser, args, repeats=(5, 2), warmup=(2, 1), repeat_seconds=(0.5, 0.05)
    )
    if args.search_repeats is None:
        args.search_repeats = 1 if args.quick else 2
    if args.search_repeats < 1:
        parser.error("--search-repeats must be at least 1")
    return args


def available(library: str) -> bool:
    return all(importlib.util.find_spec(m) is not None for m in REQUIRED_MODULES[library])


def searchable(libraries: list[str]) -> list[str]:
    """Return the libraries whose grid-search wrapper is installed; say which are skipped."""
    kept = []
    for lib in libraries:
        wrapper = SEARCH_WRAPPERS[lib]
        if wrapper != lib and importlib.util.find_spec(wrapper) is None:
            print(f"{wrapper} is not installed: the grid search of {lib} is skipped")
        else:
            kept.append(lib)
    return kept


def main(argv: list[str] | None = None) -> int:
    """Run the workloads, print the table and write the JSON file."""
    args = parse_args(argv)
    limit_threads_environment(args.threads, args.omp_wait_policy, args.peer_denormals)
    libraries = [lib for lib in args.libraries if available(lib)]
    missing = [lib for lib in args.libraries if lib not in libraries]
    if missing:
        print(f"not installed, left out: {', '.join(missing)}")
    if not libraries:
        print("none of the chosen libraries is installed")
        return 1
    search_libraries = searchable(libraries) if "search" in args.workloads else libraries
    load_before = load_average()
    machine = machine_info(libraries)
    machine["versions"].update({w: _version(w) for w in ("skorch", "scikeras", "scikit-learn")})
    versions = ", ".join(f"{lib} ({machine['versions'][lib]})" for lib in libraries)
    print(
        f"libraries: {versions}\n{args.threads} thread(s), {args.repeats} repeat(s) "
        f"({args.search_repeats} per search), warm-up {args.warmup}"
        + (", quick" if args.quick else "")
    )
    if load_before is not None:
        print(f"load average before starting: {load_before[0]:.2f} {load_before[1]:.2f}")

    workers = {lib: Worker(lib, args.threads, args.seed, args.keras_jit) for lib in libraries}
    results = []
    started = time.perf_counter()
    try:
        for name in args.workloads:
            sizes = workload_sizes(name, args.quick)
            chosen = [workers[lib] for lib in (search_libraries if name == "search" else libraries)]
            print(f"{name}: setting up ... ({time.perf_counter() - started:.0f} s)", flush=True)
            data = make_data(name, sizes, args.seed)
            setup = setup_workload(chosen, name, sizes, data)
            ready = [w for w in chosen if w.library in setup]
            print(f"{name}: timing ... ({time.perf_counter() - started:.0f} s)", flush=True)
            repeats = args.search_repeats if name == "search" else args.repeats
            warmup = max(1, args.warmup) if name == "search" else args.warmup
            raw = time_figures(ready, name, repeats, warmup, args.target_repeat_seconds)
            for worker in ready:
                setup[worker.library].update(worker.ask("report"))
                worker.ask("release")
            results.append(
                {
                    "workload": name,
                    "sizes": sizes,
                    "setup": setup,
                    "libraries": {
                        lib: {fig: summarize(name, sizes, fig, t) for fig, t in figures.items()}
                        for lib, figures in raw.items()
                    },
                }
            )
    finally:
        for worker in workers.values():
            worker.close()
    seconds = time.perf_counter() - started
    load_after = load_average()
    print(f"done ({seconds:.0f} s)")
    lines = table_lines(results, libraries)
    print()
    print("\n".join(lines).rstrip())
    if load_after is not None:
        print(f"\nload average at the end: {load_after[0]:.2f} {load_after[1]:.2f}")

    args.json.parent.mkdir(parents=True, exist_ok=True)
    report = {
        "benchmark": "family",
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": machine,
        "load_average_before": load_before,
        "load_average_after": load_after,
        "seconds": seconds,
        "arguments": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "results": results,
        "table": lines,
    }
    args.json.write_text(json.dumps(report, indent=2, default=_jsonable) + "\n", encoding="utf-8")
    print(f"wrote {args.json}")
    return 0


def _jsonable(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return str(value)


if __name__ == "__main__":
    sys.exit(main())
