"""Why XNNPACK refuses an int8 op: the quantization-scale bounds of its operators.

XNNPACK takes a quantized elementwise op only when its requantization factor is in range
(XNNPACK ``src/operators/binary-elementwise-nd.c``): an ADD needs every input's scale over
the output's scale in ``[2**-10, 2**8)``, a MUL needs ``input1 x input2 / output`` in
``[2**-16, 2**8)``. A convolution's factor ``input x weight / output`` only has to be in
``[2**-32, 2**8)`` (``src/params-init.c``), which is why a 1x1 depthwise convolution can do
an ADD's work when the ADD's ratio is out of range (``converters.folds``).

Random weights are the usual way in: without BatchNorm statistics, activations shrink layer
after layer, so in MobileNetV3's ``x + 3`` the input ``x`` is ~1e-6 of the constant 3 that
fills the output range, and the ratio falls far below ``2**-10``.

Numpy and the LiteRT schema only (no TensorFlow).
"""
from __future__ import annotations

import numpy as np

from .flatbuf import opcode_name, schema as _schema, unpack

ADD_RATIO = (2.0 ** -10, 2.0 ** 8)      # each input scale / output scale
MUL_RATIO = (2.0 ** -16, 2.0 ** 8)      # input1 scale x input2 scale / output scale
CONV_RATIO = (2.0 ** -32, 2.0 ** 8)     # input scale x weight scale / output scale
INT8_ELEMENTWISE = {"ADD": ADD_RATIO, "MUL": MUL_RATIO}


def tensor_scale(tensor) -> float | None:
    """The per-tensor scale of a quantized int8/uint8 tensor, or None."""
    schema = _schema()
    q = tensor.quantization
    if tensor.type not in (schema.TensorType.INT8, schema.TensorType.UINT8) or q is None \
            or q.scale is None or len(q.scale) != 1:
        return None
    return float(q.scale[0])


def in_range(value: float, bounds: tuple[float, float]) -> bool:
    return bounds[0] <= value < bounds[1]


def scale_refusal(model, graph, op) -> str | None:
    """Why XNNPACK refuses this quantized ADD or MUL for its scales, or None."""
    name = opcode_name(model, op)
    if name not in INT8_ELEMENTWISE or len(op.inputs) != 2:
        return None
    scales = [tensor_scale(graph.tensors[t]) for t in list(op.inputs) + list(op.outputs[:1])]
    if any(s is None or s <= 0 for s in scales):
        return None
    *inputs, out = scales
    if name == "ADD":
        for i, s in enumerate(inputs):
            if not in_range(s / out, ADD_RATIO):
                return (f"input {i} / output scale ratio {s / out:.3g} outside XNNPACK's "
                        f"[2^-10, 2^8) for a quantized ADD")
        return None
    ratio = inputs[0] * inputs[1] / out
    if not in_range(ratio, MUL_RATIO):
        return (f"product / output scale ratio {ratio:.3g} outside XNNPACK's [2^-16, 2^8) "
                f"for a quantized MUL")
    return None


def scale_refusals(model_bytes: bytes) -> dict[int, str]:
    """``{op index: reason}`` for every int8 ADD/MUL of the main graph that XNNPACK refuses
    for its quantization scales."""
    model = unpack(model_bytes)
    graph = model.subgraphs[0]
    found = {}
    for index, op in enumerate(graph.operators):
        reason = scale_refusal(model, graph, op)
        if reason:
            found[index] = reason
    return found
