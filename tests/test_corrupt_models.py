"""Every command survives any file (issue 11): a truncated, byte-flipped or spliced .tflite,
an empty file, a folder, or something else (a PNG, a .h5, a text file) ends in exit status 0
(a change that leaves a valid model) or 2 with one line naming the file; never a traceback,
a crash, or a file written. The commands run in this process (click's runner), so a
LiteRT crash would kill the test: the model is tried in a child process first."""
import json
import os
import random
import shutil
import traceback

import pytest
from click.testing import CliRunner
from conftest import DEVICE_FIXTURES, device_fixture, write_digit_folder
from test_android_demo import ASSET_DIR, BUNDLE_FILE, copy_app

from edgecnn.cli import cli
from edgecnn.errors import EdgecnnError
from edgecnn.jobs.export_android import ASSETS
from edgecnn.runtime import tflite as rt
from edgecnn.runtime.card import ModelCard
from edgecnn.runtime.verify import parse_card, verify_model

pytestmark = pytest.mark.device  # needs only the light install (make test-arm64)

SEED = 11
MUTATIONS = 120
SAMPLE = 30  # of the MUTATIONS, in the default run


def mutations(data: bytes, count: int = MUTATIONS, seed: int = SEED) -> list:
    """``count`` seeded (label, bytes) mutations of a model, in turn: a truncation at a random
    point, a run of 1-16 flipped bytes, a random block of 1-256 bytes inserted, or written
    over. Half of the positions fall outside the weight buffers, in the flatbuffer's
    tables, vectors and strings, where a change alters the structure, not a weight."""
    rng = random.Random(seed)
    weights = sorted(b["data"] for b in verify_model(data)["buffers"]
                     if b["data"] and b["data"][1] >= 64)
    tables, start = [], 0
    for offset, size in weights:
        tables.extend(range(start, offset))
        start = max(start, offset + size)
    tables.extend(range(start, len(data)))
    out = []
    for i in range(count):
        kind = ("truncate", "flip", "insert", "overwrite")[i % 4]
        at = rng.choice(tables) if rng.random() < 0.5 else rng.randrange(len(data))
        if kind == "truncate":
            changed = data[:at]
        elif kind == "flip":
            changed = bytearray(data)
            for j in range(at, min(at + rng.randint(1, 16), len(data))):
                changed[j] ^= rng.randint(1, 255)
        else:
            block = rng.randbytes(rng.randint(1, 256))
            rest = at if kind == "insert" else at + len(block)
            changed = data[:at] + block + data[rest:]
        out.append((f"{i:03d}_{kind}_at_{at}", bytes(changed)))
    return out


@pytest.fixture(scope="module")
def workbench(tmp_path_factory, tiny_int8_tflite):
    """The real model, a labelled digit folder of its 10 classes, one image, an output
    folder and a copy of the Android app to export into."""
    root = tmp_path_factory.mktemp("corrupt")
    (root / "digits").mkdir()
    write_digit_folder(root / "digits", limit=40, classes=10, size=32)
    (root / "out").mkdir()
    (root / "models").mkdir()
    return {"root": root, "model": open(tiny_int8_tflite, "rb").read(),
            "data": root / "digits", "image": min((root / "digits" / "digit_0").iterdir()),
            "out": root / "out", "app": copy_app(root / "app")}


def commands(model: str, where: dict) -> list[list[str]]:
    """Every command that reads a .tflite, with the options that write files."""
    out = where["out"]
    return [["info", model],
            ["bench", model, "--runs", "1", "--warmup", "0", "--min-seconds", "0",
             "--csv", str(out / "latency.csv")],
            ["predict", model, str(where["image"]), "--top-k", "3"],
            ["eval", model, "--data", str(where["data"]), "--plot", str(out / "cm.png")],
            ["export", "android", model, "--app", str(where["app"])]]


def _files(*roots) -> dict:
    return {str(p): p.read_bytes() for root in roots for p in sorted(root.rglob("*"))
            if p.is_file()}


