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
                precision="float32", qat=False, qat_epochs=1, weights="auto", data_dir=None,
                calib_samples=200, io_dtype=None, output=None, quiet=False, bn_init=True,
                strict=False):
    """Everything ``edgecnn convert`` does; returns the ConversionReport.

    weights: "auto" (ImageNet weights where the catalog has them, else random with a
    warning), "imagenet", "none" or a path (see ``create_model``).
    bn_init: when the model's weights are random (``weights="none"``, or "auto" without
    published weights), set the BatchNorm statistics from the calibration images first
    (``models.init``), so the network's activations, int8 scales and graph are those of a
    trained network of the same shape. strict: see ``edgecnn.convert``."""
    from ..utils.files import check_output_path
    from ..converters.convert import convert, weights_are_random
    from ..converters.qat import calibrate_ranges, fine_tune, quantize_aware
    from ..data import load_image_folder, synthetic_images
    from ..data.folder import list_image_files
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
    classes = None
    if data_dir is not None:
        _, classes = list_image_files(data_dir)  # fails fast on a bad folder
        if qat and qat_epochs > 0 and num_classes == 1000 and len(classes) != 1000:
            if _imagenet_requested(weights, name, alpha, size, options):
                raise EdgecnnError(f"--weights {weights} gives ImageNet weights with 1000 "
                                   f"classes but {data_dir} has {len(classes)}; fine-tune with "
                                   f"--weights none or pass data with the ImageNet classes")
            num_classes = len(classes)
    model = create_model(name, alpha=alpha, input_size=size, num_classes=num_classes,
                         weights=weights, **options)
    labels = classes if classes is not None and len(classes) == num_classes else None

    with Progress(quiet, stderr=False) as bar:  # the report's stream, as always
        data = eval_labels = None
        if data_dir is not None:
            source = "image folder"
            sample = load_image_folder(data_dir, size, limit=calib_samples)
            calibration = sample.images
            if labels is not None:
                eval_labels = sample.labels
            if qat and qat_epochs > 0:  # fine-tuning uses the whole folder
                data = load_image_folder(data_dir, size)
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
            model = quantize_aware(model)
            if data is not None:
                from .._keras import keras

                steps = qat_epochs * -(-len(data.images) // 16)
                advance = bar.task(f"QAT fine-tuning ({qat_epochs} epoch(s))", steps)

                class Bar(keras.callbacks.Callback):
                    def on_train_begin(self, logs=None):
                        self.done = 0

                    def on_train_batch_end(self, batch, logs=None):
                        self.done += 1
                        advance(self.done, steps)

                fine_tune(model, data.images, data.labels, epochs=qat_epochs,
                          callbacks=[Bar()])
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
                       validation_labels=eval_labels, labels=labels,
                       calibration_source=source,
                       validation_source=f"{source} images" + (" (labelled)" if eval_labels
                                                                is not None else ""),
                       strict=strict, model_info=model_info, progress=advance)


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
