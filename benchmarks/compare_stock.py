#!/usr/bin/env python
"""edgecnn against the stock path: keras.applications + tf.lite.TFLiteConverter.

For each family (alpha 1.0, default resolution) this script, in one process:

* builds ``edgecnn.create_model(name)`` and converts it with ``edgecnn.convert`` to float32
  and to int8 (post-training quantization, uint8 input/output);
* builds keras.applications' model of the same architecture (where it has one) and converts
  it the way a user stitching it by hand would: ``TFLiteConverter.from_keras_model``, no
  optimizations for float32; for int8 ``optimizations=[DEFAULT]``, a representative dataset
  of the same images through the keras model's own preprocessing, ``TFLITE_BUILTINS_INT8``
  and uint8 input/output;
* times both converters the same way (wall time of the converter call, tracing included);
* runs all four .tflite files in the LiteRT interpreter (XNNPACK, its default) with 1 and 2
  threads, interleaved round by round so machine noise hits every variant alike, and reports
  the median of the per-round medians with the min-max spread of the rounds;
* for MobileNetV3, also measures edgecnn's network with ReLU6 in place of hard-swish: a
  lower bound for any int8 hard-swish (``--no-hard-swish-floor`` skips it);
* counts the XNNPACK partitions of each file and the effective GMAC/s (MACs of the edgecnn
  model / latency).

Both sides use random weights (``weights=None``; latency does not depend on them) and 1000
classes. Results go to ``benchmarks/results/compare_stock.{json,md}``; the table is printed.

    python benchmarks/compare_stock.py                  # every family, ~20-40 min
    python benchmarks/compare_stock.py --quick          # 128 px, fewer rounds: a smoke run
    python benchmarks/compare_stock.py --models mobilenet_v3_small,shufflenet_v2
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shlex
import statistics
import sys
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))  # run from a checkout without installing

FAMILIES = ["mobilenet", "mobilenet_v2", "mobilenet_v3_large", "mobilenet_v3_small",
            "shufflenet", "shufflenet_v2", "xception", "efficientnet_b0", "efficientnet_lite0"]
V3 = {"mobilenet_v3_large", "mobilenet_v3_small"}
VARIANTS = ("edgecnn_float32", "edgecnn_int8", "stock_float32", "stock_int8", "floor_int8")

# Targets from issue 4, item 10.
TARGET_INT8_VS_STOCK = 1.0
TARGET_INT8_VS_STOCK_V3 = 0.3
TARGET_INT8_VS_FLOAT = 0.5
TARGET_CONVERSION = 1.2


# --- the stock side ------------------------------------------------------------------------

def stock_preprocess(app: str):
    """The preprocessing a user of keras.applications' ``app`` applies to RGB 0-255."""
    from edgecnn._keras import keras

    ka = keras.applications
    if app in ("MobileNetV3Large", "MobileNetV3Small"):
        # built with include_preprocessing=False: the model expects [-1, 1]
        return lambda x: x / 127.5 - 1.0
    module = {"MobileNet": ka.mobilenet, "MobileNetV2": ka.mobilenet_v2,
              "Xception": ka.xception, "EfficientNetB0": ka.efficientnet}[app]
    return module.preprocess_input  # EfficientNet's is the identity (it rescales inside)


def stock_model(spec, size: int):
    """keras.applications' model with random weights. EfficientNet normalizes inside the
    model with a Normalization layer whose statistics come with the ImageNet weights; with
    ``weights=None`` it is the identity, which the converter drops, so the stock graph would
    skip the per-channel normalization every real EfficientNet does. It gets ImageNet's mean
    and variance, as loading the ImageNet weights gives it (edgecnn's model normalizes with
    the same statistics)."""
    from edgecnn._keras import keras

    kwargs = spec.keras_kwargs(1.0, **spec.options) if spec.keras_kwargs else {}
    build = getattr(keras.applications, spec.keras_app)
    model = build(weights=None, input_shape=(size, size, 3), classes=1000, **kwargs)
    if spec.keras_app.startswith("EfficientNet"):
        norm = [layer for layer in model.layers
                if isinstance(layer, keras.layers.Normalization)][0]
        mean = np.array([0.485, 0.456, 0.406], np.float32)
        variance = np.array([0.229, 0.224, 0.225], np.float32) ** 2
        count = norm.get_weights()[2]
        norm.set_weights([mean, variance, count])
    return model


