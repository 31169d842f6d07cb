"""The ``edgecnn`` command: a thin layer over the library API.

Bad input ends in one line on stderr (``error: ...``) and exit status 2, never a traceback.
"""
from __future__ import annotations

import json
import os
import sys

import click

from ._version import __version__
from .cli_options import PRECISION_FLAGS, choose_precision, precision_options
from .errors import EdgecnnError


def _one_line(message: str) -> str:
    return " ".join(str(message).split())


class EdgecnnGroup(click.Group):
    """A click group that turns user errors into one line and exit status 2."""

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        try:
            result = super().main(args=args, prog_name=prog_name or "edgecnn",
                                  complete_var=complete_var, standalone_mode=False, **extra)
        except click.exceptions.Exit as exc:  # pragma: no cover - click returns it instead
            sys.exit(exc.exit_code)
        except click.Abort:
            click.echo("error: aborted", err=True)
            sys.exit(1)
        except click.ClickException as exc:
            click.echo(f"error: {_one_line(exc.format_message())}", err=True)
            sys.exit(exc.exit_code)
        except EdgecnnError as exc:
            click.echo(f"error: {_one_line(exc)}", err=True)
            sys.exit(2)
        if isinstance(result, int) and not standalone_mode:
            return result
        sys.exit(result if isinstance(result, int) else 0)


def _parse_option(text: str):
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise EdgecnnError(f"option {text!r} is not KEY=VALUE (e.g. groups=3)")
    low = value.lower()
    if low in ("true", "false"):
        return key, low == "true"
    for cast in (int, float):
        try:
            return key, cast(value)
        except ValueError:
            pass
    return key, value


def model_options(f):
    """The options that choose a network configuration (shared by info, convert, ...)."""
    f = click.option("--option", "-O", "extra", multiple=True, metavar="KEY=VALUE",
                     help="A family option, e.g. -O groups=8.")(f)
    f = click.option("--minimalistic", is_flag=True, default=None,
                     help="MobileNetV3 without SE, hard-swish and 5x5 kernels.")(f)
    f = click.option("--num-classes", type=int, default=1000, show_default=True)(f)
    f = click.option("--rho", type=float, default=None,
                     help="Resolution multiplier: fraction of the default input.")(f)
    f = click.option("--resolution", "-r", type=int, default=None,
                     help="Input side in pixels (default: the model's).")(f)
    f = click.option("--alpha", "-a", type=float, default=1.0, show_default=True,
                     help="Width multiplier.")(f)
    return f


def family_options(minimalistic, extra) -> dict:
    options = dict(_parse_option(e) for e in extra)
    if minimalistic is not None:
        options["minimalistic"] = minimalistic
    return options


@click.group(cls=EdgecnnGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="edgecnn")
def cli():
    """Efficient CNNs from a Keras definition to a measured on-device model."""


@cli.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@click.option("--live", is_flag=True, help="Rebuild every model instead of reading the "
              "shipped catalog (needs TensorFlow).")
def list_cmd(as_json, live):
    """Every registered network with its default input, params and MACs (alpha 1.0)."""
    from . import catalog

    rows = catalog.generate() if live else catalog.load()
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title="edgecnn models (alpha 1.0, 1000 classes)")
    for col, justify in (("name", "left"), ("family", "left"), ("input", "right"),
                         ("params", "right"), ("MACs", "right")):
        table.add_column(col, justify=justify, no_wrap=True)
    for r in rows:
        table.add_row(r["name"], r["family"], str(r["input"]), f"{r['params'] / 1e6:.2f} M",
                      f"{r['macs'] / 1e6:,.1f} M")
    Console().print(table)


@cli.command()
@click.argument("target")
@model_options
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of tables.")
def info(target, alpha, resolution, rho, num_classes, minimalistic, extra, as_json):
    """Describe a network NAME (params, MACs, input spec, preprocessing, stage table), or
    print the model card of a converted FILE.tflite (works without TensorFlow)."""
    if _names_a_file(target):
        return _info_tflite(target, as_json)
    from .models.summary import describe_model

    report = describe_model(target, alpha=alpha, input_size=resolution, rho=rho,
                            num_classes=num_classes, **family_options(minimalistic, extra))
    if as_json:
        click.echo(json.dumps(report, indent=2))
        return
    from .models.summary import print_description

    print_description(report)


