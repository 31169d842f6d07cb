"""The ``edgecnn`` command: a thin layer over the library API.

Bad input ends in one line on stderr (``error: ...``) and exit status 2, never a traceback.
"""
from __future__ import annotations

import json
import sys

import click

from ._version import __version__
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
def list_cmd(as_json):
    """Every registered network with its default input, params and MACs."""
    from .models import count_macs, create_model, get_model_spec, list_models
    from .models.summary import release_models

    rows = []
    for name in list_models():
        spec = get_model_spec(name)
        model = create_model(name)
        rows.append({"name": name, "family": spec.family, "input": spec.default_input,
                     "params": model.count_params(), "macs": count_macs(model)})
        del model
        release_models()
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title="edgecnn models (alpha 1.0, 1000 classes)")
    for col, justify in (("name", "left"), ("family", "left"), ("input", "right"),
                         ("params", "right"), ("MACs", "right")):
        table.add_column(col, justify=justify)
    for r in rows:
        table.add_row(r["name"], r["family"], str(r["input"]), f"{r['params'] / 1e6:.2f} M",
                      f"{r['macs'] / 1e6:.1f} M")
    Console().print(table)


@cli.command()
@click.argument("target")
@model_options
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of tables.")
def info(target, alpha, resolution, rho, num_classes, minimalistic, extra, as_json):
    """Params, MACs, input spec, preprocessing and stage table of a network NAME."""
    from .models.summary import describe_model

    report = describe_model(target, alpha=alpha, input_size=resolution, rho=rho,
                            num_classes=num_classes, **family_options(minimalistic, extra))
    if as_json:
        click.echo(json.dumps(report, indent=2))
        return
    from .models.summary import print_description

    print_description(report)


def main(argv=None):
    """Console-script entry point."""
    return cli.main(args=argv, prog_name="edgecnn")


if __name__ == "__main__":  # pragma: no cover
    main()
