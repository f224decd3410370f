"""Side-by-side benchmark suite: lstmlearn against PyTorch, Keras 3 and ONNX Runtime.

Every library that is installed trains and runs the same model on the same data
with the same thread count, for each workload of the design document:

- **training throughput**: samples per second over whole Adam steps (forward,
  loss, backward, optimizer update), through each library's ordinary training
  API (lstmlearn: ``partial_fit`` of the estimator);
- **inference throughput**: samples per second of one prediction call on a
  batch of 256;
- **latency**: milliseconds of one prediction call on one sample, the whole
  call from Python (NumPy in, NumPy out);
- **peak memory**: the peak resident set size of a short training run, in a
  fresh process per library and workload (``--memory-child``).

Each library is measured in the configuration an expert user would pick: for
every figure it offers candidate configurations (PyTorch: fused or for-loop
Adam, oneDNN or native LSTM, 1 or N threads for latency; Keras: graph or XLA,
1 or N inter-op threads; ONNX Runtime: 1 or N threads; lstmlearn: 1 or N
threads for latency), a short interleaved probe of every candidate picks the
fastest, and only that one is timed. The table says which was kept; the JSON
file holds every candidate's probe.

Each library runs in a worker process of its own (Keras in one per inter-op
thread count, which TensorFlow fixes at start), so that their thread pools,
allocators and OpenMP runtimes never share a process; the parent interleaves
the repeats of the libraries (in alternating order) so that a burst of load on
a shared machine hits all of them rather than one. The table shows medians.

Run ``python benchmarks/bench_suite.py --help`` for the options and
``benchmarks/README.md`` for what exactly is timed.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import functools
import gc
import importlib.util
import io
import json
import multiprocessing
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
import traceback
import warnings
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import numpy as np

LIBRARIES = ("lstmlearn", "pytorch", "keras", "onnxruntime")
# Forces OpenBLAS's kernel (as NumPy loads it) when set.
CORETYPE_VARIABLE = "OPENBLAS_CORETYPE"
FIGURES = ("train", "infer", "latency")
INFER_BATCH = 256
LEARNING_RATE = 1e-3
ADAM_EPSILON = 1e-7  # Keras's and lstmlearn's default; PyTorch is given the same
DEFAULT_JSON = Path(__file__).resolve().parent / "results" / "suite.json"
DENORMALS_VARIABLE = "BENCH_SUITE_PEER_DENORMALS"  # "flush" or "keep", set by the parent
PAUSE_BETWEEN_LIBRARIES = 0.05  # seconds: lets the previous library's spinning threads go idle
PROBE_REPEATS = 3  # probe repeats of every candidate configuration (1 with --quick)
# lstmlearn looks one-hot input rows up in a table from this many features on
# (kOneHotMinFeatures in cpp/src/lstm.cpp).
ONE_HOT_MIN_FEATURES = 8

# The Python modules whose presence makes a library available.
REQUIRED_MODULES = {
    "lstmlearn": ("lstmlearn",),
    "pytorch": ("torch",),
    "keras": ("tensorflow", "keras"),
    "onnxruntime": ("onnxruntime", "onnx", "torch"),
}
# What each library can do: ONNX Runtime here only runs inference.
FIGURES_OF = {
    "lstmlearn": FIGURES,
    "pytorch": FIGURES,
    "keras": FIGURES,
    "onnxruntime": ("infer", "latency"),
}

Call = Callable[[], object]


@dataclass
class Candidate:
    """One configuration a library may run a figure in.

    Attributes
    ----------
    tag : str
        Short name, unique among the library's candidates for the figure
        (shown in the table, key in the JSON file).
    settings : dict
        What the configuration sets, JSON-ready.
    build : callable
        Returns the timed call; run once, on the candidate's first use, after
        `prepare` (untimed: models, optimizer state, compilation).
    prepare : callable or None
        Sets the process-wide switches the call needs (thread count, oneDNN
        on or off); run whenever the worker switches to this candidate. None
        when the candidate needs none (its own model or session).
    """

    tag: str
    settings: dict[str, Any]
    build: Callable[[], Call]
    prepare: Callable[[], None] | None = None


# Per figure, a library's candidates, the library's own default first.
Candidates = dict[str, list[Candidate]]


@dataclass(frozen=True)
class Workload:
    """A model and batch shape of the design document.

    Attributes
    ----------
    name : str
        Workload name.
    batch, steps, features, hidden, layers, outputs : int
        B, T, F, H, the number of stacked LSTM layers and the dense outputs.
    per_step : bool
        Whether the dense layer is applied at every step (a per-step
        classifier, softmax over ``outputs`` classes) or to the last step only
        (a regressor).
    steps_per_call : int
        k: the optimizer steps (mini-batches) of one timed training call.
    """

    name: str
    batch: int
    steps: int
    features: int
    hidden: int
    layers: int
    outputs: int
    per_step: bool
    steps_per_call: int

    def lstm_flops(self) -> int:
        """GEMM FLOPs of one forward pass through the LSTM layers."""
        total = 0
        f_in = self.features
        for _ in range(self.layers):
            total += 2 * self.batch * self.steps * 4 * self.hidden * (f_in + self.hidden)
            f_in = self.hidden
        return total

    def dense_flops(self) -> int:
        """GEMM FLOPs of one forward pass through the dense output layer."""
        rows = self.batch * (self.steps if self.per_step else 1)
        return 2 * rows * self.hidden * self.outputs

    def train_flops(self) -> int:
        """GEMM FLOPs of one training step of the model: 3 x forward (backward costs
        twice forward), every product counted (see :func:`executed_train_flops`)."""
        return 3 * (self.lstm_flops() + self.dense_flops())

    def input_product_flops(self) -> int:
        """FLOPs of one product with the first layer's input weights over the batch.

        The forward input projection ``x W_ih^T`` or the input gradient
        ``dx = da W_ih`` (both ``2*B*T*4H*F``).
        """
        return 2 * self.batch * self.steps * 4 * self.hidden * self.features

    def one_hot_inputs(self) -> bool:
        """Whether the inputs are one-hot rows that lstmlearn looks up (chargen)."""
        return self.per_step and self.features >= ONE_HOT_MIN_FEATURES

    def describe(self) -> dict[str, Any]:
        """Return the shape as a JSON-ready dict."""
        return dataclasses.asdict(self)


WORKLOADS = {
    w.name: w
    for w in (
        Workload("tiny", 32, 24, 1, 32, 1, 1, per_step=False, steps_per_call=16),
        Workload("stacked", 64, 50, 8, 64, 2, 1, per_step=False, steps_per_call=8),
        Workload("medium", 64, 100, 32, 128, 1, 10, per_step=False, steps_per_call=4),
        Workload("large", 128, 100, 64, 512, 1, 1, per_step=False, steps_per_call=1),
        Workload("chargen", 64, 100, 64, 256, 1, 64, per_step=True, steps_per_call=2),
    )
}


def executed_train_flops(workload: Workload, library: str, settings: dict[str, Any]) -> int:
    """GEMM FLOPs one training step of `library` executes in the configuration `settings`.

    The model's count (:meth:`Workload.train_flops`) less what the library
    skips:

    - the input gradient of the first layer (``dx``), which nothing needs: the
      inputs are data. lstmlearn's network passes no ``dx`` to the first
      layer's backward (``Network::backward`` in ``cpp/src/network.cpp``, unless
      a convolutional front end needs it), PyTorch's autograd skips it on its
      native LSTM (the input does not require a gradient; checked with
      ``torch.utils.flop_counter``), and TensorFlow prunes it both in graph
      mode and under XLA (checked in a profiler trace and in the optimised HLO).
      PyTorch's oneDNN LSTM computes it: its backward always returns
      ``diff_x``;
    - lstmlearn's forward input projection of one-hot rows (chargen), which its
      engine reads from a table (``project_inputs`` in ``cpp/src/lstm.cpp``);
      the weight gradient ``da^T x`` is still a product.

    Parameters
    ----------
    workload : Workload
        Shapes.
    library : str
        One of ``LIBRARIES``.
    settings : dict
        The configuration that was timed (a :class:`Candidate`'s settings).

    Returns
    -------
    int
    """
    flops = workload.train_flops()
    if not (library == "pytorch" and settings.get("lstm") == "onednn"):
        flops -= workload.input_product_flops()  # no first-layer dx
    if library == "lstmlearn" and workload.one_hot_inputs():
        flops -= workload.input_product_flops()  # one-hot inputs looked up
    return flops


# -- data ---------------------------------------------------------------------


@dataclass
class Data:
    """The arrays every library gets, float32 (labels int64).

    Attributes
    ----------
    x_train : ndarray of shape (B * k, T, F)
        Training inputs: k whole mini-batches.
    y_train : ndarray
        Regression targets ``(B * k, outputs)``, or per-step class labels
        ``(B * k, T)`` for a per-step workload.
    x_infer : ndarray of shape (256, T, F)
        Inputs of the inference-throughput call.
    x_one : ndarray of shape (1, T, F)
        Input of the latency call.
    """

    x_train: np.ndarray
    y_train: np.ndarray
    x_infer: np.ndarray
    x_one: np.ndarray


def make_data(workload: Workload, seed: int) -> Data:
    """Build the same arrays in every process from `seed`.

    Regression workloads get standard-normal inputs and targets. The per-step
    workload (chargen) is next-character prediction: random characters, the
    input at step t is the one-hot code of character t and the label is
    character t + 1.

    Parameters
    ----------
    workload : Workload
        Shapes.
    seed : int
        Seed of the generator.

    Returns
    -------
    Data
    """
    w = workload
    rng = np.random.default_rng(seed)
    n = w.batch * w.steps_per_call
    if w.per_step:
        eye = np.eye(w.features, dtype=np.float32)
        chars = rng.integers(0, w.outputs, size=(n + INFER_BATCH, w.steps + 1))
        x_all = eye[chars[:, :-1] % w.features]
        y_train = chars[:n, 1:].astype(np.int64)
    else:
        x_all = rng.standard_normal((n + INFER_BATCH, w.steps, w.features), dtype=np.float32)
        y_train = rng.standard_normal((n, w.outputs), dtype=np.float32)
    x_train = np.ascontiguousarray(x_all[:n])
    x_infer = np.ascontiguousarray(x_all[n:])
    return Data(x_train, y_train, x_infer, np.ascontiguousarray(x_infer[:1]))


def batches(workload: Workload) -> list[slice]:
    """Return the k mini-batch slices of the training data, in order (no shuffling)."""
    b = workload.batch
    return [slice(i * b, (i + 1) * b) for i in range(workload.steps_per_call)]


# -- the libraries ------------------------------------------------------------


def thread_counts(threads: int) -> list[int]:
    """Return the thread counts a latency or ONNX Runtime search tries: N, then 1."""
    return [threads, 1] if threads > 1 else [1]


def build_lstmlearn(
    workload: Workload, data: Data, threads: int, seed: int, variant: dict[str, Any]
) -> Candidates:
    """Build the lstmlearn estimator's candidates.

    A training call is one ``partial_fit`` epoch over ``B * k`` samples with
    ``batch_size=B`` and ``shuffle=False``: k whole Adam steps. The regressor
    trains with squared error; the per-step workload uses ``LSTMClassifier``
    (softmax and cross-entropy over the classes at every step). Training and
    batch inference run with ``n_jobs=threads``; one-sample latency tries
    ``n_jobs`` N and 1 (``predict`` reads ``n_jobs`` at every call).
    """
    from lstmlearn import LSTMClassifier, LSTMRegressor

    w = workload
    x, y = data.x_train, data.y_train
    if not w.per_step and w.outputs == 1:
        y = y[:, 0]  # one output: a 1-D y, as a user would pass

    @functools.cache
    def estimator() -> Any:
        common: dict[str, Any] = {
            "hidden_layer_sizes": (w.hidden,) * w.layers,
            "batch_size": w.batch,
            "max_iter": 1,
            "shuffle": False,
            "optimizer": "adam",
            "learning_rate": LEARNING_RATE,
            "epsilon": ADAM_EPSILON,
            "random_state": seed,
            "n_jobs": threads,
            "dtype": np.float32,
        }
        if w.per_step:
            model: Any = LSTMClassifier(return_sequences=True, **common)
            model.partial_fit(x, y, classes=np.arange(w.outputs))  # initialises: not timed
        else:
            model = LSTMRegressor(**common)
            model.partial_fit(x, y)  # initialises: not timed
        return model

    def jobs(n: int) -> Callable[[], None]:
        def prepare() -> None:
            estimator().n_jobs = n

        return prepare

    def candidate(figure: str, n: int) -> Candidate:
        def build() -> Call:
            model = estimator()
            if figure == "train":
                return lambda: model.partial_fit(x, y)
            x_in = data.x_infer if figure == "infer" else data.x_one
            return lambda: model.predict(x_in)

        return Candidate(f"threads={n}", {"n_jobs": n}, build, jobs(n))

    return {
        "train": [candidate("train", threads)],
        "infer": [candidate("infer", threads)],
        "latency": [candidate("latency", n) for n in thread_counts(threads)],
    }


def _torch_model(workload: Workload, seed: int) -> Any:
    """Return PyTorch's LSTM + Linear model for `workload`, float32, seeded."""
    import torch

    w = workload

    class SequenceModel(torch.nn.Module):
        """Stacked ``nn.LSTM`` (batch first) and a dense head on the last step or every step."""

        def __init__(self) -> None:
            super().__init__()
            self.lstm = torch.nn.LSTM(w.features, w.hidden, w.layers, batch_first=True)
            self.dense = torch.nn.Linear(w.hidden, w.outputs)
            self.probabilities = False  # softmax on the output (inference of chargen)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            y, _ = self.lstm(x)
            out = self.dense(y if w.per_step else y[:, -1])
            return torch.softmax(out, dim=-1) if self.probabilities else out

    torch.manual_seed(seed)
    return SequenceModel().to(torch.float32)


def torch_lstm_backends() -> list[str]:
    """Return the ``nn.LSTM`` implementations PyTorch can run here, its default first.

    With oneDNN available and enabled (the default), PyTorch runs a float32
    ``nn.LSTM`` on the CPU through oneDNN (``aten::mkldnn_rnn_layer``, and
    ``mkldnn_rnn_layer_backward`` in training); with
    ``torch.backends.mkldnn.enabled = False`` through its native
    implementation (the input projection of all steps, then a matrix product
    per step).
    """
    import torch

    return ["onednn", "native"] if torch.backends.mkldnn.is_available() else ["native"]


def build_pytorch(
    workload: Workload, data: Data, threads: int, seed: int, variant: dict[str, Any]
) -> Candidates:
    """Build PyTorch's candidates: model, Adam and loss, and the timed calls.

    A training call runs the same k mini-batches as lstmlearn's ``partial_fit``:
    ``zero_grad``, forward, loss (``MSELoss`` or ``CrossEntropyLoss``, means as
    lstmlearn's), backward and ``Adam.step``. Inference runs under
    ``torch.inference_mode`` from a NumPy array to a NumPy array; the per-step
    model returns softmax probabilities, as lstmlearn's classifier computes.

    Candidates: training tries Adam's default for-loop implementation and
    ``fused=True``, each with the oneDNN and the native LSTM (N threads);
    batch inference the two LSTMs (N threads); latency the two LSTMs on N
    and on 1 thread. Each Adam implementation trains a model of its own (the
    same initial weights); inference uses the for-loop candidate's model.
    """
    import torch

    torch.set_num_threads(threads)
    torch.set_flush_denormal(flush_peer_denormals())
    w = workload
    loss_fn = torch.nn.CrossEntropyLoss() if w.per_step else torch.nn.MSELoss()
    x = torch.from_numpy(data.x_train)
    y = torch.from_numpy(data.y_train)
    pairs = [(x[s], y[s]) for s in batches(w)]

    @functools.cache
    def model(adam: str) -> Any:
        return _torch_model(w, seed)

    @functools.cache
    def trainer(adam: str) -> Call:
        net = model(adam)
        fused = {"fused": True} if adam == "fused" else {}
        optimizer = torch.optim.Adam(net.parameters(), lr=LEARNING_RATE, eps=ADAM_EPSILON, **fused)

        def train() -> None:
            net.probabilities = False
            net.train()
            for xb, yb in pairs:
                optimizer.zero_grad(set_to_none=True)
                out = net(xb)
                if w.per_step:
                    loss = loss_fn(out.reshape(-1, w.outputs), yb.reshape(-1))
                else:
                    loss = loss_fn(out, yb)
                loss.backward()
                optimizer.step()

        train()  # the first step allocates Adam's state: not timed
        return train

    def predictor(x_np: np.ndarray) -> Call:
        net = model("loop")

        def predict() -> np.ndarray:
            net.probabilities = w.per_step
            net.eval()
            with torch.inference_mode():
                return net(torch.from_numpy(x_np)).numpy()

        return predict

    def setup(lstm: str, n: int) -> Callable[[], None]:
        def prepare() -> None:
            torch.set_num_threads(n)
            torch.backends.mkldnn.enabled = lstm == "onednn"

        return prepare

    adams = {"loop": "Adam()", "fused": "Adam(fused=True)"}
    lstms = torch_lstm_backends()
    train = [
        Candidate(
            f"{adam},{lstm}",
            {"optimizer": adams[adam], "lstm": lstm, "threads": threads},
            functools.partial(trainer, adam),
            setup(lstm, threads),
        )
        for adam in adams
        for lstm in lstms
    ]

    def inference(x_np: np.ndarray, counts: list[int]) -> list[Candidate]:
        return [
            Candidate(
                f"{lstm},threads={n}",
                {"lstm": lstm, "threads": n},
                functools.partial(predictor, x_np),
                setup(lstm, n),
            )
            for n in counts
            for lstm in lstms
        ]

    return {
        "train": train,
        "infer": inference(data.x_infer, [threads]),
        "latency": inference(data.x_one, thread_counts(threads)),
    }


def keras_variants(threads: int) -> list[dict[str, Any]]:
    """Return the process settings of Keras's workers: 1 and N inter-op threads.

    TensorFlow fixes its thread pools when its runtime starts, so each
    inter-op thread count needs a process of its own.
    """
    return [{"inter_op_threads": n} for n in sorted(set(thread_counts(threads)))]


def build_keras(
    workload: Workload, data: Data, threads: int, seed: int, variant: dict[str, Any]
) -> Candidates:
    """Build the Keras 3 (TensorFlow backend) candidates and their timed calls.

    ``keras.layers.LSTM`` layers and a ``Dense`` head, compiled with Adam and
    ``mse`` or ``SparseCategoricalCrossentropy(from_logits=True)``. A training
    call is k ``train_on_batch`` calls on the same mini-batches; inference is
    ``predict_on_batch`` (the per-step model ends in a softmax for it).

    TensorFlow runs ``threads`` intra-op threads and ``variant["inter_op_threads"]``
    inter-op threads (set before its runtime starts: one worker process per
    count). Every figure tries ``jit_compile=False`` (a TensorFlow graph) and
    ``jit_compile=True`` (XLA), each on a model of its own (the same initial
    weights); inference uses the model its training candidate trained.
    """
    import tensorflow as tf

    inter = int(variant.get("inter_op_threads", 1))
    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(inter)
    # Two models per workload (graph and XLA), each traced once per input shape
    # in untimed calls, make TensorFlow warn about "excessive retracing"; the
    # timed calls do not retrace (the tracing count stays put).
    tf.get_logger().setLevel("ERROR")
    import keras

    w = workload
    x, y = data.x_train, data.y_train

    @functools.cache
    def models(jit: bool) -> tuple[Any, Any]:
        keras.utils.set_random_seed(seed)
        inputs = keras.Input((w.steps, w.features), dtype="float32")
        h = inputs
        for i in range(w.layers):
            h = keras.layers.LSTM(w.hidden, return_sequences=w.per_step or i < w.layers - 1)(h)
        logits = keras.layers.Dense(w.outputs)(h)
        model = keras.Model(inputs, logits)
        loss: Any = (
            keras.losses.SparseCategoricalCrossentropy(from_logits=True) if w.per_step else "mse"
        )
        model.compile(
            optimizer=keras.optimizers.Adam(learning_rate=LEARNING_RATE, epsilon=ADAM_EPSILON),
            loss=loss,
            jit_compile=jit,
        )
        predictor = model
        if w.per_step:
            predictor = keras.Model(inputs, keras.layers.Softmax()(logits))
            predictor.compile(jit_compile=jit)
        return model, predictor

    @functools.cache
    def trainer(jit: bool) -> Call:
        model = models(jit)[0]

        def train() -> None:
            for s in batches(w):
                model.train_on_batch(x[s], y[s])

        train()  # the first call traces (and compiles) the training function: not timed
        return train

    def predictor(jit: bool, x_np: np.ndarray) -> Call:
        net = models(jit)[1]
        return lambda: net.predict_on_batch(x_np)

    def candidates(figure: str) -> list[Candidate]:
        out = []
        for jit in (False, True):
            mode = "xla" if jit else "graph"
            settings = {"jit_compile": jit, "inter_op_threads": inter, "intra_op_threads": threads}
            if figure == "train":
                build: Callable[[], Call] = functools.partial(trainer, jit)
            else:
                x_in = data.x_infer if figure == "infer" else data.x_one
                build = functools.partial(predictor, jit, x_in)
            out.append(Candidate(f"{mode},inter={inter}", settings, build))
        return out

    return {figure: candidates(figure) for figure in FIGURES}


def build_onnxruntime(
    workload: Workload, data: Data, threads: int, seed: int, variant: dict[str, Any]
) -> Candidates:
    """Export PyTorch's model to ONNX and build ONNX Runtime's inference candidates.

    The model is exported by ``torch.onnx.export`` (the classic TorchScript
    exporter, ``dynamo=False``, opset 17, a dynamic batch axis) and run on the
    CPU execution provider, one session per ``intra_op_num_threads`` tried (N
    and 1, for batch inference and latency alike). Before timing, each
    session's output is checked against PyTorch's.
    """
    import onnxruntime as ort
    import torch

    torch.set_num_threads(threads)
    model = _torch_model(workload, seed)
    model.probabilities = workload.per_step
    model.eval()
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        # The exporter warns that an LSTM without explicit initial states may not
        # generalise over batch sizes; the outputs are checked below instead.
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model,
            (torch.from_numpy(data.x_one),),
            buffer,
            dynamo=False,
            input_names=["x"],
            output_names=["y"],
            dynamic_axes={"x": {0: "batch"}, "y": {0: "batch"}},
            opset_version=17,
        )
    with torch.inference_mode():
        expected = model(torch.from_numpy(data.x_infer)).numpy()
    exported = buffer.getvalue()

    @functools.cache
    def session(n: int) -> Any:
        options = ort.SessionOptions()
        options.intra_op_num_threads = n
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        if flush_peer_denormals():
            options.add_session_config_entry("session.set_denormal_as_zero", "1")
        made = ort.InferenceSession(exported, options, providers=["CPUExecutionProvider"])
        got = made.run(None, {"x": data.x_infer})[0]
        diff = float(np.max(np.abs(got - expected)))
        if diff > 1e-3:
            raise RuntimeError(f"ONNX Runtime's output differs from PyTorch's by {diff:.2e}")
        return made

    def runner(n: int, x_np: np.ndarray) -> Call:
        made = session(n)
        return lambda: made.run(None, {"x": x_np})[0]

    def candidates(x_np: np.ndarray) -> list[Candidate]:
        return [
            Candidate(
                f"threads={n}",
                {"intra_op_num_threads": n, "inter_op_num_threads": 1},
                functools.partial(runner, n, x_np),
            )
            for n in thread_counts(threads)
        ]

    return {"infer": candidates(data.x_infer), "latency": candidates(data.x_one)}


