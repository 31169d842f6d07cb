"""Latency benchmarking of a .tflite on this machine, the way TFLite's ``benchmark_model``
measures it: load (init), a first inference, warmup runs, then timed steady-state runs of
``Interpreter.invoke`` only (inputs are set once, outside the timed region).

numpy and ai-edge-litert only: works on the light install, never imports TensorFlow.
"""
from __future__ import annotations

import gc
import os
from array import array
import platform
import sys
import time

import numpy as np

from ..errors import EdgecnnError
from .card import ModelCard
from .tflite import (check_runs, input_spec, load_interpreter, quantize_pixels,
                     read_model)

# benchmark_model's defaults (tensorflow/lite/tools/benchmark/benchmark_model.cc): at least
# 50 runs and at least 1 s; at least 1 warmup run and at least 0.5 s of warmup; 150 s cap.
DEFAULT_RUNS = 50
DEFAULT_MIN_SECONDS = 1.0
DEFAULT_WARMUP = 1
DEFAULT_WARMUP_SECONDS = 0.5
DEFAULT_MAX_SECONDS = 150.0
NOISY_RATIO = 1.5  # p90 / p50 above this: the machine is too busy to trust the numbers

# The keys every result has (the JSON/CSV schema of ``edgecnn bench``).
RESULT_KEYS = ("model", "source", "threads", "xnnpack", "runs", "init_ms", "first_ms",
               "warmup_ms", "mean_ms", "std_ms", "min_ms", "p50_ms", "p90_ms", "p99_ms",
               "max_ms", "throughput_ips", "size_bytes", "peak_rss_growth_bytes",
               "peak_rss_growth_mb")


# --- resident memory --------------------------------------------------------------------

def _proc_status_kb(field: str) -> int | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return None


def _reset_peak_rss() -> bool:
    """Reset the kernel's resident-set high-water mark (VmHWM) to the current RSS: Linux
    >= 4.0 accepts "5" in /proc/self/clear_refs for that, unprivileged."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _maxrss_bytes() -> int | None:
    try:
        import resource
    except ImportError:  # pragma: no cover - Windows
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak) if sys.platform == "darwin" else int(peak) * 1024


def _release_free_memory() -> None:
    """Hand memory freed by earlier interpreters back to the OS (glibc keeps it otherwise),
    so that this model's allocations show up as resident-set growth."""
    gc.collect()
    if sys.platform.startswith("linux"):
        try:
            import ctypes

            ctypes.CDLL("libc.so.6").malloc_trim(0)
        except (OSError, AttributeError):
            pass


_PROCESS_WARM: set[bool] = set()


def _warm_process(data: bytes, card: ModelCard | None, xnnpack: bool, name: str) -> None:
    """Once per process and delegate choice: load and run the model in a throwaway
    interpreter, so that LiteRT's one-time costs (code pages, delegate setup) are paid
    before measuring and every model in a comparison is measured alike."""
    if xnnpack in _PROCESS_WARM:
        return
    interpreter = load_interpreter(data, threads=1, xnnpack=xnnpack, name=name)
    try:
        make_inputs(interpreter, card)  # numpy.random's code, too
        interpreter.invoke()
    except (RuntimeError, ValueError):  # EdgecnnError included
        pass  # reported by the measured run
    del interpreter
    _PROCESS_WARM.add(xnnpack)


class _MemoryProbe:
    """Peak resident-memory growth of this process between start() and peak()."""

    def start(self) -> None:
        rss = _proc_status_kb("VmRSS")
        self.rss0 = rss * 1024 if rss is not None else None
        self.hwm_reset = self.rss0 is not None and _reset_peak_rss()
        self.maxrss0 = _maxrss_bytes()

    def current_growth(self) -> int | None:
        rss = _proc_status_kb("VmRSS")
        if rss is None or self.rss0 is None:
            return None
        return max(0, rss * 1024 - self.rss0)

    def peak(self) -> tuple[int | None, str]:
        if self.hwm_reset:
            hwm = _proc_status_kb("VmHWM")
            if hwm is not None:
                return max(0, hwm * 1024 - self.rss0), "VmHWM (reset at start) - VmRSS at start"
        maxrss = _maxrss_bytes()
        if maxrss is not None and self.maxrss0 is not None:
            # a lower bound: the process may have peaked higher before the benchmark
            return max(0, maxrss - self.maxrss0), "ru_maxrss growth (lower bound)"
        return None, "unavailable"


# --- inputs ---------------------------------------------------------------------------------

