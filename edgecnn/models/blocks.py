"""The block library shared by every family: blocks, stems and classifier heads.

Blocks are plain functions that add named, standard Keras layers to a functional graph
(STYLE.md: tfmot then sees every Conv/BN/ReLU and folds them itself); the few non-standard
layers come from :mod:`edgecnn.models.layers`. Each function takes a ``names`` mapping from
its role (``"expand"``, ``"dw_bn"``, ...) to a layer name, so one block serves the
keras.applications naming of the MobileNets, EfficientNet and Xception and edgecnn's own
scheme. :mod:`edgecnn.models.builder` maps each block kind of a stage table to one of them:

- :func:`depthwise_separable` (MobileNet V1), :func:`inverted_residual` (MobileNet V2/V3,
  and EfficientNet's MBConv with its squeeze-excite and drop-connect),
  :func:`shuffle_unit` (ShuffleNet V1), :func:`shuffle_v2_unit` (ShuffleNet V2),
  :func:`xception_block` (Xception);
- stems and heads: :func:`conv_bn_act`, :func:`pooled_stem` (both ShuffleNets),
  :func:`dense_classifier` (pooled features -> Dense softmax: MobileNet V2, EfficientNet,
  ShuffleNet, Xception) and :func:`conv_classifier` (1x1-conv logits: MobileNet V1/V3);
- the BatchNorm settings of the families: :class:`BatchNorm`, :data:`PYTORCH_BN`.
"""
from __future__ import annotations

import contextlib
import contextvars
from dataclasses import dataclass
from types import MappingProxyType
from typing import Mapping

from .._keras import layers
from .layers import (
    ChannelShuffle,
    ChannelSplit,
    DepthwiseAveragePooling2D,
    HardSigmoid,
    HardSwish,
)

ACTIVATIONS = ("relu", "relu6", "hard_swish", "hard_sigmoid", "swish", "sigmoid", "linear")


@dataclass(frozen=True)
class BatchNorm:
    """BatchNormalization settings of a family (they differ between papers)."""

    epsilon: float = 1e-3
    momentum: float = 0.99

    def __call__(self, name: str):
        return layers.BatchNormalization(epsilon=self.epsilon, momentum=self.momentum, name=name)


#: PyTorch's BatchNorm defaults, as the ShuffleNet reference code (V1 and V2) trains with.
PYTORCH_BN = BatchNorm(epsilon=1e-5, momentum=0.9)


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


#: Padding conventions of strided layers: TensorFlow's ``same`` (keras.applications, the TF
#: reference checkpoints, timm's ``tf_`` ports) or PyTorch's symmetric ``padding=k // 2``
#: (torchvision, Megvii). They differ at even input sizes: TF pads the extra row and column
#: at the bottom/right only, PyTorch on every side, so weights trained with one compute a
#: map shifted by a pixel under the other.
PADDINGS = ("tf", "torch")
_PADDING = contextvars.ContextVar("edgecnn_padding", default="tf")


@contextlib.contextmanager
def padding_mode(mode: str):
    """Build the layers created inside this block with ``mode``'s padding (:data:`PADDINGS`).

    The factory sets it around a family's ``build``, so no family threads a padding
    argument through every block (timm's ``pad_type``, as a scope)."""
    if mode not in PADDINGS:
        raise ValueError(f"unknown padding {mode!r}; expected one of {', '.join(PADDINGS)}")
    token = _PADDING.set(mode)
    try:
        yield
    finally:
        _PADDING.reset(token)


def torch_padding() -> bool:
    """True inside ``padding_mode("torch")``."""
    return _PADDING.get() == "torch"


