"""tf.data input pipelines for training: an image folder, a TensorFlow Datasets name (when
tensorflow-datasets is installed and the data is already on disk) or the built-in digits.

Every pipeline yields ``(pixels, label)``: float32 RGB pixels 0-255 resized to the model's
input, and an integer class index. edgecnn trains the model's deployable form, whose first
layer normalizes the pixels exactly as the .tflite does (``edgecnn.converters.deploy``), so
raw pixels are what training, QAT, conversion and ``edgecnn predict`` all feed. For a bare
network (``create_model``, which expects normalized input) pass ``normalization=`` (its
``spec.preprocessing``) and the pipeline applies ``(x - mean) / std`` itself.

Validation images are resized as ``edgecnn.data.load_image`` does (shorter side to the
input, center crop), so validation accuracy is what the converted model sees later.
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field

import numpy as np

from .._keras import tf
from ..errors import EdgecnnError, MissingExtraError
from .decode import IMAGE_EXTENSIONS, READABLE_FORMATS, decode_image, pil_image

log = logging.getLogger("edgecnn.data")

BUILTIN = "digits"


@dataclass(frozen=True)
class Augment:
    """Training augmentation. crop_scale: random resized crop's area fraction range (None:
    no crop); crop_ratio: its aspect-ratio range; flip: random left-right flip."""

    crop_scale: tuple[float, float] | None = (0.08, 1.0)
    crop_ratio: tuple[float, float] = (3 / 4, 4 / 3)
    flip: bool = True

    def as_dict(self) -> dict:
        return {"crop_scale": list(self.crop_scale) if self.crop_scale else None,
                "crop_ratio": list(self.crop_ratio), "flip": self.flip}


#: standard: Inception-style random resized crop (8-100 % of the area) and flips, for photos.
#: light: crops keeping >= 60 % of the area, no flip: for small images and small datasets,
#: and symbols such as digits, where a mirrored 2 or 7 is not a 2 or 7 and a small crop can
#: cut a 7 into a 1.
AUGMENT_PRESETS = {
    "standard": Augment((0.08, 1.0), flip=True),
    "light": Augment((0.6, 1.0), (0.8, 1.25), flip=False),
    "none": Augment(None, flip=False),
}

#: "auto" picks light when the images' shorter side is below SMALL_IMAGE_PX (an 8 % crop of
#: a 32x32 image is a 9x9 patch blown up to the input) or a class averages fewer than
#: SMALL_DATASET_PER_CLASS training images (the standard preset is ImageNet's, made for
#: ~1,300 per class and long runs; see the README's Training section).
SMALL_IMAGE_PX = 64
SMALL_DATASET_PER_CLASS = 100
#: how many files' headers auto reads to measure a folder's image sizes
SIZE_SAMPLE = 100


def auto_augment(sizes, per_class: float) -> tuple[str, str]:
    """"light" or "standard" and why, from ``sizes`` (the (width, height) of a sample of the
    images; empty when unknown) and the training images per class."""
    if sizes:
        shorter = int(np.median([min(size) for size in sizes]))
        if len(set(sizes)) == 1:
            images = "images {}x{} px".format(*sizes[0])
        else:
            images = f"images {shorter} px on the shorter side (median of {len(sizes)} read)"
        if shorter < SMALL_IMAGE_PX:
            return "light", f"auto: {images}, below {SMALL_IMAGE_PX} px"
    else:
        images = "image size unknown"
    if per_class < SMALL_DATASET_PER_CLASS:
        return "light", (f"auto: {int(per_class)} training images per class, fewer than "
                         f"{SMALL_DATASET_PER_CLASS}")
    return "standard", (f"auto: {images}, {int(per_class)} training images per class "
                        f"(light is for under {SMALL_IMAGE_PX} px or "
                        f"{SMALL_DATASET_PER_CLASS} per class)")


def resolve_augment(augment, sizes=(), per_class: float = float("inf")
                    ) -> tuple[str, Augment, str]:
    """(preset name, Augment, why) from a preset name, "auto" (``auto_augment`` on
    ``sizes`` and ``per_class``) or an Augment."""
    if isinstance(augment, Augment):
        return "custom", augment, "requested"
    name, reason = augment or "auto", "requested"
    if name == "auto":
        name, reason = auto_augment(sizes, per_class)
    if name not in AUGMENT_PRESETS:
        raise EdgecnnError(f"augmentation must be auto, {', '.join(AUGMENT_PRESETS)}; got "
                           f"{augment!r}")
    return name, AUGMENT_PRESETS[name], reason


def sample_image_sizes(files, sample: int = SIZE_SAMPLE, seed: int = 0
                       ) -> list[tuple[int, int]]:
    """(width, height) of up to ``sample`` of ``files`` (a seeded random pick), read from
    the file headers without decoding."""
    Image = pil_image()
    if len(files) > sample:
        pick = np.random.default_rng(seed).choice(len(files), sample, replace=False)
        files = [files[i] for i in np.sort(pick)]
    sizes = []
    for path in files:
        try:
            with Image.open(path) as im:
                sizes.append(tuple(im.size))
        except Exception:  # PIL raises many types for broken files
            continue
    return sizes


@dataclass
class Splits:
    """A training and a validation pipeline and what they hold."""

    train: tf.data.Dataset            # (pixels, label) batches, repeated: use steps_per_epoch
    val: tf.data.Dataset              # (pixels, label) batches, one pass
    train_plain: tf.data.Dataset      # training images as validated (no augmentation), one pass
    class_names: list[str]
    train_count: int
    val_count: int
    steps_per_epoch: int
    source: str                       # "digits", "folder:<path>" or "tfds:<name>"
    skipped: int = 0                  # unreadable or non-image files left out
    augment: dict = field(default_factory=dict)  # preset, reason, crop_scale, crop_ratio, flip

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def val_arrays(self, limit: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """The validation images as uint8 pixels and their labels (the first ``limit``)."""
        return _arrays(self.val, limit)

    def train_arrays(self, limit: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Un-augmented training images (uint8) and labels, e.g. for int8 calibration."""
        return _arrays(self.train_plain, limit)


