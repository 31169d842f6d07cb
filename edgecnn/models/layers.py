"""The few non-standard layers the families need, each with its quantization rule.

Everything else in a network is a stock Keras layer, which tfmot folds and quantizes on
its own. These layers are real ``Layer`` subclasses (never raw arithmetic on symbolic
tensors, which would become TFOpLambda layers that tfmot refuses), serializable under the
``edgecnn`` package, and registered with tfmot's default 8-bit scheme so that a plain
``tfmot.quantization.keras.quantize_model(model)`` works on every edgecnn model.
"""
import numpy as np

from .._keras import keras, tf

_SIXTH = 1.0 / 6.0


# Formulation, measured on tf 2.21 / LiteRT 2.3 int8 graphs: the converter fuses
# ``x * relu6(x + 3) * (1/6)`` (in either multiplication order around relu6) into a
# HARD_SWISH op, which XNNPACK does not run in int8, splitting the graph into many delegate
# partitions (3.3x slower at 224x224). ``(x * 1/6) * relu6(x + 3)`` is not fused: it stays
# ADD + MUL, which XNNPACK runs in int8. The ``q_*`` hooks are identities in float; tfmot
# replaces them with fake-quant activations (see register_quantize_configs), so the QAT
# graph quantizes every intermediate and converts with no float island.


@keras.saving.register_keras_serializable(package="edgecnn")
class HardSigmoid(keras.layers.Layer):
    """relu6(x + 3) / 6 (MobileNetV3's piecewise-linear sigmoid)."""

    q_a = staticmethod(keras.activations.linear)

    def call(self, inputs):
        return self.q_a(tf.nn.relu6(inputs + 3.0)) * _SIXTH

    def compute_output_shape(self, input_shape):
        return input_shape


@keras.saving.register_keras_serializable(package="edgecnn")
class HardSwish(keras.layers.Layer):
    """x * relu6(x + 3) / 6 (MobileNetV3's piecewise-linear swish), written so that the
    int8 converter keeps it as XNNPACK-friendly ADD/MUL ops (see above)."""

    q_a = staticmethod(keras.activations.linear)
    q_b = staticmethod(keras.activations.linear)

    def call(self, inputs):
        return self.q_a(inputs * _SIXTH) * self.q_b(tf.nn.relu6(inputs + 3.0))

    def compute_output_shape(self, input_shape):
        return input_shape


