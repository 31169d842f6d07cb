"""The model catalog: name, family, default input, params and MACs of every registered
network at alpha 1.0 and 1000 classes, as shipped data (``catalog.json``).

``edgecnn list`` reads it, so it answers instantly and works on the light install; a test
rebuilds every network and checks the file. Regenerate it after changing a family with
``python -m edgecnn.jobs.catalog``.

The file stays at ``edgecnn/catalog.json`` (pyproject's package data). ``load`` needs no
TensorFlow; ``generate`` and ``write`` build every network (TensorFlow).
"""
from __future__ import annotations

import json
import os

PATH = os.path.join(os.path.dirname(os.path.dirname(__file__)), "catalog.json")


def load() -> list[dict]:
    with open(PATH) as f:
        return json.load(f)


def build_entry(name: str) -> dict:
    from ..models import count_macs, create_model, get_model_spec

    spec = get_model_spec(name)
    model = create_model(name, weights=None)
    return {"name": name, "family": spec.family, "input": spec.default_input,
            "params": int(model.count_params()), "macs": int(count_macs(model)),
            "options": {k: v for k, v in spec.options.items()}, "paper": spec.paper}


def generate() -> list[dict]:
    from ..models import list_models
    from ..models.summary import release_models

    rows = []
    for name in list_models():
        rows.append(build_entry(name))
        release_models()
    return rows


def write(path: str = PATH) -> list[dict]:
    """Regenerate the catalog file (atomically); returns its rows."""
    from ..utils.files import atomic_write_json

    rows = generate()
    atomic_write_json(path, rows)
    return rows


if __name__ == "__main__":  # pragma: no cover
    write()
    print(f"wrote {PATH}")
