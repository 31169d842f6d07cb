"""Accuracy of a classifier on a labelled image folder: top-1, top-k, per-class accuracy and
the confusion matrix; ``evaluate_tflite`` runs a .tflite with LiteRT.

numpy, LiteRT and Pillow only (no TensorFlow): this is the device-side evaluation. The
Keras side (``edgecnn.jobs.evaluate.evaluate_keras``) feeds its predictions through the same
``evaluate_folder`` so both report identical metrics.
"""
from __future__ import annotations

import os
from collections.abc import Callable

import numpy as np

from ..data.folder import load_image, pil_image
from ..data.labelled import Dataset, label_space, scan
from ..errors import EdgecnnError
from . import tflite as rt
from .card import ModelCard
from .foreign import ForeignOptions, foreign_card

CHUNK = 32  # images loaded and run at a time: memory stays flat on large folders
DENSE_CONFUSION = 100  # classes up to which the confusion matrix is reported whole


# --- metrics ------------------------------------------------------------------------------

def _percent(count: int, total: int) -> float:
    return round(100.0 * count / total, 2) if total else 0.0


def classification_metrics(scores: np.ndarray, labels: np.ndarray, class_names: list[str],
                           top_k: int = 5) -> dict:
    """Metrics of ``scores`` (N, K logits or probabilities) against class indices ``labels``.

    Percentages are rounded to 2 decimals; the counts behind them are reported too.
    ``confusion[i][j]`` counts images of class i predicted as class j (rows: truth); with
    more than ``DENSE_CONFUSION`` classes only its non-zero cells, as ``confusion_pairs``
    ``[i, j, count]`` (see :func:`confusion_matrix`).
    """
    scores = np.asarray(scores, np.float32)
    labels = np.asarray(labels, np.int64)
    n, k_classes = scores.shape
    if n == 0:
        raise EdgecnnError("no images to evaluate")
    if len(class_names) != k_classes:
        raise EdgecnnError(f"{len(class_names)} class names for {k_classes} model outputs")
    k = max(1, min(int(top_k), k_classes))
    ranked = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    predicted = ranked[:, 0]
    in_top_k = (ranked == labels[:, None]).any(axis=1)
    confusion = np.zeros((k_classes, k_classes), np.int64)
    np.add.at(confusion, (labels, predicted), 1)
    per_class = []
    for index, name in enumerate(class_names):
        samples = int(confusion[index].sum())
        correct = int(confusion[index, index])
        per_class.append({"index": index, "name": name, "samples": samples, "correct": correct,
                          "accuracy": _percent(correct, samples) if samples else None})
    top1_correct = int(np.trace(confusion))
    if k_classes <= DENSE_CONFUSION:
        table = {"confusion": confusion.tolist()}
    else:  # ImageNet's 1000 x 1000 would be megabytes of zeros
        rows, cols = np.nonzero(confusion)
        table = {"confusion_pairs": [[int(i), int(j), int(confusion[i, j])]
                                     for i, j in zip(rows, cols)]}
    return {"samples": int(n), "top1": _percent(top1_correct, n), "top1_correct": top1_correct,
            "top_k": k, "topk": _percent(int(in_top_k.sum()), n),
            "topk_correct": int(in_top_k.sum()), "class_names": list(class_names),
            "per_class": per_class, **table,
            "predicted": predicted.tolist(), "labels": labels.tolist()}


def confusion_matrix(result: dict) -> np.ndarray:
    """The dense confusion matrix of a metrics dict (from ``confusion`` or its pairs)."""
    if "confusion" in result:
        return np.asarray(result["confusion"], np.int64)
    k = len(result["class_names"])
    matrix = np.zeros((k, k), np.int64)
    for i, j, count in result.get("confusion_pairs", []):
        matrix[i, j] = count
    return matrix


# --- running over a folder ------------------------------------------------------------------

def read_folder_images(files: list[tuple[str, int]], size: int, crop: float = 1.0,
                       resize: str = "bilinear", fit: str = "shorter-center-crop"):
    """Yield (images, labels, good_files, skipped_files) chunks; unreadable files are skipped."""
    for start in range(0, len(files), CHUNK):
        images, labels, good, skipped = [], [], [], []
        for path, label in files[start:start + CHUNK]:
            try:
                images.append(load_image(path, size, crop, resize, fit))
            except EdgecnnError:
                skipped.append(path)
                continue
            labels.append(label)
            good.append(path)
        yield images, labels, good, skipped


