"""PyTorch checkpoints (``torch.save``) read with numpy only: no torch, nothing executed.

A ``torch.save`` file is a pickle whose tensors point at raw storages kept beside it:

- zip format (torch >= 1.6): ``<name>/data.pkl`` plus one ``<name>/data/<key>`` record a
  storage, ``<name>/byteorder`` and a few bookkeeping records (``<name>`` is the archive
  name torch chose, e.g. the file's stem or ``archive``). Persistent ids are
  ``('storage', storage_type, key, location, numel)``.
- legacy format: four pickles in a row (magic number, protocol version, sys info, the object
  with persistent ids ``('storage', storage_type, root_key, location, numel, view_metadata)``),
  then the pickled list of storage keys, then each storage's bytes preceded by its element
  count (8 bytes, little-endian).

The pickle is read by :class:`RestrictedUnpickler`, whose ``find_class`` knows only the
globals a tensor or a dict needs and hands back numpy stand-ins for them; any other global
is refused before the pickle can call it. Tensors come back as :class:`TensorRef` (storage,
offset, shape, strides), turned into numpy arrays by :meth:`TensorRef.numpy` only for the
entries a caller keeps.
"""
from __future__ import annotations

import collections
import io
import operator
import pickle
import zipfile
from dataclasses import dataclass
from typing import Any, BinaryIO, Callable

import numpy as np

from edgecnn.errors import EdgecnnError

#: torch.save's legacy-format magic number (the first pickle of the file)
LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
LEGACY_PROTOCOL = 1001
BFLOAT16 = "bfloat16"

#: typed storage class name -> numpy dtype (little-endian), bfloat16 kept as raw uint16 bits
STORAGE_DTYPES: dict[str, str] = {
    "FloatStorage": "<f4", "DoubleStorage": "<f8", "HalfStorage": "<f2",
    "BFloat16Storage": BFLOAT16, "LongStorage": "<i8", "IntStorage": "<i4",
    "ShortStorage": "<i2", "CharStorage": "i1", "ByteStorage": "u1", "BoolStorage": "?",
    "UntypedStorage": "u1",
}


class _Corrupt(Exception):
    """The file's structure is not what torch writes (cut short, damaged, hand-made)."""


class DamagedFile(EdgecnnError):
    """A PyTorch file whose structure is broken; the message is the detail (one line)."""


class NotTorchArchive(DamagedFile):
    """A sound zip archive that ``torch.save`` did not write (no ``<name>/data.pkl``)."""


@dataclass(frozen=True)
class StorageType:
    """Stand-in for ``torch.FloatStorage`` & co.: only its element type matters."""

    name: str

    @property
    def raw_dtype(self) -> np.dtype:
        dtype = STORAGE_DTYPES[self.name]
        return np.dtype("<u2" if dtype == BFLOAT16 else dtype)

    @property
    def bfloat16(self) -> bool:
        return STORAGE_DTYPES[self.name] == BFLOAT16


class Storage:
    """A flat run of elements of one dtype; the bytes may arrive after the pickle (legacy)."""

    def __init__(self, kind: StorageType, numel: int, big_endian: bool = False):
        self.kind = kind
        self.numel = _count(numel)
        self._big_endian = big_endian
        self._array: np.ndarray | None = None

    def fill(self, raw: bytes) -> None:
        dtype = self.kind.raw_dtype
        if len(raw) < self.numel * dtype.itemsize:
            raise _Corrupt(f"a storage has {len(raw)} bytes, {self.numel * dtype.itemsize} "
                           f"expected")
        if self._big_endian:
            dtype = dtype.newbyteorder(">")
        array = np.frombuffer(raw, dtype=dtype, count=self.numel)
        self._array = array.astype(array.dtype.newbyteorder("="))

    def array(self) -> np.ndarray:
        if self._array is None:  # legacy: the storage key list did not name it
            raise _Corrupt("a storage's bytes are missing")
        return self._array


class StorageView(Storage):
    """A legacy storage view: ``numel`` elements of ``root`` from element ``offset`` on."""

    def __init__(self, root: Storage, offset: int, numel: int):
        super().__init__(root.kind, numel)
        self.root, self.offset = root, _count(offset)

    def array(self) -> np.ndarray:
        whole = self.root.array()
        if self.offset + self.numel > whole.size:
            raise _Corrupt("a storage view reaches past its storage")
        return whole[self.offset:self.offset + self.numel]


