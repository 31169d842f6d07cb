"""Int8 graphs stay whole on XNNPACK whatever the weights: ADDs whose quantization scales the
delegate refuses are rewritten (``converters.folds.fit_xnnpack_scales``), random networks get
BatchNorm statistics from their calibration images (``models.init``), and what cannot be
kept is named with its reason (``--strict`` fails)."""
import json
import os

import numpy as np
import pytest
from conftest import family_representative
from click.testing import CliRunner

import edgecnn
from edgecnn import EdgecnnError
from edgecnn._keras import keras
from edgecnn.cli import cli
from edgecnn.converters.folds import fit_xnnpack_scales
from edgecnn.data import synthetic_images
from edgecnn.models import list_models
from edgecnn.models.init import init_batchnorm_statistics
from edgecnn.models.layers import HardSwish
from edgecnn.models.registry import MINUS_ONE_TO_ONE
from edgecnn.runtime import tflite as rt
from edgecnn.runtime.xnnpack import scale_refusals

FAMILY_REPS = [n for n in list_models() if family_representative(n)]


def _tiny_hard_swish_net(size=16):
    """conv -> BN -> hard-swish -> conv -> pool -> dense, random weights (tiny activations:
    fresh BatchNorm statistics), as an edgecnn-style functional graph."""
    inputs = keras.Input((size, size, 3))
    x = keras.layers.Conv2D(8, 3, padding="same", use_bias=False)(inputs)
    x = keras.layers.BatchNormalization()(x)
    x = HardSwish()(x)
    x = keras.layers.Conv2D(8, 1)(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, keras.layers.Dense(4)(x))


def _quantized(model, tmp_path, pixels, **kwargs):
    report = edgecnn.convert(model, tmp_path / "m.tflite", "int8", representative_data=pixels,
                             card_path=None, **kwargs)
    with open(report.path, "rb") as f:
        return report, f.read()


def _dequantize(detail, q):
    scale, zero = detail["quantization"]
    return scale * (q.astype(np.float64) - zero)


