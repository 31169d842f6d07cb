"""``edgecnn train``: float training, quantization-aware epochs, int8 conversion, in a
resumable run folder, on one device or across devices and machines with tf.distribute.

The phases share one :class:`~.context.RunContext`: ``float`` (the deployable model's
epochs), ``qat`` (tfmot's fake-quantized epochs), ``export`` (the .keras, the .tflite models
with their cards, summary.json). The building blocks (checkpoints, callbacks, optimizers,
schedule, strategies) are in :mod:`edgecnn.train`.

The run folder holds::

    config.json          every setting (``--resume`` reads it back)
    state.json           phase and completed epochs (written after each checkpoint)
    log.csv              one row per completed epoch (float and QAT), never repeated
    tensorboard/         TensorBoard events (train/ and validation/)
    checkpoints/float/   tf.train checkpoints: model, optimizer (with its step), epoch
    checkpoints/qat/     the same for the QAT epochs
    model.keras          the float model: raw RGB pixels in, logits out (as the .tflite),
                         with its build record (``edgecnn.models.io.load_model`` reads it)
    model_int8.tflite    (+ .json card) int8: QAT when --qat-epochs > 0, else calibrated
    model_ptq_int8.tflite  with --compare-ptq: post-training int8 of the same float model
    summary.json         float / int8 validation accuracy and the files

An epoch counts as completed when its checkpoint is written; ``--resume`` restores the last
one (weights, optimizer slots and step, so the learning-rate schedule continues where it
was) and drops any log row written after it, so no completed epoch is lost or repeated.
"""
from __future__ import annotations

from .config import ADAM_FINE_TUNE_LR, ADAM_LR, TrainConfig
from .context import load_data, start_run
from .export import export
from .float import train_float
from .qat import train_qat

__all__ = ["TrainConfig", "train", "ADAM_LR", "ADAM_FINE_TUNE_LR"]


def train(config: TrainConfig | None = None, run_dir: str | None = None, *,
          resume: bool = False, quiet: bool = False) -> dict:
    """Run (or with ``resume=True`` continue) a training run in ``run_dir``; returns the
    summary (also written as summary.json)."""
    ctx, finished = start_run(config, run_dir, resume, quiet)
    if ctx is None:
        return finished
    load_data(ctx)
    model, float_acc, bn_momentum = train_float(ctx)
    qat, qat_acc = train_qat(ctx, model) if ctx.config.qat_epochs > 0 else (None, None)
    config, splits = ctx.config, ctx.splits
    summary = {"run_dir": ctx.run_dir, "model": config.name, "alpha": config.alpha,
               "resolution": ctx.size, "dataset": splits.source, "classes": splits.class_names,
               "train_images": splits.train_count, "val_images": splits.val_count,
               "skipped_files": splits.skipped, "augmentation": splits.augment,
               "epochs": config.epochs, "qat_epochs": config.qat_epochs,
               "strategy": ctx.strategy_label,
               "replicas": int(ctx.strategy.num_replicas_in_sync), "worker": ctx.worker,
               "steps_per_epoch": ctx.steps,
               "steps": {"float": int(model.optimizer.iterations.numpy()),
                         "qat": int(qat.optimizer.iterations.numpy()) if qat else 0},
               "bn_momentum": bn_momentum,
               "float_val_accuracy": float_acc, "qat_keras_val_accuracy": qat_acc,
               "files": {}}
    # read on every worker: a cluster reads its replicated BatchNorm statistics collectively
    weights = None if ctx.single else (model.get_weights(), qat and qat.get_weights())
    if not ctx.chief:
        return summary
    return export(ctx, model, qat, summary, weights)
