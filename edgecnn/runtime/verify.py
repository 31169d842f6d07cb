"""Checking a .tflite before anything reads it (pure Python: no numpy, no TensorFlow).

A .tflite is a flatbuffer: tables, vectors and strings reached through offsets stored in the
file. The flatbuffers package and LiteRT's schema classes follow those offsets unchecked, so
a truncated or damaged file ends in a ``struct.error`` in Python, or in LiteRT's C++.
``verify_model`` checks every table, vtable, vector and string that edgecnn and LiteRT's
loader read against the file's bounds, returns the model as plain Python values, then
checks what the interpreter assumes without always verifying it: indices in range,
constant data as large as its shape, finite quantization scales, UTF-8 names. Cost:
linear in the number of tables, not in the size of the weights (a 17 MB model: ~20 ms).
``parse_card`` checks the model card (JSON in the metadata) for the types its readers use.
What LiteRT's kernels assume beyond this is tried in a child process (``sandbox``).
"""
from __future__ import annotations

import json
import math
import struct

from ..errors import EdgecnnError

# The parts of LiteRT's schema (tensorflow/compiler/mlir/lite/schema/schema.fbs) that are
# read: per table, its fields in id order as (name, kind). A kind is a struct format
# character (a scalar), "str", "[x]" (a vector of scalars x; "[B]" is kept as a
# (start, length) span of bytes), "[Table]", "Table", or a dict: a union whose type is the
# previous field, table name by type ("" or a missing type: checked as a table only).
SCHEMA = {
    "Model": (("version", "I"), ("operator_codes", "[OperatorCode]"),
              ("subgraphs", "[SubGraph]"), ("description", "str"), ("buffers", "[Buffer]"),
              ("metadata_buffer", "[i]"), ("metadata", "[Metadata]"),
              ("signature_defs", "[SignatureDef]"),
              ("external_buffer_groups", "[ExternalBufferGroup]"),
              ("external_buffers", "[ExternalBuffer]")),
    "OperatorCode": (("deprecated_builtin_code", "b"), ("custom_code", "str"), ("version", "i"),
                     ("builtin_code", "i")),
    "SubGraph": (("tensors", "[Tensor]"), ("inputs", "[i]"), ("outputs", "[i]"),
                 ("operators", "[Operator]"), ("name", "str"), ("debug_metadata_index", "i")),
    "Tensor": (("shape", "[i]"), ("type", "b"), ("buffer", "I"), ("name", "str"),
               ("quantization", "QuantizationParameters"), ("is_variable", "B"),
               ("sparsity", "SparsityParameters"), ("shape_signature", "[i]"),
               ("has_rank", "B"), ("variant_tensors", "[VariantSubType]"),
               ("external_buffer", "I")),
    "QuantizationParameters": (("min", "[f]"), ("max", "[f]"), ("scale", "[f]"),
                               ("zero_point", "[q]"), ("details_type", "B"),
                               ("details", {1: "CustomQuantization",
                                            2: "BlockwiseQuantization"}),
                               ("quantized_dimension", "i")),
    "CustomQuantization": (("custom", "[B]"),),
    "BlockwiseQuantization": (("scales", "i"), ("zero_points", "i"), ("block_size", "i"),
                              ("block_shape", "[i]")),
    "SparsityParameters": (("traversal_order", "[i]"), ("block_map", "[i]"),
                           ("dim_metadata", "[DimensionMetadata]")),
    "DimensionMetadata": (("format", "b"), ("dense_size", "i"), ("array_segments_type", "B"),
                          ("array_segments", {1: "Int32Vector", 2: "Uint16Vector",
                                              3: "Uint8Vector"}),
                          ("array_indices_type", "B"),
                          ("array_indices", {1: "Int32Vector", 2: "Uint16Vector",
                                             3: "Uint8Vector"})),
    "Int32Vector": (("values", "[i]"),),
    "Uint16Vector": (("values", "[H]"),),
    "Uint8Vector": (("values", "[B]"),),
    "VariantSubType": (("shape", "[i]"), ("type", "b"), ("has_rank", "B")),
    "Operator": (("opcode_index", "I"), ("inputs", "[i]"), ("outputs", "[i]"),
                 ("builtin_options_type", "B"), ("builtin_options", {}),
                 ("custom_options", "[B]"), ("custom_options_format", "b"),
                 ("mutating_variable_inputs", "[B]"), ("intermediates", "[i]"),
                 ("large_custom_options_offset", "Q"), ("large_custom_options_size", "Q"),
                 ("builtin_options_2_type", "B"), ("builtin_options_2", {}),
                 ("debug_metadata_index", "i")),
    "Buffer": (("data", "[B]"), ("offset", "Q"), ("size", "Q")),
    "Metadata": (("name", "str"), ("buffer", "I")),
    "SignatureDef": (("inputs", "[TensorMap]"), ("outputs", "[TensorMap]"),
                     ("signature_key", "str"), ("deprecated_tag", "str"),
                     ("subgraph_index", "I")),
    "TensorMap": (("name", "str"), ("tensor_index", "I")),
    "ExternalBufferGroup": (("name", "str"),),
    "ExternalBuffer": (("id", "I"), ("group", "I"), ("offset", "Q"), ("length", "Q"),
                       ("packing", "str")),
    "": (),  # a union member edgecnn does not read (operator options): bounds only
}

