"""MobileNet V2 (Sandler et al. 2018, https://arxiv.org/abs/1801.04381), Table 2.

Layer names follow keras.applications.MobileNetV2 so its weight files load by name.
Width: stem and block outputs ``make_divisible(c * alpha, 8)``; expansion ``t * in``
(unrounded); the last conv keeps 1280 channels for alpha <= 1 (as the paper and keras do).
"""
from .._keras import keras, layers
from .blocks import BatchNorm, conv_bn_act, dense_classifier
from .builder import Rounding, StageRow, build_blocks, decode, table_rows, truncate
from .registry import MINUS_ONE_TO_ONE, ModelSpec, register_model
from .scaling import make_divisible

STEM, LAST = 32, 1280
# kind, repeats n, kernel, stride s, expansion t, out c   (Table 2)
STAGES = [
    StageRow("ir", 1, 3, 1, 1, 16),    # 112x112 in
    StageRow("ir", 2, 3, 2, 6, 24),    # 112x112
    StageRow("ir", 3, 3, 2, 6, 32),    # 56x56
    StageRow("ir", 4, 3, 2, 6, 64),    # 28x28
    StageRow("ir", 3, 3, 1, 6, 96),    # 14x14
    StageRow("ir", 3, 3, 2, 6, 160),   # 14x14
    StageRow("ir", 1, 3, 1, 6, 320),   # 7x7
]
# no squeeze-excite: Rounding's default SE rule never applies
ROUNDING = Rounding(out=lambda c, alpha: make_divisible(int(c * alpha), 8), expand=truncate)
BN = BatchNorm(epsilon=1e-3, momentum=0.999)


def _arch(alpha):
    stem = make_divisible(STEM * alpha, 8)
    last = make_divisible(LAST * alpha, 8) if alpha > 1.0 else LAST
    return stem, decode(STAGES, alpha, stem, ROUNDING), last


def _names(block):
    p = f"block_{block.index}_" if block.index else "expanded_conv_"
    return {"expand": p + "expand", "expand_bn": p + "expand_BN", "expand_act": p + "expand_relu",
            "pad": p + "pad", "dw": p + "depthwise", "dw_bn": p + "depthwise_BN",
            "dw_act": p + "depthwise_relu", "project": p + "project", "project_bn": p + "project_BN",
            "add": p + "add"}


def build(*, alpha, input_size, num_classes, include_top, dropout):
    stem, blocks, last = _arch(alpha)
    inputs = layers.Input((input_size, input_size, 3), name="input")
    x = conv_bn_act(inputs, stem, 3, 2, act="relu6", bn=BN,
                    names={"conv": "Conv1", "bn": "bn_Conv1", "act": "Conv1_relu"})
    x = build_blocks(x, blocks, names=_names, bn=BN, pad="keras")
    x = conv_bn_act(x, last, act="relu6", bn=BN,
                    names={"conv": "Conv_1", "bn": "Conv_1_bn", "act": "out_relu"})
    if include_top:
        x = dense_classifier(x, num_classes, dropout=dropout)
    return keras.Model(inputs, x, name=f"mobilenet_v2_{alpha:g}_{input_size}")


def describe(*, alpha):
    stem, blocks, last = _arch(alpha)
    return {"stem": f"conv 3x3 s2, {stem} ch, relu6", "blocks": table_rows(blocks),
            "head": f"conv 1x1, {last} ch, relu6; global avg pool, dense classifier, softmax"}


register_model(ModelSpec(
    name="mobilenet_v2", family="MobileNet V2", build=build, describe=describe,
    default_input=224, preprocessing=MINUS_ONE_TO_ONE, default_dropout=0.0,
    paper="Sandler et al. 2018, MobileNetV2, arXiv:1801.04381",
    keras_app="MobileNetV2", keras_kwargs=lambda alpha: {"alpha": alpha}))
