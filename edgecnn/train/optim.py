"""Optimizers, the classification loss and BatchNorm momentum for edgecnn's training."""
from __future__ import annotations

from .._keras import keras

OPTIMIZERS = ("adam", "sgd")


def make_optimizer(name: str, schedule, weight_decay: float = 0.0):
    """Adam (AdamW with weight decay) or SGD with Nesterov momentum 0.9, on ``schedule``."""
    if name == "sgd":
        opt = keras.optimizers.SGD(schedule, momentum=0.9, nesterov=True,
                                   weight_decay=weight_decay or None)
    elif weight_decay:
        opt = keras.optimizers.AdamW(schedule, weight_decay=weight_decay)
    else:
        opt = keras.optimizers.Adam(schedule)
    if weight_decay:  # Bag of Tricks: no decay on biases and BatchNorm's gamma/beta
        opt.exclude_from_weight_decay(var_names=["bias", "gamma", "beta"])
    return opt


def compile_classifier(model, optimizer, label_smoothing: float) -> None:
    """Cross-entropy on the logits (one-hot labels), accuracy as the metric."""
    model.compile(optimizer=optimizer,
                  loss=keras.losses.CategoricalCrossentropy(from_logits=True,
                                                            label_smoothing=label_smoothing),
                  metrics=[keras.metrics.CategoricalAccuracy(name="accuracy")])


def set_bn_momentum(model, momentum: float | None, total_steps: int) -> float | None:
    """Short runs need a faster BatchNorm moving average than ImageNet's 0.999, or the
    inference statistics lag far behind the weights. ``momentum`` None: at most
    ``1 - 10 / total_steps`` (never below 0.9), never above each layer's own; a number: that
    momentum everywhere. Returns the momentum used (None: no BatchNorm)."""
    bns = [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]
    if not bns:
        return None
    target = momentum
    if target is None:
        target = min(max(0.9, 1.0 - 10.0 / max(1, total_steps)), max(b.momentum for b in bns))
    for bn in bns:
        bn.momentum = min(bn.momentum, target) if momentum is None else target
    return float(target)


def synchronize_batchnorm(model, replicas: int) -> bool:
    """With several replicas, BatchNorm's batch statistics taken over the global batch (one
    all-reduce per layer and step) instead of each replica's share of it, so a run split
    across devices or machines trains as one process with the same global batch does
    (``--sync-bn``). Measured here: MobileNet 0.25 at 32 px, one SGD step on 16 images split
    2 x 8, differs from the one-process step by up to 2.3x the step's own size per tensor
    with local statistics, by 1 % with synchronized ones. Returns True when anything
    changed."""
    if replicas < 2:
        return False
    bns = [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]
    for bn in bns:
        bn.synchronized, bn.fused = True, False  # the fused kernel has no synchronized form
    return bool(bns)