# TensorType -> bits per element (schema.fbs); STRING, RESOURCE, VARIANT have no fixed size.
TENSOR_BITS = {0: 32, 1: 16, 2: 32, 3: 8, 4: 64, 6: 8, 7: 16, 8: 64, 9: 8, 10: 64, 11: 128,
               12: 64, 15: 32, 16: 16, 17: 4, 18: 16, 19: 2, 20: 4, 21: 8, 22: 8}
MAX_TABLES = 1_000_000  # as flatbuffers' C++ verifier: bounds the work on a hostile file
HINT = "re-copy it or convert it again with edgecnn convert"
# What a file that is not a .tflite is, by its first bytes.
MAGIC = ((b"\x89PNG", "a PNG image"), (b"\xff\xd8\xff", "a JPEG image"),
         (b"GIF8", "a GIF image"), (b"\x89HDF\r\n\x1a\n", "an HDF5 file (Keras .h5?)"),
         (b"PK\x03\x04", "a zip archive (a .keras model?)"), (b"\x7fELF", "an executable"))


class _Invalid(Exception):
    """What is wrong, and the file size it would take when the file is too short."""

    def __init__(self, reason: str, needed: int | None = None):
        super().__init__(reason)
        self.needed = needed


class _Reader:
    """Bounds-checked reads of a flatbuffer; tables and vectors parsed once per position."""

    def __init__(self, data: bytes, schema: dict | None = None):
        self.schema = SCHEMA if schema is None else schema
        self.data = memoryview(data)
        self.size = len(data)
        self.cache: dict = {}
        self.tables = 0
        self.elements = 0

    def need(self, pos: int, length: int, what: str) -> None:
        if pos < 0:
            raise _Invalid(f"{what} points before the start of the file")
        if pos + length > self.size:
            raise _Invalid(f"{what} at byte {pos:,} ends past the end", pos + length)

    def scalar(self, fmt: str, pos: int, what: str):
        self.need(pos, struct.calcsize(fmt), what)
        return struct.unpack_from("<" + fmt, self.data, pos)[0]

    def deref(self, pos: int, what: str) -> int:
        offset = self.scalar("I", pos, what)
        if offset == 0 or offset >= 2**31:
            raise _Invalid(f"{what} at byte {pos:,} has the invalid offset {offset}")
        return pos + offset

    def vector(self, pos: int, item: int, what: str) -> int:
        count = self.scalar("I", pos, what)
        self.need(pos + 4, count * item, what)
        return count

    def string(self, pos: int, what: str) -> str:
        count = self.vector(pos, 1, what)
        self.need(pos + 4, count + 1, what)
        if self.data[pos + 4 + count] != 0:
            raise _Invalid(f"{what} at byte {pos:,} is not terminated")
        try:  # LiteRT's Python side decodes names: a damaged one would raise there
            return str(self.data[pos + 4:pos + 4 + count], "utf-8")
        except UnicodeDecodeError:
            raise _Invalid(f"{what} at byte {pos:,} is not UTF-8 text") from None

    def scalars(self, pos: int, fmt: str, what: str):
        if fmt == "B":  # bytes (weights, custom options): where they are, not a copy
            return pos + 4, self.vector(pos, 1, what)
        size = struct.calcsize(fmt)
        count = self.vector(pos, size, what)
        self.elements += count
        if self.elements * size > 2 * self.size + 2**20:  # vectors shared beyond reason
            raise _Invalid(f"{what} at byte {pos:,}: the vectors overlap without end")
        return struct.unpack_from(f"<{count}{fmt}", self.data, pos + 4)

    def table(self, pos: int, name: str, what: str) -> dict:
        key = (pos, name)
        if key in self.cache:
            return self.cache[key]
        self.tables += 1
        if self.tables > MAX_TABLES:
            raise _Invalid(f"more than {MAX_TABLES:,} tables")
        vtable = pos - self.scalar("i", pos, what)
        vsize = self.scalar("H", vtable, f"the vtable of {what}")
        if vsize < 4 or vsize % 2:
            raise _Invalid(f"the vtable of {what} at byte {vtable:,} has the invalid size "
                           f"{vsize}")
        self.need(vtable, vsize, f"the vtable of {what}")
        slots = (vsize - 4) // 2
        offsets = struct.unpack_from(f"<{slots}H", self.data, vtable + 4)
        out = {}
        fields = self.schema[name]
        for index, (field, kind) in enumerate(fields):
            at = offsets[index] if index < slots else 0
            where = f"{what}.{field}"
            if isinstance(kind, dict):  # a union: the previous field is its member's type
                member = out[fields[index - 1][0]]
                out[field] = self.table(self.deref(pos + at, where), kind.get(member, ""),
                                        where) if at and member else None
            elif len(kind) == 1:
                out[field] = self.scalar(kind, pos + at, where) if at else 0
            else:
                out[field] = self.reference(pos + at, kind, where) if at else None
        for index in range(len(fields), slots):  # fields of a newer schema: in bounds
            if offsets[index]:
                self.need(pos + offsets[index], 1, f"{what} field {index}")
        self.cache[key] = out
        return out

    def reference(self, pos: int, kind: str, what: str):
        """A string, vector or table field at ``pos`` (its offset)."""
        target = self.deref(pos, what)
        if kind == "str":
            return self.string(target, what)
        if kind.startswith("[") and len(kind) == 3:
            return self.scalars(target, kind[1], what)
        if kind.startswith("["):
            count = self.vector(target, 4, what)
            return [self.table(self.deref(target + 4 + 4 * i, f"{what}[{i}]"), kind[1:-1],
                               f"{what}[{i}]") for i in range(count)]
        return self.table(target, kind, what)


