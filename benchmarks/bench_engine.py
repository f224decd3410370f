"""Speed of the lstmlearn engine alone against PyTorch's ``nn.LSTM``, side by side.

Both libraries run the same workloads with the same weights, inputs and thread
count. Two modes are timed: ``forward`` and ``forward+backward`` (forward, then
backpropagation of a fixed random ``dy``). Each measurement is the median over
repeats, because the development machines are shared and noisy.

Run ``python benchmarks/bench_engine.py --help`` for the options; see
``benchmarks/README.md`` for how to read the results.
"""

from __future__ import annotations

import argparse
import datetime
import gc
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from bench_suite import (  # a sibling script, not an installed module
    OtherLoad,
    available_cpus,
    complete_timing_arguments,
)

import lstmlearn
from lstmlearn.nn import LSTM

try:
    import torch
except ImportError:  # the benchmark still times lstmlearn alone
    torch = None

MODES = ("forward", "forward+backward")
DEFAULT_JSON = Path(__file__).resolve().parent / "results" / "engine.json"


@dataclass(frozen=True)
class Workload:
    """One benchmark shape, named as in the design document.

    Attributes
    ----------
    name : str
        Name shared by every benchmark of the project.
    batch, steps, features, hidden, layers : int
        B, T, F, H and the number of stacked layers.
    """

    name: str
    batch: int
    steps: int
    features: int
    hidden: int
    layers: int

    def forward_flops(self) -> int:
        """GEMM floating-point operations of one forward pass.

        Returns
        -------
        int
            Sum over layers of ``2 * B * T * 4H * (F_in + H)``, with ``F_in = F``
            for the first layer and ``H`` above it. Element-wise gate work is
            left out: it is small next to the matrix products and the same for
            both libraries.
        """
        total = 0
        for layer in range(self.layers):
            f_in = self.features if layer == 0 else self.hidden
            total += 2 * self.batch * self.steps * 4 * self.hidden * (f_in + self.hidden)
        return total

    def flops(self, mode: str) -> int:
        """GEMM FLOPs of one iteration of `mode` (backward costs about twice forward)."""
        return self.forward_flops() * (3 if mode == "forward+backward" else 1)


WORKLOADS = {
    w.name: w
    for w in (
        Workload("tiny", batch=32, steps=24, features=1, hidden=32, layers=1),
        Workload("stacked", batch=64, steps=50, features=8, hidden=64, layers=2),
        Workload("medium", batch=64, steps=100, features=32, hidden=128, layers=1),
        Workload("large", batch=128, steps=100, features=64, hidden=512, layers=1),
        Workload("chargen", batch=64, steps=100, features=64, hidden=256, layers=1),
    )
}


@dataclass
class Timing:
    """Raw timings of one library on one workload and mode.

    Attributes
    ----------
    iterations : int
        Iterations timed together in each repeat.
    repeat_seconds : list of float
        Wall-clock seconds of each repeat (all of its iterations).
    """

    iterations: int
    repeat_seconds: list[float]

    @property
    def median(self) -> float:
        """Median seconds per iteration."""
        return statistics.median(self.repeat_seconds) / self.iterations


