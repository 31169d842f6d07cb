"""``edgecnn bench``: latency of .tflite models on this machine (LiteRT) or on Android devices
over adb (TFLite's benchmark_model). Works on the light install: no TensorFlow."""
from __future__ import annotations

import csv
import io
import json

import click

from ..errors import EdgecnnError
from .options import adb_flags_without_adb, adb_options, json_option, runner_options

CSV_COLUMNS = ("model", "source", "device", "threads", "xnnpack", "delegate", "runs",
               "warmup_runs", "init_ms", "first_ms", "warmup_ms", "mean_ms", "std_ms", "min_ms",
               "p50_ms", "p90_ms", "p99_ms", "max_ms", "throughput_ips", "size_bytes",
               "peak_rss_growth_bytes", "peak_rss_growth_mb", "spread_p90_p50", "noisy",
               "precision", "input_dtype", "input_shape", "path")


def parse_threads(text: str) -> list[int]:
    """"1,2,4" -> [1, 2, 4]."""
    try:
        values = [int(part) for part in str(text).split(",") if part.strip()]
    except ValueError:
        raise EdgecnnError(f"--threads takes whole numbers separated by commas (e.g. 1,2,4), "
                           f"got {text!r}") from None
    if not values or any(v < 1 for v in values):
        raise EdgecnnError(f"--threads takes thread counts >= 1 (e.g. 1,2,4), got {text!r}")
    return list(dict.fromkeys(values))


def _csv_row(result: dict) -> dict:
    row = {key: result.get(key) for key in CSV_COLUMNS}
    spec = result.get("input") or {}
    row["input_dtype"] = spec.get("dtype")
    row["input_shape"] = "x".join(str(s) for s in spec["shape"]) if spec.get("shape") else None
    return {k: ("" if v is None else round(v, 6) if isinstance(v, float) else v)
            for k, v in row.items()}


def results_csv(results: list[dict]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(CSV_COLUMNS), lineterminator="\n")
    writer.writeheader()
    for result in results:
        writer.writerow(_csv_row(result))
    return out.getvalue()


