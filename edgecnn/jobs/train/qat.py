"""The quantization-aware phase of ``edgecnn train``: tfmot's QAT model of the trained float
model, its activation ranges set from training images, BatchNorm frozen, its own learning
rate (default: the float rate / 100) and checkpoints."""
from __future__ import annotations

from ...converters.qat import (RANGE_IMAGES, calibrate_ranges, copy_ranges, freeze_batchnorm,
                               quantize_aware)
from ...train.checkpoints import checkpointing
from ...train.optim import compile_classifier, make_optimizer
from ...train.schedule import WarmupCosine
from ...train.strategy import agreed
from .context import RunContext
from .float import accuracy, datasets, epoch_callbacks


def train_qat(ctx: RunContext, model):
    """Train (or restore) the QAT model of ``model``; returns (QAT model, its fake-quantized
    Keras validation accuracy %)."""
    config, steps = ctx.config, ctx.steps
    train_ds, val_ds = datasets(ctx)
    qat_lr = config.qat_lr or config.base_lr() / 100
    with ctx.strategy.scope():
        qat = quantize_aware(model)
        freeze_batchnorm(qat)
        qat_steps = config.qat_epochs * steps
        optimizer = make_optimizer(config.optimizer,
                                   WarmupCosine(qat_lr, qat_steps, 0, config.cosine),
                                   config.weight_decay)
        compile_classifier(qat, optimizer, config.label_smoothing)
        epoch_var, manager = checkpointing(qat, optimizer, ctx.checkpoints("qat"), ctx.chief)
    start = max(agreed(ctx.strategy, int(epoch_var.numpy()), "epochs"), config.epochs)
    if start == config.epochs and config.total_epochs > start:
        # a fresh QAT phase: activation ranges from the data, not tfmot's [-6, 6] start;
        # measured on a copy outside the strategy (its replicas cannot run eager passes)
        probe = quantize_aware(model)
        calibrate_ranges(probe, ctx.splits.train_arrays(limit=RANGE_IMAGES)[0])
        copy_ranges(probe, qat)
        del probe
    if start < config.total_epochs:
        history = qat.fit(
            train_ds, epochs=config.total_epochs, initial_epoch=start, steps_per_epoch=steps,
            validation_data=val_ds, verbose=0,
            callbacks=epoch_callbacks(ctx, "qat", epoch_var, manager))
        qat_acc = round(100.0 * float(history.history["val_accuracy"][-1]), 2)
    else:
        qat_acc = accuracy(qat, val_ds)
    ctx.console.print(f"QAT model (fake-quantized Keras): validation accuracy "
                      f"{qat_acc:.2f} %{ctx.at()}")
    return qat, qat_acc
