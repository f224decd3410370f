"""Reduced-precision inference: lstmlearn float32 / bfloat16 / int8 against quantized peers.

The workload is the suite's ``large`` shape: T 100, F 64, H 512, one LSTM
layer, a dense head on the last step. Two figures per variant:

- **infer**: samples per second of one ``predict`` call on a batch of 256;
- **latency**: milliseconds of one call on one sample (the whole call from
  Python, NumPy in, NumPy out).

Variants:

- lstmlearn ``set_inference_precision('float32' | 'bfloat16' | 'int8')``;
- PyTorch ``nn.LSTM`` + ``nn.Linear`` holding the same weights
  (``model.to_torch()``): float32, ``torch.ao.quantization.quantize_dynamic``
  (qint8 LSTM and Linear) and bfloat16 autocast;
- ONNX Runtime on the model's own export (``model.to_onnx()``, the standard
  ``LSTM`` operator) in float32, and the same model through
  ``onnxruntime.quantization.quantize_dynamic`` (int8 weights).

Every variant runs with 1 and with 2 threads (``n_jobs``,
``torch.set_num_threads``, ``intra_op_num_threads``), each library and
thread count in a worker process of its own, in ``--rounds`` rounds (3; 1
with ``--quick``) that run every worker once, the order reversed from one
round to the next, so that a burst of load on a shared machine hits every
library rather than one. A worker times ``--repeats`` batch calls (3) and
``--latency-calls`` one-sample calls (15) of each variant, fewer once 3 s
are spent on a figure (a slow variant does not stretch the run), and
lstmlearn's streaming step (5 loops of T steps of ``model.stream()``). The
figures are medians of the calls of all rounds; the table shows the better
thread count for each figure.

PyTorch's bfloat16 autocast sends ``nn.LSTM`` to oneDNN's bfloat16 RNN,
which needs AVX512_BF16 or AMX; where that fails the model is cast to
bfloat16 instead (weights and activations) and the table says so.

Accuracy: the largest error of each variant's outputs on the 256 inference
samples, relative to the largest magnitude of lstmlearn's float32 outputs;
and the share of labels that agree with lstmlearn's float32 labels for a
classifier of the same shape (10 classes) trained for a few epochs on a
learnable synthetic task, on up to 1,024 held-out samples (512 with
``--quick``; fewer for a variant too slow to run them in about 20 s).

The regressor's weights are those of the suite: one ``partial_fit`` epoch on
standard-normal data from the default initialisation. ``--quick`` runs one
round, a smaller held-out set and a shorter classifier training (about 2
minutes on 2 cores); a full run takes about 5.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
from bench_suite import run_stamp  # a sibling script, not an installed module

DEFAULT_JSON = Path(__file__).resolve().parent / "results" / "precision.json"
T, F, H, CLASSES = 100, 64, 512, 10
INFER_BATCH = 256
NOTES: dict[str, str] = {}  # how a variant ran when not as described above
STREAMS: dict[str, object] = {}  # lstmlearn's models, whose streaming step is timed too
VARIANTS = {
    "lstmlearn": ("float32", "bfloat16", "int8"),
    "pytorch": ("float32", "bfloat16", "int8"),
    "onnxruntime": ("float32", "int8"),
}


# -- models and data (parent) ---------------------------------------------------------


def make_regressor(seed: int):
    from lstmlearn import LSTMRegressor

    rng = np.random.default_rng(seed)
    x = rng.standard_normal((128, T, F), dtype=np.float32)
    y = rng.standard_normal(128).astype(np.float32)
    model = LSTMRegressor(
        (H,), batch_size=128, max_iter=1, shuffle=False, random_state=seed, n_jobs=2
    )
    return model.partial_fit(x, y)


def classification_data(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Class c: a weak pattern along direction v_c at a class frequency, in noise."""
    rng = np.random.default_rng(1234)  # the same classes for every split
    directions = rng.standard_normal((CLASSES, F)).astype(np.float32) / np.sqrt(F)
    freqs = rng.uniform(1.0, 6.0, CLASSES)
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, CLASSES, n)
    t = np.arange(T) / T
    phase = rng.uniform(0, 2 * np.pi, n)
    wave = 1.0 + np.sin(2 * np.pi * freqs[labels][:, None] * t[None, :] + phase[:, None])
    x = rng.standard_normal((n, T, F)).astype(np.float32)
    x += (wave[:, :, None] * directions[labels][:, None, :] * 2.0).astype(np.float32)
    return x, labels