def _kind_of(data: bytes) -> str:
    for magic, kind in MAGIC:
        if data.startswith(magic):
            return kind
    text = data[:4096].decode("utf-8", "replace")
    if "\x00" not in text and sum(c.isprintable() or c.isspace() for c in text) > 0.95 * len(text):
        return "a text file"
    return "no TFL3 identifier"


def _index(value, count: int, what: str, allow_none: bool = False) -> None:
    if not (0 <= value < count or (allow_none and value == -1)):
        raise _Invalid(f"{what} is {value}, out of range (the model has {count})")


def _check_tensor(tensor: dict, buffers: list, what: str) -> None:
    _index(tensor["buffer"], len(buffers), f"the buffer of {what}")
    shape = tensor["shape"] or ()
    quant = tensor["quantization"] or {}
    scale, zero_point = quant.get("scale"), quant.get("zero_point")
    if scale and zero_point and len(scale) != len(zero_point):
        raise _Invalid(f"{what} has {len(scale)} scales and {len(zero_point)} zero points")
    if scale and not all(0 <= x < math.inf for x in scale):  # NaN fails both
        raise _Invalid(f"{what} has a negative, infinite or NaN quantization scale")
    if scale and len(scale) > 1:
        axis = quant["quantized_dimension"]
        if not 0 <= axis < len(shape) or shape[axis] != len(scale):
            raise _Invalid(f"{what} has {len(scale)} scales for dimension {axis} of its "
                           f"shape {list(shape)}")
    data = buffers[tensor["buffer"]]
    stored = data["data"][1] if data["data"] else 0
    if data["offset"] > 1:
        stored = data["size"]
    bits = TENSOR_BITS.get(tensor["type"])
    if stored and bits and tensor["sparsity"] is None and all(d >= 0 for d in shape):
        needed = math.ceil(math.prod(shape) * bits / 8)
        if stored < needed:
            raise _Invalid(f"{what} has {stored:,} bytes of data, its shape {list(shape)} "
                           f"needs {needed:,}")


