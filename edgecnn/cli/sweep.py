"""``edgecnn sweep`` (width x resolution, measured) and ``edgecnn pick`` (a latency budget)."""
from __future__ import annotations

import json

import click

from ..errors import EdgecnnError
from .options import (calib_samples_option, choose_precision, data_option, family_flags,
                      family_options, io_option, json_option, num_classes_option,
                      precision_options, runner_options, weights_option)


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
@click.option("--no-plots", is_flag=True, help="Skip the PNG plots.")
@json_option("Print the result as JSON.")
def sweep(name, alphas, resolutions, int8, fp16, dynamic, threads, data_dir, output_dir,
          budget_ms, num_classes, minimalistic, extra, weights, calib_samples, io_dtype, runs,
          warmup, min_seconds, no_xnnpack, jobs, no_plots, as_json):
    """Build, convert and benchmark NAME at every alpha x resolution; write sweep.csv,
    sweep.md and plots. Points already measured in the folder are not redone."""
    from ..jobs.sweep import parse_list, run_sweep

    alphas = parse_list(alphas, "--alpha", float)
    resolutions = parse_list(resolutions, "--resolution", int)
    precision = choose_precision(int8, fp16, dynamic, io_dtype)
    result = run_sweep(
        name, alphas, resolutions, precision=precision, threads=threads, data_dir=data_dir,
        output_dir=output_dir, num_classes=num_classes,
        options=family_options(minimalistic, extra), weights=weights,
        calib_samples=calib_samples, io_dtype=io_dtype, xnnpack=not no_xnnpack, runs=runs,
        warmup=warmup, min_seconds=min_seconds, budget_ms=budget_ms, plots=not no_plots,
        quiet=as_json, jobs=jobs)
    if as_json:
        click.echo(json.dumps(result.to_dict(), indent=2))
        return
    _print_points(result.rows(), f"{name} {precision}, {threads} thread(s): "
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
@json_option("Print the pick as JSON.")
def pick(directory, budget_ms, by, as_json):
    """Pick from a finished sweep DIR the configuration for a p50 latency budget (works
    without TensorFlow)."""
    from ..jobs.sweep import load_sweep, pick_budget

    settings, points = load_sweep(directory)
    if not points:
        raise EdgecnnError(f"{directory} holds no complete sweep point; run edgecnn sweep first")
    rows = [p.row() for p in points]
    result = pick_budget(rows, budget_ms, by)
    if as_json:
        click.echo(json.dumps(result.to_dict(), indent=2))
        return
    _print_points(rows, f"{settings.get('name')} {settings.get('precision')}, "
                  f"{settings.get('threads')} thread(s), budget {result.budget_ms:g} ms", result)
    _print_pick(result)