def same_padding(x, kernel: int, stride: int, name: str):
    """``(x, padding)`` for a strided layer that pads as ``same``: unchanged with
    ``"same"`` in TF mode; in torch mode, ``kernel // 2`` zeros on every side as an explicit
    ZeroPadding2D (named ``name``) and ``"valid"``. Zero padding is PyTorch's for
    convolutions and, for pools, only where the input is >= 0 (a max pool after ReLU) or
    zeros are counted (``count_include_pad``)."""
    if stride > 1 and kernel > 1 and torch_padding():
        return layers.ZeroPadding2D(kernel // 2, name=name)(x), "valid"
    return x, "same"


def keras_pad(height: int | None, width: int | None, kernel: int):
    """The asymmetric padding keras.applications puts before a strided 'valid' conv, so
    that the output matches TensorFlow's 'same' padding at this input size."""
    adjust = tuple(1 if size is None else 1 - size % 2 for size in (height, width))
    half = kernel // 2
    return ((half - adjust[0], half), (half - adjust[1], half))


def stride_pad(x, kernel: int, name: str, mode: str):
    """Explicit padding before a stride-2 'valid' conv.

    ``mode="keras"`` pads as keras.applications' MobileNetV2/V3 do (``correct_pad``);
    ``mode="v1"`` pads one row and column at the bottom-right, as MobileNet V1 does. In
    torch mode (:func:`padding_mode`) either pads ``kernel // 2`` on every side.
    """
    if torch_padding():
        padding = ((kernel // 2,) * 2,) * 2
    elif mode == "v1":
        padding = ((0, 1), (0, 1))
    elif mode == "keras":
        padding = keras_pad(x.shape[1], x.shape[2], kernel)
    else:
        raise ValueError(f"unknown pad mode {mode!r}")
    return layers.ZeroPadding2D(padding, name=name)(x)


def conv_bn_act(x, filters: int, kernel: int = 1, stride: int = 1, *, act: str | None,
                names: dict, bn: BatchNorm, padding: str = "same", groups: int = 1):
    """Conv2D (no bias) -> BatchNorm -> activation; ``names`` has conv, bn and act."""
    if padding == "same":
        x, padding = same_padding(x, kernel, stride, names["conv"] + "_pad")
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


def shuffle_unit(x, *, bottleneck: int, out: int, kernel: int, stride: int, groups: int,
                 expand_groups: int, names: dict, bn: BatchNorm):
    """ShuffleNet V1's unit (Zhang et al. 2017, Fig. 2 b/c), as the authors' released code
    (megvii-model/ShuffleNet-Series) computes it, so that their weights fit.

    1x1 group conv (``expand_groups`` groups) to ``bottleneck`` -> BN -> ReLU -> depthwise
    conv -> BN -> channel shuffle -> 1x1 group conv -> BN, added to the identity (stride 1,
    then ReLU) or, at stride 2, ReLU and concatenated with a 3x3 stride-2 average pool of
    the input (the main branch then makes ``out - in`` channels). The shuffle sits after the
    depthwise conv (per channel, so the place does not change what the unit can compute)
    and is the reference code's: output ``g * (C / groups) + j`` takes input
    ``j * groups + g``, i.e. :class:`ChannelShuffle` with ``C / groups`` groups. Names:
    expand, expand_bn, expand_relu, dw, dw_bn, shuffle, project, project_bn, project_relu,
    pool, concat, add, relu.
    """
    shortcut = x
    branch = out - x.shape[-1] if stride == 2 else out
    x = layers.Conv2D(bottleneck, 1, use_bias=False, groups=expand_groups,
                      name=names["expand"])(x)
    x = bn(names["expand_bn"])(x)
    x = layers.ReLU(name=names["expand_relu"])(x)
    x = _dw_bn(x, kernel, stride, names, "dw", bn)
    if groups > 1:
        x = ChannelShuffle(bottleneck // groups, name=names["shuffle"])(x)
    x = layers.Conv2D(branch, 1, use_bias=False, groups=groups, name=names["project"])(x)
    x = bn(names["project_bn"])(x)
    if stride == 2:
        x = layers.ReLU(name=names["project_relu"])(x)
        shortcut, padding = same_padding(shortcut, 3, 2, names["pool"] + "_pad")
        shortcut = DepthwiseAveragePooling2D(3, 2, padding=padding, name=names["pool"])(shortcut)
        return layers.Concatenate(name=names["concat"])([shortcut, x])
    x = layers.Add(name=names["add"])([shortcut, x])
    return layers.ReLU(name=names["relu"])(x)


def _dw_bn(x, kernel: int, stride: int, names: dict, role: str, bn: BatchNorm):
    x, padding = same_padding(x, kernel, stride, names[role] + "_pad")
    x = layers.DepthwiseConv2D(kernel, strides=stride, padding=padding, use_bias=False,
                               name=names[role])(x)
    return bn(names[role + "_bn"])(x)


def _conv_bn_relu(x, filters: int, names: dict, role: str, bn: BatchNorm):
    return conv_bn_act(x, filters, act="relu", bn=bn, names={
        "conv": names[role], "bn": names[role + "_bn"], "act": names[role + "_relu"]})


#: ShuffleNet V2 layouts: the authors' released code or torchvision's (see shufflenet_v2.py).
SHUFFLE_V2_LAYOUTS = ("megvii", "torchvision")


def shuffle_v2_unit(x, *, branch: int, out: int, kernel: int, stride: int, names: dict,
                    bn: BatchNorm, layout: str = "megvii"):
    """ShuffleNet V2's unit (Ma et al. 2018, Fig. 3 c/d) in one of two published layouts.

    Stride 1: split the channels in two, send one part through 1x1 conv (``branch``
    channels) -> BN -> ReLU -> depthwise -> BN -> 1x1 conv -> BN -> ReLU, concatenate it
    after the other. Stride 2: the whole input goes through that branch and through a
    shortcut (depthwise s2 -> BN -> 1x1 conv -> BN -> ReLU), concatenated shortcut first.

    ``layout="megvii"`` (megvii-model/ShuffleNet-Series): the shortcut of a stride-2 unit
    keeps the input's channels and the branch makes ``out - in``; there is no shuffle after
    the concatenation: a stride-1 unit takes the even channels of its input as the kept
    part and the odd ones as the branch's input (:class:`ChannelShuffle` with ``C / 2``
    groups, then a split in halves). ``layout="torchvision"``: both sides of a stride-2 unit
    make ``out / 2``; every unit ends with a 2-group shuffle and a stride-1 unit splits its
    input in halves. Names: shuffle_in (megvii), split, expand(_bn, _relu), dw, dw_bn,
    project(_bn, _relu), shortcut_dw(_bn), shortcut_project(_bn, _relu), concat, shuffle
    (torchvision).
    """
    if layout not in SHUFFLE_V2_LAYOUTS:
        raise ValueError(f"unknown ShuffleNet V2 layout {layout!r}")
    in_channels = x.shape[-1]
    if stride == 1:
        if layout == "megvii":
            x = ChannelShuffle(in_channels // 2, name=names["shuffle_in"])(x)
        shortcut, x = ChannelSplit(name=names["split"])(x)
        made = out // 2
    else:
        kept = in_channels if layout == "megvii" else out // 2
        shortcut = _dw_bn(x, kernel, 2, names, "shortcut_dw", bn)
        shortcut = _conv_bn_relu(shortcut, kept, names, "shortcut_project", bn)
        made = out - kept
    x = _conv_bn_relu(x, branch, names, "expand", bn)
    x = _dw_bn(x, kernel, stride, names, "dw", bn)
    x = _conv_bn_relu(x, made, names, "project", bn)
    x = layers.Concatenate(name=names["concat"])([shortcut, x])
    if layout == "torchvision":
        x = ChannelShuffle(2, name=names["shuffle"])(x)
    return x


def _relu_after_add(x, name: str):
    """ReLU of a residual sum that is also used un-activated (the next shortcut's input):
    a 1x1 max pool first, an identity in float, so that the int8 converter fuses the ReLU
    into MAX_POOL_2D, which keeps the sum's scale, and XNNPACK runs it (see xception.py)."""
    x = layers.MaxPooling2D(1, strides=1, name=name + "_pool")(x)
    return layers.Activation("relu", name=name)(x)


def xception_block(x, filters: tuple, *, kernel: int = 3, act_at: str, first_act: bool,
                   after_add: bool, shortcut: str | None, pool: bool, names: dict,
                   bn: BatchNorm):
    """A block of Xception (Chollet 2017, Fig. 5): separable convs, each followed by BN.

    ``act_at="pre"``: a ReLU before each separable conv (``first_act=False`` skips the
    first, whose input is already a ReLU output; ``after_add``: the input is the previous
    block's residual sum, see :func:`_relu_after_add`); ``"post"``: after each BN.
    ``pool``: a 3x3 stride-2 max pool at the end. ``shortcut``: "conv" (1x1 conv, stride 2
    with the pool, + BN), "identity", or None (no residual). Names: sepconv{i},
    sepconv{i}_bn, sepconv{i}_act, pool, residual_conv, residual_bn, add.
    """
    residual = x
    for i, count in enumerate(filters, start=1):
        role = f"sepconv{i}"
        if act_at == "pre" and (i > 1 or first_act):
            x = _relu_after_add(x, names[role + "_act"]) if i == 1 and after_add else \
                layers.Activation("relu", name=names[role + "_act"])(x)
        x = layers.SeparableConv2D(count, kernel, padding="same", use_bias=False,
                                   name=names[role])(x)
        x = bn(names[role + "_bn"])(x)
        if act_at == "post":
            x = layers.Activation("relu", name=names[role + "_act"])(x)
    if pool:
        x = layers.MaxPooling2D(3, strides=2, padding="same", name=names["pool"])(x)
    if shortcut == "conv":
        residual = conv_bn_act(residual, filters[-1], 1, 2 if pool else 1, act=None, bn=bn,
                               names={"conv": names["residual_conv"],
                                      "bn": names["residual_bn"]})
    if shortcut is not None:
        x = layers.Add(name=names["add"])([x, residual])
    return x


#: The names of :func:`pooled_stem`'s layers in both ShuffleNets.
POOLED_STEM_NAMES = MappingProxyType(
    {"conv": "stem_conv", "bn": "stem_bn", "act": "stem_relu", "pool": "stem_pool"})


def pooled_stem(x, channels: int, *, bn: BatchNorm, names: Mapping = POOLED_STEM_NAMES):
    """ShuffleNet's stem (V1 and V2): 3x3 conv stride 2 -> BN -> ReLU -> 3x3 max pool s2.
    Names: conv, bn, act, pool."""
    x = conv_bn_act(x, channels, 3, 2, act="relu", bn=bn, names=names)
    x, padding = same_padding(x, 3, 2, names["pool"] + "_pad")  # after ReLU: zeros = -inf
    return layers.MaxPooling2D(3, 2, padding=padding, name=names["pool"])(x)


#: keras.applications' names of the pooled Dense classifier (MobileNetV2, Xception, ...).
DENSE_CLASSIFIER_NAMES = MappingProxyType(
    {"pool": "avg_pool", "dropout": "dropout", "predictions": "predictions"})


def dense_classifier(x, num_classes: int, *, dropout: float,
                     names: Mapping = DENSE_CLASSIFIER_NAMES):
    """Global average pool -> Dropout (when ``dropout``) -> Dense softmax.
    Names: pool, dropout, predictions."""
    x = layers.GlobalAveragePooling2D(name=names["pool"])(x)
    if dropout:
        x = layers.Dropout(dropout, name=names["dropout"])(x)
    return layers.Dense(num_classes, activation="softmax", name=names["predictions"])(x)
