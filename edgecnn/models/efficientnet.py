"""EfficientNet B0-B7 (Tan & Le 2019, https://arxiv.org/abs/1905.11946) and EfficientNet-Lite
0-4 (the edge variants published with the reference code, tensorflow/tpu
models/official/efficientnet/lite).

One stage table (the paper's Table 1, B0) scaled by compound coefficients: channels
``make_divisible(c * width, 8)``, block repeats ``ceil(n * depth)``, the default input the
level's resolution. MBConv block: 1x1 expand (``in * ratio`` channels, unrounded) -> depthwise
-> squeeze-excite (``max(1, int(in / 4))`` channels, sigmoid gate) -> 1x1 project, with an
identity shortcut where the shape allows and drop-connect (stochastic depth) before the
addition, its rate growing linearly from 0 to ``drop_connect`` over the blocks.

The table is decoded by :func:`edgecnn.models.builder.decode` into ``mbconv`` blocks, which
:func:`~edgecnn.models.builder.build_blocks` builds (block ``i`` of ``n`` with drop-connect
rate ``drop_connect * i / n``); stem, head and classifier come from the block library.

B: swish everywhere; layer names follow keras.applications.EfficientNetB0-B7 so its weight
files load by name. keras puts Rescaling and Normalization layers (7 statistics) at the input;
edgecnn declares that as the spec's preprocessing instead, and pools the squeeze-excite with
``keepdims=True`` instead of keras' Reshape, which leaves dynamic-shape ops in TFLite graphs.

Lite: ReLU6, no squeeze-excite, and neither the stem (32), the head (1280) nor the repeats of
the first and last stages scaled (``fix_head_stem`` of the reference code). Not in
keras.applications, so its layers use edgecnn's own names.

``alpha`` multiplies the level's width coefficient (rounded as above; Lite's stem and head
stay fixed); ``input_size``/``rho`` override the resolution.
"""
from __future__ import annotations

from .._keras import keras, layers
from ..errors import EdgecnnError
from .blocks import BatchNorm, conv_bn_act, dense_classifier, stride_pad
from .builder import (
    Rounding,
    StageRow,
    build_blocks,
    decode,
    divisible_by_8,
    table_rows,
    truncate,
)
from .registry import IMAGENET_MEAN_STD, ModelSpec, Preprocessing, register_model
from .scaling import make_divisible, round_repeats

#: ImageNet mean and standard deviation in 0-255 terms. keras' EfficientNet does the same
#: inside the network: Rescaling(1/255), Normalization(mean, variance) and, with its ImageNet
#: weights, a further 1/sqrt(std) (its weight file stores the std as the "variance",
#: tensorflow/tensorflow#49930), which together are (x / 255 - mean) / std.
IMAGENET = IMAGENET_MEAN_STD
#: The Lite models' "inception-style" normalization (efficientnet_lite_builder.py).
LITE_PREPROCESSING = Preprocessing((127.0,) * 3, (128.0,) * 3,
                                   description="RGB 0-255: (x - 127) / 128")

STEM, HEAD, SE_RATIO = 32, 1280, 0.25
# kind, repeats, kernel, stride, expansion, out, SE ratio   (Table 1, EfficientNet-B0;
# Lite drops the SE)
STAGES = [
    StageRow("mbconv", 1, 3, 1, 1, 16, SE_RATIO),    # 112x112 in
    StageRow("mbconv", 2, 3, 2, 6, 24, SE_RATIO),    # 112x112
    StageRow("mbconv", 2, 5, 2, 6, 40, SE_RATIO),    # 56x56
    StageRow("mbconv", 3, 3, 2, 6, 80, SE_RATIO),    # 28x28
    StageRow("mbconv", 3, 5, 1, 6, 112, SE_RATIO),   # 14x14
    StageRow("mbconv", 4, 5, 2, 6, 192, SE_RATIO),   # 14x14
    StageRow("mbconv", 1, 3, 1, 6, 320, SE_RATIO),   # 7x7
]
# SE: max(1, int(in * 0.25)) of the block's input channels (not of the expanded ones)
ROUNDING = Rounding(out=divisible_by_8, expand=truncate,
                    se=lambda c, ratio: max(1, int(c * ratio)), se_from="in")