def evaluate_folder(run: Callable[[np.ndarray], np.ndarray], data, size: int,
                    class_names: list[str] | None, num_outputs: int, *, top_k: int = 5,
                    labels: str = "auto", crop: float = 1.0, resize: str = "bilinear",
                    fit: str = "shorter-center-crop",
                    progress: Callable[[int, int], None] | None = None) -> dict:
    """Run ``run`` (uint8 pixels (n, size, size, 3) -> scores (n, K)) over the labelled
    images of ``data`` (a folder path or a scanned :class:`~edgecnn.data.labelled.Dataset`)
    and compute the metrics.

    ``class_names``: the model's (a card's labels; None: unknown); ``labels``: how the
    data's classes map onto the outputs (``edgecnn.data.labelled.label_space``). Photos are
    read with the model's ``crop`` fraction and ``resize`` filter. Unreadable or corrupt
    files are skipped and listed under ``skipped``; an error when no image is usable.
    """
    pil_image()
    dataset = data if isinstance(data, Dataset) else scan(data)
    space = label_space(dataset, num_outputs, labels, class_names)
    files = [(path, space.index[key]) for path, key in zip(dataset.files, dataset.keys)]
    all_scores, all_labels, good, skipped = [], [], [], []
    done = 0
    for images, chunk_labels, ok, bad in read_folder_images(files, size, crop, resize, fit):
        if images:
            scores = np.asarray(run(np.stack(images)), np.float32)
            all_scores.append(scores.reshape(len(images), -1))
            all_labels.extend(chunk_labels)
        good.extend(ok)
        skipped.extend(bad)
        done += len(ok) + len(bad)
        if progress:
            progress(done, len(files))
    if not good:
        raise EdgecnnError(f"no usable images in {dataset.root}: all {len(files)} files failed "
                           f"to read (first: {skipped[0]}); replace them with valid jpg/png "
                           f"files")
    scores = np.concatenate(all_scores)
    if scores.shape[1] != num_outputs:
        raise EdgecnnError(f"the model gave {scores.shape[1]} scores per image, expected "
                           f"{num_outputs}")
    metrics = classification_metrics(scores, np.array(all_labels), space.names, top_k)
    return {"data": os.path.abspath(dataset.root), "layout": dataset.layout,
            "label_mapping": space.how,
            "reading": {"crop_fraction": crop, "resize": resize, "fit": fit},
            "files": good, "skipped": skipped, "scores": scores, **metrics}


# --- the .tflite side ------------------------------------------------------------------------

class TfliteModel:
    """A .tflite with its card: input size, class names and a pixels -> logits function.

    A model without an edgecnn card (from elsewhere) gets one built from its TFLite
    Metadata, ``foreign`` (the user's --labels/--preprocess/--resize) and its graph
    (``runtime.foreign``); ``assumed`` is then the line saying what was assumed."""

    def __init__(self, path: str, threads: int = 1, foreign: ForeignOptions | None = None,
                 labels_file: str | None = None):
        self.path = path = os.fspath(path)
        data, model = rt._read_verified(path)
        self.card = ModelCard.read(data, path)
        self.assumed = None
        if self.card is not None and foreign is not None and foreign.given():
            raise EdgecnnError(f"{path} has an edgecnn model card, which gives its labels and "
                               f"preprocessing; --preprocess/--mean/--std/--resize/--crop (and "
                               f"predict's --labels) are for models without one")
        self.interpreter = rt.load_interpreter(data, threads=threads, name=path)
        if self.card is None:  # labels_file: eval's --labels FILE names a foreign model's outputs
            if labels_file is not None and (foreign is None or foreign.labels is None):
                foreign = ForeignOptions(**{**vars(foreign or ForeignOptions()),
                                            "labels": labels_file})
            self.card = foreign_card(path, data, model, self.interpreter, foreign)
            self.assumed = self.card.extra["assumed"]
        self.card.check_input(path)
        self.spec = rt.input_spec(self.interpreter)
        shape = self.spec["shape"]
        if len(shape) != 4 or shape[-1] != 3 or shape[1] != shape[2]:
            raise EdgecnnError(f"{path} takes input {shape}; edgecnn runs square RGB image "
                               f"models (1, size, size, 3)")
        self.size = int(shape[1])
        self.num_outputs = int(np.prod(self.interpreter.get_output_details()[0]["shape"][1:]))
        if self.card.input.dtype != self.spec["dtype"]:
            raise EdgecnnError(f"{path}'s card says {self.card.input.dtype} input, the model "
                               f"takes {self.spec['dtype']}; re-convert the model")
        self.class_names = self.card.class_names(self.num_outputs, path)
        self.crop, self.resize = self.card.preprocessing.reading()
        self.fit = self.card.fit

    def labels(self) -> list[str]:
        """The card's class names, else the output indices as text."""
        return self.class_names or [str(i) for i in range(self.num_outputs)]

    def logits(self, pixels: np.ndarray) -> np.ndarray:
        return rt.run_logits(self.interpreter, pixels, self.path,
                             lambda x: self.card.pixels_to_input(x, self.path))

    def read(self, path: str) -> np.ndarray:
        """An image file as this model's input pixels (its card's crop and filter)."""
        return load_image(path, self.size, self.crop, self.resize, self.fit)


