"""android_demo's Kotlin logic (``core``: no Android there) compiled with the real Kotlin
compiler and run on the JVM against what the Python side does (``make test-android``).

One contract, from both sides:
- the cards ``edgecnn convert`` writes, for every family and precision, parse in Kotlin to
  what Python's ``ModelCard`` reads from them;
- from the same real photo (upright, and as a sensor delivers it turned 90, 180, 270 degrees)
  the Kotlin frame-to-tensor code gives byte-identical input tensors to edgecnn's runtime
  (``load_image`` + ``ModelCard.pixels_to_input``: uint8, int8 and float32 inputs, the cards'
  crop fractions, filters and fits); the real output LiteRT gives for that input is
  dequantized, softmaxed and ranked as ``edgecnn predict`` does;
- the benchmark JSON the app shares has the keys of ``edgecnn bench --json``, and its
  statistics of a real run's per-run times are the ones ``edgecnn bench`` reported.
The goldens are written here into a temporary folder; tools/kotlin_jvm.py compiles and runs.
"""
import copy
import json
import os
import re
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tools"))

import kotlin_jvm  # noqa: E402
from stand_in_adb import elf, fake_adb  # noqa: E402,F401  (fake_adb: a fixture)

pytestmark = pytest.mark.android

#: one network of each family, small enough to convert in seconds
FAMILIES = ["mobilenet", "mobilenet_v2", "mobilenet_v3_large", "mobilenet_v3_small",
            "shufflenet", "shufflenet_v2", "xception", "efficientnet_b0", "efficientnet_lite0"]
PRECISIONS = {"float32": [], "float16": ["--fp16"], "dynamic": ["--dynamic"],
              "int8": ["--int8"]}
#: the other input/output types of an int8 model, on one family
IO_VARIANTS = {"mobilenet_v2": ["int8", "float32"]}
ROTATIONS = (0, 90, 180, 270)
APP_ASSETS = Path(HERE).parent / "android_demo" / "app" / "src" / "main" / "assets"


@pytest.fixture(scope="session")
def kotlin():
    """The compiled core and its tests (compiled once per source state, shared by workers)."""
    try:
        kotlin_jvm.setup()
        return kotlin_jvm.compile_core()[0]
    except kotlin_jvm.Refusal as exc:
        pytest.fail(f"make test-android cannot run: {exc}")


def run_junit(classes, names, goldens=None):
    props = {"edgecnn.goldens": goldens, "edgecnn.goldens.required": "true"} if goldens else {}
    run = kotlin_jvm.junit(classes, names, props)
    return run.returncode, run.stdout + run.stderr


def assert_junit_ok(classes, names, goldens=None, tests=None):
    code, out = run_junit(classes, names, goldens)
    assert code == 0 and "OK (" in out, out[-4000:]
    ran = int(re.search(r"OK \((\d+) tests?\)", out).group(1))
    if tests is not None:
        assert ran == tests, out[-2000:]
    return ran


# --- goldens --------------------------------------------------------------------------------

