"""edgecnn against Google's own quantized MobileNets: accuracy and latency, in one run.

Google's hosted TFLite classifiers (TF1 quantization-aware-trained uint8 MobileNet V1 and V2,
and the TF2 post-training int8 MobileNetV2; Apache-2.0 copies in the public repository
google-coral/test_data, or from the TFLite hosted-models page) carry real ImageNet weights.
For each one found in ``--official DIR``, in one process:

* the official model as published: top-1/top-5 on ``--data``, XNNPACK partitions;
* its weights imported into edgecnn's network of the same architecture (``edgecnn weights
  import``: dequantized, BatchNorm folded; 1001 classes) and run as float32 Keras;
* edgecnn's int8 of those weights, post-training (calibrated with bias correction, the
  ``edgecnn convert --int8`` default) and QAT distilled from the float model without labels
  (``edgecnn.converters.qat.distill``); every image is scored by models calibrated and
  fine-tuned on the other fold only (``--folds``);
* edgecnn's int8 of the same architecture with random weights (latency only).

Every model reads the same pixels: the shorter side resized to ``size / 0.875`` (bilinear)
and the center ``size`` square (TF-slim's evaluation crop). Latency: 1 thread, LiteRT with
XNNPACK, every variant warmed up, then ``--rounds`` rounds with the variants interleaved
(median of the round medians, min-max), so the ratios are measured side by side.

    python benchmarks/vs_official.py --official DIR --data ../shared/data/imagenet_sample_500

Results: ``benchmarks/results/vs_official.{json,md}``.
"""
from __future__ import annotations

import argparse
import datetime
import gc
import json
import os
import sys
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.dirname(HERE))

from compare_stock import Runner, machine, measure, versions  # noqa: E402
from imagenet_accuracy import keras_logits, metrics  # noqa: E402

#: file -> (edgecnn model, what it is)
OFFICIAL = {
    "mobilenet_v1_0.25_128_quant.tflite": ("mobilenet", "TF1 QAT uint8"),
    "mobilenet_v1_0.5_160_quant.tflite": ("mobilenet", "TF1 QAT uint8"),
    "mobilenet_v1_0.75_192_quant.tflite": ("mobilenet", "TF1 QAT uint8"),
    "mobilenet_v2_1.0_224_quant.tflite": ("mobilenet_v2", "TF1 QAT uint8"),
    "tf2_mobilenet_v2_1.0_224_ptq.tflite": ("mobilenet_v2", "TF2 post-training int8"),
}
CROP = 0.875


def run_official(file: str, name: str, kind: str, data, space, args, workdir, log) -> dict:
    import edgecnn
    from edgecnn.converters.deploy import deployable
    from edgecnn.converters.qat import distill, quantize_aware
    from edgecnn.data.folder import synthetic_images
    from edgecnn.data.labelled import load_images, split
    from edgecnn.jobs.weights import import_weights
    from edgecnn.runtime import tflite as rt
    from edgecnn.runtime.evaluate import TfliteModel

    official = os.path.join(args.official, file)
    stem = file[:-len(".tflite")]
    lite = TfliteModel(official)
    size = lite.size
    report = import_weights(official, name, output=os.path.join(workdir, f"{stem}.h5"))
    alpha = report["alpha"]
    log(f"{file}: {name} alpha {alpha:g} at {size} px, {len(report['rows'])} tensors "
        f"imported (agreement with the file: "
        f"{report['agreement']['probability_correlation']:.4f})")
    images = load_images(data, size, space=space, crop=CROP, resize="bilinear")
    pixels, labels = images.images, images.labels

    def built(weights):
        return edgecnn.create_model(name, alpha=alpha, input_size=size, num_classes=1001,
                                    weights=weights)

    model = built(report["output"])
    deploy = deployable(model)
    scores = {"official": lite.logits(pixels), "float32": keras_logits(deploy, pixels)}
    files = {"official": official}
    folds = split(data, args.folds, seed=args.seed)

    def path(tag):
        return os.path.join(workdir, f"{stem}_{tag}.tflite")

    def put(key, index, logits):
        scores.setdefault(key, np.zeros_like(scores["float32"]))[index] = logits

    for f, scored in enumerate(folds):
        pool = [i for k, part in enumerate(folds) if k != f for i in part]
        calib = pixels[pool]
        log(f"  fold {f + 1}/{len(folds)}: scoring {len(scored)}, calibrating on {len(pool)}")
        card = edgecnn.convert(model, path(f"int8_f{f}"), "int8", representative_data=calib)
        files.setdefault("int8", card.path)
        put("int8", scored, rt.run_logits(rt.load_interpreter(card.path), pixels[scored]))
        if args.qat_epochs:
            qat = quantize_aware(model)
            distill(qat, deploy, calib, epochs=args.qat_epochs, learning_rate=args.qat_lr,
                    temperature=args.temperature)
            card = edgecnn.convert(qat, path(f"qat_f{f}"), "int8", representative_data=calib)
            files.setdefault("qat_distill", card.path)
            put("qat_distill", scored,
                rt.run_logits(rt.load_interpreter(card.path), pixels[scored]))
            del qat
            gc.collect()
    random = built("none")
    card = edgecnn.convert(random, path("random_int8"), "int8",
                           representative_data=synthetic_images(32, size))
    files["random_int8"] = card.path

    rows = {}
    for key, path_ in files.items():
        analysis = rt.analyze(path_)
        rows[key] = {"partitions": analysis["xnnpack_partitions"],
                     "size_bytes": analysis["size_bytes"], "all_integer": analysis["all_int8"]}
    for key, logits in scores.items():
        m = metrics(logits, labels, scores["float32"] if key != "official" else None)
        m["agreement_with_official"] = round(
            100.0 * float((logits.argmax(1) == scores["official"].argmax(1)).mean()), 2)
        rows.setdefault(key, {}).update(m)
        log(f"  {key}: top-1 {m['top1']} %, top-5 {m['top5']} %, partitions "
            f"{rows[key].get('partitions', '-')}")
    pixel = pixels[0].astype(np.float32)
    runners = {key: Runner(rt.read_model(p), 1, pixel) for key, p in files.items()}
    timing = measure(runners, args.rounds, args.round_seconds, 2000)
    for key, t in timing.items():
        rows[key]["latency"] = t
    base = timing["official"]["median_ms"]
    for key in timing:
        rows[key]["latency_vs_official"] = round(timing[key]["median_ms"] / base, 3)
    log("  latency (ms, 1 thread): " + ", ".join(f"{k} {v['median_ms']}"
                                                  for k, v in timing.items()))
    return {"file": file, "kind": kind, "model": name, "alpha": alpha, "size": size,
            "import": {"tensors": len(report["rows"]), **report["agreement"]},
            "variants": rows}


