"""``edgecnn weights``: ``list`` (the published ImageNet weights of every family, with their
reported accuracy, license and whether the cache has them) and ``import`` (a checkpoint
turned into a keras weights file, with a report of every tensor mapped). The work is in
``edgecnn.jobs.weights``."""
from __future__ import annotations

import json

import click

from .options import family_options, json_option


@click.group()
def weights():
    """Pretrained weights: the catalog, and checkpoints to keras weights files."""


@weights.command("list")
@click.option("--model", "-m", "model", default=None, metavar="NAME",
              help="Only this model's entries.")
@json_option("Print the catalog as JSON.")
def list_cmd(model, as_json):
    """Published ImageNet weights per model and configuration: source, trained resolution,
    the upstream's reported top-1/top-5, license, cached or not."""
    from ..jobs.weights import list_weights

    rows = list_weights(model)
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    from .render import print_weights

    print_weights(rows)


@weights.command("import")
@click.argument("checkpoint", metavar="FILE")
@click.option("--model", "-m", "model", required=True, metavar="NAME",
              help="The edgecnn model the weights are for.")
@click.option("--alpha", "-a", type=float, default=None,
              help="Width multiplier [default: 1.0; a .tflite: the width its weights fit].")
@click.option("--option", "-O", "extra", multiple=True, metavar="KEY=VALUE",
              help="A family option, e.g. -O groups=8.")
@click.option("--layout", default=None, help="The checkpoint's key layout (default: detected).")
@click.option("--output", "-o", required=True, help="The keras weights file to write (.h5).")
@json_option("Print the report as JSON.")
def import_cmd(checkpoint, model, alpha, extra, layout, output, as_json):
    """Map checkpoint FILE (PyTorch .pth/.pt/.pth.tar, .safetensors, a TF checkpoint, a
    keras .h5, or a classifier .tflite: its convolution and fully-connected weights in graph
    order, dequantized, BatchNorm folded) onto NAME and write it as a keras weights file
    (-o OUT.h5)."""
    from ..jobs.weights import import_weights

    report = import_weights(checkpoint, model, alpha=alpha,
                            options=family_options(None, extra), layout=layout,
                            output=output)
    if as_json:
        click.echo(json.dumps(report, indent=2, default=str))
        return
    from .render import print_import

    print_import(report)
