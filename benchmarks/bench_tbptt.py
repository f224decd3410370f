"""Memory and time of training on long sequences, with and without truncated BPTT.

Each configuration (sequence length T, head, ``tbptt_steps``) runs in a fresh
Python process, so that its peak resident memory (``ru_maxrss``) is its own:
the process builds the data, fits an ``LSTMRegressor`` for a few epochs and
reports the peak RSS, the RSS before training (interpreter, libraries and
data) and the seconds of each epoch. The time of an epoch is the median over
the epochs after the first (which allocates the workspace).

Workload: B 32, F 1, H 64, one layer, float32, Adam; a last-step target (the
mean of the sequence) or a per-step one (the running mean). Run
``python benchmarks/bench_tbptt.py --help`` for the options.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

from bench_suite import run_stamp  # a sibling script, not an installed module

DEFAULT_JSON = Path(__file__).resolve().parent / "results" / "tbptt.json"

CHILD = r"""
import json, resource, sys, time, warnings
import numpy as np
from lstmlearn import LSTMRegressor

cfg = json.loads(sys.argv[1])
rng = np.random.default_rng(0)
N, T = cfg["samples"], cfg["steps"]
X = rng.normal(size=(N, T, 1)).astype(np.float32)
if cfg["head"] == "per_step":
    y = (np.cumsum(X, axis=1) / np.arange(1, T + 1, dtype=np.float32)[None, :, None])
else:
    y = X.mean(axis=(1, 2))
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
model = LSTMRegressor(
    cfg["hidden"], batch_size=cfg["batch"], max_iter=cfg["epochs"], tol=0.0,
    n_iter_no_change=10**6, shuffle=False, random_state=0, n_jobs=cfg["threads"],
    tbptt_steps=cfg["tbptt_steps"],
)
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    model.fit(X, y)
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({
    "rss_before_kb": before, "peak_rss_kb": peak,
    "epoch_seconds": model.history_["seconds"], "loss": model.loss_curve_,
}))
"""


def run_one(cfg: dict) -> dict:
    env = dict(os.environ)
    out = subprocess.run(
        [sys.executable, "-c", CHILD, json.dumps(cfg)],
        check=True,
        capture_output=True,
        text=True,
        env=env,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", default="2000,20000", help="sequence lengths T")
    parser.add_argument("--k", type=int, default=100, help="tbptt_steps of the truncated runs")
    parser.add_argument("--samples", type=int, default=64, help="sequences (N)")
    parser.add_argument("--epochs", type=int, default=4, help="epochs per run (>= 4)")
    parser.add_argument("--heads", default="last,per_step", help="last and/or per_step")
    parser.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
    parser.add_argument("--json", type=Path, default=DEFAULT_JSON)
    args = parser.parse_args(argv)
    if args.epochs < 4:
        parser.error("--epochs must be at least 4: the first is not timed, 3 are")

    rows = []
    for head in args.heads.split(","):
        for steps in (int(s) for s in args.steps.split(",")):
            for k in (None, args.k):
                cfg = {
                    "steps": steps,
                    "head": head,
                    "tbptt_steps": k,
                    "samples": args.samples,
                    "batch": 32,
                    "hidden": 64,
                    "epochs": args.epochs,
                    "threads": args.threads,
                }
                res = run_one(cfg)
                timed = res["epoch_seconds"][1:]
                row = {
                    **cfg,
                    **res,
                    "epoch_seconds_median": statistics.median(timed),
                    "training_mb": (res["peak_rss_kb"] - res["rss_before_kb"]) / 1024,
                    "peak_rss_mb": res["peak_rss_kb"] / 1024,
                }
                rows.append(row)
                print(
                    f"done: head={head} T={steps} k={k}: "
                    f"{row['epoch_seconds_median']:.3f} s/epoch, peak {row['peak_rss_mb']:.0f} MB",
                    file=sys.stderr,
                )

    print()
    print("| head | T | tbptt_steps | peak RSS (MB) | training (MB above data) | s / epoch |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for r in rows:
        print(
            f"| {r['head']} | {r['steps']} | {r['tbptt_steps'] or '-'} | {r['peak_rss_mb']:.0f} | "
            f"{r['training_mb']:.0f} | {r['epoch_seconds_median']:.3f} |"
        )
    args.json.parent.mkdir(parents=True, exist_ok=True)
    meta = {
        **run_stamp(),
        "maxrss_units": "KiB (Linux ru_maxrss)",
        "note": "time per epoch: median over the epochs after the first",
    }
    args.json.write_text(json.dumps({"meta": meta, "rows": rows}, indent=1) + "\n")
    print(f"\nresults: {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