def make_steps(
    workload: Workload, mode: str, threads: int, seed: int
) -> tuple[Callable[[], None], Callable[[], None] | None, float | None]:
    """Build one iteration of `mode` for each library, on identical weights and data.

    Parameters
    ----------
    workload : Workload
        Shape to run.
    mode : {"forward", "forward+backward"}
        What one iteration does.
    threads : int
        Compute threads of both libraries.
    seed : int
        Seed of the weights, the input and ``dy``.

    Returns
    -------
    ours : callable
        One lstmlearn iteration.
    theirs : callable or None
        One PyTorch iteration, or None when torch is not importable.
    max_abs_diff : float or None
        Largest difference between the two forward outputs: a check that both
        libraries really compute the same thing. None without torch.
    """
    w = workload
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((w.batch, w.steps, w.features), dtype=np.float32)
    dy = rng.standard_normal((w.batch, w.steps, w.hidden), dtype=np.float32)

    if torch is None:
        ours_lstm = LSTM(w.features, w.hidden, w.layers, random_state=seed, n_threads=threads)
    else:
        torch.manual_seed(seed)
        theirs_lstm = torch.nn.LSTM(w.features, w.hidden, w.layers, batch_first=True)
        theirs_lstm = theirs_lstm.to(torch.float32)
        ours_lstm = LSTM.from_torch(theirs_lstm, n_threads=threads)

    def ours_forward() -> None:
        ours_lstm.forward(x, n_threads=threads)

    def ours_forward_backward() -> None:
        ours_lstm.forward(x, n_threads=threads)
        ours_lstm.backward(dy, n_threads=threads)

    ours = ours_forward if mode == "forward" else ours_forward_backward
    if torch is None:
        return ours, None, None

    # The engine always computes dx, so PyTorch must compute it too to do the same work.
    tx = torch.from_numpy(x).requires_grad_(mode == "forward+backward")
    tdy = torch.from_numpy(dy)

    def theirs_forward() -> None:
        # Inference as a user would run it: no autograd graph. lstmlearn's forward
        # always keeps what backward needs, so this mode favours PyTorch.
        with torch.no_grad():
            theirs_lstm(tx)

    def theirs_forward_backward() -> None:
        theirs_lstm.zero_grad(set_to_none=True)
        tx.grad = None
        y, _ = theirs_lstm(tx)
        y.backward(tdy)

    theirs = theirs_forward if mode == "forward" else theirs_forward_backward

    with torch.no_grad():
        expected = theirs_lstm(torch.from_numpy(x))[0].numpy()
    got = ours_lstm.forward(x, n_threads=threads)[0]
    return ours, theirs, float(np.max(np.abs(got - expected)))


def calibrate(step: Callable[[], None], warmup: int, target_seconds: float) -> int:
    """Warm `step` up and choose how many iterations one repeat should time.

    Parameters
    ----------
    step : callable
        One iteration.
    warmup : int
        Untimed iterations first (thread pools, allocations and caches settle).
    target_seconds : float
        Wanted length of one repeat: long enough for the timer to be precise,
        short enough that many repeats fit in the run.

    Returns
    -------
    int
        Iterations per repeat, at least 1.
    """
    for _ in range(warmup):
        step()
    # Like timeit's autorange: one iteration is too short to time reliably when
    # it takes microseconds, so double the count until the batch is measurable.
    iterations = 1
    while True:
        seconds = time_repeat(step, iterations)
        if seconds >= target_seconds / 4 or iterations >= 10_000:
            break
        iterations *= 2
    # Other users' load only ever slows a batch down, so the fastest of a few is
    # the best estimate of the undisturbed cost.
    seconds = min(seconds, *(time_repeat(step, iterations) for _ in range(2)))
    return max(1, min(10_000, round(target_seconds * iterations / seconds)))


def time_repeat(step: Callable[[], None], iterations: int) -> float:
    """Return the wall-clock seconds of `iterations` back-to-back calls of `step`."""
    start = time.perf_counter()
    for _ in range(iterations):
        step()
    return time.perf_counter() - start


def measure(
    steps: dict[str, Callable[[], None]], repeats: int, warmup: int, target_seconds: float
) -> dict[str, Timing]:
    """Time every library's step, interleaving their repeats.

    Interleaving (in alternating order) spreads the load of the shared machine
    over both libraries rather than letting a noisy moment hit only one.

    Returns
    -------
    dict of str to Timing
        Keyed like `steps`.
    """
    timings = {
        name: Timing(calibrate(step, warmup, target_seconds), []) for name, step in steps.items()
    }
    names = list(steps)
    gc.collect()
    gc_was_enabled = gc.isenabled()
    gc.disable()  # a collection inside a timed repeat is noise, not either library's cost
    try:
        for r in range(repeats):
            for name in names if r % 2 == 0 else reversed(names):
                timings[name].repeat_seconds.append(
                    time_repeat(steps[name], timings[name].iterations)
                )
    finally:
        if gc_was_enabled:
            gc.enable()
    return timings


