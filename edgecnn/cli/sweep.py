"""``edgecnn sweep`` (width x resolution, measured) and ``edgecnn pick`` (a latency budget)."""
from __future__ import annotations

import json

import click

from ..errors import EdgecnnError
from .options import (adb_flags_without_adb, adb_options, calib_samples_option,
                      choose_precision, data_option, family_flags, family_options, io_option,
                      json_option, num_classes_option, precision_options, runner_options,
                      weights_option)


def _print_points(rows: list[dict], title: str, pick=None) -> None:
    from rich.console import Console
    from rich.table import Table

    from ..jobs.sweep import ms

    has_accuracy = any(r.get("top1") is not None for r in rows)
    roles = {}
    if pick is not None:
        for role, row in (("over budget", pick.over), ("runner-up", pick.inside),
                          ("PICK", pick.best)):
            if row is not None:
                roles[row["alpha"], row["resolution"]] = role
    table = Table(title=title)
    columns = ["alpha", "res", "params", "MACs", "size", "p50 ms", "p90 ms"]
    if has_accuracy:
        columns.append("top-1 %")
    if pick is not None:
        columns.append("budget")
    for col in columns:
        table.add_column(col, justify="right", no_wrap=True)
    for r in rows:
        cells = [f"{r['alpha']:g}", str(r["resolution"]), f"{r['params'] / 1e6:.2f} M",
                 f"{r['macs'] / 1e6:,.1f} M", f"{r['size_bytes'] / 1e6:.2f} MB",
                 ms(r["p50_ms"]), ms(r.get("p90_ms"))]
        if has_accuracy:
            cells.append("-" if r.get("top1") is None else f"{r['top1']:.1f}")
        role = roles.get((r["alpha"], r["resolution"]), "")
        if pick is not None:
            cells.append(role)
        table.add_row(*cells, style="bold green" if role == "PICK" else None)
    Console().print(table)


def _print_pick(pick) -> None:
    for line in pick.lines():
        click.echo(line)


def _budget_option(f):
    return click.option("--budget-ms", type=float, default=None, metavar="MS",
                        help="Name the configuration with the most MACs (best top-1 with data) "
                             "whose p50 latency is within MS.")(f)


@click.command()
@click.argument("name")
@click.option("--alpha", "-a", "alphas", default="0.25,0.5,0.75,1.0", show_default=True,
              help="Width multipliers, comma-separated.")
@click.option("--resolution", "-r", "resolutions", default="128,160,192,224", show_default=True,
              help="Input sides in pixels, comma-separated.")
@precision_options
@click.option("--threads", "-t", type=click.IntRange(min=1), default=1, show_default=True,
              help="Interpreter threads for the benchmark.")
@data_option("calibration and top-1")
@click.option("--output", "-o", "output_dir", type=str, default=None,
              help="Sweep folder [default: sweep_{name}_{precision}].")
@_budget_option
@num_classes_option
@family_flags
@weights_option
@calib_samples_option
@io_option("int8 models")
@runner_options
@click.option("--jobs", "-j", type=click.IntRange(min=1), default=1, show_default=True,
              help="Convert the points in this many processes first, then benchmark them one "
              "at a time (no timing while conversions run). About 1-2 GB of memory each.")
