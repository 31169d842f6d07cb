"""The ``edgecnn convert`` job: build, (QAT), calibrate, convert, validate, write the card.

``run_convert`` is what ``edgecnn convert`` and every point of ``edgecnn sweep`` run; the
conversion itself is ``edgecnn.converters.convert``."""
from __future__ import annotations

import os

from ..errors import EdgecnnError

SYNTHETIC_WARNING = ("no --data: int8 calibration uses synthetic images, so the model's "
                     "accuracy is NOT meaningful (it is still valid for latency work)")


def default_output(name: str, alpha: float, resolution: int, precision: str, qat: bool) -> str:
    tag = f"{precision}{'_qat' if qat else ''}"
    return os.path.join(os.getcwd(), f"{name}_{alpha:g}_{resolution}_{tag}.tflite")


def _warn(message: str, quiet: bool) -> None:
    if quiet:
        return
    from rich.console import Console

    Console(stderr=True).print(f"[bold yellow]warning:[/bold yellow] {message}")


def run_convert(name, *, alpha=1.0, resolution=None, rho=None, num_classes=1000, options=None,
                precision="float32", qat=False, qat_epochs=1, distill=False, weights="auto",
                data_dir=None, labels="auto", calib_samples=200, io_dtype=None, output=None,
                quiet=False, bn_init=True, bias_correction=True, keep_float=None,
                strict=False):
    """Everything ``edgecnn convert`` does; returns the ConversionReport.

    weights: "auto" (ImageNet weights where the catalog has them, else random with a
    warning), "imagenet", "none" or a path (see ``create_model``).
    data_dir: images for calibration, QAT and validation (``edgecnn.data.labelled``
    layouts; ``labels`` maps their classes onto the outputs, see ``label_space``). Photos
    are read as the weights were evaluated (their crop fraction and resize filter).
    distill: QAT learns the float model's outputs on the images (no labels needed)
    instead of the labels.
    bn_init: when the model's weights are random (``weights="none"``, or "auto" without
    published weights), set the BatchNorm statistics from the calibration images first
    (``models.init``), so the network's activations, int8 scales and graph are those of a
    trained network of the same shape. bias_correction, keep_float, strict: see
    ``edgecnn.convert``."""
    from ..utils.files import check_output_path
    from ..converters.convert import convert, weights_are_random
    from ..converters.qat import calibrate_ranges, quantize_aware
    from ..data import synthetic_images
    from ..data.labelled import label_space, load_images, scan
    from ..models import create_model, get_model_spec
    from ..models.registry import check_alpha, resolve_input_size
    from ..utils.progress import Progress

    options = options or {}
    spec = get_model_spec(name)
    alpha = check_alpha(alpha)
    size = resolve_input_size(spec, resolution, rho)
    output = check_output_path(output or default_output(name, alpha, size, precision, qat))
    if not output.endswith(".tflite"):
        raise EdgecnnError(f"output {output} should end in .tflite")
    if distill and not qat:
        raise EdgecnnError("--distill is a way of QAT fine-tuning: add --qat")
    tune = qat and qat_epochs > 0 and data_dir is not None
    dataset = None
    if data_dir is not None:
        dataset = scan(data_dir)  # fails fast on a bad folder
        if tune and not distill:
            num_classes = _fine_tune_classes(dataset, num_classes, labels, weights, name,
                                             alpha, size, options, data_dir)
    elif distill:
        raise EdgecnnError("--distill learns from the float model on images: give --data DIR "
                           "(any images of the target, no labels needed)")
    model = create_model(name, alpha=alpha, input_size=size, num_classes=num_classes,
                         weights=weights, **options)
    crop = model.edgecnn.preprocessing.crop_fraction(size)
    resize = model.edgecnn.preprocessing.resize
    space = None
    if dataset is not None and dataset.labelled:
        try:
            space = label_space(dataset, num_classes, labels)
        except EdgecnnError:
            if labels != "auto" or (tune and not distill):
                raise
    if tune and not distill and space is None:
        raise EdgecnnError(f"QAT fine-tuning needs labelled images and {data_dir} has none; "
                           f"add --distill to learn from the float model instead")

    with Progress(quiet, stderr=False) as bar:  # the report's stream, as always
        data = eval_labels = None
        if dataset is not None:
            source = "image folder"
            sample = load_images(dataset, size, space=space, limit=calib_samples, crop=crop,
                                 resize=resize)
            calibration = sample.images
            if space is not None:
                eval_labels = sample.labels
            if tune:  # fine-tuning uses the whole folder
                data = load_images(dataset, size, space=space, crop=crop, resize=resize)
        else:
            source = "synthetic"
            calibration = synthetic_images(max(16, min(calib_samples, 64)), size)
            if precision == "int8":
                _warn(SYNTHETIC_WARNING, quiet)
        model_info = {}
        if bn_init and weights_are_random(model.edgecnn):
            model_info["batchnorm_statistics"] = init_random_batchnorm(model, calibration,
                                                                       source)

        if qat:
            teacher = _deployable(model) if distill else None
            model = quantize_aware(model)
            if data is not None:
                model_info["qat"] = _qat_fine_tune(model, data, qat_epochs, bar, teacher)
            else:
                calibrate_ranges(model, calibration)
                if data_dir is None:
                    _warn("--qat without --data: no fine-tuning; quantization ranges come from "
                          "synthetic images", quiet)
        advance = bar.task("calibrating", len(calibration)) if precision == "int8" and not qat \
            else None
        return convert(model, output, precision,
                       representative_data=calibration if precision == "int8" and not qat
                       else None,
                       io_dtype=io_dtype, validation_data=calibration,
                       validation_labels=eval_labels,
                       labels=space.names if space is not None else None,
                       calibration_source=source,
                       validation_source=f"{source} images" + (" (labelled)" if eval_labels
                                                                is not None else ""),
                       bias_correction=bias_correction, strict=strict,
                       keep_float=keep_float,
                       model_info=model_info, progress=advance)


