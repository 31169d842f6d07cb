import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
if os.environ.get("PYTEST_XDIST_WORKER"):
    # one TensorFlow thread per xdist worker: the workers already use every core
    os.environ.setdefault("TF_NUM_INTRAOP_THREADS", "1")
    os.environ.setdefault("TF_NUM_INTEROP_THREADS", "1")

import atexit  # noqa: E402
import re  # noqa: E402
import shutil  # noqa: E402
import tempfile  # noqa: E402

# No test ever downloads: pretrained weights come from a per-session cache that starts empty
# (tests of the download path serve files from 127.0.0.1 and lift EDGECNN_OFFLINE themselves).
os.environ.setdefault("EDGECNN_OFFLINE", "1")
if "EDGECNN_CACHE" not in os.environ:
    os.environ["EDGECNN_CACHE"] = tempfile.mkdtemp(prefix="edgecnn-test-cache-")
    atexit.register(shutil.rmtree, os.environ["EDGECNN_CACHE"], True)

import numpy as np  # noqa: E402
import pytest  # noqa: E402

#: On the device run (``make test-arm64``: the light install on aarch64, no TensorFlow) the
#: tests marked ``device`` read their models and data from this folder, made beforehand with
#: TensorFlow by ``tests/device_fixtures.py``; elsewhere the fixtures build them.
DEVICE_FIXTURES = os.environ.get("EDGECNN_DEVICE_FIXTURES")


def device_fixture(name: str) -> str:
    """The path of a made-beforehand fixture in ``EDGECNN_DEVICE_FIXTURES``."""
    path = os.path.join(DEVICE_FIXTURES, name)
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path} is missing: make it with python "
                                f"tests/device_fixtures.py {DEVICE_FIXTURES}")
    return path

# The larger EfficientNets (B1-B7, Lite1-4) share B0's and Lite0's code: the default run
# tests one network per family, the slow run (-m slow) all of them.
_SAME_CODE_AS_A_REP = re.compile(r"efficientnet_(b[1-7]|lite[1-4])$")


def family_representative(name: str) -> bool:
    return not _SAME_CODE_AS_A_REP.search(name)


def sample_photo_path() -> str:
    """A real photograph that ships inside matplotlib (Grace Hopper, 512x600 RGB)."""
    if DEVICE_FIXTURES:
        return device_fixture("grace_hopper.jpg")
    import matplotlib

    return os.path.join(matplotlib.get_data_path(), "sample_data", "grace_hopper.jpg")


def _sample_photo():
    from PIL import Image

    return Image.open(sample_photo_path()).convert("RGB")