def make_classifier(seed: int, epochs: int):
    from lstmlearn import LSTMClassifier

    x, y = classification_data(512, seed)
    model = LSTMClassifier(
        (H,), batch_size=32, max_iter=epochs, random_state=seed, n_jobs=2, learning_rate=1e-3
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # few epochs: the convergence warning
        return model.fit(x, y)


# -- workers ----------------------------------------------------------------------------


def _seconds(call, x, n: int, budget: float) -> list[float]:
    """Seconds of up to n calls, fewer once `budget` seconds are spent (one at least)."""
    times: list[float] = []
    start = time.perf_counter()
    while len(times) < n and (not times or time.perf_counter() - start < budget):
        t0 = time.perf_counter()
        call(x)
        times.append(time.perf_counter() - t0)
    return times


def _time(call, x_infer, x_one, args) -> dict:
    call(x_infer)  # warm-up: packs, allocates, wakes threads
    for _ in range(3):
        call(x_one)
    return {
        "batch": _seconds(call, x_infer, args.repeats, args.budget),
        "latency": _seconds(call, x_one, args.latency_calls, args.budget / 2),
    }


def _stream_steps(model, x_one: np.ndarray) -> list[float]:
    """Seconds per streaming step (one stream), of a few loops of T steps."""
    stream = model.stream()
    steps = [np.ascontiguousarray(x_one[0, t]) for t in range(T)]
    for x in steps:  # packs the weights, wakes the threads
        stream.step(x)
    loops = []
    for _ in range(5):
        t0 = time.perf_counter()
        for x in steps:
            stream.step(x)
        loops.append((time.perf_counter() - t0) / T)
    return loops


def _lstmlearn_calls(folder: Path, threads: int) -> dict:
    import lstmlearn

    calls = {}
    for variant in VARIANTS["lstmlearn"]:
        reg = lstmlearn.load(folder / "regressor.safetensors")
        cls = lstmlearn.load(folder / "classifier.safetensors")
        for m in (reg, cls):
            m.set_inference_precision(variant)
            m.n_jobs = threads
        calls[variant] = (reg.predict, cls.predict_proba)
        STREAMS[variant] = reg
    return calls


def _torch_calls(folder: Path, threads: int) -> dict:
    import torch

    import lstmlearn

    torch.set_num_threads(threads)
    modules = {
        name: lstmlearn.load(folder / f"{name}.safetensors").to_torch().eval()
        for name in ("regressor", "classifier")
    }

    def runner(module, autocast: bool):
        def run(x: np.ndarray) -> np.ndarray:
            with torch.inference_mode():
                if autocast:
                    with torch.autocast("cpu", dtype=torch.bfloat16):
                        return module(torch.from_numpy(x)).float().numpy()
                return module(torch.from_numpy(x)).numpy()

        return run

    def bf16_runner(module):
        # The whole model in bfloat16: weights, activations and arithmetic.
        module = copy.deepcopy(module).to(torch.bfloat16)

        def run(x: np.ndarray) -> np.ndarray:
            with torch.inference_mode():
                return module(torch.from_numpy(x).to(torch.bfloat16)).float().numpy()

        return run

    quantized = {
        name: torch.ao.quantization.quantize_dynamic(
            m, {torch.nn.LSTM, torch.nn.Linear}, dtype=torch.qint8
        )
        for name, m in modules.items()
    }
    bf16 = tuple(runner(modules[n], True) for n in ("regressor", "classifier"))
    try:
        bf16[0](np.zeros((1, T, F), dtype=np.float32))
    except RuntimeError as error:
        # Autocast sends nn.LSTM to oneDNN's bfloat16 RNN, which CPUs without
        # AVX512_BF16 or AMX lack.
        NOTES["pytorch/bfloat16"] = (
            f"autocast failed ({str(error).splitlines()[0][:80]}); the model cast to bfloat16"
        )
        bf16 = tuple(bf16_runner(modules[n]) for n in ("regressor", "classifier"))
    return {
        "float32": tuple(runner(modules[n], False) for n in ("regressor", "classifier")),
        "bfloat16": bf16,
        "int8": tuple(runner(quantized[n], False) for n in ("regressor", "classifier")),
    }


def _onnx_calls(folder: Path, threads: int) -> dict:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL

    def runner(path: Path):
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        name = session.get_inputs()[0].name
        # A classifier's export gives (label, probabilities): take the latter.
        outputs = [o.name for o in session.get_outputs()]
        wanted = ["probabilities" if "probabilities" in outputs else outputs[0]]
        return lambda x: session.run(wanted, {name: x})[0]

    return {
        variant: tuple(
            runner(folder / f"{name}{suffix}.onnx") for name in ("regressor", "classifier")
        )
        for variant, suffix in (("float32", ""), ("int8", ".int8"))
    }


def worker(args) -> int:
    folder = Path(args.folder)
    data = np.load(folder / "data.npz")
    x_infer, x_one, x_held = data["x_infer"], data["x_one"], data["x_held"]
    build = {"lstmlearn": _lstmlearn_calls, "pytorch": _torch_calls, "onnxruntime": _onnx_calls}
    calls = build[args.worker](folder, int(args.threads))
    result = {}
    for variant, (regress, classify) in calls.items():
        result[variant] = timing = _time(regress, x_infer, x_one, args)
        if variant in STREAMS:
            timing["stream"] = _stream_steps(STREAMS[variant], x_one)
        if args.outputs:
            np.save(folder / f"out-{args.worker}-{variant}.npy", np.asarray(regress(x_infer)))
            # As many held-out batches as about 20 s allow (a slow variant gets fewer).
            batches = max(1, int(20.0 / statistics.median(timing["batch"])))
            held = x_held[: batches * INFER_BATCH]
            proba = np.concatenate(
                [np.asarray(classify(held[i : i + 256])) for i in range(0, len(held), 256)]
            )
            np.save(folder / f"labels-{args.worker}-{variant}.npy", proba.argmax(axis=-1))
        medians = {k: f"{1e3 * statistics.median(v):.2f} ms" for k, v in timing.items()}
        print(f"  {args.worker}, {args.threads} thread(s), {variant}: {medians}", file=sys.stderr)
    Path(args.result).write_text(json.dumps({"timings": result, "notes": NOTES}))
    return 0


# -- parent -----------------------------------------------------------------------------


def prepare(folder: Path, args) -> dict:
    """Models, their exports and the data, written to `folder`; returns what it measured."""
    t0 = time.perf_counter()
    reg = make_regressor(args.seed)
    cls = make_classifier(args.seed, args.epochs)
    x_test, y_test = classification_data(args.held_out, args.seed + 1)
    info = {
        "classifier_epochs": int(cls.n_iter_),
        "classifier_accuracy": float(np.mean(cls.predict(x_test) == y_test)),
        "prepare_seconds": None,
    }
    reg.save(folder / "regressor.safetensors")
    cls.save(folder / "classifier.safetensors")
    rng = np.random.default_rng(args.seed + 2)
    x_infer = rng.standard_normal((INFER_BATCH, T, F), dtype=np.float32)
    np.savez(folder / "data.npz", x_infer=x_infer, x_one=x_infer[:1].copy(), x_held=x_test)
    from onnxruntime.quantization import QuantType, quantize_dynamic

    for name, model in (("regressor", reg), ("classifier", cls)):
        model.to_onnx(folder / f"{name}.onnx")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            quantize_dynamic(
                str(folder / f"{name}.onnx"),
                str(folder / f"{name}.int8.onnx"),
                weight_type=QuantType.QInt8,
            )
    info["prepare_seconds"] = time.perf_counter() - t0
    return info


def run_worker(name: str, threads: int, folder: Path, args, outputs: bool) -> dict:
    result = folder / f"result-{name}-{threads}.json"
    command = [
        sys.executable,
        __file__,
        "--worker",
        name,
        "--threads",
        str(threads),
        "--folder",
        str(folder),
        "--result",
        str(result),
        "--repeats",
        str(args.repeats),
        "--latency-calls",
        str(args.latency_calls),
    ]
    if args.quick:
        command.append("--quick")
    if outputs:
        command.append("--outputs")
    subprocess.run(command, check=True)
    report = json.loads(result.read_text())
    NOTES.update(report["notes"])
    return report["timings"]


def summarize(samples: dict) -> dict:
    """Medians of the pooled seconds of one variant at one thread count."""
    batch = statistics.median(samples["batch"])
    out = {
        "infer_samples_per_s": INFER_BATCH / batch,
        "batch_ms": 1e3 * batch,
        "batch_calls": len(samples["batch"]),
        "latency_ms": 1e3 * statistics.median(samples["latency"]),
        "latency_calls": len(samples["latency"]),
    }
    if "stream" in samples:
        out["stream_step_us"] = 1e6 * statistics.median(samples["stream"])
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one round, a shorter setup")
    parser.add_argument("--rounds", type=int, default=None, help="rounds of every worker")
    parser.add_argument("--repeats", type=int, default=3, help="batch-256 calls a round")
    parser.add_argument("--latency-calls", type=int, default=15, help="one-sample calls a round")
    parser.add_argument("--threads", default="1,2", help="thread counts to try, e.g. 1,2")
    parser.add_argument("--libraries", default="lstmlearn,pytorch,onnxruntime")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, default=DEFAULT_JSON)
    # Worker mode (internal).
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--folder", help=argparse.SUPPRESS)
    parser.add_argument("--result", help=argparse.SUPPRESS)
    parser.add_argument("--outputs", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.budget = 3.0  # seconds at most on one figure of one variant in a round
    if args.worker:
        return worker(args)
    args.rounds = args.rounds or (1 if args.quick else 3)
    args.epochs = 2 if args.quick else 4
    args.held_out = 512 if args.quick else 1024
    threads = [int(t) for t in args.threads.split(",")]
    libraries = [lib for lib in args.libraries.split(",") if lib]

    import lstmlearn

    started = time.perf_counter()
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        info = prepare(folder, args)
        print(f"prepared in {info['prepare_seconds']:.0f} s", file=sys.stderr)
        # Every (library, threads) worker once a round, the order reversed from
        # one round to the next, the samples pooled: a burst of load on the
        # shared machine then hits every library rather than one.
        pairs = [(lib, n) for n in threads for lib in libraries]
        pooled: dict = {}
        for k in range(args.rounds):
            for lib, n in pairs if k % 2 == 0 else pairs[::-1]:
                got = run_worker(lib, n, folder, args, outputs=k == 0 and n == threads[0])
                for variant, samples in got.items():
                    target = pooled.setdefault(lib, {}).setdefault(n, {}).setdefault(variant, {})
                    for figure, values in samples.items():
                        target.setdefault(figure, []).extend(values)
        timings = {
            lib: {n: {v: summarize(s) for v, s in per_n.items()} for n, per_n in per_lib.items()}
            for lib, per_lib in pooled.items()
        }
        reference = np.load(folder / "out-lstmlearn-float32.npy")
        ref_labels = np.load(folder / "labels-lstmlearn-float32.npy")
        scale = float(np.max(np.abs(reference)))
        rows = []
        for lib in libraries:
            for variant in VARIANTS[lib]:
                out = np.load(folder / f"out-{lib}-{variant}.npy").reshape(reference.shape)
                labels = np.load(folder / f"labels-{lib}-{variant}.npy")
                held = len(labels)
                per_threads = timings[lib]
                infer_t = max(
                    per_threads, key=lambda n: per_threads[n][variant]["infer_samples_per_s"]
                )
                lat_t = min(per_threads, key=lambda n: per_threads[n][variant]["latency_ms"])
                rows.append(
                    {
                        "library": lib,
                        "precision": variant,
                        "infer_samples_per_s": per_threads[infer_t][variant]["infer_samples_per_s"],
                        "infer_threads": infer_t,
                        "latency_ms": per_threads[lat_t][variant]["latency_ms"],
                        "latency_threads": lat_t,
                        "max_rel_error": float(np.max(np.abs(out - reference)) / scale),
                        "label_agreement": float(np.mean(labels == ref_labels[:held])),
                        "held_out_compared": held,
                        "by_threads": {str(n): per_threads[n][variant] for n in per_threads},
                        "note": NOTES.get(f"{lib}/{variant}"),
                    }
                )
                steps = {n: t[variant].get("stream_step_us") for n, t in per_threads.items()}
                if all(v is not None for v in steps.values()):
                    step_t = min(steps, key=steps.get)
                    rows[-1]["stream_step_us"] = steps[step_t]
                    rows[-1]["stream_threads"] = step_t
    load_after = os.getloadavg()

    def row(lib, variant):
        return next(r for r in rows if r["library"] == lib and r["precision"] == variant)

    print()
    print(
        "| library | precision | infer samples/s B256 (threads) | latency ms B1 (threads) "
        "| max rel. error | label agreement |"
    )
    print("| --- | --- | ---: | ---: | ---: | ---: |")
    for r in rows:
        print(
            f"| {r['library']} | {r['precision']} | {r['infer_samples_per_s']:,.0f} "
            f"({r['infer_threads']}) | {r['latency_ms']:.2f} ({r['latency_threads']}) | "
            f"{r['max_rel_error']:.1e} | {100 * r['label_agreement']:.2f}% "
            f"({r['held_out_compared']}) |"
        )
    for r in rows:
        if "stream_step_us" in r:
            print(
                f"{r['library']} {r['precision']}: one streaming step {r['stream_step_us']:.1f} us "
                f"({r['stream_threads']} thread(s))"
            )
    ratios = {}
    if "lstmlearn" in libraries:
        base = row("lstmlearn", "float32")
        for variant in ("bfloat16", "int8"):
            r = row("lstmlearn", variant)
            ratios[f"infer_{variant}_vs_float32"] = (
                r["infer_samples_per_s"] / base["infer_samples_per_s"]
            )
            ratios[f"latency_{variant}_vs_float32"] = r["latency_ms"] / base["latency_ms"]
        if "onnxruntime" in libraries:
            ort32 = row("onnxruntime", "float32")["latency_ms"]
            for variant in VARIANTS["lstmlearn"]:
                ratios[f"latency_{variant}_vs_onnxruntime_float32"] = (
                    row("lstmlearn", variant)["latency_ms"] / ort32
                )
        for variant in ("bfloat16", "int8"):
            peers = [r for r in rows if r["library"] != "lstmlearn" and r["precision"] == variant]
            for p in peers:
                ratios[f"latency_{variant}_vs_{p['library']}_{variant}"] = (
                    row("lstmlearn", variant)["latency_ms"] / p["latency_ms"]
                )
    for r in rows:
        if r["note"]:
            print(f"{r['library']} {r['precision']}: {r['note']}")
    print()
    for name, value in ratios.items():
        print(f"{name}: {value:.2f}")
    print(
        f"\nclassifier: {info['classifier_epochs']} epochs, float32 accuracy "
        f"{100 * info['classifier_accuracy']:.1f}% on {args.held_out} held-out samples"
    )
    print(f"load average before {load_before}, after {load_after}")
    elapsed = time.perf_counter() - started
    print(f"total {elapsed:.0f} s")
    meta = {
        **run_stamp(),
        "isa": lstmlearn.config()["isa"],
        "arguments": {k: v for k, v in vars(args).items() if k != "json"},
        "load_average_before": load_before,
        "load_average_after": load_after,
        "seconds": elapsed,
        **info,
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(
        json.dumps({"meta": meta, "rows": rows, "ratios": ratios}, indent=1, default=str) + "\n"
    )
    print(f"results: {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
