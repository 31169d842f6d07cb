"""What the ADD -> 1x1 depthwise rewrite costs (``converters.folds.fit_xnnpack_scales``).

edgecnn rewrites an int8 ``x + constant`` ADD as a 1x1 depthwise convolution only when
XNNPACK refuses the ADD for its scales. This measures why only then: one int8 network with
trained-like activations (BatchNorm statistics from the calibration images, so no ADD is
refused) converted as usual, and the same bytes with every ``x + constant`` ADD rewritten
(``everywhere=True``), timed in one process, interleaved rounds, LiteRT + XNNPACK.

    python benchmarks/add_as_depthwise.py [--model mobilenet_v3_small] [--resolution 128]
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time

import numpy as np


def timed_round(interpreter, invokes: int) -> float:
    times = []
    for _ in range(invokes):
        start = time.perf_counter()
        interpreter.invoke()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e3


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="mobilenet_v3_small")
    parser.add_argument("--resolution", type=int, default=128)
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--invokes", type=int, default=200)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)

    import edgecnn
    from edgecnn.converters.folds import fit_xnnpack_scales
    from edgecnn.jobs.convert import init_random_batchnorm
    from edgecnn.data import synthetic_images
    from edgecnn.runtime import tflite as rt

    spec = edgecnn.get_model_spec(args.model)
    model = edgecnn.create_model(args.model, input_size=args.resolution)
    pixels = synthetic_images(32, args.resolution)
    init_random_batchnorm(model, spec, pixels, "synthetic")
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "m.tflite")
        edgecnn.convert(model, path, "int8", representative_data=pixels, card_path=None)
        with open(path, "rb") as f:
            as_add = f.read()
    as_depthwise, info = fit_xnnpack_scales(as_add, everywhere=True)
    variants = {"ADD (as converted)": as_add, "1x1 depthwise (all rewritten)": as_depthwise}
    runners = {}
    for name, data in variants.items():
        interpreter = rt.load_interpreter(data, threads=args.threads)
        detail = interpreter.get_input_details()[0]
        interpreter.set_tensor(detail["index"], rt.quantize_pixels(pixels[:1],
                                                                   rt.input_spec(interpreter)))
        timed_round(interpreter, 20)  # warm-up
        runners[name] = interpreter
        analysis = rt.analyze(data)
        print(f"{name}: {analysis['xnnpack_partitions']} XNNPACK partition(s), ops "
              f"{analysis['ops']}")
    medians = {name: [] for name in runners}
    for _ in range(args.rounds):
        for name, interpreter in runners.items():
            medians[name].append(timed_round(interpreter, args.invokes))
    base, other = list(runners)
    ratios = [b / a for a, b in zip(medians[base], medians[other])]
    print(f"\n{args.model} int8, {args.resolution} px, {args.threads} thread(s), "
          f"{info['add_as_depthwise']} ADDs rewritten, {args.rounds} interleaved rounds of "
          f"{args.invokes} invokes (median per round):")
    for name, values in medians.items():
        print(f"  {name}: median {statistics.median(values):.3f} ms "
              f"(rounds {min(values):.3f}-{max(values):.3f})")
    print(f"  depthwise / ADD: median {statistics.median(ratios):.3f} "
          f"(rounds {min(ratios):.3f}-{max(ratios):.3f})")
    return 0


if __name__ == "__main__":
    np.set_printoptions(precision=3)
    sys.exit(main())
