"""EfficientNet B0-B7 and EfficientNet-Lite0-4: golden numbers, keras weights, structure, errors.

Reference numbers and their sources:

- ``KERAS_PARAMS``: keras.applications.EfficientNetB0-B7 in tf_keras 2.21, 1000 classes
  (../shared/reference/NUMBERS.md). They include the input Normalization layer's 7 statistics
  (mean, variance: 3 each; count: 1), which edgecnn declares as preprocessing instead.
- ``TORCHVISION``: torchvision's EfficientNet_B*_Weights.IMAGENET1K_V1 metadata
  (torchvision/models/efficientnet.py and its documentation pages): ``num_params`` (trainable
  parameters, no BatchNorm statistics) and GFLOPS (multiply-adds) at the weights' crop size,
  which is the paper's resolution except for B2 (288 instead of 260).
- ``PAPER``: Tan & Le 2019, arXiv:1905.11946, Table 2: params (M), FLOPS (B, multiply-adds),
  top-1. The FLOPS there are rounded to two digits and differ from the architecture's count
  by up to 4.5 % (B4: 4.2 vs 4.39); torchvision's figures are the precise ones.
- ``LITE``: tensorflow/tpu models/official/efficientnet/lite/README.md: params (M), MAdds,
  FP32 and INT8 top-1 (Pixel 4 latencies are there too). Its MAdds are 3.4-5.7 % above what
  the convolutions and the classifier add up to (Lite0: 407 M vs 385.2 M); the PyTorch
  reimplementation d-li14/efficientnet-lite.pytorch (README.md) gives 0.385 / 0.600 / 0.860 /
  1.383 / 2.553 GFLOPs and 4.652 / 5.417 / 6.092 / 8.197 / 13.007 M parameters, which edgecnn
  matches (trainable parameters, MACs).
"""
import os

import numpy as np
import pytest
from conftest import calibrate_batchnorm, randomize_weights

import edgecnn
from edgecnn import EdgecnnError
from edgecnn._keras import keras
from edgecnn.models import get_model_spec
from edgecnn.models.efficientnet import B_LEVELS as B_COEFFICIENTS

B_LEVELS = range(8)
NORMALIZATION_STATS = 7
KERAS_PARAMS = [5_330_571, 7_856_239, 9_177_569, 12_320_535, 19_466_823, 30_562_527,
                43_265_143, 66_658_687]
# level -> (trainable params, GMACs, at input)
TORCHVISION = {0: (5_288_548, 0.39, 224), 1: (7_794_184, 0.69, 240), 2: (9_109_994, 1.09, 288),
               3: (12_233_232, 1.83, 300), 4: (19_341_616, 4.39, 380), 5: (30_389_784, 10.27, 456),
               6: (43_040_704, 19.07, 528), 7: (66_347_960, 37.75, 600)}
# level -> (M params, G MACs, top-1)
PAPER = {0: (5.3, 0.39, 77.1), 1: (7.8, 0.70, 79.1), 2: (9.2, 1.0, 80.1), 3: (12, 1.8, 81.6),
         4: (19, 4.2, 82.9), 5: (30, 9.9, 83.6), 6: (43, 19, 84.0), 7: (66, 37, 84.3)}
# level -> (M params, M MAdds, FP32 top-1, INT8 top-1, input)   (tensorflow/tpu lite README)
LITE = {0: (4.7, 407, 75.1, 74.4, 224), 1: (5.4, 631, 76.7, 75.9, 240),
        2: (6.1, 899, 77.6, 77.0, 260), 3: (8.2, 1440, 79.8, 79.0, 280),
        4: (13.0, 2640, 81.5, 80.2, 300)}
# level -> (trainable params, G MACs)   (d-li14/efficientnet-lite.pytorch README)
LITE_REIMPL = {0: (4.652, 0.385), 1: (5.417, 0.600), 2: (6.092, 0.860), 3: (8.197, 1.383),
               4: (13.007, 2.553)}
RESOLUTION = [224, 240, 260, 300, 380, 456, 528, 600]
SLOW_LEVELS = (5, 6, 7)  # 5-25 s each to build (more for keras.applications')


def _trainable(model):
    return int(sum(keras.backend.count_params(w) for w in model.trainable_weights))


def _level(b, slow=SLOW_LEVELS):
    return pytest.param(b, marks=pytest.mark.slow) if b in slow else b


