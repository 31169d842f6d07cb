"""Where an int8 model loses accuracy: the error of every quantized layer output against the
float model, on real images (``edgecnn quant-error``). Needs only LiteRT.

The int8 .tflite and the float32 .tflite of the same traced function name their tensors
alike (the converter names a tensor after the Keras layers fused into it), so every int8
tensor that has a float twin of the same shape is compared with it, image by image:

* **SNR** (dB): ``10 log10(sum f^2 / sum (q - f)^2)`` with ``f`` the float tensor and ``q`` the
  int8 tensor dequantized, over all images and elements. This is the error the whole int8
  model has reached at that point (every earlier layer's error included);
* **RMSE / range**: the root mean square error over the float tensor's range (max - min over the
  images). Rounding alone to 255 steps over that range gives 1 / (255 sqrt 12) = 0.0011;
* **own SNR**: the error the layer adds by itself. The op is cut out of the int8 graph into a
  one-op model (``runtime.profile.single_op_models``), fed the float model's input of that op
  quantized with the int8 input's scale (the graph input: the same integers the int8 model
  gets), and its output compared with the float model's. A layer with a low own SNR is one
  whose int8 form (its weights, its output range) is at fault, whatever came before it; it
  is the one to keep in float (``edgecnn convert --keep-float``, ``edgecnn quant-error
  --keep-float``);
* **rounding SNR**: the float output rounded to the int8 tensor's grid and nothing else.
  When a layer's own SNR is close to it, the op's weights and arithmetic add little: the
  tensor's int8 range is the limit, and keeping the op in float does not remove it while
  its readers are int8 (they still get the tensor rounded); keep its readers in float too,
  or the whole block.

Tensors that edgecnn's hard-swish fold made carry 6x their float value (their scale is
declared 6x larger, ``converters.folds.fold_hard_swish_sixth``) are compared as 6x their
float twin (``"factor": 6`` in their row).
"""
from __future__ import annotations

import fnmatch
import re
import warnings

import numpy as np

from ..errors import EdgecnnError

SKIP_OPS = {"QUANTIZE", "DEQUANTIZE"}
FACTORS = (1.0, 6.0)   # what an int8 tensor may hold of its float twin (see layer_errors)
# The converter's name for a layer's op: the last path part of each ';'-joined piece
# ("model/block_1_project/Conv2D1" -> layer "block_1_project", op "Conv2D1").
_MAIN_OPS = re.compile(r"^(Conv2D|depthwise|MatMul|BiasAdd|add|mul|Mean|Sigmoid|Relu6?|"
                       r"FusedBatchNorm)", re.IGNORECASE)


def layer_names(tensor_name: str, known=None) -> list[str]:
    """The Keras layer names in a converter tensor name, in order, without repeats:
    "m/block_1_depthwise_relu/Relu6;m/block_1_depthwise/depthwise;m/block_1_pad/Pad1" ->
    ["block_1_depthwise_relu", "block_1_depthwise", "block_1_pad"].

    known: the model's layer names, when at hand: names with a "/" in them
    (keras.applications' MobileNetV3 has "expanded_conv_3/expand") are then found whole;
    without them the first part is taken ("expanded_conv_3")."""
    found = []
    for piece in str(tensor_name).split(";"):
        parts = piece.split("/")
        whole = None
        if known:
            for end in range(len(parts) - 1, 1, -1):
                if "/".join(parts[1:end]) in known:
                    whole = "/".join(parts[1:end])
                    break
        if whole:
            layer = whole
        elif len(parts) >= 3:
            layer = parts[1]
        elif len(parts) == 2:
            layer = parts[0] if _MAIN_OPS.match(parts[1]) else parts[1]
        else:
            continue
        if layer and layer not in found:
            found.append(layer)
    return found


def main_layer(tensor_name: str, known=None) -> str:
    """The layer a tensor is best known by: the one whose op is a convolution or matmul,
    else the first named one (or the tensor name itself)."""
    for piece in reversed(str(tensor_name).split(";")):
        parts = piece.split("/")
        if len(parts) >= 3 and re.match(r"^(Conv2D|depthwise|MatMul)", parts[-1]):
            return layer_names(piece, known)[0]
    names = layer_names(tensor_name, known)
    return names[0] if names else str(tensor_name)


