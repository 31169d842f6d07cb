"""``edgecnn list`` (every registered network, from the shipped catalog) and ``edgecnn info``
(one configuration described, or the model card of a converted .tflite). ``list`` and
``info FILE.tflite`` work on the light install: no TensorFlow."""
from __future__ import annotations

import json
import os

import click

from .options import family_options, foreign_from, foreign_options, json_option, model_options


@click.command("list")
@json_option("Print JSON instead of a table.")
@click.option("--live", is_flag=True, help="Rebuild every model instead of reading the "
              "shipped catalog (needs TensorFlow).")
def list_cmd(as_json, live):
    """Every registered network with its default input, params and MACs (alpha 1.0)."""
    from ..jobs import catalog

    rows = catalog.generate() if live else catalog.load()
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    from .render import print_catalog

    print_catalog(rows)


@click.command()
@click.argument("target")
@model_options
@click.option("--labels", type=str, default=None, metavar="FILE",
              help="A .tflite without a card: its class names, one per line.")
@foreign_options
@json_option("Print JSON instead of tables.")
def info(target, alpha, resolution, rho, num_classes, minimalistic, extra, labels, preprocess,
         mean, std, resize, crop, as_json):
    """Describe a network NAME (params, MACs, input spec, preprocessing, stage table), or
    print the model card of a converted FILE.tflite (works without TensorFlow); a .tflite
    from elsewhere: its ops, partitions, tensors, TFLite metadata and how edgecnn reads it."""
    foreign = foreign_from(labels, preprocess, mean, std, resize, crop)
    if _names_a_file(target):
        return _info_tflite(target, as_json, foreign)
    if foreign.given():
        from ..errors import EdgecnnError

        raise EdgecnnError("--labels/--preprocess/--mean/--std/--resize/--crop describe a "
                           ".tflite without an edgecnn model card, not a network name")
    from ..models.summary import describe_model

    report = describe_model(target, alpha=alpha, input_size=resolution, rho=rho,
                            num_classes=num_classes, **family_options(minimalistic, extra))
    if as_json:
        click.echo(json.dumps(report, indent=2))
        return
    from .render import print_description

    print_description(report)


def _names_a_file(target: str) -> bool:
    """A .tflite, any file, or a folder that is not named like a model (a mistake to
    report as such, not as an unknown model)."""
    if target.endswith(".tflite") or os.path.isfile(target):
        return True
    if not os.path.isdir(target):
        return False
    from ..jobs.catalog import load

    return target not in {row["name"] for row in load()}


def _info_tflite(path, as_json, foreign):
    from ..runtime import read_card

    card = read_card(path)  # a folder or a damaged file: a one-line error
    if card is None:  # a .tflite from elsewhere: what the file says, and what is assumed
        from ..runtime.foreign import describe_foreign

        report = describe_foreign(path, foreign)
        if as_json:
            click.echo(json.dumps(report, indent=2))
            return
        from .render import print_foreign

        print_foreign(report, path)
        return
    if foreign.given():
        from ..errors import EdgecnnError

        raise EdgecnnError(f"{path} has an edgecnn model card, which gives its labels and "
                           f"preprocessing; --labels/--preprocess/... are for models without "
                           f"one")
    if as_json:
        click.echo(card.to_json())
        return
    from .render import print_conversion

    print_conversion(card, path)
