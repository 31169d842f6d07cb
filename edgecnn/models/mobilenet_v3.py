"""MobileNet V3 Large and Small (Howard et al. 2019, https://arxiv.org/abs/1905.02244),
Tables 1 and 2.

Layer names follow keras.applications.MobileNetV3Large/Small so their weight files load by
name, but hard-swish and hard-sigmoid are real layers (:mod:`edgecnn.models.layers`), so
tfmot quantizes the network and the int8 graph stays whole. Width: block outputs
``make_divisible(c * alpha, 8)``, expansions ``make_divisible(in * ratio, 8)`` (the tables'
expansion sizes as ratios, as keras computes them), SE ``make_divisible(exp / 4, 8)``; the
16-channel stem is not scaled, the last 1x1 conv is 6x the last block, and the pre-logits
conv (1280 / 1024) grows only for alpha > 1. ``minimalistic=True``: 3x3 kernels, ReLU, no SE.
"""
from .._keras import keras, layers
from .blocks import BatchNorm, activation, conv_bn_act, conv_classifier
from .builder import Rounding, StageRow, build_blocks, decode, divisible_by_8, table_rows
from .registry import MINUS_ONE_TO_ONE, ModelSpec, register_model
from .scaling import make_divisible

HS, RE = "hard_swish", "relu"


def _ir(kernel, expansion, out, se, act, stride):
    return StageRow("ir", 1, kernel, stride, expansion, out, 0.25 if se else 0.0, act)


# kernel, expansion (exp size / input), out, SE, activation, stride
LARGE = [
    [_ir(3, 1, 16, False, RE, 1)],                      # 112x112 in
    [_ir(3, 4, 24, False, RE, 2), _ir(3, 3, 24, False, RE, 1)],
    [_ir(5, 3, 40, True, RE, 2), _ir(5, 3, 40, True, RE, 1), _ir(5, 3, 40, True, RE, 1)],
    [_ir(3, 6, 80, False, HS, 2), _ir(3, 2.5, 80, False, HS, 1),   # 28x28 in
     _ir(3, 2.3, 80, False, HS, 1), _ir(3, 2.3, 80, False, HS, 1),
     _ir(3, 6, 112, True, HS, 1), _ir(3, 6, 112, True, HS, 1)],
    [_ir(5, 6, 160, True, HS, 2), _ir(5, 6, 160, True, HS, 1),     # 14x14 in
     _ir(5, 6, 160, True, HS, 1)],
]
SMALL = [
    [_ir(3, 1, 16, True, RE, 2)],                       # 112x112 in
    [_ir(3, 72 / 16, 24, False, RE, 2), _ir(3, 88 / 24, 24, False, RE, 1)],
    [_ir(5, 4, 40, True, HS, 2), _ir(5, 6, 40, True, HS, 1), _ir(5, 6, 40, True, HS, 1),
     _ir(5, 3, 48, True, HS, 1), _ir(5, 3, 48, True, HS, 1)],
    [_ir(5, 6, 96, True, HS, 2), _ir(5, 6, 96, True, HS, 1), _ir(5, 6, 96, True, HS, 1)],
]
STEM = 16
LAST_POINT = {"large": 1280, "small": 1024}
ROUNDING = Rounding(out=divisible_by_8, expand=divisible_by_8, se=divisible_by_8)
BN = BatchNorm(epsilon=1e-3, momentum=0.999)


def _arch(size, alpha, minimalistic):
    stages = LARGE if size == "large" else SMALL
    act = RE if minimalistic else HS
    if minimalistic:
        stages = [[r._replace(kernel=3, se=0.0, act=RE) for r in rows] for rows in stages]
    blocks = decode(stages, alpha, STEM, ROUNDING)
    last_conv = make_divisible(blocks[-1].out * 6, 8)
    last_point = LAST_POINT[size]
    if alpha > 1.0:
        last_point = make_divisible(last_point * alpha, 8)
    return act, blocks, last_conv, last_point


def _names(block):
    p = f"expanded_conv_{block.index}/" if block.index else "expanded_conv/"
    se = p + "squeeze_excite/"
    return {"expand": p + "expand", "expand_bn": p + "expand/BatchNorm", "expand_act": p + "expand/act",
            "pad": p + "depthwise/pad", "dw": p + "depthwise", "dw_bn": p + "depthwise/BatchNorm",
            "dw_act": p + "depthwise/act", "se_pool": se + "AvgPool", "se_reduce": se + "Conv",
            "se_act": se + "Relu", "se_expand": se + "Conv_1", "se_gate": se + "HardSigmoid",
            "se_mul": se + "Mul", "project": p + "project", "project_bn": p + "project/BatchNorm",
            "add": p + "Add"}


def _builder(size):
    def build(*, alpha, input_size, num_classes, include_top, dropout, minimalistic=False):
        act, blocks, last_conv, last_point = _arch(size, alpha, minimalistic)
        inputs = layers.Input((input_size, input_size, 3), name="input")
        x = conv_bn_act(inputs, STEM, 3, 2, act=act, bn=BN,
                        names={"conv": "Conv", "bn": "Conv/BatchNorm", "act": "Conv/act"})
        x = build_blocks(x, blocks, names=_names, bn=BN, pad="keras")
        x = conv_bn_act(x, last_conv, act=act, bn=BN,
                        names={"conv": "Conv_1", "bn": "Conv_1/BatchNorm", "act": "Conv_1/act"})
        if include_top:
            x = layers.GlobalAveragePooling2D(keepdims=True, name="avg_pool")(x)
            x = layers.Conv2D(last_point, 1, padding="same", name="Conv_2")(x)
            x = activation(act, "Conv_2/act")(x)
            x = conv_classifier(x, num_classes, dropout=dropout, names={
                "dropout": "dropout", "logits": "Logits", "flatten": "flatten",
                "predictions": "Predictions"})
        tag = "_minimalistic" if minimalistic else ""
        return keras.Model(inputs, x, name=f"mobilenet_v3_{size}{tag}_{alpha:g}_{input_size}")

    def describe(*, alpha, minimalistic=False):
        act, blocks, last_conv, last_point = _arch(size, alpha, minimalistic)
        return {"stem": f"conv 3x3 s2, {STEM} ch, {act}", "blocks": table_rows(blocks),
                "head": f"conv 1x1, {last_conv} ch, {act}; global avg pool; conv 1x1, "
                        f"{last_point} ch, {act}; dropout, 1x1 conv classifier, softmax"}

    return build, describe


for _size, _app in (("large", "MobileNetV3Large"), ("small", "MobileNetV3Small")):
    _build, _describe = _builder(_size)
    register_model(ModelSpec(
        name=f"mobilenet_v3_{_size}", family=f"MobileNet V3 {_size.capitalize()}",
        build=_build, describe=_describe, default_input=224, preprocessing=MINUS_ONE_TO_ONE,
        default_dropout=0.2, options={"minimalistic": False},
        paper="Howard et al. 2019, Searching for MobileNetV3, arXiv:1905.02244",
        keras_app=_app,
        keras_kwargs=lambda alpha, minimalistic=False: {
            "alpha": alpha, "minimalistic": minimalistic, "include_preprocessing": False}))
