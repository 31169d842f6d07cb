"""Published checkpoint layouts import exactly: edgecnn's outputs equal the upstream code's.

Each case under tests/data/upstream/ was made once by the upstream implementation itself
(torchvision, timm, Megvii's ShuffleNet-Series, EfficientNet-Lite-PyTorch, the TensorFlow
reference EfficientNets; see its README, tools/weights_fixtures/make_upstream_fixtures.py and
make_tf_reference_fixtures.py): a checkpoint in the upstream's own key
layout and file format, random weights with BatchNorm statistics of trained networks (some
variances tiny, so a wrong epsilon shows), and the upstream's logits on three inputs. No
test needs torch or the network.
"""
import json
import os

import numpy as np
import pytest

import edgecnn
from edgecnn import EdgecnnError
from edgecnn._keras import keras
from edgecnn.models.pretrained.importer import plan_import

DATA = os.path.join(os.path.dirname(__file__), "data", "upstream")

# case -> (edgecnn model, alpha, options the caller gives); the importer adds padding/layout
CASES = {
    "torchvision_mobilenet_v2": ("mobilenet_v2", 0.5, {}),
    "torchvision_mobilenet_v3_small": ("mobilenet_v3_small", 1.0, {}),
    "torchvision_efficientnet_b0": ("efficientnet_b0", 0.5, {}),
    "torchvision_shufflenet_v2": ("shufflenet_v2", 0.5, {}),
    "megvii_shufflenet_v2": ("shufflenet_v2", 0.5, {}),
    "megvii_shufflenet_v1": ("shufflenet", 0.5, {"groups": 3}),
    "timm_tf_efficientnet_lite0": ("efficientnet_lite0", 0.5, {}),
    "timm_tf_mobilenetv3_small": ("mobilenet_v3_small", 1.0, {}),
    "efficientnet_lite_pytorch_lite0": ("efficientnet_lite0", 0.5, {}),
    "tf_reference_efficientnet_lite0": ("efficientnet_lite0", 0.5, {}),
    "tf_reference_efficientnet_b0": ("efficientnet_b0", 0.5, {}),
}


def _case(name):
    folder = os.path.join(DATA, name)
    meta = json.load(open(os.path.join(folder, "meta.json")))
    return os.path.join(folder, meta["checkpoint"]), meta, np.load(os.path.join(folder, "io.npz"))


def logits_of(model, x):
    """Pre-softmax outputs: the last weighted layer (Dense or 1x1 conv) applied by hand."""
    last = [layer for layer in model.layers if layer.weights][-1]
    features = keras.Model(model.input, last.input).predict(x, verbose=0)
    kernel, bias = last.get_weights()
    return features.reshape(len(x), -1) @ kernel.reshape(-1, kernel.shape[-1]) + bias


@pytest.mark.parametrize("case", sorted(CASES))
def test_upstream_checkpoint_gives_upstream_outputs(case):
    path, meta, io = _case(case)
    name, alpha, options = CASES[case]
    plan = plan_import(path, name)
    assert plan.layout.name.split("_")[0] in case
    size = meta["input_size"][0]
    model = edgecnn.create_model(name, alpha=alpha, input_size=size, num_classes=10,
                                 **options, **plan.options)
    rows = plan.apply(model)
    assert all(row["layer"] for row in rows), "every tensor of the checkpoint is loaded"
    x = io["inputs"][..., ::-1] if plan.layout.bgr else io["inputs"]
    got = logits_of(model, np.ascontiguousarray(x))
    expected = io["logits"]
    scale = np.abs(expected).max()
    assert np.abs(got - expected).max() <= 1e-4 * max(1.0, scale), (
        np.abs(got - expected).max(), scale)
    assert np.abs(expected[0] - expected[1]).max() > 1e-2  # inputs give different outputs
    assert model.edgecnn.weights.startswith(plan.layout.name)


def test_wrong_padding_would_show():
    """The fixtures catch a padding mistake: the torchvision MobileNetV2 weights in a model
    built with TensorFlow's padding give different logits."""
    path, meta, io = _case("torchvision_mobilenet_v2")
    plan = plan_import(path, "mobilenet_v2")
    model = edgecnn.create_model("mobilenet_v2", alpha=0.5, input_size=64, num_classes=10)
    plan.apply(model)
    assert np.abs(logits_of(model, io["inputs"]) - io["logits"]).max() > 1e-2


def test_include_top_false_and_new_classifier():
    path, meta, io = _case("torchvision_shufflenet_v2")
    plan = plan_import(path, "shufflenet_v2")
    backbone = edgecnn.create_model("shufflenet_v2", alpha=0.5, input_size=64,
                                    include_top=False, **plan.options)
    rows = plan.apply(backbone)
    assert [r["upstream"] for r in rows if r["layer"] is None] == ["fc"]
    pooled = backbone.predict(io["inputs"], verbose=0).mean(axis=(1, 2))
    assert np.abs(pooled - io["features"]).max() <= 1e-4 * max(1, np.abs(io["features"]).max())
    # a 3-class model keeps its own classifier, everything else loaded
    model = edgecnn.create_model("shufflenet_v2", alpha=0.5, input_size=64, num_classes=3,
                                 **plan.options)
    rows = plan.apply(model)
    assert rows[-1]["layer"] is None and rows[-1]["upstream"] == "fc"