def write_photos(folder):
    """Real photos that ship in packages: Grace Hopper (matplotlib, 512x600, portrait), Chelsea
    the cat (scikit-image, 451x300, landscape) and a 24x17 crop of Chelsea (enlarged, not
    shrunk, to the input). Each is decoded as edgecnn decodes it (``decode_image``) and written
    raw, upright and turned counter-clockwise by 90/180/270 degrees: the frames a sideways
    sensor gives, which the app turns clockwise by that rotation. Returns name -> file."""
    from PIL import Image
    from conftest import sample_photo_path
    from test_imagenet_data import SKIMAGE_DATA

    os.makedirs(os.path.join(folder, "photos"), exist_ok=True)
    paths = {"grace_hopper": sample_photo_path(),
             "chelsea": os.path.join(SKIMAGE_DATA, "chelsea.png"),
             "chelsea_small": os.path.join(folder, "photos", "chelsea_small.png")}
    with Image.open(paths["chelsea"]) as im:
        im.convert("RGB").crop((150, 60, 174, 77)).save(paths["chelsea_small"])
    from edgecnn.data.decode import decode_image

    listing = []
    for name, path in paths.items():
        upright = decode_image(path)  # edgecnn's one decoder, as load_image reads the photo
        frames = []
        for degrees in ROTATIONS:
            frame = np.ascontiguousarray(np.rot90(upright, k=degrees // 90))
            file = f"{name}_rot{degrees}.rgb"
            frame.tofile(os.path.join(folder, "photos", file))
            frames.append({"rotation": degrees, "file": file, "width": frame.shape[1],
                           "height": frame.shape[0]})
        listing.append({"name": name, "frames": frames})
    with open(os.path.join(folder, "photos.json"), "w") as f:
        json.dump(listing, f)
    return paths


def convert(name, precision, path, io=None):
    from edgecnn.cli import cli

    args = ["convert", name, "--alpha", "0.5", "--resolution", "32", "--num-classes", "10",
            "--weights", "none", "--calib-samples", "8", *PRECISIONS[precision], "-o", path]
    if io:
        args += ["--io", io]
    result = CliRunner().invoke(cli, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output[-2000:]
    return path


def expect_card(card) -> dict:
    """What Python's ModelCard reads from a card: the values the Kotlin parse must give."""
    crop, resize = card.preprocessing.reading()
    return {"name": card.model.name, "alpha": card.model.alpha,
            "resolution": card.model.resolution, "precision": card.precision,
            "io_dtype": card.io_dtype,
            **{key: {"shape": list(t.shape), "dtype": t.dtype, "scale": t.scale or 0.0,
                     "zero_point": t.zero_point or 0}
               for key, t in (("input", card.input), ("output", card.output))},
            "classes": card.output.classes, "inside_model": bool(card.preprocessing.inside_model),
            "crop_fraction": crop, "resize": resize, "fit": card.fit,
            "scores_are_probabilities": card.scores_are_probabilities,
            "labels": len(card.labels or []), "size_bytes": card.size_bytes,
            "params": card.params, "macs": card.macs, "warnings": len(card.warnings or [])}


def write_case(folder, photos, name, tflite, card_file=None, edit=None):
    """One case: the card (the .json edgecnn convert wrote beside ``tflite``, changed by
    ``edit`` for the card variants), what Python reads from it, and for each photo the input
    tensor edgecnn's runtime feeds and the raw output LiteRT returns with its scores."""
    from edgecnn.runtime.card import ModelCard
    from edgecnn.runtime.evaluate import TfliteModel
    from edgecnn.runtime.predict import predict_images

    case = os.path.join(folder, "cases", name)
    os.makedirs(case)
    with open(card_file or tflite[:-len(".tflite")] + ".json") as f:
        card_dict = json.load(f)
    if edit:
        card_dict = edit(copy.deepcopy(card_dict))
    with open(os.path.join(case, "card.json"), "w") as f:
        json.dump(card_dict, f, indent=2)
    card = ModelCard.from_dict(card_dict)
    with open(os.path.join(case, "expect.json"), "w") as f:
        json.dump(expect_card(card), f)

    model = TfliteModel(tflite)
    if edit:  # the variant card, read as the runtime reads a card
        model.card = card
        model.crop, model.resize = card.preprocessing.reading()
        model.fit = card.fit
    interpreter = model.interpreter
    out = interpreter.get_output_details()[0]
    for photo, path in photos.items():
        pixels = model.read(path)[None]
        tensor = card.pixels_to_input(pixels)
        with open(os.path.join(case, f"input_{photo}.bin"), "wb") as f:
            f.write(np.ascontiguousarray(tensor).astype(tensor.dtype.newbyteorder("<")).tobytes())
        interpreter.set_tensor(interpreter.get_input_details()[0]["index"], tensor)
        interpreter.invoke()
        raw = interpreter.get_tensor(out["index"])
        with open(os.path.join(case, f"output_{photo}.bin"), "wb") as f:
            f.write(raw.astype(raw.dtype.newbyteorder("<")).tobytes())
        scores = model.logits(pixels)[0]  # edgecnn's own path: the same input, dequantized
        if card.scores_are_probabilities:
            probabilities = scores / max(float(scores.sum()), 1e-12)
        else:
            from edgecnn.runtime.tflite import softmax
            probabilities = softmax(scores[None])[0]
        ranked = [int(i) for i in np.argsort(-probabilities, kind="stable")[:5]]
        if not edit:  # what edgecnn predict itself says
            top = predict_images(tflite, [path], top_k=5)[0]["top"]
            assert [t["index"] for t in top] == ranked
            assert [t["score"] for t in top] == [float(probabilities[i]) for i in ranked]
        with open(os.path.join(case, f"expect_{photo}.json"), "w") as f:
            json.dump({"scores": scores.tolist(), "probabilities": probabilities.tolist(),
                       "top": ranked}, f)


def card_variants():
    """Cards edgecnn reads that the every-family conversions do not write: a 0.875 crop with
    bicubic (timm's evaluation), a stretched fit (``--resize stretch``), and normalization
    outside the model, as float and as quantized input (models from elsewhere)."""
    def crop_bicubic(d):
        d["preprocessing"].update(crop_fraction=0.875, resize="bicubic")
        return d

    def stretch(d):
        d["preprocessing"]["fit"] = "stretch"
        return d

    def outside(d):
        d["preprocessing"].update(inside_model=False, mean=[123.675, 116.28, 103.53],
                                  std=[58.395, 57.12, 57.375])
        return d

    return {"int8": {"crop0.875-bicubic": crop_bicubic, "outside-mean-std": outside},
            "float32": {"stretch": stretch, "outside-mean-std": outside}}


# --- tests ----------------------------------------------------------------------------------

def test_kotlin_unit_tests_pass(kotlin):
    """The core's own tests (statistics, malformed cards, frame geometry) with no goldens:
    the contract classes are skipped there, as in a Gradle build."""
    assert_junit_ok(kotlin, kotlin_jvm.test_classes())


@pytest.mark.parametrize("family", FAMILIES)
def test_cards_and_tensors_agree_with_edgecnn(family, kotlin, tmp_path):
    goldens = str(tmp_path / "goldens")
    photos = write_photos(goldens)
    cases = 0
    for precision in PRECISIONS:
        tflite = convert(family, precision, str(tmp_path / f"{family}_{precision}.tflite"))
        write_case(goldens, photos, f"{family}-{precision}", tflite)
        cases += 1
        if family == "mobilenet_v2":
            for suffix, edit in card_variants().get(precision, {}).items():
                write_case(goldens, photos, f"{family}-{precision}+{suffix}", tflite, edit=edit)
                cases += 1
    for io in IO_VARIANTS.get(family, []):
        tflite = convert(family, "int8", str(tmp_path / f"{family}_int8_{io}.tflite"), io=io)
        write_case(goldens, photos, f"{family}-int8-io-{io}", tflite)
        cases += 1
    if family == "mobilenet_v2":  # the model the app ships, with the card export wrote
        bundle = json.loads((APP_ASSETS / "edgecnn_bundle.json").read_text())
        write_case(goldens, photos, "app-bundled-" + bundle["model"][:-len(".tflite")],
                   str(APP_ASSETS / bundle["model"]), card_file=str(APP_ASSETS / bundle["card"]))
        cases += 1
    # CardContractTest: 1 test per case; TensorContractTest: 2
    assert_junit_ok(kotlin, [f"{kotlin_jvm.PACKAGE}.CardContractTest",
                             f"{kotlin_jvm.PACKAGE}.TensorContractTest"], goldens, tests=3 * cases)
    if family == "mobilenet_v2":
        # the contract can fail: one pixel of edgecnn's input changed is caught and located
        bad = os.path.join(goldens, "cases", f"{family}-int8", "input_chelsea.bin")
        data = bytearray(open(bad, "rb").read())
        data[1234] ^= 0x10
        open(bad, "wb").write(bytes(data))
        code, out = run_junit(kotlin, [f"{kotlin_jvm.PACKAGE}.TensorContractTest"], goldens)
        assert code != 0 and "1 of 3072 bytes differ" in out and "byte 1234" in out, out[-3000:]


def test_benchmark_json_is_edgecnn_bench_json(kotlin, fake_adb, tmp_path, capsys):
    """A real ``edgecnn bench`` run's per-run times through the app's statistics and JSON;
    the JSON read back by edgecnn's own table and CSV code. The keys ``edgecnn bench`` writes
    are those of a local run and of a run over adb (a stand-in adb replaying a real
    benchmark_model output: tests/stand_in_adb.py)."""
    from conftest import make_tiny_int8
    from edgecnn.cli.bench import print_table, results_csv
    from edgecnn.runtime import bench
    from edgecnn.runtime.adb import benchmark_adb

    model = make_tiny_int8(tmp_path / "tiny_int8.tflite")
    local = bench.benchmark(model, runs=40, warmup=3, keep_times=True)
    (device,) = benchmark_adb(model, elf(tmp_path / "benchmark_model"), serials=["R58M41ABCDE"],
                              threads=[1])
    goldens = tmp_path / "goldens"
    (goldens / "bench").mkdir(parents=True)
    reported = {k: local[k] for k in ("runs", "mean_ms", "std_ms", "min_ms", "p50_ms",
                                      "p90_ms", "p99_ms", "max_ms", "throughput_ips",
                                      "spread_p90_p50", "noisy", "threads", "xnnpack",
                                      "warmup_runs", "warmup_ms", "first_ms", "init_ms",
                                      "size_bytes", "model", "precision")}
    golden = {**{k: local[k] for k in ("model", "threads", "warmup_runs", "init_ms",
                                       "first_ms", "warmup_ms", "size_bytes", "precision",
                                       "input")},
              "times_ms": local["times_ms"], "reported": reported,
              "bench_keys": sorted((set(local) | set(device)) - {"times_ms"}),
              "result_keys": list(bench.RESULT_KEYS), "noisy_ratio": bench.NOISY_RATIO}
    (goldens / "bench" / "bench.json").write_text(json.dumps(golden))
    assert_junit_ok(kotlin, [f"{kotlin_jvm.PACKAGE}.BenchJsonContractTest"], str(goldens),
                    tests=4)

    rows = json.loads((goldens / "out" / "bench_android.json").read_text())
    assert len(rows) == 1 and rows[0]["source"] == "android-app"
    assert rows[0]["delegate"] in {"xnnpack", "gpu", "cpu", "nnapi"}
    csv_text = results_csv(rows)
    header, line = csv_text.splitlines()[:2]
    row = dict(zip(header.split(","), line.split(",")))
    assert float(row["p50_ms"]) == pytest.approx(local["p50_ms"], rel=1e-6)
    assert row["device"] == "Pixel 8" and row["delegate"] == "xnnpack"
    assert (row["precision"], row["input_dtype"], row["input_shape"]) == ("int8", "uint8",
                                                                          "1x32x32x3")
    print_table(rows)
    assert "tiny_int8.tflite" in capsys.readouterr().out
