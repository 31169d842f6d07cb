"""Where the milliseconds go on this machine: per-op latency of a .tflite under LiteRT.

LiteRT's Python interpreter has no op profiler (``benchmark_model --enable_op_profiling``
is C++ only, and XNNPACK runs a whole partition as one node anyway). So each op is timed on
its own: the op is cut out into a one-op model (its weights, its input and output tensors
with their quantization, nothing else) and run through the same interpreter and delegate,
inputs filled once, ``invoke()`` timed. The whole model is timed in the same rounds,
interleaved with the ops, and every op's share is its time over the whole model's.

An op alone is faster than the same op inside the model: it starts with its weights in
cache, where in the model the ops before it have evicted them (measured here by timing the
model cut after each op: the 1280 x 1001 int8 FULLY_CONNECTED of MobileNetV2 0.35/128 takes
0.013-0.018 ms alone and 0.065-0.09 ms in the model). The ops alone account for 0.82-0.87 of
the whole model's time on this machine (medians, ``benchmarks/profile_coverage.py``). The rest is spread over the ops
in proportion to the bytes each one reads and writes (weights, inputs, outputs), so an op's
estimate is its time alone plus its share of the memory traffic the model pays, and the
estimates add up to the whole model's measured time. Every row keeps its time alone
(``alone_ms``); the report gives both sums (``coverage``: the ops alone over the whole).
numpy and ai-edge-litert only: the light install.
"""
from __future__ import annotations

import time

import numpy as np

from ..errors import EdgecnnError
from .flatbuf import opcode_name, pack, unpack
from .tflite import load_interpreter, read_model

METHOD = ("each op cut out into a one-op model and timed alone (LiteRT, same delegate and "
          "threads), interleaved with the whole model; the whole run's time the ops alone do "
          "not account for is spread over them by the bytes each reads and writes; shares "
          "are of the whole model's time")


def _is_constant(model, tensor) -> bool:
    data = model.buffers[tensor.buffer].data if tensor.buffer < len(model.buffers) else None
    return data is not None and len(data) > 0


def single_op_models(model_bytes: bytes) -> list[dict]:
    """Every op of the main graph as its own model: ``{"index", "op", "name", "bytes"}``
    (name: the op's first output tensor)."""
    model = unpack(model_bytes)
    count = len(model.subgraphs[0].operators)
    ops = []
    for index in range(count):
        one = unpack(model_bytes)   # a fresh tree per op: the cut edits it
        graph = one.subgraphs[0]
        op = graph.operators[index]
        graph.inputs = [int(t) for t in op.inputs
                        if t >= 0 and not _is_constant(one, graph.tensors[t])]
        graph.outputs = [int(t) for t in op.outputs]
        graph.operators = [op]
        one.signatureDefs = []
        name = graph.tensors[op.outputs[0]].name
        ops.append({"index": index, "op": opcode_name(one, op),
                    "name": name.decode() if isinstance(name, bytes) else str(name),
                    "bytes": pack(one, len(model_bytes))})
    return ops


class Timer:
    """An interpreter with its inputs set once (random, in each input's dtype)."""

    def __init__(self, data: bytes, threads: int, xnnpack: bool, seed: int = 0):
        self.interpreter = load_interpreter(data, threads=threads, xnnpack=xnnpack,
                                            name="op", checked=True)
        rng = np.random.default_rng(seed)
        for detail in self.interpreter.get_input_details():
            dtype = np.dtype(detail["dtype"])
            shape = detail["shape"]
            if dtype.kind in "iu":
                info = np.iinfo(dtype)
                value = rng.integers(info.min, info.max, shape, endpoint=True).astype(dtype)
            elif dtype == np.bool_:
                value = rng.integers(0, 2, shape).astype(bool)
            else:
                value = rng.standard_normal(shape).astype(dtype)
            self.interpreter.set_tensor(detail["index"], value)
        for _ in range(2):
            self.interpreter.invoke()

    def median_ms(self, min_runs: int, min_seconds: float) -> float:
        invoke, clock = self.interpreter.invoke, time.perf_counter
        times = []
        start = clock()
        while len(times) < min_runs or clock() - start < min_seconds:
            t0 = clock()
            invoke()
            times.append(clock() - t0)
        return float(np.median(times)) * 1000.0


