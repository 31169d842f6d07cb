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

from ..data.folder import list_image_files, load_image, pil_image
from ..errors import EdgecnnError, MissingExtraError
from . import tflite as rt
from .card import ModelCard

CHUNK = 32  # images loaded and run at a time: memory stays flat on large folders


# --- metrics ------------------------------------------------------------------------------

def _percent(count: int, total: int) -> float:
    return round(100.0 * count / total, 2) if total else 0.0


def classification_metrics(scores: np.ndarray, labels: np.ndarray, class_names: list[str],
                           top_k: int = 5) -> dict:
    """Metrics of ``scores`` (N, K logits or probabilities) against class indices ``labels``.

    Percentages are rounded to 2 decimals; the counts behind them are reported too.
    ``confusion[i][j]`` counts images of class i predicted as class j (rows: truth).
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
    return {"samples": int(n), "top1": _percent(top1_correct, n), "top1_correct": top1_correct,
            "top_k": k, "topk": _percent(int(in_top_k.sum()), n),
            "topk_correct": int(in_top_k.sum()), "class_names": list(class_names),
            "per_class": per_class, "confusion": confusion.tolist(),
            "predicted": predicted.tolist(), "labels": labels.tolist()}


# --- class names ----------------------------------------------------------------------------

def map_folder_classes(folder_classes: list[str], model_classes: list[str] | None,
                       num_outputs: int, data_dir: str) -> list[int]:
    """The model's output index of each of the folder's classes.

    With the model's class names (a card's ``labels``): matched by name, so a folder may hold
    a subset of the classes. Without: the sorted sub-folders are the classes in order (how
    ``edgecnn convert --data`` and training number them), so their count must match.
    """
    if model_classes is not None:
        where = {name: i for i, name in enumerate(model_classes)}
        unknown = [c for c in folder_classes if c not in where]
        if unknown:
            shown = ", ".join(model_classes[:10]) + (", ..." if len(model_classes) > 10 else "")
            raise EdgecnnError(f"{data_dir} has class folders the model does not know: "
                               f"{', '.join(unknown[:5])}; the model's classes are {shown}")
        return [where[c] for c in folder_classes]
    if len(folder_classes) != num_outputs:
        raise EdgecnnError(f"{data_dir} has {len(folder_classes)} class folders but the model "
                           f"has {num_outputs} outputs and no class names; give the folder "
                           f"the model was trained on (sorted sub-folders = class order)")
    return list(range(num_outputs))


# --- running over a folder ------------------------------------------------------------------

def read_folder_images(files: list[tuple[str, int]], size: int):
    """Yield (images, labels, good_files, skipped_files) chunks; unreadable files are skipped."""
    for start in range(0, len(files), CHUNK):
        images, labels, good, skipped = [], [], [], []
        for path, label in files[start:start + CHUNK]:
            try:
                images.append(load_image(path, size))
            except EdgecnnError:
                skipped.append(path)
                continue
            labels.append(label)
            good.append(path)
        yield images, labels, good, skipped


def evaluate_folder(run: Callable[[np.ndarray], np.ndarray], data_dir: str, size: int,
                    class_names: list[str] | None, num_outputs: int, *, top_k: int = 5,
                    progress: Callable[[int, int], None] | None = None) -> dict:
    """Run ``run`` (uint8 pixels (n, size, size, 3) -> scores (n, K)) over the labelled
    images of ``data_dir`` (one sub-folder per class) and compute the metrics.

    Unreadable or corrupt files are skipped and listed under ``skipped``; an error when no
    image is usable. ``class_names``: the model's (None: the folder's, in sorted order).
    """
    pil_image()
    files, folder_classes = list_image_files(data_dir)
    index = map_folder_classes(folder_classes, class_names, num_outputs, data_dir)
    files = [(path, index[label]) for path, label in files]
    names = list(class_names) if class_names is not None else list(folder_classes)
    all_scores, all_labels, good, skipped = [], [], [], []
    done = 0
    for images, labels, ok, bad in read_folder_images(files, size):
        if images:
            scores = np.asarray(run(np.stack(images)), np.float32)
            all_scores.append(scores.reshape(len(images), -1))
            all_labels.extend(labels)
        good.extend(ok)
        skipped.extend(bad)
        done += len(ok) + len(bad)
        if progress:
            progress(done, len(files))
    if not good:
        raise EdgecnnError(f"no usable images in {data_dir}: all {len(files)} files failed to "
                           f"read (first: {skipped[0]}); replace them with valid jpg/png files")
    scores = np.concatenate(all_scores)
    if scores.shape[1] != num_outputs:
        raise EdgecnnError(f"the model gave {scores.shape[1]} scores per image, expected "
                           f"{num_outputs}")
    metrics = classification_metrics(scores, np.array(all_labels), names, top_k)
    return {"data": os.path.abspath(data_dir), "files": good, "skipped": skipped, **metrics}


# --- the .tflite side ------------------------------------------------------------------------

class TfliteModel:
    """A .tflite with its card: input size, class names and a pixels -> logits function."""

    def __init__(self, path: str, threads: int = 1):
        self.path = path = os.fspath(path)
        self.card = ModelCard.read(path)
        if self.card is None:
            raise EdgecnnError(f"{path} has no edgecnn model card, so its preprocessing and "
                               f"labels are unknown; use a model written by edgecnn convert")
        self.card.check_input(path)
        self.interpreter = rt.load_interpreter(path, threads=threads)
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

    def labels(self) -> list[str]:
        """The card's class names, else the output indices as text."""
        return self.class_names or [str(i) for i in range(self.num_outputs)]

    def logits(self, pixels: np.ndarray) -> np.ndarray:
        return rt.run_logits(self.interpreter, pixels, self.path,
                             lambda x: self.card.pixels_to_input(x, self.path))


def evaluate_tflite(path: str, data_dir: str, *, top_k: int = 5, threads: int = 1,
                    progress: Callable[[int, int], None] | None = None) -> dict:
    """Metrics of a .tflite on ``data_dir`` (one sub-folder per class, named like the card's
    labels; without labels the sorted sub-folders are the classes in order)."""
    model = TfliteModel(path, threads=threads)
    result = evaluate_folder(model.logits, data_dir, model.size, model.class_names,
                             model.num_outputs, top_k=top_k, progress=progress)
    return {"model": os.path.abspath(path), "format": "tflite",
            "precision": model.card.precision, **result}


# --- the confusion matrix as a picture -------------------------------------------------------

def plot_confusion(result: dict, output: str) -> str:
    """Write the confusion matrix of ``result`` as a PNG (rows: true class, normalized per
    row; counts written in the cells when there are at most 30 classes). Needs matplotlib.
    Only the classes present in the data or predicted are drawn."""
    from ..utils.files import atomic_write_bytes, check_output_path

    output = check_output_path(output)
    try:
        from matplotlib.figure import Figure  # no pyplot: no GUI backend, no global state
    except ImportError:
        raise MissingExtraError("--plot (the confusion matrix PNG)", missing="matplotlib") \
            from None
    import io

    confusion = np.asarray(result["confusion"])
    keep = np.flatnonzero(confusion.sum(0) + confusion.sum(1))
    cm = confusion[np.ix_(keep, keep)]
    names = [result["class_names"][i] for i in keep]
    rows = cm.sum(1, keepdims=True)
    share = np.divide(cm, rows, out=np.zeros(cm.shape, np.float64), where=rows > 0)
    side = min(4 + 0.45 * len(keep), 40)
    fig = Figure(figsize=(side + 1.5, side))
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
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    atomic_write_bytes(output, buffer.getvalue())
    return output
