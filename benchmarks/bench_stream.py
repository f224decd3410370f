"""Latency of one step of streaming inference (``model.stream()``).

Two workloads, one stream each:

- tiny: F 1, H 32, one layer, one output. Target: below 10 us a step.
- medium: F 32, H 128, one layer, 10 outputs. Target: below ONNX Runtime's
  latency for the whole sequence (one sample, T = 100) divided by T. The
  model is our own, exported with ``model.to_onnx()`` (the standard ONNX
  ``LSTM`` operator), run with 1 and 2 intra-op threads; the faster counts.

A step is timed as a loop of ``--steps`` calls of ``stream.step(x_t)``
(the public call: input checks, the engine's step, the output as float64;
all in C++ for a model whose outputs keep their last axis, as medium's);
the raw binding's call (``stream._step(x, n_threads)``, no Python checks)
is timed too. Each
figure is the median over ``--repeats`` loops (ONNX Runtime: the median of
``--repeats`` x 20 calls). Results go to JSON and a table is printed.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

import lstmlearn
from lstmlearn import LSTMRegressor

DEFAULT_JSON = Path(__file__).resolve().parent / "results" / "stream.json"
WORKLOADS = {"tiny": (1, 32, 1), "medium": (32, 128, 10)}  # F, H, outputs
T = 100


def fitted(F: int, H: int, n_out: int, n_jobs: int) -> LSTMRegressor:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(64, T, F)).astype(np.float32)
    y = rng.normal(size=(64, n_out)).astype(np.float32)
    model = LSTMRegressor(H, max_iter=1, random_state=0, n_jobs=n_jobs)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return model.fit(X, y if n_out > 1 else y[:, 0])


def time_loop(call, xs, repeats: int) -> float:
    """Median over repeats of the seconds per call of a loop over xs."""
    per_call = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for x in xs:
            call(x)
        per_call.append((time.perf_counter() - t0) / len(xs))
    return statistics.median(per_call)


def time_stream(model, steps: int, repeats: int) -> dict:
    F = model.n_features_in_
    xs = list(np.random.default_rng(1).normal(size=(steps, 1, F)).astype(np.float32))
    stream = model.stream()
    for x in xs[:200]:  # warm-up: packs the weights, wakes the threads
        stream.step(x)
    public = time_loop(stream.step, xs, repeats)
    engine = time_loop(lambda x: stream._step(x, stream._n_threads), xs, repeats)
    return {"step_us": public * 1e6, "engine_step_us": engine * 1e6}


def time_onnx(model, repeats: int) -> dict:
    import onnxruntime as ort

    F = model.n_features_in_
    x = np.random.default_rng(2).normal(size=(1, T, F)).astype(np.float32)
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.onnx"
        model.to_onnx(path)
        for threads in (1, 2):
            options = ort.SessionOptions()
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
            options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
            session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
            name = session.get_inputs()[0].name
            got = session.run(None, {name: x})[0]
            expected = model.predict(x)
            if np.max(np.abs(np.ravel(got) - np.ravel(expected))) > 1e-4:
                raise RuntimeError("ONNX Runtime's output differs from predict's")
            for _ in range(20):
                session.run(None, {name: x})
            samples = []
            for _ in range(repeats):
                t0 = time.perf_counter()
                for _ in range(20):
                    session.run(None, {name: x})
                samples.append((time.perf_counter() - t0) / 20)
            out[f"onnxruntime_{threads}_threads_us"] = statistics.median(samples) * 1e6
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=5000, help="calls per timed loop")
    parser.add_argument("--repeats", type=int, default=7, help="timed loops (median)")
    parser.add_argument("--json", type=Path, default=DEFAULT_JSON)
    args = parser.parse_args(argv)

    cpus = len(os.sched_getaffinity(0))
    rows = []
    for name, (F, H, n_out) in WORKLOADS.items():
        for n_jobs in (1, cpus):
            model = fitted(F, H, n_out, n_jobs)
            row = {"workload": name, "F": F, "H": H, "outputs": n_out, "n_jobs": n_jobs}
            row.update(time_stream(model, args.steps, args.repeats))
            if name == "medium" and n_jobs == 1:
                row.update(time_onnx(model, args.repeats))
                best = min(row["onnxruntime_1_threads_us"], row["onnxruntime_2_threads_us"])
                row["onnxruntime_per_step_us"] = best / T
            rows.append(row)
            print(f"done: {row}", file=sys.stderr)
    onnx_step = next(r["onnxruntime_per_step_us"] for r in rows if "onnxruntime_per_step_us" in r)

    print()
    print("| workload | n_jobs | stream.step (us) | engine step (us) | target (us) |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for r in rows:
        target = "10" if r["workload"] == "tiny" else f"{onnx_step:.2f} (ORT / T)"
        print(
            f"| {r['workload']} | {r['n_jobs']} | {r['step_us']:.2f} | "
            f"{r['engine_step_us']:.2f} | {target} |"
        )
    r = next(r for r in rows if "onnxruntime_per_step_us" in r)
    print(
        f"\nONNX Runtime, medium, one sample of T = {T}: "
        f"{r['onnxruntime_1_threads_us']:.1f} us (1 thread), "
        f"{r['onnxruntime_2_threads_us']:.1f} us (2 threads)"
    )
    meta = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": platform.machine(),
        "processor": platform.processor(),
        "python": sys.version.split()[0],
        "cpus": cpus,
        "isa": lstmlearn.config()["isa"],
        "steps_per_loop": args.steps,
        "repeats": args.repeats,
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({"meta": meta, "rows": rows}, indent=1) + "\n")
    print(f"\nresults: {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
