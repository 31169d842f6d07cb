"""The ``edgecnn weights`` jobs: the catalog of published ImageNet weights as rows
(``list_weights``), and any supported checkpoint turned into a keras weights file
(``import_weights``: ``models.pretrained.importer`` plans the mapping, this job builds the
model, applies it and writes the ``.h5`` atomically)."""
from __future__ import annotations

import os

from ..errors import EdgecnnError


def list_weights(model: str | None = None) -> list[dict]:
    """One row per catalog entry (of ``model`` only, when given): configuration, trained
    resolution, source, reported top-1/top-5, license, whether the cache has the file."""
    from ..models.pretrained.catalog import entries
    from ..models.pretrained.download import cached_file

    rows = []
    for entry in entries():
        if model is not None and entry.model != model:
            continue
        rows.append({**entry.as_dict(), "configuration": entry.configuration(),
                     "cached": cached_file(entry) is not None})
    if model is not None and not rows:
        known = sorted({e.model for e in entries()})
        raise EdgecnnError(f"the weights catalog has no entry for {model}; models with "
                           f"entries: {', '.join(known)}")
    return rows


def _merge_options(needed: dict, given: dict) -> dict:
    """The weights' options (e.g. padding="torch") with the user's; a contradiction is an
    error, since the weights compute what they were trained to only with their own."""
    clash = {k: v for k, v in given.items() if k in needed and needed[k] != v}
    if clash:
        key = sorted(clash)[0]
        raise EdgecnnError(f"these weights need {key}={needed[key]!r}, got -O "
                           f"{key}={clash[key]!r}; drop the option")
    return {**needed, **given}


def _check_h5(output: str) -> str:
    from ..utils.files import check_output_path

    output = check_output_path(output)
    if not output.endswith(".h5"):
        raise EdgecnnError(f"output {output} should end in .h5 (a keras weights file, as "
                           f"Model.save_weights writes it)")
    return output


def import_weights(path: str, model: str, *, alpha: float = 1.0, options: dict | None = None,
                   layout: str | None = None, output: str) -> dict:
    """Map checkpoint ``path`` onto ``create_model(model, alpha=alpha, **options)`` and
    write the result as a keras weights file at ``output`` (.h5). Returns the report:
    ``rows`` (one per tensor mapped), ``preprocessing`` the weights expect, ``options``
    the model was built with, ``source`` and ``output``."""
    output = _check_h5(output)
    if not os.path.isfile(path):
        raise EdgecnnError(f"checkpoint {path} does not exist; give a PyTorch .pth/.pt/.pth.tar,"
                           f" .safetensors, TF checkpoint or keras .h5 file")
    from ..models import create_model
    from ..models.pretrained.importer import plan_import
    from ..utils.files import atomic_output

    plan = plan_import(path, model, layout)
    built_options = _merge_options(plan.options, options or {})
    num_classes = plan.num_classes or 1000
    keras_model = create_model(model, alpha=alpha, num_classes=num_classes, weights=None,
                               **built_options)
    rows = [dict(row) for row in plan.apply(keras_model)]
    with atomic_output(output, suffix=".h5") as tmp:
        keras_model.save_weights(tmp)
    return {"checkpoint": os.path.abspath(path), "model": model, "alpha": alpha,
            "options": built_options, "layout": plan.layout.name, "source": plan.source,
            "preprocessing": plan.preprocessing.as_dict(),
            "output": output, "rows": rows}