def stock_convert(model, precision: str, calibration: np.ndarray | None) -> tuple[bytes, float]:
    """The hand-stitched stock conversion; returns the bytes and the converter's wall time."""
    from edgecnn._keras import tf
    from edgecnn.utils.quiet import native_stderr_silenced

    start = time.perf_counter()
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    if precision == "int8":
        def representative():
            for image in calibration:
                yield [image[None].astype(np.float32)]
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = representative
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = tf.uint8
        converter.inference_output_type = tf.uint8
    with native_stderr_silenced():  # edgecnn.convert silences the MLIR chatter the same way
        data = converter.convert()
    return data, time.perf_counter() - start


def calibrate_batchnorm(model, inputs: np.ndarray) -> int:
    """Set every BatchNormalization's moving statistics to its batch statistics on
    ``inputs`` (preprocessed images): ``edgecnn.models.init``, applied by hand to both
    sides. Freshly initialized BN layers (mean 0, variance 1) let random-weight activations
    shrink layer after layer to ~1e-6; int8 calibration then gives scales no trained
    network has, and XNNPACK refuses e.g. an int8 ADD whose input/output scale ratio is
    that small, splitting the stock graph. Returns the number of BN layers set."""
    from edgecnn.models.init import init_batchnorm_statistics

    return init_batchnorm_statistics(model, inputs)


def hard_swish_floor_model(name: str, size: int):
    """edgecnn's MobileNetV3 with ReLU6 in place of every hard-swish. NOT the same network:
    a lower bound for any int8 form of hard-swish (a ReLU6 fuses into the convolution before
    it and costs no op), measured to show what the <= 0.3x target would need."""
    import edgecnn
    import edgecnn.models.blocks as blocks
    import edgecnn.models.mobilenet_v3 as mv3

    original = blocks.activation
    floor = lambda kind, name=None: original("relu6" if kind == "hard_swish" else kind, name)  # noqa: E731
    blocks.activation = mv3.activation = floor
    try:
        return edgecnn.create_model(name, input_size=size)
    finally:
        blocks.activation = mv3.activation = original


# --- latency -------------------------------------------------------------------------------

class Runner:
    """One interpreter with its input set once (the content does not change the work)."""

    def __init__(self, model_bytes: bytes, threads: int, float_input: np.ndarray):
        from edgecnn.runtime import tflite as rt

        self.interpreter = rt.load_interpreter(model_bytes, threads=threads)
        detail = self.interpreter.get_input_details()[0]
        self.interpreter.set_tensor(detail["index"],
                                    rt.quantize_pixels(float_input[None],
                                                       rt.input_spec(self.interpreter)["dtype"]))
        self.invokes = 1

    def timed(self, n: int) -> list[float]:
        invoke, times = self.interpreter.invoke, []
        for _ in range(n):
            start = time.perf_counter()
            invoke()
            times.append((time.perf_counter() - start) * 1000.0)
        return times


def measure(runners: dict, rounds: int, round_seconds: float, max_invokes: int) -> dict:
    """Warm up every runner, size its rounds to ~round_seconds, then run the rounds with the
    variants interleaved (their order rotated each round)."""
    for runner in runners.values():
        warm = runner.timed(3)
        runner.invokes = int(min(max_invokes, max(3, round(round_seconds * 1000 / min(warm)))))
    medians = {name: [] for name in runners}
    names = list(runners)
    for r in range(rounds):
        for name in names[r % len(names):] + names[:r % len(names)]:
            medians[name].append(statistics.median(runners[name].timed(runners[name].invokes)))
    result = {}
    for name, values in medians.items():
        q1, _, q3 = statistics.quantiles(values, n=4) if len(values) > 1 else (values[0],) * 3
        result[name] = {"median_ms": round(statistics.median(values), 3),
                        "min_ms": round(min(values), 3), "max_ms": round(max(values), 3),
                        "q1_ms": round(q1, 3), "q3_ms": round(q3, 3),
                        "round_medians_ms": [round(v, 3) for v in values],
                        "invokes_per_round": runners[name].invokes}
    return result


