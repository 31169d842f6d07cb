"""Reading, analyzing and running .tflite models without TensorFlow."""
from __future__ import annotations

import json
import os
from collections import Counter

import numpy as np

from .._quiet import native_stderr_silenced
from ..errors import EdgecnnError

CARD_KEY = "edgecnn"
# Ops at the model boundary that convert between the io dtype and int8 (not compute ops).
BOUNDARY_OPS = {"QUANTIZE", "DEQUANTIZE"}
INT_TYPES = (np.int8, np.uint8)


def _read_bytes(path_or_bytes) -> bytes:
    if isinstance(path_or_bytes, (bytes, bytearray, memoryview)):
        return bytes(path_or_bytes)
    path = os.fspath(path_or_bytes)
    if not os.path.isfile(path):
        raise EdgecnnError(f"model file {path} does not exist")
    with open(path, "rb") as f:
        data = f.read()
    if len(data) < 8 or data[4:8] != b"TFL3":
        raise EdgecnnError(f"{path} is not a TFLite model (no TFL3 identifier); give a .tflite "
                           f"file written by a TFLite converter")
    return data


def load_interpreter(path_or_bytes, threads: int = 1, xnnpack: bool = True):
    """An allocated LiteRT interpreter; XNNPACK is LiteRT's default CPU delegate."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    data = _read_bytes(path_or_bytes)
    resolver = OpResolverType.AUTO if xnnpack else \
        OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
    try:
        with native_stderr_silenced():  # "INFO: Created TensorFlow Lite XNNPACK delegate"
            interpreter = Interpreter(model_content=data, num_threads=int(threads),
                                      experimental_op_resolver_type=resolver)
            interpreter.allocate_tensors()
    except (ValueError, RuntimeError) as exc:
        raise EdgecnnError(f"LiteRT cannot load this model: {str(exc).splitlines()[0]}") from None
    return interpreter


# --- the model card in the metadata table -------------------------------------------------

def _schema():
    from ai_edge_litert import schema_py_generated as schema

    return schema


def read_card(path_or_bytes) -> dict | None:
    """The edgecnn model card embedded in a .tflite's metadata, or None."""
    schema = _schema()
    data = _read_bytes(path_or_bytes)
    model = schema.Model.GetRootAs(data, 0)
    for i in range(model.MetadataLength()):
        meta = model.Metadata(i)
        if meta.Name() and meta.Name().decode() == CARD_KEY:
            raw = model.Buffers(meta.Buffer()).DataAsNumpy()
            try:
                return json.loads(bytes(raw).decode("utf-8"))
            except (ValueError, UnicodeDecodeError):
                raise EdgecnnError("the model's edgecnn metadata is not valid JSON") from None
    return None


def embed_card(model_bytes: bytes, card: dict) -> bytes:
    """The same model with ``card`` (JSON) in its metadata table under "edgecnn"."""
    import flatbuffers

    schema = _schema()
    model = schema.ModelT.InitFromPackedBuf(bytearray(model_bytes), 0)
    payload = np.frombuffer(json.dumps(card, sort_keys=False).encode("utf-8"), dtype=np.uint8)
    model.metadata = [m for m in (model.metadata or []) if m.name not in (CARD_KEY,
                                                                             CARD_KEY.encode())]
    buffer = schema.BufferT()
    buffer.data = payload
    model.buffers.append(buffer)
    meta = schema.MetadataT()
    meta.name = CARD_KEY
    meta.buffer = len(model.buffers) - 1
    model.metadata.append(meta)
    builder = flatbuffers.Builder(len(model_bytes) + len(payload) + 4096)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


# --- analysis --------------------------------------------------------------------------------

