"""Conversion: every family to float32 / float16 / dynamic / int8 (PTQ and QAT), each int8
model integer-only and whole on XNNPACK, agreeing with its Keras model; cards; safe writes."""
import json
import os

import pytest
from conftest import calibrate_batchnorm, family_representative, memory_marks, randomize_weights

import edgecnn
from edgecnn import EdgecnnError
from edgecnn.converters.qat import calibrate_ranges
from edgecnn.data import synthetic_images
from edgecnn.converters import deployable
from edgecnn.models import list_models
from edgecnn.models.layers import HardSwish
from edgecnn.runtime import load_interpreter, read_card, run_logits

SIZE = 64
FAMILY_REPS = [n for n in list_models() if family_representative(n)]


def realistic(name, alpha=0.5, size=SIZE, classes=10, samples=16, **options):
    """A model whose BatchNorm statistics fit its inputs, as a trained network's do (default
    initial statistics shrink activations towards zero, which no real network has). Seeded:
    the same weights whatever ran before in the process."""
    from edgecnn._keras import keras

    keras.utils.set_random_seed(0)
    model = edgecnn.create_model(name, alpha=alpha, input_size=size, num_classes=classes,
                                 **options)
    pixels = synthetic_images(samples, size, seed=1)
    calibrate_batchnorm(model, model.edgecnn.preprocessing.apply(pixels))
    return model, pixels


def assert_int8_whole(report):
    assert report.all_int8, report.float_ops
    assert report.xnnpack_partitions == 1
    # only the uint8 <-> int8 conversions at the model's boundary run outside the delegate
    assert set(report.ops_outside_xnnpack) <= {"QUANTIZE"}
    assert_raw_pixel_input(report.input, report.preprocessing)


def assert_raw_pixel_input(spec, preprocessing):
    """The integer input is the raw pixel (uint8) or the pixel minus 128 (int8). With one
    normalization for all channels it lives in the input quantization (the op is folded
    away); per-channel statistics keep the op, and the input scale is 1."""
    shift = 128 if spec.dtype == "int8" else 0
    mean, std = preprocessing.mean, preprocessing.std
    if len(set(mean)) == 1 and len(set(std)) == 1:
        assert spec.normalization_folded
        assert spec.scale == pytest.approx(1.0 / std[0], rel=1e-4)
        # scale * (pixel - shift - zero_point) is (pixel - mean) / std within half a step
        assert abs(spec.zero_point + shift - mean[0]) <= 0.5 + 1e-3
    else:
        assert spec.normalization_folded is None
        assert (spec.scale, spec.zero_point) == (1.0, -shift)


@pytest.mark.parametrize("name", FAMILY_REPS)
def test_int8_ptq_is_integer_only_and_one_partition(name, photos, tmp_path):
    """Fresh random weights (BatchNorm statistics as initialized: the hardest case for
    XNNPACK's scale bounds) calibrated on real photos; the whole matrix of widths, inputs
    and weights is in test_int8_whole_matrix.py (slow)."""
    model = edgecnn.create_model(name, alpha=0.5, input_size=32, num_classes=10)
    report = edgecnn.convert(model, tmp_path / "m.tflite", "int8",
                             representative_data=photos(32))
    assert_int8_whole(report)


@pytest.mark.parametrize("name", ["mobilenet_v3_small",
                                  pytest.param("efficientnet_b0", marks=pytest.mark.slow)])
def test_int8_qat_is_integer_only_and_one_partition(name, tmp_path):
    model, pixels = realistic(name)
    qat = edgecnn.quantize_aware(model)
    assert qat.edgecnn.unquantized == ()
    calibrate_ranges(qat, pixels)
    report = edgecnn.convert(qat, tmp_path / "m.tflite", "int8")
    assert_int8_whole(report)
    assert report.qat and report.params == model.count_params()


