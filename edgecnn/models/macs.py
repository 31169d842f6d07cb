"""Multiply-adds counted from a built graph (the papers' "Mult-Adds"/"FLOPs")."""
from .._keras import keras


def _layer_macs(layer) -> int:
    L = keras.layers
    inner = layer.layer if isinstance(layer, L.Wrapper) else layer  # e.g. QuantizeWrapper
    if isinstance(inner, keras.Model):
        return count_macs(inner)
    if not isinstance(inner, (L.Conv2D, L.DepthwiseConv2D, L.SeparableConv2D, L.Dense)):
        return 0
    return _macs_of(inner, layer.input.shape, layer.output.shape)


def _macs_of(layer, in_shape, out_shape) -> int:
    L = keras.layers
    if isinstance(layer, L.DepthwiseConv2D):
        kh, kw = layer.kernel_size
        _, h, w, c = out_shape
        return h * w * c * kh * kw
    if isinstance(layer, L.SeparableConv2D):
        kh, kw = layer.kernel_size
        _, h, w, c_out = out_shape
        c_mid = in_shape[-1] * layer.depth_multiplier
        return h * w * c_mid * (kh * kw + c_out)
    if isinstance(layer, L.Conv2D):
        kh, kw = layer.kernel_size
        _, h, w, c_out = out_shape
        return h * w * c_out * kh * kw * in_shape[-1] // layer.groups
    if isinstance(layer, L.Dense):
        positions = 1
        for d in out_shape[1:-1]:
            positions *= d
        return positions * in_shape[-1] * out_shape[-1]
    return 0


def count_macs(model) -> int:
    """Multiply-adds of one image through every Conv2D (grouped too), DepthwiseConv2D,
    SeparableConv2D and Dense layer of ``model``, nested models and wrappers included."""
    return int(sum(_layer_macs(layer) for layer in model.layers))
