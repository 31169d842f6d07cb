"""The block library shared by every family.

Blocks are plain functions that add named, standard Keras layers to a functional graph
(STYLE.md: tfmot then sees every Conv/BN/ReLU and folds them itself). Each block takes a
``names`` mapping from its role (``"expand"``, ``"dw_bn"``, ...) to a layer name, so one
block serves the keras.applications naming of the MobileNets and edgecnn's own scheme.
"""
from __future__ import annotations

from dataclasses import dataclass

from .._keras import layers
from .layers import HardSigmoid, HardSwish

ACTIVATIONS = ("relu", "relu6", "hard_swish", "hard_sigmoid", "swish", "sigmoid", "linear")


@dataclass(frozen=True)
class BatchNorm:
    """BatchNormalization settings of a family (they differ between papers)."""

    epsilon: float = 1e-3
    momentum: float = 0.99

    def __call__(self, name: str):
        return layers.BatchNormalization(epsilon=self.epsilon, momentum=self.momentum, name=name)


def activation(kind: str, name: str | None = None):
    """A layer for the activation ``kind`` (one of :data:`ACTIVATIONS`)."""
    if kind == "relu":
        return layers.ReLU(name=name)
    if kind == "relu6":
        return layers.ReLU(6.0, name=name)
    if kind == "hard_swish":
        return HardSwish(name=name)
    if kind == "hard_sigmoid":
        return HardSigmoid(name=name)
    if kind in ("swish", "sigmoid", "linear"):
        return layers.Activation(kind, name=name)
    raise ValueError(f"unknown activation {kind!r}; expected one of {', '.join(ACTIVATIONS)}")


def keras_pad(height: int | None, width: int | None, kernel: int):
    """The asymmetric padding keras.applications puts before a strided 'valid' conv, so
    that the output matches TensorFlow's 'same' padding at this input size."""
    adjust = tuple(1 if size is None else 1 - size % 2 for size in (height, width))
    half = kernel // 2
    return ((half - adjust[0], half), (half - adjust[1], half))


def stride_pad(x, kernel: int, name: str, mode: str):
    """Explicit padding before a stride-2 'valid' conv.

    ``mode="keras"`` pads as keras.applications' MobileNetV2/V3 do (``correct_pad``);
    ``mode="v1"`` pads one row and column at the bottom-right, as MobileNet V1 does.
    """
    if mode == "v1":
        padding = ((0, 1), (0, 1))
    elif mode == "keras":
        padding = keras_pad(x.shape[1], x.shape[2], kernel)
    else:
        raise ValueError(f"unknown pad mode {mode!r}")
    return layers.ZeroPadding2D(padding, name=name)(x)


def conv_bn_act(x, filters: int, kernel: int = 1, stride: int = 1, *, act: str | None,
                names: dict, bn: BatchNorm, padding: str = "same", groups: int = 1):
    """Conv2D (no bias) -> BatchNorm -> activation; ``names`` has conv, bn and act."""
    x = layers.Conv2D(filters, kernel, strides=stride, padding=padding, use_bias=False,
                      groups=groups, name=names["conv"])(x)
    x = bn(names["bn"])(x)
    if act is not None:
        x = activation(act, names["act"])(x)
    return x


def depthwise_bn_act(x, kernel: int, stride: int, *, act: str | None, names: dict,
                     bn: BatchNorm, pad: str):
    """(Padding) -> DepthwiseConv2D -> BatchNorm -> activation.

    Names: ``pad``, ``dw``, ``dw_bn``, ``dw_act``. Stride 2 uses explicit padding and a
    'valid' conv, as keras.applications does, so outputs match its weights exactly.
    """
    if stride == 2:
        x = stride_pad(x, kernel, names["pad"], pad)
    x = layers.DepthwiseConv2D(kernel, strides=stride, padding="same" if stride == 1 else "valid",
                               use_bias=False, name=names["dw"])(x)
    x = bn(names["dw_bn"])(x)
    if act is not None:
        x = activation(act, names["dw_act"])(x)
    return x


