"""Read a published checkpoint's tensors as numpy arrays, whatever framework wrote it.

:func:`read_checkpoint` tells the format from the file's content, never its extension:

- ``torch-zip`` / ``torch-legacy``: ``torch.save`` files (``.pth``, ``.pt``, ``.pth.tar``,
  ``.bin``, ``.ckpt``), read by :mod:`.torch_pickle` with numpy only; their pickle may use
  nothing but the tensor and dict globals, anything else refuses the whole file unrun.
- ``safetensors``: through ``safetensors.numpy``, in the order of the data in the file.
- ``tf-checkpoint``: a TensorFlow checkpoint (its prefix, its ``.index`` or a data shard, or
  a directory with a ``checkpoint`` file), through ``tf.train.load_checkpoint``.
- ``keras-h5``: a ``save_weights`` file, as ``{"<layer>/<weight name>": array}``.

Training checkpoints often wrap the weights: a top-level dict with a ``state_dict``,
``model``, ``state_dict_ema``, ``model_ema`` or ``net`` entry (looked for in that order: the
plain weights before the EMA copy) that holds tensors is used, and ``nested_in`` names it.
Non-tensor entries (``epoch``, ...) are dropped; a ``module.`` prefix that every key carries
(``nn.DataParallel``) is stripped. bfloat16 tensors come back as float32.

Only numpy (and safetensors / h5py where the format needs them) is imported; TensorFlow only
for a TF checkpoint.
"""
from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field

import numpy as np

from edgecnn.errors import EdgecnnError, MissingExtraError
from edgecnn.models.pretrained import torch_pickle

ACCEPTED = (".pth/.pt/.pth.tar (PyTorch), .safetensors, a TF checkpoint, a keras .h5, or a "
            "classifier .tflite")
#: where training scripts keep the weights inside a checkpoint dict, in order of preference
NESTING_KEYS = ("state_dict", "model", "state_dict_ema", "model_ema", "net")
#: the key a checkpoint holding one bare tensor (``torch.save(tensor)``) gets
BARE_TENSOR_KEY = "tensor"

_HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
_ZIP_MAGICS = (b"PK\x03\x04", b"PK\x05\x06")
# a TF checkpoint .index is a leveldb-style table: its last 8 bytes are this magic
_TF_TABLE_MAGIC = (0xDB4775248B80FB57).to_bytes(8, "little")
_TF_SHARD = re.compile(r"\.data-\d{5}-of-\d{5}$")
_EMA_SUFFIX = "/ExponentialMovingAverage"
_TF2_SUFFIX = "/.ATTRIBUTES/VARIABLE_VALUE"
# TF1 optimizer slot variables end in these; beta powers and step counters stand alone
_TF_SLOTS = {"Momentum", "RMSProp", "RMSProp_1", "Adam", "Adam_1", "Adagrad", "Ftrl",
             "Ftrl_1", "Adadelta", "Adadelta_1", "LARSOptimizer", "Nadam", "Nadam_1"}
_TF_SKIP = {"global_step", "beta1_power", "beta2_power", "save_counter",
            "_CHECKPOINTABLE_OBJECT_GRAPH"}


@dataclass
class Checkpoint:
    """The tensors of one checkpoint file, numpy arrays in file order."""

    path: str
    format: str  # "torch-zip" | "torch-legacy" | "safetensors" | "tf-checkpoint" | "keras-h5"
    #            # | "tflite"
    tensors: dict[str, np.ndarray] = field(default_factory=dict)
    nested_in: str | None = None  # the key the weights were found under, if any
    ops: list | None = None  # a .tflite: its weighted ops (tflite_weights.read_tflite_ops)
    input_shape: list | None = None  # a .tflite: its input's shape