def summarize(workload: Workload, mode: str, timing: Timing) -> dict[str, Any]:
    """Return the medians and raw times of one library as a JSON-ready dict."""
    seconds = timing.median
    return {
        "median_seconds_per_iteration": seconds,
        "samples_per_second": workload.batch / seconds,
        "gflops": workload.flops(mode) / seconds / 1e9,
        "iterations_per_repeat": timing.iterations,
        "repeat_seconds": timing.repeat_seconds,
    }


def machine_info() -> dict[str, Any]:
    """Return what the numbers depend on: engine build, PyTorch build, CPU."""
    info: dict[str, Any] = {
        "lstmlearn": lstmlearn.config(),
        "cpu_count": os.cpu_count(),
        "available_cpus": available_cpus(),
        "processor": platform.processor(),
        "python": sys.version.split()[0],
    }
    if hasattr(os, "getloadavg"):  # other users' load on a shared machine skews every number
        info["load_average_1_5_15_min"] = list(os.getloadavg())
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            models = [line.split(":", 1)[1].strip() for line in f if line.startswith("model name")]
        if models:
            info["processor"] = models[0]
    except OSError:  # not Linux: platform.processor() is the best we have
        pass
    if torch is None:
        info["torch"] = None
    else:
        info["torch"] = {
            "version": torch.__version__,
            "threads": torch.get_num_threads(),
            "interop_threads": torch.get_num_interop_threads(),
            "mkldnn": torch.backends.mkldnn.is_available(),
        }
    return info


def format_number(value: float | None, digits: int = 0) -> str:
    """Format a table cell; None (no PyTorch) shows as "-"."""
    return "-" if value is None else f"{value:,.{digits}f}"


