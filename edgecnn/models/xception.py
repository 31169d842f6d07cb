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

Figure 5's rows are :class:`~edgecnn.models.builder.StageRow` of kind ``xception``, each
carrying its block's separable-conv filters, shortcut and pool as extra fields; they are
decoded (every filter count rounded as above) and built like every other family's table,
by :func:`~edgecnn.models.builder.build_blocks` with the block library's
:func:`~edgecnn.models.blocks.xception_block`.
"""
from __future__ import annotations

from dataclasses import replace

from .._keras import keras, layers
from ..errors import EdgecnnError
from .blocks import BatchNorm, conv_bn_act, dense_classifier
from .builder import Rounding, StageRow, build_blocks, decode, table_rows
from .registry import MINUS_ONE_TO_ONE, ModelSpec, register_model
from .scaling import round_channels


def _row(flow: str, repeats: int, filters: tuple, act_at: str, shortcut: str | None,
         pool: bool, first_act: bool = True) -> StageRow:
    """A row of Figure 5: ``repeats`` identical blocks of 3x3 separable convolutions.

    filters: output channels of each separable conv (each followed by BatchNorm);
    act_at: "pre" puts a ReLU before each separable conv (the residual blocks;
    ``first_act`` False skips the first, whose input is already a ReLU output), "post"
    after each BN; shortcut: "conv" (1x1 stride-2 conv + BN), "identity", or None (no
    residual); pool: a 3x3 stride-2 max pool after the last BN (the block's downsampling).
    """
    return StageRow("xception", repeats, 3, 2 if pool else 1, 1, filters[-1], act="relu",
                    extra={"flow": flow, "filters": filters, "act_at": act_at,
                           "shortcut": shortcut, "pool": pool, "first_act": first_act})


# 3x3 'valid' stem convolutions: filters, stride   (299x299 in)
STEM = [(32, 2), (64, 1)]
FLOWS = [
    _row("entry", 1, (128, 128), "pre", "conv", True, first_act=False),  # block2, 147x147 in
    _row("entry", 1, (256, 256), "pre", "conv", True),                   # block3, 74x74
    _row("entry", 1, (728, 728), "pre", "conv", True),                   # block4, 37x37
    _row("middle", 8, (728, 728, 728), "pre", "identity", False),        # block5-12, 19x19
    _row("exit", 1, (728, 1024), "pre", "conv", True),                   # block13, 19x19
    _row("exit", 1, (1536, 2048), "post", None, False),                  # block14, 10x10
]
FIRST_BLOCK = 2  # keras numbers the stem "block1"
ROUNDING = Rounding(out=round_channels, extra=lambda fields, alpha: {
    **fields, "filters": tuple(round_channels(c, alpha) for c in fields["filters"])})
BN = BatchNorm(epsilon=1e-3, momentum=0.99)


def _arch(alpha):
    stem = [(round_channels(c, alpha), s) for c, s in STEM]
    blocks = decode(FLOWS, alpha, stem[-1][0], ROUNDING)
    # after_add: the block's input is the previous block's residual sum (see the docstring)
    blocks = [replace(b, extra={**b.extra, "after_add": i > 0 and
                                blocks[i - 1].shortcut is not None})
              for i, b in enumerate(blocks)]
    return stem, blocks


def _names(block):
    p = f"block{FIRST_BLOCK + block.index}_"
    names = {role: p + role for role in ("pool", "residual_conv", "residual_bn", "add")}
    for i in range(1, len(block.filters) + 1):
        names.update({f"sepconv{i}{role}": f"{p}sepconv{i}{role}" for role in ("", "_bn", "_act")})
    return names


def _table_row(b):
    shortcut = {"conv": "1x1 sc", "identity": "id sc", None: "no sc"}[b.shortcut]
    out = b.filters[0] if len(set(b.filters)) == 1 else "/".join(map(str, b.filters))
    kind = f"{len(b.filters)}sep{'+pool' if b.pool else ''}, {shortcut}"
    return {"stage": b.flow, "kind": kind, "kernel": b.kernel, "stride": b.stride,
            "in": b.in_channels, "expand": "-", "out": out, "se": "-",
            "act": f"{b.act} {b.act_at}"}


def build(*, alpha, input_size, num_classes, include_top, dropout):
    stem, blocks = _arch(alpha)
    inputs = layers.Input((input_size, input_size, 3), name="input")
    x = inputs
    for i, (filters, stride) in enumerate(stem, start=1):
        x = conv_bn_act(x, filters, 3, stride, act="relu", bn=BN, padding="valid", names={
            "conv": f"block1_conv{i}", "bn": f"block1_conv{i}_bn", "act": f"block1_conv{i}_act"})
    x = build_blocks(x, blocks, names=_names, bn=BN)
    if include_top:
        x = dense_classifier(x, num_classes, dropout=dropout)
    return keras.Model(inputs, x, name=f"xception_{alpha:g}_{input_size}")


def describe(*, alpha):
    stem, blocks = _arch(alpha)
    return {"stem": ", ".join(f"conv 3x3 s{s} valid, {c} ch, relu" for c, s in stem),
            "blocks": table_rows(blocks, _table_row),
            "head": "global avg pool, dropout, dense classifier, softmax"}


def _keras_kwargs(alpha):
    if alpha != 1.0:
        raise EdgecnnError(f"keras.applications' Xception has ImageNet weights for alpha 1.0 "
                           f"only, got alpha {alpha:g}; use alpha 1.0 or no weights")
    return {}


register_model(ModelSpec(
    name="xception", family="Xception", build=build, describe=describe,
    default_input=299, min_input=32, preprocessing=MINUS_ONE_TO_ONE, default_dropout=0.5,
    paper="Chollet 2017, Xception, arXiv:1610.02357",
    keras_app="Xception", keras_kwargs=_keras_kwargs,
    paddings=("tf",)))  # its max pools follow BN (zero padding is not -inf); keras weights
