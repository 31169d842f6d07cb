"""Graph folds on a converted int8 .tflite: fewer ops, the same integer arithmetic.

Graph edits applied to the flatbuffer after conversion (so post-training and QAT models
fold alike), numpy and the LiteRT schema only (no TensorFlow):

* ``fold_input_normalization``: a per-tensor input normalization becomes the input
  quantization (below).
* ``fold_hard_swish_sixth``: hard-swish's ``1/6`` moves into the weight scales of the
  layers that read it (see its docstring).
* ``fit_xnnpack_scales``: an int8 ADD whose scales XNNPACK refuses (MobileNetV3's
  ``x + 3`` with tiny activations) becomes a 1x1 depthwise convolution, or its small input
  is requantized to the delegate's bound (see its docstring).
* ``fuse_hard_swish`` (float graphs): the three ops become one HARD_SWISH, which XNNPACK
  runs natively in float (and does not in int8, hence the three-op form).

**Input normalization.**
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


from ..runtime.flatbuf import opcode_name, pack, schema as _schema, unpack
from ..runtime.xnnpack import ADD_RATIO, CONV_RATIO, scale_refusal, tensor_scale


def _graph_maps(graph):
    producer, consumers = {}, {}
    for index, op in enumerate(graph.operators):
        for t in op.outputs:
            producer[int(t)] = index
        for t in op.inputs:
            if t >= 0:
                consumers.setdefault(int(t), []).append(index)
    return producer, consumers


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
    schema = _schema()
    model = unpack(model_bytes)
    graph = model.subgraphs[0]
    if len(graph.inputs) != 1:
        return model_bytes, None
    pixels = graph.tensors[graph.inputs[0]]
    if pixels.type not in (schema.TensorType.UINT8, schema.TensorType.INT8):
        return model_bytes, None
    _, consumers = _graph_maps(graph)

    def only_consumer(tensor):
        users = consumers.get(int(tensor), [])
        return users[0] if len(users) == 1 else None

    quantize = None
    first = only_consumer(graph.inputs[0])
    if first is None:
        return model_bytes, None
    if opcode_name(model, graph.operators[first]) == "QUANTIZE":  # uint8 -> int8
        quantize = first
        first = only_consumer(graph.operators[quantize].outputs[0])
        if first is None:
            return model_bytes, None
    op = graph.operators[first]
    if opcode_name(model, op) != "DEPTHWISE_CONV_2D":
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
    if not _requantize(model, graph, consumers, int(normalized), scale, zero):
        return model_bytes, None
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
    info = {"folded": "input normalization folded into the input quantization",
            "scale": scale, "zero_point_int8": zero,
            "max_input_error": abs(exact_zero - zero) * scale,
            "removed_op": "DEPTHWISE_CONV_2D"}
    return pack(model, len(model_bytes)), info


def _requantize(model, graph, consumers, tensor: int, scale: float, zero: int) -> bool:
    """Give ``tensor`` new quantization parameters, and keep its readers computing the same
    real values: a PAD's output follows, a convolution's int32 bias is re-expressed in the
    new input scale (bias scale = input scale x weight scale). False, with nothing
    changed, when some reader is of another kind."""
    plan, stack = [], [tensor]
    while stack:
        t = stack.pop()
        plan.append(("tensor", t))
        for index in consumers.get(t, []):
            op = graph.operators[index]
            name = opcode_name(model, op)
            if int(op.inputs[0]) != t or list(op.inputs).count(t) != 1:
                return False
            if name in ("PAD", "PADV2") and (name == "PAD" or op.inputs[2] < 0):
                stack.append(int(op.outputs[0]))
            elif name in ABSORB:
                plan.append(("bias", index))
            else:
                return False
    old = float(graph.tensors[tensor].quantization.scale[0])
    for kind, item in plan:
        if kind == "tensor":
            q = graph.tensors[item].quantization
            q.scale, q.zeroPoint = [scale], [zero]
            continue
        op = graph.operators[item]
        if len(op.inputs) < 3 or op.inputs[2] < 0:
            continue
        bias = graph.tensors[op.inputs[2]]
        values = _buffer(model, bias).view(np.int32).astype(np.float64) * (old / scale)
        model.buffers[bias.buffer].data = np.clip(np.round(values), -2**31, 2**31 - 1) \
            .astype(np.int32).view(np.uint8)
        weight_scale = np.asarray(graph.tensors[op.inputs[1]].quantization.scale, np.float32)
        bias.quantization.scale = np.float32(scale) * weight_scale
    return True


# --- hard-swish ------------------------------------------------------------------------------

SIXTH = 1.0 / 6.0
ABSORB = {"CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED"}   # input 0 times weights
PASS = {"MEAN", "MUL", "RESHAPE"}    # out = f(in) * k when in carries a factor k


def _constant(model, graph, index, producer=None):
    """The real value of a scalar constant tensor (quantized, float32, or float16 behind a
    DEQUANTIZE), or None."""
    values = _constant_values(model, graph, index, producer or {})
    return float(values[0]) if values is not None and values.size == 1 else None


def _sixth_mul(model, graph, producer, consumers, op_index, alone=False):
    """(M1, x, ADD) when operator ``op_index`` is hard-swish's final MUL
    ``(x * 1/6) * relu6(x+3)``: M1 is the ``x * 1/6`` MUL read only by it (and, with
    ``alone``, ADD is read only by it too)."""
    schema = _schema()
    op = graph.operators[op_index]
    if opcode_name(model, op) != "MUL" or len(op.inputs) != 2:
        return None
    for a, r in (op.inputs, op.inputs[::-1]):
        m1, add = producer.get(int(a)), producer.get(int(r))
        if m1 is None or add is None or consumers.get(int(a)) != [op_index] or \
                (alone and consumers.get(int(r)) != [op_index]):
            continue
        m1_op, add_op = graph.operators[m1], graph.operators[add]
        if opcode_name(model, m1_op) != "MUL" or opcode_name(model, add_op) != "ADD":
            continue
        if add_op.builtinOptions is None or add_op.builtinOptions.fusedActivationFunction != \
                schema.ActivationFunctionType.RELU6:
            continue
        for x, c in (m1_op.inputs, m1_op.inputs[::-1]):
            sixth = _constant(model, graph, c, producer)
            if sixth is None or abs(sixth - SIXTH) > 0.01 * SIXTH or x not in add_op.inputs:
                continue
            other = [t for t in add_op.inputs if t != x]
            three = _constant(model, graph, other[0], producer) if len(other) == 1 else None
            if three is not None and abs(three - 3.0) < 0.03:
                return m1, int(x), add
    return None


def _scale_free_activation(op) -> bool:
    """No fused activation, or ReLU (which commutes with a positive factor)."""
    return getattr(op.builtinOptions, "fusedActivationFunction", 0) in (0, 1)


def _weights_alone(graph, consumers, op, index) -> bool:
    return consumers.get(int(op.inputs[1])) == [index]


def _absorbers(model, graph, producer, consumers, tensor, outputs, seen):
    """How a factor on ``tensor`` can be carried, or None when some reader cannot take it:
    (absorb: ops whose weights take it, passing: ops whose output scale follows it, emit:
    convolutions made to carry it too, so that an ADD of ``tensor`` and their output adds
    like with like)."""
    if tensor in outputs:
        return None
    absorb, passing, emit = [], [], []
    for index in consumers.get(tensor, []):
        op = graph.operators[index]
        name = opcode_name(model, op)
        if list(op.inputs).count(tensor) != 1 or index in seen:
            return None
        seen.add(index)
        if name in ABSORB and int(op.inputs[0]) == tensor and \
                _weights_alone(graph, consumers, op, index):
            absorb.append(index)
            continue
        if name in PASS and getattr(op.builtinOptions, "fusedActivationFunction", 0) == 0:
            pass
        elif name == "ADD" and _scale_free_activation(op):  # a residual: x + conv(...)
            other = [int(t) for t in op.inputs if int(t) != tensor][0]
            source = producer.get(other)
            conv = graph.operators[source] if source is not None else None
            if conv is None or opcode_name(model, conv) not in ("CONV_2D",
                                                                  "DEPTHWISE_CONV_2D") \
                    or not _scale_free_activation(conv) or consumers.get(other) != [index] \
                    or other in outputs or not _weights_alone(graph, consumers, conv, source):
                return None
            emit.append(source)
        else:
            return None
        below = _absorbers(model, graph, producer, consumers, int(op.outputs[0]), outputs, seen)
        if below is None:
            return None
        absorb += below[0]
        passing += [index] + below[1]
        emit += below[2]
    return (absorb, passing, emit) if absorb else None


def _scale_weights(graph, index, factor: float, output: bool = False) -> None:
    """Multiply an op's weight scales (and, with ``output``, its output scale) by factor;
    its bias scale follows (input scale x weight scale)."""
    op = graph.operators[index]
    q = graph.tensors[op.inputs[1]].quantization
    q.scale = np.asarray(q.scale, np.float32) * np.float32(factor)
    if output:
        out = graph.tensors[op.outputs[0]].quantization
        out.scale = np.asarray(out.scale, np.float32) * np.float32(factor)
    if len(op.inputs) > 2 and op.inputs[2] >= 0:
        in_scale = np.float32(graph.tensors[op.inputs[0]].quantization.scale[0])
        graph.tensors[op.inputs[2]].quantization.scale = in_scale * q.scale


def fold_hard_swish_sixth(model_bytes: bytes) -> tuple[bytes, int]:
    """Drop the ``x * 1/6`` MUL of every hard-swish whose readers can absorb the 1/6.

    edgecnn writes hard-swish as ``(x * 1/6) * relu6(x + 3)``: three int8 ops XNNPACK runs
    (the fused HARD_SWISH op it does not run in int8). Feeding ``x`` straight into the last
    MUL gives ``6 * hswish(x)``; declaring that tensor's scale 6x larger leaves its integers
    those of ``hswish(x)``, and the 1/6 goes into the weight scales of the convolutions that
    read it (directly or through MEAN, MUL and RESHAPE, whose output scales follow). Where a
    residual ADD reads it, the convolution producing the ADD's other input is scaled up
    by 6 as well (weights and output), so the sum carries the factor on to the next
    convolution. Int8 weights and int32 biases are unchanged (bias scale = input scale x
    weight scale). A hard-swish that reaches a graph output or any other op keeps its
    three ops.
    Returns the model and the number of hard-swishes folded.
    """
    schema = _schema()
    model = unpack(model_bytes)
    graph = model.subgraphs[0]
    outputs = {int(t) for t in graph.outputs}
    removed, folded = set(), 0
    producer, consumers = _graph_maps(graph)
    for index in range(len(graph.operators)):
        if graph.tensors[graph.operators[index].outputs[0]].type not in (3, 9):
            continue   # a float op (a layer kept in float): nothing to fold
        match = _sixth_mul(model, graph, producer, consumers, index)
        if match is None or match[0] in removed:
            continue
        m1, x, _ = match
        g = int(graph.operators[index].outputs[0])
        found = _absorbers(model, graph, producer, consumers, g, outputs, set())
        if found is None:
            continue
        absorb, passing, emit = found
        for t in [g] + [int(graph.operators[p].outputs[0]) for p in passing]:
            q = graph.tensors[t].quantization
            q.scale = np.asarray(q.scale, np.float32) * np.float32(6.0)
        for e in emit:
            _scale_weights(graph, e, 6.0, output=True)
        for a in absorb:
            _scale_weights(graph, a, SIXTH)
        op = graph.operators[index]
        op.inputs = [x if int(t) == int(graph.operators[m1].outputs[0]) else t
                     for t in op.inputs]
        removed.add(m1)
        folded += 1
        producer, consumers = _graph_maps(graph)  # the last MUL now reads x
    if not folded:
        return model_bytes, 0
    graph.operators = [op for i, op in enumerate(graph.operators) if i not in removed]
    return pack(model, len(model_bytes)), folded


def fuse_hard_swish(model_bytes: bytes) -> tuple[bytes, int]:
    """Replace every float ``(x * 1/6) * relu6(x + 3)`` (three ops) by one HARD_SWISH op.

    The Keras layer keeps the three-op form so that int8 graphs stay whole on XNNPACK; a
    float graph is faster with the fused op, which XNNPACK runs in float. Returns the model
    and the number of hard-swishes fused.
    """
    schema = _schema()
    model = unpack(model_bytes)
    graph = model.subgraphs[0]
    removed, fused, code = set(), 0, None
    producer, consumers = _graph_maps(graph)
    for index in range(len(graph.operators)):
        op = graph.operators[index]
        if index in removed or any(graph.tensors[t].type != schema.TensorType.FLOAT32
                                   for t in list(op.inputs) + list(op.outputs)):
            continue
        match = _sixth_mul(model, graph, producer, consumers, index, alone=True)
        if match is None or match[0] in removed or match[2] in removed:
            continue
        m1, x, add = match
        if code is None:
            code = _opcode_index(model, schema.BuiltinOperator.HARD_SWISH)
        op.opcodeIndex = code
        op.inputs = [x]
        op.builtinOptionsType, op.builtinOptions = schema.BuiltinOptions.NONE, None
        removed |= {m1, add}
        fused += 1
        producer, consumers = _graph_maps(graph)  # the fused op now reads x
    if not fused:
        return model_bytes, 0
    graph.operators = [op for i, op in enumerate(graph.operators) if i not in removed]
    _drop_dead_ops(graph)
    return pack(model, len(model_bytes)), fused


def _drop_dead_ops(graph) -> None:
    """Remove ops none of whose outputs is read (e.g. the DEQUANTIZE of a float16 constant
    that only a fused-away op used)."""
    outputs = {int(t) for t in graph.outputs}
    while True:
        _, consumers = _graph_maps(graph)
        dead = [i for i, op in enumerate(graph.operators)
                if not any(int(t) in consumers or int(t) in outputs for t in op.outputs)]
        if not dead:
            return
        graph.operators = [op for i, op in enumerate(graph.operators) if i not in dead]


def _opcode_index(model, builtin: int, version: int = 1) -> int:
    """The index of an operator code, added (at ``version``) when the model has none."""
    schema = _schema()
    for i, code in enumerate(model.operatorCodes):
        if max(int(code.builtinCode), int(code.deprecatedBuiltinCode)) == builtin:
            return i
    code = schema.OperatorCodeT()
    code.builtinCode = builtin
    code.deprecatedBuiltinCode = min(builtin, 127)
    code.version = version
    model.operatorCodes.append(code)
    return len(model.operatorCodes) - 1


# --- XNNPACK's scale bounds --------------------------------------------------------------------

INT32_MAX = 2 ** 31 - 1


def _constant_values(model, graph, index, producer) -> np.ndarray | None:
    """The real values of a constant tensor (quantized, float32, or behind a DEQUANTIZE) as
    a flat float64 array, or None when the tensor is computed."""
    schema = _schema()
    tensor = graph.tensors[index]
    data = _buffer(model, tensor)
    if data.size == 0:
        op = graph.operators[producer[int(index)]] if int(index) in producer else None
        if op is not None and opcode_name(model, op) == "DEQUANTIZE":
            return _constant_values(model, graph, op.inputs[0], producer)
        return None
    if tensor.type == schema.TensorType.FLOAT32:
        return data.view(np.float32).astype(np.float64)
    if tensor.type == schema.TensorType.FLOAT16:
        return data.view(np.float16).astype(np.float64)
    q = tensor.quantization
    if q is None or q.scale is None or len(q.scale) != 1:
        return None
    if tensor.type == schema.TensorType.INT8:
        values = data.view(np.int8)
    elif tensor.type == schema.TensorType.UINT8:
        values = data
    else:
        return None
    zero = int(q.zeroPoint[0]) if q.zeroPoint is not None and len(q.zeroPoint) else 0
    return float(q.scale[0]) * (values.astype(np.float64) - zero)


def _add_tensor(model, graph, name, shape, dtype, values, scales, dimension) -> int:
    schema = _schema()
    buffer = schema.BufferT()
    buffer.data = np.ascontiguousarray(values).view(np.uint8).reshape(-1)
    model.buffers.append(buffer)
    q = schema.QuantizationParametersT()
    q.scale = np.asarray(scales, np.float32)
    q.zeroPoint = np.zeros(len(scales), np.int64)
    q.quantizedDimension = dimension
    tensor = schema.TensorT()
    tensor.name, tensor.shape, tensor.type = name, np.asarray(shape, np.int32), dtype
    tensor.buffer, tensor.quantization = len(model.buffers) - 1, q
    graph.tensors.append(tensor)
    return len(graph.tensors) - 1


def _add_as_depthwise(model, graph, op, x: int, values: np.ndarray) -> bool:
    """Turn ``ADD(x, constant)`` into a 1x1 depthwise convolution of weight 1 whose bias is
    the constant (same output tensor and fused activation). False when it cannot be: x not
    a 4-D int8 tensor, a constant that does not broadcast over the channels, or a scale
    ratio out of even a convolution's range."""
    schema = _schema()
    xt, yt = graph.tensors[x], graph.tensors[op.outputs[0]]
    if xt.type != schema.TensorType.INT8 or len(xt.shape) != 4 or values.size not in (
            1, int(xt.shape[3])):
        return False
    channels = int(xt.shape[3])
    s_x, s_y = tensor_scale(xt), tensor_scale(yt)
    values = np.broadcast_to(values.reshape(-1), (channels,))
    # weight 1 = q_w * s_w: the largest q_w (finest requantization factor) whose bias
    # value / (s_x * s_w) fits in int32
    peak = float(np.abs(values).max())
    q_w = 127 if peak == 0 else int(min(127, INT32_MAX * s_x / peak / 1.01))
    if q_w < 1 or not CONV_RATIO[0] <= s_x / q_w / s_y < CONV_RATIO[1]:
        return False
    s_w = np.float32(1.0 / q_w)
    bias_scale = np.float32(np.float64(np.float32(s_x)) * np.float64(s_w))
    bias = np.round(values / np.float64(bias_scale)).astype(np.int32)
    stem = xt.name.decode() if isinstance(xt.name, bytes) else str(xt.name)
    weight = _add_tensor(model, graph, f"{stem}/add_as_depthwise/weight", [1, 1, 1, channels],
                         schema.TensorType.INT8, np.full(channels, q_w, np.int8),
                         [s_w] * channels, 3)
    bias_t = _add_tensor(model, graph, f"{stem}/add_as_depthwise/bias", [channels],
                         schema.TensorType.INT32, bias, [bias_scale] * channels, 0)
    options = schema.DepthwiseConv2DOptionsT()
    options.padding = schema.Padding.VALID
    options.strideW = options.strideH = options.depthMultiplier = 1
    options.dilationWFactor = options.dilationHFactor = 1
    options.fusedActivationFunction = getattr(op.builtinOptions, "fusedActivationFunction", 0)
    op.opcodeIndex = _opcode_index(model, schema.BuiltinOperator.DEPTHWISE_CONV_2D, version=3)
    op.inputs = [x, weight, bias_t]
    op.builtinOptionsType = schema.BuiltinOptions.DepthwiseConv2DOptions
    op.builtinOptions = options
    return True