@pytest.mark.parametrize("level", [_level(b) for b in B_LEVELS])
def test_b_params_and_macs_equal_references(level):
    model = edgecnn.create_model(f"efficientnet_b{level}")
    assert model.input_shape == (None, RESOLUTION[level], RESOLUTION[level], 3)
    assert model.count_params() == KERAS_PARAMS[level] - NORMALIZATION_STATS
    trainable, gmacs, size = TORCHVISION[level]
    assert _trainable(model) == trainable
    paper_params, paper_gmacs, _ = PAPER[level]
    assert trainable / 1e6 == pytest.approx(paper_params, rel=0.025)  # two-digit rounding
    macs = edgecnn.count_macs(model) / 1e9
    # The paper's FLOPS are rounded to two digits; B4 and B5 count 4.5 % and 3.7 % above
    # them (torchvision counts the same as edgecnn: 4.39 and 10.27 G).
    assert macs == pytest.approx(paper_gmacs, rel=0.05)
    if size != RESOLUTION[level]:
        macs = edgecnn.count_macs(edgecnn.create_model(f"efficientnet_b{level}",
                                                       input_size=size)) / 1e9
    assert round(macs, 2) == gmacs
    keras.backend.clear_session()


@pytest.mark.parametrize("level", [_level(b, slow=range(1, 8)) for b in B_LEVELS])
def test_b_params_equal_keras_applications_live(level):
    reference = getattr(keras.applications, f"EfficientNetB{level}")(weights=None)
    expected = reference.count_params() - NORMALIZATION_STATS
    keras.backend.clear_session()
    assert edgecnn.create_model(f"efficientnet_b{level}").count_params() == expected


@pytest.mark.parametrize("level,alpha,classes", [(0, 0.5, 1000), (3, 0.75, 17)])
def test_alpha_multiplies_the_width_coefficient(level, alpha, classes):
    """alpha * width equals keras' generic EfficientNet built with that width coefficient."""
    from tf_keras.src.applications.efficientnet import EfficientNet

    width, depth, size, _ = B_COEFFICIENTS[level]
    reference = EfficientNet(width * alpha, depth, size, weights=None, classes=classes)
    expected = reference.count_params() - NORMALIZATION_STATS
    ours = edgecnn.create_model(f"efficientnet_b{level}", alpha=alpha, num_classes=classes)
    assert ours.count_params() == expected
    assert [layer.name for layer in ours.layers if layer.weights] == \
        [layer.name for layer in reference.layers if layer.weights][1:]  # less normalization
    keras.backend.clear_session()


def test_resolution_override():
    assert edgecnn.create_model("efficientnet_b0", input_size=160).input_shape == \
        (None, 160, 160, 3)
    assert edgecnn.create_model("efficientnet_b1", rho=0.5).input_shape == (None, 120, 120, 3)
    assert edgecnn.create_model("efficientnet_lite0", rho=0.75).input_shape == (None, 168, 168, 3)


def test_drop_connect_rates_equal_keras():
    """Drop-connect grows linearly over the blocks (0.2 * index / blocks), on identity
    shortcuts only, with one noise value per sample, exactly as keras builds it."""
    def rates(model):
        return {layer.name: (layer.rate, tuple(layer.noise_shape or ()))
                for layer in model.layers if isinstance(layer, keras.layers.Dropout)}

    reference = keras.applications.EfficientNetB0(weights=None, input_shape=(64, 64, 3),
                                                  include_top=False)
    ours = edgecnn.create_model("efficientnet_b0", input_size=64, include_top=False)
    assert rates(ours) == rates(reference)
    assert len(rates(ours)) == 9
    faster = edgecnn.create_model("efficientnet_b0", input_size=64, drop_connect=0.4,
                                  include_top=False)
    # the last block with a shortcut is the 15th of 16 (index 14)
    assert max(rate for rate, _ in rates(faster).values()) == pytest.approx(0.4 * 14 / 16)
    none = edgecnn.create_model("efficientnet_lite0", input_size=64, drop_connect=0.0)
    assert [layer.name for layer in none.layers if isinstance(layer, keras.layers.Dropout)] == \
        ["dropout"]


def test_squeeze_excite_is_4d_without_reshape():
    model = edgecnn.create_model("efficientnet_b0", input_size=64)
    kinds = {type(layer).__name__ for layer in model.layers}
    assert "Reshape" not in kinds
    squeeze = model.get_layer("block2a_se_squeeze")
    assert squeeze.keepdims and squeeze.output_shape == (None, 1, 1, 96)
    # keras: filters_se = max(1, int(filters_in * 0.25)) of the block's *input* channels
    assert model.get_layer("block2a_se_reduce").filters == 4
    assert model.get_layer("block2a_se_expand").filters == 96
    assert model.get_layer("block2a_se_expand_activation").activation.__name__ == "sigmoid"
    assert model.get_layer("stem_activation").activation.__name__ == "swish"