@pytest.mark.parametrize("io", ["uint8", "int8"])
def test_folding_the_normalization_removes_an_op_and_changes_no_output(io, tmp_path):
    """A [-1, 1] network's int8 model without its normalization op computes what the model
    with the op computes, on the same raw pixels."""
    model, pixels = realistic("mobilenet", size=32, samples=8)
    runs = {}
    for fold in (False, True):
        path = tmp_path / f"{fold}.tflite"
        report = edgecnn.convert(model, path, "int8", representative_data=pixels, io_dtype=io,
                                 folds=fold)
        assert report.all_int8 and report.xnnpack_partitions == 1
        interpreter = load_interpreter(path)
        runs[fold] = (report, run_logits(interpreter, pixels),
                      interpreter.get_output_details()[0]["quantization"][0])
    (kept, kept_logits, _), (folded, folded_logits, step) = runs[False], runs[True]
    assert kept.input.normalization_folded is None and kept.input.scale == 1.0
    assert_raw_pixel_input(folded.input, folded.preprocessing)
    assert folded.ops["DEPTHWISE_CONV_2D"] == kept.ops["DEPTHWISE_CONV_2D"] - 1
    assert abs(folded_logits - kept_logits).max() <= step + 1e-6  # at most one output step
    assert folded.agreement["top1_agreement"] == kept.agreement["top1_agreement"]
    assert folded.folds == {"input_normalization": True, "hard_swish_sixth": 0,
                            "hard_swish_fused": 0, "add_as_depthwise": 0,
                            "add_input_rescaled": 0}


def test_folding_a_qat_model_keeps_its_outputs(tmp_path):
    """A QAT model's pixel-normalization range is pinned to the normalized range, so the
    folded graph computes what the model with the op computes, up to the input's rounding."""
    model, pixels = realistic("mobilenet", size=32, samples=8)
    qat = edgecnn.quantize_aware(model)
    calibrate_ranges(qat, pixels)
    runs = {}
    for fold in (False, True):
        path = tmp_path / f"{fold}.tflite"
        report = edgecnn.convert(qat, path, "int8", folds=fold)
        interpreter = load_interpreter(path)
        runs[fold] = (report, run_logits(interpreter, pixels),
                      interpreter.get_output_details()[0]["quantization"][0])
    (kept, kept_logits, _), (folded, folded_logits, step) = runs[False], runs[True]
    assert folded.input.normalization_folded
    assert folded.folds["hard_swish_sixth"] == 0  # a QAT graph is converted as trained
    assert_int8_whole(folded)
    # both graphs carry the input to within half a step (the zero point is an integer);
    # the folded one is no further from the Keras QAT model than the one with the op
    keras_logits = qat.predict(pixels.astype("float32"), verbose=0)
    assert abs(folded_logits - keras_logits).mean() <= \
        1.1 * abs(kept_logits - keras_logits).mean() + step


@pytest.mark.slow  # 40-57 s: out of the default set (kept near 10 min)
def test_qat_keeps_the_pixel_normalization_fixed_and_its_range_exact():
    """Fine-tuning leaves the normalization alone, and its output quantizer covers exactly
    the normalized pixel range (tfmot's default [-6, 6] would waste 3/4 of the steps)."""
    import numpy as np

    from edgecnn.converters.qat import fine_tune

    model, pixels = realistic("mobilenet", size=32, samples=8)
    qat = edgecnn.quantize_aware(model)
    wrapper = [layer for layer in qat.layers if layer.name.endswith("pixel_normalization")][0]
    before = [w.numpy().copy() for w in wrapper.layer.weights]
    fine_tune(qat, pixels, np.arange(len(pixels)) % 10, epochs=2, learning_rate=0.1)
    for old, new in zip(before, wrapper.layer.weights):
        np.testing.assert_array_equal(old, new.numpy())
    ranges = {w.name.split("/")[-1]: float(w.numpy()) for w in wrapper.weights
              if "post_activation" in w.name}
    assert ranges["post_activation_min:0"] == pytest.approx(-1.0, abs=0.02)
    assert ranges["post_activation_max:0"] == pytest.approx(1.0, abs=0.02)