def _names_a_file(target: str) -> bool:
    """A .tflite, any file, or a folder that is not named like a model (a mistake to
    report as such, not as an unknown model)."""
    if target.endswith(".tflite") or os.path.isfile(target):
        return True
    if not os.path.isdir(target):
        return False
    from .catalog import load

    return target not in {row["name"] for row in load()}


def _info_tflite(path, as_json):
    from .runtime import analyze, read_card

    card = read_card(path)  # a folder or a damaged file: a one-line error
    if card is None:  # a .tflite from elsewhere: analyze it
        click.echo(json.dumps({"card": None, **analyze(path)}, indent=2))
        return
    if as_json:
        click.echo(card.to_json())
        return
    from .report import print_conversion

    print_conversion(card, path)


@cli.command()
@click.argument("name")
@model_options
@precision_options
@click.option("--qat", is_flag=True, help="Quantization-aware: wrap with tfmot, fine-tune on "
              "--data, convert to int8 without calibration.")
@click.option("--qat-epochs", type=click.IntRange(min=0), default=1, show_default=True)
@click.option("--weights", default="none", show_default=True,
              help="imagenet, a keras .h5 weights file, or none.")
@click.option("--data", "data_dir", type=str, default=None,
              help="Image folder (one sub-folder per class) for calibration, QAT and accuracy.")
@click.option("--calib-samples", type=click.IntRange(min=1), default=200, show_default=True)
@click.option("--io", "io_dtype", type=click.Choice(["uint8", "int8", "float32"]), default=None,
              help="Input/output type of an int8 model [default: uint8].")
@click.option("--output", "-o", type=str, default=None,
              help="Output .tflite [default: {name}_{alpha}_{resolution}_{precision}.tflite].")
@click.option("--bn-init/--no-bn-init", default=True, show_default=True,
              help="With --weights none: set the BatchNorm statistics from the calibration "
              "images first, so the random network converts and runs like a trained one.")
@click.option("--strict", is_flag=True, help="Fail (exit 2, nothing written) when an int8 "
              "model is not integer-only and one XNNPACK partition.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def convert(name, alpha, resolution, rho, num_classes, minimalistic, extra, int8, fp16, dynamic,
            qat, qat_epochs, weights, data_dir, calib_samples, io_dtype, output, bn_init, strict,
            as_json):
    """Build NAME and convert it to a validated .tflite with its model card."""
    precision = choose_precision(int8, fp16, dynamic, io_dtype,
                                 default="int8" if qat else "float32")
    if qat and precision != "int8":
        raise EdgecnnError(f"--qat makes an int8 model; drop {PRECISION_FLAGS[precision]}")
    from .converters.job import run_convert

    report = run_convert(
        name, alpha=alpha, resolution=resolution, rho=rho, num_classes=num_classes,
        options=family_options(minimalistic, extra), precision=precision, qat=qat,
        qat_epochs=qat_epochs, weights=weights, data_dir=data_dir, calib_samples=calib_samples,
        io_dtype=io_dtype, output=output, quiet=as_json, bn_init=bn_init, strict=strict)
    if as_json:
        click.echo(json.dumps({"path": report.path, **report.to_dict()}, indent=2))
    else:
        from .report import print_conversion

        print_conversion(report, report.path)


from .cli_export import export  # noqa: E402

cli.add_command(export)


from .cli_eval import eval_cmd, predict  # noqa: E402

cli.add_command(eval_cmd)
cli.add_command(predict)


from .cli_sweep import pick, sweep  # noqa: E402

cli.add_command(sweep)
cli.add_command(pick)


from .cli_bench import bench  # noqa: E402
cli.add_command(bench)

from .cli_train import train  # noqa: E402
cli.add_command(train)


def main(argv=None):
    """Console-script entry point."""
    return cli.main(args=argv, prog_name="edgecnn")


if __name__ == "__main__":  # pragma: no cover
    main()