@pytest.mark.parametrize("level", range(5))
def test_lite_params_and_macs_equal_references(level):
    model = edgecnn.create_model(f"efficientnet_lite{level}")
    params, madds, _, _, size = LITE[level]
    assert model.input_shape == (None, size, size, 3)
    trainable = _trainable(model)
    assert round(trainable / 1e6, 1) == params
    reimpl_params, reimpl_gmacs = LITE_REIMPL[level]
    assert round(trainable / 1e6, 3) == reimpl_params
    macs = edgecnn.count_macs(model)
    assert round(macs / 1e9, 3) == reimpl_gmacs
    # The README's MAdds are 3.4-5.7 % higher (see the module docstring).
    assert madds * 0.94 < macs / 1e6 < madds
    keras.backend.clear_session()


def test_lite_fixes_stem_head_and_end_stages_and_drops_se_and_swish():
    lite4 = edgecnn.create_model("efficientnet_lite4", input_size=64)
    assert lite4.get_layer("stem_conv").filters == 32
    assert lite4.get_layer("head_conv").filters == 1280
    kinds = {type(layer).__name__ for layer in lite4.layers}
    assert "Multiply" not in kinds and "GlobalAveragePooling2D" in kinds
    acts = {float(layer.max_value) for layer in lite4.layers
            if isinstance(layer, keras.layers.ReLU)}
    assert acts == {6.0}
    assert not [layer for layer in lite4.layers if isinstance(layer, keras.layers.Activation)
                and layer.activation.__name__ != "softmax"]
    rows = get_model_spec("efficientnet_lite4").describe(alpha=1.0)["blocks"]
    # stages 1 and 7 keep one block; the others are ceil(n * 1.8): 4, 4, 6, 6, 8
    assert [sum(r["repeats"] for r in rows if r["stage"] == s) for s in range(1, 8)] == \
        [1, 4, 4, 6, 6, 8, 1]
    assert [max(r["out"] for r in rows if r["stage"] == s) for s in range(1, 8)] == \
        [24, 32, 56, 112, 160, 272, 448]
    assert rows[0]["in"] == 32


def _keras_b(level, size, include_top=True, weights=None):
    return getattr(keras.applications, f"EfficientNetB{level}")(
        weights=weights, include_top=include_top, input_shape=(size, size, 3))


def _set_normalization(model, variance):
    norm = next(layer for layer in model.layers if isinstance(layer, keras.layers.Normalization))
    mean = np.array([0.485, 0.456, 0.406], np.float32)
    norm.set_weights([mean, np.asarray(variance, np.float32), np.array(0, np.int64)])


STD = np.array([0.229, 0.224, 0.225], np.float32)


@pytest.mark.parametrize("level,size", [(0, 112), (2, 96)])
def test_keras_weights_file_gives_same_outputs(level, size, photos, tmp_path):
    """keras fed raw 0-255 pixels (its Rescaling + Normalization with the ImageNet statistics
    inside) and edgecnn fed the documented preprocessing give the same outputs."""
    name = f"efficientnet_b{level}"
    pixels = photos(size).astype("float32")
    reference = randomize_weights(_keras_b(level, size), logit_gain=3.0)
    _set_normalization(reference, STD ** 2)  # (x / 255 - mean) / std
    calibrate_batchnorm(reference, pixels)
    path = str(tmp_path / "weights.h5")
    reference.save_weights(path)
    ours = edgecnn.create_model(name, input_size=size, weights=path)
    inputs = get_model_spec(name).preprocessing.apply(pixels)
    expected = reference.predict(pixels, verbose=0)
    assert np.abs(ours.predict(inputs, verbose=0) - expected).max() <= 1e-4
    assert np.abs(expected[0] - expected[1]).max() > 1e-3  # outputs depend on the image
    # The features before the classifier agree too.
    features = keras.Model(ours.input, ours.get_layer("top_activation").output)
    reference_features = keras.Model(reference.input, reference.get_layer("top_activation").output)
    want = reference_features.predict(pixels, verbose=0)
    assert np.abs(features.predict(inputs, verbose=0) - want).max() <= 1e-4 * np.abs(want).max()


def test_imagenet_weights_path_reproduces_keras_preprocessing(photos, tmp_path, monkeypatch):
    """weights="imagenet" reads keras.applications' file from edgecnn's cache, offline: here a
    local file shaped like keras' ImageNet file, whose Normalization "variance" holds the
    standard deviation (tensorflow/tensorflow#49930) and which keras then corrects with a
    further 1/sqrt(std). The documented preprocessing reproduces that pipeline exactly."""
    from tf_keras.src.utils import data_utils

    from edgecnn.models.pretrained import catalog, download

    size = 96
    pixels = photos(size).astype("float32")
    source = randomize_weights(_keras_b(0, size, include_top=False))
    _set_normalization(source, STD ** 2)
    calibrate_batchnorm(source, pixels)
    _set_normalization(source, STD)  # what keras' ImageNet file stores
    monkeypatch.setenv("EDGECNN_CACHE", str(tmp_path / "cache"))
    path = download.cache_path(catalog.resolve("efficientnet_b0", resolution=size))
    os.makedirs(os.path.dirname(path), exist_ok=True)
    source.save_weights(path)
    monkeypatch.setattr(data_utils, "get_file", lambda *args, **kwargs: path)

    ours = edgecnn.create_model("efficientnet_b0", input_size=size, include_top=False,
                                weights="imagenet")
    reference = _keras_b(0, size, include_top=False, weights="imagenet")
    want = reference.predict(pixels, verbose=0)
    got = ours.predict(get_model_spec("efficientnet_b0").preprocessing.apply(pixels), verbose=0)
    assert np.abs(got - want).max() <= 1e-4 * np.abs(want).max()
    assert np.abs(want[0] - want[1]).max() > 1e-2 * np.abs(want).max()


