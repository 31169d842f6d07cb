"""Per-layer int8 error against float (edgecnn.runtime.layer_error), keeping layers in float
(edgecnn.convert(keep_float=...), edgecnn convert --keep-float) and `edgecnn quant-error`.
The Lite0 run with real ImageNet weights is in test_pretrained_real."""
import json

import numpy as np
import pytest

import edgecnn
from edgecnn.errors import EdgecnnError
from edgecnn.runtime import tflite as rt
from edgecnn.runtime.layer_error import (keep_float_suggestion, layer_errors, layer_names,
                                         main_layer, match_layers, range_limited, worst)

from conftest import calibrate_batchnorm, write_digit_folder
from test_cli import assert_one_line_error, run


def _float_bytes(model):
    import importlib

    from edgecnn.converters.deploy import deployable

    convert_module = importlib.import_module("edgecnn.converters.convert")
    return convert_module._convert_bytes(deployable(model), "float32", "float32", False, None,
                                         None)


@pytest.fixture(scope="module")
def v3_small(photos):
    """MobileNetV3-Small 0.75 at 96 px with realistic activations (BatchNorm statistics
    from real photos), its int8 and float32 .tflite, and the photos."""
    model = edgecnn.create_model("mobilenet_v3_small", alpha=0.75, input_size=96,
                                 num_classes=10, weights=None)
    pixels = photos(96)
    calibrate_batchnorm(model, model.edgecnn.preprocessing.apply(pixels))
    return model, pixels


def test_layer_names_read_the_converters_tensor_names():
    fused = ("m/block_1_depthwise_relu/Relu6;m/block_1_depthwise_BN/FusedBatchNormV3;"
             "m/block_1_depthwise/depthwise;m/block_1_pad/Pad1")
    assert layer_names(fused) == ["block_1_depthwise_relu", "block_1_depthwise_BN",
                                  "block_1_depthwise", "block_1_pad"]
    assert main_layer(fused) == "block_1_depthwise"   # the convolution names the row
    # keras.applications' MobileNetV3 names layers with a "/" in them
    nested = "m/expanded_conv_3/expand/act/mul_1"
    assert layer_names(nested) == ["expanded_conv_3"]
    assert layer_names(nested, known={"expanded_conv_3/expand/act"}) == \
        ["expanded_conv_3/expand/act"]
    names = [fused, "m/block_2_project/Conv2D1", "m/block_2_add/add"]
    assert match_layers(["block_2_*"], names) == {"block_2_*": names[1:]}
    with pytest.raises(EdgecnnError, match="did you mean block_2_project"):
        match_layers(["block_2_projekt"], names)


def test_layer_errors_agree_with_the_models_own_outputs(v3_small):
    """The last row (the logits) is the SNR of the int8 model's logits against the float
    model's, computed here from their outputs; hard-swish tensors that edgecnn's fold made
    carry 6x their value are compared as such; every row is named by a layer of the model."""
    model, pixels = v3_small
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        card = edgecnn.convert(model, f"{tmp}/m.tflite", "int8", representative_data=pixels)
        int8_bytes = open(card.path, "rb").read()
    float_bytes = _float_bytes(model)
    known = {layer.name for layer in model.layers}
    rows = layer_errors(float_bytes, int8_bytes, pixels[:6], known=known,
                        output_layer=model.layers[-1].name)
    assert len(rows) > 100 and all(r["layer"] in known for r in rows)
    last = rows[-1]
    assert last["layer"] == model.layers[-1].name   # the logits, renamed by the converter
    reference = rt.run_logits(rt.load_interpreter(float_bytes), pixels[:6]).astype(np.float64)
    logits = rt.run_logits(rt.load_interpreter(int8_bytes), pixels[:6]).astype(np.float64)
    snr = 10 * np.log10((reference ** 2).sum() / ((logits - reference) ** 2).sum())
    assert last["snr_db"] == pytest.approx(snr, abs=0.05)
    folded = [r for r in rows if r.get("factor") == 6.0]
    assert card.folds["hard_swish_sixth"] > 0 and folded
    assert all(r["own_snr_db"] > 20 for r in folded)   # not the -14 dB of a 6x mismatch
    # a layer's own error includes its output's rounding: it is never far below it
    assert np.median([r["rounding_snr_db"] - r["own_snr_db"] for r in rows]) > 0
    assert [r["index"] for r in worst(rows, 3)] == [
        r["index"] for r in sorted(rows, key=lambda r: r["own_snr_db"])[:3]]


def test_keep_float_leaves_those_layers_in_float_and_the_rest_int8(v3_small, tmp_path):
    model, pixels = v3_small
    card = edgecnn.convert(model, str(tmp_path / "kept.tflite"), "int8",
                           representative_data=pixels,
                           keep_float=["expanded_conv_3/project", "expanded_conv_4/*"])
    kept = card.calibration["keep_float"]
    assert kept["matched"]["expanded_conv_3/project"] == 1 and \
        kept["matched"]["expanded_conv_4/*"] > 5
    interpreter = rt.load_interpreter(card.path)
    tensors = {t["index"]: t for t in interpreter.get_tensor_details()}
    floats = set()
    for op in interpreter._get_ops_details():
        out = tensors[op["outputs"][0]]
        if op["op_name"] not in ("QUANTIZE", "DEQUANTIZE") and out["dtype"] == np.float32:
            floats.add(str(out["name"]))
    assert floats and all("expanded_conv_3/project" in n or "expanded_conv_4/" in n
                          for n in floats)
    assert len(floats) == kept["ops"]
    assert not card.all_int8 and card.xnnpack_partitions == 1
    assert any("kept in float as asked" in w for w in card.warnings)
    with pytest.raises(EdgecnnError, match="did you mean"):
        edgecnn.convert(model, str(tmp_path / "bad.tflite"), "int8",
                        representative_data=pixels, keep_float=["expanded_conv_3/projekt"])
    assert not (tmp_path / "bad.tflite").exists()
    with pytest.raises(EdgecnnError, match="post-training int8"):
        edgecnn.convert(model, str(tmp_path / "f.tflite"), "float32",
                        keep_float=["expanded_conv_3/project"])


