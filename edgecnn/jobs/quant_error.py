"""``edgecnn quant-error``: which layers of a post-training int8 model lose the accuracy, and
what keeping some of them in float costs and gives back.

The model (a registered name with its weights, or a saved Keras model) is converted to
float32 and to int8 as ``edgecnn convert --int8`` converts it (calibrated on the first
``calib_samples`` images of ``--data``, bias correction on, edgecnn's folds), every
quantized layer output is compared with the float model's on ``images`` of them
(``runtime.layer_error``), and all of ``--data`` is classified by the float32, the int8 and,
with ``keep_float``, the int8 model with those layers left in float: top-1 (when the folder's
classes map onto the outputs), agreement with float, XNNPACK partitions, size and latency on
this machine (interleaved rounds, medians).
"""
from __future__ import annotations

import os
import tempfile

import numpy as np

from ..errors import EdgecnnError

WORST = 5   # layers flagged by default


def _load(model, alpha, resolution, rho, num_classes, options, weights):
    from ..models import create_model, get_model_spec
    from ..models.io import KERAS_SUFFIXES, load_model
    from ..models.registry import check_alpha, resolve_input_size

    if str(model).endswith(KERAS_SUFFIXES):
        if not os.path.isfile(model):
            raise EdgecnnError(f"Keras model {model} does not exist; give a .keras/.h5 file "
                               f"(edgecnn train writes one) or a registered model name")
        loaded = load_model(model)
        if getattr(loaded, "edgecnn", None) is None:
            raise EdgecnnError(f"{model} has no edgecnn build record, so its preprocessing is "
                               f"unknown; save it with edgecnn.save_model or give a model name")
        return loaded
    spec = get_model_spec(model)
    size = resolve_input_size(spec, resolution, rho)
    return create_model(model, alpha=check_alpha(alpha), input_size=size,
                        num_classes=num_classes, weights=weights, **(options or {}))


def _latency(models: dict, threads: int, rounds: int) -> dict:
    """Median ms of each model (bytes), timed in interleaved rounds on this machine."""
    from ..runtime.profile import Timer

    timers = {k: Timer(v, threads, True) for k, v in models.items()}
    times = {k: [] for k in models}
    for _ in range(rounds):
        for k, timer in timers.items():
            times[k].append(timer.median_ms(20, 0.5))
    return {k: {"ms": round(float(np.median(v)), 4), "rounds": [round(t, 4) for t in v]}
            for k, v in times.items()}


def _scores(logits: np.ndarray, reference: np.ndarray, labels) -> dict:
    top1 = logits.argmax(1)
    reference = reference.astype(np.float64)
    error = float(((logits.astype(np.float64) - reference) ** 2).sum())
    signal = float((reference ** 2).sum())
    result = {"agreement": round(100.0 * float((top1 == reference.argmax(1)).mean()), 2),
              "logit_snr_db": round(10.0 * float(np.log10(signal / error)), 2) if error
              else None}
    if labels is not None:
        result["top1"] = round(100.0 * float((top1 == labels).mean()), 2)
    return result