# --- one family ----------------------------------------------------------------------------

def slim_analysis(model_bytes: bytes) -> dict:
    from edgecnn.runtime import tflite as rt

    a = rt.analyze(model_bytes)
    return {k: a[k] for k in ("size_bytes", "op_count", "all_int8", "float_ops",
                              "xnnpack_partitions", "ops_outside_xnnpack", "ops")}


def run_family(name: str, size: int, images: np.ndarray, args, workdir: str,
               stock_first: bool, log) -> dict:
    import edgecnn
    from edgecnn._keras import keras
    from edgecnn.jobs.convert import init_random_batchnorm

    spec = edgecnn.get_model_spec(name)
    out = {"name": name, "resolution": size, "alpha": 1.0, "stock_app": spec.keras_app}
    files, conversions = {}, {}
    keras.backend.clear_session()
    keras.utils.set_random_seed(0)
    model = edgecnn.create_model(name, input_size=size)
    bn_images = images[:args.bn_samples].astype(np.float32)

    def edgecnn_init(network):
        """calibrate: by hand, as on the stock side; random: what `edgecnn convert` does to
        a random-weight network (the same statistics, from its calibration images)."""
        if args.init == "calibrate":
            calibrate_batchnorm(network, spec.preprocessing.apply(bn_images))
        else:
            init_random_batchnorm(network, spec, images, args.data_label)

    edgecnn_init(model)
    out["macs"] = int(edgecnn.count_macs(model))
    out["params"] = int(model.count_params())
    kmodel = None
    if spec.keras_app:
        keras.utils.set_random_seed(0)
        kmodel = stock_model(spec, size)
        out["stock_params"] = int(kmodel.count_params())
        try:
            out["stock_macs"] = int(edgecnn.count_macs(kmodel))
        except Exception:  # noqa: BLE001 - a sanity figure only; never fatal
            out["stock_macs"] = None
        preprocess = stock_preprocess(spec.keras_app)
        stock_calibration = np.asarray(preprocess(images.astype(np.float32).copy()), np.float32)
        if args.init == "calibrate":   # random: keras' initial statistics, as a user gets
            calibrate_batchnorm(kmodel, stock_calibration[:args.bn_samples])

    def record(key, converter, total=None, **extra):
        entry = conversions.setdefault(key, {"runs_seconds": [], "total_runs_seconds": []})
        entry["runs_seconds"].append(round(converter, 2))
        entry["converter_seconds"] = min(entry["runs_seconds"])
        if total is not None:
            entry["total_runs_seconds"].append(round(total, 2))
            entry["total_seconds"] = min(entry["total_runs_seconds"])
        entry.update(extra)

    def edgecnn_side(precision):
        path = os.path.join(workdir, f"{name}_{size}_{precision}.tflite")
        start = time.perf_counter()
        report = edgecnn.convert(model, path, precision,
                                 representative_data=images if precision == "int8" else None,
                                 validation_data=images[:args.validation],
                                 calibration_source=args.data_label)
        total = time.perf_counter() - start
        with open(path, "rb") as f:
            files[f"edgecnn_{precision}"] = f.read()
        record(f"edgecnn_{precision}", report.conversion_seconds, total,
               agreement=report.agreement, warnings=report.warnings)
        log(f"  edgecnn {precision}: converter {report.conversion_seconds:.1f} s "
            f"(edgecnn.convert total {total:.1f} s)")

    def stock_side(precision):
        data, seconds = stock_convert(kmodel, precision,
                                      stock_calibration if precision == "int8" else None)
        files[f"stock_{precision}"] = data
        record(f"stock_{precision}", seconds)
        if args.keep_models:
            with open(os.path.join(workdir, f"{name}_{size}_{precision}_stock.tflite"),
                      "wb") as f:
                f.write(data)
        log(f"  stock   {precision}: converter {seconds:.1f} s")

    if name in V3 and args.hard_swish_floor:
        keras.utils.set_random_seed(0)
        floor = hard_swish_floor_model(name, size)
        edgecnn_init(floor)
        path = os.path.join(workdir, f"{name}_{size}_floor_int8.tflite")
        edgecnn.convert(floor, path, "int8", representative_data=images,
                        validation_data=images[:args.validation])
        with open(path, "rb") as f:
            files["floor_int8"] = f.read()
        del floor

    # conversions: each repeated, the sides alternating, the fastest run kept (wall time
    # of deterministic work under noise: the minimum is the least disturbed measurement)
    sides = [edgecnn_side] + ([stock_side] if kmodel is not None else [])
    if stock_first:
        sides.reverse()
    for precision in ("float32", "int8"):
        for repeat in range(args.conversion_repeats):
            for side in (sides if repeat % 2 == 0 else sides[::-1]):
                side(precision)
    out["conversion"] = conversions
    out["analysis"] = {variant: slim_analysis(data) for variant, data in files.items()}
    for variant, a in out["analysis"].items():
        log(f"  {variant}: {a['xnnpack_partitions']} XNNPACK partition(s), outside: "
            f"{a['ops_outside_xnnpack'] or '-'}")

    # the same image on every variant: raw pixels for edgecnn, preprocessed for stock
    feed = {"edgecnn_float32": images[0].astype(np.float32),
            "edgecnn_int8": images[0].astype(np.float32),
            "floor_int8": images[0].astype(np.float32)}
    if kmodel is not None:
        feed["stock_float32"] = feed["stock_int8"] = stock_calibration[0]
    out["latency"] = {}
    for threads in args.threads:
        runners = {v: Runner(files[v], threads, feed[v]) for v in VARIANTS if v in files}
        out["latency"][str(threads)] = measure(runners, args.rounds, args.round_seconds,
                                               args.max_invokes)
        del runners
        log("  " + f"{threads} thread(s): " + ", ".join(
            f"{v} {m['median_ms']:.2f} ms" for v, m in out["latency"][str(threads)].items()))
    model = kmodel = None  # free them before the next family
    keras.backend.clear_session()
    out["ratios"], out["targets"] = ratios_and_targets(out)
    return out


