"""Saving and loading Keras models with their build record (edgecnn.models.io), and the card
type every reader uses (edgecnn.runtime.card)."""
import json
import zipfile

import numpy as np
import pytest

from edgecnn.errors import EdgecnnError


def test_saved_model_keeps_its_build_record(tmp_path):
    from edgecnn import create_model, quantize_aware
    from edgecnn.jobs.evaluate import input_preprocessing
    from edgecnn.models.io import load_model, save_model

    model = create_model("mobilenet_v3_small", alpha=0.35, input_size=32, num_classes=4,
                         minimalistic=True)
    for suffix in (".keras", ".h5"):
        path = tmp_path / f"m{suffix}"
        save_model(model, path)
        loaded = load_model(str(path))
        assert loaded.edgecnn == model.edgecnn  # family, multipliers, options, preprocessing
        assert input_preprocessing(loaded, str(path)) == model.edgecnn.preprocessing
        x = np.random.default_rng(0).uniform(-1, 1, (2, 32, 32, 3)).astype(np.float32)
        np.testing.assert_allclose(loaded(x).numpy(), model(x).numpy(), atol=1e-6)
    assert not list(tmp_path.glob(".model-*"))  # no temporary file left behind
    qat = quantize_aware(model)
    assert qat.edgecnn.params == model.count_params() and qat.edgecnn.unquantized == ()


def test_a_plain_keras_save_needs_a_card_beside_it(tmp_path):
    from edgecnn import create_model
    from edgecnn.jobs.evaluate import input_preprocessing
    from edgecnn.models.io import load_model

    model = create_model("mobilenet", alpha=0.25, input_size=32, num_classes=3)
    path = tmp_path / "plain.keras"
    model.save(path)  # no build record: the name alone is not trusted
    loaded = load_model(str(path))
    assert getattr(loaded, "edgecnn", None) is None
    with pytest.raises(EdgecnnError, match="save_model"):
        input_preprocessing(loaded, str(path))
    (tmp_path / "plain.json").write_text(json.dumps(
        {"preprocessing": {"mean": [127.5] * 3, "std": [127.5] * 3}}))
    assert input_preprocessing(loaded, str(path)).mean == (127.5,) * 3
    with zipfile.ZipFile(path, "a") as archive:  # a damaged record is ignored, not a crash
        archive.writestr("edgecnn.json", "{not json")
    assert getattr(load_model(str(path)), "edgecnn", None) is None


@pytest.mark.device
def test_card_round_trips_unknown_keys_and_feeds_pixels():
    from edgecnn.runtime.card import ModelCard

    raw = {"precision": "int8", "io_dtype": "int8", "model": {"name": "x", "future": 1},
           "input": {"shape": [1, 2, 2, 3], "dtype": "int8", "scale": 1.0, "zero_point": -128,
                     "normalization_folded": None},
           "output": {"shape": [1, 5], "dtype": "int8"},
           "preprocessing": {"inside_model": True, "description": "d"},
           "labels": None, "newer_field": {"a": 1}}
    card = ModelCard.from_dict(raw)
    assert card.to_dict() == raw and list(card.to_dict()) == list(raw)
    assert card.model.name == "x" and card.output.classes == 5
    pixels = np.array([[[[0, 128, 255]] * 2] * 2])
    assert card.pixels_to_input(pixels).tolist() == (pixels - 128).tolist()
    outside = ModelCard.from_dict({**raw, "input": {**raw["input"], "dtype": "float32"},
                                   "preprocessing": {"inside_model": False,
                                                     "mean": [127.5], "std": [127.5]}})
    assert np.allclose(outside.pixels_to_input(pixels), pixels / 127.5 - 1, atol=1e-6)
    with pytest.raises(EdgecnnError, match="no preprocessing"):
        ModelCard.from_dict({**raw, "preprocessing": {}}).pixels_to_input(pixels)
