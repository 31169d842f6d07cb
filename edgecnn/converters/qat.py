"""Quantization-aware training models (tfmot's default 8-bit scheme, per-channel weights)."""
from __future__ import annotations

import contextlib
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


@contextlib.contextmanager
def _batch_ranges():
    """Within: tfmot's moving-average activation quantizers take each batch's range as it
    is (EMA decay 0) instead of moving 0.1 % of the way from their initial [-6, 6]."""
    from tensorflow_model_optimization.python.core.quantization.keras import quant_ops

    original = quant_ops.MovingAvgQuantize

    def at_once(*args, **kwargs):
        kwargs["ema_decay"] = 0.0
        return original(*args, **kwargs)

    quant_ops.MovingAvgQuantize = at_once
    try:
        yield
    finally:
        quant_ops.MovingAvgQuantize = original


def _activation_ranges(qat_model) -> list:
    """(min variable, max variable) pairs of the activation quantizers (not the weights',
    which follow the weights at every step; not the pinned pixel input)."""
    pairs = []
    for layer in qat_model.layers:
        if type(layer).__name__ == "QuantizeLayer":
            continue  # the pixel input, pinned to 0-255
        inner = getattr(layer, "layer", None)
        if inner is not None and getattr(inner, "name", None) == PIXEL_LAYER:
            continue  # the pixel normalization's output, pinned to its exact range
        waiting = {}  # a quantizer adds its min, then its max (several may share a name)
        for weight in layer.weights:
            name = weight.name.split("/")[-1].split(":")[0]
            if name.startswith(("kernel", "depthwise_kernel", "bias")):
                continue
            if name.endswith("_min"):
                waiting.setdefault(name[:-4], []).append(weight)
            elif name.endswith("_max") and waiting.get(name[:-4]):
                pairs.append((waiting[name[:-4]].pop(0), weight))
    return pairs


def calibrate_ranges(qat_model, images, batch_size: int = 16) -> int:
    """Set the activation ranges of a QAT model from ``images`` (raw pixels): the min and
    max every fake-quantized tensor takes over them (as post-training calibration
    measures), BatchNorm frozen, no weight update. Returns the number of ranges set.

    tfmot starts every activation range at [-6, 6] and moves it by an exponential moving
    average with decay 0.999 while training: after a short fine-tune a real network's
    logits and linear bottlenecks (often beyond +-6) would still be clipped to [-6, 6]
    and its ReLU6 ranges barely touched, so QAT on pretrained weights would begin (and
    after a few hundred steps end) far from the network it fine-tunes."""
    import numpy as np

    freeze_batchnorm(qat_model)
    pairs = _activation_ranges(qat_model)
    low = [None] * len(pairs)
    high = [None] * len(pairs)
    with _batch_ranges():
        for start in range(0, len(images), batch_size):
            qat_model(np.asarray(images[start:start + batch_size], np.float32), training=True)
            for i, (mn, mx) in enumerate(pairs):
                a, b = mn.numpy(), mx.numpy()
                low[i] = a if low[i] is None else np.minimum(low[i], a)
                high[i] = b if high[i] is None else np.maximum(high[i], b)
    for (mn, mx), a, b in zip(pairs, low, high):
        if a is not None:
            mn.assign(a)
            mx.assign(b)
    pin_input_range(qat_model)
    return len(pairs)


def copy_ranges(source, target) -> None:
    """Give ``target`` the activation ranges of ``source``, a QAT model of the same network
    (e.g. one calibrated outside a tf.distribute strategy, whose replicas cannot run the
    calibration's eager forward passes; assigning from outside a replica updates every
    copy)."""
    pairs, into = _activation_ranges(source), _activation_ranges(target)
    if len(pairs) != len(into):
        raise ValueError(f"{len(pairs)} activation ranges for {len(into)}: not the same network")
    for (smin, smax), (tmin, tmax) in zip(pairs, into):
        tmin.assign(smin.numpy())
        tmax.assign(smax.numpy())


#: Images whose activation ranges start QAT fine-tuning (see ``calibrate_ranges``).
RANGE_IMAGES = 256


def fine_tune(qat_model, images, labels, *, epochs: int = 1, batch_size: int = 16,
              learning_rate: float = 1e-4, callbacks=None):
    """Quantization-aware fine-tuning on raw-pixel images and integer labels (activation
    ranges first set from the images, ``calibrate_ranges``; BatchNorm frozen, Adam,
    cross-entropy on the logits). Returns the keras History."""
    import numpy as np

    calibrate_ranges(qat_model, images[:RANGE_IMAGES])
    qat_model.compile(optimizer=keras.optimizers.Adam(learning_rate),
                      loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                      metrics=["accuracy"])
    return qat_model.fit(np.asarray(images, np.float32), np.asarray(labels), epochs=epochs,
                         batch_size=batch_size, shuffle=True, verbose=0,
                         callbacks=callbacks or [])


def teacher_logits(teacher, images, batch_size: int = 32):
    """The float model's logits on raw-pixel ``images`` (inference mode)."""
    import numpy as np

    outs = [np.asarray(teacher(np.asarray(images[i:i + batch_size], np.float32),
                               training=False)) for i in range(0, len(images), batch_size)]
    return np.concatenate(outs).reshape(len(images), -1).astype(np.float32)


def distill(qat_model, teacher, images, *, epochs: int = 1, batch_size: int = 16,
            learning_rate: float = 1e-4, temperature: float = 2.0, callbacks=None):
    """Quantization-aware fine-tuning without labels: the fake-quantized model learns to
    give the float ``teacher``'s outputs (knowledge distillation, Hinton et al. 2015,
    arXiv:1503.02531) on unlabelled raw-pixel ``images``. The teacher is a deployable float
    model (pixels in, logits out) and runs once, before training. The loss is the Kullback-Leibler
    divergence of the student's softened distribution from the teacher's (zero when they
    agree), times the temperature squared. Ranges and BatchNorm as in :func:`fine_tune`. Returns the keras History (``loss``; ``agreement``: the share of
    images whose top-1 matches the teacher's)."""
    import numpy as np

    from .._keras import tf

    soft = teacher_logits(teacher, images)
    t = float(temperature)
    if not t > 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    targets = tf.nn.softmax(soft / t).numpy()

    def loss(target, logits):  # KL(teacher || student) at temperature t, times t^2
        log_student = tf.nn.log_softmax(logits / t, axis=-1)
        log_teacher = tf.math.log(tf.maximum(target, 1e-12))
        return t * t * tf.reduce_sum(target * (log_teacher - log_student), axis=-1)

    def agreement(target, logits):
        return keras.metrics.sparse_categorical_accuracy(tf.argmax(target, -1), logits)

    calibrate_ranges(qat_model, images[:RANGE_IMAGES])
    qat_model.compile(optimizer=keras.optimizers.Adam(learning_rate), loss=loss,
                      metrics=[agreement])
    return qat_model.fit(np.asarray(images, np.float32), targets, epochs=epochs,
                         batch_size=batch_size, shuffle=True, verbose=0,
                         callbacks=callbacks or [])
