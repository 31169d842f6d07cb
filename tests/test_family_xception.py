"""Xception (Chollet 2017): golden numbers, keras.applications weight equivalence, width
rounding, the int8-friendly ReLUs and bad input.

References: keras.applications.Xception in tf_keras 2.21 (22,910,480 params at 1000
classes, 22,855,952 trainable = the paper's Table 3) and ../shared/reference/NUMBERS.md
(about 8.4 G MACs at 299x299).
"""
import numpy as np
import pytest

import edgecnn
from edgecnn._keras import keras
from edgecnn.errors import EdgecnnError
from edgecnn.models import get_model_spec, xception
from edgecnn.models.registry import MINUS_ONE_TO_ONE
from edgecnn.models.scaling import round_channels

from conftest import calibrate_batchnorm, randomize_weights

KERAS_PARAMS, PAPER_TRAINABLE, REFERENCE_MACS = 22_910_480, 22_855_952, 8.4e9
# edgecnn's own counts at other widths (no published reference), 1000 classes, 299x299
GOLDEN = {1.0: (22_910_480, 8_357_403_496), 0.75: (13_269_856, 4_705_580_792),
          0.5: (6_402_376, 2_160_356_576)}


def _weighted(model):
    return [layer.name for layer in model.layers if layer.weights]


def test_spec_declares_input_preprocessing_and_keras_weights():
    spec = get_model_spec("xception")
    assert spec.default_input == 299
    assert spec.preprocessing == MINUS_ONE_TO_ONE
    assert spec.keras_app == "Xception" and spec.keras_kwargs(1.0) == {}


def test_params_and_macs_equal_keras_applications():
    ours = edgecnn.create_model("xception")
    reference = keras.applications.Xception(weights=None)
    assert ours.count_params() == reference.count_params() == KERAS_PARAMS
    trainable = sum(keras.backend.count_params(w) for w in ours.trainable_weights)
    assert trainable == PAPER_TRAINABLE
    assert edgecnn.count_macs(ours) == edgecnn.count_macs(reference)
    assert edgecnn.count_macs(ours) == pytest.approx(REFERENCE_MACS, rel=0.01)


def test_params_equal_keras_with_other_class_count():
    ours = edgecnn.create_model("xception", num_classes=17, input_size=96)
    reference = keras.applications.Xception(weights=None, classes=17, input_shape=(96, 96, 3))
    assert ours.count_params() == reference.count_params()


@pytest.mark.parametrize("alpha", sorted(GOLDEN))
def test_golden_params_and_macs(alpha):
    model = edgecnn.create_model("xception", alpha=alpha)
    assert (model.count_params(), edgecnn.count_macs(model)) == GOLDEN[alpha]


@pytest.mark.parametrize("alpha", [0.3, 0.5, 0.75, 1.3])
def test_every_convolution_is_scaled_and_rounded_to_a_multiple_of_8(alpha):
    model = edgecnn.create_model("xception", alpha=alpha, input_size=71, include_top=False)
    paper = {"block1_conv1": 32, "block1_conv2": 64}
    for row, number in zip([r for r in xception.FLOWS for _ in range(r.repeats)], range(2, 15)):
        paper.update({f"block{number}_sepconv{i}": c for i, c in enumerate(row.filters, 1)})
        if row.shortcut == "conv":
            paper[f"block{number}_residual_conv"] = row.filters[-1]
    convs = {layer.name: layer.filters for layer in model.layers
             if isinstance(layer, (keras.layers.Conv2D, keras.layers.SeparableConv2D))}
    assert convs == {name: round_channels(c, alpha) for name, c in paper.items()}
    assert all(f % 8 == 0 for f in convs.values())


def test_layer_names_equal_keras_except_its_unnamed_shortcuts():
    """keras leaves the four shortcut convs and their BNs unnamed (conv2d_N,
    batch_normalization_N); every other weighted layer has keras' name."""
    ours = _weighted(edgecnn.create_model("xception", input_size=71))
    theirs = _weighted(keras.applications.Xception(weights=None, input_shape=(71, 71, 3)))
    assert len(ours) == len(theirs)
    unnamed = [n for n in theirs if not n.startswith(("block", "pred"))]
    assert len(unnamed) == 8
    assert sorted(set(ours) - set(theirs)) == sorted(
        f"block{k}_residual_{kind}" for k in (2, 3, 4, 13) for kind in ("conv", "bn"))


