"""The library API's contract: arguments, errors, preprocessing, scaling rules."""
import numpy as np
import pytest

import edgecnn
from edgecnn import EdgecnnError
from edgecnn.models import get_model_spec, list_models
from edgecnn.models.scaling import make_divisible, round_channels, round_repeats


def test_list_models_names_the_mobilenets():
    assert {"mobilenet", "mobilenet_v2", "mobilenet_v3_large", "mobilenet_v3_small"} <= \
        set(list_models())


@pytest.mark.parametrize("name", list_models())
def test_every_model_declares_input_and_preprocessing(name):
    spec = get_model_spec(name)
    assert spec.default_input >= spec.min_input >= 32
    lo, hi = spec.preprocessing.output_range()
    assert lo < 0 < hi  # centred, not raw pixels
    pixels = np.array([[[0, 128, 255]]], np.uint8)
    assert spec.preprocessing.apply(pixels).dtype == np.float32


@pytest.mark.parametrize("kwargs,match", [
    ({"alpha": float("nan")}, "alpha must be a number > 0"),
    ({"alpha": "wide"}, "alpha must be a number > 0"),
    ({"input_size": 128, "rho": 0.5}, "not both"),
    ({"rho": -1}, "rho must be a number > 0"),
    ({"input_size": 31}, "at least 32"),
    ({"input_size": 100.5}, "whole number"),
    ({"num_classes": 0}, "num_classes must be"),
    ({"dropout": 1.5}, "dropout must be in"),
    ({"minimalistic": True}, "has no option minimalistic"),
])
def test_bad_arguments_raise_edgecnn_errors(kwargs, match):
    with pytest.raises(EdgecnnError, match=match):
        edgecnn.create_model("mobilenet_v2", **kwargs)


def test_unknown_model_suggests_close_names():
    with pytest.raises(EdgecnnError, match="did you mean mobilenet_v3_small"):
        edgecnn.create_model("mobilenet_v3_smal")


def test_include_top_false_returns_the_feature_map():
    model = edgecnn.create_model("mobilenet_v3_small", input_size=128, include_top=False)
    assert model.output_shape == (None, 4, 4, 576)


def test_dropout_defaults_follow_keras_and_can_be_overridden():
    rates = lambda m: [l.rate for l in m.layers if l.__class__.__name__ == "Dropout"]  # noqa: E731
    assert rates(edgecnn.create_model("mobilenet_v3_small", input_size=64)) == [0.2]
    assert rates(edgecnn.create_model("mobilenet", input_size=64)) == [1e-3]
    assert rates(edgecnn.create_model("mobilenet_v2", input_size=64)) == []
    assert rates(edgecnn.create_model("mobilenet_v2", input_size=64, dropout=0.3)) == [0.3]


def test_scaling_rules():
    assert make_divisible(32 * 0.35) == 16  # never below the divisor...
    assert make_divisible(12.8) == 16       # ...nor 10 % below the value
    assert make_divisible(1280 * 1.4) == 1792
    assert round_channels(64, 0.75, divisor=None) == 48  # V1 truncates
    assert round_channels(24, 0.5) == 16
    assert [round_repeats(n, 3.1) for n in (1, 2, 3, 4)] == [4, 7, 10, 13]


def test_odd_input_sizes_build_with_keras_padding():
    model = edgecnn.create_model("mobilenet_v2", input_size=225, num_classes=5)
    assert model.predict(np.zeros((1, 225, 225, 3), np.float32), verbose=0).shape == (1, 5)
