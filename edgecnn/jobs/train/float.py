"""The float phase of ``edgecnn train``: the deployable model (pixels in, logits out), its
epochs with warm-up + cosine, PreciseBN and per-epoch checkpoints."""
from __future__ import annotations

from dataclasses import replace

from ..._keras import tf
from ...converters.deploy import deployable
from ...data.pipeline import mixup, one_hot
from ...models import create_model
from ...train.callbacks import EpochProgress, PreciseBN
from ...train.checkpoints import checkpointing
from ...train.optim import (compile_classifier, make_optimizer, set_bn_momentum,
                            synchronize_batchnorm)
from ...train.schedule import WarmupCosine
from ...train.strategy import agreed
from .config import TrainConfig
from .context import RunContext


def build_float(config: TrainConfig, num_classes: int, like=None):
    """The deployable float model (pixels in, logits out) with ``config.weights``. ``like``:
    the build record (``model.edgecnn``) of a trained model this one rebuilds, whose weights
    record and preprocessing it keeps."""
    kwargs = dict(alpha=config.alpha, input_size=config.resolution, num_classes=num_classes,
                  dropout=config.dropout, **config.options)
    weights = str(config.weights)
    if weights.lower() in ("imagenet", "auto") and num_classes != 1000:
        # fine-tuning to new classes: the ImageNet backbone, a fresh classifier
        backbone = create_model(config.name, weights=weights.lower(), include_top=False,
                                **{k: v for k, v in kwargs.items() if k != "num_classes"})
        # the weights may need options of their own (e.g. PyTorch padding): the same model
        model = create_model(config.name, weights=None,
                             **{**kwargs, **dict(backbone.edgecnn.options)})
        by_name = {layer.name: layer for layer in model.layers}
        for layer in backbone.layers:
            if layer.weights and layer.name in by_name:
                by_name[layer.name].set_weights(layer.get_weights())
        model.edgecnn = replace(model.edgecnn, weights=f"{backbone.edgecnn.weights} (backbone)",
                                preprocessing=backbone.edgecnn.preprocessing)
    else:
        model = create_model(config.name, weights=None if weights.lower() == "none" else
                             weights, **kwargs)
    if like is not None:
        model.edgecnn = replace(model.edgecnn, preprocessing=like.preprocessing,
                                weights=like.weights)
    # validated (and so to be evaluated) as the training pipeline reads images: the whole
    # shorter side, not the ImageNet weights' evaluation crop
    model.edgecnn = replace(model.edgecnn,
                            preprocessing=model.edgecnn.preprocessing.without_crop())
    return deployable(model)


def datasets(ctx: RunContext):
    """The training and validation datasets with one-hot labels."""
    return one_hot(ctx.splits.train, ctx.classes), one_hot(ctx.splits.val, ctx.classes)


def accuracy(model, dataset) -> float:
    results = model.evaluate(dataset, verbose=0, return_dict=True)
    return round(100.0 * float(results["accuracy"]), 2)


def epoch_callbacks(ctx: RunContext, phase: str, epoch_var, manager) -> list:
    """Progress, log row, checkpoint and state after each epoch; TensorBoard on the chief."""
    callbacks = [EpochProgress(phase=phase, total_epochs=ctx.config.total_epochs,
                               steps=ctx.steps, epoch_var=epoch_var, manager=manager,
                               log=ctx.log, write_state=ctx.write_state, console=ctx.console,
                               chief=ctx.chief)]
    if ctx.chief:
        from ...train.events import EpochScalars

        callbacks.append(EpochScalars(ctx.path("tensorboard")))
    return callbacks


def train_float(ctx: RunContext):
    """Train (or restore) the float model; returns (model, validation accuracy %, the
    BatchNorm momentum used)."""
    config, steps = ctx.config, ctx.steps
    train_ds, val_ds = datasets(ctx)
    with ctx.strategy.scope():
        model = build_float(config, ctx.classes)
        bn_momentum = set_bn_momentum(model, config.bn_momentum, config.epochs * steps)
        if config.sync_bn:
            synchronize_batchnorm(model, ctx.strategy.num_replicas_in_sync)
        schedule = WarmupCosine(config.base_lr(), config.epochs * steps,
                                int(round(config.warmup_epochs * steps)), config.cosine)
        optimizer = make_optimizer(config.optimizer, schedule, config.weight_decay)
        compile_classifier(model, optimizer, config.label_smoothing)
        epoch_var, manager = checkpointing(model, optimizer, ctx.checkpoints("float"),
                                           ctx.chief)
    start = agreed(ctx.strategy, int(epoch_var.numpy()), "epochs")
    float_acc = None
    if start < config.epochs:
        precise_bn = PreciseBN(ctx.splits.train_plain,
                               None if ctx.strategy is tf.distribute.get_strategy() else
                               ctx.strategy)
        callbacks = epoch_callbacks(ctx, "float", epoch_var, manager)
        history = model.fit(
            mixup(train_ds, config.mixup, ctx.classes, seed=config.seed), epochs=config.epochs,
            initial_epoch=start, steps_per_epoch=steps, validation_data=val_ds, verbose=0,
            callbacks=[callbacks[0], precise_bn, *callbacks[1:]])
        float_acc = round(100.0 * float(history.history["val_accuracy"][-1]), 2)
    if float_acc is None:  # trained before a resume: evaluate the restored weights
        float_acc = accuracy(model, val_ds)
    ctx.console.print(f"float model: validation accuracy {float_acc:.2f} % "
                      f"({ctx.splits.val_count} images){ctx.at()}")
    return model, float_acc, bn_momentum