def test_checkpoint_for_another_family_is_refused():
    path, _, _ = _case("megvii_shufflenet_v1")
    with pytest.raises(EdgecnnError, match="fit shufflenet, not mobilenet_v2"):
        plan_import(path, "mobilenet_v2")


def test_checkpoint_for_another_width_is_refused():
    path, _, _ = _case("torchvision_mobilenet_v2")
    plan = plan_import(path, "mobilenet_v2")
    model = edgecnn.create_model("mobilenet_v2", alpha=1.0, input_size=64, num_classes=10,
                                 **plan.options)
    before = [w.copy() for w in model.get_weights()]
    with pytest.raises(EdgecnnError, match="different alpha"):
        plan.apply(model)
    assert all(np.array_equal(a, b) for a, b in zip(before, model.get_weights()))


def test_every_catalog_entry_names_a_layout_that_fits_its_model():
    from edgecnn.models.pretrained import catalog
    from edgecnn.models.pretrained.layouts import BY_NAME

    for entry in catalog.entries():
        if entry.layout != "keras":
            assert entry.layout in BY_NAME, entry
            assert BY_NAME[entry.layout].fits(entry.model), entry
            for key, value in BY_NAME[entry.layout].options.items():
                assert entry.options.get(key, value) == value, entry  # e.g. ShuffleNet layout


def test_create_model_takes_a_checkpoint_path_and_its_needs():
    """weights=PATH recognizes the layout and builds what the weights need (here torch
    padding and torchvision's ShuffleNet V2 layout); a contradicting option is an error."""
    path, meta, io = _case("torchvision_shufflenet_v2")
    model = edgecnn.create_model("shufflenet_v2", alpha=0.5, input_size=64, num_classes=10,
                                 weights=path)
    assert dict(model.edgecnn.options) == {"layout": "torchvision", "padding": "torch"}
    np.testing.assert_allclose(logits_of(model, io["inputs"]), io["logits"],
                               atol=1e-4 * max(1.0, np.abs(io["logits"]).max()))
    with pytest.raises(EdgecnnError, match="needs layout='torchvision', got layout='megvii'"):
        edgecnn.create_model("shufflenet_v2", alpha=0.5, input_size=64, num_classes=10,
                             weights=path, layout="megvii")


def test_tf_reference_checkpoint_by_directory_or_prefix():
    """A TensorFlow checkpoint is named by its folder (with its ``checkpoint`` file) or its
    prefix; the model-name scope of its variables is not part of the layout."""
    path, meta, io = _case("tf_reference_efficientnet_lite0")
    for weights in (os.path.dirname(path), path):
        model = edgecnn.create_model("efficientnet_lite0", alpha=0.5, input_size=64,
                                     num_classes=10, weights=weights)
        np.testing.assert_allclose(logits_of(model, io["inputs"]), io["logits"],
                                   atol=1e-4 * max(1.0, np.abs(io["logits"]).max()))
        assert model.edgecnn.preprocessing.mean == (127.0,) * 3
    plan = plan_import(path, "efficientnet_lite0")
    assert plan.modules[0].name == "stem.conv2d" and plan.modules[-1].name == "head.dense"
    assert plan.num_classes == 10


def test_timm_tf_ports_are_told_from_timm_by_name_or_config(tmp_path):
    """timm's TensorFlow ports and its own models share their keys but not their padding and
    epsilon: the file name (tf_...) or the hub's config.json beside it decides; without
    either the import refuses to guess."""
    import shutil

    path, _, _ = _case("timm_tf_efficientnet_lite0")
    hub = tmp_path / "hub"
    hub.mkdir()
    shutil.copy(path, hub / "model.safetensors")
    with pytest.raises(EdgecnnError, match="has the keys of timm_tf or timm"):
        plan_import(str(hub / "model.safetensors"), "efficientnet_lite0")
    (hub / "config.json").write_text(json.dumps({"architecture": "tf_efficientnet_lite0"}))
    assert plan_import(str(hub / "model.safetensors"), "efficientnet_lite0").layout.name == \
        "timm_tf"
    shutil.copy(path, tmp_path / "tf_efficientnet_lite0.safetensors")
    assert plan_import(str(tmp_path / "tf_efficientnet_lite0.safetensors"),
                       "efficientnet_lite0").layout.name == "timm_tf"
    assert plan_import(path, "efficientnet_lite0", layout="timm").layout.name == "timm"
