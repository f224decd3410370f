"""Threads and processes: oversubscription, process-level search, an idle pool.

Three measurements, each in fresh worker processes of this script:

``idle``
    The CPU time a started, idle thread pool uses while its process sleeps
    (``--idle-seconds``, 2 s by default): the pool must not spin when it has
    nothing to do.
``oversubscription``
    4 processes start the same job at the same moment, each with 2 engine
    threads (8 threads on a 2-core machine), then each with 1 (4 threads).
    Three jobs: a fit (training's jobs of tasks), and 300 one-sample
    predictions of a 3-layer stack (a pipeline of layers, synchronised at
    every step) and of one wide layer (a team splitting each step's units).
    Reports the wall time until the last one finishes and the CPU time all of
    them used: threads that spin while waiting for a descheduled partner show
    as more CPU time and a later finish.
``search``
    The same ``GridSearchCV`` two ways: ``n_jobs=2`` (two loky worker
    processes; the estimator keeps ``n_jobs=None``, which in each worker
    follows the ``OMP_NUM_THREADS`` that loky sets, cores // 2) against
    ``n_jobs=1`` over fits with ``n_jobs=2`` (two engine threads). The loky
    workers are started before the timed search (reported apart), and the
    threads each worker's engine saw are recorded. Both searches must give
    the same scores bit for bit.

Layouts alternate within each repeat, so that other load hits both; the table
shows medians. Run ``python benchmarks/bench_threads.py --help`` for the
options and see ``benchmarks/README.md``.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench_suite import OtherLoad  # a sibling script, not an installed module

DEFAULT_JSON = Path(__file__).resolve().parent / "results" / "threads.json"
GRID = {"hidden_layer_sizes": [32, 64], "learning_rate": [1e-3, 3e-3, 1e-2]}


# -- the workers (run in subprocesses) ---------------------------------------


def series(n: int, steps: int, features: int, seed: int):
    import numpy as np

    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, steps, features)).astype(np.float32)
    y = 0.3 * X[:, :, 0].sum(axis=1) + 0.1 * rng.normal(size=n)
    return X, y


def worker_idle(args: dict[str, Any]) -> dict[str, Any]:
    import numpy as np

    from lstmlearn import _engine
    from lstmlearn.nn import LSTM

    lstm = LSTM(8, 64, random_state=0, n_threads=args["threads"])
    x = np.zeros((64, 20, 8), np.float32)
    for _ in range(20):  # start the pool, and let it serve a few jobs
        lstm.forward(x)
    before = time.process_time()  # every thread of this process
    time.sleep(args["seconds"])
    return {
        "pool_threads": _engine.core.pool_size(),
        "idle_cpu_seconds": time.process_time() - before,
    }


# The jobs of the oversubscription runs: (hidden layers, timesteps, what is timed).
JOBS = {
    # training: jobs of mini-batches cut into tasks (parallel_for)
    "fit": ((64, 64), 50, "fit"),
    # one-sample predictions: a 3-stage pipeline of layers, one step at a time
    "predict-stacked": ((64, 64, 64), 200, "predict"),
    # one-sample predictions: one wide layer whose units a team splits per step
    "predict-wide": ((256,), 200, "predict"),
}


def worker_job(args: dict[str, Any]) -> dict[str, Any]:
    """One job, started when the parent writes a line to stdin."""
    import warnings

    from lstmlearn import LSTMRegressor

    hidden, steps, kind = JOBS[args["job"]]
    X, y = series(args["samples"], steps, 8, seed=0)
    model = LSTMRegressor(
        hidden_layer_sizes=hidden,
        batch_size=64,
        max_iter=args["epochs"] if kind == "fit" else 1,
        n_iter_no_change=args["epochs"] + 1,
        random_state=0,
        n_jobs=args["threads"],
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if kind == "predict":
            model.fit(X[:64], y[:64])
            one = X[:1]
            model.predict(one)
    print("ready", flush=True)
    sys.stdin.readline()
    wall, cpu = time.perf_counter(), time.process_time()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if kind == "fit":
            model.fit(X, y)
        else:
            for _ in range(args["calls"]):
                model.predict(one)
    return {
        "wall_seconds": time.perf_counter() - wall,
        "cpu_seconds": time.process_time() - cpu,
    }


def engine_facts() -> dict[str, Any]:
    """Run in a loky worker: the threads its engine uses, and why."""
    import lstmlearn

    c = lstmlearn.config()
    return {
        "pid": os.getpid(),
        "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS"),
        "threads": c["threads"],
        "rule": c["threads_rule"],
    }


def worker_search(args: dict[str, Any]) -> dict[str, Any]:
    import warnings

    import numpy as np
    from joblib import Parallel, delayed
    from sklearn.model_selection import GridSearchCV

    from lstmlearn import LSTMRegressor

    X, y = series(args["samples"], 24, 1, seed=1)
    search_jobs, fit_jobs = args["search_jobs"], args["fit_jobs"]
    out: dict[str, Any] = {}
    if search_jobs > 1:
        start = time.perf_counter()
        facts = Parallel(n_jobs=search_jobs)(delayed(engine_facts)() for _ in range(8))
        out["pool_start_seconds"] = time.perf_counter() - start
        out["workers"] = sorted({json.dumps(f, sort_keys=True) for f in facts})
    base = LSTMRegressor(
        max_iter=args["epochs"],
        n_iter_no_change=args["epochs"] + 1,
        batch_size=32,
        random_state=0,
        n_jobs=fit_jobs,
    )
    search = GridSearchCV(base, GRID, cv=3, n_jobs=search_jobs)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        start = time.perf_counter()
        search.fit(X, y)
        out["search_seconds"] = time.perf_counter() - start
    out["scores_hex"] = np.asarray(search.cv_results_["mean_test_score"]).tobytes().hex()
    out["fits"] = len(search.cv_results_["params"]) * 3
    return out


WORKERS = {"idle": worker_idle, "job": worker_job, "search": worker_search}


# -- the parent --------------------------------------------------------------


def spawn(kind: str, args: dict[str, Any], env: dict[str, str] | None = None) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, __file__, "--worker", kind, json.dumps(args)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )


def result_of(proc: subprocess.Popen) -> dict[str, Any]:
    out, _ = proc.communicate()
    if proc.returncode != 0:
        raise RuntimeError(f"a worker failed (exit {proc.returncode})")
    return json.loads(out.strip().splitlines()[-1])


def measure_idle(args: argparse.Namespace) -> list[dict[str, Any]]:
    runs = []
    for threads in (2, 4):
        for _ in range(args.repeats):
            proc = spawn("idle", {"threads": threads, "seconds": args.idle_seconds})
            runs.append({"threads": threads, **result_of(proc)})
    return runs


def measure_oversubscription(args: argparse.Namespace) -> list[dict[str, Any]]:
    runs = []
    for name in JOBS:
        for repeat in range(args.repeats):
            layouts = (2, 1) if repeat % 2 == 0 else (1, 2)
            for threads in layouts:
                job = {
                    "job": name,
                    "threads": threads,
                    "samples": args.samples,
                    "epochs": args.epochs,
                    "calls": args.calls,
                }
                procs = [spawn("job", job) for _ in range(args.processes)]
                for proc in procs:  # every process has imported and built its model
                    assert proc.stdout.readline().strip() == "ready"
                with OtherLoad(children=True) as load:
                    start = time.perf_counter()
                    for proc in procs:
                        proc.stdin.write("go\n")
                        proc.stdin.flush()
                    jobs = [result_of(proc) for proc in procs]
                    with_exit = time.perf_counter() - start
                # Each job timed itself from its "go"; the lines go out within
                # microseconds, so the last finish is the longest job.
                makespan = max(j["wall_seconds"] for j in jobs)
                runs.append(
                    {
                        "job": name,
                        "repeat": repeat,
                        "threads_per_process": threads,
                        "processes": args.processes,
                        "makespan_seconds": makespan,
                        "until_all_exited_seconds": with_exit,
                        "cpu_seconds": sum(j["cpu_seconds"] for j in jobs),
                        "job_wall_seconds": [j["wall_seconds"] for j in jobs],
                        "other_load_cores": load.cores,
                    }
                )
                print(
                    f"  {name} repeat {repeat}: {args.processes} x {threads} threads: "
                    f"{makespan:.2f} s, CPU {runs[-1]['cpu_seconds']:.2f} s",
                    flush=True,
                )
    return runs


def measure_search(args: argparse.Namespace) -> list[dict[str, Any]]:
    runs = []
    layouts = {"n_jobs=2 x 1 thread": (2, None), "n_jobs=1 x 2 threads": (1, 2)}
    names = list(layouts)
    for repeat in range(args.repeats):
        order = names if repeat % 2 == 0 else names[::-1]
        for name in order:
            search_jobs, fit_jobs = layouts[name]
            job = {
                "search_jobs": search_jobs,
                "fit_jobs": fit_jobs,
                "samples": args.search_samples,
                "epochs": args.search_epochs,
            }
            env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS",)}
            with OtherLoad(children=True) as load:
                result = result_of(spawn("search", job, env))
            runs.append(
                {"repeat": repeat, "layout": name, **result, "other_load_cores": load.cores}
            )
            print(f"  search repeat {repeat}: {name}: {result['search_seconds']:.2f} s", flush=True)
    return runs


def median_of(runs: list[dict[str, Any]], key: str, **match: Any) -> float:
    return statistics.median(r[key] for r in runs if all(r[k] == v for k, v in match.items()))


def summarize(results: dict[str, Any]) -> dict[str, Any]:
    idle = results["idle"]
    over = results["oversubscription"]
    search = results["search"]
    two = median_of(search, "search_seconds", layout="n_jobs=2 x 1 thread")
    one = median_of(search, "search_seconds", layout="n_jobs=1 x 2 threads")
    for r in search:  # a first search also waits for the loky workers to start
        r["search_with_pool_start_seconds"] = r["search_seconds"] + r.get("pool_start_seconds", 0)
    two_cold = median_of(search, "search_with_pool_start_seconds", layout="n_jobs=2 x 1 thread")
    workers = sorted({w for r in search for w in r.get("workers", [])})
    return {
        "idle_cpu_ms": {
            str(t): 1000 * median_of(idle, "idle_cpu_seconds", threads=t) for t in (2, 4)
        },
        "oversubscription": {
            job: {
                f"{over[0]['processes']}x{t}": {
                    "last_finish_s": median_of(
                        over, "makespan_seconds", job=job, threads_per_process=t
                    ),
                    "cpu_s": median_of(over, "cpu_seconds", job=job, threads_per_process=t),
                }
                for t in (2, 1)
            }
            for job in JOBS
        },
        "search_s": {"n_jobs=2 x 1 thread": two, "n_jobs=1 x 2 threads": one},
        "search_n_jobs_2_with_pool_start_s": two_cold,
        "search_ratio": two / one,
        "search_ratio_with_pool_start": two_cold / one,
        "search_within_10_percent": two <= 1.10 * one,
        "search_same_scores": len({r["scores_hex"] for r in search}) == 1,
        "loky_worker_engines": [json.loads(w) for w in workers],
    }


def print_table(results: dict[str, Any], args: argparse.Namespace) -> None:
    s = results["summary"]
    print()
    print(f"idle pool, CPU time while sleeping {args.idle_seconds:g} s (median of {args.repeats})")
    for threads, ms in s["idle_cpu_ms"].items():
        print(f"  n_threads={threads}: {ms:8.2f} ms")
    print(f"oversubscription, {args.processes} processes at once (median of {args.repeats})")
    print(f"  {'job':<16} {'layout':<12} {'last finish':>12} {'CPU time':>10}")
    for job, layouts in s["oversubscription"].items():
        for layout, m in layouts.items():
            print(
                f"  {job:<16} {layout + ' threads':<12} {m['last_finish_s']:10.2f} s "
                f"{m['cpu_s']:8.2f} s"
            )
    print(
        f"GridSearchCV, {len(GRID['hidden_layer_sizes']) * len(GRID['learning_rate'])} "
        f"candidates x 3 folds (median of {args.repeats})"
    )
    for layout, seconds in s["search_s"].items():
        print(f"  {layout:<22} {seconds:8.2f} s")
    print(
        f"  {'n_jobs=2, with start':<22} {s['search_n_jobs_2_with_pool_start_s']:8.2f} s "
        f"(the loky workers' start and imports, ratio {s['search_ratio_with_pool_start']:.3f})"
    )
    print(
        f"  ratio {s['search_ratio']:.3f} (n_jobs=2 / n_jobs=1); within 10%: "
        f"{s['search_within_10_percent']}; same scores bit for bit: {s['search_same_scores']}"
    )
    for w in s["loky_worker_engines"]:
        print(
            f"  loky worker {w['pid']}: OMP_NUM_THREADS={w['OMP_NUM_THREADS']}, "
            f"engine threads {w['threads']} ({w['rule']})"
        )
    loads = [
        r["other_load_cores"]
        for r in results["oversubscription"] + results["search"]
        if r["other_load_cores"] is not None
    ]
    if loads:
        print(f"other processes kept {min(loads):.2f} to {max(loads):.2f} cores busy meanwhile")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--repeats", type=int, default=3, help="repeats per layout (median)")
    p.add_argument("--processes", type=int, default=4, help="processes of the oversubscription run")
    p.add_argument("--samples", type=int, default=1024, help="samples of each oversubscription job")
    p.add_argument("--epochs", type=int, default=4, help="epochs of each oversubscription fit")
    p.add_argument("--calls", type=int, default=300, help="one-sample predictions of each job")
    p.add_argument("--search-samples", type=int, default=768, help="samples of the search")
    p.add_argument("--search-epochs", type=int, default=15, help="epochs of each search fit")
    p.add_argument("--idle-seconds", type=float, default=2.0)
    p.add_argument(
        "--only",
        default="idle,oversubscription,search",
        help="which measurements, comma-separated (the table needs all three)",
    )
    p.add_argument("--quick", action="store_true", help="tiny sizes: checks the script runs")
    p.add_argument("--json", type=Path, default=DEFAULT_JSON)
    args = p.parse_args(argv)
    if args.quick:
        args.samples, args.epochs, args.search_samples, args.search_epochs = 128, 1, 96, 2
        args.calls = 20
        args.idle_seconds = 0.5
    return args


def main(argv: list[str] | None = None) -> int:
    if argv is None and len(sys.argv) > 1 and sys.argv[1] == "--summarize":
        # Recompute the summary and table of a results file (no new measurement).
        path = Path(sys.argv[2])
        results = json.loads(path.read_text())
        results["summary"] = summarize(results)
        print_table(results, argparse.Namespace(**results["args"]))
        path.write_text(json.dumps(results, indent=1) + "\n")
        return 0
    if argv is None and len(sys.argv) > 1 and sys.argv[1] == "--worker":
        result = WORKERS[sys.argv[2]](json.loads(sys.argv[3]))
        print(json.dumps(result), flush=True)
        return 0
    args = parse_args(argv)
    import lstmlearn

    started = datetime.datetime.now(datetime.timezone.utc)
    machine = {
        "lstmlearn": lstmlearn.config(),
        "cpu_count": os.cpu_count(),
        "processor": platform.processor(),
        "load_average_1_5_15_min": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
    }
    print(
        f"lstmlearn {lstmlearn.__version__} ({machine['lstmlearn']['isa']}), "
        f"{machine['lstmlearn']['cpus']} CPUs; load average {machine['load_average_1_5_15_min']}"
    )
    results: dict[str, Any] = {
        "started": started.isoformat(timespec="seconds"),
        "machine": machine,
        "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
    }
    measurements = {
        "idle": measure_idle,
        "oversubscription": measure_oversubscription,
        "search": measure_search,
    }
    chosen = args.only.split(",")
    for name, measure in measurements.items():
        if name in chosen:
            results[name] = measure(args)
    results["seconds"] = round(
        (datetime.datetime.now(datetime.timezone.utc) - started).total_seconds(), 1
    )
    if set(chosen) >= set(measurements):
        results["summary"] = summarize(results)
        print_table(results, args)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=1) + "\n")
    print(f"results: {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