def survives(model: str, where: dict) -> list[str]:
    """Run every command on ``model``: what went wrong, one line each (empty: all well)."""
    problems = []
    for args in commands(model, where):
        before = _files(where["out"], where["app"])
        result = CliRunner().invoke(cli, args)
        what = f"{os.path.basename(model)} {args[0]}: exit {result.exit_code}"
        if result.exit_code not in (0, 2) or "Traceback" in result.output:
            detail = "".join(traceback.format_exception(*result.exc_info)) \
                if result.exc_info and not isinstance(result.exception, SystemExit) else ""
            problems.append(f"{what}: {result.output[-300:]} {detail[-1500:]}")
        elif result.exit_code == 2:
            lines = result.stderr.splitlines()
            if len(lines) != 1 or not lines[0].startswith("error: ") \
                    or os.path.basename(model) not in lines[0]:
                problems.append(f"{what}: not one error line naming the file: {lines}")
            if _files(where["out"], where["app"]) != before:
                problems.append(f"{what}: files written: "
                                f"{sorted(set(_files(where['out'], where['app'])) - set(before))}")
        shutil.rmtree(where["out"])  # after a success: start the next command clean
        where["out"].mkdir()
        shutil.rmtree(where["app"] / ASSETS, ignore_errors=True)
    return problems


def check_mutations(workbench, chosen) -> None:
    problems = []
    for label, data in chosen:
        path = workbench["root"] / "models" / f"{label}.tflite"
        path.write_bytes(data)
        found = survives(str(path), workbench)
        if not found:
            path.unlink()  # kept only when something went wrong
        problems.extend(found)
    assert not problems, "\n".join(problems[:20])


def test_every_command_survives_a_sample_of_damaged_models(workbench):
    every = mutations(workbench["model"])
    chosen = [every[i] for i in random.Random(SEED).sample(range(len(every)), SAMPLE)]
    check_mutations(workbench, chosen)


@pytest.mark.slow  # 90 models x 5 commands: about 2 minutes here (300 took 6)
def test_every_command_survives_the_other_90_damaged_models(workbench):
    """The MUTATIONS the default run's sample left out: the two runs together check all."""
    every = mutations(workbench["model"])
    chosen = set(random.Random(SEED).sample(range(len(every)), SAMPLE))
    others = [m for i, m in enumerate(every) if i not in chosen]
    assert len(others) == MUTATIONS - SAMPLE
    check_mutations(workbench, others)


def test_the_unchanged_model_passes_every_command(workbench):
    """The fuzzing means something only if the model it starts from works everywhere."""
    path = workbench["root"] / "models" / "intact.tflite"
    path.write_bytes(workbench["model"])
    for args in commands(str(path), workbench):
        result = CliRunner().invoke(cli, args, catch_exceptions=False)
        assert result.exit_code == 0, (args[0], result.output)
        shutil.rmtree(workbench["app"] / ASSETS, ignore_errors=True)


def write_h5(path) -> None:
    """A Keras-style weights file: a real HDF5 file that is no model."""
    import h5py
    import numpy as np

    with h5py.File(path, "w") as f:
        f.create_dataset("conv/kernel", data=np.zeros((3, 3, 3, 8), np.float32))


def _fixed_cases(root, photo_png: bytes) -> list[str]:
    folder = root / "fixed"
    folder.mkdir()
    (folder / "empty.tflite").write_bytes(b"")
    (folder / "folder.tflite").mkdir()
    (folder / "plain_folder").mkdir()
    (folder / "photo.png").write_bytes(photo_png)
    (folder / "photo_named.tflite").write_bytes(photo_png)
    (folder / "notes.txt").write_text("a model? no: notes\n")
    (folder / "notes_named.tflite").write_text("TFL3 is in here, but not at byte 4\n")
    (folder / "short.tflite").write_bytes(b"\x1c\x00\x00\x00TFL")
    if DEVICE_FIXTURES:  # no h5py on the light install
        shutil.copy(device_fixture("weights.h5"), folder / "weights.h5")
    else:
        write_h5(folder / "weights.h5")
    shutil.copy(folder / "weights.h5", folder / "weights_named.tflite")
    return sorted(str(p) for p in folder.iterdir())