BN = BatchNorm(epsilon=1e-3, momentum=0.99)

# level -> (width, depth, resolution, dropout)   (paper section 4 / keras.applications)
B_LEVELS = {0: (1.0, 1.0, 224, 0.2), 1: (1.0, 1.1, 240, 0.2), 2: (1.1, 1.2, 260, 0.3),
            3: (1.2, 1.4, 300, 0.3), 4: (1.4, 1.8, 380, 0.4), 5: (1.6, 2.2, 456, 0.4),
            6: (1.8, 2.6, 528, 0.5), 7: (2.0, 3.1, 600, 0.5)}
# (efficientnet_lite_builder.efficientnet_lite_params)
LITE_LEVELS = {0: (1.0, 1.0, 224, 0.2), 1: (1.0, 1.1, 240, 0.2), 2: (1.1, 1.2, 260, 0.3),
               3: (1.2, 1.4, 280, 0.3), 4: (1.4, 1.8, 300, 0.3)}
DEFAULT_DROP_CONNECT = 0.2


def _arch(width: float, depth: float, lite: bool):
    """Stem channels, resolved blocks and head channels of one configuration."""
    last = len(STAGES) - 1
    rows = [row if lite and i in (0, last) else
            row._replace(repeats=round_repeats(row.repeats, depth))
            for i, row in enumerate(STAGES)]
    rows = [row._replace(act="relu6", se=0.0) if lite else row._replace(act="swish")
            for row in rows]
    stem = STEM if lite else make_divisible(STEM * width, 8)
    blocks = decode(rows, width, stem, ROUNDING)
    head = HEAD if lite else make_divisible(HEAD * width, 8)
    return stem, blocks, head


def _keras_names(block) -> dict:
    p = f"block{block.stage}{chr(ord('a') + block.block)}_"
    return {"expand": p + "expand_conv", "expand_bn": p + "expand_bn",
            "expand_act": p + "expand_activation", "pad": p + "dwconv_pad", "dw": p + "dwconv",
            "dw_bn": p + "bn", "dw_act": p + "activation", "se_pool": p + "se_squeeze",
            "se_reduce": p + "se_reduce", "se_act": p + "se_reduce_activation",
            "se_expand": p + "se_expand", "se_gate": p + "se_expand_activation",
            "se_mul": p + "se_excite", "project": p + "project_conv",
            "project_bn": p + "project_bn", "drop": p + "drop", "add": p + "add"}


def _lite_names(block) -> dict:
    p = f"stage{block.stage}_block{block.block + 1}_"
    return {"expand": p + "expand", "expand_bn": p + "expand_bn", "expand_act": p + "expand_act",
            "pad": p + "dw_pad", "dw": p + "dw", "dw_bn": p + "dw_bn", "dw_act": p + "dw_act",
            "project": p + "project", "project_bn": p + "project_bn", "drop": p + "drop",
            "add": p + "add"}


KERAS_ENDS = {"stem_pad": "stem_conv_pad", "stem_conv": "stem_conv", "stem_bn": "stem_bn",
              "stem_act": "stem_activation", "head_conv": "top_conv", "head_bn": "top_bn",
              "head_act": "top_activation", "pool": "avg_pool", "dropout": "top_dropout",
              "predictions": "predictions"}
LITE_ENDS = {"stem_pad": "stem_pad", "stem_conv": "stem_conv", "stem_bn": "stem_bn",
             "stem_act": "stem_act", "head_conv": "head_conv", "head_bn": "head_bn",
             "head_act": "head_act", "pool": "avg_pool", "dropout": "dropout",
             "predictions": "predictions"}