def run_quant_error(model, *, data_dir, alpha=1.0, resolution=None, rho=None, num_classes=1000,
                    options=None, weights="auto", labels="auto", calib_samples=200,
                    images=16, keep_float=None, worst=WORST, threads=1, rounds=3,
                    output=None, progress=None) -> dict:
    """Everything ``edgecnn quant-error`` does; returns the report (see the module docstring).

    keep_float: layer names (the report's ``layer`` column, or any Keras layer name) to
    convert in float as well; output: where that model's .tflite goes (default: not kept).
    """
    from ..converters.convert import _convert_bytes, convert, weights_are_random
    from ..converters.deploy import deployable
    from ..data.labelled import label_space, load_images, sample_indices, scan
    from ..runtime import tflite as rt
    from ..runtime.layer_error import keep_float_suggestion, layer_errors, match_layers
    from ..runtime.layer_error import worst as worst_rows
    from ..utils.files import atomic_write_bytes, check_output_path
    from .convert import init_random_batchnorm

    say = progress or (lambda message: None)
    if output is not None:
        if not keep_float:
            raise EdgecnnError("--output writes the model with --keep-float layers; add "
                               "--keep-float LAYER[,LAYER]")
        output = check_output_path(output)
        if not output.endswith(".tflite"):
            raise EdgecnnError(f"output {output} should end in .tflite")
    if images < 1 or calib_samples < 1 or worst < 0:
        raise EdgecnnError("--images and --calib-samples must be >= 1, --worst >= 0")
    dataset = scan(data_dir)
    net = _load(model, alpha, resolution, rho, num_classes, options, weights)
    config = net.edgecnn
    size = int(net.input_shape[1])
    outputs = int(net.output_shape[-1])
    space = None
    if dataset.labelled:
        try:
            space = label_space(dataset, outputs, labels)
        except EdgecnnError:
            if labels != "auto":
                raise
    pre = config.preprocessing
    say(f"reading {len(dataset.files)} images at {size} px")
    folder = load_images(dataset, size, space=space, crop=pre.crop_fraction(size),
                         resize=pre.resize)
    pixels = folder.images
    calibration = pixels[sample_indices(len(pixels), calib_samples)]   # as convert reads them
    info = {}
    if weights_are_random(config):
        info["batchnorm_statistics"] = init_random_batchnorm(net, calibration, "--data")
    known = {layer.name for layer in net.layers}
    if keep_float:   # fail before any conversion on a name that is no layer
        match_layers(list(keep_float), [f"{net.name}/{name}/op" for name in sorted(known)],
                     known)
    deploy = deployable(net)
    say("converting to float32 and int8")
    float_bytes = _convert_bytes(deploy, "float32", "float32", False, None, None)
    with tempfile.TemporaryDirectory(prefix="edgecnn_quant_error_") as workdir:
        card = convert(net, os.path.join(workdir, "int8.tflite"), "int8",
                       representative_data=calibration, validation_data=calibration[:4],
                       card_path=None, calibration_source="--data images")
        with open(card.path, "rb") as fh:
            int8_bytes = fh.read()
        say(f"comparing every quantized layer with float on {min(images, len(calibration))} "
            f"images")
        rows = layer_errors(float_bytes, int8_bytes, calibration[:images], known=known,
                            output_layer=net.layers[-1].name)
        flagged = worst_rows(rows, worst)
        for row in flagged:
            row["worst"] = True
        models = {"float32": float_bytes, "int8": int8_bytes}
        kept_card = None
        if keep_float:
            say(f"converting with {', '.join(keep_float)} in float")
            kept_card = convert(net, os.path.join(workdir, "keep_float.tflite"), "int8",
                                representative_data=calibration,
                                validation_data=calibration[:4], card_path=None,
                                calibration_source="--data images", keep_float=keep_float)
            with open(kept_card.path, "rb") as fh:
                models["int8 keep-float"] = fh.read()
        say(f"classifying {len(pixels)} images")
        logits = {}
        for key, data in models.items():
            interpreter = rt.load_interpreter(data, threads=threads, name=key, checked=True)
            logits[key] = rt.run_logits(interpreter, pixels, name=key)
        say("timing")
        latency = _latency(models, threads, rounds)
        labels_used = folder.labels if space is not None else None
        results = {}
        for key, data in models.items():
            analysis = rt.analyze(data, threads=threads)
            results[key] = {**_scores(logits[key], logits["float32"], labels_used),
                            "ms": latency[key]["ms"], "ms_rounds": latency[key]["rounds"],
                            "size_bytes": len(data),
                            "xnnpack_partitions": analysis["xnnpack_partitions"],
                            "all_int8": analysis["all_int8"] if key != "float32" else None,
                            "float_ops": analysis["float_ops"] if key != "float32" else None}
        if kept_card is not None:
            results["int8 keep-float"]["keep_float"] = kept_card.calibration.get("keep_float")
            if output:
                atomic_write_bytes(output, models["int8 keep-float"])
    return {"model": config.name if hasattr(config, "name") else str(model),
            "alpha": getattr(config, "alpha", None), "resolution": size,
            "weights": getattr(config, "weights", None), "data": os.path.abspath(data_dir),
            "images": int(len(pixels)), "labels": space.how if space is not None else None,
            "calibration_images": int(len(calibration)),
            "error_images": int(min(images, len(calibration))), "threads": int(threads),
            "layers": rows, "worst": [r["layer"] for r in flagged],
            "suggested_keep_float": keep_float_suggestion(flagged), "models": results,
            "keep_float": list(keep_float or []), "output": output, **info}