#: ops whose int8 output keeps the input's scale (and zero point)
_SAME_SCALE = ("MAX_POOL_2D", "RESHAPE")
#: ops that requantize: their output scale may be chosen freely
_REQUANTIZING = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED")


def _raise_small_inputs(model, graph, producer, consumers, outputs, index) -> int:
    """Raise to XNNPACK's bound the scale of each input of the residual ADD ``index``
    whose scale is below ``2**-10`` of the output's (see ``fit_xnnpack_scales``); the
    number of inputs raised."""
    op = graph.operators[index]
    out = tensor_scale(graph.tensors[op.outputs[0]])
    if not out:
        return 0
    target = np.float32(out * ADD_RATIO[0] * 1.001)  # inside the bound after float32 rounding
    raised = 0
    for tensor in (int(t) for t in op.inputs):
        scale = tensor_scale(graph.tensors[tensor])
        if not scale or scale / out >= ADD_RATIO[0]:
            continue
        chain, reader, t = [], index, tensor
        while True:
            source = producer.get(t)
            if t in outputs or consumers.get(t) != [reader] or source is None:
                chain = None
                break
            chain.append(t)
            name = opcode_name(model, graph.operators[source])
            if name in _REQUANTIZING:
                break
            if name not in _SAME_SCALE:
                chain = None
                break
            reader, t = source, int(graph.operators[source].inputs[0])
        if not chain:
            continue
        for t in chain:
            graph.tensors[t].quantization.scale = np.asarray([target], np.float32)
        raised += 1
    return raised


