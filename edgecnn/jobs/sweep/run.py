"""Running a width x resolution sweep: build, convert and benchmark every (alpha, resolution)
point of a network, then write the report (``run_sweep``).

The MobileNet paper's width x resolution table, measured on the machine that runs it. Each
point's .tflite, model card (.json) and benchmark result (.bench.json) live in the sweep folder
(``store``); a point whose three files are complete and consistent is never redone, so an
interrupted sweep resumes where it stopped. The folder's settings must match to resume.
"""
from __future__ import annotations

import json
import math
import os
import platform

from ...errors import EdgecnnError, MissingExtraError
from ...runtime.card import PRECISIONS
from ...utils.files import atomic_write_json
from ...utils.progress import Progress
from .pick import check_budget
from .reports import SweepResult, report
from .store import (BENCH_SUFFIX, DEVICE_MANIFEST, MANIFEST, check_device, check_settings,
                    converted_card, device_dir, load_point, ms, point_stem, prepare_dir,
                    sweep_devices)


def parse_list(text, what: str, kind=float) -> list:
    """``"0.25,0.5"`` -> ``[0.25, 0.5]`` (order kept, duplicates dropped); every value > 0."""
    example = "0.25,0.5,0.75,1.0" if kind is float else "128,160,192,224"
    noun = "numbers" if kind is float else "whole numbers"
    if isinstance(text, (list, tuple)):
        items = list(text)
    else:
        items = [t.strip() for t in str(text).split(",")]
    values = []
    for item in items:
        try:
            value = kind(item)
            if kind is int and isinstance(item, float) and item != value:
                raise ValueError
        except (TypeError, ValueError):
            raise EdgecnnError(f"{what} must be comma-separated {noun} > 0 (e.g. {example}), "
                               f"got {text!r}") from None
        if not math.isfinite(value) or value <= 0:
            raise EdgecnnError(f"{what} values must be > 0 (e.g. {example}), got {item!r}")
        if value not in values:
            values.append(value)
    if not values:
        raise EdgecnnError(f"{what} needs at least one value (e.g. {example})")
    return values


def default_output_dir(name: str, precision: str) -> str:
    return os.path.join(os.getcwd(), f"sweep_{name}_{precision}")


def _machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            cpu = next((line.split(":", 1)[1].strip() for line in f
                        if line.startswith("model name")), cpu)
    except OSError:
        pass
    return f"{platform.system()} {platform.machine()}, {cpu}, {os.cpu_count()} CPU(s)"


def _jsonable(obj):
    if hasattr(obj, "item"):  # numpy scalars
        return obj.item()
    if hasattr(obj, "tolist"):
        return obj.tolist()
    return str(obj)