def test_an_add_as_depthwise_computes_the_same_sum(tmp_path):
    """Every ``x + 3`` rewritten as a 1x1 depthwise convolution gives, from its own input,
    the quantized relu6(x + 3) within one output step (the ADD's own rounding)."""
    pixels = synthetic_images(8, 16)
    model = _tiny_hard_swish_net()
    init_batchnorm_statistics(model, pixels / 127.5 - 1)
    _, data = _quantized(model, tmp_path, pixels, preprocessing=MINUS_ONE_TO_ONE)
    rewritten, info = fit_xnnpack_scales(data, everywhere=True)
    assert info["add_as_depthwise"] == 1
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    interpreter = Interpreter(
        model_content=rewritten, experimental_preserve_all_tensors=True,
        experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    interpreter.allocate_tensors()
    rt.run_logits(interpreter, pixels[:1])
    tensors = {t["index"]: t for t in interpreter.get_tensor_details()}
    checked = 0
    for op in interpreter._get_ops_details():
        if op["op_name"] != "DEPTHWISE_CONV_2D" or \
                "add_as_depthwise" not in tensors[op["inputs"][1]]["name"]:
            continue
        x_detail, y_detail = tensors[op["inputs"][0]], tensors[op["outputs"][0]]
        x = _dequantize(x_detail, interpreter.get_tensor(x_detail["index"]))
        y = interpreter.get_tensor(y_detail["index"]).astype(np.int64)
        scale, zero = y_detail["quantization"]
        expected = np.clip(np.round(np.clip(x + 3.0, 0, 6) / scale) + zero, -128, 127)
        assert np.abs(y - expected).max() <= 1
        assert np.ptp(x) > 0   # a real input, not a constant
        checked += 1
    assert checked == 1
    # and the whole network's outputs stay within a step of the ADD form's
    before = rt.run_logits(rt.load_interpreter(data), pixels)
    after = rt.run_logits(rt.load_interpreter(rewritten), pixels)
    step = rt.load_interpreter(data).get_output_details()[0]["quantization"][0]
    assert np.abs(before - after).max() <= 2 * step + 1e-6


def _collapsed_branch_net(size=16):
    """A residual ADD whose branch (1x1 conv of weights ~1e-4, then max-pool, as Xception's
    with random weights) is ~1e-3 of its shortcut."""
    keras.utils.set_random_seed(0)
    inputs = keras.Input((size, size, 3))
    x = keras.layers.Conv2D(8, 3, padding="same", activation="relu")(inputs)
    branch = keras.layers.Conv2D(
        8, 1, kernel_initializer=keras.initializers.RandomNormal(stddev=1e-4))(x)
    branch = keras.layers.MaxPooling2D(3, strides=2, padding="same")(branch)
    shortcut = keras.layers.Conv2D(8, 1, strides=2)(x)
    y = keras.layers.GlobalAveragePooling2D()(keras.layers.Add()([branch, shortcut]))
    return keras.Model(inputs, keras.layers.Dense(4)(y))


def test_a_collapsed_residual_branch_is_raised_to_the_bound(tmp_path):
    """A residual ADD refused because one input's scale is far below the output's: that
    input (and the max-pool and convolution it comes through) gets the bound's scale; the
    model becomes one partition and its outputs stay within a step of the original's."""
    pixels = synthetic_images(8, 16)
    report, data = _quantized(_collapsed_branch_net(), tmp_path, pixels, folds=False,
                              preprocessing=MINUS_ONE_TO_ONE, bias_correction=False)
    assert report.xnnpack_partitions == 2 and len(scale_refusals(data)) == 1
    rewritten, info = fit_xnnpack_scales(data)
    assert info == {"add_as_depthwise": 0, "add_input_rescaled": 1}
    assert scale_refusals(rewritten) == {}
    assert rt.analyze(rewritten)["xnnpack_partitions"] == 1
    # the same (reference) kernels on both: only the rewrite differs
    before = rt.run_logits(rt.load_interpreter(data, xnnpack=False), pixels)
    after = rt.run_logits(rt.load_interpreter(rewritten, xnnpack=False), pixels)
    step = rt.load_interpreter(data).get_output_details()[0]["quantization"][0]
    assert np.abs(before - after).max() <= step + 1e-6
    assert np.ptp(before) > 10 * step  # outputs that vary: the comparison means something


def test_random_weights_without_statistics_still_make_one_partition(tmp_path):
    """The reported case: MobileNetV3-Small with fresh BatchNorm statistics. Its ``x + 3``
    ADDs see activations of ~1e-6, which XNNPACK refuses (see the --strict test); edgecnn
    rewrites each."""
    pixels = synthetic_images(8, 64)
    model = edgecnn.create_model("mobilenet_v3_small", alpha=0.35, input_size=64,
                                 num_classes=10)
    report, data = _quantized(model, tmp_path, pixels)
    assert report.xnnpack_partitions == 1 and report.all_int8
    assert set(report.ops_outside_xnnpack) <= {"QUANTIZE"} and report.xnnpack_refusals == []
    assert report.folds["add_as_depthwise"] >= 5 and scale_refusals(data) == {}


def test_strict_names_the_refused_ops_and_writes_nothing(tmp_path):
    """Without the rewrite (``folds=False``) the same network is split; the report names
    each refused ADD with its scale ratio, and ``strict`` turns that into an error."""
    pixels = synthetic_images(8, 64)
    model = edgecnn.create_model("mobilenet_v3_small", alpha=0.35, input_size=64,
                                 num_classes=10)
    with pytest.raises(EdgecnnError, match=r"--strict: int8 graph not whole on XNNPACK: \d+ "
                                           r"partition\(s\), outside: ADD #\d+: input 0 / "
                                           r"output scale ratio [0-9.e-]+ outside XNNPACK's "
                                           r"\[2\^-10, 2\^8\)"):
        edgecnn.convert(model, tmp_path / "m.tflite", "int8", representative_data=pixels,
                        folds=False, strict=True)
    assert os.listdir(tmp_path) == []


def test_cli_random_weights_get_batchnorm_statistics(tmp_path):
    """``edgecnn convert NAME --int8`` (random weights, no data): BatchNorm statistics from
    the calibration images, so the graph is that of a trained network: no ADD rewritten,
    one partition, and the card says how the weights were set. ``--strict`` passes."""
    out = tmp_path / "v3s.tflite"
    result = CliRunner().invoke(cli, ["convert", "mobilenet_v3_small", "--alpha", "0.35",
                                      "--resolution", "64", "--num-classes", "10", "--int8",
                                      "--strict", "-o", str(out), "--json"])
    assert result.exit_code == 0, result.output
    card = json.loads((tmp_path / "v3s.json").read_text())
    assert card["xnnpack_partitions"] == 1 and card["xnnpack_refusals"] == []
    assert card["folds"]["add_as_depthwise"] == 0
    assert card["model"]["batchnorm_statistics"].startswith(
        "random weights; BatchNorm statistics from")


def test_init_batchnorm_statistics_makes_activations_order_one():
    model = edgecnn.create_model("mobilenet_v3_small", alpha=0.35, input_size=64,
                                 num_classes=10)
    x = model.edgecnn.preprocessing.apply(synthetic_images(8, 64))
    bns = [layer for layer in model.layers
           if isinstance(layer, keras.layers.BatchNormalization)]
    probe = keras.Model(model.input, bns[-1].output)
    before = float(np.std(probe.predict(x, verbose=0)))
    momenta = [bn.momentum for bn in bns]
    assert init_batchnorm_statistics(model, x) == len(bns)
    after = float(np.std(probe.predict(x, verbose=0)))
    assert before < 1e-3 and 0.3 < after < 3.0
    assert [bn.momentum for bn in bns] == momenta   # restored
