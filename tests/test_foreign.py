"""Models edgecnn did not convert: Google's own quantized MobileNet V1 0.25/128 (the TFLite
hosted model, from google-coral/test_data; tests/data/official/README.md) read by predict,
eval, info, bench and profile without an edgecnn card, from its TFLite metadata or the
user's --labels/--preprocess/--resize, on real photos."""
import json
import os
import shutil

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import sample_photo_path
from test_cli import assert_one_line_error

from edgecnn.cli import cli

pytestmark = pytest.mark.device  # needs only the light install (make test-arm64)

HERE = os.path.dirname(__file__)
OFFICIAL = os.path.join(HERE, "data", "official", "mobilenet_v1_0.25_128_quant.tflite")
LABELS = os.path.join(HERE, "data", "official", "imagenet_labels.txt")
#: What this model says of matplotlib's Grace Hopper photo, read as its metadata says
#: (mean 127.5, std 127.5, uint8 input; shorter side, whole; measured 2026-12-07: 28.3 %).
GOWN = "academic gown, academic robe, judge's robe"
GOWN_WNID = "n02669723"  # ImageNet-1k class 400 (output 401: background is output 0)


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


def predict_json(*args):
    result = run("predict", OFFICIAL, sample_photo_path(), "--json", *args)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)[0]


def test_predict_reads_the_metadata_labels_and_normalization():
    top = predict_json()
    assert top["top"][0]["label"] == GOWN and top["top"][0]["index"] == 401
    assert top["top"][0]["score"] == pytest.approx(0.283, abs=0.03)
    assert "TFLite metadata" in top["assumed"] and "imagenet_labels.txt" in top["assumed"]
    # a SOFTMAX output is already probabilities: not squashed by a second softmax
    every = run("predict", OFFICIAL, sample_photo_path(), "--json", "--top-k", "1001")
    scores = [t["score"] for t in json.loads(every.stdout)[0]["top"]]
    assert sum(scores) == pytest.approx(1.0, abs=1e-6) and max(scores) > 0.2


def test_the_same_reading_from_options_gives_the_same_prediction(tmp_path):
    """--labels with 1000 names (background prepended) and --preprocess minus-one-to-one
    say what the metadata says: the same class and score."""
    with open(LABELS, encoding="utf-8") as f:
        lines = f.read().splitlines()
    thousand = tmp_path / "labels1000.txt"
    thousand.write_text("\n".join(lines[1:]) + "\n", encoding="utf-8")
    base = predict_json()
    given = predict_json("--labels", thousand, "--preprocess", "minus-one-to-one")
    assert given["top"][0]["label"] == GOWN
    assert given["top"][0]["score"] == pytest.approx(base["top"][0]["score"], abs=0.01)
    assert "background\" prepended" in given["assumed"] and "--preprocess" in given["assumed"]
    # a different reading is a different input: stretching the photo moves the scores
    stretched = predict_json("--resize", "stretch")
    assert stretched["top"][0]["score"] != base["top"][0]["score"]