def run_sweep(name: str, alphas, resolutions, *, precision: str = "float32", threads: int = 1,
              data_dir: str | None = None, output_dir: str | None = None,
              num_classes: int = 1000, options: dict | None = None, weights="none",
              calib_samples: int = 200, io_dtype: str | None = None, xnnpack: bool = True,
              runs: int | None = None, warmup: int | None = None,
              min_seconds: float | None = None, budget_ms: float | None = None,
              plots: bool = True, quiet: bool = False, jobs: int = 1,
              adb: dict | None = None):
    """Build, convert (``edgecnn convert``'s path) and benchmark every alpha x resolution point
    of ``name``; keep each point's .tflite, card and benchmark in ``output_dir`` (default
    ``sweep_{name}_{precision}``); skip points already complete there; write sweep.csv,
    sweep.md and the plots over every complete point in the folder.

    jobs: with more than one, the points still to convert are converted first in that many
    worker processes (each a fresh Python: TensorFlow is not fork-safe), then benchmarked one
    at a time, so no timing is taken while conversions compete for the cores. Each point's
    files are written atomically either way, so an interrupted sweep resumes with any jobs.

    adb: benchmark on Android devices instead of this machine, with TFLite's benchmark_model
    (``edgecnn bench --adb``'s runner): a dict of ``benchmark_adb``'s settings, ``serials``
    and ``binary`` (required) and ``taskset``, ``use_gpu``, ``use_nnapi``, ``adb``. Every
    point is converted here first; then the devices run in parallel, each point's result
    saved as it arrives in ``devices/<serial>/`` with that device's sweep.csv, sweep.md,
    plots and budget pick. Returns ``{serial: SweepResult}`` then, else one SweepResult."""
    alphas = parse_list(alphas, "alpha", float)
    resolutions = parse_list(resolutions, "resolution", int)
    if precision not in PRECISIONS:
        raise EdgecnnError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise EdgecnnError(f"threads must be a whole number >= 1, got {threads!r}")
    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
        raise EdgecnnError(f"jobs must be a whole number >= 1, got {jobs!r}")
    if budget_ms is not None:
        budget_ms = check_budget(budget_ms)  # before hours of work
    if adb is not None:   # the phones and the binary too, before anything is written
        adb = _check_devices(adb)
    from ..convert import SYNTHETIC_WARNING
    from ...models import get_model_spec
    from ...models.registry import check_alpha, resolve_input_size

    spec = get_model_spec(name)
    alphas = [check_alpha(a) for a in alphas]
    resolutions = [resolve_input_size(spec, r) for r in resolutions]
    options = dict(options or {})
    if data_dir is not None:
        from ...data.labelled import scan

        classes = scan(data_dir).classes
        if len(classes) != num_classes:
            raise EdgecnnError(f"--data {data_dir} has {len(classes)} classes but the model has "
                               f"{num_classes} outputs; pass --num-classes {len(classes)} (with "
                               f"weights trained on those classes) to measure accuracy")
        data_dir = os.path.abspath(data_dir)
    directory = prepare_dir(output_dir or default_output_dir(name, precision))
    from ..._version import __version__

    settings = {"name": name, "precision": precision, "threads": threads, "xnnpack": xnnpack,
                "num_classes": num_classes, "options": options, "weights": str(weights),
                "data": data_dir, "calib_samples": calib_samples, "io_dtype": io_dtype,
                "machine": _machine(), "edgecnn": __version__}
    check_settings(directory, settings)
    atomic_write_json(os.path.join(directory, MANIFEST), settings)

    grid = [(a, r) for a in alphas for r in resolutions]
    measured, reused = [], []
    # the finished bar and the per-point lines stay, also in a log file: a record of the run
    with Progress(quiet, transient=False, terminal_only=False) as progress:
        advance = progress.task("sweep", len(grid))
        if precision == "int8" and data_dir is None:
            progress.warn(SYNTHETIC_WARNING)
        if data_dir is not None and str(weights).lower() == "none":
            progress.warn("--data with untrained networks (--weights none): top-1 is chance "
                          "level; pass --weights to measure real accuracy")
        convert = dict(name=name, num_classes=num_classes, options=options,
                       precision=precision, weights=weights, data_dir=data_dir,
                       calib_samples=calib_samples, io_dtype=io_dtype)
        if jobs > 1:
            _convert_in_parallel(directory, grid, convert, jobs, progress)
        if adb is not None:
            return _sweep_on_devices(directory, grid, convert, dict(adb), threads, runs,
                                     warmup, min_seconds, xnnpack, budget_ms, plots, progress)
        for index, (alpha, resolution) in enumerate(grid):
            stem = point_stem(name, alpha, resolution, precision)
            label = f"alpha {alpha:g} resolution {resolution}"
            if load_point(directory, stem, alpha, resolution, precision, threads) is not None:
                reused.append(stem)
                advance(index + 1, description=f"{label}: already measured")
                continue
            path = os.path.join(directory, stem + ".tflite")
            try:
                if converted_card(directory, stem, alpha, resolution, precision) is None:
                    advance(index, description=f"{label}: converting")
                    _convert_point({**convert, "alpha": alpha, "resolution": resolution,
                                    "output": path})
                    _drop_stale(directory, stem)
                advance(index, description=f"{label}: benchmarking")
                bench = _benchmark(path, threads, runs, warmup, min_seconds, xnnpack)
            except MissingExtraError:
                raise
            except EdgecnnError as exc:
                raise EdgecnnError(f"{name} {label}: {exc}") from None
            atomic_write_json(os.path.join(directory, stem + BENCH_SUFFIX), bench)
            measured.append(stem)
            advance(index + 1, description=f"{label}: done")
            progress.log(f"{name} {label}: p50 {ms(float(bench['p50_ms']))} ms")
    result = report(directory, budget_ms, plots)
    result.measured, result.reused = measured, reused
    return result


