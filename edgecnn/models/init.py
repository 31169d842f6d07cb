"""Data-dependent initialization of BatchNorm statistics for random-weight networks.

A freshly built network has BatchNorm moving means of 0 and variances of 1, which no
trained network has: with random weights, inference-mode activations then shrink (or grow)
layer after layer, to ~1e-6 of their first-layer size in MobileNetV3. Such a network is a
poor stand-in for the trained one in latency work: int8 calibration gives it quantization
scales no trained network has, and XNNPACK refuses ops whose scale ratios leave its bounds.
Setting every BatchNorm's statistics to those of its input on a batch of images (the
data-dependent initialization of Kraehenbuehl et al., ICLR 2016, restricted to BatchNorm)
makes every layer's activations O(1), as training does; the weights stay random.
"""
from __future__ import annotations

import numpy as np

from .._keras import keras, tf

MAX_IMAGES = 32   # enough for the statistics, small enough for Xception at 299 px in memory


def init_batchnorm_statistics(model, images: np.ndarray) -> int:
    """Set every BatchNormalization's moving mean and variance to its batch statistics on
    ``images`` (network inputs, already normalized as the model expects; the first
    ``MAX_IMAGES`` are used): one forward pass in training mode with momentum 0. Dropout
    and stochastic depth stay off. Returns the number of BatchNorm layers set."""
    layers = [layer for layer in model.submodules
              if isinstance(layer, keras.layers.BatchNormalization)]
    if not layers:
        return 0
    x = tf.constant(np.asarray(images, np.float32)[:MAX_IMAGES])
    momenta = [layer.momentum for layer in layers]
    # Only the BatchNorm layers see training=True: every other layer (Dropout, drop-connect)
    # runs as at inference, so the statistics are those the deployed network meets.
    calls = [layer.call for layer in layers]
    try:
        for layer, call in zip(layers, calls):
            layer.momentum = 0.0
            layer.call = _training_call(call)
        model(x, training=False)
    finally:
        for layer, momentum, call in zip(layers, momenta, calls):
            layer.momentum = momentum
            layer.call = call
    return len(layers)


def _training_call(call):
    def training_call(inputs, training=None, **kwargs):
        return call(inputs, training=True, **kwargs)
    return training_call
