"""ShuffleNet V1 (Zhang et al. 2017, https://arxiv.org/abs/1707.01083), Tables 1-2.

Architecture: stem 3x3 conv (24 ch, stride 2) -> BN -> ReLU -> 3x3 max pool stride 2; stages
2/3/4 of 4/8/4 units, the first of each with stride 2; global average pool -> dense softmax.
A unit is 1x1 group conv (to the bottleneck, a quarter of the unit's output channels) -> BN
-> ReLU -> 3x3 depthwise conv -> BN -> channel shuffle -> 1x1 group conv -> BN, added to
the identity (stride 1) or concatenated with a 3x3 stride-2 average pool of the input
(stride 2, the main branch then making ``out - in`` channels), then ReLU. The pool is a
:class:`DepthwiseAveragePooling2D` (int8 AVERAGE_POOL_2D would fall outside XNNPACK). Stage 2's first 1x1 conv is not
grouped (its input has only 24 channels). The ReLU of a stride-2 unit is applied to the main
branch before the concatenation, as the official code (megvii-model/ShuffleNet-Series) does:
the pooled shortcut is already >= 0, so this equals the paper's ReLU after the concat, and
the ReLU fuses into the conv in TFLite. Group convs are ``Conv2D(groups=g)``. The shuffle
is the released code's, after the depthwise conv and with its channel order (the inverse of
the paper's figure; see :func:`edgecnn.models.blocks.shuffle_unit`), so the authors'
ImageNet weights compute here what they computed there.

Width (``alpha`` = the paper's "ShuffleNet s x"): stage channels ``make_divisible(c * alpha,
4 * g)`` of Table 1's, so the bottleneck (a quarter) and every group conv's input and output
divide by g (0.5x g=3: 120/240/480). The paper does not say how the 24-channel stem scales;
its published complexities (Table 2: 0.5x 38 M, 0.25x 13 M; Table 5: 1.5x 292 M, 2x 524 M)
are reproduced only by a stem of 24 x the largest power of two <= alpha, never below 12
(0.25x/0.5x: 12, 1x/1.5x: 24, 2x: 48, as the authors' released code has it), rounded up to
a multiple of g so that each stride-2 unit's main branch (``out - in``) divides by g (0.5x
g=8: 16). Any alpha > 0 builds under these two rules.

Table 1 is decoded by :func:`edgecnn.models.builder.decode` into ``shuffle`` blocks (the
bottleneck a quarter of each unit's rounded output, ``Rounding(expand_from="out")``), built
by :func:`~edgecnn.models.builder.build_blocks` with the block library's
:func:`~edgecnn.models.blocks.shuffle_unit`; the stem (:func:`~edgecnn.models.blocks.pooled_stem`,
shared with ShuffleNet V2), the classifier and the BatchNorm settings (PyTorch's) come from
the block library too.
"""
import math

from .._keras import keras, layers
from ..errors import EdgecnnError
from .blocks import PYTORCH_BN, dense_classifier, pooled_stem
from .builder import Rounding, StageRow, build_blocks, decode, require_channels, table_rows
from .registry import IMAGENET_MEAN_STD, ModelSpec, register_model
from .scaling import make_divisible

GROUPS = (1, 2, 3, 4, 8)
STEM = 24
#: Output channels of stages 2 / 3 / 4 at 1x, by number of groups (Table 1).
WIDTHS = {1: (144, 288, 576), 2: (200, 400, 800), 3: (240, 480, 960),
          4: (272, 544, 1088), 8: (384, 768, 1536)}
# repeats, kernel, stride of stages 2 / 3 / 4 (the first unit of a stage has the stride)
STAGE_SHAPE = [(4, 3, 2), (8, 3, 2), (4, 3, 2)]  # 56x56 / 28x28 / 14x14 in
BN = PYTORCH_BN  # as the reference code


def check_groups(groups) -> int:
    if isinstance(groups, bool) or groups not in GROUPS:
        raise EdgecnnError(f"shufflenet groups must be one of {', '.join(map(str, GROUPS))} "
                           f"(the paper's Table 1), got {groups!r}")
    return int(groups)


def _stages(groups):
    """Table 1 as StageRows: the bottleneck (expansion) is a quarter of the unit's output."""
    return [StageRow("shuffle", n, k, s, 0.25, c, act="relu", extra={"groups": groups})
            for (n, k, s), c in zip(STAGE_SHAPE, WIDTHS[groups])]


def _rounding(groups) -> Rounding:
    """Stage widths to a multiple of 4 g (so the bottleneck, a quarter, divides by g)."""
    return Rounding(out=lambda c, alpha: make_divisible(c * alpha, 4 * groups),
                    expand_from="out")


def _arch(alpha, groups):
    groups = check_groups(groups)
    power = 2.0 ** math.floor(math.log2(alpha))  # largest power of two <= alpha
    stem = math.ceil(max(12, STEM * power) / groups) * groups
    blocks = decode(_stages(groups), alpha, stem, _rounding(groups), first_stage=2)
    first = blocks[0]
    require_channels(f"shufflenet (groups={groups})", alpha, **{
        "first unit's main branch (stage 2 width minus the stem)": first.out - first.in_channels})
    return stem, blocks


def _names(block):
    p = f"stage{block.stage}_block{block.block + 1}_"
    return {role: p + role for role in (
        "expand", "expand_bn", "expand_relu", "shuffle", "dw", "dw_bn", "project",
        "project_bn", "project_relu", "pool", "concat", "add", "relu")}


def build(*, alpha, input_size, num_classes, include_top, dropout, groups=3):
    stem_channels, blocks = _arch(alpha, groups)
    inputs = layers.Input((input_size, input_size, 3), name="input")
    x = pooled_stem(inputs, stem_channels, bn=BN)
    x = build_blocks(x, blocks, names=_names, bn=BN)
    if include_top:
        x = dense_classifier(x, num_classes, dropout=dropout)
    return keras.Model(inputs, x, name=f"shufflenet_g{groups}_{alpha:g}_{input_size}")


def describe(*, alpha, groups=3):
    stem_channels, blocks = _arch(alpha, groups)
    return {"stem": f"conv 3x3 s2, {stem_channels} ch, relu; max pool 3x3 s2",
            "blocks": table_rows(blocks),
            "head": f"global avg pool, dense classifier, softmax (groups={groups}; 'expand' "
                    "is the bottleneck; stride-2 units concat a 3x3 avg-pooled shortcut)"}


register_model(ModelSpec(
    name="shufflenet", family="ShuffleNet V1", build=build, describe=describe,
    default_input=224, preprocessing=IMAGENET_MEAN_STD, default_dropout=0.0,
    options={"groups": 3},
    paper="Zhang et al. 2017, ShuffleNet, arXiv:1707.01083"))
