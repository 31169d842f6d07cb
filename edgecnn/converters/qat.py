"""Quantization-aware training models (tfmot's default 8-bit scheme, per-channel weights)."""
from __future__ import annotations

import warnings
from dataclasses import replace

from .._keras import keras
from ..models.macs import count_macs
from .deploy import PIXEL_LAYER, deployable, pixel_range

# Layers that carry no arithmetic worth quantizing on their own.
_PASSIVE = (keras.layers.InputLayer, keras.layers.Dropout, keras.layers.Flatten,
            keras.layers.Reshape, keras.layers.ZeroPadding2D, keras.layers.BatchNormalization)


def _tfmot():
    import tensorflow_model_optimization as tfmot

    return tfmot


def unquantized_layers(qat_model) -> list[str]:
    """Names of compute layers of a QAT model that tfmot left without quantization."""
    tfmot = _tfmot()
    q = tfmot.quantization.keras
    names = []
    for layer in qat_model.layers:
        if isinstance(layer, (q.QuantizeWrapperV2, q.QuantizeWrapper)) or \
                type(layer).__name__ == "QuantizeLayer" or isinstance(layer, _PASSIVE):
            continue
        names.append(layer.name)
    return names


def quantize_aware(model, preprocessing=None):
    """The tfmot QAT model of ``model``'s deployable form (pixels in, logits out).

    Every edgecnn layer has a quantize config (see edgecnn.models.layers), so every compute
    layer is wrapped; a layer that is not is named in a warning, never silently skipped.
    Train it on raw pixels (0-255) with a from-logits loss; ``convert`` turns it into an
    int8 model without representative data.
    """
    tfmot = _tfmot()
    base = deployable(model, preprocessing)
    qat = tfmot.quantization.keras.quantize_model(base)
    left = unquantized_layers(qat)
    config = getattr(base, "edgecnn", None)
    if config is not None:  # the network's counts, without quantizer state
        qat.edgecnn = replace(config, params=int(model.count_params()),
                              macs=count_macs(model), unquantized=tuple(left))
    pin_input_range(qat)
    if left:
        warnings.warn(f"tfmot left {len(left)} layers unquantized: {', '.join(left)}",
                      stacklevel=2)
    return qat


def is_qat(model) -> bool:
    return any(type(layer).__name__ in ("QuantizeWrapperV2", "QuantizeWrapper", "QuantizeLayer")
               for layer in model.layers)


def _set_range(layer, low: float, high: float, suffix: str) -> None:
    for weight in layer.weights:
        if weight.name.endswith(f"{suffix}min:0"):
            weight.assign(low)
        elif weight.name.endswith(f"{suffix}max:0"):
            weight.assign(high)


def pin_input_range(qat_model, low: float = 0.0, high: float = 255.0) -> None:
    """Fix the QAT input quantizer's range to the pixel range, so the converted model's
    input quantization is exactly scale 1 (its integer input is the pixel value); and the
    pixel normalization's output range to the normalized pixel range (tfmot's default is
    [-6, 6], a quarter of the int8 steps for a [-1, 1] input), which also lets
    ``converters.folds`` fold it into the input quantization exactly."""
    config = getattr(qat_model, "edgecnn", None)
    for layer in qat_model.layers:
        if type(layer).__name__ == "QuantizeLayer":
            _set_range(layer, low, high, "_")
        elif config is not None and \
                getattr(getattr(layer, "layer", None), "name", None) == PIXEL_LAYER:
            _set_range(layer, *pixel_range(config.preprocessing), "post_activation_")


def freeze_batchnorm(qat_model) -> None:
    """BatchNorm keeps its statistics during QAT on small data (inference mode)."""
    for layer in qat_model.layers:
        inner = getattr(layer, "layer", layer)
        if isinstance(inner, keras.layers.BatchNormalization):
            layer.trainable = False


def calibrate_ranges(qat_model, images, batch_size: int = 16) -> None:
    """Set the fake-quant ranges of an untrained QAT model from ``images`` (raw pixels):
    forward passes in training mode, BatchNorm frozen, no weight update."""
    import numpy as np

    freeze_batchnorm(qat_model)
    for start in range(0, len(images), batch_size):
        qat_model(np.asarray(images[start:start + batch_size], np.float32), training=True)


def fine_tune(qat_model, images, labels, *, epochs: int = 1, batch_size: int = 16,
              learning_rate: float = 1e-4, callbacks=None):
    """Quantization-aware fine-tuning on raw-pixel images and integer labels (BatchNorm
    frozen, Adam, cross-entropy on the logits). Returns the keras History."""
    import numpy as np

    freeze_batchnorm(qat_model)
    qat_model.compile(optimizer=keras.optimizers.Adam(learning_rate),
                      loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                      metrics=["accuracy"])
    return qat_model.fit(np.asarray(images, np.float32), np.asarray(labels), epochs=epochs,
                         batch_size=batch_size, shuffle=True, verbose=0,
                         callbacks=callbacks or [])
