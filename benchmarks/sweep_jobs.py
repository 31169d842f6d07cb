"""Wall time of the README's 16-point mobilenet int8 sweep with ``--jobs 1`` and ``--jobs 2``
(conversions in one process, or in two worker processes before the benchmarks), measured in
the same session, and whether the two sweeps' tables agree apart from the timings.

    python benchmarks/sweep_jobs.py [--repeats 1] [--alpha 0.25,0.5,0.75,1.0]
                                    [--resolution 128,160,192,224]

Each repeat runs both sweeps into fresh folders, alternating which goes first (the machine is
shared: compare the ratio, not the absolute times). Reported: the wall time of each (median
and min-max over the repeats), their ratio, and the columns in which the tables differ
apart from the timings (expected: none).

Results: ``benchmarks/results/sweep_jobs.{json,md}``.
"""
from __future__ import annotations

import argparse
import csv
import datetime
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
TIMING = {"runs", "p50_ms", "p90_ms", "mean_ms", "std_ms", "min_ms", "max_ms", "noisy",
          "size_bytes"}  # size_bytes: the card in the .tflite prints its conversion time


def sweep(folder: str, jobs: int, alphas: str, resolutions: str) -> float:
    cmd = [sys.executable, "-m", "edgecnn.cli", "sweep", "mobilenet", "--alpha", alphas,
           "--resolution", resolutions, "--int8", "--jobs", str(jobs), "--no-plots", "-o",
           folder]
    env = dict(os.environ, PYTHONPATH=ROOT, TF_CPP_MIN_LOG_LEVEL="2")
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"sweep --jobs {jobs} failed:\n{proc.stderr[-3000:]}")
    return seconds


def table(folder: str) -> list[dict]:
    with open(os.path.join(folder, "sweep.csv"), newline="") as f:
        return list(csv.DictReader(f))


def differing_columns(one: list[dict], two: list[dict]) -> list[str]:
    if len(one) != len(two):
        return ["(row count)"]
    return sorted({k for a, b in zip(one, two) for k in a if a[k] != b.get(k)} - TIMING)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--alpha", default="0.25,0.5,0.75,1.0")
    parser.add_argument("--resolution", default="128,160,192,224")
    args = parser.parse_args()
    times = {1: [], 2: []}
    differs = []
    with tempfile.TemporaryDirectory() as tmp:
        for repeat in range(args.repeats):
            order = (1, 2) if repeat % 2 == 0 else (2, 1)
            folders = {}
            for jobs in order:
                folders[jobs] = os.path.join(tmp, f"r{repeat}_j{jobs}")
                times[jobs].append(sweep(folders[jobs], jobs, args.alpha, args.resolution))
                print(f"repeat {repeat + 1}: --jobs {jobs}: {times[jobs][-1]:.0f} s",
                      flush=True)
            differs += differing_columns(table(folders[1]), table(folders[2]))
    points = len(args.alpha.split(",")) * len(args.resolution.split(","))
    result = {
        "date": datetime.date.today().isoformat(), "machine": f"{os.cpu_count()} CPU(s)",
        "points": points, "alphas": args.alpha, "resolutions": args.resolution,
        "repeats": args.repeats,
        "seconds": {str(j): {"median": statistics.median(t), "min": min(t), "max": max(t),
                             "all": t} for j, t in times.items()},
        "ratio_jobs1_over_jobs2": statistics.median(times[1]) / statistics.median(times[2]),
        "table_columns_that_differ": sorted(set(differs)),
    }
    out = os.path.join(HERE, "results")
    with open(os.path.join(out, "sweep_jobs.json"), "w") as f:
        json.dump(result, f, indent=2)
    s1, s2 = result["seconds"]["1"], result["seconds"]["2"]
    lines = [
        f"# {points}-point mobilenet int8 sweep: --jobs 1 vs --jobs 2",
        "",
        f"`python benchmarks/sweep_jobs.py --repeats {args.repeats}` on {result['date']}, "
        f"{result['machine']} (shared with other jobs: compare the ratio).",
        "",
        "| --jobs | wall time, median (min-max) |",
        "|---:|---|",
        f"| 1 | {s1['median']:.0f} s ({s1['min']:.0f}-{s1['max']:.0f}) |",
        f"| 2 | {s2['median']:.0f} s ({s2['min']:.0f}-{s2['max']:.0f}) |",
        "",
        f"--jobs 1 / --jobs 2: {result['ratio_jobs1_over_jobs2']:.2f}x.",
        "",
        "Table columns that differ apart from the timings: "
        + (", ".join(result["table_columns_that_differ"]) or "none") + ".",
    ]
    with open(os.path.join(out, "sweep_jobs.md"), "w") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