def _check_graph(model: dict, size: int) -> None:
    """Indices the interpreter and edgecnn follow: every one in range."""
    buffers = model["buffers"] or []
    for i, buffer in enumerate(buffers):
        if buffer["offset"] > 1 and buffer["offset"] + buffer["size"] > size:
            raise _Invalid(f"buffer {i} lies past the end of the file",
                           buffer["offset"] + buffer["size"])
    for i, meta in enumerate(model["metadata"] or []):
        _index(meta["buffer"], len(buffers), f"the buffer of metadata {i}")
    for i, index in enumerate(model["metadata_buffer"] or ()):
        _index(index, len(buffers), f"metadata buffer {i}")
    graphs = model["subgraphs"] or []
    if not graphs or not graphs[0]["inputs"] or not graphs[0]["outputs"]:
        raise _Invalid("its main subgraph is missing or has no inputs or outputs")
    codes = len(model["operator_codes"] or [])
    for g, graph in enumerate(graphs):
        tensors = graph["tensors"] or []
        for t, tensor in enumerate(tensors):
            _check_tensor(tensor, buffers, f"tensor {t} of subgraph {g}")
        for key in ("inputs", "outputs"):
            for index in graph[key] or ():
                _index(index, len(tensors), f"an {key[:-1]} of subgraph {g}")
        for o, op in enumerate(graph["operators"] or []):
            what = f"operator {o} of subgraph {g}"
            _index(op["opcode_index"], codes, f"the opcode of {what}")
            for key in ("inputs", "outputs", "intermediates"):
                for index in op[key] or ():
                    _index(index, len(tensors), f"a tensor of {what}", allow_none=True)
    for s, signature in enumerate(model["signature_defs"] or []):
        _index(signature["subgraph_index"], len(graphs), f"the subgraph of signature {s}")
        tensors = graphs[signature["subgraph_index"]]["tensors"] or []
        for entry in (signature["inputs"] or []) + (signature["outputs"] or []):
            _index(entry["tensor_index"], len(tensors), f"a tensor of signature {s}")