@keras.saving.register_keras_serializable(package="edgecnn")
class ChannelShuffle(keras.layers.Layer):
    """ShuffleNet's channel shuffle: view the C channels as (groups, C / groups), transpose
    to (C / groups, groups), flatten back. Constant shapes only (the batch as -1), so the
    TFLite graph holds RESHAPE -> TRANSPOSE -> RESHAPE and no run-time SHAPE ops; the
    spatial dims are folded into one so every tensor stays 4-D."""

    def __init__(self, groups: int, **kwargs):
        super().__init__(**kwargs)
        self.groups = int(groups)

    def build(self, input_shape):
        _, h, w, c = input_shape
        if h is None or w is None or c is None or c % self.groups:
            raise ValueError(f"ChannelShuffle({self.groups}) needs a static (H, W, C) input "
                             f"with C divisible by {self.groups}, got {tuple(input_shape)}")
        super().build(input_shape)

    def call(self, inputs):
        _, h, w, c = inputs.shape
        x = tf.reshape(inputs, [-1, h * w, self.groups, c // self.groups])
        x = tf.transpose(x, [0, 1, 3, 2])
        return tf.reshape(x, [-1, h, w, c])

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "groups": self.groups}


@keras.saving.register_keras_serializable(package="edgecnn")
class ChannelSplit(keras.layers.Layer):
    """Split the channels into two equal halves (ShuffleNet V2's channel split): one SPLIT
    op in TFLite, whose outputs keep the input's int8 scale."""

    def build(self, input_shape):
        if input_shape[-1] is None or input_shape[-1] % 2:
            raise ValueError(f"ChannelSplit needs an even channel count, got {input_shape[-1]}")
        super().build(input_shape)

    def call(self, inputs):
        return tf.split(inputs, 2, axis=-1)

    def compute_output_shape(self, input_shape):
        shape = tf.TensorShape(input_shape).as_list()
        half = tf.TensorShape(shape[:-1] + [shape[-1] // 2])
        return [half, half]


@keras.saving.register_keras_serializable(package="edgecnn")
class DepthwiseAveragePooling2D(keras.layers.Layer):
    """Average pooling ('same' padding, zeros counted: PyTorch's ``count_include_pad``, as
    the ShuffleNet reference code pools) computed as a depthwise convolution with a
    constant ``1 / pool_size**2`` kernel. No weights: it is a pooling. XNNPACK runs int8
    DEPTHWISE_CONV_2D but not int8 AVERAGE_POOL_2D (tf 2.21 / LiteRT 2.3), which would
    leave every stride-2 ShuffleNet V1 unit outside the delegate."""

    def __init__(self, pool_size: int = 3, strides: int = 2, padding: str = "same", **kwargs):
        super().__init__(**kwargs)
        self.pool_size, self.strides = int(pool_size), int(strides)
        if padding not in ("same", "valid"):
            raise ValueError(f"padding must be 'same' or 'valid', got {padding!r}")
        self.padding = padding  # 'valid' after an explicit ZeroPadding2D (PyTorch's padding)

    def call(self, inputs):
        k = self.pool_size
        kernel = tf.fill([k, k, inputs.shape[-1], 1], tf.constant(1.0 / (k * k), inputs.dtype))
        return tf.nn.depthwise_conv2d(inputs, kernel, [1, self.strides, self.strides, 1],
                                      self.padding.upper())

    def compute_output_shape(self, input_shape):
        _, h, w, c = input_shape
        k, s = self.pool_size, self.strides
        size = [None if d is None else (-(-d // s) if self.padding == "same" else (d - k) // s + 1)
                for d in (h, w)]
        return tf.TensorShape([input_shape[0], *size, c])

    def get_config(self):
        return {**super().get_config(), "pool_size": self.pool_size, "strides": self.strides,
                "padding": self.padding}


@keras.saving.register_keras_serializable(package="edgecnn")
class Fixed(keras.constraints.Constraint):
    """Holds a weight at a fixed value whatever an optimizer does (the pixel normalization
    of a deployable model: inside a tfmot wrapper ``trainable=False`` does not keep it out
    of training). Here, with the layers, so that loading a saved model finds it."""

    def __init__(self, value):
        self.value = np.asarray(value, np.float32).tolist()

    def __call__(self, w):
        return tf.reshape(tf.constant(self.value, dtype=w.dtype), tf.shape(w))

    def get_config(self):
        return {"value": self.value}


# Layers without weights whose output tfmot must quantize (fake-quant on the output, as
# the default scheme does for ReLU and Add), with the attributes holding intermediate
# activations to fake-quantize. keras' own Multiply (the squeeze-excite gate) is missing
# from tfmot 0.8's registry, so it is listed here too.
QUANTIZED_ACTIVATIONS = {HardSigmoid: ["q_a"], HardSwish: ["q_a", "q_b"],
                         keras.layers.Multiply: [], DepthwiseAveragePooling2D: []}
# Layers that only move int8 values around (TFLite's RESHAPE, TRANSPOSE and SPLIT need the
# output scale to equal the input's): no fake-quant on their outputs, as tfmot registers
# Reshape and Permute, so the converter carries the input's scale through unchanged.
PASS_THROUGH = (ChannelShuffle, ChannelSplit)


def register_quantize_configs() -> bool:
    """Teach tfmot's default 8-bit registry about the layers above.

    Returns False when tensorflow-model-optimization is not installed.
    """
    try:
        from tensorflow_model_optimization.python.core.quantization.keras.default_8bit import (
            default_8bit_quantize_registry as registry,
        )
    except ImportError:  # pragma: no cover - tfmot is part of the [tf] extra
        return False
    known = {info.layer_type for info in registry.Default8BitQuantizeRegistry._LAYER_QUANTIZE_INFO}
    for layer_type, activations in QUANTIZED_ACTIVATIONS.items():
        if layer_type not in known:
            registry.Default8BitQuantizeRegistry._LAYER_QUANTIZE_INFO.append(
                registry._QuantizeInfo(layer_type, [], activations, True))
    for layer_type in PASS_THROUGH:
        if layer_type not in known:
            registry.Default8BitQuantizeRegistry._LAYER_QUANTIZE_INFO.append(
                registry._QuantizeInfo(layer_type, [], [], False))
    return True


register_quantize_configs()
