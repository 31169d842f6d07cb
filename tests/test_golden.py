"""Golden numbers: parameter counts equal keras.applications, MACs match the papers.

Reference values are from ../shared/reference/NUMBERS.md (the papers' tables, the TF-slim
checkpoint tables, and keras.applications in tf_keras 2.21 with 1000 classes).
"""
import pytest

import edgecnn
from edgecnn._keras import keras

# name, alpha, options, keras constructor, keras kwargs, published keras params
PARAMS = [
    ("mobilenet", 0.25, {}, "MobileNet", {}, 475_544),
    ("mobilenet", 0.5, {}, "MobileNet", {}, 1_342_536),
    ("mobilenet", 0.75, {}, "MobileNet", {}, 2_601_976),
    ("mobilenet", 1.0, {}, "MobileNet", {}, 4_253_864),
    ("mobilenet_v2", 0.35, {}, "MobileNetV2", {}, 1_691_208),
    ("mobilenet_v2", 0.5, {}, "MobileNetV2", {}, 1_987_224),
    ("mobilenet_v2", 0.75, {}, "MobileNetV2", {}, 2_663_064),
    ("mobilenet_v2", 1.0, {}, "MobileNetV2", {}, 3_538_984),
    ("mobilenet_v2", 1.3, {}, "MobileNetV2", {}, 5_431_048),
    ("mobilenet_v2", 1.4, {}, "MobileNetV2", {}, 6_156_712),
    ("mobilenet_v3_large", 0.75, {}, "MobileNetV3Large", {}, 4_012_616),
    ("mobilenet_v3_large", 1.0, {}, "MobileNetV3Large", {}, 5_507_432),
    ("mobilenet_v3_large", 0.75, {"minimalistic": True}, "MobileNetV3Large", {}, None),
    ("mobilenet_v3_large", 1.0, {"minimalistic": True}, "MobileNetV3Large", {}, 3_948_688),
    ("mobilenet_v3_small", 0.75, {}, "MobileNetV3Small", {}, 2_051_552),
    ("mobilenet_v3_small", 1.0, {}, "MobileNetV3Small", {}, 2_554_968),
    ("mobilenet_v3_small", 0.75, {"minimalistic": True}, "MobileNetV3Small", {}, None),
    ("mobilenet_v3_small", 1.0, {"minimalistic": True}, "MobileNetV3Small", {}, 2_056_848),
]


def _keras_params(ctor, alpha, options, classes=1000):
    kwargs = dict(alpha=alpha, weights=None, classes=classes, input_shape=(224, 224, 3))
    if ctor.startswith("MobileNetV3"):
        kwargs.update(include_preprocessing=False, minimalistic=options.get("minimalistic", False))
    model = getattr(keras.applications, ctor)(**kwargs)
    count = model.count_params()
    keras.backend.clear_session()
    return count


@pytest.mark.parametrize("name,alpha,options,ctor,kwargs,published", PARAMS,
                         ids=[f"{p[0]}-{p[1]}{'-min' if p[2] else ''}" for p in PARAMS])
def test_params_equal_keras_applications(name, alpha, options, ctor, kwargs, published):
    ours = edgecnn.create_model(name, alpha=alpha, **options).count_params()
    assert ours == _keras_params(ctor, alpha, options)
    if published is not None:
        assert ours == published


@pytest.mark.parametrize("name,ctor", [("mobilenet", "MobileNet"), ("mobilenet_v2", "MobileNetV2"),
                                       ("mobilenet_v3_small", "MobileNetV3Small")])
def test_params_equal_keras_with_other_class_count(name, ctor):
    ours = edgecnn.create_model(name, alpha=0.5, num_classes=17).count_params()
    assert ours == _keras_params(ctor, 0.5, {}, classes=17)


