"""``edgecnn quant-error``: the int8 error of every layer against float, the worst flagged, and
what keeping layers in float costs (``edgecnn.jobs.quant_error``; this module reads the
options and prints the report)."""
from __future__ import annotations

import json

import click

from ..errors import EdgecnnError
from .options import (calib_samples_option, family_options, json_option, labels_option,
                      model_options, weights_choice)

SORTS = ("own", "snr", "graph")


def split_layers(values) -> list[str]:
    layers = [name.strip() for value in values for name in value.split(",") if name.strip()]
    if values and not layers:
        raise EdgecnnError("--keep-float needs layer names: --keep-float LAYER[,LAYER], "
                           "from the table's 'layer' column")
    return layers


def _fmt(value, spec: str) -> str:
    if value is None:
        return "-"
    if value == float("inf"):
        return "exact"
    return format(value, spec)


def _ordered(rows: list[dict], sort: str) -> list[dict]:
    if sort == "graph":
        return list(rows)
    key = "own_snr_db" if sort == "own" else "snr_db"
    return sorted(rows, key=lambda r: (r.get(key) is None, r.get(key) or 0.0))


def print_report(report: dict, top: int, sort: str) -> None:
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    console = Console() if Console().is_terminal else Console(width=160)
    console.print(f"[bold]{escape(str(report['model']))}[/bold] {report['resolution']} px, "
                  f"weights {escape(str(report['weights']))}: int8 error of every quantized "
                  f"layer against float on {report['error_images']} of the "
                  f"{report['calibration_images']} calibration images from "
                  f"{escape(report['data'])}")
    console.print("own SNR: the error the layer adds by itself (fed the float model's "
                  "input); rounding SNR: its float output only rounded to its int8 grid (own "
                  "close to rounding: the tensor's range is the limit, not the op); SNR: the "
                  "error the whole int8 model has reached there; RMSE/range: 0.0011 is "
                  "rounding alone")
    rows = _ordered(report["layers"], sort)
    title = {"own": "lowest own SNR first", "snr": "lowest SNR first",
             "graph": "in graph order"}[sort]
    table = Table(title=f"{min(top, len(rows))} of {len(rows)} layers, {title}",
                  title_justify="left")
    for name, justify in (("#", "right"), ("op", "left"), ("layer", "left"),
                          ("own SNR dB", "right"), ("rounding SNR dB", "right"),
                          ("SNR dB", "right"),
                          ("RMSE/range", "right"), ("", "left")):
        table.add_column(name, justify=justify)
    for row in rows[:top]:
        table.add_row(str(row["index"]), row["op"], escape(row["layer"]),
                      _fmt(row.get("own_snr_db"), ".1f"), _fmt(row.get("rounding_snr_db"), ".1f"),
                      _fmt(row.get("snr_db"), ".1f"),
                      _fmt(row.get("rmse_range"), ".4f"),
                      "[red]worst[/red]" if row.get("worst") else "")
    console.print(table)
    if report["worst"]:
        console.print(f"worst: {escape(', '.join(dict.fromkeys(report['worst'])))}")
        console.print(f"to keep them in float: --keep-float "
                      f"{escape(','.join(report['suggested_keep_float']))}  (a layer whose own "
                      f"SNR is its rounding SNR comes with its readers)")
    models = Table(title=f"on all {report['images']} images of --data"
                   + ("" if report["labels"] else " (no classes that map onto the outputs: "
                      "agreement with float only)"), title_justify="left")
    for name in ("model", "top-1 %", "agrees with float %", "logit SNR dB", "ms",
                 "partitions", "size KB", "float ops"):
        models.add_column(name, justify="left" if name in ("model", "float ops") else "right")
    for key, entry in report["models"].items():
        ops = entry.get("float_ops")
        models.add_row(key, _fmt(entry.get("top1"), ".1f"), _fmt(entry["agreement"], ".1f"),
                       _fmt(entry.get("logit_snr_db"), ".1f"), f"{entry['ms']:.3f}", str(entry["xnnpack_partitions"]),
                       f"{entry['size_bytes'] / 1024:.0f}",
                       "-" if ops is None else (", ".join(f"{k} {v}" for k, v in ops.items())
                                                or "none"))
    console.print(models)
    kept = report["models"].get("int8 keep-float")
    if kept:
        base = report["models"]["int8"]
        delta = "" if kept.get("top1") is None else \
            f"top-1 {kept['top1'] - base['top1']:+.1f} points, "
        console.print(f"keeping {escape(', '.join(report['keep_float']))} in float: {delta}"
                      f"agreement {kept['agreement'] - base['agreement']:+.1f} points, "
                      f"logit SNR {kept['logit_snr_db'] - base['logit_snr_db']:+.1f} dB, "
                      f"latency x{kept['ms'] / base['ms']:.2f} ({report['threads']} thread(s), "
                      f"this machine)")
    if report.get("output"):
        console.print(f"wrote {escape(report['output'])}")