def _drop_stale(directory: str, stem: str) -> None:
    """Forget the benchmarks of a point being converted again (here and on every adb
    device): they timed the older model."""
    for folder in [directory] + [device_dir(directory, s) for s in sweep_devices(directory)]:
        stale = os.path.join(folder, stem + BENCH_SUFFIX)
        if os.path.exists(stale):
            os.unlink(stale)


def _check_devices(adb: dict) -> dict:
    """The adb settings with the devices chosen and checked (connected, authorized) and the
    benchmark binary checked (an ELF executable), before hours of conversion."""
    from ...runtime import adb as runner

    runner.check_options(adb.get("taskset"), adb.get("use_gpu"), adb.get("use_nnapi"))
    runner.check_binary(adb["binary"])
    exe = runner.find_adb(adb.get("adb"))
    return {**adb, "adb": exe, "serials": runner.choose_serials(exe, adb.get("serials"))}


def _sweep_on_devices(directory, grid, convert, adb, threads, runs, warmup, min_seconds,
                      xnnpack, budget_ms, plots, progress) -> dict:
    """The grid converted here (what is missing), then benchmarked on every adb device (in
    parallel, each point's result written as it arrives); one report per device."""
    import threading

    from ...runtime import adb as runner

    name, precision = convert["name"], convert["precision"]
    stems = {}
    for alpha, resolution in grid:
        stem = point_stem(name, alpha, resolution, precision)
        path = os.path.join(directory, stem + ".tflite")
        stems[path] = (stem, alpha, resolution)
        if converted_card(directory, stem, alpha, resolution, precision) is None:
            _convert_point({**convert, "alpha": alpha, "resolution": resolution,
                            "output": path})
            _drop_stale(directory, stem)
    options = {"taskset": adb.get("taskset"), "use_gpu": bool(adb.get("use_gpu")),
               "use_nnapi": bool(adb.get("use_nnapi"))}
    delegate = "gpu" if options["use_gpu"] else "nnapi" if options["use_nnapi"] else \
        "xnnpack" if xnnpack else "cpu"
    for serial in adb["serials"]:
        folder = device_dir(directory, serial)
        os.makedirs(folder, exist_ok=True)
        check_device(folder, {"serial": serial, "delegate": delegate,
                              "taskset": options["taskset"]})

    def measured(serial, path):
        stem, alpha, resolution = stems[os.path.abspath(path)]
        return load_point(directory, stem, alpha, resolution, precision, threads,
                          bench_dir=device_dir(directory, serial)) is not None

    todo = sum(not measured(s, p) for s in adb["serials"] for p in stems)
    advance = progress.task(f"benchmarking on {len(adb['serials'])} device(s)", todo)
    lock, counted, done = threading.Lock(), set(), []   # done: (serial, stem)

    def save(row):
        stem = stems[row["path"]][0]
        serial = row["source"][len("adb:"):]
        bench = {k: v for k, v in row.items() if k not in ("profile", "path")}
        if bench.get("p50_ms") is None and bench.get("mean_ms") is not None:
            bench["p50_ms"], bench["p50_stat"] = bench["mean_ms"], "mean"
        folder = device_dir(directory, serial)
        with lock:
            if serial not in counted:
                counted.add(serial)
                atomic_write_json(os.path.join(folder, DEVICE_MANIFEST), {
                    "serial": serial, "device": row.get("device"), "abi": row.get("abi"),
                    "delegate": row.get("delegate"), "taskset": row.get("taskset"),
                    "binary": os.path.basename(adb["binary"])})
            atomic_write_json(os.path.join(folder, stem + BENCH_SUFFIX), bench)
            done.append((serial, stem))
            advance(len(done), description=f"{row.get('device') or serial}: {stem}")
            progress.log(f"{row.get('device') or serial} ({serial}) {stem}: "
                         f"p50 {ms(bench.get('p50_ms'))} ms")

    try:
        runner.benchmark_adb(list(stems), adb["binary"], serials=adb["serials"],
                             threads=[threads], runs=runs, warmup=warmup,
                             min_seconds=min_seconds, xnnpack=xnnpack, adb=adb.get("adb"),
                             skip=measured, on_row=save, **options)
    except EdgecnnError as exc:
        raise EdgecnnError(f"{name}: {exc} (the points measured before it are kept; rerun "
                           f"to continue)") from None
    results = {}
    for serial in adb["serials"]:
        result = report(directory, budget_ms, plots, device=serial)
        result.measured = [stem for who, stem in done if who == serial]
        result.reused = [p.stem for p in result.points if p.stem not in result.measured]
        results[serial] = result
    return results