def test_suggestion_adds_the_readers_of_range_limited_layers():
    rows = [{"layer": "a_project", "own_snr_db": 24.0, "rounding_snr_db": 24.3,
             "readers": ["a_add"]},
            {"layer": "b_expand", "own_snr_db": 26.0, "rounding_snr_db": 45.0,
             "readers": ["b_dw"]}]
    assert range_limited(rows[0]) and not range_limited(rows[1])
    assert keep_float_suggestion(rows) == ["a_project", "a_add", "b_expand"]


def test_quant_error_cli_on_an_image_folder(tmp_path):
    """The newcomer's path: a registered name, random weights, a plain labelled folder."""
    (tmp_path / "digits").mkdir()
    data = write_digit_folder(tmp_path / "digits", limit=90, classes=3)
    out = tmp_path / "kept.tflite"
    plot = tmp_path / "snr.png"
    result = run("quant-error", "mobilenet_v2", "--alpha", "0.35", "-r", "48",
                 "--num-classes", "3", "--weights", "none", "--data", str(data),
                 "--images", "4", "--worst", "3", "--keep-float", "block_1_project",
                 "-o", str(out), "--plot", str(plot), "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["labels"] == "sorted folder names" and report["images"] > 20
    assert len(report["worst"]) == 3 and sum(bool(r.get("worst")) for r in report["layers"]) == 3
    assert set(report["models"]) == {"float32", "int8", "int8 keep-float"}
    kept = report["models"]["int8 keep-float"]
    assert kept["float_ops"] == {"CONV_2D": 1} and kept["xnnpack_partitions"] == 1
    assert report["models"]["int8"]["all_int8"] and report["models"]["float32"]["agreement"] \
        == 100.0
    for entry in report["models"].values():
        assert 0 <= entry["top1"] <= 100 and entry["ms"] > 0
    assert out.read_bytes()[4:8] == b"TFL3" and plot.read_bytes()[:4] == b"\x89PNG"
    assert rt.read_card_dict(str(out))["calibration"]["keep_float"]["ops"] == 1


@pytest.mark.parametrize("args, message", [
    (["--keep-float", "no_such_layer"], "no quantized op of this model belongs to that layer"),
    (["-o", "x.tflite"], "--output writes the model with --keep-float layers"),
    (["--plot", "chart.jpg"], "give a path ending in .png"),
    (["--keep-float", ","], "--keep-float needs layer names"),
])
def test_quant_error_bad_input_is_one_line(tmp_path, monkeypatch, args, message):
    (tmp_path / "digits").mkdir()
    data = write_digit_folder(tmp_path / "digits", limit=30, classes=3)
    monkeypatch.chdir(tmp_path)
    result = run("quant-error", "mobilenet_v2", "--alpha", "0.35", "-r", "32",
                 "--num-classes", "3", "--weights", "none", "--data", str(data),
                 "--images", "2", "--json", *args)
    assert_one_line_error(result, message)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["digits"]


def test_convert_cli_keep_float(tmp_path):
    out = tmp_path / "m.tflite"
    result = run("convert", "mobilenet_v2", "--alpha", "0.35", "-r", "48", "--int8",
                 "--weights", "none", "--keep-float", "block_2_*", "-o", str(out))
    assert result.exit_code == 0, result.output
    card = json.loads((tmp_path / "m.json").read_text())
    assert card["calibration"]["keep_float"]["layers"] == ["block_2_*"]
    assert "kept in float" in result.stdout
    assert_one_line_error(run("convert", "mobilenet_v2", "--keep-float", "block_2_*"),
                          "use it with --int8")


def test_quant_error_reads_a_saved_keras_model(tmp_path):
    """MODEL may be the .keras file edgecnn train writes (its build record gives the
    preprocessing); a Keras file without one is refused in one line."""
    from edgecnn.models.io import save_model

    (tmp_path / "digits").mkdir()
    data = write_digit_folder(tmp_path / "digits", limit=30, classes=3)
    model = edgecnn.create_model("mobilenet_v2", alpha=0.35, input_size=32, num_classes=3,
                                 weights=None)
    path = save_model(model, str(tmp_path / "m.keras"))
    result = run("quant-error", path, "--data", str(data), "--images", "2", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["model"] == "mobilenet_v2" and report["resolution"] == 32
    assert report["layers"] and report["models"]["int8"]["all_int8"]
    plain = tmp_path / "plain.keras"
    model.save(plain)
    assert_one_line_error(run("quant-error", str(plain), "--data", str(data)),
                          "no edgecnn build record")