def _is_image_input(shape) -> bool:
    return len(shape) == 4 and shape[0] == 1 and shape[3] == 3 and shape[1] == shape[2] >= 8


def _pixels_to_tensor(pixels: np.ndarray, spec: dict, card: ModelCard | None,
                      name: str) -> tuple[np.ndarray, str]:
    """Raw RGB pixels (1, H, W, 3) as the input tensor, with a note on how."""
    if card is not None:  # the model card's contract
        return card.pixels_to_input(pixels, name), \
            f"raw pixels 0-255 (model card: {card.describe_input()})"
    # a .tflite from elsewhere: TFLite's image classifiers take raw pixels as integers and
    # [-1, 1] as floats
    if spec["dtype"] in ("uint8", "int8"):
        return quantize_pixels(pixels, spec["dtype"]), "raw pixels (no model card: integer input " \
                                              "assumed to be the pixel)"
    x = (np.asarray(pixels, np.float32) - 127.5) / 127.5
    return x.astype(spec["dtype"]), "(pixel - 127.5) / 127.5 (no model card: float input " \
                                    "assumed in [-1, 1])"


def _random_tensor(detail: dict, rng: np.random.Generator) -> np.ndarray:
    shape = [int(s) for s in detail["shape"]]
    dtype = np.dtype(detail["dtype"])
    scale, zero_point = detail["quantization"]
    if dtype.kind == "f":
        return rng.uniform(-1.0, 1.0, shape).astype(dtype)
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        if scale:  # a quantized activation: values of [-1, 1] in its quantization
            q = np.round(rng.uniform(-1.0, 1.0, shape) / scale + zero_point)
            return np.clip(q, info.min, info.max).astype(dtype)
        low, high = max(info.min, -128), min(info.max, 127)
        return rng.integers(low, high, shape, endpoint=True).astype(dtype)
    if dtype.kind == "b":
        return rng.integers(0, 2, shape).astype(bool)
    return np.zeros(shape, dtype)


def make_inputs(interpreter, card: ModelCard | None = None, image: str | None = None,
                seed: int = 0, name: str = "this .tflite") -> tuple[list[np.ndarray], dict]:
    """One array per model input, matching its dtype and quantization, and a description.

    An image-shaped input (1, S, S, 3) gets realistic pixels: the ``image`` file (shorter
    side resized to S, center crop; needs Pillow) or seeded synthetic photo-like pixels,
    turned into the tensor as the model card says (raw pixels for edgecnn models). Other
    inputs get seeded random values in their dtype's (quantized) range.
    """
    details = interpreter.get_input_details()
    rng = np.random.default_rng(seed)
    arrays, notes = [], []
    for i, detail in enumerate(details):
        shape = [int(s) for s in detail["shape"]]
        if image is not None and i == 0 and not _is_image_input(shape):
            raise EdgecnnError(f"--input IMAGE needs a model whose input is one square RGB "
                               f"image (1, S, S, 3); this model's input is {shape}")
        if i == 0 and _is_image_input(shape):
            spec = input_spec(interpreter)
            if image is not None:
                from ..data.folder import load_image

                if not os.path.isfile(image):
                    raise EdgecnnError(f"input image {image} does not exist; give a jpg/png "
                                       f"file")
                pixels = load_image(image, shape[1])[None]
                source = f"image {os.path.basename(image)}"
            else:
                from ..data.folder import synthetic_images

                pixels = synthetic_images(1, shape[1], seed=seed)
                source = f"synthetic photo-like pixels (seed {seed})"
            tensor, how = _pixels_to_tensor(pixels, spec, card, name)
            arrays.append(np.ascontiguousarray(tensor.reshape(shape)))
            notes.append({"source": source, "preprocessing": how})
        else:
            arrays.append(_random_tensor(detail, rng))
            notes.append({"source": f"random (seed {seed})"})
    first = details[0]
    scale, zero_point = first["quantization"]
    info = {"shape": [int(s) for s in first["shape"]], "dtype": np.dtype(first["dtype"]).name,
            "scale": float(scale), "zero_point": int(zero_point), **notes[0]}
    if len(details) > 1:
        info["inputs"] = len(details)
    return arrays, info


# --- the runner ------------------------------------------------------------------------------

def _check_count(value, name: str, minimum: int) -> int:
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise EdgecnnError(f"{name} must be a whole number, got {value!r}") from None
    if number != value or number < minimum:
        raise EdgecnnError(f"{name} must be a whole number >= {minimum}, got {value!r}")
    return number


