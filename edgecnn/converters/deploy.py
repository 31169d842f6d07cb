"""The deployable form of a network: raw RGB pixels in, logits out.

Every converted model takes what a camera gives (RGB 0-255) and does its own normalization
in a first, fixed 1x1 depthwise convolution (per-channel ``(x - mean) / std``: exact for
every family, including per-channel ImageNet statistics, and an int8 op XNNPACK runs). With
int8/uint8 input the input quantization is pinned to scale 1, so the quantized input *is*
the pixel value. The final softmax is dropped: XNNPACK does not run an int8 SOFTMAX, and
top-1 needs only logits (the runtime applies softmax when probabilities are asked for).
"""
from __future__ import annotations

import numpy as np

from .._keras import keras, tf
from ..errors import EdgecnnError
from ..models.layers import Fixed

PIXEL_LAYER = "pixel_normalization"


def model_preprocessing(model, preprocessing=None):
    """The Preprocessing of ``model``: given, or recorded by ``create_model``."""
    if preprocessing is not None:
        return preprocessing
    config = getattr(model, "edgecnn", None)
    if config is None:
        raise EdgecnnError("this model was not made by edgecnn.create_model: pass its "
                           "preprocessing (edgecnn.models.Preprocessing(mean, std))")
    return config.preprocessing


def is_deployable(model) -> bool:
    return any(layer.name == PIXEL_LAYER or getattr(getattr(layer, "layer", None), "name", None)
               == PIXEL_LAYER for layer in model.layers[:3])


def _copy(layer, linear: bool = False):
    """A fresh layer with ``layer``'s config (softmax turned linear when asked)."""
    config = layer.get_config()
    if linear:
        config["activation"] = "linear"
    return layer.__class__.from_config(config)


def pixel_range(preprocessing) -> tuple[float, float]:
    """The range of the normalized input: raw pixels 0-255 through ``preprocessing``."""
    mean, std = np.asarray(preprocessing.mean), np.asarray(preprocessing.std)
    return float(np.min(-mean / std)), float(np.max((255.0 - mean) / std))


def deployable(model, preprocessing=None):
    """``model`` with pixel input and logits output (see the module docstring).

    The graph is rebuilt from fresh copies of ``model``'s layers (same names and weights),
    so the original model is left untouched and shares nothing with the result.
    """
    if is_deployable(model):
        return model
    pre = model_preprocessing(model, preprocessing)
    pixels = keras.Input(model.input_shape[1:], name="pixels")
    std = np.asarray(pre.std, np.float32)
    kernel = (1.0 / std).reshape(1, 1, 3, 1)
    bias = -np.asarray(pre.mean, np.float32) / std
    normalize = keras.layers.DepthwiseConv2D(
        1, use_bias=True, name=PIXEL_LAYER, trainable=False,
        depthwise_constraint=Fixed(kernel), bias_constraint=Fixed(bias))
    x = normalize(pixels)
    normalize.set_weights([kernel, bias])

    tensors = {id(model.inputs[0]): x}
    last = model.layers[-1]
    for layer in model.layers:
        if isinstance(layer, keras.layers.InputLayer):
            continue
        node = layer._inbound_nodes[0]
        inputs = tf.nest.map_structure(lambda t: tensors[id(t)], node.input_tensors)
        softmax = getattr(layer, "activation", None) is keras.activations.softmax
        if layer is last and softmax and isinstance(layer, keras.layers.Activation):
            out = inputs  # logits: drop the final softmax
            break
        copy = _copy(layer, linear=layer is last and softmax)
        out = copy(inputs)
        copy.set_weights(layer.get_weights())
        tf.nest.map_structure(lambda old, new: tensors.__setitem__(id(old), new),
                              node.output_tensors, out)
    result = keras.Model(pixels, out, name=f"{model.name}_pixels_logits")
    if hasattr(model, "edgecnn"):
        result.edgecnn = model.edgecnn
    return result