@adb_options
@click.option("--no-plots", is_flag=True, help="Skip the PNG plots.")
@json_option("Print the result as JSON.")
def sweep(name, alphas, resolutions, int8, fp16, dynamic, threads, data_dir, output_dir,
          budget_ms, num_classes, minimalistic, extra, weights, calib_samples, io_dtype, runs,
          warmup, min_seconds, no_xnnpack, jobs, use_adb, serials, benchmark_binary, taskset,
          use_gpu, use_nnapi, no_plots, as_json):
    """Build, convert and benchmark NAME at every alpha x resolution; write sweep.csv,
    sweep.md and plots. Points already measured in the folder are not redone.

    With --adb the points are benchmarked on Android devices (TFLite's benchmark_model,
    several -s serials in parallel): one table, report and budget pick per device, in
    the folder's devices/SERIAL/."""
    from ..jobs.sweep import parse_list, run_sweep

    alphas = parse_list(alphas, "--alpha", float)
    resolutions = parse_list(resolutions, "--resolution", int)
    precision = choose_precision(int8, fp16, dynamic, io_dtype)
    adb = None
    if use_adb:
        adb = {"serials": list(serials), "binary": benchmark_binary, "taskset": taskset,
               "use_gpu": use_gpu, "use_nnapi": use_nnapi}
    else:
        used = adb_flags_without_adb(serials, benchmark_binary, taskset, use_gpu, use_nnapi)
        if used:
            raise EdgecnnError(f"{', '.join(used)}: only with --adb (benchmarking the sweep on "
                               f"Android devices)")
    result = run_sweep(
        name, alphas, resolutions, precision=precision, threads=threads, data_dir=data_dir,
        output_dir=output_dir, num_classes=num_classes,
        options=family_options(minimalistic, extra), weights=weights,
        calib_samples=calib_samples, io_dtype=io_dtype, xnnpack=not no_xnnpack, runs=runs,
        warmup=warmup, min_seconds=min_seconds, budget_ms=budget_ms, plots=not no_plots,
        quiet=as_json, jobs=jobs, adb=adb)
    results = result if adb else {None: result}
    if as_json:
        out = [r.to_dict() for r in results.values()]
        click.echo(json.dumps(out if adb else out[0], indent=2))
        return
    for serial, one in results.items():
        _print_result(name, precision, threads, one)


def _print_result(name, precision, threads, result) -> None:
    """One sweep's table, warnings, files and pick (this machine's, or one device's)."""
    where = ""
    if result.device:
        device = result.settings.get("device", {})
        where = f" on {device.get('device') or 'device'} ({result.device})"
    _print_points(result.rows(), f"{name} {precision}, {threads} thread(s){where}: "
                  f"{len(result.measured)} measured, {len(result.reused)} already in the folder",
                  result.pick)
    noisy = [r for r in result.rows() if r.get("noisy")]
    if noisy:
        click.echo("warning: noisy measurements (p90/p50 or p50/min > 1.5) at " + ", ".join(
            f"alpha {r['alpha']:g} resolution {r['resolution']}" for r in noisy)
            + "; delete their .bench.json and rerun on a quiet machine", err=True)
    for note in result.notes:
        click.echo(f"note: {note}", err=True)
    files = [result.files["csv"], result.files["md"], *result.files["plots"]]
    click.echo("wrote " + ", ".join(files))
    if result.pick is not None:
        _print_pick(result.pick)


@click.command()
@click.argument("directory", metavar="DIR")
@click.option("--budget-ms", type=float, required=True, metavar="MS",
              help="The p50 latency budget in ms.")
@click.option("--by", type=click.Choice(["macs", "accuracy"]), default=None,
              help="What 'best' means [default: accuracy when the sweep has it, else MACs].")
@click.option("--device", "devices", multiple=True, metavar="SERIAL",
              help="Pick from this adb device's benchmarks (repeatable) [default: this "
                   "machine's, and every device's in the folder].")
@json_option("Print the pick as JSON.")
def pick(directory, budget_ms, by, devices, as_json):
    """Pick from a finished sweep DIR the configuration for a p50 latency budget (works
    without TensorFlow): for this machine's benchmarks and each adb device's."""
    from ..jobs.sweep import check_budget, load_sweep, pick_budget, sweep_devices

    budget_ms = check_budget(budget_ms)
    loaded = {}
    targets = list(devices)
    if not targets:
        loaded[None] = load_sweep(directory)
        targets = ([None] if loaded[None][1] else []) + sweep_devices(directory)
    picks = []
    for device in targets:
        settings, points = loaded.get(device) or load_sweep(directory, device)
        if points:
            rows = [p.row() for p in points]
            picks.append((device, settings, rows, pick_budget(rows, budget_ms, by)))
    if not picks:
        raise EdgecnnError(f"{directory} holds no complete sweep point; run edgecnn sweep first")
    if as_json:
        out = [{**result.to_dict(), "device": device} for device, _, _, result in picks]
        click.echo(json.dumps(out[0] if len(out) == 1 and not devices and out[0]["device"]
                              is None else out, indent=2))
        return
    for device, settings, rows, result in picks:
        where = ""
        if device is not None:
            where = f" on {settings['device'].get('device') or 'device'} ({device})"
        _print_points(rows, f"{settings.get('name')} {settings.get('precision')}, "
                      f"{settings.get('threads')} thread(s){where}, budget "
                      f"{result.budget_ms:g} ms", result)
        _print_pick(result)