def _arrays(dataset, limit):
    images, labels = [], []
    count = 0
    for x, y in dataset:
        images.append(np.clip(np.round(x.numpy()), 0, 255).astype(np.uint8))
        labels.append(y.numpy())
        count += len(images[-1])
        if limit is not None and count >= limit:
            break
    images, labels = np.concatenate(images), np.concatenate(labels).astype(np.int64)
    return (images, labels) if limit is None else (images[:limit], labels[:limit])


# --- sources: (image source dataset, labels, class names) ------------------------------------

def _is_readable_image(path: str) -> bool:
    """A cheap integrity check (header, and checksums where the format has them)."""
    Image = pil_image()
    try:
        with Image.open(path) as im:
            if im.format not in READABLE_FORMATS:
                return False
            if im.format in ("JPEG", "PNG", "BMP", "GIF", "MPO"):
                im.verify()
        return True
    except Exception:  # PIL raises many types for broken files
        return False


def scan_folder(root: str) -> tuple[list[str], list[int], list[str], int]:
    """Files, labels and class names of an image folder (one sub-folder per class), and how
    many files were skipped (not jpg/png/bmp/gif, or unreadable)."""
    if not os.path.isdir(root):
        raise EdgecnnError(f"data folder {root} does not exist; give a folder with one "
                           f"sub-folder of images per class")
    classes = sorted(d for d in os.listdir(root)
                     if os.path.isdir(os.path.join(root, d)) and not d.startswith("."))
    if not classes:
        raise EdgecnnError(f"data folder {root} has no class sub-folders: put each class's "
                           f"images in a sub-folder named after the class")
    files, labels, skipped = [], [], 0
    for index, name in enumerate(classes):
        folder = os.path.join(root, name)
        for f in sorted(os.listdir(folder)):
            path = os.path.join(folder, f)
            if f.startswith(".") or not os.path.isfile(path):
                continue
            if f.lower().endswith(IMAGE_EXTENSIONS) and _is_readable_image(path):
                files.append(path)
                labels.append(index)
            else:
                skipped += 1
    if skipped:
        log.warning("skipped %d file(s) in %s that are not readable images (%s)", skipped, root,
                    ", ".join(e[1:] for e in IMAGE_EXTENSIONS))
    if not files:
        raise EdgecnnError(f"data folder {root} has no usable images ({skipped} file(s) "
                           f"skipped as unreadable or not an image format edgecnn reads): "
                           f"expected one sub-folder per class holding image files")
    used = sorted(set(labels))
    if len(used) < 2:
        raise EdgecnnError(f"data folder {root} has usable images in {len(used)} class "
                           f"folder(s); training needs at least 2 classes")
    return files, labels, classes, skipped


def _decode_py(path) -> np.ndarray:
    if isinstance(path, np.ndarray):  # tf.numpy_function passes a 0-d array
        path = path.item()
    return decode_image(os.fsdecode(path))