def test_preprocessing_is_imagenet_mean_std_in_pixels():
    pre = get_model_spec("efficientnet_b0").preprocessing
    np.testing.assert_allclose(pre.mean, [123.675, 116.28, 103.53])
    np.testing.assert_allclose(pre.std, [58.395, 57.12, 57.375])
    lite = get_model_spec("efficientnet_lite0").preprocessing
    assert (lite.mean, lite.std) == ((127.0,) * 3, (128.0,) * 3)


def test_bad_inputs_are_refused_with_a_clear_message():
    with pytest.raises(EdgecnnError, match=r"drop_connect must be a rate in \[0, 1\)"):
        edgecnn.create_model("efficientnet_b0", input_size=64, drop_connect=1.5)
    with pytest.raises(EdgecnnError, match="drop_connect must be"):
        edgecnn.create_model("efficientnet_lite0", input_size=64, drop_connect="lots")
    with pytest.raises(EdgecnnError, match="no published ImageNet weights for efficientnet_b0 "
                                           "alpha 0.5"):
        edgecnn.create_model("efficientnet_b0", alpha=0.5, input_size=64, weights="imagenet")
    # the weights of the default input serve any input size (here offline: one line naming
    # the file and where it goes)
    with pytest.raises(EdgecnnError, match=r"cannot download \S+efficientnetb0.h5 "
                                           r"\(EDGECNN_OFFLINE is set\)"):
        edgecnn.create_model("efficientnet_b0", input_size=96, weights="imagenet")
    with pytest.raises(EdgecnnError, match=r"cannot download \S+efficientnet_lite0"):
        edgecnn.create_model("efficientnet_lite0", input_size=64, weights="imagenet")
    with pytest.raises(EdgecnnError, match="at least 32 pixels"):
        edgecnn.create_model("efficientnet_b1", input_size=16)
    with pytest.raises(EdgecnnError, match="has no option"):
        edgecnn.create_model("efficientnet_b0", input_size=64, minimalistic=True)


@pytest.mark.slow
# the QAT graphs (edgecnn.quantize_aware) of B0 and Lite0 are converted and checked whole by
# test_convert.py::test_every_model_every_precision
@pytest.mark.parametrize("name", ["efficientnet_b0", "efficientnet_lite0"],
                         ids=["ptq-efficientnet_b0", "ptq-efficientnet_lite0"])
def test_int8_graph_is_one_xnnpack_partition(name, tmp_path):
    """Full-int8 conversion by the stock converter: swish stays LOGISTIC + MUL, the
    squeeze-excite MEAN + CONV_2D + MUL, with no dynamic-shape op (keras' SE Reshape, unless
    its batch is fixed, leaves SHAPE/STRIDED_SLICE/PACK/RESHAPE per block and splits keras'
    B0 into 17 partitions)."""
    import tensorflow as tf
    from ai_edge_litert.interpreter import Interpreter

    size = 64
    model = edgecnn.create_model(name, input_size=size, include_top=False)
    rng = np.random.default_rng(0)
    samples = [rng.normal(0, 1, (1, size, size, 3)).astype(np.float32) for _ in range(8)]
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = lambda: ([x] for x in samples)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = tf.int8
    converter.inference_output_type = tf.int8
    path = tmp_path / "model.tflite"
    path.write_bytes(converter.convert())

    interpreter = Interpreter(model_path=str(path), num_threads=1)
    interpreter.allocate_tensors()
    ops = [op["op_name"] for op in interpreter._get_ops_details()]
    assert ops.count("DELEGATE") == 1
    expected = {"CONV_2D", "DEPTHWISE_CONV_2D", "ADD"} | \
        ({"LOGISTIC", "MUL", "MEAN"} if "_b" in name else set())
    assert set(ops) - {"DELEGATE"} == expected
    floats = [t["name"] for t in interpreter.get_tensor_details()
              if t["dtype"] == np.float32]
    assert floats == []