def _ratio(a: dict, b: dict) -> dict:
    """a/b from the medians, and its range from the rounds' spread (min/max against max/min)."""
    return {"ratio": round(a["median_ms"] / b["median_ms"], 3),
            "low": round(a["min_ms"] / b["max_ms"], 3),
            "high": round(a["max_ms"] / b["min_ms"], 3)}


def _check(value: dict, target: float) -> str:
    if value is None:
        return "n/a"
    if value["high"] <= target:
        return "pass"
    if value["low"] > target:
        return "MISS"
    return "pass (in noise)" if value["ratio"] <= target else "miss (in noise)"


def ratios_and_targets(r: dict) -> tuple[dict, dict]:
    ratios, targets = {}, {}
    stock_target = TARGET_INT8_VS_STOCK_V3 if r["name"] in V3 else TARGET_INT8_VS_STOCK
    for threads, lat in r["latency"].items():
        vs_stock = _ratio(lat["edgecnn_int8"], lat["stock_int8"]) if "stock_int8" in lat \
            else None
        vs_stock_float = _ratio(lat["edgecnn_float32"], lat["stock_float32"]) \
            if "stock_float32" in lat else None
        int8_float = _ratio(lat["edgecnn_int8"], lat["edgecnn_float32"])
        stock_int8_float = _ratio(lat["stock_int8"], lat["stock_float32"]) \
            if "stock_int8" in lat else None
        if "floor_int8" in lat and "stock_int8" in lat:
            ratios.setdefault(threads, {})["floor_int8_vs_stock_int8"] = _ratio(lat["floor_int8"],
                                                                 lat["stock_int8"])
        ratios[threads] = {**ratios.get(threads, {}), "edgecnn_int8_vs_stock_int8": vs_stock,
                           "edgecnn_float_vs_stock_float": vs_stock_float,
                           "edgecnn_int8_vs_edgecnn_float": int8_float,
                           "stock_int8_vs_stock_float": stock_int8_float,
                           "gmacs_per_s": {v: round(r["macs"] / (m["median_ms"] / 1000) / 1e9, 2)
                                           for v, m in lat.items()}}
        targets[f"int8_vs_stock_int8_{threads}t (<= {stock_target})"] = _check(vs_stock,
                                                                              stock_target)
        targets[f"int8_vs_float_{threads}t (<= {TARGET_INT8_VS_FLOAT})"] = _check(
            int8_float, TARGET_INT8_VS_FLOAT)
    conv = r["conversion"]
    for precision in ("float32", "int8"):
        if f"stock_{precision}" in conv:
            ratio = conv[f"edgecnn_{precision}"]["converter_seconds"] / \
                conv[f"stock_{precision}"]["converter_seconds"]
            ratios[f"conversion_{precision}"] = round(ratio, 3)
            ratios[f"conversion_{precision}_total"] = round(
                conv[f"edgecnn_{precision}"]["total_seconds"] /
                conv[f"stock_{precision}"]["converter_seconds"], 3)
            targets[f"conversion_{precision} (<= {TARGET_CONVERSION})"] = \
                "pass" if ratio <= TARGET_CONVERSION else "MISS"
        else:
            ratios[f"conversion_{precision}"] = None
            targets[f"conversion_{precision} (<= {TARGET_CONVERSION})"] = "n/a"
    return ratios, targets


