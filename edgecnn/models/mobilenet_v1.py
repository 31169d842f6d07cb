"""MobileNet V1 (Howard et al. 2017, https://arxiv.org/abs/1704.04861), Table 1.

Layer names follow keras.applications.MobileNet so its weight files load by name. Width:
every layer's channels are ``int(c * alpha)`` (the paper's and keras' truncation; no
divisor), so any alpha >= 1/32 builds.
"""
from .._keras import keras, layers
from .blocks import BatchNorm, conv_bn_act, conv_classifier
from .builder import Rounding, StageRow, build_blocks, decode, require_channels, table_rows
from .registry import MINUS_ONE_TO_ONE, ModelSpec, register_model

STEM = 32
# kind, repeats, kernel, stride, expansion, out   (Table 1; the last dw conv has stride 1,
# as in every released checkpoint: the table's "s2" there is a misprint)
STAGES = [
    StageRow("ds", 1, 3, 1, 1, 64),    # 112x112 in
    StageRow("ds", 1, 3, 2, 1, 128),
    StageRow("ds", 1, 3, 1, 1, 128),   # 56x56
    StageRow("ds", 1, 3, 2, 1, 256),
    StageRow("ds", 1, 3, 1, 1, 256),   # 28x28
    StageRow("ds", 1, 3, 2, 1, 512),
    StageRow("ds", 5, 3, 1, 1, 512),   # 14x14
    StageRow("ds", 1, 3, 2, 1, 1024),
    StageRow("ds", 1, 3, 1, 1, 1024),  # 7x7
]
# no expansion or squeeze-excite: Rounding's default rules for them never apply
ROUNDING = Rounding(out=lambda c, alpha: int(c * alpha))
BN = BatchNorm(epsilon=1e-3, momentum=0.99)


def _blocks(alpha):
    stem = int(STEM * alpha)
    require_channels("mobilenet", alpha, stem=stem)
    return stem, decode(STAGES, alpha, stem, ROUNDING)


def _names(block):
    i = block.index + 1
    return {"pad": f"conv_pad_{i}", "dw": f"conv_dw_{i}", "dw_bn": f"conv_dw_{i}_bn",
            "dw_act": f"conv_dw_{i}_relu", "project": f"conv_pw_{i}",
            "project_bn": f"conv_pw_{i}_bn", "project_act": f"conv_pw_{i}_relu"}


def build(*, alpha, input_size, num_classes, include_top, dropout):
    stem, blocks = _blocks(alpha)
    inputs = layers.Input((input_size, input_size, 3), name="input")
    x = conv_bn_act(inputs, stem, 3, 2, act="relu6", bn=BN,
                    names={"conv": "conv1", "bn": "conv1_bn", "act": "conv1_relu"})
    x = build_blocks(x, blocks, names=_names, bn=BN, pad="v1")
    if include_top:
        x = layers.GlobalAveragePooling2D(keepdims=True, name="avg_pool")(x)
        x = conv_classifier(x, num_classes, dropout=dropout, names={
            "dropout": "dropout", "logits": "conv_preds", "flatten": "flatten",
            "predictions": "predictions"})
    return keras.Model(inputs, x, name=f"mobilenet_{alpha:g}_{input_size}")


def describe(*, alpha):
    stem, blocks = _blocks(alpha)
    return {"stem": f"conv 3x3 s2, {stem} ch, relu6", "blocks": table_rows(blocks),
            "head": "global avg pool, dropout, 1x1 conv classifier, softmax"}


register_model(ModelSpec(
    name="mobilenet", family="MobileNet V1", build=build, describe=describe,
    default_input=224, preprocessing=MINUS_ONE_TO_ONE, default_dropout=1e-3,
    paper="Howard et al. 2017, MobileNets, arXiv:1704.04861",
    keras_app="MobileNet", keras_kwargs=lambda alpha: {"alpha": alpha}))