def match_layers(wanted: list[str], tensor_names: list[str], known=None) -> dict[str, list[str]]:
    """Each wanted layer (a Keras layer name, a group of them such as "expanded_conv_3", a
    shell pattern such as "stage6_*", or a full tensor name) -> the tensor names it matches. A name matching nothing is an error
    naming the closest layers."""
    result = {}
    every = []
    groups = {}
    for name in tensor_names:
        found = layer_names(name, known)
        groups[name] = set(found) | set(layer_names(name))
        for layer in found:
            if layer not in every:
                every.append(layer)
    for want in wanted:
        hits = [n for n in tensor_names if n == want or want in groups[n] or (
            any(c in want for c in "*?[") and any(fnmatch.fnmatchcase(g, want)
                                                  for g in groups[n]))]
        if not hits:
            import difflib

            close = difflib.get_close_matches(want, every, n=3, cutoff=0.5)
            hint = f"did you mean {', '.join(close)}?" if close else \
                "give a layer name from the quant-error table (its 'layer' column)"
            raise EdgecnnError(f"--keep-float {want}: no quantized op of this model belongs to "
                               f"that layer; {hint}")
        result[want] = hits
    return result


def _interpreter(model_bytes: bytes):
    from ai_edge_litert.interpreter import Interpreter

    with warnings.catch_warnings():   # "for debugging purposes only": the tensors are wanted
        warnings.simplefilter("ignore")
        interpreter = Interpreter(model_content=model_bytes,
                                  experimental_preserve_all_tensors=True)
    interpreter.allocate_tensors()
    return interpreter


def _plain(model_bytes: bytes):
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_content=model_bytes)
    interpreter.allocate_tensors()
    return interpreter


def _name(detail) -> str:
    name = detail["name"]
    return name.decode() if isinstance(name, bytes) else str(name)


def _dequantize(x: np.ndarray, detail) -> np.ndarray:
    scale, zero = detail["quantization"]
    x = x.astype(np.float64)
    return (x - zero) * scale if scale else x


def _quantize(x: np.ndarray, detail) -> np.ndarray:
    dtype = np.dtype(detail["dtype"])
    scale, zero = detail["quantization"]
    if dtype.kind == "f" or not scale:
        return x.astype(dtype)
    info = np.iinfo(dtype)
    return np.clip(np.round(x / scale) + zero, info.min, info.max).astype(dtype)


class _Stats:
    """Running sums for one tensor: squared error, signal power, float min/max."""

    def __init__(self):
        self.err2 = self.sig2 = 0.0
        self.count = 0
        self.low, self.high = np.inf, -np.inf

    def add(self, reference: np.ndarray, value: np.ndarray) -> None:
        diff = value - reference
        self.err2 += float((diff * diff).sum())
        self.sig2 += float((reference * reference).sum())
        self.count += reference.size
        self.low = min(self.low, float(reference.min()))
        self.high = max(self.high, float(reference.max()))

    def snr_db(self) -> float | None:
        if not self.count:
            return None
        if self.err2 <= 0:
            return float("inf")
        return 10.0 * np.log10(max(self.sig2, 1e-30) / self.err2)

    def rmse(self) -> float:
        return float(np.sqrt(self.err2 / max(self.count, 1)))


def _round(value, digits):
    if value is None or not np.isfinite(value):
        return value
    return round(float(value), digits)


