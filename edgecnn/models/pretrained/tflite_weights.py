"""Weights out of a classifier .tflite (Google's hosted quantized MobileNets, TF Hub and
Coral models, edgecnn's own conversions), onto edgecnn's network of the same architecture.

A converted graph keeps, per convolution, depthwise convolution and fully-connected op, one
kernel and one bias with BatchNorm folded into them (TFLite's converter folds it; TF1's
quantization-aware training folds it before quantizing). ``read_tflite_ops`` lists those ops
in graph (execution) order with their weights dequantized to float32 (per-tensor and
per-channel int8/uint8 scales, int32 biases, float16 constants behind a DEQUANTIZE) and in
keras's layouts. ``apply_tflite`` walks the model's weighted layers in creation order and
takes the ops one by one: a convolution without bias followed by BatchNorm gets the kernel
with each output channel scaled to a largest |weight| of 1, the BatchNorm gets that scale as
gamma and the folded bias as beta, with mean 0 and variance 1 - epsilon
(``(x - 0) / sqrt(1 - eps + eps) * gamma + beta``: the folded op exactly; see ``_unfold``);
a layer with its own bias (a classifier) gets both. Every pair is checked (kind and shape)
before anything is assigned. Reads the flatbuffer with LiteRT's generated schema (in the
light install); callers with untrusted files verify them first (``edgecnn weights import``
does, through ``runtime.verify``).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ...errors import EdgecnnError

WEIGHTED_OPS = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED")
# TensorType (schema.fbs) -> numpy dtype, for the constants a weighted op reads
DTYPES = {0: np.float32, 1: np.float16, 2: np.int32, 3: np.uint8, 4: np.int64, 9: np.int8}
ACTIVATIONS = {0: None, 1: "relu", 2: "relu_n1_to_1", 3: "relu6", 4: "tanh"}


@dataclass
class TfliteOp:
    """One weighted op: kind, its output tensor's name, the dequantized kernel in keras's
    layout (Conv2D HWIO, depthwise (kh, kw, C, m), dense (in, out)), the bias, the fused
    activation and how the weights were stored."""

    index: int
    kind: str
    name: str
    kernel: np.ndarray
    bias: np.ndarray
    activation: str | None
    stored: str


def is_tflite(path: str) -> bool:
    try:
        with open(path, "rb") as f:
            head = f.read(8)
    except OSError:
        return False
    return len(head) == 8 and head[4:8] == b"TFL3"


def read_tflite_ops(path: str) -> tuple[list[TfliteOp], list[int]]:
    """The weighted ops of ``path``'s main graph in execution order, and its input shape."""
    from ai_edge_litert import schema_py_generated as schema

    with open(path, "rb") as f:
        data = f.read()
    try:
        model = schema.ModelT.InitFromPackedBuf(bytearray(data), 0)
        graph = model.subgraphs[0]
        names = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
        ops = []
        producers = {int(t): op for op in graph.operators for t in op.outputs}
        for index, op in enumerate(graph.operators):
            code = model.operatorCodes[op.opcodeIndex]
            kind = names.get(max(int(code.builtinCode), int(code.deprecatedBuiltinCode)), "")
            if kind not in WEIGHTED_OPS:
                continue
            ops.append(_weighted(model, graph, producers, names, index, op, kind))
        shape = [int(s) for s in graph.tensors[graph.inputs[0]].shape]
    except (AttributeError, IndexError, TypeError, ValueError, KeyError) as exc:
        raise EdgecnnError(f"{path}: cannot read its weights ({type(exc).__name__}: {exc}); "
                           f"give a valid .tflite") from None
    if not ops:
        raise EdgecnnError(f"{path} has no convolution or fully-connected weights to import")
    return ops, shape


def _constant(model, graph, producers, names, tensor_index: int, what: str) -> tuple:
    """A constant tensor as float32 (dequantized), and how it was stored."""
    tensor = graph.tensors[tensor_index]
    buffer = model.buffers[tensor.buffer]
    raw = buffer.data if buffer is not None else None
    if raw is None or len(raw) == 0:
        producer = producers.get(tensor_index)  # float16 weights: DEQUANTIZE(const fp16)
        if producer is not None:
            code = model.operatorCodes[producer.opcodeIndex]
            if names.get(max(int(code.builtinCode), int(code.deprecatedBuiltinCode))) == \
                    "DEQUANTIZE":
                return _constant(model, graph, producers, names, int(producer.inputs[0]), what)
        raise EdgecnnError(f"{what} ({_text(tensor.name)}) is computed, not stored: not a "
                           f"weight edgecnn can import")
    dtype = DTYPES.get(int(tensor.type))
    if dtype is None:
        raise EdgecnnError(f"{what} ({_text(tensor.name)}) has tensor type {tensor.type}, "
                           f"which edgecnn does not import")
    shape = [int(s) for s in tensor.shape]
    values = np.frombuffer(np.asarray(raw, np.uint8).tobytes(), dtype).reshape(shape)
    quant = tensor.quantization
    scale = None if quant is None or quant.scale is None else np.asarray(quant.scale,
                                                                         np.float64)
    if dtype in (np.float32, np.float16) or scale is None or scale.size == 0:
        return values.astype(np.float32), np.dtype(dtype).name
    zero = np.zeros_like(scale) if quant.zeroPoint is None else \
        np.asarray(quant.zeroPoint, np.float64)
    if scale.size == 1:
        real = (values.astype(np.float64) - zero[0]) * scale[0]
        how = f"{np.dtype(dtype).name} per-tensor"
    else:
        axis = int(quant.quantizedDimension)
        view = [1] * values.ndim
        view[axis] = scale.size
        real = (values.astype(np.float64) - zero.reshape(view)) * scale.reshape(view)
        how = f"{np.dtype(dtype).name} per-channel"
    return real.astype(np.float32), how