LABELS = {"official": "official (as published)", "float32": "imported, float32 Keras",
          "int8": "imported, edgecnn int8 post-training",
          "qat_distill": "imported, edgecnn int8 QAT (distilled)",
          "random_int8": "random weights, edgecnn int8 (latency only)"}


def markdown(results: dict) -> str:
    lines = [f"# edgecnn against Google's quantized MobileNets ({results['date']})", "",
             f"`{results['command']}`", "",
             f"{results['images']} images of {results['classes']} classes "
             f"({results['label_mapping']}), center crop {CROP:g}; {results['folds']} folds, "
             f"each scored by models calibrated and fine-tuned on the others; QAT: "
             f"{results['qat_epochs']} epoch(s) distilled, lr {results['qat_lr']}. Latency: 1 "
             f"thread, {results['rounds']} interleaved rounds, median of round medians "
             f"(min-max); {results['machine']['cpu']}, {results['machine']['nproc']} "
             f"cores, LiteRT {results['versions'].get('ai_edge_litert', '?')}.", ""]
    for entry in results["models"]:
        lines += [f"## {entry['file']} ({entry['kind']}): edgecnn `{entry['model']}` alpha "
                  f"{entry['alpha']:g}, {entry['size']} px", "",
                  "| variant | top-1 % | top-5 % | agrees with official % | XNNPACK partitions "
                  "| ms (1 thread) | vs official |",
                  "|---|---:|---:|---:|---:|---:|---:|"]
        for key in [k for k in LABELS if k in entry["variants"]]:
            row = entry["variants"][key]
            lat = row.get("latency")
            lines.append(
                f"| {LABELS.get(key, key)} | {row.get('top1', '-')} | {row.get('top5', '-')} | "
                f"{row.get('agreement_with_official', '-')} | {row.get('partitions', '-')} | "
                + (f"{lat['median_ms']} ({lat['min_ms']}-{lat['max_ms']}) | "
                   f"{row['latency_vs_official']:.2f}x |" if lat else "- | - |"))
        lines.append("")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--official", required=True,
                        help="folder with the official .tflite files (names as published)")
    parser.add_argument("--data", required=True, help="ImageNet-style folder")
    parser.add_argument("--files", default=",".join(OFFICIAL),
                        help="comma-separated; those not in --official are skipped")
    parser.add_argument("--folds", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--qat-epochs", type=int, default=2, help="0: no QAT")
    parser.add_argument("--qat-lr", type=float, default=1e-5)
    parser.add_argument("--temperature", type=float, default=2.0)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--round-seconds", type=float, default=1.0)
    parser.add_argument("--limit", type=int, default=None, help="use only this many images")
    parser.add_argument("--output", default=os.path.join(HERE, "results", "vs_official"))
    args = parser.parse_args(argv)

    from edgecnn.data.labelled import label_space, scan, subset
    from edgecnn.utils.files import atomic_write_bytes

    data = scan(args.data)
    space = label_space(data, 1001, "auto")  # background first, as the official models
    if args.limit and args.limit < len(data.files):
        data = subset(data, sorted(int(i) for i in np.random.default_rng(args.seed).permutation(
            len(data.files))[:args.limit]))
    start = time.perf_counter()

    def log(message):
        print(f"[{time.perf_counter() - start:7.0f} s] {message}", flush=True)

    results = {"date": datetime.date.today().isoformat(),
               "command": "python benchmarks/vs_official.py " + " ".join(
                   sys.argv[1:] if argv is None else argv),
               "data": os.path.abspath(args.data), "images": len(data.files),
               "classes": len(data.classes), "label_mapping": space.how, "folds": args.folds,
               "qat_epochs": args.qat_epochs, "qat_lr": args.qat_lr,
               "temperature": args.temperature, "rounds": args.rounds,
               "machine": machine(), "versions": versions(), "models": []}
    workdir = tempfile.mkdtemp(prefix="edgecnn_vs_official_")
    for file in [f for f in args.files.split(",") if f]:
        if file not in OFFICIAL:
            parser.error(f"unknown official file {file}; known: {', '.join(OFFICIAL)}")
        if not os.path.isfile(os.path.join(args.official, file)):
            log(f"{file}: not in {args.official}; skipped")
            continue
        name, kind = OFFICIAL[file]
        results["models"].append(run_official(file, name, kind, data, space, args, workdir,
                                              log))
        atomic_write_bytes(args.output + ".json", json.dumps(results, indent=1).encode())
        atomic_write_bytes(args.output + ".md", markdown(results).encode())
        from edgecnn._keras import keras

        keras.backend.clear_session()
        gc.collect()
    print(markdown(results))
    log(f"wrote {args.output}.json and .md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