def read_checkpoint(path: str) -> Checkpoint:
    """Every tensor of the checkpoint at ``path`` (format detected from the content).

    Raises :class:`EdgecnnError` with a one-line message for a missing, empty, truncated or
    foreign file, and for a PyTorch pickle that would call anything but tensor builders.
    """
    path = os.fspath(path)
    from .tflite_weights import is_tflite, read_tflite_ops

    if os.path.isfile(path) and is_tflite(path):
        ops, shape = read_tflite_ops(path)
        return Checkpoint(path, "tflite", ops=ops, input_shape=shape)
    tf_prefix = _tf_prefix(path)
    if tf_prefix is not None:
        return Checkpoint(path, "tf-checkpoint", _read_tf(path, tf_prefix))
    fmt = _detect(path)
    if fmt in ("torch-zip", "torch-legacy"):
        try:
            tensors, nested_in = _torch_tensors(path, torch_pickle.load(path, fmt))
        except torch_pickle.NotTorchArchive as exc:
            raise _bad(path, f"is not a PyTorch checkpoint ({exc})") from None
        except torch_pickle.DamagedFile as exc:
            kind = "zip" if fmt == "torch-zip" else "legacy"
            raise _bad(path, f"is a damaged or truncated PyTorch file ({kind} format: {exc})") from None
        return Checkpoint(path, fmt, tensors, nested_in)
    if fmt == "safetensors":
        return Checkpoint(path, fmt, _read_safetensors(path))
    return Checkpoint(path, fmt, _read_h5(path))


def _bad(path: str, what: str) -> EdgecnnError:
    return EdgecnnError(f"checkpoint {path} {what}; a checkpoint is {ACCEPTED}")


# --- detection -----------------------------------------------------------------------

def _tf_prefix(path: str) -> str | None:
    """The TF checkpoint prefix ``path`` names (prefix, .index, data shard, directory)."""
    if os.path.isdir(path):
        if os.path.isfile(os.path.join(path, "checkpoint")):
            return _latest_tf_checkpoint(path)
        indexes = sorted(n for n in os.listdir(path) if n.endswith(".index"))
        if len(indexes) == 1:
            return os.path.join(path, indexes[0][:-len(".index")])
        raise _bad(path, "is a directory without a TF 'checkpoint' file or a single .index")
    if not os.path.exists(path) and os.path.isfile(path + ".index"):
        return path
    if path.endswith(".index") and _is_tf_index(path):
        return path[:-len(".index")]
    shard = _TF_SHARD.search(path)
    if shard and os.path.isfile(path[:shard.start()] + ".index"):
        return path[:shard.start()]
    return None


def _latest_tf_checkpoint(directory: str) -> str:
    """The prefix the ``checkpoint`` file names (its model_checkpoint_path line); a path
    of the machine that trained it (absolute, elsewhere) is looked for beside the file."""
    with open(os.path.join(directory, "checkpoint"), encoding="utf-8", errors="replace") as f:
        match = re.search(r'^model_checkpoint_path:\s*"(.*)"', f.read(), re.MULTILINE)
    if not match:
        raise _bad(directory, "has a 'checkpoint' file that names no model_checkpoint_path")
    prefix = os.path.join(directory, match.group(1))
    moved = os.path.join(directory, os.path.basename(match.group(1)))
    return moved if not os.path.isfile(prefix + ".index") and os.path.isfile(
        moved + ".index") else prefix


def _is_tf_index(path: str) -> bool:
    with open(path, "rb") as f:
        f.seek(0, os.SEEK_END)
        if f.tell() < 48:
            return False
        f.seek(-8, os.SEEK_END)
        return f.read(8) == _TF_TABLE_MAGIC


def _detect(path: str) -> str:
    if not os.path.exists(path):
        raise _bad(path, "does not exist")
    if not os.path.isfile(path):
        raise _bad(path, "is not a regular file")
    size = os.path.getsize(path)
    if size == 0:
        raise _bad(path, "is empty")
    with open(path, "rb") as f:
        head = f.read(512)
    if head.startswith(_ZIP_MAGICS):
        return "torch-zip"
    if head.startswith(_HDF5_MAGIC):
        return "keras-h5"
    if head[:1] == b"\x80" and len(head) > 1 and 2 <= head[1] <= 5:  # a pickle's PROTO
        return "torch-legacy"
    if _looks_like_safetensors(head, size):
        return "safetensors"
    raise _bad(path, f"is not a checkpoint ({_describe(head)})")


def _looks_like_safetensors(head: bytes, size: int) -> bool:
    """An 8-byte little-endian header length, then a JSON object of that length."""
    if len(head) < 10:
        return False
    length = int.from_bytes(head[:8], "little")
    return 2 <= length <= size - 8 and head[8:9] == b"{"