@dataclass
class TensorRef:
    """A tensor as pickled: a window (offset, shape, strides in elements) on a storage."""

    storage: Storage
    offset: int
    shape: tuple[int, ...]
    strides: tuple[int, ...]

    def numpy(self) -> np.ndarray:
        """A fresh array (its own memory, C order); bfloat16 becomes float32."""
        if not isinstance(self.storage, Storage):
            raise _Corrupt("a tensor's storage is not a storage")
        flat = self.storage.array()
        shape = tuple(_count(n) for n in self.shape)
        strides = tuple(_count(s) for s in self.strides)
        offset = _count(self.offset)
        if len(shape) != len(strides):
            raise _Corrupt("a tensor's shape and strides differ in length")
        # as_strided does no bounds check: the last element reached must lie in the storage
        if 0 not in shape and offset + sum((n - 1) * s for n, s in zip(shape, strides)) >= flat.size:
            raise _Corrupt("a tensor reaches past the end of its storage")
        item = flat.dtype.itemsize
        window = np.lib.stride_tricks.as_strided(
            flat[offset:] if 0 not in shape else flat[:0], shape=shape,
            strides=tuple(s * item for s in strides), writeable=False)
        array = np.array(window, order="C")
        if self.storage.kind.bfloat16:
            array = (array.astype(np.uint32) << 16).view(np.float32)
        return array


def _count(value: Any) -> int:
    number = operator.index(value)
    if number < 0:
        raise _Corrupt(f"negative size, stride or offset {number}")
    return number


# --- stand-ins for the torch globals a weights pickle calls -----------------------------

def _rebuild_tensor(storage, storage_offset, size, stride) -> TensorRef:
    return TensorRef(storage, storage_offset, tuple(size), tuple(stride))


def _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad=False,
                       backward_hooks=None, metadata=None) -> TensorRef:
    return _rebuild_tensor(storage, storage_offset, size, stride)


def _rebuild_parameter(data, requires_grad=True, backward_hooks=None):
    return data


def _rebuild_parameter_with_state(data, requires_grad=True, backward_hooks=None, state=None):
    return data


def _size(*args) -> tuple:
    return tuple(*args)


ALLOWED: dict[tuple[str, str], Any] = {
    ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor_v2,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("torch._utils", "_rebuild_parameter_with_state"): _rebuild_parameter_with_state,
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("torch", "Size"): _size,
    # torch 2.x pickles a bare UntypedStorage as torch.storage.UntypedStorage
    ("torch.storage", "UntypedStorage"): StorageType("UntypedStorage"),
    **{("torch", name): StorageType(name) for name in STORAGE_DTYPES},
}


class RestrictedUnpickler(pickle.Unpickler):
    """Unpickles tensors and dicts only; ``storage_for`` maps a persistent id to a Storage."""

    def __init__(self, file: BinaryIO, source: str,
                 storage_for: Callable[[tuple], Storage] | None = None):
        super().__init__(file, encoding="utf-8")  # as torch.load: Python 2 strings as text
        self._source = source
        self._storage_for = storage_for

    def find_class(self, module: str, name: str) -> Any:
        # Every global a pickle uses (GLOBAL, STACK_GLOBAL, INST, OBJ, EXT*) comes through
        # here, before anything can call it: refusing here means nothing foreign runs.
        try:
            found = ALLOWED[(module, name)]
        except (KeyError, TypeError):
            raise EdgecnnError(
                f"checkpoint {self._source} is not a plain weights file: its pickle calls "
                f"{module}.{name}, which edgecnn refuses to run (only tensors and dicts are "
                f"read; a checkpoint that also pickles other objects is refused whole)") from None
        # a fresh object each time: a pickle's BUILD can set attributes on what it got here,
        # and must not change the shared stand-ins for the next file
        if isinstance(found, StorageType):
            return StorageType(found.name)
        if isinstance(found, type):  # OrderedDict: a builtin type's attributes are read-only
            return found
        return lambda *args, **kwargs: found(*args, **kwargs)

    def persistent_load(self, pid: Any) -> Any:
        if self._storage_for is None:
            raise _Corrupt("a persistent id outside the object pickle")
        if not isinstance(pid, tuple) or not pid:
            raise _Corrupt(f"persistent id {pid!r} is not a tuple")
        kind = pid[0].decode("ascii") if isinstance(pid[0], bytes) else pid[0]
        if kind != "storage":
            raise _Corrupt(f"persistent id of kind {kind!r} (torch writes only 'storage' "
                           f"for tensors; 'module' means a whole pickled nn.Module)")
        return self._storage_for(pid[1:])


def _storage_type(value: Any) -> StorageType:
    if not isinstance(value, StorageType):
        raise _Corrupt(f"storage type {value!r} is not a torch storage class")
    return value


def _key(value: Any) -> str:
    return value.decode("ascii") if isinstance(value, bytes) else str(value)


# --- zip format ----------------------------------------------------------------------

