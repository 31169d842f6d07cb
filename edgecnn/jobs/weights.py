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


#: Widths tried, in this order, when a .tflite's width is not given.
ALPHAS = (1.0, 0.75, 0.5, 0.35, 0.25, 1.3, 1.4, 1.5, 2.0)


def import_weights(path: str, model: str, *, alpha: float | None = None,
                   options: dict | None = None, layout: str | None = None,
                   output: str) -> dict:
    """Map checkpoint ``path`` onto ``create_model(model, alpha=alpha, **options)`` and
    write the result as a keras weights file at ``output`` (.h5). Returns the report:
    ``rows`` (one per tensor mapped), ``preprocessing`` the weights expect, ``options``
    the model was built with, ``source`` and ``output``. A classifier .tflite's weights
    (``models.pretrained.tflite_weights``) are verified first; without ``alpha`` the width
    whose layers its weights fit is found (``alpha_source`` says so). Other checkpoints:
    ``alpha`` defaults to 1.0."""
    output = _check_h5(output)
    if not os.path.isfile(path):
        raise EdgecnnError(f"checkpoint {path} does not exist; give a PyTorch .pth/.pt/.pth.tar,"
                           f" .safetensors, TF checkpoint, keras .h5 or .tflite file")
    from ..models import create_model
    from ..models.pretrained.importer import plan_import
    from ..models.pretrained.tflite_weights import is_tflite
    from ..utils.files import atomic_output

    tflite = is_tflite(path)
    if tflite:
        from ..runtime.tflite import read_model

        read_model(path)  # a damaged file: one line, before the flatbuffer is unpacked
    plan = plan_import(path, model, layout)
    built_options = _merge_options(plan.options, options or {})
    num_classes = plan.num_classes or 1000

    size = {}
    if tflite:  # built at the file's input size, to run beside it (weights fit any size)
        size = {"input_size": int(plan.checkpoint.input_shape[1])}

    def build(width):
        return create_model(model, alpha=width, num_classes=num_classes, weights=None,
                            **size, **built_options)

    alpha_source = "given"
    if alpha is None and tflite:
        keras_model, alpha, rows = _fitting_width(plan, build, path, model)
        alpha_source = "found: the width the file's weights fit"
    else:
        alpha = 1.0 if alpha is None else alpha
        keras_model = build(alpha)
        rows = [dict(row) for row in plan.apply(keras_model)]
    agreement = _check_against_tflite(keras_model, plan, path, model) if tflite else None
    with atomic_output(output, suffix=".h5") as tmp:
        keras_model.save_weights(tmp)
    report = {"checkpoint": os.path.abspath(path), "model": model, "alpha": alpha,
              "alpha_source": alpha_source, "options": built_options,
              "layout": plan.layout.name, "source": plan.source,
              "preprocessing": plan.preprocessing.as_dict(), "num_classes": num_classes,
              "output": output, "rows": rows}
    if tflite:
        report["input_shape"] = plan.checkpoint.input_shape
        report["agreement"] = agreement
    return report


#: What the imported model must reproduce of the .tflite's outputs (probabilities, on
#: synthetic images): measured 2026-12-07, Google's uint8 MobileNet V1 0.25/128 gives
#: correlation 0.996 and top-1 agreement 15/16 (its quantization); a graph whose converter
#: moved constants into the weights (MobileNetV3's hard-sigmoid ``+ 3`` in the SE bias)
#: gives 0.59 and 0/16.
MIN_CORRELATION = 0.95
MIN_TOP1 = 0.5
CHECK_IMAGES = 16


def _check_against_tflite(keras_model, plan, path: str, name: str) -> dict:
    """Run the imported model and the .tflite on the same synthetic images: their
    probabilities must agree (``MIN_CORRELATION``, ``MIN_TOP1``), else a one-line error
    (the file's graph computes something the network does not) and nothing is written."""
    import numpy as np

    from ..data.folder import synthetic_images
    from ..runtime.evaluate import TfliteModel
    from ..runtime.tflite import softmax

    lite = TfliteModel(path)
    pixels = synthetic_images(CHECK_IMAGES, lite.size, seed=1)
    pre = plan.preprocessing
    x = (pixels.astype(np.float32) - np.asarray(pre.mean, np.float32)) / \
        np.asarray(pre.std, np.float32)
    ours = np.asarray(keras_model.predict(x, verbose=0), np.float64)
    if not np.allclose(ours.sum(1), 1.0, atol=1e-3):
        ours = softmax(ours)
    theirs = lite.logits(pixels).astype(np.float64)
    theirs = theirs / np.maximum(theirs.sum(1, keepdims=True), 1e-12) \
        if lite.card.scores_are_probabilities else softmax(theirs)
    top1 = float((ours.argmax(1) == theirs.argmax(1)).mean())
    correlation = float(np.corrcoef(ours.ravel(), theirs.ravel())[0, 1])
    result = {"images": CHECK_IMAGES, "data": "synthetic", "top1_agreement": round(top1, 4),
              "probability_correlation": round(correlation, 5),
              "mean_abs_prob_error": float(np.abs(ours - theirs).mean())}
    if not (correlation >= MIN_CORRELATION and top1 >= MIN_TOP1):
        raise EdgecnnError(
            f"the weights imported from {path} do not reproduce its outputs in {name} "
            f"(top-1 agreement {top1:.0%}, probability correlation {correlation:.2f} on "
            f"{CHECK_IMAGES} images): its graph computes something else (constants the "
            f"converter folded into the weights, another op order or preprocessing); nothing "
            f"written")
    return result


def _fitting_width(plan, build, path: str, model: str):
    """(model, alpha, rows) of the first width in ALPHAS whose layers take the weights."""
    import re

    tried, furthest = [], (-1, "", "")
    for width in ALPHAS:
        try:
            keras_model = build(width)
            return keras_model, width, [dict(row) for row in plan.apply(keras_model)]
        except EdgecnnError as exc:
            tried.append(f"{width:g}")
            message = str(exc)
            found = re.search(r"op (\d+)", message)  # how far the width's layers went
            reached = int(found.group(1)) if found else -1
            if reached > furthest[0]:
                furthest = (reached, f"{width:g}", message)
    _, width, message = furthest
    raise EdgecnnError(f"{path} fits {model} at none of the widths {', '.join(tried)} (at "
                       f"alpha {width or tried[-1]}, the furthest: "
                       f"{message.split(': ', 1)[-1] or 'no layer fits'}); check --model, or "
                       f"give --alpha")
