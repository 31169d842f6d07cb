"""Fold a per-tensor input normalization into the input quantization of an int8 .tflite.

Every deployable edgecnn model starts with a 1x1 depthwise convolution that turns raw
pixels into the network's input (``edgecnn.converters.deploy``). When the normalization is
the same for all three channels (``x / 127.5 - 1`` for the MobileNets, Xception and
EfficientNet-Lite), an int8 model does not need that op: the quantization of the network's
first tensor can say it. With scale ``s = 1 / 127.5`` and zero point ``z``, the integer
``q = pixel - 128`` *is* the normalized value ``s * (q - z)``, so a uint8 camera frame goes
straight into the first convolution. This is what TFLite's own quantized MobileNets do
(input mean 127.5, std 127.5). The fold is exact up to half a quantization step (the zero
point is an integer; ``-128 - offset / scale`` is rounded), which the report states.

Measured here on MobileNetV2 int8 at 224 px: the 1x1 op on the 224x224x3 input costs about
6 % of the whole network's latency. The graph is edited in the flatbuffer after conversion,
so post-training and QAT models fold alike; per-channel statistics (ImageNet mean/std) are
left as the op. Numpy and the LiteRT schema only: no TensorFlow.
"""
from __future__ import annotations

import numpy as np

TOLERANCE = 1e-4   # relative difference allowed between the channels' scale and offset


def _schema():
    from ai_edge_litert import schema_py_generated as schema

    return schema


def _opcode_name(model, op) -> str:
    schema = _schema()
    code = model.operatorCodes[op.opcodeIndex]
    value = max(int(code.builtinCode), int(code.deprecatedBuiltinCode))
    names = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
    return names.get(value, str(value))


def _buffer(model, tensor) -> np.ndarray:
    data = model.buffers[tensor.buffer].data
    return np.asarray(data if data is not None else [], np.uint8)


def _affine(model, graph, op, input_scale: float):
    """The real per-channel (multiplier, offset) of a quantized 1x1 depthwise conv, or None."""
    schema = _schema()
    if len(op.inputs) < 3 or op.inputs[2] < 0:
        return None
    weight, bias = graph.tensors[op.inputs[1]], graph.tensors[op.inputs[2]]
    if list(weight.shape) != [1, 1, 1, 3] or weight.type != schema.TensorType.INT8 \
            or bias.type != schema.TensorType.INT32:
        return None
    options = op.builtinOptions
    if options is None or options.strideH != 1 or options.strideW != 1 \
            or options.fusedActivationFunction != schema.ActivationFunctionType.NONE \
            or options.depthMultiplier not in (0, 1):
        return None
    w_scale = np.asarray(weight.quantization.scale, np.float64)
    w_zero = np.asarray(weight.quantization.zeroPoint, np.float64)
    w = (_buffer(model, weight).view(np.int8).astype(np.float64) - w_zero) * w_scale
    b = _buffer(model, bias).view(np.int32).astype(np.float64) * (input_scale * w_scale)
    return w.reshape(3), b.reshape(3)


def fold_input_normalization(model_bytes: bytes) -> tuple[bytes, dict | None]:
    """``model_bytes`` without its per-tensor input normalization op, and what was done.

    Returns the model unchanged and None when there is nothing to fold: a float input, a
    first op that is not the pixel normalization, or per-channel statistics.
    """
    import flatbuffers

    schema = _schema()
    model = schema.ModelT.InitFromPackedBuf(bytearray(model_bytes), 0)
    graph = model.subgraphs[0]
    if len(graph.inputs) != 1:
        return model_bytes, None
    pixels = graph.tensors[graph.inputs[0]]
    if pixels.type not in (schema.TensorType.UINT8, schema.TensorType.INT8):
        return model_bytes, None
    consumers = {}
    for index, op in enumerate(graph.operators):
        for t in op.inputs:
            consumers.setdefault(int(t), []).append(index)

    def only_consumer(tensor):
        users = consumers.get(int(tensor), [])
        return users[0] if len(users) == 1 else None

    quantize = None
    first = only_consumer(graph.inputs[0])
    if first is None:
        return model_bytes, None
    if _opcode_name(model, graph.operators[first]) == "QUANTIZE":  # uint8 -> int8
        quantize = first
        first = only_consumer(graph.operators[quantize].outputs[0])
        if first is None:
            return model_bytes, None
    op = graph.operators[first]
    if _opcode_name(model, op) != "DEPTHWISE_CONV_2D":
        return model_bytes, None
    int8_in = graph.tensors[op.inputs[0]]
    in_scale = float(int8_in.quantization.scale[0])
    in_zero = int(int8_in.quantization.zeroPoint[0])
    if in_zero != -128 or abs(in_scale - 1.0) > 1e-6:  # not "the integer is the pixel"
        return model_bytes, None
    affine = _affine(model, graph, op, in_scale)
    if affine is None:
        return model_bytes, None
    w, b = affine
    if w[0] <= 0 or np.ptp(w) > TOLERANCE * abs(w[0]) or \
            np.ptp(b) > TOLERANCE * max(abs(b[0]), abs(w[0])):
        return model_bytes, None  # per-channel statistics: keep the op
    scale, offset = float(w.mean()), float(b.mean())
    exact_zero = -128.0 - offset / scale      # real = scale * (pixel - 128 - zero)
    zero = int(np.round(exact_zero))
    if not -128 <= zero <= 127:
        return model_bytes, None

    normalized = op.outputs[0]
    out = graph.tensors[normalized]
    out.quantization.scale = [scale]
    out.quantization.zeroPoint = [zero]
    if quantize is not None:
        graph.operators[quantize].outputs = [normalized]
        pixels.quantization.scale = [scale]
        pixels.quantization.zeroPoint = [zero + 128]
    else:
        old = graph.inputs[0]
        graph.inputs = [normalized]
        out.name = pixels.name
        for signature in model.signatureDefs or []:
            for item in signature.inputs or []:
                if item.tensorIndex == old:
                    item.tensorIndex = normalized
    del graph.operators[first]
    builder = flatbuffers.Builder(len(model_bytes) + 1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    info = {"folded": "input normalization folded into the input quantization",
            "scale": scale, "zero_point_int8": zero,
            "max_input_error": abs(exact_zero - zero) * scale,
            "removed_op": "DEPTHWISE_CONV_2D"}
    return bytes(builder.Output()), info