@pytest.mark.slow  # 40-57 s: out of the default set (kept near 10 min)
def test_distillation_brings_the_quantized_model_to_the_float_one(tmp_path, photos):
    """QAT without labels: the fake-quantized model learns the float model's outputs on
    unlabelled photos; its divergence from the teacher falls, and the converted int8 model
    agrees with the teacher more than the same QAT model before distillation."""
    import numpy as np

    from edgecnn.converters.deploy import deployable
    from edgecnn.converters.qat import calibrate_ranges, distill, teacher_logits

    model, _ = realistic("mobilenet", alpha=0.25, size=32, samples=8)
    randomize_weights(model, seed=2, logit_gain=3.0)
    pixels = np.concatenate([photos(32), photos(32)[:, ::-1]])  # 8 real crops
    calibrate_batchnorm(model, model.edgecnn.preprocessing.apply(pixels))
    teacher = deployable(model)
    target = teacher_logits(teacher, pixels)

    def divergence(logits):  # KL(teacher || student), the distillation loss at T = 1
        p = np.exp(target - target.max(1, keepdims=True))
        p /= p.sum(1, keepdims=True)
        q = logits - logits.max(1, keepdims=True)
        q -= np.log(np.exp(q).sum(1, keepdims=True))
        return float((p * (np.log(p + 1e-12) - q)).sum(1).mean())

    qat = edgecnn.quantize_aware(model)
    calibrate_ranges(qat, pixels)
    before = divergence(teacher_logits(qat, pixels))
    history = distill(qat, teacher, pixels, epochs=12, batch_size=8, learning_rate=1e-3)
    after = divergence(teacher_logits(qat, pixels))
    assert after < 0.7 * before, (before, after, history.history["loss"])
    report = edgecnn.convert(qat, tmp_path / "d.tflite", "int8")
    logits = run_logits(load_interpreter(tmp_path / "d.tflite"), pixels)
    assert report.qat and report.xnnpack_partitions == 1
    assert divergence(logits) < 0.8 * before


@pytest.mark.slow  # 40-57 s: out of the default set (kept near 10 min)
def test_hard_swish_read_by_a_residual_add_folds_too(tmp_path):
    """V3 Large's stem hard-swish feeds the first block's residual ADD: the conv on the
    ADD's other side takes the factor as well, and every hard-swish folds."""
    model, pixels = realistic("mobilenet_v3_large", alpha=1.0, size=32, samples=8)
    runs = {}
    for fold in (False, True):
        path = tmp_path / f"{fold}.tflite"
        report = edgecnn.convert(model, path, "int8", representative_data=pixels, folds=fold)
        interpreter = load_interpreter(path)
        runs[fold] = (report, run_logits(interpreter, pixels),
                      interpreter.get_output_details()[0]["quantization"][0])
    (kept, kept_logits, _), (folded, folded_logits, step) = runs[False], runs[True]
    hard_swishes = sum(isinstance(layer, HardSwish) for layer in model.layers)
    assert folded.folds["hard_swish_sixth"] == hard_swishes
    assert folded.ops["MUL"] == kept.ops["MUL"] - hard_swishes
    assert folded.ops["ADD"] == kept.ops["ADD"]
    assert_int8_whole(folded)
    # the same integer arithmetic less one rounding (of x / 6): no further from Keras
    keras_logits = deployable(model).predict(pixels.astype("float32"), verbose=0)
    assert abs(folded_logits - keras_logits).mean() <= \
        1.1 * abs(kept_logits - keras_logits).mean() + step


@pytest.mark.parametrize("precision", ["float32", "float16"])
def test_float_hard_swish_is_one_fused_op(precision, tmp_path):
    """Float graphs run hard-swish as XNNPACK's own HARD_SWISH op, computing what Keras does."""
    model, pixels = realistic("mobilenet_v3_small", size=32, samples=8)
    report = edgecnn.convert(model, tmp_path / "m.tflite", precision, validation_data=pixels)
    hard_swishes = sum(isinstance(layer, HardSwish) for layer in model.layers)
    assert report.folds["hard_swish_fused"] == report.ops["HARD_SWISH"] == hard_swishes
    assert report.xnnpack_partitions == 1 and report.ops_outside_xnnpack == {}
    assert_close_to_keras(report, precision)


def test_hard_swish_sixth_folds_into_the_next_layers(tmp_path):
    """MobileNetV3's int8 hard-swishes lose their x * 1/6 MUL, except where a residual ADD
    reads one; the graph stays whole and no further from Keras than the unfolded one."""
    model, data = _train_on_digits("mobilenet_v3_small", size=48, epochs=2)
    reports = {}
    for fold in (False, True):
        reports[fold] = edgecnn.convert(model, tmp_path / f"{fold}.tflite", "int8",
                                        representative_data=data.images[:64],
                                        validation_data=data.images[700:828], folds=fold)
    kept, folded = reports[False], reports[True]
    hard_swishes = sum(isinstance(layer, HardSwish) for layer in model.layers)
    assert folded.folds["hard_swish_sixth"] == hard_swishes  # Small: none feeds an ADD
    assert folded.ops["MUL"] == kept.ops["MUL"] - hard_swishes
    assert_int8_whole(folded)
    assert folded.agreement["top1_agreement"] >= kept.agreement["top1_agreement"] - 1.0
    assert folded.agreement["mean_abs_prob_error"] <= \
        1.1 * kept.agreement["mean_abs_prob_error"] + 1e-4