def _text(name) -> str:
    return name.decode("utf-8", "replace") if isinstance(name, bytes) else str(name)


def _weighted(model, graph, producers, names, index, op, kind) -> TfliteOp:
    out_name = _text(graph.tensors[op.outputs[0]].name)
    what = f"op {index} {kind}"
    weight, stored = _constant(model, graph, producers, names, int(op.inputs[1]),
                               f"the weights of {what}")
    if kind == "CONV_2D":        # (O, kh, kw, I) -> (kh, kw, I, O)
        kernel = weight.transpose(1, 2, 3, 0)
    elif kind == "DEPTHWISE_CONV_2D":  # (1, kh, kw, C*m) -> (kh, kw, C, m)
        channels = int(graph.tensors[op.inputs[0]].shape[-1])
        kernel = weight.reshape(weight.shape[1], weight.shape[2], channels, -1)
    else:                        # (O, I) -> (I, O)
        kernel = weight.T
    outputs = kernel.shape[-1] if kind != "DEPTHWISE_CONV_2D" else \
        kernel.shape[2] * kernel.shape[3]
    if len(op.inputs) > 2 and op.inputs[2] >= 0:
        bias, _ = _constant(model, graph, producers, names, int(op.inputs[2]),
                            f"the bias of {what}")
        bias = bias.reshape(-1)
    else:
        bias = np.zeros(outputs, np.float32)
    options = op.builtinOptions
    activation = ACTIVATIONS.get(int(getattr(options, "fusedActivationFunction", 0) or 0))
    return TfliteOp(index, kind, out_name, np.ascontiguousarray(kernel, np.float32), bias,
                    activation, stored)


def num_classes(ops: list[TfliteOp]) -> int:
    """The last weighted op's outputs: the classifier's class count."""
    return int(ops[-1].kernel.shape[-1])


def apply_tflite(ops: list[TfliteOp], model, path: str) -> list[dict]:
    """Assign ``ops`` (``read_tflite_ops``) to ``model``'s weighted layers in creation order
    (see the module docstring); returns one report row per layer. Nothing is assigned when
    any pair disagrees."""
    layers = [layer for layer in model.layers if layer.weights]
    plan, rows, pending = [], [], None
    queue = list(ops)
    if queue and _is_pixel_normalization(queue[0]) and not (
            layers and type(layers[0]).__name__ == "DepthwiseConv2D" and
            tuple(layers[0].get_weights()[0].shape) == (1, 1, 3, 1)):
        op = queue.pop(0)  # edgecnn's own .tflite: (x - mean) / std as a 1x1 depthwise
        rows.append({"upstream": f"op {op.index} {op.kind}", "keys": [op.name], "layer": None,
                     "shapes": [list(op.kernel.shape)],
                     "conversion": "not loaded: the input's normalization (pixels to the "
                                   "network's range), which edgecnn's model applies itself"})
    for position, layer in enumerate(layers):
        kind = type(layer).__name__
        if kind == "BatchNormalization":
            if pending is None:
                raise EdgecnnError(f"{path} does not fit {model.name}: layer {layer.name} "
                                   f"(BatchNorm) follows no convolution from the file")
            op, bias, scale = pending
            pending = None
            if bias.shape != (layer.get_weights()[0].shape[0],):
                raise _misfit(path, model, op, layer, [bias.shape],
                              [w.shape for w in layer.get_weights()])
            plan.append((layer, [scale, bias, np.zeros_like(bias),
                                 np.full_like(bias, 1.0 - layer.epsilon)]))
            rows.append({"upstream": f"op {op.index} {op.kind} bias", "keys": [op.name],
                         "layer": layer.name, "shapes": [list(bias.shape)] * 4,
                         "conversion": "folded bias as beta, each output channel's kernel "
                                       "scale as gamma; mean 0, variance 1 - epsilon"})
            continue
        if pending is not None:
            op = pending[0]
            raise EdgecnnError(f"{path} does not fit {model.name}: op {op.index} {op.kind} "
                               f"has a folded bias but layer {layers[position - 1].name} has "
                               f"no bias and no BatchNorm after it")
        if not queue:
            raise EdgecnnError(f"{path} has {len(ops)} weighted ops for more layers of "
                               f"{model.name} (first left: {layer.name}): a different "
                               f"network or width; check --model and --alpha")
        op = queue.pop(0)
        kernel, how = _kernel_for(op, layer, path, model)
        expected = [tuple(w.shape) for w in layer.get_weights()]
        arrays = [kernel, op.bias] if getattr(layer, "use_bias", False) else [kernel]
        if [a.shape for a in arrays] != expected:
            raise _misfit(path, model, op, layer, [a.shape for a in arrays], expected)
        if not getattr(layer, "use_bias", False):  # BatchNorm next: unfold the scales
            kernel, scale = _unfold(kernel, type(layer).__name__)
            arrays = [kernel]
            pending = (op, op.bias, scale)
        plan.append((layer, arrays))
        rows.append({"upstream": f"op {op.index} {op.kind}", "keys": [op.name],
                     "layer": layer.name, "shapes": [list(a.shape) for a in arrays],
                     "conversion": f"{op.stored} dequantized, {how}"
                                   + (", with bias" if len(arrays) > 1 else "")})
    if pending is not None:
        raise EdgecnnError(f"{path} does not fit {model.name}: its last convolution's folded "
                           f"bias has no BatchNorm or bias to go to")
    if queue:
        raise EdgecnnError(f"{path} has {len(ops)} weighted ops, {len(queue)} more than "
                           f"{model.name}'s layers take (first left: op {queue[0].index} "
                           f"{queue[0].kind}); check --model, --alpha and the options")
    for layer, arrays in plan:
        layer.set_weights(arrays)
    return rows