# --- reporting -----------------------------------------------------------------------------

def machine() -> dict:
    cpu = "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {"nproc": os.cpu_count(), "cpu": cpu, "platform": platform.platform(),
            "python": platform.python_version()}


def versions() -> dict:
    import ai_edge_litert
    import tensorflow_model_optimization as tfmot

    import edgecnn
    from edgecnn._keras import keras, tf

    return {"edgecnn": edgecnn.__version__, "tensorflow": tf.__version__,
            "tf_keras": keras.__version__, "tfmot": tfmot.__version__,
            "ai_edge_litert": getattr(ai_edge_litert, "__version__", "?")}


def _ms(m: dict | None) -> str:
    if m is None:
        return "n/a"
    return f"{m['median_ms']:.2f} ({m['min_ms']:.2f}-{m['max_ms']:.2f})"


def _x(r: dict | None) -> str:
    return "n/a" if r is None else f"{r['ratio']:.2f}x ({r['low']:.2f}-{r['high']:.2f})"


def _seconds(conversion: dict, key: str) -> str:
    return f"{conversion[key]['converter_seconds']:.1f}" if key in conversion else "n/a"


def _times(ratio) -> str:
    return "n/a" if ratio is None else f"{ratio:.2f}x"


def _outside(ops: dict) -> dict:
    """Ops outside XNNPACK other than the uint8<->int8 QUANTIZE at the model's boundary."""
    return {op: n for op, n in sorted(ops.items()) if op != "QUANTIZE"}


