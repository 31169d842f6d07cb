"""keras.applications weight files load into edgecnn models by layer name, offline."""
import os

import numpy as np
import pytest
from conftest import calibrate_batchnorm, randomize_weights

import edgecnn
from edgecnn import EdgecnnError
from edgecnn._keras import keras
from edgecnn.models import get_model_spec

SIZE = 96


def _keras_model(ctor, alpha, include_top=True, minimalistic=None, size=SIZE):
    kwargs = dict(alpha=alpha, weights=None, include_top=include_top, input_shape=(size, size, 3))
    if minimalistic is not None:
        kwargs.update(minimalistic=minimalistic, include_preprocessing=False)
    return getattr(keras.applications, ctor)(**kwargs)


# name, keras constructor, alpha, options, keras-side preprocessing of 0-255 pixels
CASES = [
    ("mobilenet", "MobileNet", 0.5, {}, keras.applications.mobilenet.preprocess_input),
    ("mobilenet_v2", "MobileNetV2", 0.35, {}, keras.applications.mobilenet_v2.preprocess_input),
    ("mobilenet_v2", "MobileNetV2", 1.3, {}, keras.applications.mobilenet_v2.preprocess_input),
    # keras' MobileNetV3 is built without its Rescaling layer, so it takes [-1, 1] too
    ("mobilenet_v3_large", "MobileNetV3Large", 1.0, {"minimalistic": False},
     lambda x: x / 127.5 - 1.0),
    ("mobilenet_v3_small", "MobileNetV3Small", 0.75, {"minimalistic": False},
     lambda x: x / 127.5 - 1.0),
    ("mobilenet_v3_small", "MobileNetV3Small", 1.0, {"minimalistic": True},
     lambda x: x / 127.5 - 1.0),
]


@pytest.mark.parametrize("name,ctor,alpha,options,keras_pre", CASES,
                         ids=[f"{c[0]}-{c[2]}{'-min' if c[3].get('minimalistic') else ''}"
                              for c in CASES])
def test_keras_weights_file_gives_same_outputs(name, ctor, alpha, options, keras_pre, photos,
                                               tmp_path):
    pixels = photos(SIZE).astype("float32")
    reference = randomize_weights(_keras_model(ctor, alpha, minimalistic=options.get(
        "minimalistic") if options else None))
    calibrate_batchnorm(reference, keras_pre(pixels.copy()))
    path = str(tmp_path / "weights.h5")
    reference.save_weights(path)
    ours = edgecnn.create_model(name, alpha=alpha, input_size=SIZE, weights=path, **options)
    expected = reference.predict(keras_pre(pixels.copy()), verbose=0)
    got = ours.predict(get_model_spec(name).preprocessing.apply(pixels), verbose=0)
    assert np.abs(got - expected).max() <= 1e-4
    # The random weights must make the outputs differ between images, or equality is moot.
    assert np.abs(expected[0] - expected[1]).max() > 1e-3

    # The same file also loads into the network without its classifier.
    features = edgecnn.create_model(name, alpha=alpha, input_size=SIZE, include_top=False,
                                    weights=path, **options)
    reference_features = _keras_model(ctor, alpha, include_top=False, minimalistic=options.get(
        "minimalistic") if options else None)
    reference_features.load_weights(path, by_name=True)
    np.testing.assert_allclose(
        features.predict(get_model_spec(name).preprocessing.apply(pixels), verbose=0),
        reference_features.predict(keras_pre(pixels.copy()), verbose=0), rtol=1e-3, atol=1e-3)


def test_weights_of_another_alpha_are_refused(tmp_path):
    path = str(tmp_path / "w.h5")
    _keras_model("MobileNetV2", 0.5).save_weights(path)
    with pytest.raises(EdgecnnError, match="do not fit"):
        edgecnn.create_model("mobilenet_v2", alpha=0.75, input_size=SIZE, weights=path)