def _check_seconds(value, name: str) -> float:
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        raise EdgecnnError(f"{name} must be a number of seconds, got {value!r}") from None
    if not seconds >= 0:
        raise EdgecnnError(f"{name} must be >= 0 seconds, got {value!r}")
    return seconds


def _timed_loop(invoke, min_runs: int, min_seconds: float, max_seconds: float) -> array:
    """Durations in ns of at least ``min_runs`` invokes lasting at least ``min_seconds``
    together (stopping after ``max_seconds``), as benchmark_model's Run()."""
    clock = time.perf_counter_ns
    times = array("q")  # compact: a fast model makes tens of thousands of runs
    start = clock()
    min_end = start + int(min_seconds * 1e9)
    max_end = start + int(max_seconds * 1e9)
    now = start
    while (len(times) < min_runs or now < min_end) and now <= max_end:
        t0 = clock()
        invoke()
        now = clock()
        times.append(now - t0)
    return times


def summarize(times_ms) -> dict:
    """Steady-state statistics of per-run latencies in ms (population std, as
    benchmark_model reports it)."""
    t = np.asarray(times_ms, np.float64)
    if t.size == 0:
        raise EdgecnnError("no timed runs: give --runs >= 1 or --min-seconds > 0")
    p50, p90, p99 = np.percentile(t, [50, 90, 99])
    mean = float(t.mean())
    return {"runs": int(t.size), "mean_ms": mean, "std_ms": float(t.std()),
            "min_ms": float(t.min()), "p50_ms": float(p50), "p90_ms": float(p90),
            "p99_ms": float(p99), "max_ms": float(t.max()),
            "throughput_ips": 1000.0 / mean if mean > 0 else None}


def spread_ratio(result: dict) -> float | None:
    """p90/p50 (or p95/median when only those are known, as from benchmark_model)."""
    p50 = result.get("p50_ms")
    high = result.get("p90_ms") if result.get("p90_ms") is not None else result.get("p95_ms")
    if not p50 or high is None:
        return None
    return float(high) / float(p50)


def is_noisy(result: dict, *, against_min: bool = False) -> bool:
    """A measurement disturbed by other work on the machine: a wide spread, p90/p50 (p95 over
    the median from benchmark_model) above ``NOISY_RATIO``, or a result that says ``noisy``.

    against_min: also a median far above the fastest run (p50/min above ``NOISY_RATIO``): the
    core was shared for most of the runs, so the whole distribution moved and its spread can
    look calm. The sweep asks for it because it ranks configurations by p50 alone, and a
    shifted median misranks them; ``edgecnn bench`` (here and over adb) does not, since it
    prints min, p50 and the percentiles side by side and its warning quotes the spread.
    Missing or unreadable numbers (a damaged .bench.json) leave only the ``noisy`` flag.
    """
    flagged = bool(result.get("noisy"))
    try:
        spread = spread_ratio(result)
        shifted = against_min and float(result["p50_ms"]) > NOISY_RATIO * float(result["min_ms"])
    except (KeyError, TypeError, ValueError):
        return flagged
    return flagged or (spread is not None and spread > NOISY_RATIO) or shifted


def _cpu_model() -> str | None:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith(("model name", "Hardware", "Model")):
                    return line.split(":", 1)[1].strip() or None
    except OSError:
        pass
    return platform.processor() or None


def machine_info() -> dict:
    try:
        from importlib.metadata import version

        litert = version("ai-edge-litert")
    except Exception:  # noqa: BLE001 - metadata missing in odd installs
        litert = None
    info = {"platform": platform.platform(), "machine": platform.machine(),
            "cpu": _cpu_model(), "cpu_count": os.cpu_count(),
            "python": platform.python_version(), "litert": litert}
    if hasattr(os, "getloadavg"):
        info["load_average"] = [round(x, 2) for x in os.getloadavg()]
    return info


