"""`edgecnn convert` and `edgecnn info FILE.tflite` from the command line."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import write_digit_folder
from test_cli import LIGHT, assert_one_line_error
from test_convert import assert_raw_pixel_input

from edgecnn.cli import cli
from edgecnn.runtime.card import ModelCard


def run(*args):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture(scope="module")
def digit_folder(tmp_path_factory):
    """A real image folder: 3 classes of the built-in digits as PNG files."""
    return write_digit_folder(tmp_path_factory.mktemp("digits"), limit=120)


def test_design_card_example_verbatim(workdir):
    """`edgecnn convert mobilenet --alpha 0.75 --int8`: a deployable int8 model and its card
    in the working directory, the report printed."""
    result = run("convert", "mobilenet", "--alpha", "0.75", "--int8")
    assert result.exit_code == 0, result.output
    assert sorted(os.listdir(workdir)) == ["mobilenet_0.75_224_int8.json",
                                           "mobilenet_0.75_224_int8.tflite"]
    assert "XNNPACK partitions" in result.output and "1 (outside: QUANTIZE 2)" in result.output
    assert "synthetic" in result.stderr  # the loud warning: accuracy is not meaningful
    card = json.loads((workdir / "mobilenet_0.75_224_int8.json").read_text())
    assert card["model"]["alpha"] == 0.75 and card["params"] == 2_601_976
    assert card["all_int8"] and card["xnnpack_partitions"] == 1

    # `edgecnn info FILE.tflite` prints the embedded card, also on the light install.
    info = run("info", "mobilenet_0.75_224_int8.tflite", "--json")
    assert json.loads(info.output) == card
    proc = subprocess.run([sys.executable, "-c", LIGHT, "info", "mobilenet_0.75_224_int8.tflite"],
                          capture_output=True, text=True, cwd=workdir, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "mobilenet alpha 0.75 224px -> int8" in proc.stdout


def test_convert_with_data_folder_reports_labels_and_json(workdir, digit_folder):
    out = workdir / "digits.tflite"
    result = run("convert", "mobilenet_v3_small", "--alpha", "0.5", "-r", "48", "--int8",
                 "--data", str(digit_folder), "--num-classes", "3", "--io", "int8",
                 "-o", str(out), "--json")
    assert result.exit_code == 0, result.output
    card = json.loads(result.output)
    assert card["labels"] == ["digit_0", "digit_1", "digit_2"]
    images = sum(len(files) for _, _, files in os.walk(digit_folder))
    # every convolution's int8 weight error is taken out of its bias (32 images' means)
    correction = card["calibration"].pop("bias_correction")
    assert card["calibration"] == {"source": "image folder", "samples": images}
    layers = sum(n for op, n in card["ops"].items() if op in ("CONV_2D", "DEPTHWISE_CONV_2D",
                                                               "FULLY_CONNECTED"))
    folded = 1 if card["input"]["normalization_folded"] else 0  # corrected, then folded away
    assert correction == {"layers": layers + folded, "skipped": 0, "images": min(32, images)}
    assert card["accuracy"]["samples"] == images
    assert card["input"]["dtype"] == "int8"
    parsed = ModelCard.from_dict(card)
    assert_raw_pixel_input(parsed.input, parsed.preprocessing)
    assert "synthetic" not in result.stderr


def test_no_bias_correction_converts_the_calibrated_model_as_it_is(workdir):
    result = run("convert", "mobilenet", "--alpha", "0.25", "-r", "32", "--int8",
                 "--no-bias-correction", "--json")
    assert result.exit_code == 0, result.output
    card = json.loads(result.output)
    assert "bias_correction" not in card["calibration"] and card["all_int8"]


@pytest.mark.slow
def test_qat_fine_tunes_on_data(workdir, digit_folder):
    result = run("convert", "mobilenet_v3_small", "--alpha", "0.5", "-r", "48", "--qat",
                 "--qat-epochs", "2", "--data", str(digit_folder), "--json")
    assert result.exit_code == 0, result.output
    card = json.loads(result.output)
    assert card["qat"] and card["precision"] == "int8" and card["model"]["num_classes"] == 3
    assert card["xnnpack_partitions"] == 1 and card["all_int8"]
    assert os.path.exists(workdir / "mobilenet_v3_small_0.5_48_int8_qat.tflite")


@pytest.mark.slow
def test_qat_distills_from_the_float_model_on_unlabelled_images(workdir, digit_folder):
    """`--qat --distill` on a folder of images without classes: the QAT model learns the
    float model's outputs; the card records how, and the model is whole int8."""
    import shutil

    flat = workdir / "frames"
    flat.mkdir()
    for i, path in enumerate(sorted(digit_folder.glob("*/*.png"))):
        shutil.copy(path, flat / f"frame_{i:03d}.png")  # no class in the name or folder
    result = run("convert", "mobilenet_v3_small", "--alpha", "0.5", "-r", "48", "--qat",
                 "--distill", "--qat-epochs", "1", "--data", str(flat), "--num-classes", "3",
                 "--weights", "none", "--json")
    assert result.exit_code == 0, result.output
    card = json.loads(result.output)
    assert card["qat"] and card["xnnpack_partitions"] == 1 and card["all_int8"]
    record = card["model"]["qat"]
    assert record["mode"].startswith("distillation") and record["images"] == len(
        os.listdir(flat))
    assert 0.0 <= record["final_agreement"] <= 1.0 and record["final_loss"] >= 0.0
    assert card["labels"] is None and card["accuracy"] is None  # nothing to score against


