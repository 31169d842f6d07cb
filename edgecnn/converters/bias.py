"""Bias correction for post-training int8: undo the mean error that rounding the weights
puts on every convolution's output.

Rounding a layer's weights to int8 (per output channel, symmetric, as the TFLite converter
does) changes each output by ``(Wq - W) . x``. Over many positions that error has a mean,
``(Wq - W) . E[x]``, which is not noise: every image gets it, the next layers carry it, and
in a deep stack of depthwise convolutions (nine weights per channel, inputs that are all
positive after ReLU6) those means add up. Subtracting the mean from the layer's bias
removes it exactly, with no change to the graph, its ops or its speed (Nagel et al., "Data-
Free Quantization Through Weight Equalization and Bias Correction", ICCV 2019, section 4.2,
here in its empirical form: E[x] is measured on the calibration images).

Measured with the published EfficientNet-Lite0/1/2 weights on 250 ImageNet photos, calibrated
on 250 others (``benchmarks/int8_error_sources.py``, results in ``benchmarks/results/``): the
int8 weights alone put an error of 0.116 / 0.106 / 0.087 (RMS) on the logits, 0.055 / 0.045
/ 0.032 once corrected; the whole int8 model's logit error goes from 0.135 / 0.129 / 0.100 to
0.090 / 0.089 / 0.086. The activation ranges were the smaller part: giving every linear
bottleneck and residual tensor the clipping range that minimizes its squared error instead
of the calibrated min/max (1.3-3.5x finer steps) moved the logit error only to 0.131 / 0.122 / 0.093
and lost Lite1 more top-1 than it saved.

The correction needs the float weights, which the int8 graph no longer has: they come from
the float32 conversion of the same traced function, whose weight tensors have the same names.
The input means are measured in that float graph. A layer whose weights cannot be matched is
left as it is (and counted).
"""
from __future__ import annotations

import numpy as np

from ..runtime.flatbuf import opcode_name, pack, unpack
from .folds import ABSORB, _buffer

IMAGES = 32   # calibration images used for the input means (the mean converges fast)


def _layers(model, graph):
    """Weight tensor name -> op, for every convolution / fully connected op with weights."""
    found = {}
    for op in graph.operators:
        if opcode_name(model, op) in ABSORB and len(op.inputs) > 1 and op.inputs[1] >= 0:
            found[graph.tensors[op.inputs[1]].name] = op
    return found


def _float_array(model, tensor) -> np.ndarray | None:
    if tensor.type != 0:   # FLOAT32
        return None
    data = _buffer(model, tensor)
    if data.size == 0:
        return None
    return data.view(np.float32).reshape(tensor.shape)


def _input_means(float_bytes: bytes, tensors: set, images: np.ndarray) -> dict:
    """Per-channel mean of every tensor in ``tensors`` of the float graph over ``images``."""
    import warnings

    from ai_edge_litert.interpreter import Interpreter

    with warnings.catch_warnings():   # "for debugging purposes only": the memory is wanted
        warnings.simplefilter("ignore")
        interpreter = Interpreter(model_content=float_bytes,
                                  experimental_preserve_all_tensors=True)
    interpreter.allocate_tensors()
    index = interpreter.get_input_details()[0]["index"]
    sums = {}
    for image in images:
        interpreter.set_tensor(index, image[None].astype(np.float32))
        interpreter.invoke()
        for t in tensors:
            x = interpreter.get_tensor(t)
            sums[t] = sums.get(t, 0.0) + x.reshape(-1, x.shape[-1]).astype(np.float64).mean(0)
    return {t: s / len(images) for t, s in sums.items()}


def _mean_error(kind: str, delta: np.ndarray, mean: np.ndarray) -> np.ndarray | None:
    """E[(Wq - W) . x] per output channel, for weights laid out as TFLite stores them."""
    if kind == "DEPTHWISE_CONV_2D":   # (1, kh, kw, C * multiplier)
        taps = delta.reshape(-1, delta.shape[-1]).sum(0)
        if taps.size % mean.size:
            return None
        return taps * np.repeat(mean, taps.size // mean.size)
    if kind == "CONV_2D":             # (O, kh, kw, I)
        return None if delta.shape[-1] != mean.size else np.einsum("okli,i->o", delta, mean)
    if delta.ndim != 2 or delta.shape[1] != mean.size:   # FULLY_CONNECTED (O, I)
        return None
    return delta @ mean


def correct_bias(int8_bytes: bytes, float_bytes: bytes, images: np.ndarray,
                 limit: int = IMAGES) -> tuple[bytes, dict]:
    """The int8 model with every layer's weight-rounding mean error taken out of its bias.

    int8_bytes: the converter's integer model (before edgecnn's graph folds);
    float_bytes: the float32 conversion of the same function; images: calibration pixels
    (N, H, W, 3), the first ``limit`` are used. Returns the model and ``{"layers": corrected,
    "skipped": unmatched, "images": used}``.
    """
    images = np.asarray(images)[:limit]
    model, fmodel = unpack(int8_bytes), unpack(float_bytes)
    graph, fgraph = model.subgraphs[0], fmodel.subgraphs[0]
    float_layers = _layers(fmodel, fgraph)
    plan, skipped = [], 0
    for name, op in _layers(model, graph).items():
        weights, bias_index = graph.tensors[op.inputs[1]], (op.inputs[2] if len(op.inputs) > 2
                                                            else -1)
        fop = float_layers.get(name)
        q = weights.quantization
        w = None if fop is None else _float_array(fmodel, fgraph.tensors[fop.inputs[1]])
        if (w is None or bias_index < 0 or weights.type != 9 or q is None or q.scale is None
                or graph.tensors[bias_index].type != 2):   # int8 weights, int32 bias
            skipped += 1
            continue
        plan.append((op, fop, w))
    means = _input_means(float_bytes, {int(fop.inputs[0]) for _, fop, _ in plan}, images) \
        if plan else {}
    corrected = 0
    for op, fop, w in plan:
        kind = opcode_name(model, op)
        weights = graph.tensors[op.inputs[1]]
        scale = np.asarray(weights.quantization.scale, np.float64)
        axis = int(weights.quantization.quantizedDimension or 0)
        shape = [1] * w.ndim
        shape[axis] = -1
        stored = _buffer(model, weights).view(np.int8).reshape(w.shape).astype(np.float64)
        delta = stored * (scale.reshape(shape) if scale.size > 1 else scale[0]) - w
        error = _mean_error(kind, delta, means[int(fop.inputs[0])])
        bias = graph.tensors[op.inputs[2]]
        bias_scale = np.asarray(bias.quantization.scale, np.float64)
        values = _buffer(model, bias).view(np.int32).astype(np.float64)
        if error is None or error.size != values.size:
            skipped += 1
            continue
        values = np.clip(np.round(values - error / bias_scale), -2**31, 2**31 - 1)
        model.buffers[bias.buffer].data = values.astype(np.int32).view(np.uint8)
        corrected += 1
    info = {"layers": corrected, "skipped": skipped, "images": int(len(images))}
    if not corrected:
        return int8_bytes, info
    return pack(model, len(int8_bytes)), info
