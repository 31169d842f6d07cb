"""TFLite conversion with validation: ``edgecnn.convert(model, path, precision=...)``."""
from __future__ import annotations

import os
import time

import numpy as np

from ..utils.quiet import native_stderr_silenced
from ..utils.files import atomic_write_bytes, atomic_write_json, check_output_path
from .._keras import keras, tf
from .._version import __version__
from ..errors import EdgecnnError
from ..runtime import tflite as rt
from ..runtime.card import IO_DTYPES, PRECISIONS, ModelCard
from .bias import correct_bias
from .deploy import deployable, model_preprocessing
from .folds import (add_serving_signature, fit_xnnpack_scales, fold_hard_swish_sixth,
                    fold_input_normalization, fuse_hard_swish)
from .qat import is_qat, pin_input_range



def _versions() -> dict:
    import ai_edge_litert

    try:
        import tensorflow_model_optimization as tfmot
        tfmot_version = tfmot.__version__
    except ImportError:  # pragma: no cover
        tfmot_version = None
    return {"edgecnn": __version__, "tensorflow": tf.__version__, "tf_keras": keras.__version__,
            "tfmot": tfmot_version, "litert": getattr(ai_edge_litert, "__version__", None)}


def _check_choice(value, choices, what):
    if value not in choices:
        raise EdgecnnError(f"{what} must be one of {', '.join(choices)}, got {value!r}")
    return value


def _pixels(data, what) -> np.ndarray:
    x = np.asarray(data)
    if x.ndim != 4 or x.shape[-1] != 3 or len(x) == 0:
        raise EdgecnnError(f"{what} must be an array of RGB images (N, H, W, 3), got shape "
                           f"{x.shape}")
    return x


def _representative(pixels: np.ndarray, progress=None):
    """Calibration samples (raw pixels). The first carries a 0 and a 255 so the input's
    calibrated range is exactly the pixel range (input scale 1)."""
    def gen():
        for i, image in enumerate(pixels):
            x = image.astype(np.float32)[None].copy()
            if i == 0:
                x[0, 0, 0, 0], x[0, 0, 0, 1] = 0.0, 255.0
            if progress:
                progress(i + 1, len(pixels))
            yield [x]
    return gen


def _kept_float(calibrated: bytes, keep_float, known=None) -> tuple[list[str], dict]:
    """The op names (output tensors) of the calibrated graph that ``keep_float`` (Keras layer
    or tensor names) asks to leave in float, and which layer matched which."""
    from ..runtime.flatbuf import unpack
    from ..runtime.layer_error import match_layers

    model = unpack(calibrated)
    graph = model.subgraphs[0]
    names = []
    for op in graph.operators:
        name = graph.tensors[op.outputs[0]].name
        names.append(name.decode() if isinstance(name, bytes) else str(name))
    matched = match_layers(list(keep_float), names, known)
    return sorted({n for hits in matched.values() for n in hits}, key=names.index), matched


def _quantize_keeping_float(converter, io_dtype, keep_float, known) -> tuple[bytes, dict]:
    """Post-training int8 with some ops left in float: the converter calibrates only, then
    its MLIR quantizer (the same call ``convert`` makes) runs with those ops denylisted
    (the mechanism of ``tf.lite.experimental.QuantizationDebugger``'s ``denylisted_nodes``).
    Float ops get QUANTIZE / DEQUANTIZE around them."""
    from tensorflow.lite.python.convert import mlir_quantize

    converter._experimental_calibrate_only = True
    calibrated = converter.convert()
    nodes, matched = _kept_float(calibrated, keep_float, known)
    dtype = {"float32": tf.float32, "int8": tf.int8, "uint8": tf.uint8}[io_dtype]
    quantized = mlir_quantize(calibrated, input_data_type=dtype, output_data_type=dtype,
                              denylisted_nodes=nodes)
    return quantized, {"layers": list(keep_float), "ops": len(nodes),
                       "matched": {k: len(v) for k, v in matched.items()}}


