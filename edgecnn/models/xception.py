"""Xception (Chollet 2017, https://arxiv.org/abs/1610.02357), Figure 5.

Layer names follow keras.applications.Xception (``block1_conv1``, ``block4_sepconv2_bn``,
...), so its weight files load by name, with one exception: keras leaves the four 1x1
shortcut convolutions and their BatchNorms unnamed (``conv2d``, ``conv2d_1``, ... whatever
the session's counters give); here they are ``block{k}_residual_conv`` and
``block{k}_residual_bn``, and the weight loader (edgecnn.models.weights.assign_weights)
pairs them with keras' unnamed layers in order, by weight shape.

Width: ``alpha`` scales the filters of every convolution (stem, separable, shortcut), each
rounded by ``round_channels(c, alpha)``, i.e. ``make_divisible(c * alpha, 8)``: the
nearest multiple of 8, at least 8, never more than 10 % below ``c * alpha``. Every filter
count of the paper is a multiple of 8, so alpha 1.0 is the paper's network exactly.

Input 299 by default. keras refuses inputs under 71 pixels (a rule of its own); the
network itself works down to 32 (final feature map 1x1), edgecnn's usual minimum. The
classifier has the paper's dropout of 0.5 before it (Section 4.3; keras has none, and
dropout holds no weights).

int8: keras' Xception applies a standalone ReLU to the sum of each residual block before
the next block (the sum itself feeds the next shortcut, so the ReLU cannot be fused into
the ADD). The int8 converter gives that RELU its own output scale, and XNNPACK runs an
int8 RELU (a clamp) only when input and output share their quantization, so each of the
11 becomes a CPU op between delegate partitions (12 partitions). Here each such ReLU is
preceded by a 1x1 stride-1 MaxPooling2D, an identity in float: the converter fuses the
ReLU into MAX_POOL_2D, whose output keeps its input's scale, and XNNPACK runs the whole
network as one partition. No weights change.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

from .._keras import keras, layers
from ..errors import EdgecnnError
from .blocks import BatchNorm, conv_bn_act
from .registry import MINUS_ONE_TO_ONE, ModelSpec, register_model
from .scaling import round_channels


class XBlock(NamedTuple):
    """A row of Figure 5: ``repeats`` identical blocks of 3x3 separable convolutions.

    filters: output channels of each separable conv (each followed by BatchNorm);
    act: "pre" puts a ReLU before each separable conv (the residual blocks; ``first_act``
    False skips the first, whose input is already a ReLU output), "post" after each BN;
    shortcut: "conv" (1x1 stride-2 conv + BN), "identity", or None (no residual);
    pool: a 3x3 stride-2 max pool after the last BN (the block's downsampling).
    """

    flow: str
    repeats: int
    filters: tuple
    act: str
    shortcut: str | None
    pool: bool
    first_act: bool = True


# 3x3 'valid' stem convolutions: filters, stride   (299x299 in)
STEM = [(32, 2), (64, 1)]
FLOWS = [
    XBlock("entry", 1, (128, 128), "pre", "conv", True, first_act=False),  # block2, 147x147 in
    XBlock("entry", 1, (256, 256), "pre", "conv", True),                   # block3, 74x74
    XBlock("entry", 1, (728, 728), "pre", "conv", True),                   # block4, 37x37
    XBlock("middle", 8, (728, 728, 728), "pre", "identity", False),        # block5-12, 19x19
    XBlock("exit", 1, (728, 1024), "pre", "conv", True),                   # block13, 19x19
    XBlock("exit", 1, (1536, 2048), "post", None, False),                  # block14, 10x10
]
FIRST_BLOCK = 2  # keras numbers the stem "block1"
BN = BatchNorm(epsilon=1e-3, momentum=0.99)


@dataclass(frozen=True)
class Block:
    """A resolved block of the table: final channel counts and its keras number."""

    number: int
    flow: str
    in_channels: int
    filters: tuple
    act: str
    shortcut: str | None
    pool: bool
    first_act: bool


def _arch(alpha):
    stem = [(round_channels(c, alpha), s) for c, s in STEM]
    blocks, channels = [], stem[-1][0]
    for row in FLOWS:
        filters = tuple(round_channels(c, alpha) for c in row.filters)
        for _ in range(row.repeats):
            blocks.append(Block(FIRST_BLOCK + len(blocks), row.flow, channels, filters, row.act,
                                row.shortcut, row.pool, row.first_act))
            channels = filters[-1]
    return stem, blocks


def _relu_after_add(x, name):
    """ReLU of a residual sum that is also used un-activated (see the module docstring):
    a 1x1 max pool first, so that the int8 ReLU keeps the sum's scale inside XNNPACK."""
    x = layers.MaxPooling2D(1, strides=1, name=name + "_pool")(x)
    return layers.Activation("relu", name=name)(x)


def _block(x, b: Block, after_add: bool):
    p = f"block{b.number}"
    shortcut = x
    for i, filters in enumerate(b.filters, start=1):
        if b.act == "pre" and (i > 1 or b.first_act):
            name = f"{p}_sepconv{i}_act"
            x = _relu_after_add(x, name) if i == 1 and after_add else \
                layers.Activation("relu", name=name)(x)
        x = layers.SeparableConv2D(filters, 3, padding="same", use_bias=False,
                                   name=f"{p}_sepconv{i}")(x)
        x = BN(f"{p}_sepconv{i}_bn")(x)
        if b.act == "post":
            x = layers.Activation("relu", name=f"{p}_sepconv{i}_act")(x)
    if b.pool:
        x = layers.MaxPooling2D(3, strides=2, padding="same", name=f"{p}_pool")(x)
    if b.shortcut == "conv":
        shortcut = conv_bn_act(shortcut, b.filters[-1], 1, 2 if b.pool else 1, act=None, bn=BN,
                               names={"conv": f"{p}_residual_conv", "bn": f"{p}_residual_bn"})
    if b.shortcut is not None:
        x = layers.Add(name=f"{p}_add")([x, shortcut])
    return x


def build(*, alpha, input_size, num_classes, include_top, dropout):
    stem, blocks = _arch(alpha)
    inputs = layers.Input((input_size, input_size, 3), name="input")
    x = inputs
    for i, (filters, stride) in enumerate(stem, start=1):
        x = conv_bn_act(x, filters, 3, stride, act="relu", bn=BN, padding="valid", names={
            "conv": f"block1_conv{i}", "bn": f"block1_conv{i}_bn", "act": f"block1_conv{i}_act"})
    after_add = False
    for b in blocks:
        x = _block(x, b, after_add)
        after_add = b.shortcut is not None
    if include_top:
        x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
        if dropout:
            x = layers.Dropout(dropout, name="dropout")(x)
        x = layers.Dense(num_classes, activation="softmax", name="predictions")(x)
    return keras.Model(inputs, x, name=f"xception_{alpha:g}_{input_size}")


def describe(*, alpha):
    stem, blocks = _arch(alpha)
    rows = []
    for b in blocks:
        shortcut = {"conv": "1x1 sc", "identity": "id sc", None: "no sc"}[b.shortcut]
        out = b.filters[0] if len(set(b.filters)) == 1 else "/".join(map(str, b.filters))
        kind = f"{len(b.filters)}sep{'+pool' if b.pool else ''}, {shortcut}"
        row = {"stage": b.flow, "kind": kind, "kernel": 3, "stride": 2 if b.pool else 1,
               "in": b.in_channels, "expand": "-", "out": out, "se": "-",
               "act": f"relu {b.act}", "repeats": 1}
        if rows and {**rows[-1], "repeats": 1} == row:
            rows[-1]["repeats"] += 1
        else:
            rows.append(row)
    return {"stem": ", ".join(f"conv 3x3 s{s} valid, {c} ch, relu" for c, s in stem),
            "blocks": rows, "head": "global avg pool, dropout, dense classifier, softmax"}


def _keras_kwargs(alpha):
    if alpha != 1.0:
        raise EdgecnnError(f"keras.applications' Xception has ImageNet weights for alpha 1.0 "
                           f"only, got alpha {alpha:g}; use alpha 1.0 or no weights")
    return {}


register_model(ModelSpec(
    name="xception", family="Xception", build=build, describe=describe,
    default_input=299, min_input=32, preprocessing=MINUS_ONE_TO_ONE, default_dropout=0.5,
    paper="Chollet 2017, Xception, arXiv:1610.02357",
    keras_app="Xception", keras_kwargs=_keras_kwargs))

