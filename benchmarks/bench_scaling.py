"""How a training step scales with T, H and B: lstmlearn against PyTorch, plotted.

Starting from the ``medium`` workload of the design document (B 64, T 100,
F 32, H 128, one layer, 10 outputs from the last step), one dimension varies
at a time while the others stay at ``medium``'s values. For every point, each
library times whole training steps (forward, squared-error loss, backward,
Adam) exactly as ``bench_suite.py`` does: lstmlearn through
``LSTMRegressor.partial_fit``, PyTorch with ``nn.LSTM`` + ``nn.Linear`` and
``torch.optim.Adam`` in the fastest of its candidate configurations at each
point (for-loop or fused Adam, oneDNN or native LSTM: the suite's probe), each
in a worker process of its own, repeats interleaved, medians reported.

Writes one PNG per dimension (``scaling_steps.png``, ``scaling_hidden.png``,
``scaling_batch.png``: milliseconds per step on log-log axes, and PyTorch's time
divided by lstmlearn's) and a JSON file with every raw time, into
``benchmarks/results/`` by default.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_suite as suite  # a sibling script, not an installed module

BASE = suite.WORKLOADS["medium"]
AXES: dict[str, list[int]] = {
    "steps": [25, 50, 100, 200, 400],
    "hidden": [32, 64, 128, 256, 512],
    "batch": [16, 32, 64, 128, 256],
}
QUICK_AXES: dict[str, list[int]] = {
    "steps": [25, 100],
    "hidden": [32, 128],
    "batch": [16, 64],
}
AXIS_LABELS = {"steps": "timesteps T", "hidden": "hidden units H", "batch": "batch size B"}
SYMBOLS = {"batch": "B", "steps": "T", "features": "F", "hidden": "H"}
LIBRARIES = ("lstmlearn", "pytorch")
DEFAULT_DIR = Path(__file__).resolve().parent / "results"
COLOURS = {"lstmlearn": "tab:blue", "pytorch": "tab:orange"}
LABEL_OFFSETS = {"lstmlearn": (0, -11), "pytorch": (0, 10)}


def scaled_workload(axis: str, value: int) -> suite.Workload:
    """Return ``medium`` with one dimension changed.

    The optimizer steps of one timed call (k) shrink as the step grows, so
    that a call does about as much work as one of ``medium``'s (at least one
    step, at most 16).

    Parameters
    ----------
    axis : {"steps", "hidden", "batch"}
        The dimension to change.
    value : int
        Its new value.

    Returns
    -------
    Workload
    """
    workload = dataclasses.replace(BASE, name=f"{axis}={value}", **{axis: value})
    work = BASE.train_flops() * BASE.steps_per_call
    k = max(1, min(16, round(work / workload.train_flops())))
    return dataclasses.replace(workload, steps_per_call=k)


def run_axis(
    workers: list[suite.Worker],
    axis: str,
    values: list[int],
    args: argparse.Namespace,
) -> list[dict[str, Any]]:
    """Time a training step of every library at every value of one dimension.

    Returns
    -------
    list of dict
        One entry per value: the workload and, per library, the raw timings
        with the median seconds per step.
    """
    points = []
    for value in values:
        workload = scaled_workload(axis, value)
        print(f"  {axis}={value} (k={workload.steps_per_call}) ...", flush=True)
        raw = suite.time_workload(
            workers,
            workload,
            ("train",),
            args.repeats,
            args.warmup,
            args.target_repeat_seconds,
            probe_repeats=1 if args.quick else suite.PROBE_REPEATS,
        )
        points.append(
            {
                "axis": axis,
                "value": value,
                "shape": workload.describe(),
                "libraries": {
                    lib: suite.summarize(workload, "train", figures["train"])
                    for lib, figures in raw.items()
                    if "train" in figures
                },
            }
        )
    return points


def plot_axis(points: list[dict[str, Any]], axis: str, subtitle: str, path: Path) -> None:
    """Draw milliseconds per training step against one dimension, and the speed ratio.

    Parameters
    ----------
    points : list of dict
        What :func:`run_axis` returned for `axis`.
    axis : str
        The dimension that varies.
    subtitle : str
        Machine, threads and load, printed under the title.
    path : Path
        The PNG to write.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import NullFormatter, ScalarFormatter

    fixed = ", ".join(
        f"{SYMBOLS[name]} {getattr(BASE, name)}"
        for name in ("batch", "steps", "features", "hidden")
        if name != axis
    )
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.6), constrained_layout=True)
    values = [p["value"] for p in points]
    for lib in LIBRARIES:
        xs = [p["value"] for p in points if lib in p["libraries"]]
        ms = [
            p["libraries"][lib]["median_seconds_per_step"] * 1e3
            for p in points
            if lib in p["libraries"]
        ]
        if xs:
            left.plot(xs, ms, "o-", color=COLOURS[lib], label=lib)
            for x, y in zip(xs, ms, strict=True):
                left.annotate(
                    f"{y:.0f}" if y >= 100 else f"{y:.3g}",
                    (x, y),
                    textcoords="offset points",
                    xytext=LABEL_OFFSETS[lib],  # one library above its points, one below
                    ha="center",
                    va="center",
                    fontsize=8,
                    color=COLOURS[lib],
                )
    left.set_xscale("log", base=2)
    left.set_yscale("log")
    left.yaxis.set_major_formatter(ScalarFormatter())
    left.yaxis.set_minor_formatter(NullFormatter())
    left.margins(x=0.08, y=0.15)
    left.set_xticks(values, [str(v) for v in values])
    left.set_xlabel(AXIS_LABELS[axis])
    left.set_ylabel("ms per training step (median)")
    left.set_title(f"Training step time against {AXIS_LABELS[axis]}", fontsize=10)
    left.grid(True, which="both", alpha=0.3)
    left.legend()

    both = [p for p in points if all(lib in p["libraries"] for lib in LIBRARIES)]
    if both:
        ratio = [
            p["libraries"]["pytorch"]["median_seconds_per_step"]
            / p["libraries"]["lstmlearn"]["median_seconds_per_step"]
            for p in both
        ]
        xs = [p["value"] for p in both]
        right.plot(xs, ratio, "s-", color="tab:green")
        for x, y in zip(xs, ratio, strict=True):
            right.annotate(
                f"{y:.2f}",
                (x, y),
                textcoords="offset points",
                xytext=(0, 6),
                ha="center",
                fontsize=8,
            )
        right.axhline(1.0, color="grey", linestyle="--", linewidth=1)
        right.set_ylim(bottom=0, top=max(2.0, max(ratio) * 1.15))
    right.set_xscale("log", base=2)
    right.margins(x=0.08)
    right.set_xticks(values, [str(v) for v in values])
    right.set_xlabel(AXIS_LABELS[axis])
    right.set_ylabel("PyTorch time / lstmlearn time")
    right.set_title("lstmlearn's speed-up over PyTorch (above 1: lstmlearn faster)", fontsize=10)
    right.grid(True, alpha=0.3)
    fig.suptitle(
        f"LSTM training step (Adam), others fixed at medium: {fixed}\n{subtitle}", fontsize=10
    )
    fig.savefig(path, dpi=110)
    plt.close(fig)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Parse the command line."""
    parser = argparse.ArgumentParser(
        description="Time a training step of lstmlearn and PyTorch against T, H and B "
        "(others from the medium workload) and plot it.",
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=suite.available_cpus(),
        help="compute threads of both libraries (default: CPUs available, %(default)s here)",
    )
    parser.add_argument(
        "--axes",
        default=",".join(AXES),
        help="comma-separated dimensions to vary (default: %(default)s)",
    )
    parser.add_argument(
        "--libraries",
        default=",".join(LIBRARIES),
        help="comma-separated libraries, each only if installed (default: %(default)s)",
    )
    parser.add_argument(
        "--repeats", type=int, help="timed repeats per point (default: 5, or 2 with --quick)"
    )
    parser.add_argument(
        "--warmup", type=int, help="untimed calls first (default: 2, or 1 with --quick)"
    )
    parser.add_argument(
        "--quick", action="store_true", help="two points per dimension, short repeats: a smoke run"
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
        help="whether PyTorch flushes denormal floats to zero, as lstmlearn does, as in "
        "bench_suite.py (default: %(default)s)",
    )
    parser.add_argument(
        "--out-dir",
        type=Path,
        default=DEFAULT_DIR,
        help="where the PNGs and scaling.json go (default: benchmarks/results)",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of weights and data")
    args = parser.parse_args(argv)
    try:
        args.axes = suite.split_names(args.axes, tuple(AXES), "axis")
        args.libraries = suite.split_names(args.libraries, LIBRARIES, "library")
    except argparse.ArgumentTypeError as error:
        parser.error(str(error))
    suite.complete_timing_arguments(
        parser, args, repeats=(5, 2), warmup=(2, 1), repeat_seconds=(0.5, 0.05)
    )
    return args


def main(argv: list[str] | None = None) -> int:
    """Run the scaling measurements, write the PNGs and the JSON file.

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
    suite.limit_threads_environment(args.threads, args.omp_wait_policy, args.peer_denormals)
    installed = suite.available_libraries()
    libraries = [lib for lib in args.libraries if lib in installed]
    if not libraries:
        print("neither lstmlearn nor PyTorch is installed")
        return 1
    load_before = suite.load_average()
    machine = suite.machine_info(libraries)
    print(
        f"libraries: {', '.join(libraries)}; {args.threads} thread(s), {args.repeats} repeat(s)"
        + (", quick" if args.quick else "")
    )
    if load_before is not None:
        print(f"load average before starting: {load_before[0]:.2f}")
    axes = QUICK_AXES if args.quick else AXES
    started = time.perf_counter()
    workers = [suite.Worker(lib, args.threads, args.seed) for lib in libraries]
    results: dict[str, list[dict[str, Any]]] = {}
    try:
        for axis in args.axes:
            print(f"{axis} ({time.perf_counter() - started:.0f} s)", flush=True)
            results[axis] = run_axis(workers, axis, axes[axis], args)
    finally:
        for worker in workers:
            worker.close()
    load_after = suite.load_average()

    date = datetime.date.today().isoformat()
    isa = machine.get("lstmlearn", {}).get("isa", "?")
    load_text = "" if load_after is None else f", load average {load_after[0]:.1f} at the end"
    subtitle = (
        f"{date}, {machine['processor']}, {args.threads} thread(s), lstmlearn {isa}{load_text}"
    )
    args.out_dir.mkdir(parents=True, exist_ok=True)
    print()
    print(f"{'point':<12} " + " ".join(f"{lib + ' ms/step':>18}" for lib in libraries))
    for axis, points in results.items():
        for p in points:
            cells = [
                f"{p['libraries'][lib]['median_seconds_per_step'] * 1e3:>18.2f}"
                if lib in p["libraries"]
                else f"{'-':>18}"
                for lib in libraries
            ]
            print(f"{axis + '=' + str(p['value']):<12} " + " ".join(cells))
        path = args.out_dir / f"scaling_{axis}.png"
        plot_axis(points, axis, subtitle, path)
        print(f"wrote {path}")

    report = {
        "benchmark": "scaling",
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": machine,
        "load_average_before": load_before,
        "load_average_after": load_after,
        "base_workload": BASE.describe(),
        "arguments": {
            key: (str(value) if isinstance(value, Path) else value)
            for key, value in vars(args).items()
        },
        "results": results,
    }
    json_path = args.out_dir / "scaling.json"
    json_path.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {json_path}")
    print(f"done ({time.perf_counter() - started:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