def test_weights_of_another_network_are_refused(tmp_path):
    path = str(tmp_path / "w.h5")
    _keras_model("MobileNet", 0.5).save_weights(path)
    with pytest.raises(EdgecnnError, match="has no weights for layers"):
        edgecnn.create_model("mobilenet_v2", alpha=0.5, input_size=SIZE, weights=path)


def test_missing_or_corrupt_weights_file(tmp_path):
    with pytest.raises(EdgecnnError, match="does not exist"):
        edgecnn.create_model("mobilenet", input_size=SIZE, weights=str(tmp_path / "nope.h5"))
    bad = tmp_path / "bad.h5"
    bad.write_bytes(b"not hdf5")
    with pytest.raises(EdgecnnError, match="not an HDF5"):
        edgecnn.create_model("mobilenet", input_size=SIZE, weights=str(bad))


def _cache_file_for(monkeypatch, tmp_path, name, **config):
    """Where weights="imagenet" looks for ``name``'s keras.applications file, in a fresh
    cache (the file a user's first online run would have downloaded)."""
    from edgecnn.models.pretrained import catalog, download

    monkeypatch.setenv("EDGECNN_CACHE", str(tmp_path / "cache"))
    entry = catalog.resolve(name, **config)
    assert entry.source == "keras.applications"
    path = download.cache_path(entry)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    return path


def test_imagenet_weights_come_from_the_cache(tmp_path, monkeypatch, photos):
    """weights="imagenet" (and the default "auto") load keras.applications' file for the
    configuration from edgecnn's cache, offline, by layer name."""
    pixels = photos(96).astype("float32")
    reference = randomize_weights(_keras_model("MobileNetV2", 0.35, size=96))
    calibrate_batchnorm(reference, keras.applications.mobilenet_v2.preprocess_input(pixels.copy()))
    path = _cache_file_for(monkeypatch, tmp_path, "mobilenet_v2", alpha=0.35, resolution=96)
    assert os.path.basename(path) == "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_0.35_96.h5"
    reference.save_weights(path)
    expected = reference.predict(keras.applications.mobilenet_v2.preprocess_input(pixels.copy()),
                                 verbose=0)
    for weights in ("imagenet", "auto"):
        ours = edgecnn.create_model("mobilenet_v2", alpha=0.35, input_size=96, weights=weights)
        got = ours.predict(get_model_spec("mobilenet_v2").preprocessing.apply(pixels), verbose=0)
        assert np.abs(got - expected).max() <= 1e-4
        assert ours.edgecnn.weights == "imagenet:keras.applications"
    # auto with 10 classes: the pretrained network under a new (random) classifier
    ten = edgecnn.create_model("mobilenet_v2", alpha=0.35, input_size=96, num_classes=10)
    np.testing.assert_array_equal(ten.get_layer("Conv1").get_weights()[0],
                                  reference.get_layer("Conv1").get_weights()[0])
    assert ten.output_shape == (None, 10)


def test_imagenet_offline_names_the_url_and_the_cache_file(tmp_path, monkeypatch):
    path = _cache_file_for(monkeypatch, tmp_path, "mobilenet_v3_small", resolution=224)
    with pytest.raises(EdgecnnError) as err:
        edgecnn.create_model("mobilenet_v3_small", weights="imagenet")
    message = str(err.value)
    assert "cannot download https://storage.googleapis.com/" in message
    assert path in message and "\n" not in message
    # auto: one warning saying the same, and random weights recorded as such
    with pytest.warns(edgecnn.EdgecnnWarning, match="starts from random weights"):
        model = edgecnn.create_model("mobilenet_v3_small", input_size=96)
    assert model.edgecnn.weights == "random"
    assert edgecnn.create_model("mobilenet_v3_small", input_size=96,
                                weights="none").edgecnn.weights is None


def test_imagenet_needs_1000_classes():
    with pytest.raises(EdgecnnError, match="1000 classes"):
        edgecnn.create_model("mobilenet", num_classes=10, weights="imagenet")