def evaluate_tflite(path: str, data, *, top_k: int = 5, threads: int = 1,
                    labels: str = "auto", foreign: ForeignOptions | None = None,
                    progress: Callable[[int, int], None] | None = None) -> dict:
    """Metrics of a .tflite on ``data`` (a folder or a scanned Dataset; see
    ``evaluate_folder``), its photos read with the card's crop and filter. A model without
    a card: ``foreign`` (see ``TfliteModel``); a ``labels`` file is then its class list."""
    named = labels not in ("auto", "imagenet")
    model = TfliteModel(path, threads=threads, foreign=foreign,
                        labels_file=labels if named else None)
    if model.assumed and named:  # the file named the outputs; the classes map by name
        labels = "auto"
    result = evaluate_folder(model.logits, data, model.size, model.class_names,
                             model.num_outputs, top_k=top_k, labels=labels, crop=model.crop,
                             resize=model.resize, fit=model.fit, progress=progress)
    out = {"model": os.path.abspath(path), "format": "tflite",
           "precision": model.card.precision or "no card", **result}
    if model.assumed:
        out["assumed"] = model.assumed
    return out


# --- the confusion matrix as a picture -------------------------------------------------------

def plot_confusion(result: dict, output: str) -> str:
    """Write the confusion matrix of ``result`` as a PNG (rows: true class, normalized per
    row; counts written in the cells when there are at most 30 classes). Needs matplotlib.
    Only the classes present in the data or predicted are drawn."""
    from ..utils.files import check_output_path
    from .charts import figure, save_png

    output = check_output_path(output)
    confusion = confusion_matrix(result)
    keep = np.flatnonzero(confusion.sum(0) + confusion.sum(1))
    cm = confusion[np.ix_(keep, keep)]
    names = [result["class_names"][i] for i in keep]
    rows = cm.sum(1, keepdims=True)
    share = np.divide(cm, rows, out=np.zeros(cm.shape, np.float64), where=rows > 0)
    side = min(4 + 0.45 * len(keep), 40)
    fig = figure("--plot (the confusion matrix PNG)", (side + 1.5, side))
    ax = fig.add_subplot()
    image = ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="share of the true class")
    ax.set_xticks(range(len(names)), names, rotation=90 if len(names) > 10 else 0)
    ax.set_yticks(range(len(names)), names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    model = os.path.basename(result.get("model", ""))
    ax.set_title(f"{model}{': ' if model else ''}top-1 {result['top1']:.2f} % on "
                 f"{result['samples']} images")
    if len(names) <= 30:
        for i in range(len(names)):
            for j in range(len(names)):
                if cm[i, j]:
                    ax.text(j, i, str(cm[i, j]), ha="center", va="center", fontsize=8,
                            color="white" if share[i, j] > 0.5 else "black")
    return save_png(fig, output)
