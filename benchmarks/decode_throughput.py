"""What the one decoder costs training: images per second of the training pipeline's decode
stage, edgecnn's ``decode_image`` (Pillow, inside tf.data through ``tf.numpy_function``)
against the stock ``tf.io.decode_image`` it replaced, on the same real photos.

Each round decodes every file of the folder once through each path (the order alternates
round by round), as ``make_splits`` does before its cache: ``tf.data`` with
``num_parallel_calls=AUTOTUNE``, then the shorter side resized to ``--size``. Reports the
median and range of images/s per path and the ratio, round by round. Decoding happens once per
file per run: ``make_splits`` caches the decoded, resized images (``--no-cache`` in
``edgecnn train`` turns that off, and then every epoch pays it).

    .venv/bin/python benchmarks/decode_throughput.py --data ../shared/data/imagenet_sample_500

Writes results/decode_throughput.json and results/decode_throughput.md.
"""
from __future__ import annotations

import argparse
import datetime
import os
import platform
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from edgecnn.utils.files import atomic_write_bytes, atomic_write_json  # noqa: E402


def files_of(folder: str) -> list[str]:
    from edgecnn.data.labelled import scan

    return list(scan(folder).files)


def pipeline(files, size: int, path: str):
    from edgecnn._keras import tf
    from edgecnn.data import pipeline as p

    def stock(f):
        image = tf.io.decode_image(tf.io.read_file(f), channels=3, expand_animations=False,
                                   dtype=tf.uint8)
        image.set_shape([None, None, 3])
        return image

    decode = p._decode_file if path == "edgecnn" else stock
    ds = tf.data.Dataset.from_tensor_slices(files)
    return ds.map(lambda f: tf.cast(p._resize_shorter(decode(f), size), tf.uint8),
                  num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)


def one_pass(files, size: int, path: str) -> float:
    start = time.perf_counter()
    n = sum(1 for _ in pipeline(files, size, path))
    assert n == len(files), (n, len(files))
    return len(files) / (time.perf_counter() - start)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True, help="an image folder (any layout edgecnn reads)")
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--results", default=os.path.join(HERE, "results"))
    args = ap.parse_args()
    files = files_of(args.data)
    one_pass(files[:16], args.size, "edgecnn")  # build both graphs once
    one_pass(files[:16], args.size, "tf.io.decode_image")
    rates = {"edgecnn": [], "tf.io.decode_image": []}
    for r in range(args.rounds):
        order = list(rates) if r % 2 == 0 else list(reversed(rates))
        for path in order:
            rates[path].append(one_pass(files, args.size, path))
            print(f"round {r + 1}: {path:20s} {rates[path][-1]:7.1f} images/s", flush=True)
    ratios = [e / s for e, s in zip(rates["edgecnn"], rates["tf.io.decode_image"])]
    result = {
        "date": datetime.date.today().isoformat(), "data": os.path.abspath(args.data),
        "files": len(files), "size": args.size, "rounds": args.rounds,
        "machine": {"platform": platform.platform(), "cpu_count": os.cpu_count()},
        "images_per_second": rates,
        "median": {k: statistics.median(v) for k, v in rates.items()},
        "ratio_edgecnn_to_stock": {"median": statistics.median(ratios), "min": min(ratios),
                                   "max": max(ratios)},
        "command": "python benchmarks/decode_throughput.py " + " ".join(sys.argv[1:]),
    }
    lines = [
        "# Training decode throughput: edgecnn's decoder against tf.io.decode_image", "",
        f"{len(files)} files of `{args.data}`, shorter side to {args.size} px, tf.data AUTOTUNE, "
        f"{args.rounds} interleaved rounds, {result['date']}, {os.cpu_count()} cores.", "",
        "| path | images/s, median | range |", "|---|---|---|",
    ]
    for k, v in rates.items():
        lines.append(f"| {k} | {statistics.median(v):.1f} | {min(v):.1f}-{max(v):.1f} |")
    q = result["ratio_edgecnn_to_stock"]
    lines += ["", f"edgecnn / stock, round by round: median {q['median']:.2f} "
              f"(range {q['min']:.2f}-{q['max']:.2f}).", "", f"`{result['command']}`", ""]
    os.makedirs(args.results, exist_ok=True)
    atomic_write_json(os.path.join(args.results, "decode_throughput.json"), result)
    atomic_write_bytes(os.path.join(args.results, "decode_throughput.md"),
                       "\n".join(lines).encode())
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