# name, alpha, input, options, reference M MACs, source
MACS = [
    ("mobilenet", 1.0, 224, {}, 569, "V1 paper Table 6"),
    ("mobilenet", 0.75, 224, {}, 325, "V1 paper Table 6"),
    ("mobilenet", 0.5, 224, {}, 149, "V1 paper Table 6"),
    ("mobilenet", 0.25, 224, {}, 41, "V1 paper Table 6"),
    ("mobilenet", 1.0, 192, {}, 418, "V1 paper Table 7"),
    ("mobilenet", 1.0, 160, {}, 290, "V1 paper Table 7"),
    ("mobilenet", 1.0, 128, {}, 186, "V1 paper Table 7"),
    ("mobilenet_v2", 1.0, 224, {}, 300, "V2 paper Table 4"),
    ("mobilenet_v2", 1.0, 192, {}, 221, "TF-slim table"),
    ("mobilenet_v2", 1.0, 160, {}, 154, "TF-slim table"),
    ("mobilenet_v2", 1.0, 128, {}, 99, "TF-slim table"),
    ("mobilenet_v2", 1.4, 224, {}, 582, "TF-slim table"),
    ("mobilenet_v2", 0.35, 224, {}, 59, "TF-slim table"),
    # The V3 paper's Table 3 gives 219 M for Large 1.0, 1.1 % above the 216.6 M that the
    # architecture's convolutions and dense layers add up to; the TF-slim table (the
    # paper's reference code) gives 217 M, which is the value tested.
    ("mobilenet_v3_large", 1.0, 224, {}, 217, "TF-slim table"),
    ("mobilenet_v3_large", 0.75, 224, {}, 155, "V3 paper Table 3"),
    ("mobilenet_v3_small", 1.0, 224, {}, 56, "V3 paper Table 3"),
    # Small 0.75 adds up to 43.4 M, 1.4 % under the paper's (and TF-slim's) 44 M, while
    # its parameter count equals keras.applications exactly: the published figure was
    # counted with a tool we cannot reproduce. Tested at 1.5 % (the only row above 1 %).
    ("mobilenet_v3_small", 0.75, 224, {}, 44, "V3 paper Table 3; tolerance 1.5 %"),
    ("mobilenet_v3_large", 1.0, 224, {"minimalistic": True}, 209, "TF-slim table"),
]


@pytest.mark.parametrize("name,alpha,size,options,reference,source", MACS,
                         ids=[f"{m[0]}-{m[1]}-{m[2]}{'-min' if m[3] else ''}" for m in MACS])
def test_macs_within_one_percent_of_reference(name, alpha, size, options, reference, source):
    macs = edgecnn.count_macs(edgecnn.create_model(name, alpha=alpha, input_size=size, **options))
    tolerance = 0.015 if "1.5 %" in source else 0.01
    assert macs / 1e6 == pytest.approx(reference, rel=tolerance), source


def test_count_macs_counts_by_hand_small_graph():
    """Conv, grouped conv, depthwise and dense layers, counted as the papers count them."""
    inputs = keras.Input((8, 8, 4))
    x = keras.layers.Conv2D(6, 3, strides=2, padding="same")(inputs)       # 4*4*6*3*3*4 = 3456
    x = keras.layers.DepthwiseConv2D(3, padding="same")(x)                 # 4*4*6*9     = 864
    x = keras.layers.Conv2D(6, 1, groups=3)(x)                             # 4*4*6*2     = 192
    x = keras.layers.GlobalAveragePooling2D()(x)
    x = keras.layers.Dense(5)(x)                                           # 6*5         = 30
    assert edgecnn.count_macs(keras.Model(inputs, x)) == 3456 + 864 + 192 + 30


def test_count_macs_sees_through_qat_wrappers():
    import tensorflow_model_optimization as tfmot

    model = edgecnn.create_model("mobilenet_v3_small", alpha=0.5, input_size=32, num_classes=5)
    assert edgecnn.count_macs(tfmot.quantization.keras.quantize_model(model)) == \
        edgecnn.count_macs(model)


def test_rho_is_the_papers_resolution_multiplier():
    model = edgecnn.create_model("mobilenet", rho=160 / 224)
    assert model.input_shape == (None, 160, 160, 3)
    assert edgecnn.count_macs(model) / 1e6 == pytest.approx(290, rel=0.01)
