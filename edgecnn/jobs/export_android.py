"""Ship a converted .tflite in the Android demo app: ``edgecnn export android``.

The model, its edgecnn card (JSON) and ``labels.txt`` go into
``android_demo/app/src/main/assets/``; ``edgecnn_bundle.json`` records which model the app
ships and is what the app reads first. Works on the light install (numpy + LiteRT).
"""
from __future__ import annotations

import hashlib
import json
import os
import tempfile

import numpy as np

from .._version import __version__
from ..errors import EdgecnnError
from ..runtime import tflite as rt
from ..runtime.card import ModelCard

BUNDLE_FILE = "edgecnn_bundle.json"
LABELS_FILE = "labels.txt"
ASSETS = os.path.join("app", "src", "main", "assets")
MANIFEST = os.path.join("app", "src", "main", "AndroidManifest.xml")
# What the app can feed (edgecnn/runtime/tflite.py quantize_pixels does the same in Python).
INPUT_DTYPES = ("uint8", "int8", "float32")


def app_assets(app_dir: str) -> str:
    """The assets folder of an android_demo checkout; refuses any other folder."""
    app_dir = os.path.abspath(os.fspath(app_dir))
    if not os.path.isdir(app_dir):
        raise EdgecnnError(f"app folder {app_dir} does not exist; give --app the android_demo "
                           f"folder of the edgecnn repository")
    settings = os.path.join(app_dir, "settings.gradle.kts")
    manifest = os.path.join(app_dir, MANIFEST)
    if not (os.path.isfile(settings) and os.path.isfile(manifest)):
        raise EdgecnnError(f"{app_dir} is not an android_demo app (no settings.gradle.kts and "
                           f"{MANIFEST}); give --app the android_demo folder")
    with open(settings, encoding="utf-8", errors="replace") as f:
        if "edgecnn" not in f.read():
            raise EdgecnnError(f"{app_dir} is a Gradle project but not edgecnn's android_demo; "
                               f"give --app the android_demo folder")
    assets = os.path.join(app_dir, ASSETS)
    os.makedirs(assets, exist_ok=True)
    if not os.access(assets, os.W_OK):
        raise EdgecnnError(f"assets folder {assets} is not writable")
    return assets


def _checked_card(path: str, data: bytes) -> ModelCard:
    """The model's card, checked for what the app needs to feed and read it: one image of
    raw pixels goes through ``ModelCard.pixels_to_input`` and the model, as the app does."""
    card = ModelCard.read(data, name=path)
    if card is None:
        raise EdgecnnError(f"{path} has no edgecnn model card; the app takes its input and "
                           f"labels from it: convert the model with `edgecnn convert`")
    shape = card.input.shape or []
    if len(shape) != 4 or shape[0] != 1 or shape[3] != 3 or shape[1] != shape[2]:
        raise EdgecnnError(f"{path} takes input shape {shape}; the app feeds one square RGB "
                           f"image [1, H, H, 3]")
    if card.input.dtype not in INPUT_DTYPES:
        raise EdgecnnError(f"{path} takes {card.input.dtype} input; the app feeds "
                           f"{', '.join(INPUT_DTYPES)}")
    classes = card.output.classes or 0
    if card.labels is not None and len(card.labels) != classes:
        raise EdgecnnError(f"{path}'s card has {len(card.labels)} labels for {classes} outputs")
    interpreter = rt.load_interpreter(data, name=path)  # a one-line error if LiteRT refuses it
    spec = rt.input_spec(interpreter)
    if spec["shape"] != [int(s) for s in shape] or spec["dtype"] != card.input.dtype:
        raise EdgecnnError(f"{path}'s card says input {card.input.dtype} {shape}, the model "
                           f"has {spec['dtype']} {spec['shape']}; re-convert the model")
    outputs = [int(s) for s in interpreter.get_output_details()[0]["shape"]]
    if outputs != card.output.shape:
        raise EdgecnnError(f"{path}'s card says output {card.output.shape}, the model has "
                           f"{outputs}; re-convert the model")
    pixels = np.full((1, *shape[1:]), 128, np.uint8)  # what the app feeds: raw camera pixels
    rt.run_logits(interpreter, pixels, path, lambda x: card.pixels_to_input(x, path))
    return card