def verify_model(data: bytes, name: str = "the model") -> dict:
    """The model of a .tflite's bytes as plain values (tables as dicts, ``[ubyte]`` vectors
    as (start, length) spans into ``data``), once every part is checked; else an
    EdgecnnError naming ``name``, what is wrong, and what to do."""
    if not data:
        raise EdgecnnError(f"{name} is empty (0 bytes), not a TFLite model; {HINT}")
    if len(data) < 8 or data[4:8] != b"TFL3":
        kind = f"only {len(data)} bytes" if len(data) < 8 else _kind_of(bytes(data[:4096]))
        raise EdgecnnError(f"{name} is not a TFLite model ({kind}); give a .tflite file "
                           f"written by a TFLite converter")
    reader = _Reader(data)
    try:
        model = reader.table(reader.deref(0, "the root offset"), "Model", "the model")
        _check_graph(model, len(data))
    except _Invalid as exc:
        reason = str(exc)
        if exc.needed is not None:
            reason = (f"truncated: the file is {len(data):,} bytes, its flatbuffer needs at "
                      f"least {exc.needed:,}")
        raise EdgecnnError(f"{name}: not a valid .tflite ({reason}); {HINT}") from None
    return model


# --- the model card (JSON in the metadata buffer "edgecnn") ------------------------------

NUMBER = (int, float)
SCALAR = (str, int, float)
# The card keys readers use and their types (the writer: converters.convert's
# ConversionReport). A dict is a nested record; [type] a list of it ([type, n]: at least n
# items); "!" marks what every card has; any other key may be missing or null.
CARD = {
    "precision!": str, "io_dtype": str, "qat": bool, "params": int, "macs": int,
    "size_bytes": int, "all_int8": bool, "xnnpack_partitions": int,
    "conversion_seconds": NUMBER, "labels": [SCALAR], "warnings": [str], "versions": dict,
    "ops": dict, "float_ops": dict, "ops_outside_xnnpack": dict, "folds": dict,
    "input!": {"shape!": [int, 1], "dtype!": str, "scale": NUMBER, "zero_point": int},
    "output!": {"shape!": [int, 1], "dtype!": str, "scale": NUMBER, "zero_point": int},
    "model": {"name": str, "alpha": NUMBER, "resolution": int},
    "preprocessing": {"inside_model": bool, "mean": [NUMBER], "std": [NUMBER],
                      "description": str},
    "agreement": {"top1_agreement!": NUMBER, "mean_abs_prob_error!": NUMBER,
                  "samples!": int},
    "accuracy": {"keras_top1!": NUMBER, "tflite_top1!": NUMBER, "samples!": int},
    "calibration": {"source": str, "samples": int},
}


def _card_error(value, spec, where: str) -> str | None:
    """What in ``value`` does not have the type ``spec`` says, or None."""
    if isinstance(spec, dict):
        if not isinstance(value, dict):
            return f"{where} is not an object"
        for key, sub in spec.items():
            field = key.rstrip("!")
            if value.get(field) is None:
                if key.endswith("!"):
                    return f"{where} has no {field!r}"
                continue
            problem = _card_error(value[field], sub, f"{where}.{field}")
            if problem:
                return problem
        return None
    if isinstance(spec, list):  # [type], or [type, minimum length]
        minimum = spec[1] if len(spec) > 1 else 0
        if not isinstance(value, list) or len(value) < minimum:
            return f"{where} is not a list" + (f" of at least {minimum}" if minimum else "")
        return next((p for i, item in enumerate(value)
                     if (p := _card_error(item, spec[0], f"{where}[{i}]"))), None)
    types = spec if isinstance(spec, tuple) else (spec,)
    if isinstance(value, bool) and bool not in types or not isinstance(value, types):
        return f"{where} is {type(value).__name__}, not {' or '.join(t.__name__ for t in types)}"
    return None


def parse_card(raw: bytes, name: str = "the model") -> dict:
    """The model card in ``raw`` (UTF-8 JSON), checked for the types its readers use."""
    try:
        card = json.loads(bytes(raw).decode("utf-8"))
    except UnicodeDecodeError:
        problem = "it is not UTF-8 text"
    except (ValueError, RecursionError) as exc:
        problem = f"it is not valid JSON: {str(exc).splitlines()[0][:80]}"
    else:
        problem = _card_error(card, CARD, "the card")
    if problem:
        raise EdgecnnError(f'{name}: its edgecnn model card (metadata "edgecnn") is damaged '
                           f'({problem}); {HINT}')
    return card