def print_table(results: list[dict[str, Any]]) -> None:
    """Print samples/s, the lstmlearn/PyTorch ratio and GFLOP/s of every result."""
    header = (
        f"{'workload':<9} {'mode':<17} {'lstmlearn/s':>12} {'pytorch/s':>12} {'ratio':>6}"
        f" {'lstmlearn GFLOP/s':>17} {'pytorch GFLOP/s':>15}"
    )
    print(header)
    print("-" * len(header))
    for r in results:
        ours, theirs = r["lstmlearn"], r["pytorch"]
        print(
            f"{r['workload']:<9} {r['mode']:<17}"
            f" {format_number(ours['samples_per_second']):>12}"
            f" {format_number(theirs and theirs['samples_per_second']):>12}"
            f" {format_number(r['ratio'], 2):>6}"
            f" {format_number(ours['gflops'], 1):>17}"
            f" {format_number(theirs and theirs['gflops'], 1):>15}"
        )


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Parse the command line."""
    parser = argparse.ArgumentParser(
        description="Time the lstmlearn engine against torch.nn.LSTM on the design workloads.",
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=available_cpus(),
        help="compute threads of both libraries (default: CPUs available, %(default)s here)",
    )
    parser.add_argument(
        "--workloads",
        default=",".join(WORKLOADS),
        help="comma-separated workloads to run (default: %(default)s)",
    )
    parser.add_argument(
        "--modes",
        default=",".join(MODES),
        help="comma-separated modes to run (default: %(default)s)",
    )
    parser.add_argument(
        "--repeats", type=int, help="timed repeats per library (default: 11, or 3 with --quick)"
    )
    parser.add_argument(
        "--warmup", type=int, help="untimed iterations first (default: 3, or 1 with --quick)"
    )
    parser.add_argument(
        "--quick", action="store_true", help="few, short repeats: a smoke test, not a measurement"
    )
    parser.add_argument(
        "--json",
        type=Path,
        default=DEFAULT_JSON,
        help="where to write the full results (default: benchmarks/results/engine.json)",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of weights and data")
    args = parser.parse_args(argv)

    args.workloads = [name.strip() for name in args.workloads.split(",") if name.strip()]
    unknown = [name for name in args.workloads if name not in WORKLOADS]
    if unknown:
        known = ", ".join(WORKLOADS)
        parser.error(f"unknown workload(s) {', '.join(unknown)}; choose from {known}")
    args.modes = [mode.strip() for mode in args.modes.split(",") if mode.strip()]
    bad_modes = [mode for mode in args.modes if mode not in MODES]
    if bad_modes:
        parser.error(f"unknown mode(s) {', '.join(bad_modes)}; choose from {', '.join(MODES)}")
    complete_timing_arguments(
        parser, args, repeats=(11, 3), warmup=(3, 1), repeat_seconds=(0.2, 0.05)
    )
    return args


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark, print the table and write the JSON file.

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
    if torch is None:
        print("PyTorch is not importable: timing lstmlearn alone (PyTorch columns show '-').")
    else:
        torch.set_num_threads(args.threads)
    config = lstmlearn.config()
    print(
        f"lstmlearn {config['version']} ({config['isa']}), "
        + (f"PyTorch {torch.__version__}, " if torch is not None else "")
        + f"{args.threads} thread(s), {args.repeats} repeat(s)"
        + (", quick" if args.quick else "")
    )

    # Taken before any timing: the load at the end includes this benchmark's own threads.
    machine = machine_info()
    if "load_average_1_5_15_min" in machine:
        print(f"load average before starting: {machine['load_average_1_5_15_min'][0]:.2f}")

    results = []
    for name in args.workloads:
        workload = WORKLOADS[name]
        for mode in args.modes:
            print(f"timing {name} {mode} ...", flush=True)
            ours, theirs, diff = make_steps(workload, mode, args.threads, args.seed)
            steps = {"lstmlearn": ours}
            if theirs is not None:
                steps["pytorch"] = theirs
            if diff is not None and diff > 1e-3:
                # Timing different computations would be meaningless; say so loudly.
                print(f"warning: {name}: outputs differ from PyTorch's by {diff:.2e}")
            with OtherLoad() as load:
                timings = measure(steps, args.repeats, args.warmup, args.target_repeat_seconds)
            row: dict[str, Any] = {
                "workload": name,
                "shape": {
                    "batch": workload.batch,
                    "steps": workload.steps,
                    "features": workload.features,
                    "hidden": workload.hidden,
                    "layers": workload.layers,
                },
                "mode": mode,
                "flops_per_iteration": workload.flops(mode),
                "max_abs_diff_vs_pytorch": diff,
                "other_processes_cores": load.cores,
                "lstmlearn": summarize(workload, mode, timings["lstmlearn"]),
                "pytorch": None,
                "ratio": None,
            }
            if "pytorch" in timings:
                row["pytorch"] = summarize(workload, mode, timings["pytorch"])
                row["ratio"] = timings["pytorch"].median / timings["lstmlearn"].median
            results.append(row)

    print()
    print_table(results)
    # Other load slows PyTorch's spin-waiting OpenMP threads far more than lstmlearn.
    disturbed = [
        f"{r['workload']} {r['mode']} ({r['other_processes_cores']:.2f})"
        for r in results
        if r["other_processes_cores"] is not None and r["other_processes_cores"] > 0.1
    ]
    if disturbed:
        print(
            "\nwarning: other processes kept cores busy (average cores in brackets) during: "
            + ", ".join(disturbed)
            + "; those rows are not a fair comparison"
        )

    args.json.parent.mkdir(parents=True, exist_ok=True)
    report = {
        "benchmark": "engine",
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": machine,
        "arguments": {
            key: (str(value) if isinstance(value, Path) else value)
            for key, value in vars(args).items()
        },
        "results": results,
    }
    args.json.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(f"\nwrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