def test_every_command_survives_every_fixed_case(workbench):
    """Empty, a folder, a PNG, a .h5, a text file: named as they are and as .tflite."""
    cases = _fixed_cases(workbench["root"], workbench["image"].read_bytes())
    problems = [p for case in cases for p in survives(case, workbench)]
    assert not problems, "\n".join(problems)
    result = CliRunner().invoke(cli, ["info", cases[0]])  # empty.tflite
    assert "is empty (0 bytes)" in result.stderr


def test_a_truncated_model_says_so_in_one_line(workbench, tmp_path):
    path = tmp_path / "model.tflite"
    path.write_bytes(workbench["model"][:12_345])
    for args in commands(str(path), workbench)[:2]:
        result = CliRunner().invoke(cli, args)
        assert result.exit_code == 2
        line, = result.stderr.strip().splitlines()
        assert line.startswith(f"error: {path}: not a valid .tflite (truncated: the file is "
                               f"12,345 bytes, its flatbuffer needs at least "), line
        assert line.endswith("re-copy it or convert it again with edgecnn convert")


# --- LiteRT crashes on graphs it loads: refused, not run -------------------------------------

def _conv_without_weights(data: bytes) -> bytes:
    """The model with its first CONV_2D's filter input marked absent (-1): LiteRT loads it,
    then allocate_tensors() reads the missing tensor from whatever memory holds before the
    tensor array: SIGSEGV in most runs, a garbage size (std::bad_alloc) in others."""
    import flatbuffers
    from ai_edge_litert import schema_py_generated as schema

    model = schema.ModelT.InitFromPackedBuf(bytearray(data), 0)
    conv = next(op for op in model.subgraphs[0].operators
                if model.operatorCodes[op.opcodeIndex].builtinCode
                == schema.BuiltinOperator.CONV_2D)
    conv.inputs[1] = -1
    builder = flatbuffers.Builder(len(data))
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def test_a_model_that_crashes_litert_is_refused_and_this_process_lives(workbench, tmp_path):
    path = tmp_path / "crashes.tflite"
    path.write_bytes(_conv_without_weights(workbench["model"]))
    verify_model(path.read_bytes())  # every offset and index is in range: only LiteRT knows
    with pytest.raises(EdgecnnError, match=r"crashes.tflite: (not a valid .tflite \(LiteRT "
                                           r"crashed with SIG[A-Z]+|LiteRT failed) loading it"):
        rt.load_interpreter(path)
    assert not survives(str(path), workbench)


# --- the verifier and the card -----------------------------------------------------------------

def test_the_verifier_accepts_the_models_edgecnn_writes(tiny_int8_tflite):
    """The converted model and the app's bundled model verify and keep their card."""
    bundled = ASSET_DIR / json.loads((ASSET_DIR / BUNDLE_FILE).read_text())["model"]
    for path in (tiny_int8_tflite, bundled):
        model = verify_model(open(path, "rb").read())
        assert [m["name"] for m in model["metadata"]][-1] == "edgecnn"
        assert ModelCard.read(path).precision == "int8"


@pytest.mark.slow  # six TensorFlow conversions (~90 s here)
@pytest.mark.parametrize("precision", ["float32", "float16", "dynamic"])
def test_the_verifier_accepts_stock_and_every_precision(precision, tmp_path, photos):
    """keras.applications' MobileNet through the stock TFLiteConverter, and edgecnn's
    MobileNetV3-Small in each other precision (FP16 dequantize, hybrid weights)."""
    import edgecnn
    from edgecnn._keras import keras, tf

    model = edgecnn.create_model("mobilenet_v3_small", alpha=0.35, input_size=32,
                                 num_classes=10)
    path = tmp_path / "v3s.tflite"
    edgecnn.convert(model, path, precision, representative_data=photos(32))
    assert verify_model(path.read_bytes())["subgraphs"][0]["tensors"]
    stock = keras.applications.MobileNet(input_shape=(128, 128, 3), alpha=0.25, weights=None)
    converter = tf.lite.TFLiteConverter.from_keras_model(stock)
    if precision != "float32":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if precision == "float16":
        converter.target_spec.supported_types = [tf.float16]
    data = converter.convert()
    assert len(verify_model(data)["subgraphs"][0]["operators"]) > 20
    assert ModelCard.read(data) is None and rt.load_interpreter(data)