def assert_close_to_keras(report, precision):
    """float32 reproduces Keras; float16 and dynamic-range models stay close in probability
    (their top-1 may swap on a random network's near-ties; trained networks: see below).
    The mean is what is held tight: on a random network one image of 16 can move far more
    than the rest (float16 0.037 on B4 with a mean of 0.0007; float32 1.01e-4 on the
    800-layer B7, mean 1.7e-6), so the bound on the single worst image is loose, and for
    dynamic range there is none: its activations are quantized per tensor at run time, and on
    random EfficientNet-B3 one image moved 0.35, on B7 one flipped its peaked softmax
    entirely (0.998) while the mean stayed 0.018."""
    agreement = report.agreement
    if precision == "float32":
        assert agreement["top1_agreement"] == 100.0
    mean, most = {"float32": (1e-5, 5e-4), "float16": (5e-3, 0.1),
                  "dynamic": (3e-2, 1.0 + 1e-6)}[precision]
    assert agreement["mean_abs_prob_error"] < mean and agreement["max_abs_prob_error"] < most


@pytest.mark.parametrize("precision", ["float32", "float16", "dynamic"])
def test_float_precisions_match_keras(precision, tmp_path):
    model, pixels = realistic("mobilenet")
    report = edgecnn.convert(model, tmp_path / "m.tflite", precision, validation_data=pixels)
    assert report.input.dtype == "float32" and report.all_int8 is None
    assert_close_to_keras(report, precision)
    if precision == "float32":
        assert report.xnnpack_partitions == 1 and report.ops_outside_xnnpack == {}


def _train_on_digits(name, alpha=0.5, size=SIZE, epochs=4, **options):
    """A real classifier: trained briefly on the built-in digits (real images)."""
    from edgecnn._keras import keras
    from edgecnn.data.digits import load_digits

    data = load_digits(size, limit=900)
    model = edgecnn.create_model(name, alpha=alpha, input_size=size, num_classes=10, **options)
    x = model.edgecnn.preprocessing.apply(data.images)
    model.compile(keras.optimizers.Adam(2e-3), "sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    model.fit(x[:700], data.labels[:700], epochs=epochs, batch_size=32, verbose=0)
    calibrate_batchnorm(model, x[:256])  # BN statistics of the trained weights
    return model, data


def _check_trained_int8(name, tmp_path, **kwargs):
    """A model trained on digits, checked after int8 conversion."""
    model, data = _train_on_digits(name, **kwargs)
    held_out = slice(700, None)
    report = edgecnn.convert(model, tmp_path / "m.tflite", "int8",
                             representative_data=data.images[:100],
                             validation_data=data.images[held_out],
                             validation_labels=data.labels[held_out])
    assert_int8_whole(report)
    assert report.agreement["top1_agreement"] >= 90.0, report.agreement
    assert report.accuracy["keras_top1"] > 50.0  # the classifier really learned the digits
    return model


def test_trained_int8_model_on_raw_pixels_agrees_with_keras(tmp_path):
    """The uint8 model fed raw pixels of real images predicts what the float Keras model
    predicts on the normalized images."""
    _check_trained_int8("mobilenet_v3_small", tmp_path)


def test_card_is_embedded_and_written_beside(tmp_path):
    model, pixels = realistic("mobilenet_v3_small")
    path = tmp_path / "m.tflite"
    report = edgecnn.convert(model, path, "int8", representative_data=pixels,
                             labels=[str(i) for i in range(10)])
    embedded = read_card(path).to_dict()
    beside = json.loads((tmp_path / "m.json").read_text())
    assert embedded == beside
    assert embedded["size_bytes"] == os.path.getsize(path) == report.size_bytes
    for key in ("model", "precision", "input", "output", "preprocessing", "labels", "params",
                "macs", "ops", "all_int8", "xnnpack_partitions", "agreement", "versions"):
        assert key in embedded
    assert embedded["model"]["name"] == "mobilenet_v3_small"
    assert embedded["versions"]["tfmot"] and embedded["versions"]["litert"]
    assert embedded["labels"][3] == "3"
    # LiteRT's signature runner (and Android's runSignature) find the input and output under
    # serving_default, as in a SavedModel-based conversion
    interpreter = load_interpreter(path)
    assert interpreter.get_signature_list() == {
        "serving_default": {"inputs": ["pixels"], "outputs": ["output_0"]}}
    by_signature = interpreter.get_signature_runner()(pixels=pixels[:1].astype("uint8"))
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"],
                           pixels[:1].astype("uint8"))
    interpreter.invoke()
    assert (by_signature["output_0"] ==
            interpreter.get_tensor(interpreter.get_output_details()[0]["index"])).all()


