"""``edgecnn eval`` and ``edgecnn predict``: accuracy on a labelled folder, and top-k
predictions for image files. The .tflite paths need no TensorFlow (light install)."""
from __future__ import annotations

import json
import os

import click

from ..errors import EdgecnnError
from .options import foreign_from, foreign_options, json_option, labels_option

KERAS_SUFFIXES = (".keras", ".h5")
PER_CLASS_ROWS = 30  # more classes: the summary and the least accurate ones


def _warn(message: str) -> None:
    from rich.console import Console

    Console(stderr=True).print(f"[bold yellow]warning:[/bold yellow] {message}",
                               highlight=False, soft_wrap=True)


def _note(message: str) -> None:
    """What edgecnn assumed about a model without a card: on stderr, before the results."""
    from rich.console import Console

    Console(stderr=True).print(f"[bold]note:[/bold] {message}", highlight=False,
                               soft_wrap=True)


def _need_tensorflow(what: str) -> None:
    """On the light install: one line naming the file and the extra, before any work."""
    import importlib.util

    from ..errors import MissingExtraError

    for module in ("tensorflow", "tf_keras"):
        try:
            found = importlib.util.find_spec(module) is not None
        except ImportError:  # a finder that refuses it
            found = False
        if not found:
            raise MissingExtraError(what, missing=module)


def _model_kind(path: str) -> str:
    if path.endswith(KERAS_SUFFIXES):
        return "keras"
    if path.endswith(".tflite") or os.path.exists(path):
        return "tflite"
    raise EdgecnnError(f"model file {path} does not exist; give MODEL.tflite or MODEL.keras")


@click.command("eval")
@click.argument("model")
@click.option("--data", "data_dir", required=True,
              help="Labelled images: one sub-folder per class (named like the model's labels "
              "or by ImageNet WordNet id), or ImageNet-style {wnid}_*.jpg files with a "
              "synsets.txt.")
@labels_option
@click.option("--top-k", type=click.IntRange(min=1), default=5, show_default=True,
              help="k of the top-k accuracy.")
@click.option("--plot", type=str, default=None, metavar="PNG",
              help="Also write the confusion matrix as a PNG image (needs matplotlib).")
@click.option("--threads", type=click.IntRange(min=1), default=1, show_default=True,
              help="LiteRT threads (.tflite).")
@foreign_options
@json_option("Print the metrics as JSON.")
def eval_cmd(model, data_dir, labels, top_k, plot, threads, preprocess, mean, std, resize,
             crop, as_json):
    """Top-1, top-k, per-class accuracy and confusion matrix of MODEL.tflite (no TensorFlow
    needed) or MODEL.keras on an image folder. Unreadable images are skipped and counted.
    A .tflite from elsewhere (no edgecnn card) is read with its TFLite metadata, --labels
    FILE (its class names) and --preprocess/--resize; what was assumed is said."""
    kind = _model_kind(model)
    foreign = foreign_from(None, preprocess, mean, std, resize, crop)
    if kind == "keras":
        if foreign.given():
            raise EdgecnnError("--preprocess/--mean/--std/--resize/--crop are for a .tflite "
                               "without an edgecnn model card, not a Keras model")
        _need_tensorflow(f"evaluating {model} (a Keras model; a .tflite needs no TensorFlow)")
    if plot:
        from ..utils.files import check_output_path
        from ..errors import MissingExtraError

        plot = check_output_path(plot)  # fail before the work, not after
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            raise MissingExtraError("--plot (the confusion matrix PNG)",
                                    missing="matplotlib") from None
    from ..utils.progress import Progress

    with Progress(as_json) as bar:
        progress = bar.task("evaluating")
        if kind == "keras":
            from ..jobs.evaluate import evaluate_keras

            result = evaluate_keras(model, data_dir, top_k=top_k, labels=labels,
                                    progress=progress)
        else:
            from ..runtime.evaluate import evaluate_tflite

            result = evaluate_tflite(model, data_dir, top_k=top_k, threads=threads,
                                     labels=labels, foreign=foreign, progress=progress)
    if plot:
        from ..runtime.evaluate import plot_confusion

        result["plot"] = plot_confusion(result, plot)
    if result.get("assumed") and not as_json:
        _note(result["assumed"])
    if result["skipped"]:
        message = (f"skipped {len(result['skipped'])} unreadable image file(s) in {data_dir} "
                   f"(first: {result['skipped'][0]})")
        if not as_json:
            _warn(message)
    if as_json:
        summary = {k: v for k, v in result.items()
                   if k not in ("predicted", "labels", "files", "scores")}
        summary["skipped_count"] = len(result["skipped"])
        click.echo(json.dumps(summary, indent=2))
        return
    print_evaluation(result)