def _decode_file(path):
    """A file decoded by ``data.decode.decode_image`` (the decoder of calibration, eval and
    predict: EXIF orientation, ICC profiles, 16-bit, HEIC), inside tf.data; a file it cannot
    read raises, and ``ignore_errors`` below drops it."""
    image = tf.numpy_function(_decode_py, [path], tf.uint8, stateful=False)
    image.set_shape([None, None, 3])
    return image


def _resize_shorter(image, size: int):
    """Shorter side to ``size``, aspect kept (float32)."""
    shape = tf.cast(tf.shape(image)[:2], tf.float32)
    scale = size / tf.reduce_min(shape)
    new = tf.cast(tf.math.maximum(tf.round(shape * scale), size), tf.int32)
    return tf.image.resize(tf.cast(image, tf.float32), new, method="bilinear", antialias=True)


def _center_crop(image, size: int):
    shape = tf.shape(image)
    top, left = (shape[0] - size) // 2, (shape[1] - size) // 2
    return image[top:top + size, left:left + size, :]


def _random_resized_crop(image, size: int, augment: Augment, seed=None):
    """Random area/aspect crop (tf.image.sample_distorted_bounding_box), resized to size."""
    shape = tf.shape(image)
    begin, crop, _ = tf.image.sample_distorted_bounding_box(
        shape, bounding_boxes=tf.constant([0.0, 0.0, 1.0, 1.0], shape=[1, 1, 4]),
        min_object_covered=0.0, aspect_ratio_range=augment.crop_ratio,
        area_range=augment.crop_scale, max_attempts=20, use_image_if_no_bounding_boxes=True)
    patch = tf.slice(image, begin, crop)
    return tf.image.resize(patch, [size, size], method="bilinear", antialias=True)


def _train_map(size: int, augment: Augment):
    def fn(image, label):
        image = tf.cast(image, tf.float32)
        if augment.crop_scale is not None:
            image = _random_resized_crop(image, size, augment)
        else:
            image = _center_crop(image, size)
        if augment.flip:
            image = tf.image.random_flip_left_right(image)
        image = tf.clip_by_value(image, 0.0, 255.0)
        image.set_shape([size, size, 3])
        return image, label
    return fn


def _val_map(size: int):
    def fn(image, label):
        image = _center_crop(tf.cast(image, tf.float32), size)
        image.set_shape([size, size, 3])
        return image, label
    return fn


def _normalize_map(normalization):
    mean = tf.constant(normalization.mean, tf.float32)
    std = tf.constant(normalization.std, tf.float32)
    return lambda x, y: ((x - mean) / std, y)


def _split_indices(n: int, val_split: float, seed: int, labels=None):
    """A class-stratified validation split: indices (train, val)."""
    rng = np.random.default_rng(seed)
    if labels is None:
        order = rng.permutation(n)
        k = int(round(n * val_split))
        return np.sort(order[k:]), np.sort(order[:k])
    labels = np.asarray(labels)
    train, val = [], []
    for c in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == c))
        k = int(round(len(members) * val_split))
        if val_split > 0 and len(members) > 1:
            k = min(max(k, 1), len(members) - 1)
        val.extend(members[:k])
        train.extend(members[k:])
    return np.sort(np.asarray(train, np.int64)), np.sort(np.asarray(val, np.int64))


def _tfds_source(name: str, data_dir: str | None, val_split: float, seed: int):
    try:
        import tensorflow_datasets as tfds
    except ImportError:
        raise MissingExtraError(f"--dataset {name}", missing="tensorflow-datasets") from None
    try:
        builder = tfds.builder(name, data_dir=data_dir)
    except Exception as exc:  # DatasetNotFoundError and friends
        raise EdgecnnError(f"TensorFlow Datasets has no dataset {name!r} "
                           f"({str(exc).strip().splitlines()[0]}); use --data DIR for an image "
                           f"folder or --dataset {BUILTIN} for the built-in digits") from None
    info = builder.info
    splits = info.splits
    if "train" not in splits:
        raise EdgecnnError(f"dataset {name} has no 'train' split (it has {', '.join(splits)})")
    features = info.features
    if "image" not in features or "label" not in features:
        raise EdgecnnError(f"dataset {name} is not an image classification dataset (features: "
                           f"{', '.join(features)}); it needs 'image' and 'label'")
    class_names = list(getattr(features["label"], "names", None) or
                       [str(i) for i in range(features["label"].num_classes)])
    val_name = next((s for s in ("validation", "test") if s in splits), None)
    if val_name is None:
        cut = int(round(100 * (1 - val_split)))
        train_split, val_split_name = f"train[:{cut}%]", f"train[{cut}%:]"
    else:
        train_split, val_split_name = "train", val_name
    try:
        train_ds, val_ds = builder.as_dataset(split=[train_split, val_split_name],
                                              as_supervised=True, shuffle_files=True,
                                              read_config=tfds.ReadConfig(shuffle_seed=seed))
    except Exception as exc:  # not prepared: AssertionError or a file-not-found
        where = data_dir or os.environ.get("TFDS_DATA_DIR", "~/tensorflow_datasets")
        raise EdgecnnError(f"dataset {name} is not on disk under {where} "
                           f"({type(exc).__name__}); edgecnn never downloads: prepare it first "
                           f"(tfds build {name}, or tfds.load('{name}') once online) or give "
                           f"its folder with --data-dir") from None
    counts = (builder.info.splits[train_split].num_examples,
              builder.info.splits[val_split_name].num_examples)
    height, width = (tuple(getattr(features["image"], "shape", None) or ()) + (None,) * 2)[:2]
    sizes = [(width, height)] if height and width else []

    def to_rgb(image, label):
        image = tf.cond(tf.shape(image)[-1] == 1, lambda: tf.image.grayscale_to_rgb(image),
                        lambda: image[..., :3])
        return tf.cast(image, tf.uint8), tf.cast(label, tf.int64)

    return train_ds.map(to_rgb), val_ds.map(to_rgb), class_names, counts, sizes