Builder = Callable[[Workload, Data, int, int, dict[str, Any]], Candidates]
BUILDERS: dict[str, Builder] = {
    "lstmlearn": build_lstmlearn,
    "pytorch": build_pytorch,
    "keras": build_keras,
    "onnxruntime": build_onnxruntime,
}
# The settings each worker process of a library starts with: one worker per entry.
PROCESS_VARIANTS: dict[str, Callable[[int], list[dict[str, Any]]]] = {
    "keras": keras_variants,
}


def process_variants(library: str, threads: int) -> list[dict[str, Any]]:
    """Return the settings of `library`'s worker processes (one worker each)."""
    variants = PROCESS_VARIANTS.get(library)
    return variants(threads) if variants is not None else [{}]


def library_version(library: str) -> str | None:
    """Return the version of `library`'s main package, or None if it is not importable."""
    from importlib.metadata import PackageNotFoundError, version

    names = {
        "lstmlearn": ("lstmlearn",),
        "pytorch": ("torch",),
        "keras": ("keras", "tensorflow-cpu", "tensorflow"),
        "onnxruntime": ("onnxruntime", "onnx"),
    }[library]
    found = []
    for name in names:
        try:
            found.append(f"{name} {version(name)}")
        except PackageNotFoundError:
            continue
    return ", ".join(found) or None


