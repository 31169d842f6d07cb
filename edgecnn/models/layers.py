"""The few non-standard layers the families need, each with its quantization rule.

Everything else in a network is a stock Keras layer, which tfmot folds and quantizes on
its own. These layers are real ``Layer`` subclasses (never raw arithmetic on symbolic
tensors, which would become TFOpLambda layers that tfmot refuses), serializable under the
``edgecnn`` package, and registered with tfmot's default 8-bit scheme so that a plain
``tfmot.quantization.keras.quantize_model(model)`` works on every edgecnn model.
"""
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


# Layers without weights whose output tfmot must quantize (fake-quant on the output, as
# the default scheme does for ReLU and Add), with the attributes holding intermediate
# activations to fake-quantize. keras' own Multiply (the squeeze-excite gate) is missing
# from tfmot 0.8's registry, so it is listed here too.
QUANTIZED_ACTIVATIONS = {HardSigmoid: ["q_a"], HardSwish: ["q_a", "q_b"],
                         keras.layers.Multiply: []}


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
    return True


register_quantize_configs()
