"""Quantization-aware training models (tfmot's default 8-bit scheme, per-channel weights)."""
from __future__ import annotations

import warnings

from .._keras import keras
from .deploy import deployable

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
    qat.edgecnn = getattr(base, "edgecnn", None)
    left = unquantized_layers(qat)
    if left:
        warnings.warn(f"tfmot left {len(left)} layers unquantized: {', '.join(left)}",
                      stacklevel=2)
    qat.edgecnn_unquantized = tuple(left)
    return qat


def is_qat(model) -> bool:
    return any(type(layer).__name__ in ("QuantizeWrapperV2", "QuantizeWrapper", "QuantizeLayer")
               for layer in model.layers)


def pin_input_range(qat_model, low: float = 0.0, high: float = 255.0) -> None:
    """Fix the QAT input quantizer's range to the pixel range, so the converted model's
    input quantization is exactly scale 1 (its integer input is the pixel value)."""
    for layer in qat_model.layers:
        if type(layer).__name__ == "QuantizeLayer":
            for weight in layer.weights:
                if weight.name.endswith("_min:0"):
                    weight.assign(low)
                elif weight.name.endswith("_max:0"):
                    weight.assign(high)
            return
