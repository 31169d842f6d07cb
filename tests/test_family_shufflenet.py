"""ShuffleNet V1 and V2: golden numbers, channel tables, the shuffle/split/pool layers,
int8 conversion under XNNPACK, and bad input.

Reference values (../shared/reference/NUMBERS.md):
- V1 (Zhang et al. 2017, arXiv:1707.01083): MACs of Table 1 (1x, by groups), Table 2
  (0.5x / 0.25x, g=3) and Table 5 (1.5x g=3: 292, 2x g=3: 524, 0.5x g=4: 38, 1x g=8: 140);
  parameters and the g=8 0.5x/1.5x/2x MACs from the authors' reimplementation
  (megvii-model/ShuffleNet-Series, ShuffleNetV1/README.md), which counts trainable
  parameters with a bias-free classifier.
- V2 (Ma et al. 2018, arXiv:1807.11164, Table 5): 41 / 146 / 299 / 591 M MACs and
  1.4 / 2.3 / 3.5 / 7.4 M parameters (trainable, conv5 with BN, biased classifier).
Exact totals (keras ``count_params``, BatchNorm moving statistics included, 1000 classes)
pin the architecture against regressions.
"""
import numpy as np
import pytest

import edgecnn
from edgecnn._keras import keras, tf
from edgecnn.errors import EdgecnnError
from edgecnn.models import layers
from edgecnn.models import shufflenet as v1
from edgecnn.models import shufflenet_v2 as v2


def _trainable(model):
    return int(sum(keras.backend.count_params(w) for w in model.trainable_weights))


# alpha, groups, reference M MACs, source, reference M params (trainable, bias-free
# classifier, rounded as published) or None, exact keras total params
V1 = [
    (1.0, 1, 143, "Table 1", None, 1_546_624),
    (1.0, 2, 140, "Table 1", None, 1_754_248),
    (1.0, 3, 137, "Table 1", 1.9, 1_890_208),
    (1.0, 4, 133, "Table 1", None, 1_996_088),
    (1.0, 8, 137, "Table 1 (Table 5: 140)", 2.4, 2_473_936),
    (0.5, 3, 38, "Table 2", 0.7, 730_564),
    # 0.25x g=3: the paper gives 13 M (whole MFLOPs). A stem divisible by 3 can only be 9
    # (12.2 M, -6.5 %) or 12 (13.3 M, +2.3 %); 12 is the one that rounds to the published
    # figure, so this row is tested at 2.5 %. (Scaling the stem to 6 gives 11.0 M.)
    (0.25, 3, 13, "Table 2; tolerance 2.5 %", None, 312_244),
    (0.5, 4, 38, "Table 5", None, 792_544),
    (1.5, 3, 292, "Table 5", 3.4, 3_478_888),
    (2.0, 3, 524, "Table 5", 5.4, 5_499_736),
    (0.5, 8, 40, "megvii README", 1.0, 1_031_032),
    (1.5, 8, 290, "megvii README", 4.3, 4_328_704),
    (2.0, 8, 522, "megvii README", 6.5, 6_600_568),
]


@pytest.mark.parametrize("alpha,groups,ref_macs,source,ref_params,total", V1,
                         ids=[f"{a:g}x-g{g}" for a, g, *_ in V1])
def test_shufflenet_v1_macs_and_params(alpha, groups, ref_macs, source, ref_params, total):
    model = edgecnn.create_model("shufflenet", alpha=alpha, groups=groups)
    tolerance = 0.025 if "2.5 %" in source else 0.02
    assert edgecnn.count_macs(model) / 1e6 == pytest.approx(ref_macs, rel=tolerance), source
    assert model.count_params() == total
    if ref_params is not None:  # the reference classifier has no bias
        assert round((_trainable(model) - 1000) / 1e6, 1) == ref_params
    keras.backend.clear_session()