def _convert_point(arguments: dict) -> str:
    """One point's conversion (here or in a worker process, ``_convert_in_parallel``). The
    random generators are seeded first, so a point's random weights are the same whichever
    process converts it and whenever: a sweep gives the same models with any ``jobs``."""
    import warnings

    from ..._keras import keras
    from ..convert import run_convert

    keras.utils.set_random_seed(0)
    try:
        with warnings.catch_warnings():   # the sweep warned once already
            warnings.simplefilter("ignore")
            run_convert(quiet=True, **arguments)
    finally:
        # a process converts many points: without this its Keras graph keeps every model
        # built so far (the 16-point sweep took 449 s with jobs 2 against 380 s with jobs 1;
        # with it, 234 s against 357 s: benchmarks/sweep_jobs.py)
        _release_keras()
    return arguments["output"]


def _convert_in_parallel(directory, grid, convert: dict, jobs: int, progress) -> None:
    """Convert the grid's points that have no valid .tflite + card yet in ``jobs`` worker
    processes. A failed point stops the sweep with its error; the points converted before it
    stay (a rerun resumes)."""
    import concurrent.futures
    import multiprocessing

    todo = []
    for alpha, resolution in grid:
        stem = point_stem(convert["name"], alpha, resolution, convert["precision"])
        if converted_card(directory, stem, alpha, resolution, convert["precision"]) is None:
            todo.append({**convert, "alpha": alpha, "resolution": resolution,
                         "output": os.path.join(directory, stem + ".tflite")})
            _drop_stale(directory, stem)
    if not todo:
        return
    advance = progress.task(f"converting in {jobs} processes", len(todo))
    context = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(min(jobs, len(todo)),
                                                mp_context=context) as pool:
        futures = {pool.submit(_convert_point, point): point for point in todo}
        done = 0
        try:
            for future in concurrent.futures.as_completed(futures):
                point = futures[future]
                label = f"alpha {point['alpha']:g} resolution {point['resolution']}"
                try:
                    future.result()
                except MissingExtraError:
                    raise
                except EdgecnnError as exc:
                    raise EdgecnnError(f"{convert['name']} {label}: {exc}") from None
                except concurrent.futures.process.BrokenProcessPool:
                    raise EdgecnnError(f"{convert['name']} {label}: a conversion process "
                                       f"died (out of memory?); rerun with fewer --jobs") \
                        from None
                done += 1
                advance(done, description=f"{label}: converted")
        except BaseException:
            for future in futures:
                future.cancel()
            raise


def _benchmark(path, threads, runs, warmup, min_seconds, xnnpack) -> dict:
    from ...runtime.bench import benchmark

    result = benchmark(path, threads=threads, runs=runs, warmup=warmup,
                       min_seconds=min_seconds, xnnpack=xnnpack)
    return json.loads(json.dumps(dict(result), default=_jsonable))


def _release_keras() -> None:
    """Free the converted model's graph before the next point (16 models in one process)."""
    import gc

    from ..._keras import keras

    keras.backend.clear_session()
    gc.collect()

