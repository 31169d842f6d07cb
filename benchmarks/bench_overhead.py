"""Honest numbers: does `edgecnn bench` report the latency LiteRT's own benchmark tool reports?

In one run, on three models made with `edgecnn convert` (MobileNetV2 int8, MobileNet float32,
MobileNetV3-Small int8; 224 px), measures the steady-state median (p50) latency with

- runner: `edgecnn bench MODEL --json` (edgecnn.runtime.benchmark, LiteRT Interpreter),
- litert-benchmark: the benchmark tool that ships in ai-edge-litert (CompiledModel API),
- bare loop: a minimal Python loop timing `Interpreter.invoke()` (no runner at all),

each in its own fresh process, with the same thread count, warmup and run counts, in several
interleaved rounds (the order rotated every round, so machine noise hits every tool). Per
model: the median of the round medians, their min-max, and the runner's overhead ratio
(runner p50 / litert-benchmark p50, round by round). Target (issue 5): within 5 %.

    .venv/bin/python benchmarks/bench_overhead.py                 # ~5 min on 2 cores
    .venv/bin/python benchmarks/bench_overhead.py --rounds 3 --runs 100 --keep-models /tmp/m

Writes results/bench_overhead.json (every measurement) and results/bench_overhead.md.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

from edgecnn.utils.files import atomic_write_bytes, atomic_write_json  # noqa: E402

MODELS = [  # (label, edgecnn convert arguments)
    ("mobilenet_v2 int8", ["mobilenet_v2", "--int8"]),
    ("mobilenet fp32", ["mobilenet"]),
    ("mobilenet_v3_small int8", ["mobilenet_v3_small", "--int8"]),
]
TOOLS = ("runner", "litert-benchmark", "bare loop")
TARGET = 0.05

BARE_LOOP = textwrap.dedent("""
    import json, sys, time
    import numpy as np
    from ai_edge_litert.interpreter import Interpreter
    path, runs, warmup, threads = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    it = Interpreter(model_path=path, num_threads=threads)
    it.allocate_tensors()
    for d in it.get_input_details():
        it.set_tensor(d["index"], np.zeros(d["shape"], d["dtype"]))
    for _ in range(warmup):
        it.invoke()
    times = []
    for _ in range(runs):
        t0 = time.perf_counter_ns()
        it.invoke()
        times.append(time.perf_counter_ns() - t0)
    print(json.dumps({"p50_ms": float(np.median(times)) / 1e6, "runs": runs}))