def _check_drop_connect(drop_connect) -> float:
    try:
        rate = float(drop_connect)
    except (TypeError, ValueError):
        rate = -1.0
    if not 0.0 <= rate < 1.0:
        raise EdgecnnError(f"drop_connect must be a rate in [0, 1) (default "
                           f"{DEFAULT_DROP_CONNECT}), got {drop_connect!r}")
    return rate


def _builder(name: str, width: float, depth: float, lite: bool):
    act = "relu6" if lite else "swish"
    block_names, ends = (_lite_names, LITE_ENDS) if lite else (_keras_names, KERAS_ENDS)

    def build(*, alpha, input_size, num_classes, include_top, dropout,
              drop_connect=DEFAULT_DROP_CONNECT):
        drop_connect = _check_drop_connect(drop_connect)
        stem, blocks, head = _arch(width * alpha, depth, lite)
        inputs = layers.Input((input_size, input_size, 3), name="input")
        x = stride_pad(inputs, 3, ends["stem_pad"], "keras")
        x = conv_bn_act(x, stem, 3, 2, act=act, bn=BN, padding="valid", names={
            "conv": ends["stem_conv"], "bn": ends["stem_bn"], "act": ends["stem_act"]})
        x = build_blocks(x, blocks, names=block_names, bn=BN, pad="keras",
                         drop_connect=drop_connect)
        x = conv_bn_act(x, head, act=act, bn=BN, names={
            "conv": ends["head_conv"], "bn": ends["head_bn"], "act": ends["head_act"]})
        if include_top:
            x = dense_classifier(x, num_classes, dropout=dropout, names=ends)
        return keras.Model(inputs, x, name=f"{name}_{alpha:g}_{input_size}")

    def describe(*, alpha, drop_connect=DEFAULT_DROP_CONNECT):
        stem, blocks, head = _arch(width * alpha, depth, lite)
        se = "" if lite else ", squeeze-excite with sigmoid gate"
        return {"stem": f"conv 3x3 s2, {stem} ch, {act}", "blocks": table_rows(blocks),
                "head": f"conv 1x1, {head} ch, {act}; global avg pool, dropout, dense "
                        f"classifier, softmax; MBConv blocks{se}, drop-connect "
                        f"{drop_connect:g} (width {width * alpha:g}, depth {depth:g})"}

    return build, describe


def _keras_kwargs(level):
    def kwargs(alpha, drop_connect=DEFAULT_DROP_CONNECT):
        if alpha != 1.0:
            raise EdgecnnError(f"keras.applications has ImageNet weights for EfficientNetB{level} "
                               f"at alpha 1 only, got alpha {alpha:g}; use alpha 1.0, or a "
                               f"weights file")
        return {"drop_connect_rate": _check_drop_connect(drop_connect)}
    return kwargs


for _level, (_width, _depth, _res, _dropout) in B_LEVELS.items():
    _build, _describe = _builder(f"efficientnet_b{_level}", _width, _depth, lite=False)
    register_model(ModelSpec(
        name=f"efficientnet_b{_level}", family="EfficientNet", build=_build,
        describe=_describe, default_input=_res, preprocessing=IMAGENET,
        default_dropout=_dropout, options={"drop_connect": DEFAULT_DROP_CONNECT},
        paper="Tan & Le 2019, EfficientNet: Rethinking Model Scaling for Convolutional Neural "
              "Networks, arXiv:1905.11946",
        keras_app=f"EfficientNetB{_level}", keras_kwargs=_keras_kwargs(_level)))

for _level, (_width, _depth, _res, _dropout) in LITE_LEVELS.items():
    _build, _describe = _builder(f"efficientnet_lite{_level}", _width, _depth, lite=True)
    register_model(ModelSpec(
        name=f"efficientnet_lite{_level}", family="EfficientNet-Lite", build=_build,
        describe=_describe, default_input=_res, preprocessing=LITE_PREPROCESSING,
        default_dropout=_dropout, options={"drop_connect": DEFAULT_DROP_CONNECT},
        paper="Tan & Le 2019, arXiv:1905.11946; EfficientNet-Lite, tensorflow/tpu "
              "models/official/efficientnet/lite (2020)"))