def test_eval_maps_wordnet_folders_onto_1001_outputs(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    shutil.copy(sample_photo_path(), data / f"{GOWN_WNID}_hopper.jpg")
    (data / "n01440764_broken.jpg").write_bytes(b"not a jpeg")  # skipped and counted
    result = run("eval", OFFICIAL, "--data", data, "--json")
    assert result.exit_code == 0, result.output
    metrics = json.loads(result.stdout)
    assert metrics["top1"] == 100.0 and metrics["samples"] == 1
    assert metrics["skipped_count"] == 1 and metrics["precision"] == "no card"
    assert metrics["label_mapping"] == "ImageNet-1k WordNet ids (output 0: background)"
    # eval's --labels FILE names a model's outputs when it has no card
    given = json.loads(run("eval", OFFICIAL, "--data", data, "--labels", LABELS,
                           "--json").stdout)
    assert given["top1"] == 100.0 and "imagenet_labels.txt" in given["assumed"]


def test_info_says_what_the_file_holds_and_how_it_is_read():
    report = json.loads(run("info", OFFICIAL, "--json").stdout)
    assert report["card"] is None and report["xnnpack_partitions"] == 2
    assert report["ops"]["CONV_2D"] == 15 and report["ops"]["DEPTHWISE_CONV_2D"] == 13
    tensors = {t["role"]: t for t in report["tensors"]}
    assert tensors["input"]["dtype"] == "uint8" and tensors["input"]["shape"] == [1, 128, 128, 3]
    assert tensors["input"]["scale"] == pytest.approx(1 / 128) and \
        tensors["input"]["zero_point"] == 128
    assert report["tflite_metadata"]["input"]["mean"] == [127.5]
    assert report["tflite_metadata"]["labels_file"] == "imagenet_labels.txt"
    assert report["reading"]["labels"] == 1001
    assert report["reading"]["output"].startswith("probabilities")
    assert report["reading"]["first_labels"][:2] == ["background", "tench, Tinca tinca"]
    text = run("info", OFFICIAL)
    assert text.exit_code == 0 and "no edgecnn model card" in text.output


def test_bench_and_profile_run_it():
    bench = run("bench", OFFICIAL, "--min-seconds", "0.2", "--json")
    assert bench.exit_code == 0, bench.output
    profile = run("profile", OFFICIAL, "--rounds", "1", "--json")
    assert profile.exit_code == 0, profile.output
    ops = json.loads(profile.stdout)["ops"]
    assert len(ops) == 31 and {o["op"] for o in ops} >= {"CONV_2D", "SOFTMAX"}


def test_labels_file_damaged_inside_the_model_is_one_line(tmp_path):
    """The label file is a zip appended to the model: a cut one says so and what to give."""
    with open(OFFICIAL, "rb") as f:
        data = f.read()
    cut = tmp_path / "cut.tflite"
    cut.write_bytes(data[:-200])  # the zip's central directory is gone, the graph is whole
    result = run("predict", cut, sample_photo_path())
    assert_one_line_error(result, "imagenet_labels.txt", "--labels")
    ok = run("predict", cut, sample_photo_path(), "--labels", LABELS, "--json")
    assert ok.exit_code == 0 and json.loads(ok.stdout)[0]["top"][0]["label"] == GOWN


@pytest.mark.parametrize("args,fragments", [
    (["--labels", "{tmp}/ten.txt"], ["10 labels", "1001 outputs"]),
    (["--labels", "{tmp}/missing.txt"], ["no such file"]),
    (["--preprocess", "mean-std", "--mean", "127"], ["--mean and --std"]),
    (["--preprocess", "mean-std", "--mean", "1,2", "--std", "3"], ["--mean 1,2"]),
    (["--preprocess", "raw", "--std", "3"], ["mean-std"]),
])
def test_bad_foreign_options_are_one_line(tmp_path, args, fragments):
    (tmp_path / "ten.txt").write_text("\n".join(f"c{i}" for i in range(10)), encoding="utf-8")
    args = [a.replace("{tmp}", str(tmp_path)) for a in args]
    assert_one_line_error(run("predict", OFFICIAL, sample_photo_path(), *args), *fragments)


def test_reading_options_refused_for_an_edgecnn_model(tiny_int8_tflite):
    result = run("predict", tiny_int8_tflite, sample_photo_path(), "--preprocess", "raw")
    assert_one_line_error(result, "has an edgecnn model card")


def test_integer_input_normalized_outside_is_quantized_with_its_scale():
    """TFLite Metadata's convention: (pixel - mean) / std, then the input's quantization."""
    from edgecnn.runtime.card import CardPreprocessing, ModelCard, TensorInfo

    card = ModelCard(input=TensorInfo(dtype="int8", scale=1 / 128, zero_point=0),
                     preprocessing=CardPreprocessing(inside_model=False, mean=[127.5],
                                                     std=[127.5]))
    pixels = np.array([[[[0, 127.5, 255]]]], np.float32)
    assert card.pixels_to_input(pixels).tolist() == [[[[-128, 0, 127]]]]
