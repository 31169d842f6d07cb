"""Generic tests, parametrized over every registered model (and family options)."""
import re

import numpy as np
import pytest

import edgecnn
from edgecnn._keras import keras
from conftest import family_representative
from edgecnn.models import get_model_spec, list_models

CONFIGS = [(name, {}) for name in list_models()] + [
    (name, {"minimalistic": True}) for name in list_models()
    if "minimalistic" in get_model_spec(name).options]
PARAMS = [pytest.param(c, marks=() if family_representative(c[0]) else pytest.mark.slow)
          for c in CONFIGS]
SIZE, CLASSES = 64, 7
AUTO_NAME = re.compile(r"^(conv2d|dense|batch_normalization|depthwise_conv2d|separable_conv2d)"
                       r"(_\d+)?$")


# Scaled EfficientNets are B0's and Lite0's blocks, wider and deeper: their two slowest
# checks (a .keras round trip, tfmot's quantize_model) run on B1 and Lite1 as well as the reps
SCALED_SKIPPED = re.compile(r"efficientnet_(b[2-7]|lite[2-4])$")


def _heavy_check(name):
    if SCALED_SKIPPED.search(name):
        pytest.skip("same blocks as efficientnet_b1/lite1, only wider and deeper")


def _id(config):
    name, opts = config
    return name + "".join(f"-{k}" for k, v in opts.items() if v)


@pytest.fixture(scope="module", params=PARAMS, ids=_id)
def built(request):
    name, opts = request.param
    model = edgecnn.create_model(name, input_size=SIZE, num_classes=CLASSES, **opts)
    x = np.random.default_rng(1).uniform(-1, 1, (2, SIZE, SIZE, 3)).astype("float32")
    return name, model, x


def test_forward_gives_class_probabilities(built):
    _, model, x = built
    y = model.predict(x, verbose=0)
    assert y.shape == (2, CLASSES)
    np.testing.assert_allclose(y.sum(axis=1), 1.0, rtol=1e-5)


def test_standard_layers_only(built):
    """No TFOpLambda (raw tensor arithmetic) and no preprocessing layer inside a network."""
    _, model, _ = built
    kinds = {type(layer).__name__ for layer in model.layers}
    assert not kinds & {"TFOpLambda", "SlicingOpLambda", "Lambda", "Rescaling", "Normalization"}


def test_weighted_layers_have_meaningful_unique_names(built):
    _, model, _ = built
    names = [layer.name for layer in model.layers]
    assert len(names) == len(set(names))
    auto = [layer.name for layer in model.layers if layer.weights and AUTO_NAME.match(layer.name)]
    assert auto == []


def test_config_round_trip(built):
    _, model, x = built
    clone = keras.Model.from_config(model.get_config())
    clone.set_weights(model.get_weights())
    np.testing.assert_allclose(clone.predict(x, verbose=0), model.predict(x, verbose=0),
                               atol=1e-6)


def test_keras_format_round_trip(built, tmp_path):
    name, model, x = built
    _heavy_check(name)
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    assert [type(layer).__name__ for layer in loaded.layers] == \
        [type(layer).__name__ for layer in model.layers]
    np.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0),
                               atol=1e-6)


def test_plain_tfmot_quantize_model_wraps_every_layer(built):
    """tfmot's own quantize_model works on every edgecnn model (it fails on
    keras.applications' MobileNetV3) and leaves no compute layer unquantized."""
    import tensorflow_model_optimization as tfmot

    name, model, x = built
    _heavy_check(name)
    qat = tfmot.quantization.keras.quantize_model(model)
    wrapped = {layer.layer.name for layer in qat.layers if hasattr(layer, "quantize_config")}
    compute = {layer.name for layer in model.layers
               if isinstance(layer, (keras.layers.Conv2D, keras.layers.Dense))
               or type(layer).__name__ in ("HardSwish", "HardSigmoid", "ReLU", "Add", "Multiply")}
    # Conv/BN/ReLU are folded by tfmot into one wrapped conv; BN and ReLU right after a
    # conv are not wrapped on their own, so only check the layers that must be.
    must = {n for n in compute if not n.endswith(("relu", "/act", "_act", "Relu"))}
    assert must - wrapped == set()
    assert qat.predict(x, verbose=0).shape == (2, CLASSES)