""")


def litert_benchmark_exe() -> str:
    exe = os.path.join(os.path.dirname(sys.executable), "litert-benchmark")
    found = exe if os.path.exists(exe) else shutil.which("litert-benchmark")
    if not found:
        sys.exit("litert-benchmark not found: it ships with ai-edge-litert (pip install "
                 "ai-edge-litert)")
    return found


def make_models(folder: str, resolution: int) -> dict[str, str]:
    os.makedirs(folder, exist_ok=True)
    paths = {}
    for label, args in MODELS:
        path = os.path.join(folder, label.replace(" ", "_") + f"_{resolution}.tflite")
        if not os.path.exists(path):
            print(f"converting {label} ({resolution} px) ...", flush=True)
            subprocess.run([sys.executable, "-m", "edgecnn.cli", "convert", *args, "-r",
                            str(resolution), "-o", path, "--json"], check=True,
                           stdout=subprocess.DEVNULL)
        paths[label] = path
    return paths


def run_tool(tool: str, path: str, args) -> float:
    """One fresh process measuring ``path``; its p50 in ms."""
    if tool == "runner":
        out = subprocess.run([sys.executable, "-m", "edgecnn.cli", "bench", path, "--threads",
                              str(args.threads), "--runs", str(args.runs), "--warmup",
                              str(args.warmup), "--min-seconds", "0", "--json"],
                             check=True, capture_output=True, text=True).stdout
        return float(json.loads(out)[0]["p50_ms"])
    if tool == "litert-benchmark":
        with tempfile.TemporaryDirectory() as tmp:
            result = os.path.join(tmp, "result.json")
            subprocess.run([litert_benchmark_exe(), "--model", path, "--num_runs",
                            str(args.runs), "--warmup_runs", str(args.warmup), "--num_threads",
                            str(args.threads), "--result_json", result], check=True,
                           capture_output=True, text=True)
            with open(result) as f:
                return float(json.load(f)["latency"]["median_ms"])
    out = subprocess.run([sys.executable, "-c", BARE_LOOP, path, str(args.runs),
                          str(args.warmup), str(args.threads)], check=True,
                         capture_output=True, text=True).stdout
    return float(json.loads(out)["p50_ms"])


def ratio_stats(num: list[float], den: list[float]) -> dict:
    ratios = [a / b for a, b in zip(num, den)]
    return {"median": statistics.median(ratios), "min": min(ratios), "max": max(ratios),
            "rounds": ratios}


def verdict(r: dict) -> str:
    if abs(r["median"] - 1) <= TARGET:
        return "pass"
    if r["min"] - 1 <= TARGET and r["max"] - 1 >= -TARGET:
        return "miss (in noise)"
    return "MISS"


def versions() -> dict:
    from importlib.metadata import version

    from edgecnn import __version__

    return {"edgecnn": __version__, "ai-edge-litert": version("ai-edge-litert"),
            "numpy": version("numpy"), "python": platform.python_version()}


def write_markdown(report: dict, path: str) -> str:
    a = report["args"]
    lines = [
        "# Runner overhead: `edgecnn bench` against LiteRT's `litert-benchmark`", "",
        f"Measured {report['date']} on {report['machine']['cpu_count']} x "
        f"{report['machine'].get('cpu') or report['machine']['machine']} "
        f"({report['machine']['platform']}); "
        f"{', '.join(f'{k} {v}' for k, v in report['versions'].items())}. "
        f"Command: `{report['command']}` ({report['minutes']:.1f} min; load average "
        f"{' '.join(map(str, report['load_start']))} at start, "
        f"{' '.join(map(str, report['load_end']))} at end).", "",
        f"{a['threads']} thread(s), XNNPACK, {a['resolution']} px, 1000 classes, random weights; "
        f"every measurement is a fresh process doing {a['warmup']} warmup and {a['runs']} timed "
        f"runs; {a['rounds']} rounds, the order of models and tools rotated every round. p50 "
        f"in ms: median of the round medians (min-max of the rounds). Ratios: per round, then "
        f"the median (min-max). litert-benchmark reports its median rounded to 0.01 ms.", "",
        "| model | runner p50 | litert-benchmark p50 | bare loop p50 | runner / litert-benchmark "
        "| runner / bare loop | bare loop / litert-benchmark | target +-5 % |",
        "|---|---|---|---|---|---|---|---|",
    ]

    def cell(values):
        return f"{statistics.median(values):.3f} ({min(values):.3f}-{max(values):.3f})"

    def rcell(r):
        return f"{r['median']:.3f} ({r['min']:.3f}-{r['max']:.3f})"

    for label, m in report["models"].items():
        p = m["p50_ms"]
        lines.append(f"| {label} | {cell(p['runner'])} | {cell(p['litert-benchmark'])} | "
                     f"{cell(p['bare loop'])} | {rcell(m['runner_vs_litert'])} | "
                     f"{rcell(m['runner_vs_bare'])} | {rcell(m['bare_vs_litert'])} | "
                     f"{m['verdict']} |")
    lines += ["", "Verdict: pass when the median ratio is within 5 % of 1; \"in noise\" when "
              "the rounds' range reaches the +-5 % band.", "",
              "Least-contended view: each tool's fastest round (on a shared machine the other "
              "rounds are slowed by other processes, often by a factor of about 2).", "",
              "| model | runner min p50 | litert-benchmark min p50 | bare loop min p50 | "
              "runner / litert-benchmark | runner / bare loop |", "|---|---|---|---|---|---|"]
    for label, m in report["models"].items():
        best = {tool: min(values) for tool, values in m["p50_ms"].items()}
        lines.append(f"| {label} | {best['runner']:.3f} | {best['litert-benchmark']:.3f} | "
                     f"{best['bare loop']:.3f} | "
                     f"{best['runner'] / best['litert-benchmark']:.3f} | "
                     f"{best['runner'] / best['bare loop']:.3f} |")
    lines.append("")
    text = "\n".join(lines)
    atomic_write_bytes(path, text.encode())
    return text


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--resolution", type=int, default=224)
    parser.add_argument("--keep-models", default=None, metavar="DIR",
                        help="Keep (and reuse) the converted models in DIR.")
    parser.add_argument("--output", default=os.path.join(HERE, "results", "bench_overhead"))
    args = parser.parse_args(argv)

    start = time.time()
    load_start = [round(x, 2) for x in os.getloadavg()]
    tmp = None
    folder = args.keep_models or (tmp := tempfile.mkdtemp(prefix="bench_overhead_"))
    try:
        paths = make_models(folder, args.resolution)
        p50 = {label: {tool: [] for tool in TOOLS} for label in paths}
        labels = list(paths)
        for round_ in range(args.rounds):
            order = labels[round_ % len(labels):] + labels[:round_ % len(labels)]
            for i, label in enumerate(order):
                tools = TOOLS[(round_ + i) % 3:] + TOOLS[:(round_ + i) % 3]
                for tool in tools:
                    p50[label][tool].append(run_tool(tool, paths[label], args))
            print(f"round {round_ + 1}/{args.rounds}: " + "; ".join(
                f"{label}: " + ", ".join(f"{t} {p50[label][t][-1]:.3f}" for t in TOOLS)
                for label in labels), flush=True)
    finally:
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)

    from edgecnn.runtime.bench import machine_info

    models = {}
    for label in labels:
        p = p50[label]
        r = ratio_stats(p["runner"], p["litert-benchmark"])
        models[label] = {"p50_ms": p, "runner_vs_litert": r,
                         "runner_vs_bare": ratio_stats(p["runner"], p["bare loop"]),
                         "bare_vs_litert": ratio_stats(p["bare loop"], p["litert-benchmark"]),
                         "verdict": verdict(r)}
    report = {
        "date": datetime.datetime.now().strftime("%Y-%m-%d %H:%M"),
        "command": "python benchmarks/bench_overhead.py" + (
            " " + " ".join(argv if argv is not None else sys.argv[1:])).rstrip(),
        "minutes": (time.time() - start) / 60, "load_start": load_start,
        "load_end": [round(x, 2) for x in os.getloadavg()], "machine": machine_info(),
        "versions": versions(), "args": vars(args), "target": TARGET, "models": models,
    }
    atomic_write_json(args.output + ".json", report)
    print(write_markdown(report, args.output + ".md"))


if __name__ == "__main__":
    main()