def _archive_prefix(archive: zipfile.ZipFile) -> str:
    pickles = [n for n in archive.namelist() if n.endswith("data.pkl") and n.count("/") <= 1]
    if len(pickles) != 1:
        raise NotTorchArchive("a zip archive without one <name>/data.pkl, which torch.save writes")
    return pickles[0][:-len("data.pkl")]


def _load_zip(path: str) -> Any:
    with zipfile.ZipFile(path) as archive:
        prefix = _archive_prefix(archive)
        names = set(archive.namelist())
        big = (prefix + "byteorder" in names
               and archive.read(prefix + "byteorder").strip() == b"big")
        storages: dict[str, Storage] = {}

        def storage_for(data: tuple) -> Storage:
            if len(data) != 4:
                raise _Corrupt(f"a storage id with {len(data)} fields, 4 expected")
            kind, key, _location, numel = data
            key = _key(key)
            if key not in storages:
                record = f"{prefix}data/{key}"
                if record not in names:
                    raise _Corrupt(f"storage record {record} is missing")
                storages[key] = Storage(_storage_type(kind), numel, big)
                # read now, while the archive is open (a storage is read once, when first used)
                storages[key].fill(archive.read(record))
            return storages[key]

        with archive.open(prefix + "data.pkl") as f:
            return RestrictedUnpickler(io.BytesIO(f.read()), path, storage_for).load()


# --- legacy format -------------------------------------------------------------------

def _load_legacy(path: str) -> Any:
    with open(path, "rb") as f:
        if RestrictedUnpickler(f, path).load() != LEGACY_MAGIC:
            raise _Corrupt("a pickle that does not start with torch's magic number")
        if RestrictedUnpickler(f, path).load() != LEGACY_PROTOCOL:
            raise _Corrupt("an unknown legacy protocol version")
        sys_info = RestrictedUnpickler(f, path).load()
        big = isinstance(sys_info, dict) and sys_info.get("little_endian") is False
        roots: dict[str, Storage] = {}
        views: dict[str, Storage] = {}

        def storage_for(data: tuple) -> Storage:
            if len(data) != 5:
                raise _Corrupt(f"a storage id with {len(data)} fields, 5 expected")
            kind, root_key, _location, numel, view = data
            root_key = _key(root_key)
            if root_key not in roots:
                roots[root_key] = Storage(_storage_type(kind), numel, big)
            if view is None:
                return roots[root_key]
            view_key, offset, view_numel = view
            return views.setdefault(_key(view_key),
                                    StorageView(roots[root_key], offset, view_numel))

        result = RestrictedUnpickler(f, path, storage_for).load()
        for key in RestrictedUnpickler(f, path).load():
            _read_legacy_storage(f, roots.get(_key(key)))
        return result


def _read_legacy_storage(f: BinaryIO, storage: Storage | None) -> None:
    if storage is None:
        raise _Corrupt("the storage key list names a storage no tensor uses")
    head = f.read(8)
    if len(head) < 8:
        raise _Corrupt("the file ends before a storage's size")
    numel = int.from_bytes(head, "little", signed=True)
    if numel != storage.numel:
        raise _Corrupt(f"a storage holds {numel} elements, its tensor says {storage.numel}")
    nbytes = numel * storage.kind.raw_dtype.itemsize
    here = f.tell()
    # a count past the end of the file is damage: do not let read() allocate it first
    if nbytes > f.seek(0, io.SEEK_END) - here:
        raise _Corrupt(f"the file ends inside a storage of {nbytes} bytes")
    f.seek(here)
    storage.fill(f.read(nbytes))


# --- entry point ---------------------------------------------------------------------

def load(path: str, fmt: str) -> Any:
    """The object a ``torch.save`` file holds, tensors as :class:`TensorRef`.

    ``fmt`` is ``"torch-zip"`` or ``"torch-legacy"``. A refused global raises
    :class:`EdgecnnError` naming it; a damaged or truncated file raises :class:`DamagedFile`.
    """
    reader = _load_zip if fmt == "torch-zip" else _load_legacy
    try:
        return reader(path)
    except EdgecnnError:
        raise
    except (_Corrupt, zipfile.BadZipFile, EOFError, pickle.UnpicklingError) as exc:
        raise DamagedFile(first_line(exc)) from None
    except Exception as exc:  # any other surprise inside a hand-made pickle: still one line
        raise DamagedFile(f"{type(exc).__name__}: {first_line(exc)}") from None


def materialize(ref: TensorRef) -> np.ndarray:
    """``ref.numpy()``, a broken tensor (hand-made strides, ...) raising DamagedFile."""
    try:
        return ref.numpy()
    except Exception as exc:
        raise DamagedFile(f"a tensor cannot be built ({first_line(exc)})") from None


def first_line(exc: BaseException) -> str:
    """An exception's message as one line (its type's name when it has none)."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
