"""tf.data pipelines: image folders (with broken files), the built-in digits, augmentation,
normalization, mixup."""
import importlib.util
import logging

import numpy as np
import pytest
from conftest import write_digit_folder

from edgecnn.errors import EdgecnnError, MissingExtraError

tf = pytest.importorskip("tensorflow")
from edgecnn.data import pipeline  # noqa: E402
from edgecnn.data.folder import load_image  # noqa: E402


@pytest.fixture(scope="module")
def photo_folder(tmp_path_factory, photos):
    """Two classes of real photo crops in every supported format, plus a text file and a
    corrupt JPEG that must be skipped."""
    from PIL import Image

    root = tmp_path_factory.mktemp("photos")
    images = photos(80)
    for cls, (a, b) in (("hopper", (0, 1)), ("other", (2, 3))):
        folder = root / cls
        folder.mkdir()
        for i, ext in enumerate(("jpg", "png", "bmp", "gif", "jpeg")):
            src = images[a if i % 2 else b]
            im = Image.fromarray(src[:, : 60 + 4 * i])  # non-square: shorter side is 80 wide
            im.save(folder / f"{i}.{ext}")
    (root / "hopper" / "notes.txt").write_text("not an image")
    (root / "other" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0" + b"garbage" * 20)
    return root


def _all(dataset):
    xs, ys = [], []
    for x, y in dataset:
        xs.append(x.numpy())
        ys.append(y.numpy())
    return np.concatenate(xs), np.concatenate(ys)


def test_folder_skips_broken_files_and_counts_them(photo_folder, caplog):
    with caplog.at_level(logging.WARNING, logger="edgecnn.data"):
        splits = pipeline.make_splits(48, data_dir=str(photo_folder), batch_size=4,
                                      val_split=0.4)
    assert splits.skipped == 2
    assert "skipped 2 file(s)" in caplog.text
    assert splits.class_names == ["hopper", "other"]
    assert splits.train_count + splits.val_count == 10
    x, y = next(iter(splits.train))
    assert x.shape == (4, 48, 48, 3) and x.dtype == tf.float32
    assert 0.0 <= float(tf.reduce_min(x)) and float(tf.reduce_max(x)) <= 255.0
    vx, vy = _all(splits.val)
    assert len(vx) == splits.val_count and set(vy) == {0, 1}  # stratified: both classes


def test_validation_images_match_load_image(photo_folder):
    """Validation resizes as edgecnn's load_image does (shorter side, center crop), so
    validation accuracy is what predict/eval on the same files would see."""
    splits = pipeline.make_splits(40, data_dir=str(photo_folder), batch_size=8, val_split=0.5,
                                  augment="none")
    files, labels, _, _ = pipeline.scan_folder(str(photo_folder))
    _, val_idx = pipeline._split_indices(len(files), 0.5, 0, labels)
    ours, _ = splits.val_arrays()
    theirs = np.stack([load_image(files[i], 40) for i in val_idx])
    assert ours.shape == theirs.shape
    assert np.abs(ours.astype(float) - theirs).mean() < 4.0


def test_nothing_usable_is_a_clear_error(tmp_path):
    for cls in ("a", "b"):
        (tmp_path / cls).mkdir()
        (tmp_path / cls / "x.jpg").write_bytes(b"not a jpeg")
        (tmp_path / cls / "readme.md").write_text("#")
    with pytest.raises(EdgecnnError, match="no usable images .*4 file"):
        pipeline.make_splits(32, data_dir=str(tmp_path))
    with pytest.raises(EdgecnnError, match="does not exist"):
        pipeline.make_splits(32, data_dir=str(tmp_path / "missing"))


def test_digits_split_is_stratified_and_disjoint():
    splits = pipeline.make_splits(32, dataset="digits", batch_size=64, augment="none")
    assert splits.train_count + splits.val_count == 1797
    assert splits.steps_per_epoch == splits.train_count // 64
    vx, vy = splits.val_arrays()
    tx, ty = splits.train_arrays()
    assert len(tx) == splits.train_count and set(vy) == set(range(10))
    counts = np.bincount(vy, minlength=10) / np.bincount(ty, minlength=10)
    assert np.all(np.abs(counts - 0.25) < 0.05)  # 20 % of each class in validation
    train_keys = {t.tobytes() for t in tx}
    assert sum(v.tobytes() in train_keys for v in vx) <= 2  # (the dataset has duplicates)


def test_augmentation_presets_by_name():
    name, augment, reason = pipeline.resolve_augment("none", [(640, 480)], 500)
    assert (name, augment.crop_scale, reason) == ("none", None, "requested")
    assert pipeline.resolve_augment("standard", [(32, 32)], 10)[1].flip is True  # as asked
    with pytest.raises(EdgecnnError, match="augmentation must be"):
        pipeline.resolve_augment("heavy")


def test_auto_augmentation_rule():
    """light below 64 px (median shorter side) or 100 training images per class."""
    assert pipeline.auto_augment([(32, 32)] * 5, 500) == \
        ("light", "auto: images 32x32 px, below 64 px")
    mixed = [(640, 480), (50, 300), (40, 60)]  # median shorter side: 50
    assert pipeline.auto_augment(mixed, 500) == \
        ("light", "auto: images 50 px on the shorter side (median of 3 read), below 64 px")
    assert pipeline.auto_augment([(640, 480)], 99.9) == \
        ("light", "auto: 99 training images per class, fewer than 100")
    name, reason = pipeline.auto_augment([(64, 64)], 100)
    assert name == "standard" and reason.startswith("auto: images 64x64 px, 100 training")
    assert pipeline.auto_augment([], 500)[0] == "standard"  # size unknown (some TFDS sets)


@pytest.fixture(scope="module")
def large_photo_folder(tmp_path_factory, photos):
    """Two classes of 130 photo crops (96x120 px) each: 104 training images per class."""
    from PIL import Image

    root = tmp_path_factory.mktemp("large")
    images = photos(120)
    for cls, picks in (("a", (0, 1)), ("b", (2, 3))):
        (root / cls).mkdir()
        for i in range(130):
            Image.fromarray(images[picks[i % 2]][:96]).save(root / cls / f"{i}.png")
    return root


def test_auto_augmentation_decides_by_the_data(tmp_path, large_photo_folder):
    """Small images or few images per class: light, and why; larger images with enough of
    them: standard; the built-in digits (8x8): light."""
    def chosen(**kwargs):
        augment = pipeline.make_splits(64, batch_size=8, **kwargs).augment
        return augment["preset"], augment["reason"], augment["flip"]

    write_digit_folder(tmp_path, limit=100, classes=3, size=32)
    assert chosen(data_dir=str(tmp_path)) == \
        ("light", "auto: images 32x32 px, below 64 px", False)
    preset, reason, flip = chosen(data_dir=str(large_photo_folder))
    assert (preset, flip) == ("standard", True)
    assert reason.startswith("auto: images 120x96 px, 104 training images per class")
    assert chosen(data_dir=str(large_photo_folder), limit=100) == \
        ("light", "auto: 40 training images per class, fewer than 100", False)
    assert chosen(dataset="digits", limit=60) == \
        ("light", "auto: images 8x8 px, below 64 px", False)


def test_flip_and_crop_do_what_they_say(photos):
    image = tf.constant(photos(32)[0])
    flip_only = pipeline._train_map(32, pipeline.Augment(None, flip=True))
    outs = [flip_only(image, 0)[0].numpy() for _ in range(24)]
    flipped = [np.array_equal(o, image.numpy()[:, ::-1]) for o in outs]
    same = [np.array_equal(o, image.numpy()) for o in outs]
    assert all(f or s for f, s in zip(flipped, same)) and any(flipped) and any(same)
    never = pipeline._train_map(32, pipeline.AUGMENT_PRESETS["none"])
    assert all(np.array_equal(never(image, 0)[0].numpy(), image.numpy()) for _ in range(5))
    crop = pipeline._train_map(32, pipeline.Augment((0.2, 0.5), flip=False))
    crops = [crop(image, 0)[0].numpy() for _ in range(4)]
    assert all(c.shape == (32, 32, 3) for c in crops)
    assert not any(np.allclose(c, image.numpy(), atol=1) for c in crops)


def test_normalization_is_the_models(photos):
    from edgecnn.models import get_model_spec

    pre = get_model_spec("efficientnet_b0").preprocessing
    raw = pipeline.make_splits(32, dataset="digits", limit=60, augment="none")
    norm = pipeline.make_splits(32, dataset="digits", limit=60, augment="none",
                                normalization=pre)
    rx, _ = _all(raw.val)
    nx, _ = _all(norm.val)
    np.testing.assert_allclose(nx, pre.apply(rx), rtol=1e-5, atol=1e-5)


def test_mixup_mixes_images_and_labels_alike():
    x = tf.constant(np.stack([np.full((4, 4, 3), v, np.float32) for v in (0.0, 100.0)]))
    y = tf.constant(np.eye(2, dtype=np.float32))
    ds = tf.data.Dataset.from_tensors((x, y))
    assert pipeline.mixup(ds, 0.0, 2) is ds
    mx, my = next(iter(pipeline.mixup(ds, 0.4, 2, seed=1)))
    mx, my = mx.numpy(), my.numpy()
    np.testing.assert_allclose(my.sum(1), 1.0, rtol=1e-6)
    # image i = lam * x_i + (1 - lam) * x_reversed: its value tells lam, and so must y
    np.testing.assert_allclose(mx[:, 0, 0, 0] / 100.0, my[:, 1], atol=1e-5)


@pytest.mark.skipif(importlib.util.find_spec("tensorflow_datasets") is not None,
                    reason="tensorflow-datasets is installed")
def test_tfds_name_without_tensorflow_datasets():
    with pytest.raises(MissingExtraError, match="tensorflow-datasets"):
        pipeline.make_splits(32, dataset="mnist")


def test_bad_arguments():
    with pytest.raises(EdgecnnError, match="not both or neither"):
        pipeline.make_splits(32)
    with pytest.raises(EdgecnnError, match="between 0 and 1"):
        pipeline.make_splits(32, dataset="digits", val_split=1.5)


def test_training_decodes_a_file_as_eval_and_predict_do(tmp_path):
    """One decoder: a sideways phone JPEG with its orientation tag, a 16-bit PNG and an Adobe
    RGB JPEG (real photos, tests/test_decode.py's variants) give the training pipeline the same
    pixels that calibration, eval and predict decode (``decode_image``), bit for bit."""
    from test_decode import ROCKET, variants

    from edgecnn.data.decode import decode_image

    files = variants(tmp_path)
    for name in ("exif-orientation-6", "16-bit-gray", "adobe-rgb-jpeg", "cmyk-jpeg", "rgba"):
        got = pipeline._decode_file(tf.constant(str(files[name]))).numpy()
        assert np.array_equal(got, decode_image(files[name])), name
    assert np.array_equal(pipeline._decode_file(tf.constant(ROCKET)).numpy(), decode_image(ROCKET))


def test_a_folder_of_phone_formats_trains_on_every_file(tmp_path, photo_folder):
    """HEIC, WebP and 16-bit PNG files in a class folder are scanned as images (not skipped)."""
    from PIL import Image

    from edgecnn.data.decode import heif_supported

    root = tmp_path / "phone"
    for k, name in enumerate(("a", "b")):
        (root / name).mkdir(parents=True)
        im = Image.new("RGB", (40, 30), (200 * k, 90, 40))
        im.save(root / name / "x.webp")
        Image.fromarray(np.full((30, 40), 1000 * (k + 1), np.uint16)).save(root / name / "y.png")
        if heif_supported():
            im.save(root / name / "z.heic")
    files, labels, classes, skipped = pipeline.scan_folder(str(root))
    assert skipped == 0 and classes == ["a", "b"]
    assert len(files) == (6 if heif_supported() else 4)


def test_16_bit_rgb_from_other_writers_is_scaled_not_clipped(tmp_path):
    """16-bit RGB and RGBA files as libpng (TensorFlow's PNG encoder) and tifffile write them
    (Pillow writes no 16-bit colour files): read at 8 bits within 1 level of ``x / 257``, the
    same through training's decode, not clipped to white."""
    import tifffile
    from test_decode import original

    from edgecnn.data.decode import decode_image

    rng = np.random.default_rng(0)
    rgb = np.round(original() * 257.0 * 0.6 + rng.integers(0, 256, original().shape)).astype(
        np.uint16)  # 60 % of the range, the low byte not zero
    rgba = np.dstack([rgb, np.full(rgb.shape[:2], 65535, np.uint16)])
    want = np.round(rgb / 257.0)
    for name, pixels in (("rgb", rgb), ("rgba", rgba)):
        (tmp_path / f"{name}16.png").write_bytes(tf.io.encode_png(tf.constant(pixels)).numpy())
        tifffile.imwrite(tmp_path / f"{name}16.tif", pixels, photometric="rgb")
        for path in (tmp_path / f"{name}16.png", tmp_path / f"{name}16.tif"):
            out = decode_image(path)
            assert np.abs(out.astype(int) - want).max() <= 1, path.name
            assert np.array_equal(pipeline._decode_file(tf.constant(str(path))).numpy(), out)