def profile(path_or_bytes, threads: int = 1, rounds: int = 3, xnnpack: bool = True,
            op_seconds: float = 0.02, model_seconds: float = 0.5) -> dict:
    """Per-op latency estimate of a .tflite on this machine (see the module docstring).

    Returns ``{"method", "threads", "xnnpack", "rounds", "total_ms" (the whole model's
    median over rounds), "ops_sum_ms" (the ops alone), "coverage" (ops_sum / total),
    "estimate_sum_ms", "ops": [{"index", "op", "name", "ms" (estimate in the model),
    "alone_ms", "bytes", "percent"}] in graph order, "by_type": [{"op", "count", "ms",
    "percent"}] slowest first}``.
    """
    if rounds < 1:
        raise EdgecnnError(f"rounds must be >= 1, got {rounds}")
    data = read_model(path_or_bytes)
    model = unpack(data)
    if len(model.subgraphs) != 1:
        raise EdgecnnError(f"the model has {len(model.subgraphs)} subgraphs; edgecnn profile "
                           f"times single-graph models (every edgecnn model is one)")
    whole = Timer(data, threads, xnnpack)
    ops = single_op_models(data)
    timers = []
    for op in ops:
        try:
            timers.append(Timer(op["bytes"], threads, xnnpack))
        except EdgecnnError as exc:
            raise EdgecnnError(f"op {op['index']} ({op['op']}) cannot run alone: {exc}") \
                from None
    whole_ms, op_ms = [], [[] for _ in ops]
    for _ in range(rounds):
        whole_ms.append(whole.median_ms(20, model_seconds))
        for timer, times in zip(timers, op_ms):
            times.append(timer.median_ms(10, op_seconds))
    total = float(np.median(whole_ms))
    alone = [float(np.median(times)) for times in op_ms]
    traffic = _traffic(model)
    estimate = _in_context(alone, traffic, total)
    rows = [{"index": op["index"], "op": op["op"], "name": op["name"],
             "ms": round(ms, 5), "alone_ms": round(a, 5), "bytes": b}
            for op, ms, a, b in zip(ops, estimate, alone, traffic)]
    for row in rows:
        row["percent"] = round(100.0 * row["ms"] / total, 3) if total else None
    by_type: dict[str, dict] = {}
    for row in rows:
        entry = by_type.setdefault(row["op"], {"op": row["op"], "count": 0, "ms": 0.0})
        entry["count"] += 1
        entry["ms"] += row["ms"]
    summary = sorted(by_type.values(), key=lambda e: -e["ms"])
    for entry in summary:
        entry["ms"] = round(entry["ms"], 5)
        entry["percent"] = round(100.0 * entry["ms"] / total, 3) if total else None
    ops_sum = sum(alone)
    return {"method": METHOD, "threads": int(threads), "xnnpack": bool(xnnpack),
            "rounds": int(rounds), "total_ms": round(total, 5),
            "total_ms_rounds": [round(t, 5) for t in whole_ms], "ops_sum_ms": round(ops_sum, 5),
            "coverage": round(ops_sum / total, 4) if total else None,
            "estimate_sum_ms": round(sum(estimate), 5), "ops": rows, "by_type": summary}


def _traffic(model) -> list[int]:
    """Bytes each op of the main graph reads and writes: every input (weights included) and
    output tensor, by shape and type."""
    sizes = {0: 4, 1: 2, 2: 4, 3: 1, 4: 8, 6: 1, 7: 2, 9: 1, 10: 8, 16: 4}
    graph = model.subgraphs[0]
    result = []
    for op in graph.operators:
        total = 0
        for t in list(op.inputs) + list(op.outputs):
            if t < 0:
                continue
            tensor = graph.tensors[t]
            shape = [int(d) for d in (tensor.shape if tensor.shape is not None else [])]
            total += int(np.prod(shape, dtype=np.int64)) * sizes.get(int(tensor.type), 4)
        result.append(total)
    return result


def _in_context(alone: list[float], traffic: list[int], total: float) -> list[float]:
    """Each op's estimated time inside the model: its time alone plus the part of the
    whole run the ops alone miss, in proportion to its bytes (scaled down alike when the
    ops alone already take longer than the whole)."""
    missing = total - sum(alone)
    if missing <= 0 or not sum(traffic):
        factor = total / sum(alone) if sum(alone) else 0.0
        return [a * factor for a in alone]
    return [a + missing * b / sum(traffic) for a, b in zip(alone, traffic)]