# --- the pipeline --------------------------------------------------------------------------

def make_splits(size: int, *, data_dir: str | None = None, dataset: str | None = None,
                batch_size: int = 32, val_split: float = 0.2, augment="auto",
                normalization=None, cache: bool | str = True, limit: int | None = None,
                seed: int = 0, tfds_dir: str | None = None, shuffle_buffer: int = 10000
                ) -> Splits:
    """Training and validation pipelines of square ``size`` images.

    data_dir: an image folder (one sub-folder per class; jpg/png/bmp/gif; anything else or
    unreadable is skipped and counted); or dataset: ``"digits"`` (built-in, offline) or a
    TensorFlow Datasets name already on disk (tfds_dir: its data_dir). val_split: the
    validation fraction (class-stratified; a TFDS dataset's own validation/test split is
    used when it has one). augment: "auto" | "standard" | "light" | "none" | an Augment;
    auto is light for small images or few images per class, else standard (``auto_augment``;
    the choice and why are in ``Splits.augment``).
    normalization: a Preprocessing to apply (None: raw 0-255 pixels, what edgecnn's
    deployable models take). cache: keep decoded images in memory (True) or in a file
    (a path). limit: use at most this many images (a class-mixed random subset).
    """
    if (data_dir is None) == (dataset is None):
        raise EdgecnnError("give an image folder (--data DIR) or a dataset name (--dataset "
                           f"{BUILTIN} or a TensorFlow Datasets name), not both or neither")
    if not 0.0 < val_split < 1.0:
        raise EdgecnnError(f"validation split must be between 0 and 1 (e.g. 0.2), got "
                           f"{val_split}")
    if batch_size < 1:
        raise EdgecnnError(f"batch size must be >= 1, got {batch_size}")
    skipped = 0
    if dataset == BUILTIN:
        from .digits import load_digits

        source = BUILTIN
        data = load_digits(size, limit=limit, seed=seed)
        class_names = list(data.class_names)
        train_idx, val_idx = _split_indices(len(data.labels), val_split, seed, data.labels)
        train_src = tf.data.Dataset.from_tensor_slices((data.images[train_idx],
                                                        data.labels[train_idx]))
        val_src = tf.data.Dataset.from_tensor_slices((data.images[val_idx],
                                                      data.labels[val_idx]))
        counts = (len(train_idx), len(val_idx))
        sizes = [(8, 8)]  # scikit-learn's digits, before upscaling
    elif dataset is not None:
        source = f"tfds:{dataset}"
        train_src, val_src, class_names, counts, sizes = _tfds_source(dataset, tfds_dir,
                                                                      val_split, seed)
        if limit is not None:
            train_src = train_src.take(limit)
            val_src = val_src.take(max(1, int(round(limit * val_split))))
            counts = (min(counts[0], limit), min(counts[1], max(1, int(round(limit * val_split)))))
        train_src = train_src.map(lambda x, y: (tf.cast(_resize_shorter(x, size), tf.uint8), y),
                                  num_parallel_calls=tf.data.AUTOTUNE)
        val_src = val_src.map(lambda x, y: (tf.cast(_resize_shorter(x, size), tf.uint8), y),
                              num_parallel_calls=tf.data.AUTOTUNE)
    else:
        source = f"folder:{os.path.abspath(data_dir)}"
        files, labels, class_names, skipped = scan_folder(data_dir)
        if limit is not None and limit < len(files):
            keep = np.sort(np.random.default_rng(seed).permutation(len(files))[:limit])
            files, labels = [files[i] for i in keep], [labels[i] for i in keep]
        train_idx, val_idx = _split_indices(len(files), val_split, seed, labels)
        if len(val_idx) == 0 or len(train_idx) == 0:
            raise EdgecnnError(f"data folder {data_dir} has too few images ({len(files)}) for "
                               f"a training and a validation split; add images")
        files_arr, labels_arr = np.asarray(files), np.asarray(labels, np.int64)

        def from_files(idx):
            ds = tf.data.Dataset.from_tensor_slices((files_arr[idx], labels_arr[idx]))
            ds = ds.map(lambda p, y: (tf.cast(_resize_shorter(_decode_file(p), size),
                                              tf.uint8), y),
                        num_parallel_calls=tf.data.AUTOTUNE)
            # a file that passed the header check but fails to decode (e.g. a truncated
            # JPEG) is dropped here rather than ending the run
            return ds.ignore_errors(log_warning=True)

        train_src, val_src = from_files(train_idx), from_files(val_idx)
        counts = (len(train_idx), len(val_idx))
        sizes = sample_image_sizes(files, seed=seed)
    if counts[0] == 0 or counts[1] == 0:
        raise EdgecnnError(f"{source} gives {counts[0]} training and {counts[1]} validation "
                           f"images; both splits need images")

    preset, aug, reason = resolve_augment(augment, sizes, counts[0] / len(class_names))

    def cached(ds, suffix):
        if cache is True:
            return ds.cache()
        if cache:
            return ds.cache(f"{cache}.{suffix}")
        return ds

    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = \
        tf.data.experimental.AutoShardPolicy.DATA
    train_options = tf.data.Options()
    train_options.deterministic = False  # the order is random anyway
    train_options = train_options.merge(options)

    train_cached = cached(train_src, "train")
    plain = train_cached.shuffle(min(counts[0], shuffle_buffer), seed=seed,
                                 reshuffle_each_iteration=False)  # class-mixed, fixed order
    plain = plain.map(_val_map(size), num_parallel_calls=tf.data.AUTOTUNE)
    train = train_cached.shuffle(min(counts[0], shuffle_buffer), seed=seed,
                                               reshuffle_each_iteration=True).repeat()
    train = train.map(_train_map(size, aug), num_parallel_calls=tf.data.AUTOTUNE)
    val = cached(val_src, "val").map(_val_map(size), num_parallel_calls=tf.data.AUTOTUNE)
    if normalization is not None:
        train = train.map(_normalize_map(normalization))
        val = val.map(_normalize_map(normalization))
        plain = plain.map(_normalize_map(normalization))
    steps = max(1, counts[0] // batch_size)
    train = train.batch(batch_size, drop_remainder=True).prefetch(tf.data.AUTOTUNE) \
        .with_options(train_options)
    val = val.batch(batch_size).prefetch(tf.data.AUTOTUNE).with_options(options)
    plain = plain.batch(batch_size).prefetch(tf.data.AUTOTUNE)
    return Splits(train, val, plain, class_names, counts[0], counts[1], steps, source, skipped,
                  {"preset": preset, "reason": reason, **aug.as_dict()})


def mixup(dataset, alpha: float, num_classes: int, seed: int | None = None):
    """Mixup (Zhang et al. 2018) on batches of (pixels, one-hot labels): each batch mixed
    with itself reversed, weight ~ Beta(alpha, alpha) per example."""
    if alpha <= 0:
        return dataset

    def mix(x, y):
        n = tf.shape(x)[0]
        a = tf.random.gamma([n], alpha, seed=seed)
        b = tf.random.gamma([n], alpha, seed=None if seed is None else seed + 1)
        lam = a / (a + b)
        lam_x = tf.reshape(lam, [-1, 1, 1, 1])
        lam_y = tf.reshape(lam, [-1, 1])
        return (lam_x * x + (1 - lam_x) * tf.reverse(x, [0]),
                lam_y * y + (1 - lam_y) * tf.reverse(y, [0]))
    return dataset.map(mix, num_parallel_calls=tf.data.AUTOTUNE)


def one_hot(dataset, num_classes: int):
    return dataset.map(lambda x, y: (x, tf.one_hot(tf.cast(y, tf.int32), num_classes)),
                       num_parallel_calls=tf.data.AUTOTUNE)

