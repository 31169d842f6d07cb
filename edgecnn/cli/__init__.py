"""The ``edgecnn`` command: a thin layer over the library API.

This module builds the click group and exposes ``main`` (the console script
``edgecnn = "edgecnn.cli:main"``; ``python -m edgecnn.cli`` runs it too). Each command lives
in a module of its own and never imports this one back:

- ``models``: list, info;  ``convert``: convert;  ``bench``: bench;  ``profile``: profile;
  ``quant_error``: quant-error;
  ``sweep``: sweep, pick;
  ``train``: train;  ``evaluate``: eval, predict;  ``export``: export android;
  ``weights``: weights list, weights import;
- ``options``: the click options several commands share;
- ``render``: rich printing of model cards, conversion reports and model descriptions.

Bad input ends in one line on stderr (``error: ...``) and exit status 2, never a traceback.
Importing the package is cheap: the commands import TensorFlow, LiteRT and the workflows
only when they run.
"""
from __future__ import annotations

import sys
import warnings

import click

from .._version import __version__
from ..errors import EdgecnnError, EdgecnnWarning
from . import (bench, convert, evaluate, export, models, profile, quant_error, sweep,
               train, weights)


def _one_line(message: str) -> str:
    return " ".join(str(message).split())


def _show_warning(message, category, filename, lineno, file=None, line=None,
                  _default=warnings.showwarning):
    """An EdgecnnWarning as one line on stderr (``warning: ...``); others as Python shows them."""
    if issubclass(category, EdgecnnWarning):
        click.echo(f"warning: {_one_line(message)}", err=True)
    else:
        _default(message, category, filename, lineno, file, line)


class EdgecnnGroup(click.Group):
    """A click group that turns user errors into one line and exit status 2, and library
    warnings (:class:`EdgecnnWarning`) into one line each."""

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        warnings.showwarning = _show_warning
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


@click.group(cls=EdgecnnGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="edgecnn")
def cli():
    """Efficient CNNs from a Keras definition to a measured on-device model."""


for command in (models.list_cmd, models.info, convert.convert, export.export,
                evaluate.eval_cmd, evaluate.predict, sweep.sweep, sweep.pick, bench.bench,
                profile.profile, quant_error.quant_error, train.train, weights.weights):
    cli.add_command(command)
del command


def main(argv=None):
    """Console-script entry point."""
    return cli.main(args=argv, prog_name="edgecnn")
