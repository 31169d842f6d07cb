"""Reading, analyzing and running .tflite models without TensorFlow."""
from __future__ import annotations

import json
import os
from collections import Counter

import numpy as np

from ..utils.quiet import native_stderr_silenced
from ..errors import EdgecnnError
from . import flatbuf
from .sandbox import failure_in_child
from .verify import HINT, parse_card, verify_model

CARD_KEY = "edgecnn"
# Ops at the model boundary that convert between the io dtype and int8 (not compute ops).
BOUNDARY_OPS = {"QUANTIZE", "DEQUANTIZE"}
INT_TYPES = (np.int8, np.uint8)


def _name(path_or_bytes, name: str | None) -> str:
    if name:
        return name
    return "the model" if isinstance(path_or_bytes, (bytes, bytearray, memoryview)) else \
        os.fspath(path_or_bytes)


#: the last bytes verified and what verify_model parsed of them (read-only): a command that
#: reads a model's card, graph and interpreter from the same bytes verifies them once
_LAST_VERIFIED: list = []


def _read_verified(path_or_bytes, name: str | None = None) -> tuple[bytes, dict]:
    name = _name(path_or_bytes, name)
    if _LAST_VERIFIED and _LAST_VERIFIED[0][0] is path_or_bytes:
        return _LAST_VERIFIED[0]  # the same bytes object (immutable): the same answer
    if isinstance(path_or_bytes, (bytes, bytearray, memoryview)):
        data = bytes(path_or_bytes)
    else:
        path = os.fspath(path_or_bytes)
        if os.path.isdir(path):
            raise EdgecnnError(f"{path} is a folder, not a .tflite file; give the model file")
        if not os.path.isfile(path):
            raise EdgecnnError(f"model file {path} does not exist")
        try:
            with open(path, "rb") as f:
                data = f.read()
        except OSError as exc:
            raise EdgecnnError(f"cannot read {path}: {exc.strerror or exc}") from None
    verified = (data, verify_model(data, name))
    _LAST_VERIFIED[:] = [verified]
    return verified


def read_model(path_or_bytes, name: str | None = None) -> bytes:
    """The bytes of a .tflite, checked before anything reads them (``verify.verify_model``):
    a missing, unreadable, empty, foreign or damaged file is a one-line EdgecnnError that
    names it (``name``: how to call bytes in messages)."""
    return _read_verified(path_or_bytes, name)[0]


def _interpreter(data: bytes, threads: int, xnnpack: bool):
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    resolver = OpResolverType.AUTO if xnnpack else \
        OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
    with native_stderr_silenced():  # "INFO: Created TensorFlow Lite XNNPACK delegate"
        interpreter = Interpreter(model_content=data, num_threads=int(threads),
                                  experimental_op_resolver_type=resolver)
        interpreter.allocate_tensors()
    return interpreter


def _invoke_zeros(interpreter) -> None:
    """What edgecnn's readers do with an interpreter: its details, inputs set, one run,
    outputs read."""
    interpreter._get_ops_details()
    interpreter.get_tensor_details()
    for detail in interpreter.get_input_details():
        interpreter.set_tensor(detail["index"], np.zeros(detail["shape"], detail["dtype"]))
    with native_stderr_silenced():
        interpreter.invoke()
    for detail in interpreter.get_output_details():
        interpreter.get_tensor(detail["index"])


def check_runs(load, name: str = "the model") -> None:
    """An EdgecnnError when LiteRT fails or crashes doing ``load()`` (make an allocated
    interpreter of verified bytes) and one inference, tried in a forked child
    (``sandbox``) right before the caller does the same in this process."""
    import ai_edge_litert.interpreter  # noqa: F401  (imported here, not in every child)

    held = []
    failure = failure_in_child([("loading it", lambda: held.append(load())),
                                ("running it", lambda: _invoke_zeros(held[0]))])
    if failure is None:
        return
    what, why = failure
    if why.startswith("crashed with"):
        raise EdgecnnError(f"{name}: not a valid .tflite (LiteRT {why} {what} in a test "
                           f"process: its graph is damaged); {HINT}")
    raise EdgecnnError(f"{name}: LiteRT failed {what}: {why}")


def load_interpreter(path_or_bytes, threads: int = 1, xnnpack: bool = True, *,
                     name: str | None = None, checked: bool = False):
    """An allocated LiteRT interpreter; XNNPACK is LiteRT's default CPU delegate.

    The model is verified, then loaded and run once in a child process (``check_runs``),
    so a damaged file is a one-line EdgecnnError, never a crash; ``checked``: the caller
    did both for these bytes (keeps the check out of a timed load).
    """
    name = _name(path_or_bytes, name)
    data = path_or_bytes if checked else read_model(path_or_bytes, name)
    if not checked:
        check_runs(lambda: _interpreter(data, threads, xnnpack), name)
    try:
        return _interpreter(data, threads, xnnpack)
    except (ValueError, RuntimeError) as exc:
        raise EdgecnnError(f"{name}: LiteRT cannot load it: {_first_line(exc)}") from None


def _first_line(exc: Exception) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


# --- the model card in the metadata table (runtime.card reads and writes it) -------------