def test_unmodified_keras_weights_file_gives_same_outputs(photos, tmp_path):
    """keras' Xception with random weights saved to .h5 as is: named layers load by name,
    its unnamed shortcut layers in order; same outputs on real photos, each model fed its
    preprocessing."""
    size = 112
    pixels = photos(size)
    reference = keras.applications.Xception(weights=None, input_shape=(size, size, 3))
    randomize_weights(reference)
    keras_input = keras.applications.xception.preprocess_input(pixels.astype("float32"))
    calibrate_batchnorm(reference, keras_input)
    path = str(tmp_path / "xception.h5")
    reference.save_weights(path)
    model = edgecnn.create_model("xception", input_size=size, weights=path)

    expected = reference.predict(keras_input, verbose=0)
    x = get_model_spec("xception").preprocessing.apply(pixels)
    assert np.abs(model.predict(x, verbose=0) - expected).max() <= 1e-4
    features = [keras.Model(m.input, m.get_layer("avg_pool").output) for m in (model, reference)]
    ours, theirs = (f.predict(x, verbose=0) for f in features)
    assert np.abs(ours - theirs).max() <= 1e-4 * max(1.0, np.abs(theirs).max())
    assert np.abs(theirs[0] - theirs[1]).max() > 1e-3  # the features depend on the image


def test_relus_of_residual_sums_keep_their_int8_scale():
    """The 11 ReLUs applied to a residual sum (which also feeds the next shortcut) sit
    behind a 1x1 max pool, so the converter fuses them into MAX_POOL_2D and XNNPACK takes
    them; every other ReLU follows a BatchNorm and fuses into its convolution."""
    model = edgecnn.create_model("xception", input_size=71)
    pools = [layer for layer in model.layers if layer.name.endswith("_act_pool")]
    assert len(pools) == 11
    for pool in pools:
        assert pool.pool_size == (1, 1) and pool.strides == (1, 1)
        assert isinstance(pool.input._keras_history.layer, keras.layers.Add)
        assert pool.outbound_nodes[0].layer.name == pool.name[:-len("_pool")]


@pytest.mark.slow
def test_int8_tflite_runs_as_one_xnnpack_partition():
    import tensorflow as tf
    from ai_edge_litert.interpreter import Interpreter

    size = 71
    inputs = keras.Input((size, size, 3), batch_size=1)
    model = edgecnn.create_model("xception", alpha=0.25, input_size=size, include_top=False)
    randomize_weights(model)
    rng = np.random.default_rng(0)
    converter = tf.lite.TFLiteConverter.from_keras_model(keras.Model(inputs, model(inputs)))
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = lambda: (
        [rng.uniform(-1, 1, (1, size, size, 3)).astype("float32")] for _ in range(4))
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = converter.inference_output_type = tf.int8
    interpreter = Interpreter(model_content=converter.convert(), num_threads=1)
    interpreter.allocate_tensors()
    ops = [op["op_name"] for op in interpreter._get_ops_details()]
    assert "RELU" not in ops and ops.count("DELEGATE") == 1


def test_bad_input_errors():
    with pytest.raises(EdgecnnError, match=r"no published ImageNet weights for xception alpha "
                                           r"0.5 \(sources: keras.applications \(alpha 1\)\)"):
        edgecnn.create_model("xception", alpha=0.5, weights="imagenet", include_top=False)
    with pytest.raises(EdgecnnError, match="at least 32 pixels"):
        edgecnn.create_model("xception", input_size=31)
    with pytest.raises(EdgecnnError, match="alpha must be"):
        edgecnn.create_model("xception", alpha=0)
    with pytest.raises(EdgecnnError, match="has no option"):
        edgecnn.create_model("xception", groups=3)