def layer_errors(float_bytes: bytes, int8_bytes: bytes, images: np.ndarray,
                 own: bool = True, known=None, output_layer: str | None = None) -> list[dict]:
    """Per quantized op output of ``int8_bytes``, its error against ``float_bytes`` on
    ``images`` (raw RGB pixels, N x H x W x 3), in graph order (see the module docstring).

    Rows: ``{"index", "op", "tensor", "layer", "snr_db", "rmse_range", "rmse_steps"
    (RMSE in int8 steps of the tensor's scale), "own_snr_db", "rounding_snr_db" (the float
    tensor rounded to the int8 tensor's grid: the part of the error no op can avoid while
    the tensor is int8), "range": [min, max], "scale"}``.
    Ops whose output has no float twin (renamed or reshaped by the conversion) are left out.
    known: the Keras model's layer names, for naming the rows (see ``layer_names``);
    output_layer: the name of the layer whose output is the model's (its tensor is renamed).
    """
    from .flatbuf import opcode_name, unpack
    from .profile import single_op_models
    from .tflite import quantize_pixels

    images = np.asarray(images)
    if images.ndim != 4 or not len(images):
        raise EdgecnnError(f"layer errors need images (N, H, W, 3), got shape {images.shape}")
    ref, q = _interpreter(float_bytes), _interpreter(int8_bytes)
    ref_tensors = {_name(d): d for d in ref.get_tensor_details()}
    q_details = {d["index"]: d for d in q.get_tensor_details()}
    q_input = q.get_input_details()[0]
    ref_input = ref.get_input_details()[0]
    if tuple(q_input["shape"]) != tuple(ref_input["shape"]):
        raise EdgecnnError("the int8 and float models take different input shapes: "
                           f"{list(q_input['shape'])} and {list(ref_input['shape'])}")
    model = unpack(int8_bytes)
    graph = model.subgraphs[0]
    # The graph outputs are renamed by the conversion ("Identity" in float, "Identity1"
    # before the int8 model's output QUANTIZE): pair them by position.
    producer = {int(t): i for i, op in enumerate(graph.operators) for t in op.outputs}
    consumers: dict[int, list] = {}
    for op in graph.operators:
        for t in set(int(t) for t in op.inputs if t >= 0):
            consumers.setdefault(t, []).append(op)
    outputs = {}
    ref_outputs = [_name(d) for d in ref.get_output_details()]
    for position, tensor in enumerate(int(t) for t in graph.outputs):
        while tensor in producer and opcode_name(
                model, graph.operators[producer[tensor]]) in SKIP_OPS:
            tensor = int(graph.operators[producer[tensor]].inputs[0])
        if position < len(ref_outputs):
            outputs[tensor] = ref_outputs[position]
    rows = []
    for index, op in enumerate(graph.operators):
        kind = opcode_name(model, op)
        out = int(op.outputs[0])
        detail = q_details.get(out)
        if kind in SKIP_OPS or detail is None:
            continue
        name = _name(detail)
        twin = ref_tensors.get(outputs.get(out, name))
        if (np.dtype(detail["dtype"]) not in (np.int8, np.uint8) or not detail["quantization"][0]
                or twin is None or tuple(twin["shape"]) != tuple(detail["shape"])):
            continue
        layer = output_layer if out in outputs and output_layer else main_layer(name, known)
        readers = [main_layer(_name(q_details[int(c.outputs[0])]), known)
                   for c in consumers.get(out, []) if opcode_name(model, c) not in SKIP_OPS]
        rows.append({"index": index, "op": kind, "tensor": name, "layer": layer,
                     "readers": list(dict.fromkeys(readers)), "output": out,
                     "twin": twin["index"]})
    singles = {}
    if own:
        wanted = {r["index"] for r in rows}
        for single in single_op_models(int8_bytes):
            if single["index"] in wanted:
                singles[single["index"]] = single["bytes"]
    whole, alone = {r["index"]: _Stats() for r in rows}, {r["index"]: _Stats() for r in rows}
    rounding = {r["index"]: _Stats() for r in rows}
    cut = {}
    for i, bytes_ in singles.items():
        try:
            interpreter = _plain(bytes_)
        except (ValueError, RuntimeError):
            continue
        cut[i] = interpreter
    graph_input = int(q_input["index"])

    def run(image):
        pixels = image[None]
        q.set_tensor(graph_input, quantize_pixels(pixels, np.dtype(q_input["dtype"]).name))
        ref.set_tensor(ref_input["index"], pixels.astype(np.float32))
        q.invoke()
        ref.invoke()

    # edgecnn's hard-swish fold (converters.folds.fold_hard_swish_sixth) declares some int8
    # tensors' scales 6x larger: they hold 6 x the float tensor. Which ones is read off the
    # first image (the factor that fits far better); they are compared as such.
    run(images[0])
    factor = {}
    for r in rows:
        f = ref.get_tensor(r["twin"]).astype(np.float64)
        x = _dequantize(q.get_tensor(r["output"]), q_details[r["output"]])
        errors = [float(((x / k - f) ** 2).sum()) for k in FACTORS]
        best = int(np.argmin(errors))
        factor[r["output"]] = FACTORS[best] if errors[best] < 0.1 * errors[0] else 1.0
    by_name = {r["tensor"]: factor[r["output"]] for r in rows}
    for image in images:
        run(image)
        for r in rows:
            k = factor[r["output"]]
            f = ref.get_tensor(r["twin"]).astype(np.float64)
            whole[r["index"]].add(f, _dequantize(q.get_tensor(r["output"]),
                                                 q_details[r["output"]]) / k)
            detail = q_details[r["output"]]
            rounding[r["index"]].add(f, _dequantize(_quantize(f * k, detail), detail) / k)
            one = cut.get(r["index"])
            if one is None:
                continue
            fed = True
            for detail in one.get_input_details():
                name = _name(detail)
                if name == _name(q_input):
                    value = q.get_tensor(graph_input)
                elif name in ref_tensors:
                    value = _quantize(ref.get_tensor(ref_tensors[name]["index"]).astype(
                        np.float64) * by_name.get(name, 1.0), detail)
                else:
                    fed = False
                    break
                one.set_tensor(detail["index"], value.reshape(detail["shape"]))
            if not fed:
                cut.pop(r["index"])
                continue
            one.invoke()
            out = one.get_output_details()[0]
            alone[r["index"]].add(f, _dequantize(one.get_tensor(out["index"]), out) / k)
    result = []
    for r in rows:
        s, o = whole[r["index"]], alone[r["index"]]
        span = s.high - s.low
        scale = float(q_details[r["output"]]["quantization"][0])
        result.append({
            "index": r["index"], "op": r["op"], "layer": r["layer"], "tensor": r["tensor"],
            "snr_db": _round(s.snr_db(), 2),
            "rmse_range": _round(s.rmse() / span, 5) if span > 0 else None,
            "rmse_steps": _round(s.rmse() * factor[r["output"]] / scale, 3),
            "own_snr_db": _round(o.snr_db(), 2) if o.count else None,
            "rounding_snr_db": _round(rounding[r["index"]].snr_db(), 2),
            "readers": r["readers"],
            "range": [_round(s.low, 4), _round(s.high, 4)], "scale": scale,
            **({"factor": factor[r["output"]]} if factor[r["output"]] != 1.0 else {})})
    return result


RANGE_LIMITED_DB = 1.0   # own SNR within this of the rounding SNR: the range is the limit


def range_limited(row: dict) -> bool:
    """Whether a layer's own error is (almost) all its output's rounding to int8."""
    own, rounding = row.get("own_snr_db"), row.get("rounding_snr_db")
    return own is not None and rounding is not None and np.isfinite(rounding) and \
        rounding - own < RANGE_LIMITED_DB


def worst(rows: list[dict], count: int, key: str = "own_snr_db") -> list[dict]:
    """The ``count`` rows with the lowest ``key`` (rows without it last)."""
    ranked = sorted(rows, key=lambda r: (r.get(key) is None, r.get(key) if r.get(key) is not
                                         None else 0.0))
    return ranked[:count]


def keep_float_suggestion(flagged: list[dict]) -> list[str]:
    """The layers to keep in float to take the flagged layers' error out: each flagged
    layer, and the readers of those whose error is their output's rounding (a float op
    whose readers are int8 still hands them a rounded tensor)."""
    names = []
    for row in flagged:
        names.append(row["layer"])
        if range_limited(row):
            names += row.get("readers", [])
    return list(dict.fromkeys(names))