def _unfold(kernel: np.ndarray, kind: str) -> tuple[np.ndarray, np.ndarray]:
    """The folded kernel as (kernel with each output channel's largest |weight| 1, that
    channel's scale), the scale going to BatchNorm's gamma: the same function, and kernels
    shaped as a trained network's are. A folded kernel carries BatchNorm's per-channel
    gamma / sqrt(var + eps), which spans orders of magnitude (a nearly dead channel's is
    huge); quantization-aware training fake-quantizes the kernel before BatchNorm, so on
    folded kernels one channel's range would set every channel's steps (measured: QAT of
    Google's MobileNet V1 0.25 fell from 41 % to 27 % top-1 before any training)."""
    if kind == "DepthwiseConv2D":  # (kh, kw, C, m): output channel c * m + j
        flat = kernel.reshape(kernel.shape[0], kernel.shape[1], -1)
        scale = np.abs(flat).max(axis=(0, 1))
        scale = np.where(scale > 0, scale, 1.0).astype(np.float32)
        return (flat / scale).reshape(kernel.shape).astype(np.float32), scale
    scale = np.abs(kernel).reshape(-1, kernel.shape[-1]).max(axis=0)
    scale = np.where(scale > 0, scale, 1.0).astype(np.float32)
    return (kernel / scale).astype(np.float32), scale


def _is_pixel_normalization(op: TfliteOp) -> bool:
    """A 1x1 depthwise convolution of the 3 input channels: per-channel scale and shift."""
    return op.kind == "DEPTHWISE_CONV_2D" and op.kernel.shape == (1, 1, 3, 1)


def _kernel_for(op: TfliteOp, layer, path: str, model) -> tuple[np.ndarray, str]:
    kind = type(layer).__name__
    k = op.kernel
    if kind == "DepthwiseConv2D" and op.kind == "DEPTHWISE_CONV_2D":
        return k, "depthwise (1,kh,kw,C*m) -> (kh,kw,C,m)"
    if kind == "Conv2D" and op.kind == "CONV_2D":
        return k, "OHWI -> HWIO"
    if kind == "Conv2D" and op.kind == "FULLY_CONNECTED":
        return k[None, None], "fully connected (out,in) -> 1x1 conv (1,1,in,out)"
    if kind == "Dense" and op.kind == "FULLY_CONNECTED":
        return k, "(out,in) -> (in,out)"
    if kind == "Dense" and op.kind == "CONV_2D" and k.shape[:2] == (1, 1):
        return k[0, 0], "1x1 conv (out,1,1,in) -> dense (in,out)"
    raise EdgecnnError(f"{path} does not fit {model.name}: op {op.index} {op.kind} "
                       f"({op.name}) meets layer {layer.name} ({kind}): a different network; "
                       f"check --model and the options")


def _misfit(path, model, op, layer, got, expected) -> EdgecnnError:
    return EdgecnnError(f"{path} does not fit {model.name}: op {op.index} {op.kind} gives "
                        f"{[tuple(s) for s in got]} for layer {layer.name}, which has "
                        f"{[tuple(s) for s in expected]} (a different --alpha or classes?)")