def test_float_model_needs_calibration_data_for_int8(tmp_path):
    model, _ = realistic("mobilenet")
    with pytest.raises(EdgecnnError, match="needs representative_data"):
        edgecnn.convert(model, tmp_path / "m.tflite", "int8")
    with pytest.raises(EdgecnnError, match="needs precision int8"):
        edgecnn.convert(model, tmp_path / "m.tflite", "float16", io_dtype="uint8")
    assert os.listdir(tmp_path) == []


def test_missing_output_folder_writes_nothing(tmp_path):
    model, _ = realistic("mobilenet")
    with pytest.raises(EdgecnnError, match="does not exist"):
        edgecnn.convert(model, tmp_path / "nope" / "m.tflite")


def test_interrupted_write_leaves_nothing(tmp_path, monkeypatch):
    from edgecnn.utils import files

    model, _ = realistic("mobilenet")

    def interrupted(f, *args):
        raise KeyboardInterrupt

    monkeypatch.setattr(files.os, "fsync", interrupted)
    with pytest.raises(KeyboardInterrupt):
        edgecnn.convert(model, tmp_path / "m.tflite")
    assert os.listdir(tmp_path) == []


# --- slow: the whole matrix -----------------------------------------------------------------

def _every_model_cases():
    """Each family's representative at alpha 0.5 and 1.0; B1-B7 and Lite1-4 (the same code
    deeper and wider) at 1.0."""
    for name in list_models():
        for alpha in ([0.5, 1.0] if family_representative(name) else [1.0]):
            yield pytest.param(name, alpha, marks=[pytest.mark.slow, *memory_marks(name)],
                               id=f"{name}-{alpha}")


@pytest.mark.parametrize("name, alpha", list(_every_model_cases()))
def test_every_model_every_precision(name, alpha, tmp_path):
    """Every precision of every family representative at alpha 1.0, and its QAT int8 at 0.5
    too; the scaled EfficientNets (B1-B7, Lite1-4: B0's and Lite0's code, deeper and wider)
    float16, and QAT int8 for B1 and Lite1 only: their graphs are B0's and Lite0's ops in
    the same arrangement, and QAT of B5-B7 alone took 2-4 minutes each."""
    model, pixels = realistic(name, alpha=alpha)
    if family_representative(name):
        precisions = ("float32", "float16", "dynamic") if alpha == 1.0 else ()
    else:
        precisions = ("float16",)
    for precision in precisions:
        report = edgecnn.convert(model, tmp_path / f"{precision}.tflite", precision,
                                 validation_data=pixels)
        assert_close_to_keras(report, precision)
    if not family_representative(name) and name not in ("efficientnet_b1",
                                                        "efficientnet_lite1"):
        return
    # post-training int8 of every model: test_int8_whole_matrix.py
    qat = edgecnn.quantize_aware(model)
    calibrate_ranges(qat, pixels)
    assert_int8_whole(edgecnn.convert(qat, tmp_path / "qat.tflite", "int8"))


@pytest.mark.slow
@pytest.mark.parametrize("name", FAMILY_REPS)
def test_every_family_trained_int8_agrees(name, photos, tmp_path):
    """Trained on real digits at 64 px: the int8 model agrees with Keras; the same trained
    weights at 128 px convert whole too (every layer's weights are independent of the input
    size; every family at its default input: test_int8_whole_matrix.py)."""
    model = _check_trained_int8(name, tmp_path)
    for size in (128,):
        bigger = edgecnn.create_model(name, alpha=0.5, input_size=size, num_classes=10)
        bigger.set_weights(model.get_weights())
        # wholeness only: bias correction moves int32 biases, never a scale or an op
        assert_int8_whole(edgecnn.convert(bigger, tmp_path / f"{size}.tflite", "int8",
                                          representative_data=photos(size),
                                          bias_correction=False))