def available_libraries() -> list[str]:
    """Return the libraries whose modules are all importable, in table order."""
    return [
        lib
        for lib in LIBRARIES
        if all(importlib.util.find_spec(module) is not None for module in REQUIRED_MODULES[lib])
    ]


def available_cpus() -> int:
    """Return the CPUs this process may run on (affinity, not just the machine's count)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # no sched_getaffinity outside Linux
        return os.cpu_count() or 1


def busy_cpu_seconds() -> float | None:
    """Return the CPU time every process has used since boot, or None off Linux.

    Minus this process's own CPU time, it tells how much other users of a
    shared machine ran during a measurement.
    """
    try:
        with open("/proc/stat", encoding="utf-8") as f:
            fields = [int(v) for v in f.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    # user nice system idle iowait irq softirq steal ...: all but idle and iowait is busy.
    busy = sum(fields) - fields[3] - (fields[4] if len(fields) > 4 else 0)
    return busy / os.sysconf("SC_CLK_TCK")


class OtherLoad:
    """Measure the cores other processes kept busy while the ``with`` block ran.

    Parameters
    ----------
    children : bool
        Whether this process's waited-for children count as its own (set it
        when the block runs the measured work in subprocesses).

    Attributes
    ----------
    cores : float or None
        Average number of cores used by other processes (0 on an idle
        machine), to two decimals; None where it cannot be measured.
    """

    def __init__(self, children: bool = False) -> None:
        self.children = children
        self.cores: float | None = None

    def __enter__(self) -> OtherLoad:
        self.cores = None
        self._start = (busy_cpu_seconds(), self._own(), time.perf_counter())
        return self

    def __exit__(self, *exc: object) -> None:
        busy, own, wall = busy_cpu_seconds(), self._own(), time.perf_counter()
        if busy is not None and self._start[0] is not None:
            other = (busy - self._start[0]) - (own - self._start[1])
            self.cores = round(max(0.0, other / (wall - self._start[2])), 2)

    def _own(self) -> float:
        t = os.times()  # children count once they have been waited for
        own = t.user + t.system
        return own + t.children_user + t.children_system if self.children else own


def flush_peer_denormals() -> bool:
    """Whether the peers should flush denormal floats to zero, as lstmlearn's engine does."""
    return os.environ.get(DENORMALS_VARIABLE, "flush") == "flush"