def _reread(path: str, checked: bytes) -> bytes:
    """The file read again inside the measured load (as a device reads it), and the same
    bytes that were checked: a file still being copied is refused, not run."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as exc:
        raise EdgecnnError(f"cannot read {path}: {exc.strerror or exc}") from None
    if data != checked:
        raise EdgecnnError(f"{path} changed while it was being benchmarked; run again once "
                           f"it is complete")
    return data


def benchmark(path, threads: int = 1, runs: int | None = None, warmup: int | None = None,
              min_seconds: float | None = None, xnnpack: bool = True, input: str | None = None,
              *, warmup_seconds: float | None = None,
              max_seconds: float = DEFAULT_MAX_SECONDS, seed: int = 0,
              keep_times: bool = False) -> dict:
    """Measure a .tflite's latency with the LiteRT interpreter on this machine.

    As TFLite's benchmark_model: ``runs`` is the minimum number of timed runs (default 50)
    and ``min_seconds`` their minimum total duration (default 1 s), so fast models get more
    runs; ``warmup`` is the minimum number of untimed warmup runs (default 1, for at least
    ``warmup_seconds``, default 0.5 s; an explicit ``warmup`` alone means exactly that
    many). The first warmup run is the first inference. Only ``invoke`` is timed; inputs
    (``make_inputs``) are set once before. ``input``: an image file for the model's image
    input instead of synthetic pixels. Returns one result dict (``RESULT_KEYS`` and more).
    """
    path = os.fspath(path)
    threads = _check_count(threads, "threads", 1)
    runs = DEFAULT_RUNS if runs is None else _check_count(runs, "runs", 0)
    min_seconds = DEFAULT_MIN_SECONDS if min_seconds is None else _check_seconds(
        min_seconds, "min_seconds")
    if warmup is None:
        warmup = DEFAULT_WARMUP
        warmup_seconds = DEFAULT_WARMUP_SECONDS if warmup_seconds is None else warmup_seconds
    else:
        warmup = _check_count(warmup, "warmup", 0)
    warmup_seconds = _check_seconds(warmup_seconds or 0.0, "warmup_seconds")
    max_seconds = _check_seconds(max_seconds, "max_seconds")
    checked = read_model(path)  # a damaged file: one line, before LiteRT sees it
    card = ModelCard.read(checked, name=path)

    _warm_process(checked, card, bool(xnnpack), path)
    memory = _MemoryProbe()
    _release_free_memory()
    memory.start()

    def load():
        return load_interpreter(_reread(path, checked), threads=threads, xnnpack=xnnpack,
                                name=path, checked=True)

    check_runs(load, path)  # in a child first: LiteRT does not survive every damaged model
    t0 = time.perf_counter_ns()
    interpreter = load()
    init_ms = (time.perf_counter_ns() - t0) / 1e6
    init_growth = memory.current_growth()

    try:
        arrays, input_info = make_inputs(interpreter, card, input, seed=seed, name=path)
        for detail, tensor in zip(interpreter.get_input_details(), arrays):
            interpreter.set_tensor(detail["index"], tensor)
    except EdgecnnError:
        raise
    except (ValueError, RuntimeError) as exc:  # inputs LiteRT refuses: a damaged model
        raise EdgecnnError(f"LiteRT cannot run {path}: {str(exc).splitlines()[0]}") from None
    invoke = interpreter.invoke

    gc_was_enabled = gc.isenabled()
    gc.disable()  # a collection inside a timed run is the runner's noise, not the model's
    try:
        t0 = time.perf_counter_ns()
        try:
            invoke()
        except (RuntimeError, ValueError) as exc:
            raise EdgecnnError(f"LiteRT cannot run {os.path.basename(path)}: "
                               f"{str(exc).splitlines()[0]}") from None
        first_ns = time.perf_counter_ns() - t0
        warm = [first_ns, *_timed_loop(invoke, max(warmup - 1, 0),
                                        max(warmup_seconds - first_ns / 1e9, 0.0), max_seconds)]
        times = _timed_loop(invoke, runs, min_seconds, max_seconds)
    finally:
        if gc_was_enabled:
            gc.enable()
    peak, memory_method = memory.peak()

    ops = interpreter._get_ops_details()
    result = {
        "model": os.path.basename(path),
        "path": os.path.abspath(path),
        "source": "local",
        "threads": threads,
        "xnnpack": bool(xnnpack),
        "warmup_runs": len(warm),
        "init_ms": init_ms,
        "first_ms": first_ns / 1e6,
        "warmup_ms": float(np.mean(warm)) / 1e6,
        **summarize(np.asarray(times, np.float64) / 1e6),
        "size_bytes": os.path.getsize(path),
        "peak_rss_growth_bytes": peak,
        "peak_rss_growth_mb": None if peak is None else peak / 2**20,
        "init_rss_growth_bytes": init_growth,
        "memory_method": memory_method,
        "delegate_partitions": sum(1 for o in ops if o["op_name"] == "DELEGATE"),
        "input": input_info,
        "precision": card.precision if card else None,
        "card_model": card.model.to_dict() if card else None,
        "machine": machine_info(),
    }
    result["spread_p90_p50"] = spread_ratio(result)
    result["noisy"] = is_noisy(result)
    if keep_times:
        result["times_ms"] = [t / 1e6 for t in times]
    return result