def _bad_folders(tmp_path):
    empty = tmp_path / "empty"
    (empty / "cats").mkdir(parents=True)
    corrupt = tmp_path / "corrupt"
    (corrupt / "cats").mkdir(parents=True)
    (corrupt / "cats" / "broken.jpg").write_bytes(b"not a jpeg")
    unlabelled = tmp_path / "unlabelled"
    unlabelled.mkdir()
    from PIL import Image

    Image.new("RGB", (70, 64), (120, 30, 200)).save(unlabelled / "frame.png")
    return empty, corrupt, unlabelled


@pytest.mark.parametrize("case", ["missing-data", "empty-data", "corrupt-image", "no-folder",
                                  "two-precisions", "io-without-int8", "qat-fp16",
                                  "unknown-model", "bad-alpha", "tiny-input",
                                  "distill-without-qat", "distill-without-data",
                                  "qat-on-unlabelled", "labels-file-missing",
                                  "labels-imagenet-on-names"])
def test_bad_input_one_line_exit_2_nothing_written(case, workdir):
    empty, corrupt, unlabelled = _bad_folders(workdir)
    before = set(os.listdir(workdir))
    args, fragment = {
        "missing-data": (["--int8", "--data", "nowhere"], "data folder nowhere does not exist"),
        "empty-data": (["--int8", "--data", str(empty)], "has no images"),
        "corrupt-image": (["--int8", "--data", str(corrupt)], "cannot read image"),
        "no-folder": (["-o", "missing/m.tflite"], "does not exist"),
        "two-precisions": (["--int8", "--fp16"], "choose one precision"),
        "io-without-int8": (["--io", "uint8"], "--io uint8 needs --int8"),
        "qat-fp16": (["--qat", "--fp16"], "--qat makes an int8 model"),
        "unknown-model": (None, "unknown model"),
        "bad-alpha": (["--alpha", "-1"], "alpha must be a number > 0"),
        "tiny-input": (["-r", "8"], "too small"),
        "distill-without-qat": (["--int8", "--distill", "--data", str(unlabelled)],
                                "add --qat"),
        "distill-without-data": (["--qat", "--distill"], "give --data DIR"),
        "qat-on-unlabelled": (["--qat", "--weights", "none", "--data", str(unlabelled)],
                              "add --distill"),
        "labels-file-missing": (["--int8", "--data", str(corrupt), "--labels",
                                 "nowhere.txt"], "no such file"),
        "labels-imagenet-on-names": (["--qat", "--weights", "none", "--num-classes", "1000",
                                      "--data", str(corrupt), "--labels", "imagenet"],
                                     "not ImageNet-1k WordNet ids"),
    }[case]
    name = "mobilenett" if args is None else "mobilenet"
    result = run("convert", name, "-r", "64", *(args or []))
    assert_one_line_error(result, fragment)
    assert set(os.listdir(workdir)) == before


def test_info_on_a_file_that_is_not_tflite(workdir):
    (workdir / "fake.tflite").write_bytes(np.arange(100, dtype=np.uint8).tobytes())
    assert_one_line_error(run("info", "fake.tflite"), "is not a TFLite model")