def limit_threads_environment(
    threads: int, omp_wait_policy: str, peer_denormals: str = "flush"
) -> None:
    """Set the environment variables that native runtimes read when they load.

    Set in the parent before any worker starts, so that every worker inherits
    them. Each library's compute threads are set through its own API in its
    builder; here only NumPy's BLAS (not timed) and TensorFlow's start-up are
    limited, and OpenMP's wait policy is chosen.

    Parameters
    ----------
    threads : int
        Thread count.
    omp_wait_policy : {"default", "passive", "active"}
        ``OMP_WAIT_POLICY`` of the workers (PyTorch's OpenMP); "default" leaves
        the variable as it is. libgomp's default spins for a while at every
        barrier before sleeping: on a machine with more runnable threads than
        cores, a spinning barrier waits for a descheduled thread and PyTorch's
        small per-step operations slow down by 10 to 1000 times; "passive"
        avoids that, but costs a thread wake-up per parallel region, which on
        a quiet machine made PyTorch's latency on medium 13 times and its
        training step twice as slow.
    peer_denormals : {"flush", "keep"}, default="flush"
        Whether PyTorch (``torch.set_flush_denormal(True)``) and ONNX Runtime
        (``session.set_denormal_as_zero``) flush denormal floats to zero, as
        lstmlearn's engine and TensorFlow's thread pools always do. Gradients
        that decay through long sequences become denormal, and arithmetic on
        them is many times slower.
    """
    os.environ[DENORMALS_VARIABLE] = peer_denormals
    for name in ("OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[name] = str(threads)
    os.environ["TF_NUM_INTRAOP_THREADS"] = str(threads)
    os.environ["TF_NUM_INTEROP_THREADS"] = "1"
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's start-up chatter
    if omp_wait_policy != "default":
        os.environ["OMP_WAIT_POLICY"] = omp_wait_policy.upper()


# -- timing -------------------------------------------------------------------


def time_repeat(call: Callable[[], object], iterations: int) -> float:
    """Return the wall-clock seconds of `iterations` back-to-back calls, collector off."""
    gc.collect()
    gc.disable()  # a collection inside a timed repeat is noise, not the library's cost
    try:
        start = time.perf_counter()
        for _ in range(iterations):
            call()
        return time.perf_counter() - start
    finally:
        gc.enable()


def calibrate(call: Callable[[], object], warmup: int, target_seconds: float) -> int:
    """Warm `call` up and choose how many calls one repeat should time.

    Parameters
    ----------
    call : callable
        One timed unit: k training steps, or one prediction call.
    warmup : int
        Untimed calls first (compilation, thread pools, allocations, caches).
    target_seconds : float
        Wanted length of one repeat.

    Returns
    -------
    int
        Calls per repeat, at least 1.
    """
    for _ in range(warmup):
        call()
    iterations = 1
    while True:
        seconds = time_repeat(call, iterations)
        if seconds >= target_seconds / 4 or iterations >= 10_000:
            break
        iterations *= 2
    return max(1, min(10_000, round(target_seconds * iterations / seconds)))


class WorkerState:
    """A worker's candidates for the current workload and the calls built so far."""

    def __init__(self, candidates: Candidates) -> None:
        self.candidates = candidates
        self.calls: dict[tuple[str, str], Call] = {}
        self.active: tuple[str, str] | None = None

    def offers(self) -> dict[str, list[tuple[str, dict[str, Any]]]]:
        """Return the tag and settings of every candidate, per figure, defaults first."""
        return {
            figure: [(c.tag, c.settings) for c in candidates]
            for figure, candidates in self.candidates.items()
        }

    def use(self, figure: str, tag: str, rewarm: bool) -> Call:
        """Switch to a candidate (prepare, build on first use) and return its call.

        Switching back to a candidate built before, when it sets process-wide
        switches, runs one untimed call if `rewarm` is set: thread pools
        resized or oneDNN switched in between settle before anything is timed.
        """
        key = (figure, tag)
        if key == self.active:
            return self.calls[key]
        matches = [c for c in self.candidates.get(figure, []) if c.tag == tag]
        if not matches:
            raise KeyError(f"no candidate {tag!r} for {figure}")
        candidate = matches[0]
        if candidate.prepare is not None:
            candidate.prepare()
        self.active = key
        if key not in self.calls:
            self.calls[key] = candidate.build()
        elif rewarm and candidate.prepare is not None:
            self.calls[key]()
        return self.calls[key]


def worker_main(
    library: str,
    threads: int,
    seed: int,
    variant: dict[str, Any] | None,
    conn: Connection,
) -> None:
    """Serve the parent's commands for one library, in a process of its own.

    Commands are tuples: ``("setup", workload)`` (answered with the candidates'
    tags and settings per figure), ``("calibrate", figure, tag, warmup,
    target_seconds)``, ``("time", figure, tag, iterations)`` and ``("close",)``.
    Each is answered with ``("ok", value)`` or ``("error", traceback)``.
    `variant` holds the settings the process starts with (Keras's inter-op
    threads).
    """
    state = WorkerState({})
    while True:
        command = conn.recv()
        try:
            if command[0] == "close":
                conn.send(("ok", None))
                return
            if command[0] == "setup":
                state = WorkerState({})
                gc.collect()
                workload: Workload = command[1]
                data = make_data(workload, seed)
                state = WorkerState(BUILDERS[library](workload, data, threads, seed, variant or {}))
                conn.send(("ok", state.offers()))
            elif command[0] == "calibrate":
                _, figure, tag, warmup, target = command
                call = state.use(figure, tag, rewarm=False)  # calibrate warms up itself
                conn.send(("ok", calibrate(call, warmup, target)))
            elif command[0] == "time":
                _, figure, tag, iterations = command
                conn.send(("ok", time_repeat(state.use(figure, tag, rewarm=True), iterations)))
            else:
                raise ValueError(f"unknown command {command[0]!r}")
        except Exception:  # reported to the parent, which decides
            conn.send(("error", traceback.format_exc()))


class PipeWorker:
    """A spawned worker process and the parent's end of its command pipe.

    The worker answers every command with ``("ok", value)`` or ``("error",
    traceback)``; a dead worker or an error answer raises ``RuntimeError``
    naming the worker and the command. ``bench_family.py`` shares it.

    Parameters
    ----------
    name : str
        How errors name the worker.
    target : callable
        The worker's main function, called as ``target(*args, connection)``.
    args : tuple
        Its arguments before the connection.
    daemon : bool
        Whether the process is a daemon (a daemon may not start processes).
    join_timeout : float
        Seconds :meth:`close` waits for the process before terminating it.
    """

    def __init__(
        self,
        name: str,
        target: Callable[..., None],
        args: tuple[Any, ...],
        daemon: bool = True,
        join_timeout: float = 10.0,
    ) -> None:
        self.name = name
        self.join_timeout = join_timeout
        context = multiprocessing.get_context("spawn")  # a fresh interpreter, no forked pools
        self.conn, child = context.Pipe()
        self.process = context.Process(target=target, args=(*args, child), daemon=daemon)
        self.process.start()
        child.close()
        self._last = "start"

    def send(self, *command: Any) -> None:
        """Send `command` without waiting for the answer (see :meth:`answer`)."""
        self._last = command[0]
        try:
            self.conn.send(command)
        except OSError as error:  # the worker died (crash, out of memory, killed)
            raise RuntimeError(f"{self.name} worker died on {command[0]}: {error!r}") from None

    def answer(self) -> Any:
        """Wait for the answer to the last command and return it; raise on its error."""
        try:
            status, value = self.conn.recv()
        except (EOFError, OSError) as error:
            raise RuntimeError(f"{self.name} worker died on {self._last}: {error!r}") from None
        if status != "ok":
            raise RuntimeError(f"{self.name} worker failed on {self._last}:\n{value}")
        return value

    def ask(self, *command: Any) -> Any:
        """Send `command` and return the worker's answer; raise on its error."""
        self.send(*command)
        return self.answer()

    def close(self) -> None:
        """Stop the worker process."""
        try:
            self.ask("close")
        except (OSError, EOFError, RuntimeError):
            pass
        self.process.join(timeout=self.join_timeout)
        if self.process.is_alive():
            self.process.terminate()
            self.process.join(timeout=10)


class Worker(PipeWorker):
    """A library's worker process (see :func:`worker_main`).

    Parameters
    ----------
    library : str
        One of ``LIBRARIES``.
    threads : int
        Compute threads of the library.
    seed : int
        Seed of weights and data.
    variant : dict, optional
        Settings the process starts with (see :func:`process_variants`).
    """

    def __init__(
        self, library: str, threads: int, seed: int, variant: dict[str, Any] | None = None
    ) -> None:
        self.library = library
        self.variant = dict(variant or {})
        settings = ",".join(f"{k}={v}" for k, v in self.variant.items())
        name = f"{library}[{settings}]" if settings else library
        super().__init__(name, worker_main, (library, threads, seed, self.variant))


def start_workers(
    libraries: list[str], threads: int, seed: int, search: bool = True
) -> list[Worker]:
    """Start the worker processes of `libraries`: one each, Keras one per inter-op
    count (only the first, its default, without `search`)."""
    return [
        Worker(lib, threads, seed, variant)
        for lib in libraries
        for variant in process_variants(lib, threads)[: None if search else 1]
    ]


@dataclass
class Slot:
    """A candidate configuration as the parent sees it: its worker, probe and timings."""

    worker: Worker
    tag: str
    settings: dict[str, Any]
    iterations: int = 0
    probe: list[float] = dataclasses.field(default_factory=list)  # seconds per call

    @property
    def library(self) -> str:
        """The library the candidate belongs to."""
        return self.worker.library

    def probe_median(self) -> float:
        """Median seconds per call over the probe (infinite before any)."""
        return statistics.median(self.probe) if self.probe else float("inf")

    def describe(self) -> dict[str, Any]:
        """Return the candidate's settings and probe, JSON-ready."""
        return {
            "settings": self.settings,
            "process": self.worker.variant,
            "calls_per_repeat": self.iterations,
            "probe_calls_per_repeat": probe_calls(self.iterations),
            "probe_seconds_per_call": self.probe,
            "probe_median_seconds_per_call": statistics.median(self.probe) if self.probe else None,
        }


def probe_calls(iterations: int) -> int:
    """Calls of one probe repeat: half a timed repeat's, at least one."""
    return max(1, iterations // 2)


def setup_workers(workers: list[Worker], workload: Workload) -> dict[Worker, dict[str, Any]]:
    """Set `workload` up in every worker at once; return each ready worker's offers.

    A worker whose setup fails is reported and left out of this workload.
    """
    sent, offers = [], {}
    for worker in workers:  # set up all at once: imports and exports are not timed
        try:
            worker.send("setup", workload)
            sent.append(worker)
        except RuntimeError as error:
            print(f"  {worker.name}: setup failed, left out\n{error}", file=sys.stderr)
    for worker in sent:
        try:
            offers[worker] = worker.answer()
        except RuntimeError as error:
            print(f"  {worker.name}: setup failed, left out\n{error}", file=sys.stderr)
    return offers


def probe_candidates(slots: list[Slot], figure: str, probe_repeats: int) -> None:
    """Time short repeats of every slot whose library has more than one, interleaved.

    Rounds go over all contested slots, in alternating order, so that a burst
    of load falls on every candidate rather than one. Every repeat follows a
    pause, also between two candidates of one process (ONNX Runtime's sessions
    have thread pools of their own, which spin for a while after a run).
    """
    count: dict[str, int] = {}
    for slot in slots:
        count[slot.library] = count.get(slot.library, 0) + 1
    contested = [slot for slot in slots if count[slot.library] > 1]
    for r in range(probe_repeats if contested else 0):
        for slot in contested if r % 2 == 0 else contested[::-1]:
            time.sleep(PAUSE_BETWEEN_LIBRARIES)
            calls = probe_calls(slot.iterations)
            slot.probe.append(slot.worker.ask("time", figure, slot.tag, calls) / calls)


def time_workload(
    workers: list[Worker],
    workload: Workload,
    figures: tuple[str, ...],
    repeats: int,
    warmup: int,
    target_seconds: float,
    probe_repeats: int = PROBE_REPEATS,
    search: bool = True,
) -> dict[str, dict[str, dict[str, Any]]]:
    """Time every figure of every worker's library on `workload`, each library in
    its fastest candidate configuration, interleaving repeats.

    For each figure: every candidate of every library is calibrated (warm-up
    and calls per repeat); the candidates of a library that has several are
    probed (`probe_repeats` interleaved repeats of half the calls, median
    seconds per call) and the fastest kept; then the kept candidates of all
    libraries are timed, `repeats` interleaved repeats. A candidate that fails
    is reported and left out.

    Parameters
    ----------
    workers : list of Worker
        The worker processes (:func:`start_workers`).
    workload : Workload
        Shapes.
    figures : tuple of str
        Figures to time, of ``FIGURES``.
    repeats, warmup : int
        Timed repeats and untimed calls first.
    target_seconds : float
        Wanted length of a timed repeat.
    probe_repeats : int, default=PROBE_REPEATS
        Probe repeats per candidate.
    search : bool, default=True
        False: no probe, each library's default candidate (its first).

    Returns
    -------
    dict
        ``result[library][figure]`` holds the kept candidate (``config``, its
        ``settings`` and worker ``process``), the calls per repeat, the raw
        seconds of each repeat, how it was chosen (``selection``) and every
        candidate's probe (``candidates``); training also ``flops_per_step``,
        the products this configuration executes.
    """
    offers = setup_workers(workers, workload)
    results: dict[str, dict[str, dict[str, Any]]] = {w.library: {} for w in offers}
    for figure in figures:
        slots = [
            Slot(worker, tag, settings)
            for worker, offer in offers.items()
            if figure in FIGURES_OF[worker.library]
            for tag, settings in offer.get(figure, [])
        ]
        if not search:  # each library's first candidate: its default
            firsts: dict[str, Slot] = {}
            for slot in slots:
                firsts.setdefault(slot.library, slot)
            slots = list(firsts.values())
        for slot in list(slots):
            try:
                slot.iterations = slot.worker.ask(
                    "calibrate", figure, slot.tag, warmup, target_seconds
                )
            except RuntimeError as error:
                print(
                    f"  {slot.library} {slot.tag}: {figure} failed, left out\n{error}",
                    file=sys.stderr,
                )
                slots.remove(slot)
        probe_candidates(slots, figure, probe_repeats)
        kept: dict[str, Slot] = {}
        for slot in slots:  # the fastest probe; the first (the default) on ties or no probe
            best = kept.get(slot.library)
            if best is None or slot.probe_median() < best.probe_median():
                kept[slot.library] = slot
        winners = list(kept.values())
        seconds: dict[str, list[float]] = {slot.library: [] for slot in winners}
        for r in range(repeats):
            for slot in winners if r % 2 == 0 else winners[::-1]:
                time.sleep(PAUSE_BETWEEN_LIBRARIES)
                seconds[slot.library].append(
                    slot.worker.ask("time", figure, slot.tag, slot.iterations)
                )
        for slot in winners:
            candidates = [s for s in slots if s.library == slot.library]
            if len(candidates) > 1:
                selection = "fastest probe"
            else:
                selection = "default (no search)" if not search else "only candidate"
            entry: dict[str, Any] = {
                "config": slot.tag,
                "settings": slot.settings,
                "process": slot.worker.variant,
                "selection": selection,
                "calls_per_repeat": slot.iterations,
                "repeat_seconds": seconds[slot.library],
                "candidates": {s.tag: s.describe() for s in candidates},
            }
            if figure == "train":
                entry["flops_per_step"] = executed_train_flops(
                    workload, slot.library, slot.settings
                )
            results[slot.library][figure] = entry
    return results


def summarize(workload: Workload, figure: str, raw: dict[str, Any]) -> dict[str, Any]:
    """Add the medians and derived figures to the raw timings of one library and figure.

    Training's GFLOP/s counts the products the timed configuration executes
    (``raw["flops_per_step"]``; the model's whole count when absent).
    """
    per_call = statistics.median(raw["repeat_seconds"]) / raw["calls_per_repeat"]
    out = dict(raw, median_seconds_per_call=per_call)
    if figure == "train":
        per_step = per_call / workload.steps_per_call
        out["median_seconds_per_step"] = per_step
        out["samples_per_second"] = workload.batch / per_step
        out["gflops"] = raw.get("flops_per_step", workload.train_flops()) / per_step / 1e9
    elif figure == "infer":
        out["samples_per_second"] = INFER_BATCH / per_call
    else:
        out["milliseconds"] = per_call * 1e3
    return out


# -- memory -------------------------------------------------------------------


def memory_child(
    library: str,
    workload_name: str,
    threads: int,
    seed: int,
    calls: int,
    config: str | None = None,
    variant: dict[str, Any] | None = None,
) -> int:
    """Run a short training run and print its peak RSS as one JSON line.

    The process imports only `library`, builds the model of the training
    candidate `config` (the library's default when None; its first training
    call, initialisation and compilation, is untimed) and runs `calls` more
    training calls of k steps each; `variant` holds the worker-process settings
    the candidate ran with. Nothing is subtracted: the figure is the whole
    process's peak resident set size, interpreter and imports included.
    """
    rss_start = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    workload = WORKLOADS[workload_name]
    candidates = BUILDERS[library](
        workload, make_data(workload, seed), threads, seed, variant or {}
    )["train"]
    chosen = next((c for c in candidates if c.tag == config), candidates[0])
    if chosen.prepare is not None:
        chosen.prepare()
    run = chosen.build()
    for _ in range(calls):
        run()
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    print(
        json.dumps(
            {
                "peak_rss_mb": peak_kib * 1024 / 1e6,
                "rss_before_import_mb": rss_start * 1024 / 1e6,
                "training_calls": calls + 1,
                "config": chosen.tag,
            }
        )
    )
    return 0


def child_command(*arguments: str) -> list[str]:
    """Return the command that runs this script again, in a fresh process, with `arguments`."""
    return [sys.executable, str(Path(__file__).resolve()), *arguments]


def measure_memory(
    library: str,
    workload: Workload,
    threads: int,
    seed: int,
    calls: int,
    config: str | None = None,
    variant: dict[str, Any] | None = None,
) -> dict[str, Any] | None:
    """Run `memory_child` in a fresh process and return its report (None if it failed).

    `config` and `variant`: the training candidate and its worker's settings
    (what the timings kept), the library's default when None.
    """
    extra = [] if config is None else ["--memory-config", config]
    if variant:
        extra += ["--memory-variant", json.dumps(variant)]
    command = child_command(
        "--memory-child",
        library,
        workload.name,
        "--threads",
        str(threads),
        "--seed",
        str(seed),
        "--memory-calls",
        str(calls),
        "--omp-wait-policy",
        "default",  # the parent already set the environment this process inherits
        "--peer-denormals",
        os.environ.get(DENORMALS_VARIABLE, "flush"),
        *extra,
    )
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        print(f"  {library}: memory run failed\n{done.stderr[-2000:]}", file=sys.stderr)
        return None
    return json.loads(done.stdout.strip().splitlines()[-1])


# -- the machine --------------------------------------------------------------


def measure_sgemm(threads: int, repeats: int, size: int = 1024) -> dict[str, Any]:
    """Measure NumPy's float32 matrix-product throughput with `threads` BLAS threads.

    Parameters
    ----------
    threads : int
        BLAS threads (set with threadpoolctl when it is installed).
    repeats : int
        Timed repeats; each times several products, the median is reported.
    size : int, default=1024
        Side of the square matrices.

    Returns
    -------
    dict
        GFLOP/s of the median repeat, the raw seconds per product and whether
        the thread count could be set.
    """
    rng = np.random.default_rng(0)
    a = rng.standard_normal((size, size), dtype=np.float32)
    b = rng.standard_normal((size, size), dtype=np.float32)
    out = np.empty_like(a)
    try:
        from threadpoolctl import threadpool_limits

        limiter: Any = threadpool_limits(limits=threads, user_api="blas")
        limited = True
    except ImportError:  # the OPENBLAS_NUM_THREADS set before NumPy loaded still applies
        limiter, limited = None, False
    try:
        for _ in range(3):
            np.matmul(a, b, out=out)
        per_product = []
        products = 5
        for _ in range(repeats):
            start = time.perf_counter()
            for _ in range(products):
                np.matmul(a, b, out=out)
            per_product.append((time.perf_counter() - start) / products)
    finally:
        if limiter is not None:
            limiter.unregister()
    flops = 2 * size**3
    return {
        "size": size,
        "threads": threads,
        "threads_set_with_threadpoolctl": limited,
        "kernel": numpy_blas_kernel(),
        "coretype": os.environ.get(CORETYPE_VARIABLE),
        "seconds_per_product": per_product,
        "gflops": flops / statistics.median(per_product) / 1e9,
    }


def numpy_blas_kernel() -> str | None:
    """Return the kernel of NumPy's BLAS (e.g. "OpenBLAS Haswell"), if threadpoolctl says."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return None
    for info in threadpool_info():
        if info.get("user_api") == "blas" and info.get("architecture"):
            api = info.get("internal_api", "BLAS").replace("openblas", "OpenBLAS")
            return f"{api} {info['architecture']}"
    return None


def measure_sgemm_kernels(threads: int, repeats: int) -> list[dict[str, Any]]:
    """Measure sgemm as NumPy runs it here and, when OPENBLAS_CORETYPE forces
    OpenBLAS's kernel, also with the kernel OpenBLAS would choose itself.

    The second runs in a fresh process without the variable (OpenBLAS reads
    it once, when it loads). A machine's environment may force an older
    kernel than its CPU supports (on the development machine, AVX2's Haswell
    kernel on an AVX-512 CPU, at about half the throughput); the suite's
    %sgemm is then a share of the faster of the two.
    """
    runs = [measure_sgemm(threads, repeats)]
    if os.environ.get(CORETYPE_VARIABLE):
        env = {k: v for k, v in os.environ.items() if k != CORETYPE_VARIABLE}
        arguments = ("--threads", str(threads), "--repeats", str(repeats))
        command = child_command("--sgemm-child", *arguments)
        done = subprocess.run(command, capture_output=True, text=True, check=False, env=env)
        if done.returncode == 0:
            runs.append(json.loads(done.stdout.strip().splitlines()[-1]))
        else:
            failure = done.stderr[-2000:]
            print(f"sgemm without {CORETYPE_VARIABLE} failed\n{failure}", file=sys.stderr)
    return runs


def sgemm_reference(runs: list[dict[str, Any]]) -> tuple[str | None, float]:
    """Return the kernel of the faster setting in `runs` and its GFLOP/s.

    Runs are grouped by their OPENBLAS_CORETYPE (as configured, or unset); a
    group's figure is its median product time over all its runs (before and
    after the timings).
    """
    best: tuple[str | None, float] = (None, 0.0)
    for coretype in dict.fromkeys(run["coretype"] for run in runs):
        group = [run for run in runs if run["coretype"] == coretype]
        seconds = [t for run in group for t in run["seconds_per_product"]]
        gflops = 2 * group[0]["size"] ** 3 / statistics.median(seconds) / 1e9
        if gflops > best[1]:
            best = (group[0]["kernel"], gflops)
    return best


def machine_info(libraries: list[str]) -> dict[str, Any]:
    """Return what the numbers depend on: library builds, CPU, load."""
    info: dict[str, Any] = {
        "cpu_count": os.cpu_count(),
        "available_cpus": available_cpus(),
        "processor": platform.processor(),
        "python": sys.version.split()[0],
        "numpy": np.__version__,
        "versions": {lib: library_version(lib) for lib in libraries},
    }
    if "lstmlearn" in libraries:
        import lstmlearn

        info["lstmlearn"] = lstmlearn.config()
    try:
        from threadpoolctl import threadpool_info

        info["numpy_blas"] = [
            {k: p.get(k) for k in ("internal_api", "version", "architecture", "num_threads")}
            for p in threadpool_info()
            if p.get("user_api") == "blas"
        ]
    except ImportError:
        pass
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            models = [line.split(":", 1)[1].strip() for line in f if line.startswith("model name")]
        if models:
            info["processor"] = models[0]
    except OSError:  # not Linux
        pass
    return info


def complete_timing_arguments(
    parser: argparse.ArgumentParser,
    args: argparse.Namespace,
    repeats: tuple[int, int],
    warmup: tuple[int, int],
    repeat_seconds: tuple[float, float],
) -> None:
    """Fill in and check the options every timing script shares.

    `repeats`, `warmup` and `repeat_seconds` are (full run, ``--quick``)
    defaults of ``--repeats``, ``--warmup`` and the length of one timed repeat
    (``args.target_repeat_seconds``); ``--threads`` must be at least 1.
    """
    quick = 1 if args.quick else 0
    if args.threads < 1:
        parser.error("--threads must be at least 1")
    if args.repeats is None:
        args.repeats = repeats[quick]
    if args.warmup is None:
        args.warmup = warmup[quick]
    if args.repeats < 1 or args.warmup < 0:
        parser.error("--repeats must be at least 1 and --warmup at least 0")
    args.target_repeat_seconds = repeat_seconds[quick]


def run_stamp() -> dict[str, Any]:
    """Return when and where a benchmark ran: UTC date, machine, processor,
    Python and the CPUs this process may use (for each script's JSON)."""
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": platform.machine(),
        "processor": platform.processor(),
        "python": sys.version.split()[0],
        "cpus": available_cpus(),
    }


def load_average() -> list[float] | None:
    """Return the 1, 5 and 15 minute load averages, or None where there are none."""
    return list(os.getloadavg()) if hasattr(os, "getloadavg") else None


# -- the table ----------------------------------------------------------------

ROWS = (
    ("train", "train samples/s", "samples_per_second", "higher"),
    ("train", "train GFLOP/s (%sgemm)", "gflops", None),
    ("infer", "infer samples/s B256", "samples_per_second", "higher"),
    ("latency", "latency ms B1", "milliseconds", "lower"),
    ("memory", "peak RSS MB train", "peak_rss_mb", "lower"),
)


def figure_value(entry: dict[str, Any], library: str, figure: str, key: str) -> float | None:
    """Return one number of the results of a workload, or None if it was not measured."""
    value = entry.get("libraries", {}).get(library, {}).get(figure)
    return None if value is None else value.get(key)


def figure_config(entry: dict[str, Any], library: str, figure: str) -> str | None:
    """Return the tag of the configuration a library ran a figure in, or None."""
    value = entry.get("libraries", {}).get(library, {}).get(figure)
    return None if value is None else value.get("config")


def format_cell(value: float | None, key: str, sgemm_gflops: float) -> str:
    """Format a table cell; "-" when the library did not measure it."""
    if value is None:
        return "-"
    if key == "gflops":
        return f"{value:.1f} ({100 * value / sgemm_gflops:.0f}%)"
    if key == "milliseconds":
        return f"{value:.3g}" if value < 10 else f"{value:,.1f}"
    if key == "peak_rss_mb":
        return f"{value:,.0f}"
    return f"{value:,.0f}" if value >= 100 else f"{value:.3g}"


def table_lines(
    results: list[dict[str, Any]], libraries: list[str], sgemm: float, kernel: str | None = None
) -> list[str]:
    """Return the printed table: every figure, the best peer and lstmlearn's ratio to it."""
    width = 16
    # The kernel matters: OPENBLAS_CORETYPE can hold OpenBLAS to an older CPU's.
    of = f"NumPy's sgemm ({kernel} kernel)" if kernel else "NumPy's sgemm"
    lines = [
        "ratio = lstmlearn / best peer on the row. samples/s: higher is better, ratio > 1 means "
        "lstmlearn is faster;",
        "latency ms and peak RSS MB: lower is better, ratio < 1 means lstmlearn is faster or "
        f"smaller. %sgemm: of {of}, {sgemm:.1f} GFLOP/s here.",
        "GFLOP/s counts the matrix products each library executes in the configuration timed "
        "(lstmlearn and most peers skip the first layer's input gradient; lstmlearn looks "
        "chargen's one-hot inputs up).",
        "config: the configuration each library ran in; where it had several, the fastest in a "
        "short interleaved probe (every candidate's probe is in the JSON file).",
        "",
    ]
    header = f"{'workload':<9} {'figure':<23}" + "".join(f" {lib:>{width}}" for lib in libraries)
    header += f" {'best peer':>12} {'ratio':>6}"
    lines += [header, "-" * len(header)]
    peers = [lib for lib in libraries if lib != "lstmlearn"]
    for entry in results:
        for figure, label, key, better in ROWS:
            values = {lib: figure_value(entry, lib, figure, key) for lib in libraries}
            if all(v is None for v in values.values()):
                continue
            line = f"{entry['workload']:<9} {label:<23}"
            line += "".join(
                f" {format_cell(values[lib], key, sgemm):>{width}}" for lib in libraries
            )
            measured = {lib: values[lib] for lib in peers if values[lib] is not None}
            ours = values.get("lstmlearn")
            best, ratio = "-", "-"
            if better is not None and measured:
                pick = max if better == "higher" else min
                best = pick(measured, key=lambda lib: measured[lib])
                if ours is not None:
                    ratio = f"{ours / measured[best]:.2f}"
            lines.append(line + f" {best:>12} {ratio:>6}")
            if key != "gflops" and figure in FIGURES:
                tags = {lib: figure_config(entry, lib, figure) for lib in libraries}
                if any(tags.values()):
                    config = f"{'':<9} {'  config':<23}"
                    config += "".join(f" {tags[lib] or '-':>{width}}" for lib in libraries)
                    lines.append(config.rstrip())
        lines.append("")
    return lines


# -- command line -------------------------------------------------------------


def split_names(text: str, known: tuple[str, ...] | list[str], what: str) -> list[str]:
    """Split a comma-separated list and check every name is known."""
    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in known]
    if unknown:
        raise argparse.ArgumentTypeError(
            f"unknown {what}(s) {', '.join(unknown)}; choose from {', '.join(known)}"
        )
    return names


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Parse the command line."""
    parser = argparse.ArgumentParser(
        description="Time lstmlearn against PyTorch, Keras 3 and ONNX Runtime on the design "
        "workloads: training and inference throughput, latency and peak memory.",
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=available_cpus(),
        help="compute threads of every library (default: CPUs available, %(default)s here)",
    )
    parser.add_argument(
        "--workloads",
        default=",".join(WORKLOADS),
        help="comma-separated workloads (default: %(default)s)",
    )
    parser.add_argument(
        "--libraries",
        default=",".join(LIBRARIES),
        help="comma-separated libraries, each run only if installed (default: %(default)s)",
    )
    parser.add_argument(
        "--repeats", type=int, help="timed repeats per figure (default: 7, or 2 with --quick)"
    )
    parser.add_argument(
        "--warmup", type=int, help="untimed calls first (default: 2, or 1 with --quick)"
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="few, short repeats: a smoke run of a minute or two, not a measurement",
    )
    parser.add_argument(
        "--probe-repeats",
        type=int,
        help="probe repeats of every candidate configuration, interleaved, before the fastest "
        f"is timed (default: {PROBE_REPEATS}, or 1 with --quick)",
    )
    parser.add_argument(
        "--no-search",
        action="store_true",
        help="no probe: time each library in its default configuration only (PyTorch's "
        "for-loop Adam and oneDNN LSTM, Keras's graph with one inter-op thread, N threads)",
    )
    parser.add_argument(
        "--omp-wait-policy",
        choices=("default", "passive", "active"),
        default="default",
        help="OMP_WAIT_POLICY of the workers: 'default' leaves it unset (PyTorch as shipped); "
        "'passive' keeps OpenMP threads from spinning on a heavily loaded machine, at the cost "
        "of a wake-up per parallel region (default: %(default)s)",
    )
    parser.add_argument(
        "--peer-denormals",
        choices=("flush", "keep"),
        default="flush",
        help="whether PyTorch and ONNX Runtime flush denormal floats to zero, as lstmlearn and "
        "TensorFlow do (default: %(default)s; 'keep' measures them as shipped)",
    )
    parser.add_argument("--no-memory", action="store_true", help="skip the peak-memory runs")
    parser.add_argument(
        "--json",
        type=Path,
        default=DEFAULT_JSON,
        help="where to write the full results (default: benchmarks/results/suite.json)",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of weights and data")
    parser.add_argument(
        "--memory-child",
        nargs=2,
        metavar=("LIBRARY", "WORKLOAD"),
        help=argparse.SUPPRESS,  # internal: one peak-memory run, in a fresh process
    )
    parser.add_argument(
        "--memory-config",
        help=argparse.SUPPRESS,  # internal: the training candidate of a --memory-child run
    )
    parser.add_argument(
        "--memory-variant",
        type=json.loads,
        help=argparse.SUPPRESS,  # internal: its worker-process settings, as JSON
    )
    parser.add_argument(
        "--sgemm-child",
        action="store_true",
        help=argparse.SUPPRESS,  # internal: measure sgemm in a fresh process, print JSON
    )
    parser.add_argument(
        "--memory-jobs",
        type=int,
        default=3,
        help="peak-memory processes run at once, after the timings (default: %(default)s)",
    )
    parser.add_argument(
        "--memory-calls",
        type=int,
        default=None,
        help="training calls of a peak-memory run after the first (default: 3, 0 with --quick)",
    )
    args = parser.parse_args(argv)
    try:
        args.workloads = split_names(args.workloads, tuple(WORKLOADS), "workload")
        args.libraries = split_names(args.libraries, LIBRARIES, "library")
    except argparse.ArgumentTypeError as error:
        parser.error(str(error))
    complete_timing_arguments(
        parser, args, repeats=(7, 2), warmup=(2, 1), repeat_seconds=(0.5, 0.05)
    )
    if args.memory_calls is None:
        args.memory_calls = 0 if args.quick else 3
    if args.probe_repeats is None:
        args.probe_repeats = 1 if args.quick else PROBE_REPEATS
    if args.memory_calls < 0 or args.memory_jobs < 1 or args.probe_repeats < 1:
        parser.error(
            "--probe-repeats and --memory-jobs must be at least 1, --memory-calls at least 0"
        )
    if args.memory_child is not None:
        library, workload = args.memory_child
        if library not in LIBRARIES or workload not in WORKLOADS:
            parser.error(f"--memory-child: unknown library or workload {library} {workload}")
    return args


def main(argv: list[str] | None = None) -> int:
    """Run the suite, print the table and write the JSON file.

    Parameters
    ----------
    argv : list of str, optional
        Command-line arguments; ``sys.argv[1:]`` when None.

    Returns
    -------
    int
        Exit status.
    """
    args = parse_args(argv)
    limit_threads_environment(args.threads, args.omp_wait_policy, args.peer_denormals)
    if args.memory_child is not None:
        library, workload = args.memory_child
        return memory_child(
            library,
            workload,
            args.threads,
            args.seed,
            args.memory_calls,
            args.memory_config,
            args.memory_variant,
        )
    if args.sgemm_child:
        print(json.dumps(measure_sgemm(args.threads, args.repeats)))
        return 0

    installed = available_libraries()
    libraries = [lib for lib in args.libraries if lib in installed]
    missing = [lib for lib in args.libraries if lib not in installed]
    if missing:
        print(f"not installed, left out: {', '.join(missing)}")
    if not libraries:
        print("none of the chosen libraries is installed")
        return 1
    load_before = load_average()
    machine = machine_info(libraries)
    versions = ", ".join(f"{lib} ({machine['versions'][lib]})" for lib in libraries)
    print(
        f"libraries: {versions}\n"
        f"{args.threads} thread(s), {args.repeats} repeat(s), warm-up {args.warmup}, "
        + ("no search" if args.no_search else f"{args.probe_repeats} probe repeat(s)")
        + (", quick" if args.quick else "")
    )
    if load_before is not None:
        print(f"load average before starting: {load_before[0]:.2f} {load_before[1]:.2f}")
    sgemm_repeats = 5 if args.quick else 21
    sgemm_runs = measure_sgemm_kernels(args.threads, sgemm_repeats)
    for run in sgemm_runs:
        kernel = run["kernel"] or "BLAS"
        print(f"NumPy sgemm 1024 ({kernel}): {run['gflops']:.1f} GFLOP/s", flush=True)

    workers = start_workers(libraries, args.threads, args.seed, search=not args.no_search)
    results = []
    started = time.perf_counter()
    try:
        for name in args.workloads:
            workload = WORKLOADS[name]
            if args.quick:  # one optimizer step per training call
                workload = dataclasses.replace(workload, steps_per_call=1)
            print(f"timing {name} ... ({time.perf_counter() - started:.0f} s)", flush=True)
            raw = time_workload(
                workers,
                workload,
                FIGURES,
                args.repeats,
                args.warmup,
                args.target_repeat_seconds,
                probe_repeats=args.probe_repeats,
                search=not args.no_search,
            )
            results.append(
                {
                    "workload": name,
                    "shape": workload.describe(),
                    # The model's whole count; each library's training entry holds
                    # what its configuration executes ("flops_per_step").
                    "train_flops_per_step": workload.train_flops(),
                    "libraries": {
                        lib: {fig: summarize(workload, fig, t) for fig, t in figures.items()}
                        for lib, figures in raw.items()
                    },
                }
            )
    finally:
        for worker in workers:
            worker.close()
    # The machine's peak again, in the same conditions as the timings, before the
    # memory runs (which need no quiet machine) load it.
    sgemm_runs += measure_sgemm_kernels(args.threads, sgemm_repeats)
    sgemm_kernel, sgemm_gflops = sgemm_reference(sgemm_runs)
    load_after = load_average()

    if not args.no_memory:
        print(f"peak memory runs ... ({time.perf_counter() - started:.0f} s)", flush=True)
        jobs = [
            (entry, lib)
            for entry in results
            for lib in libraries
            if "train" in entry["libraries"].get(lib, {})
        ]
        # A peak RSS does not depend on the load, so the runs may overlap.
        with ThreadPoolExecutor(max_workers=args.memory_jobs) as pool:
            reports = pool.map(
                lambda job: measure_memory(
                    job[1],
                    WORKLOADS[job[0]["workload"]],
                    args.threads,
                    args.seed,
                    args.memory_calls,
                    job[0]["libraries"][job[1]]["train"]["config"],
                    job[0]["libraries"][job[1]]["train"]["process"],
                ),
                jobs,
            )
            for (entry, lib), report in zip(jobs, reports, strict=True):
                entry["libraries"][lib]["memory"] = report
    print(f"done ({time.perf_counter() - started:.0f} s)")

    lines = table_lines(results, libraries, sgemm_gflops, sgemm_kernel)
    print()
    print("\n".join(lines).rstrip())
    if load_after is not None:
        print(f"\nload average at the end: {load_after[0]:.2f} {load_after[1]:.2f}")

    args.json.parent.mkdir(parents=True, exist_ok=True)
    report = {
        "benchmark": "suite",
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": machine,
        "load_average_before": load_before,
        "load_average_after": load_after,
        "sgemm": {
            "runs": sgemm_runs,
            "kernel": sgemm_kernel,
            "gflops_median_of_runs": sgemm_gflops,
        },
        "arguments": {
            key: (str(value) if isinstance(value, Path) else value)
            for key, value in vars(args).items()
        },
        "results": results,
        "table": lines,
    }
    args.json.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
