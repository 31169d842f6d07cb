"""ShuffleNet V1 (Zhang et al. 2017, https://arxiv.org/abs/1707.01083), Tables 1-2.

Architecture: stem 3x3 conv (24 ch, stride 2) -> BN -> ReLU -> 3x3 max pool stride 2; stages
2/3/4 of 4/8/4 units, the first of each with stride 2; global average pool -> dense softmax.
A unit is 1x1 group conv (to the bottleneck, a quarter of the unit's output channels) -> BN
-> ReLU -> channel shuffle -> 3x3 depthwise conv -> BN -> 1x1 group conv -> BN, added to
the identity (stride 1) or concatenated with a 3x3 stride-2 average pool of the input
(stride 2, the main branch then making ``out - in`` channels), then ReLU. The pool is a
:class:`DepthwiseAveragePooling2D` (int8 AVERAGE_POOL_2D would fall outside XNNPACK). Stage 2's first 1x1 conv is not
grouped (its input has only 24 channels). The ReLU of a stride-2 unit is applied to the main
branch before the concatenation, as the official code (megvii-model/ShuffleNet-Series) does:
the pooled shortcut is already >= 0, so this equals the paper's ReLU after the concat, and
the ReLU fuses into the conv in TFLite. Group convs are ``Conv2D(groups=g)``.

Width (``alpha`` = the paper's "ShuffleNet s x"): stage channels ``make_divisible(c * alpha,
4 * g)`` of Table 1's, so the bottleneck (a quarter) and every group conv's input and output
divide by g (0.5x g=3: 120/240/480). The paper does not say how the 24-channel stem scales;
its published complexities (Table 2: 0.5x 38 M, 0.25x 13 M; Table 5: 1.5x 292 M, 2x 524 M)
are reproduced only by a stem of 24 x the largest power of two <= alpha, never below 12
(0.25x/0.5x: 12, 1x/1.5x: 24, 2x: 48, as the authors' released code has it), rounded up to
a multiple of g so that each stride-2 unit's main branch (``out - in``) divides by g (0.5x
g=8: 16). Any alpha > 0 builds under these two rules.
"""
import math

from .._keras import keras, layers
from ..errors import EdgecnnError
from .blocks import BatchNorm
from .builder import Block, StageRow, require_channels, table_rows
from .layers import ChannelShuffle, DepthwiseAveragePooling2D
from .registry import IMAGENET_MEAN_STD, ModelSpec, register_model
from .scaling import make_divisible

# ---------------------------------------------------------------------------------------
# ShuffleNet V1

GROUPS = (1, 2, 3, 4, 8)
STEM = 24
#: Output channels of stages 2 / 3 / 4 at 1x, by number of groups (Table 1).
WIDTHS = {1: (144, 288, 576), 2: (200, 400, 800), 3: (240, 480, 960),
          4: (272, 544, 1088), 8: (384, 768, 1536)}
# repeats, kernel, stride of stages 2 / 3 / 4 (the first unit of a stage has the stride)
STAGE_SHAPE = [(4, 3, 2), (8, 3, 2), (4, 3, 2)]  # 56x56 / 28x28 / 14x14 in
BN = BatchNorm(epsilon=1e-5, momentum=0.9)  # PyTorch's defaults, as the reference code


def check_groups(groups) -> int:
    if isinstance(groups, bool) or groups not in GROUPS:
        raise EdgecnnError(f"shufflenet groups must be one of {', '.join(map(str, GROUPS))} "
                           f"(the paper's Table 1), got {groups!r}")
    return int(groups)


def _stages(groups):
    """Table 1 as StageRows: the bottleneck (expansion) is a quarter of the unit's output."""
    return [StageRow("shuffle", n, k, s, 0.25, c)
            for (n, k, s), c in zip(STAGE_SHAPE, WIDTHS[groups])]


def _arch(alpha, groups):
    groups = check_groups(groups)
    power = 2.0 ** math.floor(math.log2(alpha))  # largest power of two <= alpha
    stem = math.ceil(max(12, STEM * power) / groups) * groups
    blocks, in_channels = [], stem
    for stage, row in enumerate(_stages(groups), start=2):
        out = make_divisible(row.out * alpha, 4 * groups)
        for b in range(row.repeats):
            blocks.append(Block("shuffle", stage, len(blocks), b, in_channels, out, row.kernel,
                                row.stride if b == 0 else 1, int(out * row.expansion), None,
                                "relu"))
            in_channels = out
    first = blocks[0]
    require_channels(f"shufflenet (groups={groups})", alpha, **{
        "first unit's main branch (stage 2 width minus the stem)": first.out - first.in_channels})
    return stem, blocks


def _names(block):
    p = f"stage{block.stage}_block{block.block + 1}_"
    return {role: p + role for role in (
        "expand", "expand_bn", "expand_relu", "shuffle", "dw", "dw_bn", "project",
        "project_bn", "project_relu", "pool", "concat", "add", "relu")}


def shuffle_unit(x, block: Block, groups: int, names: dict, first: bool):
    """One ShuffleNet V1 unit (Fig. 2 b/c); ``first``: stage 2's first unit, whose 1x1
    conv is not grouped."""
    shortcut = x
    out = block.out - block.in_channels if block.stride == 2 else block.out
    x = layers.Conv2D(block.expand, 1, use_bias=False, groups=1 if first else groups,
                      name=names["expand"])(x)
    x = BN(names["expand_bn"])(x)
    x = layers.ReLU(name=names["expand_relu"])(x)
    if groups > 1:
        x = ChannelShuffle(groups, name=names["shuffle"])(x)
    x = layers.DepthwiseConv2D(block.kernel, strides=block.stride, padding="same",
                               use_bias=False, name=names["dw"])(x)
    x = BN(names["dw_bn"])(x)
    x = layers.Conv2D(out, 1, use_bias=False, groups=groups, name=names["project"])(x)
    x = BN(names["project_bn"])(x)
    if block.stride == 2:
        x = layers.ReLU(name=names["project_relu"])(x)
        shortcut = DepthwiseAveragePooling2D(3, 2, name=names["pool"])(shortcut)
        return layers.Concatenate(name=names["concat"])([shortcut, x])
    x = layers.Add(name=names["add"])([shortcut, x])
    return layers.ReLU(name=names["relu"])(x)


def stem(inputs, channels: int):
    """ShuffleNet's stem (V1 and V2): 3x3 conv stride 2 -> BN -> ReLU -> 3x3 max pool s2."""
    x = layers.Conv2D(channels, 3, strides=2, padding="same", use_bias=False,
                      name="stem_conv")(inputs)
    x = BN("stem_bn")(x)
    x = layers.ReLU(name="stem_relu")(x)
    return layers.MaxPooling2D(3, 2, padding="same", name="stem_pool")(x)


def classifier(x, num_classes: int, dropout: float):
    x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
    if dropout:
        x = layers.Dropout(dropout, name="dropout")(x)
    return layers.Dense(num_classes, activation="softmax", name="predictions")(x)


def build(*, alpha, input_size, num_classes, include_top, dropout, groups=3):
    stem_channels, blocks = _arch(alpha, groups)
    inputs = layers.Input((input_size, input_size, 3), name="input")
    x = stem(inputs, stem_channels)
    for i, block in enumerate(blocks):
        x = shuffle_unit(x, block, groups, _names(block), first=i == 0)
    if include_top:
        x = classifier(x, num_classes, dropout)
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