def _convert_bytes(deploy_model, precision, io_dtype, qat, calibration, progress,
                   keep_float=None):
    size = deploy_model.input_shape[1:]
    def serve(x):
        return deploy_model(x, training=False)

    fn = tf.function(serve, autograph=False)  # a Keras call: nothing for AutoGraph to rewrite
    concrete = fn.get_concrete_function(tf.TensorSpec((1, *size), tf.float32, name="pixels"))
    converter = tf.lite.TFLiteConverter.from_concrete_functions([concrete], deploy_model)
    # Convert the traced function itself instead of first exporting the model as a
    # SavedModel (which traces every layer's functions): the same graph and the same
    # integers, 5x faster (MobileNetV3-Large int8 at 224 px: 4.2 s instead of 22.7 s on this
    # machine). That path writes no signature; folds.add_serving_signature puts it back.
    converter.experimental_lower_to_saved_model = False
    if precision == "float16":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]
    elif precision == "dynamic":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    elif precision == "int8":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        if not qat:  # a QAT graph carries its ranges; integer-only is checked afterwards
            converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
            converter.representative_dataset = _representative(calibration, progress)
        converter.inference_input_type = {"float32": tf.float32, "int8": tf.int8,
                                          "uint8": tf.uint8}[io_dtype]
        converter.inference_output_type = converter.inference_input_type
    try:
        with native_stderr_silenced():  # the MLIR quantizer prints its settings on fd 2
            if keep_float:
                return _quantize_keeping_float(converter, io_dtype, keep_float,
                                               {layer.name for layer in deploy_model.layers})
            return converter.convert()
    except EdgecnnError:
        raise
    except Exception as exc:  # the converter raises many types, with long messages
        raise EdgecnnError(f"TFLite conversion failed: {str(exc).strip().splitlines()[0]}") \
            from None


def _input_meaning(dtype: str, folded) -> str:
    if dtype == "float32":
        return "raw RGB pixels 0-255 (the model normalizes them itself)"
    pixel = "the raw RGB pixel 0-255" if dtype == "uint8" else "the raw RGB pixel minus 128"
    how = ("the input quantization is the normalization (scale * (q - zero_point))" if folded
           else "the model normalizes in its first op (input scale 1)")
    return f"each integer is {pixel}; {how}"


def _agreement(reference, interpreter, pixels, labels=None) -> tuple[dict, dict | None]:
    lite = rt.softmax(rt.run_logits(interpreter, pixels))
    ref_logits = reference.predict(pixels.astype(np.float32), batch_size=16, verbose=0)
    ref = rt.softmax(ref_logits)
    agree = float(np.mean(lite.argmax(1) == ref.argmax(1)))
    result = {"samples": int(len(pixels)), "top1_agreement": round(agree * 100, 2),
              "mean_abs_prob_error": float(np.abs(lite - ref).mean()),
              "max_abs_prob_error": float(np.abs(lite - ref).max())}
    accuracy = None
    if labels is not None and len(labels) == len(pixels):
        accuracy = {"samples": int(len(labels)),
                    "keras_top1": round(float(np.mean(ref.argmax(1) == labels)) * 100, 2),
                    "tflite_top1": round(float(np.mean(lite.argmax(1) == labels)) * 100, 2)}
    return result, accuracy


def weights_are_random(config) -> bool:
    """Whether a model's weights (``model.edgecnn.weights``) are a random initialization:
    unset, "none", or a marker starting with "random" (``weights="auto"`` without
    published weights)."""
    weights = getattr(config, "weights", None)
    text = str(weights).strip().lower()
    return weights is None or text in ("", "none") or text.startswith("random")


def has_imagenet_weights(config) -> bool:
    """Whether a model's weights are pretrained (ImageNet, a file): not random."""
    return config is not None and not weights_are_random(config)


def _card_labels(labels, config, output_shape) -> list | None:
    """The card's class names: ``labels`` when given; the ImageNet class names for a
    1000-class model with ImageNet weights (so ``edgecnn predict`` prints names)."""
    if labels is not None:
        return list(labels)
    if config is not None and has_imagenet_weights(config) and config.include_top \
            and int(output_shape[-1]) == 1000:
        from ..data import imagenet_classes

        return imagenet_classes()
    return None