@pytest.fixture(scope="session")
def photos():
    """``photos(size)`` -> uint8 array (4, size, size, 3) of real image crops, 0-255 RGB."""
    from PIL import Image

    image = _sample_photo()
    w, h = image.size
    crops = [image.crop((0, 0, w, w)), image.crop((0, h - w, w, h)),
             image.crop((w // 4, h // 4, w // 4 + w // 2, h // 4 + w // 2)),
             image.transpose(Image.Transpose.FLIP_LEFT_RIGHT).crop((0, 40, w, 40 + w))]

    def make(size):
        return np.stack([np.asarray(c.resize((size, size), Image.BILINEAR)) for c in crops])

    return make


@pytest.fixture(scope="session")
def tiny_int8_tflite(tmp_path_factory):
    """The cheapest real edgecnn model: a MobileNet (alpha 0.25, 32 px, 10 classes) converted
    once per session by edgecnn.convert to int8 (uint8 io, model card embedded). Read it,
    never write it: tests share it."""
    if DEVICE_FIXTURES:
        return device_fixture("tiny_int8.tflite")
    return make_tiny_int8(tmp_path_factory.mktemp("tiny_int8") / "tiny_int8.tflite")


def make_tiny_int8(path) -> str:
    import edgecnn
    from edgecnn.data import synthetic_images

    model = edgecnn.create_model("mobilenet", alpha=0.25, input_size=32, num_classes=10)
    edgecnn.convert(model, str(path), "int8", representative_data=synthetic_images(8, 32))
    return str(path)


def randomize_weights(model, seed=0, logit_gain=30.0):
    """Give every weight of a keras model random, well-scaled values (BatchNorm statistics
    included), so that outputs depend on every weight being where it belongs. The last
    weighted layer (the classifier) is scaled by ``logit_gain`` so that the softmax is far
    from uniform and comparing probabilities means something."""
    rng = np.random.default_rng(seed)
    weighted = [layer for layer in model.layers if layer.weights]
    for layer in model.layers:
        values = []
        for w in layer.weights:
            name, shape = w.name, tuple(w.shape)
            if "moving_variance" in name or "gamma" in name:
                values.append(rng.uniform(0.5, 1.5, shape))
            elif "moving_mean" in name or "beta" in name or "bias" in name:
                values.append(rng.normal(0.0, 0.1, shape))
            else:
                fan_in = int(np.prod(shape[:-1])) if len(shape) > 1 else 1
                if "depthwise" in name:
                    fan_in = int(np.prod(shape[:2]))
                values.append(rng.normal(0.0, 1.0 / np.sqrt(max(fan_in, 1)), shape))
        if values:
            if weighted and layer is weighted[-1]:
                values = [v * logit_gain for v in values]
            layer.set_weights([v.astype(np.float32) for v in values])
    return model


def calibrate_batchnorm(model, inputs):
    """Set every BatchNorm's moving statistics to the batch statistics of ``inputs`` (one
    training-mode pass with momentum 0), so random networks keep the image's signal to the
    end instead of collapsing to a constant: output comparisons then test every layer."""
    from edgecnn._keras import keras

    bns = [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]
    saved = [bn.momentum for bn in bns]
    for bn in bns:
        bn.momentum = 0.0
    model(np.asarray(inputs, np.float32), training=True)
    for bn, momentum in zip(bns, saved):
        bn.momentum = momentum
    return model


def write_digit_folder(root, limit: int, classes: int = 3, size: int = 48):
    """A real labelled image folder: the first ``classes`` digits of ``limit`` built-in
    digits as PNG files, one sub-folder ``digit_K`` per class. Returns ``root``."""
    from PIL import Image

    images, labels = digits(size, limit)
    for index, (image, label) in enumerate(zip(images, labels)):
        if label < classes:
            folder = root / f"digit_{label}"
            folder.mkdir(exist_ok=True)
            Image.fromarray(image).save(folder / f"{index}.png")
    return root


#: the digit sizes and count the device tests read (tests/device_fixtures.py stores them)
DEVICE_DIGITS = {"sizes": (32, 48, 64), "limit": 500}


def digits(size: int, limit: int) -> tuple:
    """The first ``limit`` built-in digits (scikit-learn's) at ``size`` px: images, labels."""
    if DEVICE_FIXTURES:
        with np.load(device_fixture(f"digits_{size}.npz")) as stored:
            if limit > len(stored["labels"]):
                raise ValueError(f"device fixtures hold {len(stored['labels'])} digits")
            return stored["images"][:limit], stored["labels"][:limit]
    from edgecnn.data.digits import load_digits

    data = load_digits(size, limit=limit)
    return data.images, data.labels


@pytest.fixture(autouse=True)
def _release_keras_after_slow_tests(request):
    """Slow tests build big networks one after another in the same xdist worker: free each
    test's Keras graphs afterwards (a worker reached 14 GB and was OOM-killed on the
    EfficientNet-B7 cell of the int8 matrix)."""
    yield
    if request.node.get_closest_marker("slow") is not None:
        import gc

        from edgecnn._keras import keras

        keras.backend.clear_session()
        gc.collect()


#: single tests of about four minutes each (``make test-slow --durations``, 2026-11-30):
#: started last, one of them alone made the run's last four minutes
LONG_TESTS = ("test_defaults_learn_a_folder_of_small_digit_images",
              "test_mirrored_fine_tuning_from_a_pytorch_checkpoint_exports_the_same_network")


def pytest_collection_modifyitems(config, items):
    """Longest work first, so that the other xdist worker fills in beside it instead of
    idling at the end: the tests of an xdist group (a group runs on one worker, one test
    after the other: the multi-process training tests, about 9 minutes together), then the
    LONG_TESTS, then the rest in collection order (``make test-slow``: 48:44 with the group
    last, 46+ with it first and the digit-folder training last, measured 2026-11-30)."""
    def rank(item):
        if item.get_closest_marker("xdist_group"):
            return 0
        return 1 if item.originalname in LONG_TESTS else 2

    items.sort(key=rank)  # stable: collection order within each rank


#: The networks whose graphs take several GB to build and convert: their slow tests run in one
#: xdist group (``make test-slow`` uses ``--dist loadgroup``), one at a time, so that two of
#: them never share the machine's memory (two at once took an xdist worker down).
LARGE_MODELS = ("efficientnet_b5", "efficientnet_b6", "efficientnet_b7")


def memory_marks(name: str) -> list:
    return [pytest.mark.xdist_group("large_models")] if name in LARGE_MODELS else []