# alpha, reference M MACs, reference M params, exact keras total params
V2 = [
    # 0.5x: conv + dense MACs add up to 40.5 M, 1.3 % under the published 41 M, in every
    # reference implementation (at 0.5x the megvii and torchvision units coincide); tested
    # at 1.5 %. The other widths are within 0.15 %.
    (0.5, 41, 1.4, 1_374_744),
    (1.0, 146, 2.3, 2_295_940),
    (1.5, 299, 3.5, 3_531_160),
    (2.0, 591, 7.4, 7_437_316),
]


@pytest.mark.parametrize("alpha,ref_macs,ref_params,total", V2, ids=[f"{r[0]:g}x" for r in V2])
def test_shufflenet_v2_macs_and_params(alpha, ref_macs, ref_params, total):
    model = edgecnn.create_model("shufflenet_v2", alpha=alpha)
    tolerance = 0.015 if alpha == 0.5 else 0.01
    assert edgecnn.count_macs(model) / 1e6 == pytest.approx(ref_macs, rel=tolerance)
    assert round(_trainable(model) / 1e6, 1) == ref_params
    assert model.count_params() == total
    keras.backend.clear_session()


# ----------------------------------------------------------------------------- V1 tables


@pytest.mark.parametrize("groups", v1.GROUPS)
def test_v1_stage_widths_are_table_1(groups):
    table = v1.describe(alpha=1.0, groups=groups)["blocks"]
    assert [(r["stage"], r["out"], r["expand"]) for r in table if r["stride"] == 2] == [
        (s, c, c // 4) for s, c in zip((2, 3, 4), v1.WIDTHS[groups])]
    assert [r["repeats"] for r in table] == [1, 3, 1, 7, 1, 3]


@pytest.mark.parametrize("alpha,stem,widths", [
    (0.25, 12, (60, 120, 240)), (0.5, 12, (120, 240, 480)), (1.0, 24, (240, 480, 960)),
    (1.5, 24, (360, 720, 1440)), (2.0, 48, (480, 960, 1920))])
def test_v1_scaled_channels_g3_match_the_authors_code(alpha, stem, widths):
    stem_channels, blocks = v1._arch(alpha, 3)
    assert stem_channels == stem
    assert tuple(b.out for b in blocks if b.stride == 2) == widths


def test_v1_grouping_first_pointwise_conv_not_grouped():
    model = edgecnn.create_model("shufflenet", groups=8, input_size=64)
    convs = {layer.name: layer.groups for layer in model.layers
             if type(layer) is keras.layers.Conv2D}
    assert convs.pop("stem_conv") == 1
    assert convs.pop("stage2_block1_expand") == 1
    assert set(convs.values()) == {8}
    assert len(convs) == 2 * 16 - 1


@pytest.mark.parametrize("groups", v1.GROUPS)
@pytest.mark.parametrize("alpha", [0.1, 0.33, 0.75, 1.25, 3.0])
def test_v1_any_alpha_keeps_every_group_conv_divisible(alpha, groups):
    stem, blocks = v1._arch(alpha, groups)
    assert stem % groups == 0
    for b in blocks:
        assert b.out % (4 * groups) == 0 and b.expand == b.out // 4
        main = b.out - b.in_channels if b.stride == 2 else b.out
        assert main > 0 and main % groups == 0


def test_v1_odd_alpha_builds_and_runs():
    model = edgecnn.create_model("shufflenet", alpha=0.6, groups=8, input_size=64,
                                 num_classes=5)
    assert model.predict(np.zeros((1, 64, 64, 3), np.float32), verbose=0).shape == (1, 5)


# ----------------------------------------------------------------------------- V2 tables


def test_v2_uses_table_5_literally():
    for alpha, row in v2.TABLE.items():
        assert v2.widths(alpha) == row
    blocks, last = v2._arch(2.0)
    assert last == 2048 and [b.out for b in blocks if b.stride == 2] == [244, 488, 976]


def test_v2_other_alphas_interpolate_the_table():
    assert v2.widths(0.75) == (84, 164, 328, 1024)  # halfway between the 0.5x and 1x rows
    assert v2.widths(1.75) == (212, 420, 840, 1536)
    assert v2.widths(3.0) == (368, 732, 1464, 3072)  # beyond 2x: proportional
    grid = [v2.widths(a) for a in np.arange(0.3, 3.0, 0.05)]
    for row in grid:
        assert all(c % 4 == 0 for c in row[:3]) and row[3] % 8 == 0
    for column in zip(*grid):
        assert list(column) == sorted(column)


def test_v2_stride2_unit_keeps_input_width_on_the_shortcut():
    """As the authors' code: stage 2's first unit keeps the 24 stem channels on its
    shortcut branch and makes out - 24 on the main branch (torchvision splits 58 / 58)."""
    model = edgecnn.create_model("shufflenet_v2", input_size=64)
    assert model.get_layer("stage2_block1_shortcut_project").filters == 24
    assert model.get_layer("stage2_block1_project").filters == 116 - 24
    assert model.get_layer("stage2_block1_expand").filters == 58
    assert model.get_layer("stage3_block1_project").filters == 116


# ----------------------------------------------------------------------------- layers


def test_channel_shuffle_is_the_papers_permutation():
    x = np.arange(2 * 3 * 12, dtype=np.float32).reshape(1, 2, 3, 12)
    y = layers.ChannelShuffle(3)(x).numpy()
    expected = x.reshape(1, 2, 3, 3, 4).transpose(0, 1, 2, 4, 3).reshape(1, 2, 3, 12)
    np.testing.assert_array_equal(y, expected)
    assert list(y[0, 0, 0, :6] - y[0, 0, 0, 0]) == [0, 4, 8, 1, 5, 9]


def test_channel_split_halves():
    x = np.random.default_rng(0).normal(size=(2, 4, 4, 10)).astype(np.float32)
    a, b = layers.ChannelSplit()(x)
    np.testing.assert_array_equal(a.numpy(), x[..., :5])
    np.testing.assert_array_equal(b.numpy(), x[..., 5:])


@pytest.mark.parametrize("size", [8, 7])
def test_depthwise_average_pooling_counts_padding_like_pytorch(size):
    x = np.random.default_rng(0).uniform(size=(1, size, size, 5)).astype(np.float32)
    y = layers.DepthwiseAveragePooling2D(3, 2)(x).numpy()
    total = size + 1 if size % 2 == 0 else size + 2   # TF 'SAME' pads the bottom-right first
    pad_lo = (total - size) // 2
    padded = np.zeros((1, size + 2, size + 2, 5), np.float32)
    padded[:, pad_lo:pad_lo + size, pad_lo:pad_lo + size] = x
    ref = tf.nn.avg_pool2d(padded, 3, 2, "VALID").numpy()[:, :y.shape[1], :y.shape[2]]
    np.testing.assert_allclose(y, ref, atol=1e-6)


# ----------------------------------------------------------------------------- int8


def _int8_xnnpack(model, size, qat=False):
    """Full-int8 conversion at batch 1; returns (op names, non-int8 operands, DELEGATE node
    count, nodes outside XNNPACK)."""
    from ai_edge_litert.interpreter import Interpreter

    if qat:
        import tensorflow_model_optimization as tfmot

        model = tfmot.quantization.keras.quantize_model(model)
    rng = np.random.default_rng(1)
    data = [rng.uniform(-2, 2, (1, size, size, 3)).astype(np.float32) for _ in range(8)]
    if qat:
        for d in data:
            model(d, training=True)
    fn = tf.function(lambda x: model(x, training=False)).get_concrete_function(
        tf.TensorSpec([1, size, size, 3], tf.float32))
    converter = tf.lite.TFLiteConverter.from_concrete_functions([fn], model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if not qat:
        converter.representative_dataset = lambda: ([d] for d in data)
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = converter.inference_output_type = tf.int8
    interp = Interpreter(model_content=converter.convert(), num_threads=1)
    interp.allocate_tensors()
    dtypes = {t["index"]: t["dtype"] for t in interp.get_tensor_details()}
    ops = interp._get_ops_details()
    nodes = [op for op in ops if op["op_name"] != "DELEGATE"]
    delegates = [op for op in ops if op["op_name"] == "DELEGATE"]
    produced = {t: op for op in nodes for t in op["outputs"]}
    constant_int32 = {t for op in nodes for t in op["inputs"]  # biases, axes, shapes
                      if t >= 0 and t not in produced and dtypes[t] == np.int32}
    not_int8 = sorted({f"{op['op_name']}:{dtypes[t].__name__}" for op in nodes
                       for t in list(op["inputs"]) + list(op["outputs"])
                       if t >= 0 and dtypes[t] != np.int8 and t not in constant_int32})
    delegate_in = {t for op in delegates for t in op["inputs"]}
    delegate_out = {t for op in delegates for t in op["outputs"]}
    outputs = {d["index"] for d in interp.get_output_details()}
    outside = sorted({produced[t]["op_name"] for t in delegate_in | (outputs - delegate_out)
                      if t in produced})
    return [op["op_name"] for op in nodes], not_int8, len(delegates), outside


# A conversion takes 10-25 s: tests/test_convert.py converts both families (edgecnn.convert)
# in the default run; these direct-converter checks (no requantize ops) run with -m slow.
INT8 = [pytest.param("shufflenet", {"groups": g}, marks=pytest.mark.slow) for g in (3, 8)] + \
    [pytest.param("shufflenet_v2", {}, marks=pytest.mark.slow)]


@pytest.mark.parametrize("name,options", INT8, ids=["v1-g3", "v1-g8", "v2-1x"])
def test_int8_graph_runs_whole_under_xnnpack(name, options):
    """Post-training full-int8: every op int8, one XNNPACK partition, and no requantize
    (int8 -> int8 QUANTIZE) op: shuffle, split and the pooled shortcut keep their scales."""
    model = edgecnn.create_model(name, input_size=64, include_top=False, **options)
    ops, not_int8, delegates, outside = _int8_xnnpack(model, 64)
    assert not_int8 == [] and "QUANTIZE" not in ops and "AVERAGE_POOL_2D" not in ops
    assert delegates == 1 and outside == []
    keras.backend.clear_session()


@pytest.mark.slow
def test_qat_int8_graph_with_8_groups_runs_whole_under_xnnpack():
    # v1 with 3 groups (the default) and v2 are QAT-converted and checked whole by
    # test_convert.py::test_every_model_every_precision[shufflenet*]; V2 keeps 22 requantize
    # ops at 1x (megvii layout), all inside the XNNPACK partition: tfmot fake-quantizes a
    # Concatenate's inputs unless they are stock keras layers, and the split half never is
    # (see shufflenet_v2.py). V1 has none.
    model = edgecnn.create_model("shufflenet", input_size=64, include_top=False, groups=8)
    ops, not_int8, delegates, outside = _int8_xnnpack(model, 64, qat=True)
    assert not_int8 == [] and delegates == 1 and outside == []
    assert "QUANTIZE" not in ops
    keras.backend.clear_session()


# ----------------------------------------------------------------------------- bad input


@pytest.mark.parametrize("groups", [5, 0, "3", True, 3.5])
def test_unsupported_groups_is_an_actionable_error(groups):
    with pytest.raises(EdgecnnError, match=r"groups must be one of 1, 2, 3, 4, 8"):
        edgecnn.create_model("shufflenet", groups=groups)


def test_too_small_alpha_is_an_actionable_error():
    with pytest.raises(EdgecnnError, match=r"alpha 0.02 is too small for shufflenet"):
        edgecnn.create_model("shufflenet", alpha=0.02, groups=3)
    with pytest.raises(EdgecnnError, match=r"alpha 0.25 is too small for shufflenet_v2"):
        edgecnn.create_model("shufflenet_v2", alpha=0.25)


def test_v2_has_no_groups_option():
    with pytest.raises(EdgecnnError, match=r"shufflenet_v2 has no option groups"):
        edgecnn.create_model("shufflenet_v2", groups=3)
