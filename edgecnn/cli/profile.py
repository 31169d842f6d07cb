"""``edgecnn profile``: where the milliseconds go, per op: on this machine (LiteRT, each op
timed alone: ``runtime.profile``) or from a saved ``benchmark_model --enable_op_profiling``
output (``runtime.op_profile``). Works on the light install: no TensorFlow."""
from __future__ import annotations

import json
import re

import click

from ..errors import EdgecnnError
from .options import json_option


def _saved_profile(path: str) -> dict:
    from ..runtime.adb import from_output

    row = from_output(path)
    if row.get("op_profile") is None:
        raise EdgecnnError(f"--from-output {path}: no op profile in it (run benchmark_model "
                           f"with --enable_op_profiling=true)")
    return report_from_row(row)


def report_from_row(row: dict) -> dict:
    """A benchmark_model result row with an ``op_profile`` as a profile report (the shape
    ``runtime.profile`` returns), for ``print_profile``."""
    profile = row["op_profile"]
    timings = profile.get("timings_us") or {}
    total_us = timings.get("avg", timings.get("curr"))
    rows = profile["run_order"] or profile["top"]
    return {"method": "benchmark_model's op profiler (saved output)", "model": row["model"],
            "threads": row.get("threads"), "delegate": row.get("delegate"),
            "total_ms": None if total_us is None else total_us / 1000.0,
            "ops_sum_ms": round(sum(r["avg_ms"] for r in rows), 5),
            "ops": [{"index": i, "op": r["node_type"], "name": r.get("name", ""),
                     "ms": r["avg_ms"], "percent": r.get("percent")}
                    for i, r in enumerate(rows)],
            "by_type": [{"op": r["node_type"], "count": r.get("count"), "ms": r["avg_ms"],
                         "percent": r.get("percent")} for r in profile["summary"]],
            "profile": profile}


def _layer(name: str) -> str:
    """The layer part of a converter's fused tensor name: its convolution's or matmul's
    piece ("m/a_bn/FusedBatchNormV3;m/a/Conv2D1" -> "a/Conv2D1"; TF1's
    ".../Conv2d_0/Relu6;...;.../Conv2d_0/Conv2D_Fold;.../BatchNorm_Fold/bias" ->
    ".../Conv2d_0/Conv2D_Fold"), else the last piece; at most 60 characters."""
    if ";" in name:
        pieces = name.split(";")
        main = [p for p in pieces if re.match(r"^(Conv2D|depthwise|MatMul)", p.split("/")[-1])]
        name = (main or pieces)[-1].split("/", 1)[-1]
    return name if len(name) <= 60 else "..." + name[-57:]


def print_profile(report: dict, top: int) -> None:
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    console = Console() if Console().is_terminal else Console(width=160)
    total = report.get("total_ms")
    head = f"{report['model']}: " + (f"{total:.3f} ms per run" if total else "per-op profile")
    if report.get("threads"):
        head += f", {report['threads']} thread(s)"
    head += ": the slowest ops and the time by op type"
    console.print(f"[bold]{escape(head)}[/bold]")
    console.print(f"method: {escape(report['method'])}")
    if report.get("coverage") is not None:
        console.print(f"the ops alone take {report['ops_sum_ms']:.3f} ms, "
                      f"{100 * report['coverage']:.0f} % of the whole run; the estimates in "
                      f"the model add up to {report['estimate_sum_ms']:.3f} ms")
    table = Table(title=f"slowest {min(top, len(report['ops']))} ops", title_justify="left")
    alone = any("alone_ms" in row for row in report["ops"])
    columns = [("#", "right"), ("op", "left"), ("output", "left"), ("ms", "right")]
    columns += [("alone ms", "right")] if alone else []
    for name, justify in columns + [("%", "right"), ("cum %", "right")]:
        table.add_column(name, justify=justify)
    cumulative = 0.0
    for row in sorted(report["ops"], key=lambda r: -r["ms"])[:top]:
        share = row.get("percent") or 0.0
        cumulative += share
        cells = [str(row["index"]), escape(row["op"]), escape(_layer(row["name"])),
                 f"{row['ms']:.4f}"] + ([f"{row['alone_ms']:.4f}"] if alone else [])
        table.add_row(*cells, f"{share:.1f}", f"{cumulative:.1f}")
    console.print(table)
    by_type = Table(title="by op type", title_justify="left")
    for name, justify in (("op", "left"), ("count", "right"), ("ms", "right"), ("%", "right")):
        by_type.add_column(name, justify=justify)
    for entry in report["by_type"]:
        share = entry.get("percent")
        by_type.add_row(escape(entry["op"]), str(entry.get("count") or "-"),
                        f"{entry['ms']:.4f}", "-" if share is None else f"{share:.1f}")
    console.print(by_type)


def plot_profile(report: dict, output: str) -> str:
    """The time by op type as horizontal bars (ms, share of the run in the labels)."""
    from ..runtime.charts import bar_chart

    entries = report["by_type"]
    labels = [f"{e['op']} x{e['count']}" + (f" ({e['percent']:.0f} %)"
                                            if e.get("percent") is not None else "")
              if e.get("count") else e["op"] for e in entries]
    total = report.get("total_ms")
    title = f"{report['model']}: time by op type" + (f", {total:.3f} ms per run"
                                                     if total else "")
    return bar_chart(output, labels, [e["ms"] for e in entries], title=title, xlabel="ms",
                     what="--plot (the op-type chart)", note=report["method"][:110])


@click.command("profile")
@click.argument("model", required=False, metavar="MODEL.tflite")
@click.option("--threads", "-t", type=click.IntRange(min=1), default=1, show_default=True)
@click.option("--rounds", type=click.IntRange(min=1), default=3, show_default=True,
              help="Rounds of the whole model and every op, interleaved; medians reported.")
@click.option("--no-xnnpack", is_flag=True, help="LiteRT's builtin kernels instead of XNNPACK.")
@click.option("--top", type=click.IntRange(min=1), default=15, show_default=True,
              help="Rows of the slowest-ops table.")
@click.option("--from-output", "saved", default=None, metavar="SAVED.txt",
              help="A saved benchmark_model output with --enable_op_profiling=true ('-' for "
              "stdin) instead of timing MODEL here.")
@click.option("--plot", default=None, metavar="PNG",
              help="Write a bar chart of the time by op type.")
@json_option("Print the profile as JSON.")
def profile(model, threads, rounds, no_xnnpack, top, saved, plot, as_json):
    """Per-op latency of MODEL.tflite on this machine: each op's time, its share of the whole
    model's and the totals by op type; or the op tables of a saved benchmark_model run."""
    if bool(model) == bool(saved):
        raise EdgecnnError("give MODEL.tflite to profile here, or --from-output SAVED.txt "
                           "(one of them)")
    if plot is not None and not plot.endswith(".png"):
        raise EdgecnnError(f"--plot {plot}: the chart is a PNG; give a path ending in .png")
    if plot is not None:
        from ..utils.files import check_output_path

        check_output_path(plot)
    if saved:
        report = _saved_profile(saved)
    else:
        import os

        from ..runtime.profile import profile as run_profile

        report = {"model": os.path.basename(model),
                  **run_profile(model, threads=threads, rounds=rounds,
                                xnnpack=not no_xnnpack)}
    if plot is not None:
        report["plot"] = plot_profile(report, plot)
    if as_json:
        click.echo(json.dumps(report, indent=2))
    else:
        print_profile(report, top)
        if plot is not None:
            click.echo(f"wrote {plot}")