@pytest.mark.parametrize("raw, problem", [
    (b"\xff\xfe{}", "not UTF-8 text"),
    (b'{"precision": "int8", ', "not valid JSON"),
    (b"[1, 2, 3]", "the card is not an object"),
    (b'{"precision": "int8", "output": {"shape": [1, 10], "dtype": "uint8"}}',
     "the card has no 'input'"),
    (b'{"precision": "int8", "input": {"shape": [1, "32"], "dtype": "uint8"}, '
     b'"output": {"shape": [1, 10], "dtype": "uint8"}}', "the card.input.shape[1] is str"),
    (b'{"precision": "int8", "input": {"shape": [1, 32, 32, 3], "dtype": "uint8"}, '
     b'"output": {"shape": [], "dtype": "uint8"}}', "shape is not a list of at least 1"),
    (b'{"precision": "int8", "input": {"shape": [1, 32, 32, 3], "dtype": "uint8"}, '
     b'"output": {"shape": [10], "dtype": "uint8"}, "labels": {"a": 1}}',
     "the card.labels is not a list"),
    (b'[' * 100_000, "not valid JSON"),
])
def test_a_damaged_card_is_one_clear_error(raw, problem):
    with pytest.raises(EdgecnnError, match="m.tflite: its edgecnn model card") as error:
        parse_card(raw, "m.tflite")
    assert problem in str(error.value)


def test_a_card_with_values_of_the_wrong_type_is_one_line_everywhere(workbench, tmp_path):
    """A card that is JSON but not what readers expect (labels a number, the input shape a
    string): each command says so in one line instead of failing inside a reader."""
    card = ModelCard.read(workbench["model"]).to_dict()
    for n, changed in enumerate([{**card, "labels": 5},
                                 {**card, "input": {**card["input"], "shape": "1x32x32x3"}},
                                 {**card, "preprocessing": "raw pixels"}]):
        path = tmp_path / f"card{n}.tflite"
        path.write_bytes(rt.embed_card_dict(workbench["model"], changed))
        assert not survives(str(path), workbench)
        result = CliRunner().invoke(cli, ["predict", str(path), str(workbench["image"])])
        assert "its edgecnn model card (metadata \"edgecnn\") is damaged" in result.stderr


def test_a_damaged_bundle_record_is_one_line_and_nothing_is_written(workbench, tmp_path):
    """The app's edgecnn_bundle.json (what it ships) truncated, not JSON, or a folder."""
    model = tmp_path / "good.tflite"
    model.write_bytes(workbench["model"])
    assets = workbench["app"] / ASSETS
    good = (ASSET_DIR / BUNDLE_FILE).read_bytes()
    for case in (good[:40], b"\x89PNG\r\n", b"", b'["model.tflite"]', b'{"model": 3}', None):
        assets.mkdir(parents=True, exist_ok=True)
        if case is None:
            (assets / BUNDLE_FILE).mkdir()
        else:
            (assets / BUNDLE_FILE).write_bytes(case)
        before = _files(assets)
        result = CliRunner().invoke(cli, ["export", "android", str(model), "--app",
                                          str(workbench["app"])])
        assert result.exit_code == 2, result.output
        line, = result.stderr.strip().splitlines()
        assert f"{BUNDLE_FILE} is damaged" in line and "delete it" in line, line
        assert _files(assets) == before
        shutil.rmtree(assets)


def test_a_model_that_never_finishes_in_the_test_process_is_refused(monkeypatch):
    """An endless load or inference (a damaged loop bound, a hung child) ends the trial at
    the time limit, with the step named; no child is left running."""
    import time

    from edgecnn.runtime import sandbox

    monkeypatch.setattr(sandbox, "TIMEOUT", 1)
    start = time.monotonic()
    failure = sandbox.failure_in_child([("loading it", lambda: None),
                                        ("running it", lambda: time.sleep(60))])
    assert failure == ("running it", "did not finish within 1 s")
    assert time.monotonic() - start < 10
