"""The export phase of ``edgecnn train``: the float .keras (with its build record), the
.tflite models (post-training int8, QAT int8 or float32) with ``training`` in their model
cards, their validation accuracy, and summary.json."""
from __future__ import annotations

import os

import numpy as np

from ...utils.files import atomic_write_bytes, atomic_write_json
from ...converters.convert import convert
from ...converters.qat import quantize_aware
from ...models.io import save_model
from ...runtime import tflite as rt
from ...runtime.card import ModelCard
from .config import TrainConfig
from .context import SUMMARY_FILE, RunContext
from .float import build_float


def tflite_accuracy(path: str, images, labels) -> float:
    interpreter = rt.load_interpreter(path)
    logits = rt.run_logits(interpreter, images)
    return round(100.0 * float(np.mean(logits.argmax(1) == labels)), 2)


def add_to_card(path: str, training: dict) -> None:
    """Put ``training`` into the card embedded in ``path`` and into the JSON beside it."""
    with open(path, "rb") as f:
        model_bytes = f.read()
    card = ModelCard.read(model_bytes, name=path) or ModelCard()
    card.training = training
    atomic_write_bytes(path, card.embed(model_bytes))
    atomic_write_json(os.path.splitext(path)[0] + ".json", card.to_dict())


def export_float(ctx: RunContext, model, weights):
    """The float model outside the strategy (conversion traces plain variables), with
    ``weights`` read from the strategy's."""
    if ctx.single:
        return model
    # the same network as trained: the options and preprocessing its weights set (e.g. a
    # PyTorch checkpoint's padding), not only the ones the user gave
    built = model.edgecnn
    fresh = build_float(TrainConfig.from_dict({**ctx.config.to_dict(), "weights": "none",
                                               "options": dict(built.options)}),
                        ctx.classes, like=built)
    fresh.set_weights(weights)
    return fresh


def export(ctx: RunContext, model, qat, summary: dict, weights=None) -> dict:
    """Write the run's models and summary.json (chief only); returns the summary.
    ``weights``: (float, QAT) weights read from a distribution strategy's variables, None
    for a model trained without one."""
    config, splits, console = ctx.config, ctx.splits, ctx.console
    ctx.write_state("convert", config.total_epochs)
    float_model = export_float(ctx, model, weights and weights[0])
    keras_path = ctx.path("model.keras")
    save_model(float_model, keras_path)
    summary["files"]["keras"] = keras_path

    val_images, val_labels = splits.val_arrays(limit=10000)
    pick = np.random.default_rng(config.seed).permutation(len(val_images))[:256]
    common = dict(validation_data=val_images[pick], validation_labels=val_labels[pick],
                  labels=splits.class_names, validation_source="validation images (labelled)")
    training = {"dataset": splits.source, "train_images": splits.train_count,
                "val_images": splits.val_count, "epochs": config.epochs,
                "qat_epochs": config.qat_epochs, "label_smoothing": config.label_smoothing,
                "mixup": config.mixup, "float_val_accuracy": summary["float_val_accuracy"],
                "qat_keras_val_accuracy": summary["qat_keras_val_accuracy"],
                "accuracy_images": int(len(val_images))}

    def finish(path, key):
        acc = tflite_accuracy(path, val_images, val_labels)
        summary[f"{key}_val_accuracy"] = acc
        summary["files"][key] = path
        add_to_card(path, {**training, "tflite_val_accuracy": acc, "method": key})
        return acc

    if config.int8 and (config.qat_epochs == 0 or config.compare_ptq):
        calibration, _ = splits.train_arrays(limit=config.calib_samples)
        name = "model_int8.tflite" if config.qat_epochs == 0 else "model_ptq_int8.tflite"
        with console.status("post-training int8 conversion (calibrating)"):
            convert(float_model, ctx.path(name), "int8", representative_data=calibration,
                    calibration_source="training images", **common)
        acc = finish(ctx.path(name), "ptq_int8")
        console.print(f"post-training int8 (.tflite): validation accuracy {acc:.2f} %"
                      f"{ctx.at()}")
    if qat is not None:
        qat_export = qat
        if not ctx.single:
            qat_export = quantize_aware(float_model)
            qat_export.set_weights(weights[1])
        path = ctx.path("model_int8.tflite")
        with console.status("QAT int8 conversion"):
            convert(qat_export, path, "int8", **common)
        acc = finish(path, "qat_int8")
        console.print(f"QAT int8 (.tflite): validation accuracy {acc:.2f} %{ctx.at()}")
    if not config.int8:
        path = ctx.path("model_float32.tflite")
        with console.status("float32 conversion"):
            convert(float_model, path, "float32", **common)
        finish(path, "float32")
    summary["int8_val_accuracy"] = summary.get("qat_int8_val_accuracy",
                                               summary.get("ptq_int8_val_accuracy"))
    summary["tflite"] = summary["files"].get("qat_int8") or summary["files"].get("ptq_int8") \
        or summary["files"].get("float32")
    atomic_write_json(ctx.path(SUMMARY_FILE), summary)
    ctx.write_state("done", config.total_epochs)
    print_summary(summary, console)
    return summary


def print_summary(summary: dict, console) -> None:
    from rich.table import Table

    table = Table(title=f"{summary['model']} alpha {summary['alpha']:g} "
                        f"{summary['resolution']}px on {summary['dataset']} "
                        f"({summary['val_images']} validation images)")
    table.add_column("model")
    table.add_column("validation top-1", justify="right")
    table.add_row("float (Keras)", f"{summary['float_val_accuracy']:.2f} %")
    rows = [("qat_keras", "QAT (Keras, fake-quantized)"),
            ("ptq_int8", "int8 post-training (.tflite)"), ("qat_int8", "int8 QAT (.tflite)"),
            ("float32", "float32 (.tflite)")]
    for key, label in rows:
        if summary.get(f"{key}_val_accuracy") is not None:
            table.add_row(label, f"{summary[f'{key}_val_accuracy']:.2f} %")
    console.print(table)
    for key, path in summary["files"].items():
        console.print(f"{key}: {path}")