def depthwise_separable(x, out: int, *, kernel: int = 3, stride: int = 1, act: str,
                        names: dict, bn: BatchNorm, pad: str = "v1"):
    """MobileNet V1's block: depthwise conv -> BN -> act -> 1x1 conv -> BN -> act."""
    x = depthwise_bn_act(x, kernel, stride, act=act, names=names, bn=bn, pad=pad)
    return conv_bn_act(x, out, act=act, bn=bn, names={
        "conv": names["project"], "bn": names["project_bn"], "act": names["project_act"]})


def squeeze_excite(x, reduced: int, *, names: dict, act: str = "relu",
                   gate: str = "hard_sigmoid"):
    """Squeeze-and-excite (Hu et al. 2018) as MobileNetV3 builds it.

    GlobalAveragePooling2D(keepdims) -> 1x1 conv -> act -> 1x1 conv -> gate -> Multiply.
    The pooled tensor keeps its 4-D shape, so no Reshape (and no dynamic-shape op) enters
    the converted graph. Names: se_pool, se_reduce, se_act, se_expand, se_gate, se_mul.
    """
    channels = x.shape[-1]
    s = layers.GlobalAveragePooling2D(keepdims=True, name=names["se_pool"])(x)
    s = layers.Conv2D(reduced, 1, padding="same", name=names["se_reduce"])(s)
    s = activation(act, names["se_act"])(s)
    s = layers.Conv2D(channels, 1, padding="same", name=names["se_expand"])(s)
    s = activation(gate, names["se_gate"])(s)
    return layers.Multiply(name=names["se_mul"])([x, s])


def inverted_residual(x, *, expand: int | None, out: int, kernel: int, stride: int, act: str,
                      names: dict, bn: BatchNorm, pad: str = "keras", se: int | None = None,
                      se_act: str = "relu", se_gate: str = "hard_sigmoid",
                      residual: bool = True, drop_rate: float = 0.0):
    """MobileNetV2's inverted residual, with MobileNetV3's optional squeeze-excite and
    EfficientNet's drop-connect (MBConv).

    ``expand`` is the expanded channel count (``None``: no expansion conv, the first block
    of V2/V3); ``se`` the squeeze-excite's reduced channel count (``None``: no SE). The
    identity shortcut is added when the shape allows it and ``residual`` is true; with
    ``drop_rate`` the residual branch is dropped per sample in training (a Dropout whose
    noise is shared over height, width and channels, as keras.applications builds it: an
    identity at inference, absent from converted graphs).
    """
    shortcut = x
    in_channels = x.shape[-1]
    if expand:
        x = conv_bn_act(x, expand, act=act, bn=bn, names={
            "conv": names["expand"], "bn": names["expand_bn"], "act": names["expand_act"]})
    x = depthwise_bn_act(x, kernel, stride, act=act, names=names, bn=bn, pad=pad)
    if se:
        x = squeeze_excite(x, se, names=names, act=se_act, gate=se_gate)
    x = conv_bn_act(x, out, act=None, bn=bn, names={
        "conv": names["project"], "bn": names["project_bn"]})
    if residual and stride == 1 and in_channels == out:
        if drop_rate > 0:
            x = layers.Dropout(drop_rate, noise_shape=(None, 1, 1, 1), name=names["drop"])(x)
        x = layers.Add(name=names["add"])([x, shortcut])
    return x


def conv_classifier(x, num_classes: int, *, dropout: float, names: dict, pre_act=None):
    """The MobileNet V1/V3 classifier: pooled 1x1 feature map -> Dropout -> 1x1 conv logits
    -> Flatten -> softmax. ``x`` must already be pooled with ``keepdims=True``.

    Flatten (a Reshape to a constant ``[-1, classes]``) is used instead of
    ``Reshape((classes,))`` because the latter reads the batch size at run time, which puts
    SHAPE/STRIDED_SLICE/PACK ops into the TFLite graph. Names: dropout, logits, flatten,
    predictions.
    """
    if dropout and dropout > 0:
        x = layers.Dropout(dropout, name=names["dropout"])(x)
    x = layers.Conv2D(num_classes, 1, padding="same", name=names["logits"])(x)
    x = layers.Flatten(name=names["flatten"])(x)
    return layers.Activation("softmax", name=names["predictions"])(x)