def _fmt(value, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _size(n) -> str:
    if n is None:
        return "-"
    return f"{n / 2**20:.2f} MB" if n >= 2**20 else f"{n / 1024:.0f} KB"


def _delegate(r: dict) -> str:
    if r.get("delegate"):
        return r["delegate"]
    return "?" if r.get("xnnpack") is None else "xnnpack" if r["xnnpack"] else "builtin"


def print_table(results: list[dict]) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    if not console.is_terminal:  # piped or logged: do not squeeze the table into 80 columns
        console = Console(width=160)
    remote = any(r.get("source", "local") != "local" for r in results)
    delegates = {_delegate(r) for r in results}
    best = min((r["p50_ms"] for r in results if r.get("p50_ms")), default=None)
    where = "benchmark_model" + (", Android" if any(str(r.get("source", "")).startswith(
        "adb:") for r in results) else "") if remote else "this machine, LiteRT"
    if len(delegates) == 1:
        where += f", {delegates.pop()}"
    table = Table(title=f"Latency in ms ({where}; steady state after warmup)",
                  title_justify="left")
    columns = [("model", "left")] + ([("device", "left")] if remote else []) + [
        ("thr", "right")] + ([("delegate", "left")] if len({_delegate(r) for r in results}) > 1
                             else []) + [
        ("runs", "right"), ("init", "right"), ("first", "right"), ("p50", "right"),
        ("p90", "right"), ("p99", "right"), ("mean ± std", "right"), ("min-max", "right"),
        ("inf/s", "right"), ("size", "right"), ("peak RSS +", "right")]
    if len(results) > 1 and best:
        columns.append(("p50 vs best", "right"))
    for name, justify in columns:
        table.add_column(name, justify=justify, no_wrap=True,
                         min_width=12 if name == "model" else None)
    names = [c[0] for c in columns]
    for r in results:
        p50 = r.get("p50_ms")
        cell = {
            "model": r["model"], "device": r.get("device") or r.get("source", ""),
            "thr": str(r["threads"] or "-"), "delegate": _delegate(r),
            "runs": str(r.get("runs") or "-"), "init": _fmt(r.get("init_ms"), 1),
            "first": _fmt(r.get("first_ms")),
            "p50": f"[bold]{_fmt(p50, 3)}[/bold]" if p50 is not None else "-",
            "p90": _fmt(r.get("p90_ms"), 3), "p99": _fmt(r.get("p99_ms"), 3),
            "mean ± std": f"{_fmt(r.get('mean_ms'), 3)} ± {_fmt(r.get('std_ms'), 3)}",
            "min-max": f"{_fmt(r.get('min_ms'), 3)}-{_fmt(r.get('max_ms'), 3)}",
            "inf/s": _fmt(r.get("throughput_ips"), 1), "size": _size(r.get("size_bytes")),
            "peak RSS +": _size(r.get("peak_rss_growth_bytes")),
            "p50 vs best": f"{p50 / best:.2f}x" if p50 and best else "-",
        }
        table.add_row(*(cell[n] for n in names))
    console.print(table)
    if remote and any(r.get("p50_ms") is None for r in results):
        click.echo("note: this benchmark_model prints no median; compare means (mean ± std)",
                   err=True)


def warn_noisy(results: list[dict]) -> None:
    from ..runtime.bench import NOISY_RATIO

    for r in results:
        if r.get("noisy"):
            click.echo(f"warning: {r['model']} ({r['threads']} thread(s), {r.get('source')}): "
                       f"p90/p50 = {r['spread_p90_p50']:.2f} > {NOISY_RATIO}: the machine is "
                       f"noisy (other programs compete for the CPU); quote the median (p50), "
                       f"close other programs or rerun with a larger --min-seconds", err=True)


@click.command("bench")
@click.argument("models", nargs=-1, metavar="MODEL.tflite [MODEL ...]")
@click.option("--threads", "-t", default="1", show_default=True,
              help="Thread counts to measure, comma-separated (e.g. 1,2,4).")
@runner_options
@click.option("--input", "image", default=None, metavar="IMAGE",
              help="Feed this image (resized, center-cropped, preprocessed as the model card "
                   "says) instead of synthetic pixels.")
@json_option("Print a JSON list of results.")
@click.option("--csv", "csv_path", default=None, metavar="PATH",
              help="Also write the results as CSV (atomically).")
@adb_options
@click.option("--profile", is_flag=True, help="With --adb: per-op profile (benchmark_model "
              "--enable_op_profiling=true): the slowest ops and the time by op type are "
              "printed, every table is in --json.")
@click.option("--from-output", "saved", multiple=True, metavar="SAVED.txt",
              help="Read saved benchmark_model outputs (classic or LiteRT; '-' for stdin) "
              "instead of running anything: the same results, profiles included. Repeatable.")
@click.option("--top", type=click.IntRange(min=1), default=10, show_default=True,
              help="Rows of the slowest-ops table printed for a profile.")
def bench(models, threads, runs, warmup, min_seconds, no_xnnpack, image, as_json, csv_path,
          use_adb, serials, benchmark_binary, taskset, use_gpu, use_nnapi, profile, saved, top):
    """Latency of MODEL.tflite files: init, first inference, warmup, then p50/p90/p99 of the
    steady state, throughput, size and peak memory growth; one table for several models and
    thread counts. Quote the median (p50): it is what a busy machine disturbs least."""
    if as_json and csv_path:
        raise EdgecnnError("choose one of --json and --csv")
    if saved and (models or use_adb):
        raise EdgecnnError("--from-output reads saved outputs; give it without MODEL files "
                           "and --adb")
    if not saved and not models:
        raise EdgecnnError("give MODEL.tflite files to benchmark, or --from-output SAVED.txt")
    if profile and not use_adb:
        raise EdgecnnError("--profile is for --adb runs (benchmark_model's op profiling); on "
                           "this machine use `edgecnn profile MODEL.tflite`")
    thread_counts = parse_threads(threads)
    if csv_path:
        from ..utils.files import check_output_path

        csv_path = check_output_path(csv_path)
    if saved:
        from ..runtime import adb

        results = [adb.from_output(path) for path in saved]
    elif not use_adb:
        used = adb_flags_without_adb(serials, benchmark_binary, taskset, use_gpu, use_nnapi)
        if used:
            raise EdgecnnError(f"{', '.join(used)}: only with --adb (benchmarking on an "
                               f"Android device)")
        results = _bench_local(models, thread_counts, runs, warmup, min_seconds,
                               not no_xnnpack, image, quiet=as_json)
    else:
        if image:
            raise EdgecnnError("--input is for local runs; benchmark_model on the device "
                               "feeds random inputs")
        from ..runtime import adb

        results = adb.benchmark_adb(models, benchmark_binary, serials=serials,
                                    threads=thread_counts, runs=runs, warmup=warmup,
                                    min_seconds=min_seconds, xnnpack=not no_xnnpack,
                                    taskset=taskset, use_gpu=use_gpu, use_nnapi=use_nnapi,
                                    profile=profile)
    if csv_path:
        from ..utils.files import atomic_write_bytes

        atomic_write_bytes(csv_path, results_csv(results).encode())
    if as_json:
        click.echo(json.dumps(results, indent=2))
    else:
        print_table(results)
        from .profile import print_profile, report_from_row

        for result in results:
            if result.get("op_profile"):
                print_profile(report_from_row(result), top)
        if csv_path:
            click.echo(f"wrote {csv_path}", err=True)
    warn_noisy(results)


def _bench_local(models, thread_counts, runs, warmup, min_seconds, xnnpack, image, quiet):
    from rich.console import Console

    from ..runtime import bench as runner

    results = []
    console = Console(stderr=True)
    total = len(models) * len(thread_counts)
    for model in models:
        for threads in thread_counts:
            message = f"[{len(results) + 1}/{total}] {model}, {threads} thread(s)"
            if quiet or not console.is_terminal:
                results.append(runner.benchmark(model, threads=threads, runs=runs,
                                                warmup=warmup, min_seconds=min_seconds,
                                                xnnpack=xnnpack, input=image))
                continue
            with console.status(message):
                results.append(runner.benchmark(model, threads=threads, runs=runs,
                                                warmup=warmup, min_seconds=min_seconds,
                                                xnnpack=xnnpack, input=image))
    return results