def read_card_dict(path_or_bytes, name: str | None = None) -> dict | None:
    """The JSON of the edgecnn model card in a .tflite's metadata, checked for the types its
    readers use (``verify.parse_card``), or None when it has none. Use ``ModelCard.read``."""
    name = _name(path_or_bytes, name)
    data, model = _read_verified(path_or_bytes, name)
    for meta in model["metadata"] or []:
        if meta["name"] == CARD_KEY:
            buffer = model["buffers"][meta["buffer"]]
            start, size = (buffer["offset"], buffer["size"]) if buffer["offset"] > 1 else \
                buffer["data"] or (0, 0)
            return parse_card(data[start:start + size], name)
    return None


def embed_card_dict(model_bytes: bytes, card: dict) -> bytes:
    """The same model with ``card`` (JSON) in its metadata table under "edgecnn". Use
    ``ModelCard.embed``, which also keeps the card's ``size_bytes`` true."""
    schema = flatbuf.schema()
    model = flatbuf.unpack(model_bytes)
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
    return flatbuf.pack(model, len(model_bytes) + len(payload) + 3072)


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


def analyze(path_or_bytes, threads: int = 1, *, name: str | None = None) -> dict:
    """Op histogram, int8 coverage and XNNPACK partitions of a .tflite."""
    name = _name(path_or_bytes, name)
    data = read_model(path_or_bytes, name)
    interpreter = load_interpreter(data, threads=threads, xnnpack=True, name=name)
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
    refusals = _refusals(data, [o for o in compute if o["index"] not in inside and
                                o["op_name"] not in BOUNDARY_OPS])
    inp = interpreter.get_input_details()[0]
    return {
        "size_bytes": len(data),
        "ops": dict(sorted(histogram.items())),
        "op_count": len(compute),
        "all_int8": not float_ops,
        "float_ops": dict(Counter(float_ops)),
        "xnnpack_partitions": partitions,
        "ops_outside_xnnpack": dict(outside),
        "xnnpack_refusals": refusals,
        "input_dtype": np.dtype(inp["dtype"]).name,
    }


def _refusals(data: bytes, outside: list) -> list[dict]:
    """Each compute op left outside the delegate, with the reason: the quantization-scale
    bound it breaks (``runtime.xnnpack``), or that XNNPACK has no kernel for it."""
    if not outside:
        return []
    from .xnnpack import scale_refusals

    by_scale = scale_refusals(data)
    return [{"index": int(o["index"]), "op": o["op_name"],
             "reason": by_scale.get(int(o["index"]),
                                    f"XNNPACK does not run this {o['op_name']} (op type or "
                                    f"its tensor types)")} for o in outside]


def describe_split(analysis: dict) -> str:
    """One sentence on why an int8 graph is not integer-only and whole on XNNPACK."""
    parts = [f"int8 graph not whole on XNNPACK: {analysis['xnnpack_partitions']} partition(s)"]
    if analysis["float_ops"]:
        parts.append(f"float ops {analysis['float_ops']}")
    refusals = analysis.get("xnnpack_refusals") or []
    if refusals:
        shown = "; ".join(f"{r['op']} #{r['index']}: {r['reason']}" for r in refusals[:3])
        more = f" (and {len(refusals) - 3} more)" if len(refusals) > 3 else ""
        parts.append(f"outside: {shown}{more}")
    return ", ".join(parts)


# --- running -------------------------------------------------------------------------------

def input_spec(interpreter) -> dict:
    detail = interpreter.get_input_details()[0]
    scale, zero_point = detail["quantization"]
    return {"shape": [int(s) for s in detail["shape"]], "dtype": np.dtype(detail["dtype"]).name,
            "scale": float(scale), "zero_point": int(zero_point)}


def quantize_pixels(pixels: np.ndarray, dtype: str) -> np.ndarray:
    """Raw RGB pixels (0-255) as an edgecnn model's input tensor of ``dtype``.

    A float input takes the pixel values; an integer input takes the pixel itself (uint8)
    or the pixel minus 128 (int8). The input's scale and zero point then say what the
    network sees: scale 1 when the model normalizes in its first op, the normalization
    itself when it was folded into the quantization (see converters.folds).
    """
    x = np.asarray(pixels, np.float32)
    if dtype == "uint8":
        return np.clip(np.round(x), 0, 255).astype(np.uint8)
    if dtype == "int8":
        return (np.clip(np.round(x), 0, 255) - 128).astype(np.int8)
    return x


def run_logits(interpreter, pixels: np.ndarray, name: str = "the model",
               to_input=None) -> np.ndarray:
    """Run images (N, H, W, 3) of raw pixels one by one; float logits (N, classes).
    ``to_input`` turns raw pixels into the input tensor (default: raw pixels in the input's
    dtype, as every edgecnn model takes them; ``ModelCard.pixels_to_input`` says so)."""
    dtype = input_spec(interpreter)["dtype"]
    to_input = to_input or (lambda x: quantize_pixels(x, dtype))
    in_index = interpreter.get_input_details()[0]["index"]
    out = interpreter.get_output_details()[0]
    scale, zero_point = out["quantization"]
    results = []
    for image in np.asarray(pixels):
        try:
            interpreter.set_tensor(in_index, to_input(image[None]))
            interpreter.invoke()
            y = interpreter.get_tensor(out["index"]).astype(np.float32)
        except (ValueError, RuntimeError) as exc:
            raise EdgecnnError(f"{name}: LiteRT cannot run it: {_first_line(exc)}") from None
        if out["dtype"] != np.float32 and scale:
            y = (y - zero_point) * scale
        results.append(y.reshape(-1))
    return np.stack(results)


def softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)
