"""Click options shared by several edgecnn commands (no other edgecnn imports, so every
command module can use them at import time)."""
from __future__ import annotations

import click

from .errors import EdgecnnError

PRECISION_FLAGS = {"int8": "--int8", "float16": "--fp16", "dynamic": "--dynamic"}


def precision_options(f):
    """--int8 / --fp16 / --dynamic (none: float32); read them with ``choose_precision``."""
    f = click.option("--dynamic", is_flag=True, help="int8 weights, float activations.")(f)
    f = click.option("--fp16", is_flag=True, help="float16 weights.")(f)
    return click.option("--int8", "int8", is_flag=True,
                        help="Integer-only int8 (XNNPACK-whole).")(f)


def choose_precision(int8: bool, fp16: bool, dynamic: bool, io_dtype: str | None = None,
                     default: str = "float32") -> str:
    """The one precision the flags name (``default`` for none); one-line errors for two
    precisions, or integer io without --int8."""
    chosen = [p for p, flag in (("int8", int8), ("float16", fp16), ("dynamic", dynamic)) if flag]
    if len(chosen) > 1:
        raise EdgecnnError(f"choose one precision, got "
                           f"{' and '.join(PRECISION_FLAGS[c] for c in chosen)}")
    precision = chosen[0] if chosen else default
    if io_dtype and io_dtype != "float32" and precision != "int8":
        raise EdgecnnError(f"--io {io_dtype} needs --int8")
    return precision


def runner_options(f):
    """The LiteRT runner's settings (``edgecnn.runtime.benchmark``'s defaults when unset)."""
    f = click.option("--no-xnnpack", is_flag=True,
                     help="LiteRT's builtin kernels instead of XNNPACK.")(f)
    f = click.option("--min-seconds", type=click.FloatRange(min=0), default=None,
                     help="Minimum duration of the timed runs [default: 1 s].")(f)
    f = click.option("--warmup", type=click.IntRange(min=0), default=None,
                     help="Warmup runs before timing [default: at least 1 and 0.5 s].")(f)
    return click.option("--runs", type=click.IntRange(min=1), default=None,
                        help="Minimum number of timed runs [default: 50].")(f)