def plot_report(report: dict, output: str, top: int, sort: str) -> str:
    """Per-layer SNR bars (own SNR; SNR where a layer has none), the worst in red."""
    from ..runtime.charts import bar_chart

    rows = _ordered(report["layers"], sort)[:top]
    values = [r.get("own_snr_db") if r.get("own_snr_db") is not None else r.get("snr_db")
              for r in rows]
    values = [60.0 if v is None or v == float("inf") else v for v in values]
    return bar_chart(output, [f"{r['index']} {r['op']} {r['layer']}" for r in rows], values,
                     title=f"{report['model']} {report['resolution']} px int8: own SNR per layer"
                     f" ({report['error_images']} images)", xlabel="own SNR (dB), lower is worse",
                     what="--plot (the per-layer SNR chart)",
                     highlight=[bool(r.get("worst")) for r in rows])


@click.command("quant-error")
@click.argument("model", metavar="MODEL")
@model_options
@weights_choice("auto")
@click.option("--data", "data_dir", required=True, metavar="DIR",
              help="Image folder: calibration, the per-layer comparison and accuracy (classes "
              "as for edgecnn eval; without classes, agreement with float only).")
@labels_option
@calib_samples_option
@click.option("--images", type=click.IntRange(min=1), default=16, show_default=True,
              help="Calibration images the layers are compared on.")
@click.option("--keep-float", "keep_float", multiple=True, metavar="LAYER[,LAYER]",
              help="Convert again with these layers (the table's 'layer' names, or any Keras "
              "layer name) in float; report accuracy, partitions and latency of both.")
@click.option("--worst", type=click.IntRange(min=0), default=5, show_default=True,
              help="How many layers to flag (lowest own SNR).")
@click.option("--sort", type=click.Choice(SORTS), default="own", show_default=True)
@click.option("--top", type=click.IntRange(min=1), default=25, show_default=True,
              help="Rows of the layer table (and of the --plot chart).")
@click.option("--threads", "-t", type=click.IntRange(min=1), default=1, show_default=True)
@click.option("--output", "-o", default=None, help="Write the --keep-float model here.")
@click.option("--plot", default=None, metavar="PNG", help="Write the per-layer SNR chart.")
@json_option("Print the report as JSON.")
def quant_error(model, alpha, resolution, rho, num_classes, minimalistic, extra, weights,
                data_dir, labels, calib_samples, images, keep_float, worst, sort, top, threads,
                output, plot, as_json):
    """Which layers of MODEL's post-training int8 lose accuracy: each quantized layer output
    against float on --data images (SNR, RMSE over range), the worst flagged; with
    --keep-float, what leaving layers in float costs and gives back. MODEL: a registered
    name (with --weights) or a .keras/.h5 file."""
    from ..jobs.quant_error import run_quant_error

    if plot is not None:
        from ..utils.files import check_output_path

        check_output_path(plot)
        if not plot.endswith(".png"):
            raise EdgecnnError(f"--plot {plot}: the chart is a PNG; give a path ending in .png")

    def say(message):
        if not as_json:
            click.echo(message, err=True)

    report = run_quant_error(
        model, data_dir=data_dir, alpha=alpha, resolution=resolution, rho=rho,
        num_classes=num_classes, options=family_options(minimalistic, extra), weights=weights,
        labels=labels, calib_samples=calib_samples, images=images,
        keep_float=split_layers(keep_float), worst=worst, threads=threads, output=output,
        progress=say)
    if plot is not None:
        report["plot"] = plot_report(report, plot, top, sort)
    if as_json:
        click.echo(json.dumps(report, indent=2))
    else:
        print_report(report, top, sort)
        if plot is not None:
            click.echo(f"wrote {plot}")