def print_evaluation(result: dict, console=None) -> None:
    """Metrics as tables: summary, per-class accuracy, and the confusion matrix when small."""
    from rich.console import Console
    from rich.table import Table

    console = console or Console()
    k = result["top_k"]
    skipped = len(result["skipped"])
    console.print(f"[bold]{os.path.basename(result['model'])}[/bold] "
                  f"({result['format']}, {result.get('precision') or '?'}) on {result['data']}: "
                  f"{result['samples']} images" + (f", {skipped} skipped" if skipped else ""),
                  highlight=False)
    console.print(f"top-1 {result['top1']:.2f} % ({result['top1_correct']}/{result['samples']})"
                  f"   top-{k} {result['topk']:.2f} % ({result['topk_correct']}/"
                  f"{result['samples']})", highlight=False)
    reading = result.get("reading") or {}
    console.print(f"classes: {result.get('label_mapping', '?')}; photos: shorter side resized "
                  f"({reading.get('resize', 'bilinear')}), center crop "
                  f"{reading.get('crop_fraction', 1.0):g}", highlight=False)
    present = every = [c for c in result["per_class"] if c["samples"]]
    if len(present) > PER_CLASS_ROWS:
        worst = sorted((c for c in present if c["correct"] < c["samples"]),
                       key=lambda c: (c["accuracy"], -c["samples"]))[:10]
        console.print(f"per-class accuracy: {len(present)} classes, "
                      f"{sum(c['correct'] == c['samples'] for c in present)} all right; "
                      f"every class is in --json" + ("; the least accurate:" if worst else ""),
                      highlight=False)
        present = worst
    table = Table(title="per-class accuracy")
    for col, justify in (("class", "left"), ("images", "right"), ("correct", "right"),
                         ("accuracy", "right")):
        table.add_column(col, justify=justify)
    for c in present:
        table.add_row(c["name"], str(c["samples"]), str(c["correct"]), f"{c['accuracy']:.1f} %")
    if present:
        console.print(table)
    import numpy as np

    from ..runtime.evaluate import confusion_matrix

    confusion = confusion_matrix(result)
    shown = sorted({c["index"] for c in every} | set(np.flatnonzero(confusion.sum(0))))
    if len(shown) > 15:
        console.print(f"confusion matrix: {len(shown)} classes, too many to print; see --json "
                      f"or --plot")
        return
    names = result["class_names"]
    matrix = Table(title="confusion matrix (rows: true, columns: predicted class index)")
    matrix.add_column("true class")
    for j in shown:
        matrix.add_column(str(j), justify="right")
    for i in shown:
        matrix.add_row(f"{i} {names[i]}" if names[i] != str(i) else str(i),
                       *[str(confusion[i][j]) if confusion[i][j] else "." for j in shown])
    console.print(matrix)


@click.command()
@click.argument("model")
@click.argument("images", nargs=-1, required=True)
@click.option("--top-k", type=click.IntRange(min=1), default=5, show_default=True,
              help="How many classes to show per image.")
@click.option("--threads", type=click.IntRange(min=1), default=1, show_default=True)
@click.option("--labels", type=str, default=None, metavar="FILE",
              help="Model without a card: its class names, one per line in output order "
              "(1000 names for 1001 outputs: background is prepended) [default: the label "
              "file in its TFLite metadata].")
@foreign_options
@json_option("Print the predictions as JSON.")
def predict(model, images, top_k, threads, labels, preprocess, mean, std, resize, crop,
            as_json):
    """Top-k classes and scores of MODEL.tflite for each IMAGE, with the labels and
    preprocessing of its model card (no TensorFlow needed). A .tflite from elsewhere is
    read with its TFLite metadata and the options below; what was assumed is said."""
    if model.endswith(KERAS_SUFFIXES):
        raise EdgecnnError(f"predict runs a .tflite; convert {model} first (edgecnn convert) "
                           f"or measure it with edgecnn eval")
    from ..runtime.predict import predict_images

    assumed: list = []
    foreign = foreign_from(labels, preprocess, mean, std, resize, crop)
    results = predict_images(model, list(images), top_k=top_k, threads=threads,
                             foreign=foreign, assumed=assumed)
    if as_json:
        for r in results if assumed else ():
            r["assumed"] = assumed[0]
        click.echo(json.dumps(results, indent=2))
        return
    if assumed:
        _note(assumed[0])
    from rich.console import Console
    from rich.table import Table

    table = Table()
    for col, justify in (("image", "left"), ("label", "left"), ("score", "right")):
        table.add_column(col, justify=justify)
    for r in results:
        for rank, top in enumerate(r["top"]):
            table.add_row(r["image"] if rank == 0 else "", top["label"],
                          f"{100 * top['score']:.1f} %", end_section=rank == len(r["top"]) - 1)
    Console().print(table)