def _fine_tune_classes(dataset, num_classes, labels, weights, name, alpha, size, options,
                       data_dir) -> int:
    """The class count labelled QAT fine-tunes to: the data's own classes, unless they are
    (or are mapped onto) the model's 1000 ImageNet classes."""
    from ..data.labelled import label_space

    if not dataset.labelled:
        raise EdgecnnError(f"QAT fine-tuning needs labelled images and {data_dir} has none; "
                           f"add --distill to learn from the float model instead")
    if num_classes != 1000:
        return num_classes
    try:
        label_space(dataset, 1000, labels)
        return 1000  # WordNet ids, a synsets.txt or a class list onto the 1000 outputs
    except EdgecnnError:
        if labels != "auto":
            raise
    classes = dataset.classes
    if len(classes) != 1000 and _imagenet_requested(weights, name, alpha, size, options):
        raise EdgecnnError(f"--weights {weights} gives ImageNet weights with 1000 "
                           f"classes but {data_dir} has {len(classes)}; fine-tune with "
                           f"--weights none, pass data with the ImageNet classes, or "
                           f"--distill (no labels)")
    return len(classes)


def _deployable(model):
    from ..converters.deploy import deployable

    return deployable(model)


def _qat_fine_tune(model, data, epochs: int, bar, teacher=None) -> dict:
    """Labelled QAT fine-tuning, or distillation from ``teacher``; what the card records."""
    from .._keras import keras
    from ..converters.qat import distill, fine_tune

    steps = epochs * -(-len(data.images) // 16)
    what = "distilling from the float model" if teacher is not None else "fine-tuning"
    advance = bar.task(f"QAT {what} ({epochs} epoch(s))", steps)

    class Bar(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            self.done = 0

        def on_train_batch_end(self, batch, logs=None):
            self.done += 1
            advance(self.done, steps)

    if teacher is not None:
        history = distill(model, teacher, data.images, epochs=epochs, callbacks=[Bar()])
    else:
        history = fine_tune(model, data.images, data.labels, epochs=epochs, callbacks=[Bar()])
    record = {"mode": "distillation (float teacher, no labels)" if teacher is not None
              else "labels", "images": int(len(data.images)), "epochs": int(epochs)}
    for key, values in history.history.items():
        record[f"final_{key}"] = round(float(values[-1]), 4)
    return record


def _imagenet_requested(weights, name: str, alpha: float, size: int, options: dict) -> bool:
    """--weights imagenet, or auto where the configuration has published ImageNet weights."""
    text = str(weights).lower()
    if text == "imagenet":
        return True
    if text != "auto":
        return False
    from ..models.pretrained.catalog import resolve

    return resolve(name, alpha, size, options) is not None


def init_random_batchnorm(model, pixels, source: str) -> str:
    """Data-dependent BatchNorm statistics for a random-weight model (``models.init``), with
    the model's own preprocessing (``model.edgecnn``); returns what the card records."""
    from ..models.init import MAX_IMAGES, init_batchnorm_statistics

    images = pixels[:MAX_IMAGES]
    init_batchnorm_statistics(model, model.edgecnn.preprocessing.apply(images))
    return f"random weights; BatchNorm statistics from {len(images)} {source} images"
