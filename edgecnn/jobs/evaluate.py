"""Evaluating a saved Keras model on an image folder with the same metrics as a .tflite
(``edgecnn eval MODEL.keras``): the Keras side of ``runtime.evaluate``."""
from __future__ import annotations

import json
import os

import numpy as np

from ..converters.deploy import is_deployable
from ..converters.qat import is_qat
from ..errors import EdgecnnError
from ..models.io import load_model
from ..models.registry import Preprocessing
from ..runtime.evaluate import evaluate_folder


def _sidecar(path: str) -> dict:
    """The JSON beside the model (same name, .json; e.g. a model card), or {}."""
    side = os.path.splitext(path)[0] + ".json"
    if not os.path.isfile(side):
        return {}
    try:
        with open(side) as f:
            data = json.load(f)
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def input_preprocessing(model, path: str | None = None) -> Preprocessing | None:
    """How to turn raw pixels into ``model``'s input; None when it takes raw pixels.

    A deployable or QAT model (pixel normalization inside) takes raw pixels. Otherwise the
    model's build record (``model.edgecnn``, saved in the file by ``save_model``), else the
    ``preprocessing`` of a JSON beside the file (a model card).
    """
    if is_deployable(model):
        return None
    config = getattr(model, "edgecnn", None)
    if config is not None:
        return config.preprocessing
    pre = _sidecar(path).get("preprocessing") if path else None
    if isinstance(pre, dict) and "mean" in pre and "std" in pre:
        return Preprocessing(tuple(pre["mean"]), tuple(pre["std"]))
    raise EdgecnnError(f"cannot tell how {path or model.name} normalizes its input: save it "
                       f"with edgecnn.models.io.save_model (which records the family) or put "
                       f"a JSON with \"preprocessing\": {{\"mean\", \"std\"}} beside it")


def pixel_scores(model, preprocessing: Preprocessing | None, batch_size: int = 32):
    """A function: raw uint8 pixels (n, H, W, 3) -> the model's outputs (n, K) as numpy."""
    def run(pixels: np.ndarray) -> np.ndarray:
        x = np.asarray(pixels, np.float32) if preprocessing is None else \
            preprocessing.apply(pixels)
        outs = [model(x[i:i + batch_size], training=False).numpy()
                for i in range(0, len(x), batch_size)]
        return np.concatenate(outs).reshape(len(x), -1)
    return run


def reading(model, path: str | None = None) -> tuple[float, str]:
    """(crop fraction, resize filter) to read photos for ``model``: its build record's
    evaluation crop at its input size, else a model card beside the file, else (1.0,
    "bilinear") (edgecnn's training pipeline)."""
    from ..data.folder import check_reading

    config = getattr(model, "edgecnn", None)
    if config is not None:
        return check_reading(config.preprocessing.crop_fraction(int(model.input_shape[1])),
                             config.preprocessing.resize)
    pre = _sidecar(path).get("preprocessing") if path else None
    if isinstance(pre, dict):
        return check_reading(pre.get("crop_fraction") or 1.0, pre.get("resize") or "bilinear")
    return 1.0, "bilinear"


def evaluate_keras(path: str, data, *, top_k: int = 5, labels: str = "auto",
                   progress=None) -> dict:
    """Metrics of a saved Keras model on ``data`` (a folder or a scanned Dataset; see
    ``runtime.evaluate.evaluate_folder``). The model's class names: the ``labels`` of a
    JSON beside it when it has them."""
    model = load_model(path)
    shape = model.input_shape
    if len(shape) != 4 or shape[-1] != 3 or shape[1] is None or shape[1] != shape[2]:
        raise EdgecnnError(f"{path} takes input {shape}; edgecnn evaluates square RGB image "
                           f"models (None, size, size, 3)")
    num_outputs = int(np.prod(model.output_shape[1:]))
    names = _sidecar(path).get("labels")
    class_names = [str(x) for x in names] if isinstance(names, list) and \
        len(names) == num_outputs else None
    run = pixel_scores(model, input_preprocessing(model, path))
    crop, resize = reading(model, path)
    result = evaluate_folder(run, data, int(shape[1]), class_names, num_outputs,
                             top_k=top_k, labels=labels, crop=crop, resize=resize,
                             progress=progress)
    return {"model": os.path.abspath(path), "format": "keras",
            "precision": "float32 (QAT)" if is_qat(model) else "float32", **result}