def markdown(results: dict) -> str:
    meta = results["meta"]
    m, v = meta["machine"], meta["versions"]
    lines = [
        "# edgecnn vs keras.applications + stock TFLiteConverter",
        "",
        (f"Measured {meta['date']} on {m['nproc']} x {m['cpu']} ({m['platform']}, Python "
         f"{m['python']}); edgecnn {v['edgecnn']}, TensorFlow {v['tensorflow']}, tf_keras "
         f"{v['tf_keras']}, tfmot {v['tfmot']}, ai-edge-litert {v['ai_edge_litert']}. "
         f"Command: `{meta['command']}` ({meta['minutes']:.1f} min; load average "
         f"{meta['loadavg_start']} at start, {meta['loadavg_end']} at end)."),
        "",
        (f"Random weights on both sides (BatchNorm statistics {meta['bn_stats']}), 1000 "
         f"classes, alpha 1.0. Calibration: {meta['calibration']}. Latency: LiteRT "
         f"interpreter, XNNPACK, {meta['rounds']} rounds (~{meta['round_seconds']} s each) per "
         f"variant, interleaved; median of the per-round medians in ms (min-max of the "
         f"rounds). Ratios: ratio of the medians (range from the rounds' spread). Both int8 "
         f"models have uint8 input/output (a uint8->int8 QUANTIZE at each end, outside "
         f"XNNPACK, on both sides); stock keeps keras.applications' final softmax, edgecnn's "
         f"models end in logits."),
        "",
        "## Latency",
        "",
        ("| family | px | MMAC | thr | edgecnn fp32 ms | edgecnn int8 ms | stock fp32 ms | "
         "stock int8 ms | int8 edgecnn/stock | int8/fp32 edgecnn | int8/fp32 stock | "
         "GMAC/s edgecnn int8 | XNNPACK partitions int8 edgecnn / stock |"),
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results["families"]:
        an = r["analysis"]
        parts = f"{an['edgecnn_int8']['xnnpack_partitions']} / " + (
            str(an["stock_int8"]["xnnpack_partitions"]) if "stock_int8" in an else "n/a")
        for threads, lat in r["latency"].items():
            ra = r["ratios"][threads]
            lines.append(
                f"| {r['name']} | {r['resolution']} | {r['macs'] / 1e6:.0f} | {threads} | "
                f"{_ms(lat['edgecnn_float32'])} | {_ms(lat['edgecnn_int8'])} | "
                f"{_ms(lat.get('stock_float32'))} | {_ms(lat.get('stock_int8'))} | "
                f"{_x(ra['edgecnn_int8_vs_stock_int8'])} | "
                f"{_x(ra['edgecnn_int8_vs_edgecnn_float'])} | "
                f"{_x(ra['stock_int8_vs_stock_float'])} | "
                f"{ra['gmacs_per_s']['edgecnn_int8']:.1f} | {parts} |")
    lines += ["",
              (f"## Conversion time (s, wall time of the converter call; fastest of "
               f"{meta['conversion_repeats']} run(s), sides alternating)"),
              "",
              ("| family | edgecnn fp32 | stock fp32 | fp32 ratio | edgecnn int8 | stock int8 | "
               "int8 ratio | edgecnn.convert total fp32 / int8 (with validation) |"),
              "|---|---|---|---|---|---|---|---|"]
    for r in results["families"]:
        c, ra = r["conversion"], r["ratios"]
        lines.append(
            f"| {r['name']} | {_seconds(c, 'edgecnn_float32')} | {_seconds(c, 'stock_float32')} "
            f"| {_times(ra['conversion_float32'])} | {_seconds(c, 'edgecnn_int8')} | "
            f"{_seconds(c, 'stock_int8')} | {_times(ra['conversion_int8'])} | "
            f"{c['edgecnn_float32']['total_seconds']:.1f} / "
            f"{c['edgecnn_int8']['total_seconds']:.1f} |")
    lines += ["", "## Targets (issue 4, item 10)", "",
              ("int8 edgecnn/stock <= 1.0 (<= 0.3 for MobileNetV3), int8/fp32 <= 0.5, "
               "conversion <= 1.2x stock; per thread count. \"in noise\": the target lies "
               "inside the ratio's range from the rounds' spread."), ""]
    keys = list(results["families"][0]["targets"]) if results["families"] else []
    lines.append("| family | " + " | ".join(k.split(" (")[0] for k in keys) + " |")
    lines.append("|---" * (len(keys) + 1) + "|")
    for r in results["families"]:
        lines.append(f"| {r['name']} | " + " | ".join(r["targets"].values()) + " |")
    floors = [(r, threads) for r in results["families"] for threads in r["latency"]
              if "floor_int8" in r["latency"][threads]]
    if floors:
        lines += ["", "## MobileNetV3: the hard-swish floor", "",
                  ("`floor int8` is edgecnn's V3 with ReLU6 in place of every hard-swish: not "
                   "the same network, but a lower bound for any int8 hard-swish (a ReLU6 "
                   "fuses into the convolution before it and costs no op)."), "",
                  "| family | thr | edgecnn int8 ms | floor int8 ms | stock int8 ms | "
                  "edgecnn/stock | floor/stock |", "|---|---|---|---|---|---|---|"]
        for r, threads in floors:
            lat, ra = r["latency"][threads], r["ratios"][threads]
            lines.append(f"| {r['name']} | {threads} | {_ms(lat['edgecnn_int8'])} | "
                         f"{_ms(lat['floor_int8'])} | {_ms(lat['stock_int8'])} | "
                         f"{_x(ra['edgecnn_int8_vs_stock_int8'])} | "
                         f"{_x(ra['floor_int8_vs_stock_int8'])} |")
    outside = [(r["name"], variant, a["xnnpack_partitions"], _outside(a["ops_outside_xnnpack"]))
               for r in results["families"] for variant, a in r["analysis"].items()]
    outside = [row for row in outside if row[3]]
    if outside:
        lines += ["", "## Ops outside XNNPACK (besides the boundary QUANTIZE)", ""]
        lines += [f"- {name} {variant}: {parts} partition(s); outside: "
                  + ", ".join(f"{op} x{n}" for op, n in ops.items())
                  for name, variant, parts, ops in outside]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default=",".join(FAMILIES),
                        help="comma-separated families (default: all nine)")
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: --resolution 128 and 3 rounds of ~0.3 s")
    parser.add_argument("--resolution", type=int, default=None,
                        help="input side for every family (default: each family's default)")
    parser.add_argument("--threads", default="1,2")
    parser.add_argument("--rounds", type=int, default=None, help="default 5 (3 with --quick)")
    parser.add_argument("--round-seconds", type=float, default=None,
                        help="target length of one round of one variant (default 1.0 s)")
    parser.add_argument("--max-invokes", type=int, default=300)
    parser.add_argument("--conversion-repeats", type=int, default=None,
                        help="conversions per side and precision, the fastest kept (default 2, "
                             "1 with --quick)")
    parser.add_argument("--calib-samples", type=int, default=64)
    parser.add_argument("--validation", type=int, default=16,
                        help="images edgecnn.convert checks agreement on (outside the timing)")
    parser.add_argument("--init", choices=("calibrate", "random"), default="calibrate",
                        help="calibrate (default): set both sides' BatchNorm statistics on the "
                             "first --bn-samples calibration images, so random-weight "
                             "activations have a trained model's scale; random: what a user "
                             "gets: edgecnn's network as `edgecnn convert` prepares a random-"
                             "weight network, keras.applications' with its initial statistics")
    parser.add_argument("--bn-samples", type=int, default=16)
    parser.add_argument("--data", choices=("digits", "synthetic"), default="digits",
                        help="calibration images, the same for both sides")
    parser.add_argument("--out", default=os.path.join(HERE, "results"),
                        help="folder for compare_stock.json and .md")
    parser.add_argument("--name", default=None,
                        help="results file stem (default compare_stock, or compare_stock_quick)")
    parser.add_argument("--no-hard-swish-floor", dest="hard_swish_floor",
                        action="store_false",
                        help="skip the MobileNetV3 variant with ReLU6 for hard-swish (a lower "
                             "bound, measured by default)")
    parser.add_argument("--keep-models", default=None,
                        help="keep the .tflite files in this folder (default: a temp folder)")
    args = parser.parse_args(argv)

    import edgecnn

    families = [m.strip() for m in args.models.split(",") if m.strip()]
    known = set(edgecnn.list_models())
    unknown = [m for m in families if m not in known]
    if unknown:
        print(f"unknown model(s): {', '.join(unknown)}; known: {', '.join(FAMILIES)}",
              file=sys.stderr)
        return 2
    if args.quick:
        args.resolution = args.resolution or 128
    args.name = args.name or ("compare_stock_quick" if args.quick else "compare_stock")
    args.conversion_repeats = args.conversion_repeats or (1 if args.quick else 2)
    args.rounds = args.rounds or (3 if args.quick else 5)
    args.round_seconds = args.round_seconds or (0.3 if args.quick else 1.0)
    args.threads = [int(t) for t in args.threads.split(",")]
    os.makedirs(args.out, exist_ok=True)

    def log(msg):
        print(msg, flush=True)

    started = time.time()
    loadavg_start = os.getloadavg()
    date = datetime.datetime.now().strftime("%Y-%m-%d %H:%M")
    command = " ".join(["python benchmarks/compare_stock.py"] + [
        shlex.quote(a) for a in (sys.argv[1:] if argv is None else argv)])
    from edgecnn.data import synthetic_images

    def calibration(size):
        if args.data == "synthetic":
            return synthetic_images(args.calib_samples, size)
        from edgecnn.data.digits import load_digits

        return load_digits(size, limit=args.calib_samples).images
    args.data_label = "built-in digits" if args.data == "digits" else "synthetic"

    # one throw-away conversion pays TensorFlow's one-time converter set-up for both sides
    from edgecnn._keras import keras, tf

    warm = keras.Sequential([keras.Input((32, 32, 3)), keras.layers.Conv2D(4, 3),
                             keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(2)])
    stock_convert(warm, "int8", np.random.default_rng(0).uniform(-1, 1, (4, 32, 32, 3)))
    del warm
    tf.get_logger().setLevel("ERROR")

    results = {"meta": {}, "families": []}
    keep = args.keep_models
    with tempfile.TemporaryDirectory(prefix="edgecnn_bench_") as tmp:
        workdir = keep or tmp
        os.makedirs(workdir, exist_ok=True)
        for i, name in enumerate(families):
            spec = edgecnn.get_model_spec(name)
            size = args.resolution or spec.default_input
            images = calibration(size)
            t0 = time.time()
            log(f"[{i + 1}/{len(families)}] {name} @ {size}px")
            result = run_family(name, size, images, args, workdir, stock_first=bool(i % 2), log=log)
            result["seconds"] = round(time.time() - t0, 1)
            results["families"].append(result)
            log(f"  done in {result['seconds']:.0f} s; targets: " +
                ", ".join(f"{k}: {v}" for k, v in result["targets"].items()))
    results["meta"] = {
        "date": date, "command": command, "machine": machine(), "versions": versions(),
        "minutes": (time.time() - started) / 60,
        "loadavg_start": " ".join(f"{x:.2f}" for x in loadavg_start),
        "loadavg_end": " ".join(f"{x:.2f}" for x in os.getloadavg()),
        "rounds": args.rounds, "round_seconds": args.round_seconds, "threads": args.threads,
        "calibration": f"{args.calib_samples} {args.data_label} images (the same for both "
                       f"sides; stock through its own preprocessing)",
        "validation_images": args.validation,
        "conversion_repeats": args.conversion_repeats,
        "init": args.init,
        "bn_stats": (f"re-estimated on the first {args.bn_samples} calibration images"
                     if args.init == "calibrate" else
                     "edgecnn: set by edgecnn convert from the calibration images; stock: "
                     "left at keras' initialization"),
        "targets": {"int8_vs_stock_int8": TARGET_INT8_VS_STOCK,
                    "int8_vs_stock_int8_mobilenet_v3": TARGET_INT8_VS_STOCK_V3,
                    "int8_vs_float": TARGET_INT8_VS_FLOAT, "conversion": TARGET_CONVERSION}}
    text = markdown(results)
    with open(os.path.join(args.out, f"{args.name}.json"), "w") as f:
        json.dump(results, f, indent=1)
    with open(os.path.join(args.out, f"{args.name}.md"), "w") as f:
        f.write(text)
    print()
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