def _partitions(ops) -> tuple[int, set[int]]:
    """Number of delegate partitions, and the indices of the ops inside one.

    After delegation each partition is one DELEGATE node whose inputs and outputs are known;
    the ops it replaced are found by walking back from its outputs to its inputs.
    """
    delegates = [o for o in ops if o["op_name"] == "DELEGATE"]
    producer = {int(t): o["index"] for o in ops if o["op_name"] != "DELEGATE"
                for t in o["outputs"]}
    inside: set[int] = set()
    for d in delegates:
        stop = {int(t) for t in d["inputs"]}
        stack, seen = [int(t) for t in d["outputs"]], set()
        while stack:
            t = stack.pop()
            if t in stop or t in seen or t not in producer:
                continue
            seen.add(t)
            node = producer[t]
            inside.add(node)
            stack.extend(int(x) for x in ops[node]["inputs"] if x >= 0)
    return len(delegates), inside


def analyze(path_or_bytes, threads: int = 1) -> dict:
    """Op histogram, int8 coverage and XNNPACK partitions of a .tflite."""
    data = _read_bytes(path_or_bytes)
    interpreter = load_interpreter(data, threads=threads, xnnpack=True)
    ops = interpreter._get_ops_details()
    tensors = {t["index"]: t for t in interpreter.get_tensor_details()}
    compute = [o for o in ops if o["op_name"] != "DELEGATE"]
    histogram = Counter(o["op_name"] for o in compute)
    float_ops = []
    for o in compute:
        if o["op_name"] in BOUNDARY_OPS:
            continue
        activations = [tensors[int(t)] for t in list(o["inputs"]) + list(o["outputs"])
                       if t >= 0 and int(t) in tensors and tensors[int(t)]["dtype"] != np.int32]
        if any(t["dtype"] not in INT_TYPES for t in activations):
            float_ops.append(o["op_name"])
    partitions, inside = _partitions(ops)
    outside = Counter(o["op_name"] for o in compute if o["index"] not in inside)
    inp = interpreter.get_input_details()[0]
    return {
        "size_bytes": len(data),
        "ops": dict(sorted(histogram.items())),
        "op_count": len(compute),
        "all_int8": not float_ops,
        "float_ops": dict(Counter(float_ops)),
        "xnnpack_partitions": partitions,
        "ops_outside_xnnpack": dict(outside),
        "input_dtype": np.dtype(inp["dtype"]).name,
    }


# --- running -------------------------------------------------------------------------------

def input_spec(interpreter) -> dict:
    detail = interpreter.get_input_details()[0]
    scale, zero_point = detail["quantization"]
    return {"shape": [int(s) for s in detail["shape"]], "dtype": np.dtype(detail["dtype"]).name,
            "scale": float(scale), "zero_point": int(zero_point)}


def quantize_pixels(pixels: np.ndarray, spec: dict) -> np.ndarray:
    """Raw RGB pixels (0-255) as an edgecnn model's input tensor.

    A float input takes the pixel values; an integer input takes the pixel itself (uint8)
    or the pixel minus 128 (int8). The input's scale and zero point then say what the
    network sees: scale 1 when the model normalizes in its first op, the normalization
    itself when it was folded into the quantization (see converters.folds).
    """
    x = np.asarray(pixels, np.float32)
    if spec["dtype"] == "float32":
        return x
    if spec["dtype"] == "uint8":
        return np.clip(np.round(x), 0, 255).astype(np.uint8)
    return (np.clip(np.round(x), 0, 255) - 128).astype(np.int8)


def run_logits(interpreter, pixels: np.ndarray) -> np.ndarray:
    """Run images (N, H, W, 3) of raw pixels one by one; float logits (N, classes)."""
    spec = input_spec(interpreter)
    in_index = interpreter.get_input_details()[0]["index"]
    out = interpreter.get_output_details()[0]
    scale, zero_point = out["quantization"]
    results = []
    for image in np.asarray(pixels):
        interpreter.set_tensor(in_index, quantize_pixels(image[None], spec))
        interpreter.invoke()
        y = interpreter.get_tensor(out["index"]).astype(np.float32)
        if out["dtype"] != np.float32 and scale:
            y = (y - zero_point) * scale
        results.append(y.reshape(-1))
    return np.stack(results)


def softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)