def _describe(head: bytes) -> str:
    if head.startswith(b"\xff\xd8\xff"):
        return "it is a JPEG image"
    if head.startswith(b"\x89PNG"):
        return "it is a PNG image"
    if head.startswith(b"\x1f\x8b"):
        return "it is gzip-compressed: unpack it first"
    if head[257:262] == b"ustar":
        return "it is a tar archive (torch < 0.4 wrote those; they are not read)"
    try:
        head.decode("utf-8")
        return "it is a text file"
    except UnicodeDecodeError:
        return "its first bytes match no accepted format"


# --- PyTorch -------------------------------------------------------------------------

def _torch_tensors(path: str, obj: object) -> tuple[dict[str, np.ndarray], str | None]:
    if isinstance(obj, torch_pickle.TensorRef):
        return {BARE_TENSOR_KEY: torch_pickle.materialize(obj)}, None
    if not isinstance(obj, dict):
        raise _bad(path, f"holds a {type(obj).__name__}, not a dict of tensors")
    weights, nested_in = _weights_dict(obj)
    if weights is None:
        keys = ", ".join(map(str, list(obj)[:8]))
        raise _bad(path, f"holds no tensors at its top level nor under "
                         f"{'/'.join(NESTING_KEYS)} (its keys: {keys})")
    tensors = {str(k): torch_pickle.materialize(v) for k, v in weights.items()
               if isinstance(v, torch_pickle.TensorRef)}
    return _strip_module_prefix(tensors), nested_in


def _holds_tensors(value: object) -> bool:
    return isinstance(value, dict) and any(
        isinstance(v, torch_pickle.TensorRef) for v in value.values())


def _weights_dict(obj: dict) -> tuple[dict | None, str | None]:
    for key in NESTING_KEYS:
        if _holds_tensors(obj.get(key)):
            return obj[key], key
    if _holds_tensors(obj):
        return obj, None
    return None, None


