"""Learning-rate schedules (Bag of Tricks for Image Classification, He et al. 2019, 3.1/5.1)."""
from __future__ import annotations

import math

from .._keras import keras, tf


@keras.saving.register_keras_serializable(package="edgecnn")
class WarmupCosine(keras.optimizers.schedules.LearningRateSchedule):
    """Linear warmup from ~0 to ``base_lr`` over ``warmup_steps``, then cosine decay to
    ``final_lr`` at ``total_steps`` (``cosine=False``: constant after the warmup).

    A function of the optimizer's step counter only, so a resumed run (whose optimizer
    state, iterations included, comes from the checkpoint) continues on the same curve.
    """

    def __init__(self, base_lr: float, total_steps: int, warmup_steps: int = 0,
                 cosine: bool = True, final_lr: float = 0.0):
        super().__init__()
        self.base_lr = float(base_lr)
        self.total_steps = max(1, int(total_steps))
        self.warmup_steps = max(0, int(warmup_steps))
        self.cosine = bool(cosine)
        self.final_lr = float(final_lr)

    def __call__(self, step):
        step = tf.cast(step, tf.float32)
        base = tf.constant(self.base_lr, tf.float32)
        warm = base * (step + 1.0) / max(1, self.warmup_steps)
        if self.cosine:
            span = max(1, self.total_steps - self.warmup_steps)
            progress = tf.clip_by_value((step - self.warmup_steps) / span, 0.0, 1.0)
            after = self.final_lr + 0.5 * (base - self.final_lr) * \
                (1.0 + tf.cos(math.pi * progress))
        else:
            after = base
        return tf.where(step < self.warmup_steps, warm, after)

    def get_config(self) -> dict:
        return {"base_lr": self.base_lr, "total_steps": self.total_steps,
                "warmup_steps": self.warmup_steps, "cosine": self.cosine,
                "final_lr": self.final_lr}