def _labels_text(card: ModelCard) -> str:
    labels = card.labels
    if labels is None:  # no class names known: the app shows "class i"
        labels = [f"class {i}" for i in range(card.output.classes)]
    return "".join(f"{' '.join(str(label).split())}\n" for label in labels)


def _stage(folder: str, name: str, data: bytes) -> str:
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{name}.", suffix=".tmp")
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.fchmod(fd, 0o666 & ~umask)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
    except BaseException:
        os.unlink(tmp)
        raise
    return tmp


def read_bundle(app_dir: str = "android_demo") -> dict | None:
    """What the app ships now (the contents of ``edgecnn_bundle.json``), or None when it
    ships nothing; a damaged record is a one-line EdgecnnError."""
    path = os.path.join(os.fspath(app_dir), ASSETS, BUNDLE_FILE)
    if not os.path.lexists(path):
        return None
    problem = None
    try:
        with open(path, "rb") as f:
            bundle = json.loads(f.read().decode("utf-8"))
    except OSError as exc:
        problem = exc.strerror or str(exc)
    except (ValueError, RecursionError):  # UnicodeDecodeError included
        problem = "not UTF-8 JSON"
    else:
        if not isinstance(bundle, dict) or not all(
                isinstance(bundle.get(key), str) for key in ("model", "card", "labels")):
            problem = "not an object naming the model, card and labels files"
    if problem:
        raise EdgecnnError(f"{path} is damaged ({problem}); delete it and export the model "
                           f"again with edgecnn export android")
    return bundle


def export_android(model_path: str, app_dir: str = "android_demo") -> dict:
    """Copy MODEL.tflite, its card and labels into the app's assets; returns the bundle record.

    Every file is first written in full beside its destination, then all are renamed into
    place with the bundle record last, so a failure leaves the previous bundle untouched.
    Files of the previous bundle that the new one does not use are removed.
    """
    model_path = os.fspath(model_path)
    if not model_path.endswith(".tflite"):
        raise EdgecnnError(f"{model_path} is not a .tflite file; give a model written by "
                           f"`edgecnn convert`")
    data = rt.read_model(model_path)  # missing, not TFLite or damaged: a one-line error
    card = _checked_card(model_path, data)
    assets = app_assets(app_dir)
    model_name = os.path.basename(model_path)
    card_name = model_name[:-len(".tflite")] + ".json"
    if model_name in (BUNDLE_FILE, LABELS_FILE) or card_name in (BUNDLE_FILE, LABELS_FILE):
        raise EdgecnnError(f"rename {model_name}: {BUNDLE_FILE} and {LABELS_FILE} are the "
                           f"app's own files")
    labels_text = _labels_text(card)
    bundle = {
        "model": model_name,
        "card": card_name,
        "labels": LABELS_FILE,
        "name": card.model.name,
        "precision": card.precision,
        "io_dtype": card.io_dtype,
        "input_shape": card.input.shape,
        "classes": card.output.classes,
        "size_bytes": len(data),
        "sha256": hashlib.sha256(data).hexdigest(),
        "exported_by": f"edgecnn {__version__}",
    }
    previous = read_bundle(app_dir)
    files = [(model_name, data),
             (card_name, (card.to_json() + "\n").encode("utf-8")),
             (LABELS_FILE, labels_text.encode("utf-8")),
             (BUNDLE_FILE, (json.dumps(bundle, indent=2) + "\n").encode("utf-8"))]
    staged: list[tuple[str, str]] = []
    try:
        for name, payload in files:
            staged.append((_stage(assets, name, payload), name))
    except BaseException:
        for tmp, _ in staged:
            os.unlink(tmp)
        raise
    for tmp, name in staged:  # the bundle record is last: it commits the new bundle
        os.replace(tmp, os.path.join(assets, name))
    if previous:
        keep = {model_name, card_name, LABELS_FILE, BUNDLE_FILE}
        for key in ("model", "card"):
            old = previous.get(key)
            if old and old not in keep and os.path.basename(old) == old:
                try:
                    os.unlink(os.path.join(assets, old))
                except FileNotFoundError:
                    pass
    return bundle
