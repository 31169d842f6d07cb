"""`edgecnn eval` and `edgecnn predict`: metrics that agree with each other and with the model
card, the card's labels, and the .tflite paths on the light install (no TensorFlow)."""
import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from click.testing import CliRunner
from test_cli import assert_one_line_error

from edgecnn.cli import cli

SIZE = 64
NAMES = [f"digit_{d}" for d in range(10)]


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A MobileNet (alpha 0.25, 64 px) trained briefly on 240 built-in digits, saved as
    .keras and converted to int8 with labels; 200 other digits as a PNG folder (one
    sub-folder per class) plus one corrupt file, which are also the card's validation set.
    On the device run (conftest.DEVICE_FIXTURES) made beforehand on another machine."""
    from pathlib import Path

    from conftest import DEVICE_FIXTURES, device_fixture

    if DEVICE_FIXTURES:
        root = Path(device_fixture("eval_predict"))
    else:
        root = tmp_path_factory.mktemp("eval_predict")
        make_trained(root)
    with open(root / "made.json") as f:
        made = json.load(f)
    return {"root": root, "folder": root / "data", "tflite": root / "m.tflite",
            "keras": root / "float.keras", **made}


def make_trained(root):
    """The ``trained`` fixture's files into ``root`` (needs TensorFlow)."""
    from conftest import calibrate_batchnorm, digits
    from PIL import Image

    from edgecnn import convert, create_model
    from edgecnn._keras import keras
    from edgecnn.models.io import save_model

    images, labels = digits(SIZE, limit=440)
    train_x, train_y = images[:240], labels[:240]
    held_x, held_y = images[240:], labels[240:]
    folder = root / "data"
    for i, (image, label) in enumerate(zip(held_x, held_y)):
        (folder / NAMES[label]).mkdir(parents=True, exist_ok=True)
        Image.fromarray(image).save(folder / NAMES[label] / f"{i:03d}.png")
    (folder / NAMES[3] / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not an image")

    model = create_model("mobilenet", alpha=0.25, input_size=SIZE, num_classes=10)
    model.compile(keras.optimizers.Adam(1e-2), "sparse_categorical_crossentropy")
    x = model.edgecnn.preprocessing.apply(train_x)
    model.fit(x, train_y, epochs=8, batch_size=32, verbose=0)
    calibrate_batchnorm(model, x)  # 8 short epochs leave the moving statistics behind
    save_model(model, root / "float.keras")  # with its build record (family, preprocessing)
    report = convert(model, root / "m.tflite", "int8", representative_data=train_x,
                     validation_data=held_x, validation_labels=held_y, labels=NAMES)
    with open(root / "made.json", "w") as f:
        json.dump({"card": report.to_dict(), "samples": len(held_y)}, f)


def check_consistent(result, n_classes):
    """Every number of an evaluation follows from its confusion matrix."""
    cm = np.array(result["confusion"])
    n = result["samples"]
    assert cm.shape == (n_classes, n_classes) and cm.sum() == n
    assert result["top1_correct"] == np.trace(cm)
    assert result["top1"] == round(100 * np.trace(cm) / n, 2)
    per_class = result["per_class"]
    assert [c["samples"] for c in per_class] == cm.sum(1).tolist()
    assert [c["correct"] for c in per_class] == np.diag(cm).tolist()
    assert sum(c["samples"] for c in per_class) == n
    for c in per_class:
        if c["samples"]:
            assert c["accuracy"] == round(100 * c["correct"] / c["samples"], 2)
    assert result["topk"] >= result["top1"] and result["topk_correct"] >= result["top1_correct"]


@pytest.mark.device
def test_tflite_metrics_consistent_and_match_the_card(trained):
    from edgecnn.runtime import evaluate_tflite

    result = evaluate_tflite(str(trained["tflite"]), str(trained["folder"]))
    assert result["samples"] == trained["samples"]
    assert [os.path.basename(p) for p in result["skipped"]] == ["broken.png"]
    assert result["class_names"] == NAMES and result["top_k"] == 5
    check_consistent(result, 10)
    # the card's accuracy was measured by convert on the same 200 images
    assert result["top1"] == trained["card"]["accuracy"]["tflite_top1"]
    every = evaluate_tflite(str(trained["tflite"]), str(trained["folder"]), top_k=10)
    assert every["topk"] == 100.0 and every["predicted"] == result["predicted"]


def test_keras_eval_agrees_with_tflite_as_the_card_says(trained):
    from edgecnn.jobs.evaluate import evaluate_keras
    from edgecnn.runtime import evaluate_tflite

    lite = evaluate_tflite(str(trained["tflite"]), str(trained["folder"]))
    ref = evaluate_keras(str(trained["keras"]), str(trained["folder"]))
    assert ref["format"] == "keras" and ref["class_names"] == NAMES  # the folder's names
    check_consistent(ref, 10)
    assert ref["files"] == lite["files"] and ref["labels"] == lite["labels"]
    one = 100 / ref["samples"]  # one image: float rounding may flip a near tie
    card = trained["card"]
    assert abs(ref["top1"] - card["accuracy"]["keras_top1"]) <= one + 1e-9
    agreement = 100 * np.mean(np.array(ref["predicted"]) == np.array(lite["predicted"]))
    assert abs(agreement - card["agreement"]["top1_agreement"]) <= one + 1e-9


@pytest.mark.device
def test_eval_cli_tables_json_and_plot(trained, tmp_path):
    folder, model = trained["folder"], trained["tflite"]
    text = run("eval", model, "--data", folder)
    assert text.exit_code == 0, text.output
    assert "skipped 1 unreadable image" in text.stderr and "broken.png" in text.stderr
    assert "per-class accuracy" in text.stdout and "confusion matrix" in text.stdout
    assert all(name in text.stdout for name in NAMES)

    png = tmp_path / "cm.png"
    result = run("eval", model, "--data", folder, "--json", "--top-k", "3", "--plot", png)
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["top_k"] == 3 and report["skipped_count"] == 1 and report["plot"] == str(png)
    check_consistent(report, 10)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert os.listdir(tmp_path) == ["cm.png"]  # written atomically: no temporary left


@pytest.mark.device
def test_predict_uses_the_card_labels(trained):
    from edgecnn.runtime import evaluate_tflite

    lite = evaluate_tflite(str(trained["tflite"]), str(trained["folder"]))
    files = lite["files"][::50]
    result = run("predict", trained["tflite"], *files, "--json", "--top-k", "3")
    assert result.exit_code == 0, result.output
    predictions = json.loads(result.stdout)
    assert [p["image"] for p in predictions] == files
    for p, file in zip(predictions, files):
        top = p["top"]
        assert len(top) == 3 and all(t["label"] == NAMES[t["index"]] for t in top)
        scores = [t["score"] for t in top]
        assert scores == sorted(scores, reverse=True) and 0 < sum(scores) <= 1 + 1e-6
        assert top[0]["index"] == lite["predicted"][lite["files"].index(file)]
    text = run("predict", trained["tflite"], files[0])
    assert text.exit_code == 0 and predictions[0]["top"][0]["label"] in text.stdout


@pytest.mark.device
def test_without_card_labels_indices_and_folder_order(trained, tmp_path):
    """A card without labels: predict shows output indices; eval numbers the folder's
    sorted sub-folders in order."""
    from edgecnn.runtime import evaluate_tflite, read_card

    card = read_card(str(trained["tflite"]))
    card.labels = None
    path = tmp_path / "nolabels.tflite"
    path.write_bytes(card.embed(trained["tflite"].read_bytes()))
    with_labels = evaluate_tflite(str(trained["tflite"]), str(trained["folder"]))
    result = evaluate_tflite(str(path), str(trained["folder"]))
    assert result["class_names"] == NAMES and result["confusion"] == with_labels["confusion"]
    predictions = json.loads(run("predict", path, with_labels["files"][0], "--json").stdout)
    assert {t["label"] for t in predictions[0]["top"]} <= {str(i) for i in range(10)}


def _bad_folder(root, case):
    from PIL import Image

    folder = root / case
    if case == "unknown-class":
        (folder / "cat").mkdir(parents=True)
        Image.new("RGB", (SIZE, SIZE)).save(folder / "cat" / "a.png")
    else:
        (folder / NAMES[0]).mkdir(parents=True)
        (folder / NAMES[0] / "a.png").write_bytes(b"garbage")
    return folder


@pytest.mark.device
@pytest.mark.parametrize("case, fragment", [
    ("unknown-class", "has classes the model does not know: cat"),
    ("all-corrupt", "no usable images"),
])
def test_bad_folder_one_line_error(trained, tmp_path, case, fragment):
    assert_one_line_error(run("eval", trained["tflite"], "--data", _bad_folder(tmp_path, case)),
                          fragment)


@pytest.mark.device
def test_bad_input_one_line_errors(trained, tmp_path):
    assert_one_line_error(run("eval", tmp_path / "none.tflite", "--data", trained["folder"]),
                          "does not exist")
    assert_one_line_error(run("eval", trained["tflite"], "--data", tmp_path / "nowhere"),
                          "does not exist")
    assert_one_line_error(run("eval", trained["tflite"]), "--data")
    assert_one_line_error(run("predict", trained["keras"], "x.png"), "predict runs a .tflite")
    assert_one_line_error(run("predict", trained["tflite"], tmp_path / "no.png"),
                          "does not exist")
    assert_one_line_error(run("eval", trained["tflite"], "--data", trained["folder"], "--plot",
                              tmp_path / "missing" / "cm.png"), "does not exist")


LIGHT = textwrap.dedent("""
    import json, sys
    blocked = set(sys.argv[1].split(","))
    attempts = []
    class Block:
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in blocked:
                attempts.append(name)
                raise ImportError(f"No module named {name!r}", name=name)
    sys.meta_path.insert(0, Block())
    from edgecnn.cli import main
    try:
        main(sys.argv[2:])
        code = 0
    except SystemExit as exc:
        code = exc.code
    loaded = sorted(m for m in sys.modules if m.split(".")[0] in blocked)
    sys.stderr.write("\\n" + json.dumps({"code": code, "attempts": attempts, "loaded": loaded}))
""")
NO_TF = "tensorflow,tf_keras,tensorflow_model_optimization,keras"


def light(blocked, *args):
    proc = subprocess.run([sys.executable, "-c", LIGHT, blocked, *map(str, args)],
                          capture_output=True, text=True, timeout=180, check=False)
    *stderr, last = proc.stderr.rstrip("\n").split("\n")
    return proc.stdout, "\n".join(stderr).strip(), json.loads(last)


@pytest.mark.device
def test_tflite_eval_and_predict_never_import_tensorflow(trained):
    out, err, status = light(NO_TF, "eval", trained["tflite"], "--data", trained["folder"],
                             "--json")
    assert status == {"code": 0, "attempts": [], "loaded": []}, err
    assert json.loads(out)["top1"] == trained["card"]["accuracy"]["tflite_top1"]
    image = min((trained["folder"] / NAMES[0]).iterdir())
    out, err, status = light(NO_TF, "predict", trained["tflite"], image, "--json")
    assert status == {"code": 0, "attempts": [], "loaded": []}, err
    assert json.loads(out)[0]["top"][0]["label"] in NAMES


@pytest.mark.device
def test_without_pillow_one_line_error(trained):
    image = min((trained["folder"] / NAMES[0]).iterdir())
    _, err, status = light(NO_TF + ",PIL", "predict", trained["tflite"], image)
    assert status["code"] == 2 and status["loaded"] == []
    assert err.splitlines() == [("error: reading images needs pillow, which is not "
                                 "installed: pip install pillow")]


@pytest.mark.device
def test_keras_eval_on_the_light_install_names_the_file_and_the_extra(trained):
    _, err, status = light(NO_TF, "eval", trained["keras"], "--data", trained["folder"])
    assert status["code"] == 2 and status["loaded"] == []
    assert err.splitlines() == [
        f"error: evaluating {trained['keras']} (a Keras model; a .tflite needs no TensorFlow) "
        f"needs TensorFlow (tensorflow is not installed): install the full profile with "
        f'pip install "edgecnn[tf]"']
