"""The TFLite flatbuffer as Python objects: the one place that loads LiteRT's generated
schema, unpacks a model into its object API (``ModelT``) and packs it back.

Readers that must survive any file (``runtime.verify``) walk the bytes themselves; this
module is for bytes already verified or written by the converter (the graph edits of
``converters.folds``, the model card's metadata entry, ``runtime.xnnpack``'s scale checks).
"""
from __future__ import annotations

import functools

FILE_IDENTIFIER = b"TFL3"


def schema():
    """LiteRT's generated TFLite schema module (``ModelT``, ``BuiltinOperator``, ...)."""
    from ai_edge_litert import schema_py_generated

    return schema_py_generated


def unpack(model_bytes: bytes):
    """The model as a mutable ``ModelT`` object tree."""
    return schema().ModelT.InitFromPackedBuf(bytearray(model_bytes), 0)


def pack(model, size_hint: int = 0) -> bytes:
    """A ``ModelT`` back to .tflite bytes."""
    import flatbuffers

    builder = flatbuffers.Builder(size_hint + 1024)
    builder.Finish(model.Pack(builder), file_identifier=FILE_IDENTIFIER)
    return bytes(builder.Output())


@functools.lru_cache(maxsize=None)
def builtin_names() -> dict:
    """BuiltinOperator value -> name (e.g. 0 -> "ADD")."""
    return {v: k for k, v in vars(schema().BuiltinOperator).items() if not k.startswith("_")}


def opcode_name(model, op) -> str:
    """The builtin name of an operator of an unpacked (``ModelT``) model."""
    code = model.operatorCodes[op.opcodeIndex]
    value = max(int(code.builtinCode), int(code.deprecatedBuiltinCode))
    return builtin_names().get(value, str(value))