def fit_xnnpack_scales(model_bytes: bytes, everywhere: bool = False) -> tuple[bytes, dict]:
    """Rewrite every int8 ADD that XNNPACK would refuse for its scales (see
    ``runtime.xnnpack``) into a form it runs.

    * ``x + constant`` (MobileNetV3's ``x + 3`` in hard-swish and hard-sigmoid): when x's
      scale is below ``2**-10`` of the output's, the ADD becomes a 1x1 depthwise
      convolution of weight 1 with the constant as its bias: the same sum, the same output
      tensor and fused ReLU6, and a convolution's requantization factor may go down to
      ``2**-32``. Random weights without BatchNorm statistics make such ADDs (activations
      of ~1e-6 next to 3); so can a trained layer that is nearly dead.
    * ``a + b`` of two computed tensors (a residual) with ``a``'s scale below ``2**-10`` of
      the output's: the converter's quantizer usually gives both inputs scales close to the
      output's, but a branch that random weights have collapsed (Xception at 128 px with
      its initial BatchNorm statistics: a branch ~1e-3 of the shortcut) keeps its own.
      Such an input spans less than 127 / 1024 of one output step, so its precision is
      worth nothing in the sum: its scale is raised to the bound, on the tensor and back
      through the ops that keep their input's scale (MAX_POOL_2D, RESHAPE) up to the
      convolution that makes it, whose requantization then rounds to the coarser grid.
      Every tensor changed must be read by that chain alone. Integer weights and biases
      stay as they are (a bias's scale is the convolution's input x weight scale).
    One still refused is named in the report.

    ``everywhere`` rewrites every ``x + constant`` ADD, refused or not (to measure and test
    the rewrite). Returns the model and ``{"add_as_depthwise": n, "add_input_rescaled":
    m}``; the model is unchanged when nothing was rewritten.
    """
    schema = _schema()
    model = unpack(model_bytes)
    graph = model.subgraphs[0]
    producer, consumers = _graph_maps(graph)
    outputs = {int(t) for t in graph.outputs}
    info = {"add_as_depthwise": 0, "add_input_rescaled": 0}
    for index, op in enumerate(graph.operators):
        if opcode_name(model, op) != "ADD" or not (everywhere or
                                                     scale_refusal(model, graph, op)):
            continue
        constants = [_constant_values(model, graph, t, producer) for t in op.inputs]
        if sum(c is not None for c in constants) == 1:
            x = int(op.inputs[0] if constants[0] is None else op.inputs[1])
            values = constants[1] if constants[0] is None else constants[0]
            if _add_as_depthwise(model, graph, op, x, values):
                info["add_as_depthwise"] += 1
        elif not any(c is not None for c in constants):
            info["add_input_rescaled"] += _raise_small_inputs(
                model, graph, producer, consumers, outputs, index)
    if not any(info.values()):
        return model_bytes, info
    _drop_dead_ops(graph)   # a DEQUANTIZE that fed only a rewritten ADD's constant
    return pack(model, len(model_bytes)), info


def add_serving_signature(model_bytes: bytes, inputs=("pixels",),
                          outputs=("output_0",)) -> bytes:
    """The model with a ``serving_default`` signature naming its inputs and outputs (what a
    SavedModel-based conversion writes, and LiteRT's signature runners and Android's
    ``runSignature`` look up); unchanged when it has signatures already."""
    schema = _schema()
    model = unpack(model_bytes)
    if model.signatureDefs:
        return model_bytes
    graph = model.subgraphs[0]

    def tensor_maps(indices, names):
        maps = []
        for index, name in zip(indices, names):
            item = schema.TensorMapT()
            item.name, item.tensorIndex = name, int(index)
            maps.append(item)
        return maps

    signature = schema.SignatureDefT()
    signature.signatureKey, signature.subgraphIndex = "serving_default", 0
    signature.inputs = tensor_maps(graph.inputs, inputs)
    signature.outputs = tensor_maps(graph.outputs, outputs)
    model.signatureDefs = [signature]
    return pack(model, len(model_bytes))
