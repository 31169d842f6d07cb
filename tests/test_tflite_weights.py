"""`edgecnn weights import MODEL.tflite`: a classifier .tflite's folded, quantized weights
onto edgecnn's network (models/pretrained/tflite_weights.py), checked against the file's
own outputs: Google's quantized MobileNet V1 0.25/128 (tests/data/official) on real
photos, and edgecnn's own conversions round trip exactly."""
import json
import os

import numpy as np
import pytest
from click.testing import CliRunner
from test_cli import assert_one_line_error

import edgecnn
from edgecnn.cli import cli

HERE = os.path.dirname(__file__)
OFFICIAL = os.path.join(HERE, "data", "official", "mobilenet_v1_0.25_128_quant.tflite")


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


def real_photos(size):
    """Eight real photographs from scikit-image's data (and their mirror images), read as
    edgecnn reads a photo (shorter side, center)."""
    import skimage
    from edgecnn.data.folder import load_image

    folder = os.path.join(os.path.dirname(skimage.__file__), "data")
    names = ["chelsea.png", "coffee.png", "astronaut.png", "rocket.jpg", "motorcycle_left.png",
             "hubble_deep_field.jpg", "ihc.png", "retina.jpg"]
    images = np.stack([load_image(os.path.join(folder, n), size) for n in names])
    return np.concatenate([images, images[:, :, ::-1]])


def test_official_mobilenet_imports_and_agrees_with_its_tflite(tmp_path):
    out = tmp_path / "v1.h5"
    result = run("weights", "import", OFFICIAL, "--model", "mobilenet", "-o", out, "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["alpha"] == 0.25 and report["alpha_source"].startswith("found")
    assert report["num_classes"] == 1001 and report["input_shape"] == [1, 128, 128, 3]
    loaded = [r for r in report["rows"] if r["layer"]]
    assert len(loaded) == 55  # 27 convolutions + their BatchNorms, and the classifier
    assert report["agreement"]["probability_correlation"] > 0.95

    from edgecnn.runtime.evaluate import TfliteModel

    model = edgecnn.create_model("mobilenet", alpha=0.25, input_size=128, num_classes=1001,
                                 weights=str(out))
    lite = TfliteModel(OFFICIAL)
    pixels = real_photos(128)
    ours = model.predict((pixels.astype(np.float32) - 127.5) / 127.5, verbose=0)
    theirs = lite.logits(pixels)
    agree = (ours.argmax(1) == theirs.argmax(1)).mean()
    assert agree >= 14 / 16, agree  # their uint8 arithmetic moves a close call or two
    cat = ours[0].argmax()
    assert lite.labels()[cat] in ("Egyptian cat", "tabby, tabby cat", "tiger cat")


@pytest.mark.parametrize("name", ["mobilenet_v2",
                                  pytest.param("efficientnet_lite0", marks=pytest.mark.slow)])
def test_edgecnn_tflite_round_trips_exactly(name, tmp_path):
    from conftest import randomize_weights

    model = edgecnn.create_model(name, alpha=0.5, input_size=64, num_classes=10,
                                 weights="none")
    randomize_weights(model)
    edgecnn.convert(model, tmp_path / "m.tflite", "float32")
    result = run("weights", "import", tmp_path / "m.tflite", "--model", name, "-o",
                 tmp_path / "back.h5", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["alpha"] == 0.5 and report["agreement"]["top1_agreement"] == 1.0
    assert report["rows"][0]["layer"] is None  # the input normalization op: not a weight
    back = edgecnn.create_model(name, alpha=0.5, input_size=64, num_classes=10,
                                weights=str(tmp_path / "back.h5"))
    x = np.random.default_rng(0).uniform(-1, 1, (2, 64, 64, 3)).astype(np.float32)
    assert np.abs(model.predict(x, verbose=0) - back.predict(x, verbose=0)).max() < 1e-4


@pytest.fixture(scope="module")
def v3_small_tflite(tmp_path_factory):
    model = edgecnn.create_model("mobilenet_v3_small", alpha=0.5, input_size=64,
                                 num_classes=10, weights="none")
    path = tmp_path_factory.mktemp("v3") / "v3.tflite"
    edgecnn.convert(model, path, "float32")
    return path


def test_a_graph_that_computes_otherwise_is_refused(v3_small_tflite, tmp_path):
    """MobileNetV3's hard-sigmoid ``+ 3`` is folded into the SE convolution's bias by the
    converter: the weights map by shape but not by value, which the check against the file
    catches; nothing is written."""
    out = tmp_path / "v3.h5"
    result = run("weights", "import", v3_small_tflite, "--model", "mobilenet_v3_small",
                 "--alpha", "0.5", "-o", out)
    assert_one_line_error(result, "do not reproduce its outputs", "nothing written")
    assert not out.exists()


@pytest.mark.parametrize("source,args,fragments", [
    ("v3", ["--model", "mobilenet"], ["fits mobilenet at none of the widths", "furthest"]),
    ("official", ["--model", "mobilenet", "--alpha", "0.5"], ["does not fit", "alpha"]),
    ("official", ["--model", "mobilenet_v2", "--alpha", "0.35"], ["does not fit"]),
])
def test_misfits_are_one_line(v3_small_tflite, tmp_path, source, args, fragments):
    out = tmp_path / "w.h5"
    path = v3_small_tflite if source == "v3" else OFFICIAL
    assert_one_line_error(run("weights", "import", path, *args, "-o", out), *fragments)
    assert not out.exists()


def test_damaged_tflite_is_one_line(tmp_path):
    with open(OFFICIAL, "rb") as f:
        data = f.read()
    cut = tmp_path / "cut.tflite"
    cut.write_bytes(data[:100_000])
    assert_one_line_error(run("weights", "import", cut, "--model", "mobilenet", "-o",
                              tmp_path / "w.h5"), "truncated")