def convert(model, output_path, precision: str = "float32", representative_data=None,
            io_dtype: str | None = None, *, validation_data=None, validation_labels=None,
            labels=None, preprocessing=None, card_path: str | None = "auto",
            calibration_source: str = "user data", validation_source: str | None = None,
            folds: bool = True, bias_correction: bool = True, strict: bool = False,
            keep_float=None, model_info: dict | None = None, progress=None) -> ModelCard:
    """Convert a Keras model to a validated .tflite and write its model card.

    model: an edgecnn model (float) or its QAT form from ``quantize_aware``.
    precision: float32 | float16 | dynamic (int8 weights, float activations) | int8 (integer
    only). A float model needs ``representative_data`` for int8 (post-training
    quantization: raw RGB pixel images, (N, H, W, 3), 0-255); a QAT model does not.
    io_dtype: the .tflite's input/output type; int8/uint8 only with precision int8 (default
    uint8 then, float32 otherwise). Every converted model takes raw pixels (0-255) and
    returns logits (see ``edgecnn.converters.deploy``).
    folds: simplify an int8 graph after conversion (``edgecnn.converters.folds``): with
    integer io and one normalization for every channel, the input quantization carries it
    (the integer input stays the raw pixel); hard-swish's 1/6 moves into the next layer's
    weight scales (post-training models only: a QAT model learned with x / 6 rounded and
    is converted as trained). Both keep the integer arithmetic. An int8 ADD whose scales
    XNNPACK refuses is rewritten into a form it runs (``folds.fit_xnnpack_scales``). Float
    graphs get one fused HARD_SWISH op per hard-swish. ``folds=False`` keeps the graph as
    the converter wrote it.
    bias_correction: post-training int8 only: take the mean error that rounding each
    layer's weights to int8 puts on its output out of its bias, measured on the calibration
    images (``edgecnn.converters.bias``; costs a float32 conversion).
    keep_float: post-training int8 only: Keras layer names (or converter tensor names) whose
    ops stay in float, with QUANTIZE / DEQUANTIZE around them (``edgecnn quant-error`` names
    the layers that lose the most). A name that matches no op is an error.
    strict: an int8 model that is not integer-only or not one XNNPACK partition is an error
    (nothing is written); otherwise the report warns and names each op left outside.
    model_info: entries added to the card's ``model`` record (e.g. how weights were set).
    labels: the class names the card carries (default: the ImageNet class names when the
    model has 1000 outputs and ImageNet weights, ``model.edgecnn.weights``; else none).
    validation_data: images for the agreement check (default: the calibration images, or 16
    synthetic ones); validation_labels: their class indices, for accuracy.
    The .tflite (with the card in its metadata under "edgecnn") and the card as JSON beside
    it (``card_path="auto"``: same name, .json) are written atomically.
    """
    precision = _check_choice(precision, PRECISIONS, "precision")
    io_dtype = io_dtype or ("uint8" if precision == "int8" else "float32")
    _check_choice(io_dtype, IO_DTYPES, "io dtype")
    if io_dtype != "float32" and precision != "int8":
        raise EdgecnnError(f"{io_dtype} input/output needs precision int8, got {precision}")
    output_path = check_output_path(output_path)
    if card_path == "auto":
        card_path = os.path.splitext(output_path)[0] + ".json"
    if card_path:
        check_output_path(card_path)
    qat = is_qat(model)
    keep_float = [k for k in (keep_float or []) if k]
    if keep_float and (precision != "int8" or qat):
        raise EdgecnnError("keeping layers in float applies to post-training int8 (precision "
                           "int8 of a float model, not QAT)")
    if precision == "int8" and not qat and representative_data is None:
        raise EdgecnnError("int8 conversion of a float model needs representative_data "
                           "(images for post-training calibration), or a QAT model from "
                           "edgecnn.quantize_aware")
    calibration = None if representative_data is None else \
        _pixels(representative_data, "representative_data")
    if qat:
        deploy_model = model
        pin_input_range(model)
    else:
        deploy_model = deployable(model, preprocessing)
    pre = model_preprocessing(deploy_model, preprocessing) if not qat else \
        (getattr(model, "edgecnn", None) and model.edgecnn.preprocessing)
    validation = calibration if validation_data is None else _pixels(validation_data,
                                                                     "validation_data")
    if validation is None:
        from ..data import synthetic_images

        validation = synthetic_images(16, deploy_model.input_shape[1])
    validation = validation[:256]

    start = time.perf_counter()
    kept = None
    if keep_float:
        model_bytes, kept = _convert_bytes(deploy_model, precision, io_dtype, qat, calibration,
                                           progress, keep_float=keep_float)
    else:
        model_bytes = _convert_bytes(deploy_model, precision, io_dtype, qat, calibration,
                                     progress)
    corrected = None
    if precision == "int8" and not qat and bias_correction:
        float_bytes = _convert_bytes(deploy_model, "float32", "float32", False, None, None)
        model_bytes, corrected = correct_bias(model_bytes, float_bytes, calibration)
    folded, hard_swishes, fused, fitted = None, 0, 0, None
    if precision == "int8" and folds:
        if not qat:  # a QAT graph is kept as trained (it learned with x / 6 rounded)
            model_bytes, hard_swishes = fold_hard_swish_sixth(model_bytes)
        if io_dtype != "float32":
            model_bytes, folded = fold_input_normalization(model_bytes)
        model_bytes, fitted = fit_xnnpack_scales(model_bytes)
    elif folds:
        model_bytes, fused = fuse_hard_swish(model_bytes)
    model_bytes = add_serving_signature(model_bytes)
    seconds = time.perf_counter() - start

    analysis = rt.analyze(model_bytes)
    interpreter = rt.load_interpreter(model_bytes, checked=True)  # analyze just tried these bytes
    agreement, accuracy = _agreement(deploy_model, interpreter, validation, validation_labels)
    inp = rt.input_spec(interpreter)
    out_detail = interpreter.get_output_details()[0]
    from ..models.macs import count_macs

    config = getattr(model, "edgecnn", None)
    warnings = []
    if config is not None and config.unquantized:
        warnings.append(f"tfmot left layers unquantized: {', '.join(config.unquantized)}")
    if precision == "int8" and not qat and calibration_source == "synthetic":
        warnings.append("calibrated on synthetic images: accuracy is not meaningful (latency "
                        "is)")
    if kept:
        warnings.append(f"kept in float as asked: {', '.join(kept['layers'])} ({kept['ops']} "
                        f"op(s)); the model is not integer-only")
    if precision == "int8" and (not analysis["all_int8"] or analysis["xnnpack_partitions"] != 1):
        problem = rt.describe_split(analysis)
        if strict:
            raise EdgecnnError(f"--strict: {problem}; nothing written")
        warnings.append(problem)
    card = ModelCard.from_dict(dict(
        precision=precision, io_dtype=io_dtype,
        model={**(config.as_dict() if config else {"name": model.name}), **(model_info or {})},
        params=int(config and config.params or model.count_params()),
        macs=int(config and config.macs or count_macs(model)),
        input={**inp, "range": [0, 255], "meaning": _input_meaning(inp["dtype"], folded),
               "normalization_folded": folded},
        output={"shape": [int(s) for s in out_detail["shape"]],
                "dtype": np.dtype(out_detail["dtype"]).name,
                "scale": float(out_detail["quantization"][0]),
                "zero_point": int(out_detail["quantization"][1]),
                "meaning": "logits: apply softmax for probabilities"},
        preprocessing={"inside_model": True, **(pre.as_dict() if pre else {}),
                       **({"crop_fraction": pre.crop_fraction(int(inp["shape"][1]))}
                          if pre else {})},
        size_bytes=0, ops=analysis["ops"], all_int8=analysis["all_int8"]
        if precision == "int8" else None,
        float_ops=analysis["float_ops"], xnnpack_partitions=analysis["xnnpack_partitions"],
        ops_outside_xnnpack=analysis["ops_outside_xnnpack"],
        xnnpack_refusals=analysis["xnnpack_refusals"],
        agreement={**agreement, "data": validation_source or (
            "validation images" if validation_data is not None else
            "calibration images" if calibration is not None else "synthetic images")},
        accuracy=accuracy, conversion_seconds=round(seconds, 2), qat=qat,
        calibration={"source": "QAT ranges" if qat else (calibration_source if calibration is
                     not None else None),
                     "samples": 0 if calibration is None or qat else int(len(calibration)),
                     **({"bias_correction": corrected} if corrected else {}),
                     **({"keep_float": kept} if kept else {})},
        labels=_card_labels(labels, config, out_detail["shape"]), versions=_versions(),
        folds={"input_normalization": folded is not None, "hard_swish_sixth": hard_swishes,
               "hard_swish_fused": fused, **(fitted or {})},
        warnings=warnings))
    card.path = output_path
    final = card.embed(model_bytes)
    try:
        atomic_write_bytes(output_path, final)
        if card_path:
            atomic_write_json(card_path, card.to_dict())
    except BaseException:
        if os.path.exists(output_path) and card_path and not os.path.exists(card_path):
            os.unlink(output_path)
        raise
    return card
