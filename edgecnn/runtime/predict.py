"""Top-k predictions of a .tflite for image files, with the labels and preprocessing of its
model card. numpy, LiteRT and Pillow only (no TensorFlow)."""
from __future__ import annotations

import os

import numpy as np

from ..errors import EdgecnnError
from ..data.folder import pil_image
from .evaluate import TfliteModel
from .tflite import softmax


def predict_images(model_path: str, images: list[str], *, top_k: int = 5,
                   threads: int = 1, foreign=None, assumed: list | None = None) -> list[dict]:
    """For each image file: its ``top_k`` classes as ``{"label", "index", "score"}`` (score:
    softmax probability), best first. Images are resized (shorter side) and center-cropped
    to the model's input with its card's crop fraction and filter, as ``edgecnn eval``
    reads them. A model without a card: ``foreign`` (``runtime.foreign.ForeignOptions``);
    the line saying what was assumed is appended to ``assumed`` when given."""
    if not images:
        raise EdgecnnError("no images given: edgecnn predict MODEL.tflite IMAGE [IMAGE ...]")
    if int(top_k) < 1:
        raise EdgecnnError(f"top-k must be >= 1, got {top_k}")
    pil_image()
    for path in images:
        if not os.path.isfile(path):
            raise EdgecnnError(f"image {path} does not exist")
    model = TfliteModel(model_path, threads=threads, foreign=foreign)
    if model.assumed and assumed is not None:
        assumed.append(model.assumed)
    labels = model.labels()
    k = min(int(top_k), model.num_outputs)
    results = []
    for path in images:
        pixels = model.read(path)[None]
        scores = model.logits(pixels)
        if model.card.scores_are_probabilities:  # a model ending in SOFTMAX
            probabilities = scores[0] / max(float(scores[0].sum()), 1e-12)
        else:
            probabilities = softmax(scores)[0]
        order = np.argsort(-probabilities, kind="stable")[:k]
        results.append({"image": path, "top": [
            {"label": labels[i], "index": int(i), "score": float(probabilities[i])}
            for i in order]})
    return results
