"""ShuffleNet V2 (Ma et al. 2018, https://arxiv.org/abs/1807.11164), Table 5 and Fig. 3.

Stem 3x3 conv (24 ch, stride 2) -> BN -> ReLU -> 3x3 max pool s2; stages 2/3/4 of 4/8/4
units; conv5 1x1 -> BN -> ReLU; global average pool -> dense softmax. A stride-1 unit
splits the channels in two halves, keeps the first and sends the second through 1x1 conv ->
BN -> ReLU -> 3x3 depthwise -> BN -> 1x1 conv -> BN -> ReLU, then concatenates both halves
and shuffles them (2 groups). A stride-2 unit feeds the whole input to that branch, which
then makes ``out - in`` channels, and to a shortcut branch (3x3 depthwise s2 -> BN -> 1x1
conv -> BN -> ReLU) that keeps the ``in`` channels; the branch width is ``out / 2`` in every
unit. This is the authors' released code (megvii-model/ShuffleNet-Series), which reproduces
Table 5's complexities.

Two published layouts (option ``layout``), each exactly as its code computes, so that its
weights fit:

- ``"megvii"`` (default): the authors' code above. It never shuffles after a concatenation:
  a stride-1 unit takes its input's even channels as the kept half and the odd ones as the
  branch's input (:func:`edgecnn.models.blocks.shuffle_v2_unit`).
- ``"torchvision"``: each side of a stride-1 or stride-2 unit makes ``out / 2`` channels, and
  every unit ends with a 2-group shuffle. Stage 2's first unit is then narrower (1.0x: 1.1 M
  fewer MACs, 0.75 % under the paper; 2.0x: 1.3 % under) and the parameter counts are
  torchvision's (x0.5 / 1.0 / 1.5 / 2.0: 1,366,792 / 2,278,604 / 3,503,624 / 7,393,996).

Width: the four rows of Table 5 are used literally (stage 2 / 3 / 4 and conv5 channels at
0.5x, 1x, 1.5x, 2x). Any other alpha interpolates every column linearly between the two
nearest rows (beyond 2x: proportional to the 2x row; below 0.5x: stage widths proportional
to the 0.5x row, conv5 held at 1024); stage widths are then rounded to a multiple of 4 (each
half an even count) and conv5 to a multiple of 8 (``make_divisible``). The reference code
adds dropout 0.2 before the 2x classifier: pass ``dropout=0.2`` for that (default 0).

int8: post-training quantization gives one XNNPACK partition with no requantize op. With
QAT (plain ``tfmot...quantize_model``) a stride-1 unit's concat output and its main branch
are fake-quantized separately (tfmot's ConcatTransform, which would quantize only after the
concat, skips a Concatenate fed by a non-keras layer such as ChannelSplit), so the converter
adds int8 -> int8 requantize ops around the stride-1 units (22 at 1x in the megvii layout);
XNNPACK runs them inside its single partition.

The widths are decoded by :func:`edgecnn.models.builder.decode` into ``shuffle_v2`` blocks
(branch width half the output, ``Rounding(expand_from="out")``) and built by
:func:`~edgecnn.models.builder.build_blocks` with the block library's
:func:`~edgecnn.models.blocks.shuffle_v2_unit`; stem, classifier and BatchNorm settings
(PyTorch's) are the block library's, shared with ShuffleNet V1.
"""
import bisect

from .._keras import keras, layers
from ..errors import EdgecnnError
from .blocks import SHUFFLE_V2_LAYOUTS, PYTORCH_BN, conv_bn_act, dense_classifier, pooled_stem
from .builder import (
    Rounding,
    StageRow,
    block_row,
    build_blocks,
    decode,
    require_channels,
    table_rows,
)
from .registry import IMAGENET_MEAN_STD, ModelSpec, register_model
from .scaling import make_divisible

STEM = 24
REPEATS = (4, 8, 4)  # units per stage; the first of each has stride 2 (56x56 / 28 / 14 in)
#: Table 5: alpha -> output channels of stage 2, 3, 4 and conv5.
TABLE = {0.5: (48, 96, 192, 1024), 1.0: (116, 232, 464, 1024),
         1.5: (176, 352, 704, 1024), 2.0: (244, 488, 976, 2048)}
