"""Benchmarking on an Android device over adb with TFLite's ``benchmark_model`` binary, and a
parser for that binary's output (the classic summary lines of both generations, LiteRT's
BENCHMARK RESULTS block, and the op profile tables: ``runtime.op_profile``).

The user supplies the binary (TFLite's prebuilt nightly ``android_aarch64_benchmark_model``,
or one built with bazel); it and the model are pushed to /data/local/tmp, run with
``adb shell [taskset MASK] benchmark_model --graph=...``, and the output becomes the same
result schema as :func:`edgecnn.runtime.bench.benchmark`. Several devices run in parallel.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor

from ..errors import EdgecnnError
from .bench import is_noisy, spread_ratio
from .op_profile import regular_profile, strip_log_prefix as _strip_prefix
from .tflite import read_model

REMOTE_DIR = "/data/local/tmp"
REMOTE_BINARY = f"{REMOTE_DIR}/benchmark_model"
PLATFORM_TOOLS = "https://developer.android.com/tools/releases/platform-tools"
# ELF e_machine -> the Android ABIs that run it
ELF_MACHINES = {183: ("aarch64", ("arm64-v8a",)), 40: ("arm", ("armeabi-v7a", "armeabi")),
                62: ("x86_64", ("x86_64",)), 3: ("x86", ("x86",))}
ABIS_FOR_ARCH = dict(ELF_MACHINES.values())
PREBUILT_FOR_ABI = {"arm64-v8a": "android_aarch64_benchmark_model",
                    "armeabi-v7a": "android_arm_benchmark_model",
                    "x86_64": "android_x86_64_benchmark_model",
                    "x86": "android_x86_benchmark_model"}

# --- parsing benchmark_model's output ------------------------------------------------------

_NUMBER = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
_STAT = re.compile(r"\bcount=(\d+)(.*)$")
_PAIR = re.compile(rf"(\w+)=({_NUMBER})")
_TIMINGS = re.compile(r"(Average inference timings|Inference timings) in us:\s*(.*)$")
_FOOTPRINT = re.compile(rf"(?:Memory footprint delta from the start of the tool|Peak memory "
                        rf"footprint) \(MB\): init=({_NUMBER}) overall=({_NUMBER})")
_PEAK = re.compile(rf"Overall peak memory footprint \(MB\) via periodic monitoring: ({_NUMBER})")
_LEGACY_MEMORY = re.compile(rf"\[(Init Phase|Overall)\] - Memory usage: max resident set size = "
                            rf"({_NUMBER}) MB")
_MODEL_SIZE = re.compile(rf"The input model file size \(MB\): ({_NUMBER})")
_THREADS = re.compile(r"^(?:Num threads|#threads used for CPU inference): \[(-?\d+)\]")
# LiteRT's benchmark_model ends with a "BENCHMARK RESULTS" block in ms and MB (two decimals)
_LITERT = re.compile(rf"^(Model initialization|Warmup \(first\)|Warmup \(avg\)|Inference "
                     rf"\((?:avg|min|max|std)\)|Init footprint|Overall footprint):\s*"
                     rf"({_NUMBER})")
_LITERT_KEYS = {"Model initialization": "init_ms", "Warmup (first)": "first_ms",
                "Warmup (avg)": "warmup_ms", "Inference (avg)": "mean_ms",
                "Inference (min)": "min_ms", "Inference (max)": "max_ms",
                "Inference (std)": "std_ms", "Init footprint": "init_footprint_mb",
                "Overall footprint": "overall_footprint_mb"}
# The summary line's keys, both generations: current "Init, First inference, Warmup (avg),
# Inference (avg)"; legacy "Warmup, Init, Inference" (older still: "no stats").
_TIMING_KEYS = {"init": "init_ms", "first inference": "first_ms", "warmup (avg)": "warmup_ms",
                "warmup": "warmup_ms", "inference (avg)": "mean_ms", "inference": "mean_ms",
                "no stats": "mean_ms"}
MODEL_REJECTED = ("Didn't find op for builtin opcode", "Encountered unresolved custom op",
                  "Failed to construct interpreter", "Failed to initialize the interpreter",
                  "Failed to allocate tensors", "Registration failed", "Failed to mmap model",
                  "Failed to apply", "Model provided has model identifier")
NOT_EXECUTABLE = ("Permission denied", "can't execute", "cannot execute", "not executable",
                  "Exec format error", "syntax error", "inaccessible or not found",
                  "No such file or directory", "not found")




def _parse_stat(rest: str, count: int) -> dict:
    pairs = {k: float(v) for k, v in _PAIR.findall(rest)}
    if "avg" not in pairs:  # "count=N curr=X" or "count=N curr=X(all same)": every run was X
        value = pairs.get("curr")
        pairs.update(first=value, min=value, max=value, avg=value, std=0.0)
    return {"count": count, **pairs}


def _ms(value) -> float | None:
    return None if value is None else float(value) / 1000.0


def rejection_reason(text: str) -> str | None:
    """The error line of a benchmark_model run the model failed in, else None."""
    for line in text.splitlines():
        if any(marker in line for marker in MODEL_REJECTED):
            return _strip_prefix(line).removeprefix("ERROR: ").strip()
    return None


def parse_benchmark_output(text: str) -> dict:
    """Timings (ms) and memory (MB) from the text ``benchmark_model`` prints.

    Reads the summary line of either generation ("Inference timings in us: Init: ...,
    First inference: ..., Warmup (avg): ..., Inference (avg): ..." and the older "Average
    inference timings in us: Warmup: ..., Init: ..., Inference: ..."), the two
    ``count=... first=... curr=... min=... max=... avg=... std=...`` lines (warmup, then the
    timed runs; newer builds add ``p5=... median=... p95=...``), and the memory lines.
    """
    reason = rejection_reason(text)
    if reason:
        raise EdgecnnError(f"benchmark_model could not run the model: {reason}")
    stats, timings, out, litert = [], {}, {}, {}
    generation = None
    for raw in text.splitlines():
        line = _strip_prefix(raw)
        m = _STAT.search(line)
        if m and line.startswith("count="):
            stats.append(_parse_stat(m.group(2), int(m.group(1))))
            continue
        m = _TIMINGS.search(line)
        if m:
            generation = "legacy" if m.group(1).startswith("Average") else "current"
            for item in m.group(2).split(","):
                key, sep, value = item.partition(":")
                field = _TIMING_KEYS.get(key.strip().lower())
                if sep and field and field not in timings:
                    try:
                        timings[field] = float(value)
                    except ValueError:
                        pass
            continue
        if m := _FOOTPRINT.search(line):
            out["init_rss_growth_mb"], out["peak_rss_growth_mb"] = float(m[1]), float(m[2])
        elif m := _PEAK.search(line):
            out["peak_memory_mb"] = float(m[1])
        elif m := _LEGACY_MEMORY.search(line):
            key = "init_rss_growth_mb" if m[1] == "Init Phase" else "peak_rss_growth_mb"
            out[key] = float(m[2])
        elif m := _MODEL_SIZE.search(line):
            out["model_size_mb"] = float(m[1])
        elif m := _THREADS.search(line):
            out.setdefault("num_threads", int(m[1]))
        elif m := _LITERT.search(line):
            generation = "litert"
            litert.setdefault(_LITERT_KEYS[m[1]], float(m[2]))
    profile = regular_profile(text)
    if not stats and "mean_ms" not in timings and "mean_ms" not in litert:
        if profile is None or not profile["timings_us"]:
            raise EdgecnnError("no benchmark results in benchmark_model's output (no "
                               "'count=' lines, no 'Inference timings in us' line, no "
                               "BENCHMARK RESULTS block); is this TFLite's benchmark_model?")
        # an op profile alone (what people paste): its own timings of the profiled runs
        stats.append(_parse_stat(" ".join(f"{k}={v}" for k, v in profile["timings_us"].items()
                                          if k != "count"), int(profile["timings_us"]["count"])))
        generation = generation or "op profile only"
    for key in ("init_footprint_mb", "overall_footprint_mb"):
        if key in litert:
            out[key] = litert[key]
    inference = stats[-1] if stats else {}
    warmup = stats[-2] if len(stats) >= 2 else {}
    result = {
        "output_generation": generation,
        "runs": inference.get("count"),
        "warmup_runs": warmup.get("count"),
        "init_ms": _ms(timings.get("init_ms")) if "init_ms" in timings else
        litert.get("init_ms"),
        "first_ms": _ms(timings.get("first_ms", warmup.get("first"))),
        "warmup_ms": _ms(timings.get("warmup_ms", warmup.get("avg"))),
        "mean_ms": _ms(timings.get("mean_ms", inference.get("avg"))),
        "std_ms": _ms(inference.get("std")),
        "min_ms": _ms(inference.get("min")),
        "p5_ms": _ms(inference.get("p5")),
        "p50_ms": _ms(inference.get("median")),
        "p90_ms": None,  # benchmark_model does not report these
        "p95_ms": _ms(inference.get("p95")),
        "p99_ms": None,
        "max_ms": _ms(inference.get("max")),
        **out,
    }
    for key in ("first_ms", "warmup_ms", "mean_ms", "std_ms", "min_ms", "max_ms"):
        if result[key] is None and key in litert:   # LiteRT's block alone (two decimals)
            result[key] = litert[key]
    mean = result["mean_ms"]
    result["throughput_ips"] = 1000.0 / mean if mean else None
    if profile is not None:
        result["op_profile"] = profile
    return result


# --- adb ---------------------------------------------------------------------------------------

def find_adb(adb: str | None = None) -> str:
    """The adb executable: ``adb`` if given, else $ADB, else adb on PATH."""
    candidate = adb or os.environ.get("ADB") or "adb"
    found = shutil.which(candidate)
    if not found:
        raise EdgecnnError(f"adb not found ({candidate} is not on PATH); install Android "
                           f"platform-tools ({PLATFORM_TOOLS}) and put adb on PATH, or set "
                           f"ADB=/path/to/adb")
    return found


def _run(adb: str, args: list[str], serial: str | None = None, timeout: float = 300.0
         ) -> tuple[int, str]:
    cmd = [adb] + (["-s", serial] if serial else []) + list(args)
    try:
        proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True, errors="replace", timeout=timeout)
    except subprocess.TimeoutExpired:
        raise EdgecnnError(f"adb {' '.join(args[:2])} on {serial or 'the device'} did not "
                           f"finish within {timeout:.0f} s; check the device and retry") from None
    except OSError as exc:
        raise EdgecnnError(f"cannot run adb ({adb}): {exc}") from None
    return proc.returncode, proc.stdout


def list_devices(adb: str) -> dict[str, str]:
    """``adb devices``: serial -> state (device, unauthorized, offline, ...)."""
    code, text = _run(adb, ["devices"], timeout=60)
    if code != 0:
        last = text.strip().splitlines()[-1] if text.strip() else f"exit status {code}"
        raise EdgecnnError(f"'adb devices' failed: {last}")
    devices = {}
    for line in text.splitlines():
        parts = line.split(None, 1)
        if len(parts) == 2 and not line.startswith(("List of devices", "*")):
            devices[parts[0]] = parts[1].strip()
    return devices


def choose_serials(adb: str, serials=None) -> list[str]:
    """The serials to run on, each checked to be connected and authorized."""
    devices = list_devices(adb)
    if not devices:
        raise EdgecnnError("no Android device found by 'adb devices'; connect one with USB "
                           "debugging enabled (Settings > Developer options)")
    if not serials:
        if len(devices) > 1:
            raise EdgecnnError(f"{len(devices)} devices are connected ({', '.join(devices)}); "
                               f"choose with --serial S (repeat it to run on several)")
        serials = list(devices)
    for serial in serials:
        state = devices.get(serial)
        if state is None:
            raise EdgecnnError(f"device {serial} is not connected; 'adb devices' lists "
                               f"{', '.join(devices)}")
        if state == "unauthorized":
            raise EdgecnnError(f"device {serial} is unauthorized: unlock it and accept the "
                               f"'Allow USB debugging' prompt, then retry")
        if state != "device":
            raise EdgecnnError(f"device {serial} is {state}, not ready; reconnect it (adb "
                               f"devices must say 'device')")
    return list(serials)


def elf_machine(path: str) -> str | None:
    """The architecture of an ELF executable, or None when the file is not ELF."""
    with open(path, "rb") as f:
        head = f.read(20)
    if len(head) < 20 or head[:4] != b"\x7fELF":
        return None
    order = "little" if head[5] == 1 else "big"
    machine = int.from_bytes(head[18:20], order)
    return ELF_MACHINES.get(machine, (f"e_machine {machine}", ()))[0]


def check_binary(binary: str) -> str:
    """The local benchmark_model binary: it must exist and be an ELF executable."""
    if not binary:
        raise EdgecnnError("--adb needs --benchmark-binary PATH: TFLite's benchmark_model for "
                           "Android (e.g. android_aarch64_benchmark_model; see the README)")
    if not os.path.isfile(binary):
        raise EdgecnnError(f"benchmark binary {binary} does not exist; download TFLite's "
                           f"android_aarch64_benchmark_model or build it with bazel (README)")
    arch = elf_machine(binary)
    if arch is None:
        raise EdgecnnError(f"benchmark binary {binary} is not an executable (no ELF header); "
                           f"give TFLite's benchmark_model built for Android")
    return arch


def _remote_model(path: str) -> str:
    name = re.sub(r"[^A-Za-z0-9._-]", "_", os.path.basename(path))
    return f"{REMOTE_DIR}/edgecnn_{name}"


def benchmark_command(remote_model: str, threads: int, runs=None, warmup=None,
                      min_seconds=None, xnnpack: bool = True, taskset: str | None = None,
                      use_gpu: bool = False, use_nnapi: bool = False,
                      profile: bool = False) -> list[str]:
    """The arguments after ``adb shell`` that run benchmark_model on the device."""
    cmd = ["taskset", taskset] if taskset else []
    cmd += [REMOTE_BINARY, f"--graph={remote_model}", f"--num_threads={int(threads)}"]
    if runs is not None:
        cmd.append(f"--num_runs={int(runs)}")
    if warmup is not None:
        cmd.append(f"--warmup_runs={int(warmup)}")
    if min_seconds is not None:
        cmd.append(f"--min_secs={float(min_seconds):g}")
    if use_gpu:
        cmd.append("--use_gpu=true")
    elif use_nnapi:
        cmd.append("--use_nnapi=true")
    else:
        cmd.append(f"--use_xnnpack={'true' if xnnpack else 'false'}")
    if profile:
        cmd.append("--enable_op_profiling=true")
    return cmd


def _device_props(adb: str, serial: str) -> tuple[str | None, list[str]]:
    """The device's model name and its ABIs, primary first."""
    code, text = _run(adb, ["shell", "getprop ro.product.model; getprop ro.product.cpu.abilist"],
                      serial, timeout=60)
    lines = [line.strip() for line in text.splitlines()]
    if code != 0 or len(lines) < 2:
        return None, []
    return lines[0] or None, [abi for abi in lines[1].split(",") if abi]


def _push(adb: str, serial: str, local: str, remote: str) -> None:
    code, text = _run(adb, ["push", local, remote], serial)
    if code != 0:
        last = text.strip().splitlines()[-1] if text.strip() else f"exit status {code}"
        raise EdgecnnError(f"adb push {os.path.basename(local)} to {serial} failed: {last}")


def _run_on_device(adb, serial, models, binary, arch, threads_list, options, timeout,
                   skip=None, on_row=None) -> list:
    if skip is not None:
        models = [path for path in models if not skip(serial, path)]
        if not models:
            return []
    device, abis = _device_props(adb, serial)
    abi = abis[0] if abis else None
    if abis and arch in ABIS_FOR_ARCH and not set(abis) & set(ABIS_FOR_ARCH[arch]):
        hint = PREBUILT_FOR_ABI.get(abi, f"a benchmark_model built for {abi}")
        raise EdgecnnError(f"benchmark binary {os.path.basename(binary)} is built for {arch} but "
                           f"device {serial} runs {', '.join(abis)}; use {hint}")
    _push(adb, serial, binary, REMOTE_BINARY)
    _run(adb, ["shell", "chmod", "755", REMOTE_BINARY], serial, timeout=60)
    rows = []
    for path in models:
        remote = _remote_model(path)
        _push(adb, serial, path, remote)
        try:
            for threads in threads_list:
                cmd = benchmark_command(remote, threads, **options)
                code, text = _run(adb, ["shell", *cmd], serial, timeout=timeout)
                rows.append(_row(path, serial, device, abi, threads, options, code, text))
                if on_row is not None:
                    on_row(rows[-1])
        finally:
            _run(adb, ["shell", "rm", "-f", remote], serial, timeout=60)
    return rows


def _row(path, serial, device, abi, threads, options, code, text) -> dict:
    reason = rejection_reason(text)
    if reason:
        raise EdgecnnError(f"device {serial} rejected {os.path.basename(path)}: {reason}")
    if "count=" not in text and "timings in us" not in text:
        tail = [line.strip() for line in text.strip().splitlines()][-1:] or [f"exit {code}"]
        if any(marker in tail[0] for marker in NOT_EXECUTABLE):
            raise EdgecnnError(f"benchmark_model is not executable on {serial}: {tail[0]}; "
                               f"give TFLite's benchmark_model for this device's ABI "
                               f"({abi or 'unknown'})")
        raise EdgecnnError(f"benchmark_model on {serial} produced no results (exit status "
                           f"{code}): {tail[0]}")
    parsed = parse_benchmark_output(text)
    delegate = "gpu" if options["use_gpu"] else "nnapi" if options["use_nnapi"] else \
        "xnnpack" if options["xnnpack"] else "cpu"
    peak_mb = parsed.get("peak_rss_growth_mb")
    row = {
        "model": os.path.basename(path),
        "path": os.path.abspath(path),
        "source": f"adb:{serial}",
        "device": device,
        "abi": abi,
        "threads": int(threads),
        "xnnpack": delegate == "xnnpack",
        "delegate": delegate,
        "taskset": options["taskset"],
        **parsed,
        "size_bytes": os.path.getsize(path),
        "peak_rss_growth_bytes": None if peak_mb is None else int(round(peak_mb * 2**20)),
        "peak_rss_growth_mb": peak_mb,
        "exit_status": code,
    }
    row["spread_p90_p50"] = spread_ratio(row)
    row["noisy"] = is_noisy(row)
    return row


def check_options(taskset: str | None = None, use_gpu: bool = False,
                  use_nnapi: bool = False) -> None:
    """The device-side settings, checked before anything runs."""
    if use_gpu and use_nnapi:
        raise EdgecnnError("choose one of --use-gpu and --use-nnapi")
    if taskset is not None and not re.fullmatch(r"(0x)?[0-9a-fA-F]+", str(taskset)):
        raise EdgecnnError(f"--taskset takes a hexadecimal CPU mask such as f0, got {taskset!r}")


def benchmark_adb(models, binary: str, serials=None, threads=(1,), runs=None, warmup=None,
                  min_seconds=None, xnnpack: bool = True, taskset: str | None = None,
                  use_gpu: bool = False, use_nnapi: bool = False, profile: bool = False,
                  adb: str | None = None, timeout: float = 900.0, skip=None,
                  on_row=None) -> list[dict]:
    """Run TFLite's benchmark_model on Android devices over adb: one result row per model,
    thread count and device (devices in parallel, each one's runs in turn).

    skip: ``skip(serial, model_path)`` True leaves that model out on that device (a device
    with nothing left to run is not touched); on_row: called with each row as soon as it is
    measured, from that device's thread (a sweep saves it there, so an interrupted run keeps
    what was measured)."""
    models = [os.fspath(models)] if isinstance(models, (str, os.PathLike)) else \
        [os.fspath(m) for m in models]
    check_options(taskset, use_gpu, use_nnapi)
    threads_list = [int(t) for t in threads] if not isinstance(threads, int) else [threads]
    if any(t < 1 for t in threads_list):
        raise EdgecnnError(f"threads must be >= 1, got {threads_list}")
    for path in models:
        read_model(path)  # missing or damaged: one line here, not a failure on the device
    arch = check_binary(binary)
    adb = find_adb(adb)
    serials = choose_serials(adb, list(serials or []))
    options = {"runs": runs, "warmup": warmup, "min_seconds": min_seconds, "xnnpack": xnnpack,
               "taskset": taskset, "use_gpu": use_gpu, "use_nnapi": use_nnapi,
               "profile": profile}
    with ThreadPoolExecutor(max_workers=len(serials)) as pool:
        futures = {s: pool.submit(_run_on_device, adb, s, models, binary, arch, threads_list,
                                  options, timeout, skip, on_row) for s in serials}
        per_device = {s: f.result() for s, f in futures.items()}
    order = {os.path.abspath(m): i for i, m in enumerate(models)}
    rows = [r for s in serials for r in per_device[s]]
    rows.sort(key=lambda r: (order[r["path"]], r["threads"], serials.index(r["source"][4:])))
    return rows


_DELEGATE_SAYS = ((re.compile(r"Use NNAPI: \[1\]|TfLiteNnapiDelegate"), "nnapi"),
                  (re.compile(r"Use gpu: \[1\]|TfLiteGpuDelegate"), "gpu"),
                  (re.compile(r"Use xnnpack: \[0\]"), "cpu"),
                  (re.compile(r"Use xnnpack: \[1\]|XNNPACK delegate|TfLiteXNNPackDelegate"),
                   "xnnpack"))


def saved_delegate(text: str) -> str | None:
    """The delegate a saved output says it ran with (its flags first, then its log), or None
    when it does not say."""
    for pattern, delegate in _DELEGATE_SAYS:
        if pattern.search(text):
            return delegate
    return None


def from_output(path: str) -> dict:
    """A saved ``benchmark_model`` output (a file, or "-" for stdin) as one result row of the
    schema ``edgecnn bench`` gives (``source``: "saved output"), its op profile included."""
    import sys

    if path == "-":
        text, where = sys.stdin.read(), "stdin"
    else:
        where = os.path.basename(path)
        if not os.path.isfile(path):
            raise EdgecnnError(f"--from-output {path}: no such file; give a saved "
                               f"benchmark_model output (text)")
        with open(path, "rb") as fh:
            raw = fh.read()
        if b"\0" in raw[:4096]:
            raise EdgecnnError(f"--from-output {path}: a binary file, not benchmark_model's "
                               f"text output")
        text = raw.decode("utf-8", errors="replace")
    try:
        parsed = parse_benchmark_output(text)
    except EdgecnnError as exc:
        raise EdgecnnError(f"--from-output {where}: {exc}") from None
    threads = parsed.pop("num_threads", None)
    peak_mb = parsed.get("peak_rss_growth_mb")
    delegate = saved_delegate(text)
    row = {"model": where, "path": os.path.abspath(path) if path != "-" else None,
           "source": "saved output", "device": None, "threads": threads,
           "xnnpack": None if delegate is None else delegate == "xnnpack",
           "delegate": delegate, **parsed, "size_bytes": None,
           "peak_rss_growth_bytes": None if peak_mb is None else int(round(peak_mb * 2**20)),
           "peak_rss_growth_mb": peak_mb}
    row["spread_p90_p50"] = spread_ratio(row)
    row["noisy"] = is_noisy(row)
    return row