def _strip_module_prefix(tensors: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """DataParallel saves every key as ``module.<key>``: drop that prefix when all share it."""
    prefix = "module."
    if tensors and all(k.startswith(prefix) for k in tensors):
        return {k[len(prefix):]: v for k, v in tensors.items()}
    return tensors


# --- safetensors ---------------------------------------------------------------------

def _read_safetensors(path: str) -> dict[str, np.ndarray]:
    try:
        from safetensors.numpy import load_file
    except ImportError:
        raise MissingExtraError("reading a .safetensors checkpoint", missing="safetensors") from None
    try:
        header = _safetensors_header(path)
        # load_file has no bfloat16 for numpy: such files are converted through the header
        if any(meta.get("dtype") == "BF16" for meta in header.values()):
            loaded = _safetensors_raw(path, header)
        else:
            loaded = load_file(path)
        order = sorted(header, key=lambda k: header[k]["data_offsets"][0])
        return {k: loaded[k] for k in order}
    except EdgecnnError:
        raise
    except Exception as exc:  # safetensors' own errors (SafetensorError, ValueError, ...)
        raise _bad(path, f"is a damaged .safetensors file ({torch_pickle.first_line(exc)})") from None


def _safetensors_header(path: str) -> dict[str, dict]:
    """The header's tensor entries (name -> dtype, shape, data_offsets), metadata dropped."""
    with open(path, "rb") as f:
        length = int.from_bytes(f.read(8), "little")
        header = json.loads(f.read(length))
    header.pop("__metadata__", None)
    return header


_SAFETENSORS_DTYPES = {"F64": "<f8", "F32": "<f4", "F16": "<f2", "BF16": "<u2", "I64": "<i8",
                       "I32": "<i4", "I16": "<i2", "I8": "i1", "U8": "u1", "BOOL": "?",
                       "U16": "<u2", "U32": "<u4", "U64": "<u8"}


def _safetensors_raw(path: str, header: dict[str, dict]) -> dict[str, np.ndarray]:
    """The tensors read straight from the file (numpy has no bfloat16: it becomes float32)."""
    with open(path, "rb") as f:
        f.seek(8 + int.from_bytes(f.read(8), "little"))
        data = f.read()
    out = {}
    for name, meta in header.items():
        begin, end = meta["data_offsets"]
        dtype = np.dtype(_SAFETENSORS_DTYPES[meta["dtype"]])
        raw = data[begin:end]
        count = int(np.prod(meta["shape"], dtype=np.int64))
        if end > len(data) or len(raw) != count * dtype.itemsize:
            raise _bad(path, f"is a truncated .safetensors file (tensor {name} ends past its data)")
        array = np.frombuffer(raw, dtype=dtype).reshape(meta["shape"]).astype(dtype.newbyteorder("="))
        if meta["dtype"] == "BF16":
            array = (array.astype(np.uint32) << 16).view(np.float32)
        out[name] = array
    return out


# --- TensorFlow checkpoint -----------------------------------------------------------

def _read_tf(path: str, prefix: str) -> dict[str, np.ndarray]:
    """Model variables by name, sorted (the index's order); EMA shadows replace their variable.

    Skipped: optimizer slots (TF1 ``<var>/Momentum`` & co., TF2 ``.OPTIMIZER_SLOT`` and
    ``optimizer/...``), ``global_step``, ``save_counter``, the object graph. TF2 names lose
    their ``/.ATTRIBUTES/VARIABLE_VALUE`` suffix. When ``<var>/ExponentialMovingAverage``
    exists its value is returned as ``<var>`` (the averaged weights are the ones to deploy).
    """
    try:
        import tensorflow as tf
    except ImportError as exc:
        raise MissingExtraError("reading a TF checkpoint", missing=exc.name) from None
    try:
        reader = tf.train.load_checkpoint(prefix)
        names = sorted(reader.get_variable_to_shape_map())
        kept = [n for n in names if _tf_model_variable(n)]
        values = {n: np.asarray(reader.get_tensor(n)) for n in kept}
    except Exception as exc:  # tf.errors.*: NotFound, DataLoss, ...
        raise _bad(path, f"is not a readable TF checkpoint ({torch_pickle.first_line(exc)})") from None
    tensors: dict[str, np.ndarray] = {}
    for name in kept:
        if name.endswith(_EMA_SUFFIX):
            continue
        shadow = name + _EMA_SUFFIX
        tensors[_tf_name(name)] = values[shadow] if shadow in values else values[name]
    for name in kept:  # a shadow whose plain variable is absent keeps the plain name too
        plain = name[:-len(_EMA_SUFFIX)] if name.endswith(_EMA_SUFFIX) else None
        if plain is not None and plain not in values:
            tensors[_tf_name(plain)] = values[name]
    return tensors


def _tf_model_variable(name: str) -> bool:
    parts = name.split("/")
    if name in _TF_SKIP or parts[0] in _TF_SKIP or parts[-1] in _TF_SLOTS:
        return False
    if ".OPTIMIZER_SLOT" in parts or parts[0] == "optimizer":
        return False
    return not (parts[0].endswith("_power") or parts[-1].startswith("_CHECKPOINTABLE"))


def _tf_name(name: str) -> str:
    return name[:-len(_TF2_SUFFIX)] if name.endswith(_TF2_SUFFIX) else name


# --- keras .h5 -----------------------------------------------------------------------

def _read_h5(path: str) -> dict[str, np.ndarray]:
    """``{"<layer>/<weight name>": array}`` in the file's layer and weight order."""
    try:
        import h5py
    except ImportError:
        raise MissingExtraError("reading a keras .h5 checkpoint", missing="h5py") from None
    try:
        with h5py.File(path, "r") as f:
            group = f["model_weights"] if "model_weights" in f else f
            tensors = {}
            for layer in _h5_names(group.attrs.get("layer_names", [])):
                for weight in _h5_names(group[layer].attrs.get("weight_names", [])):
                    tensors[f"{layer}/{weight}"] = np.asarray(group[layer][weight][()])
            return tensors
    except Exception as exc:  # OSError for a damaged file, KeyError for a missing group
        raise _bad(path, f"is not a readable keras .h5 weights file ({torch_pickle.first_line(exc)})") from None


def _h5_names(raw) -> list[str]:
    return [n.decode() if isinstance(n, bytes) else str(n) for n in raw]