# widths() gives final channel counts; the branch width (expansion) is half the output
ROUNDING = Rounding(out=lambda c, alpha: c, expand_from="out")
BN = PYTORCH_BN  # as the reference code
HEAD_NAMES = {"conv": "head_conv", "bn": "head_bn", "act": "head_relu"}


def widths(alpha: float) -> tuple:
    """Stage 2/3/4 and conv5 channels for ``alpha`` (see the module docstring)."""
    if alpha in TABLE:
        return TABLE[alpha]
    keys = sorted(TABLE)
    if alpha > keys[-1]:
        raw = [c * alpha / keys[-1] for c in TABLE[keys[-1]]]
    elif alpha < keys[0]:
        raw = [c * alpha / keys[0] for c in TABLE[keys[0]][:3]] + [TABLE[keys[0]][3]]
    else:
        i = bisect.bisect(keys, alpha)
        lo, hi = keys[i - 1], keys[i]
        t = (alpha - lo) / (hi - lo)
        raw = [a + t * (b - a) for a, b in zip(TABLE[lo], TABLE[hi])]
    return tuple([make_divisible(c, 4) for c in raw[:3]] + [make_divisible(raw[3], 8)])


def check_layout(layout) -> str:
    if layout not in SHUFFLE_V2_LAYOUTS:
        raise EdgecnnError(f"shufflenet_v2 layout must be one of {', '.join(SHUFFLE_V2_LAYOUTS)}"
                           f" (the authors' code or torchvision's), got {layout!r}")
    return layout


def _arch(alpha, layout="megvii"):
    layout = check_layout(layout)
    *stage_widths, last = widths(alpha)
    stages = [StageRow("shuffle_v2", repeats, 3, 2, 0.5, out, act="relu",
                       extra={"layout": layout})
              for repeats, out in zip(REPEATS, stage_widths)]
    blocks = decode(stages, alpha, STEM, ROUNDING, first_stage=2)
    if layout == "megvii":
        require_channels("shufflenet_v2", alpha, **{
            "first unit's main branch (stage 2 width minus the stem)": blocks[0].out - STEM})
    return blocks, last


def _names(block):
    p = f"stage{block.stage}_block{block.block + 1}_"
    return {role: p + role for role in (
        "shuffle_in", "split", "expand", "expand_bn", "expand_relu", "dw", "dw_bn", "project", "project_bn",
        "project_relu", "shortcut_dw", "shortcut_dw_bn", "shortcut_project",
        "shortcut_project_bn", "shortcut_project_relu", "concat", "shuffle")}


def _table_row(block):
    return {**block_row(block), "kind": "shuffle"}  # the stage table's name of the unit


def build(*, alpha, input_size, num_classes, include_top, dropout, layout="megvii"):
    blocks, last = _arch(alpha, layout)
    inputs = layers.Input((input_size, input_size, 3), name="input")
    x = pooled_stem(inputs, STEM, bn=BN)
    x = build_blocks(x, blocks, names=_names, bn=BN)
    x = conv_bn_act(x, last, act="relu", bn=BN, padding="valid", names=HEAD_NAMES)
    if include_top:
        x = dense_classifier(x, num_classes, dropout=dropout)
    return keras.Model(inputs, x, name=f"shufflenet_v2_{alpha:g}_{input_size}")


def describe(*, alpha, layout="megvii"):
    blocks, last = _arch(alpha, layout)
    return {"stem": f"conv 3x3 s2, {STEM} ch, relu; max pool 3x3 s2",
            "blocks": table_rows(blocks, _table_row),
            "head": f"conv 1x1, {last} ch, relu; global avg pool, dense classifier, softmax "
                    f"('expand' is the branch width, half the output; {layout} layout)"}


register_model(ModelSpec(
    name="shufflenet_v2", family="ShuffleNet V2", build=build, describe=describe,
    default_input=224, preprocessing=IMAGENET_MEAN_STD, default_dropout=0.0,
    options={"layout": "megvii"},
    paper="Ma et al. 2018, ShuffleNet V2, arXiv:1807.11164"))
