"""Keras callbacks of an edgecnn training run: per-epoch progress, log row, checkpoint and
state (``EpochProgress``), and PreciseBN statistics before each validation."""
from __future__ import annotations

import contextlib
import signal
import time

from .._keras import keras, tf
from ..utils.progress import Progress


@contextlib.contextmanager
def interrupt_deferred():
    """Hold a Ctrl-C (SIGINT) that arrives inside the block until the block ends, then raise
    KeyboardInterrupt, so an epoch's log row, checkpoint and state are written together. A
    hard kill can still fall between them; ``--resume`` trims the log to the checkpoint.
    A process started with Ctrl-C ignored (a background job of a shell script, nohup) keeps
    ignoring it here too."""
    received = []
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        yield
        return
    try:
        previous = signal.signal(signal.SIGINT, lambda signum, frame: received.append(signum))
    except ValueError:  # not the main thread: signals cannot be handled here anyway
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        if received:
            raise KeyboardInterrupt


class EpochProgress(keras.callbacks.Callback):
    """Per epoch: a progress bar, then (in this order) the log row, the checkpoint and
    state.json; a line with the epoch's metrics."""

    def __init__(self, *, phase, total_epochs, steps, epoch_var, manager, log, write_state,
                 console, chief):
        super().__init__()
        self.phase, self.total_epochs, self.steps = phase, total_epochs, steps
        self.epoch_var, self.manager, self.log = epoch_var, manager, log
        self.write_state, self.console, self.chief = write_state, console, chief
        self.progress = None

    def on_train_begin(self, logs=None):
        self.progress = Progress(console=self.console, terminal_only=False,
                                 fields=("metrics",)).__enter__()

    def on_train_end(self, logs=None):
        if self.progress is not None:
            self.progress.__exit__(None, None, None)

    def on_epoch_begin(self, epoch, logs=None):
        self.start = time.perf_counter()
        self.task = self.progress.task(f"{self.phase} epoch {epoch + 1}/{self.total_epochs}",
                                       total=self.steps)

    def on_train_batch_end(self, batch, logs=None):
        logs = logs or {}
        self.task(batch + 1, metrics=f"loss {logs.get('loss', float('nan')):.3f} "
                                     f"acc {100 * logs.get('accuracy', float('nan')):.1f} %")

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        optimizer = self.model.optimizer
        step = int(optimizer.iterations.numpy())
        lr = float(tf.convert_to_tensor(optimizer.learning_rate))
        seconds = time.perf_counter() - self.start
        row = {"epoch": epoch + 1, "phase": self.phase, "step": step, "lr": f"{lr:.6g}",
               "loss": f"{logs.get('loss', float('nan')):.5f}",
               "accuracy": f"{logs.get('accuracy', float('nan')):.5f}",
               "val_loss": f"{logs.get('val_loss', float('nan')):.5f}",
               "val_accuracy": f"{logs.get('val_accuracy', float('nan')):.5f}",
               "seconds": f"{seconds:.1f}"}
        with interrupt_deferred():  # Ctrl-C here lands after the three, not between them
            if self.chief:
                self.log.append(row)
            self.epoch_var.assign(epoch + 1)
            self.manager.save(checkpoint_number=epoch + 1)  # every worker saves (collectives)
            if self.chief:
                self.write_state(self.phase, epoch + 1)
        self.progress.remove(self.task)
        self.console.print(
            f"{self.phase:5s} epoch {epoch + 1:3d}/{self.total_epochs}  "
            f"loss {logs.get('loss', float('nan')):.4f}  "
            f"acc {100 * logs.get('accuracy', float('nan')):5.1f} %  "
            f"val_loss {logs.get('val_loss', float('nan')):.4f}  "
            f"val_acc {100 * logs.get('val_accuracy', float('nan')):5.1f} %  "
            f"lr {lr:.2e}  {seconds:.1f} s", soft_wrap=True)


def recompute_bn_statistics(model, dataset, batches: int = 8, strategy=None) -> None:
    """PreciseBN (Wu & Johnson, "Rethinking Batch in BatchNorm", 2021): set every
    BatchNorm's moving mean and variance to the average batch statistics of ``batches``
    batches of ``dataset`` under the current weights. Training uses batch statistics, so
    this changes nothing about training; it removes the lag of the moving averages, which
    early in a short run (weights moving fast) makes inference-mode accuracy meaningless."""
    bns = [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)
           and layer.trainable]
    if not bns:
        return
    saved = [bn.momentum for bn in bns]
    try:
        for k, (x, _) in enumerate(dataset.take(batches)):
            for bn in bns:
                bn.momentum = k / (k + 1)  # a running mean over the batches
            if strategy is None:
                model(x, training=True)
            else:
                strategy.run(lambda images: model(images, training=True), args=(x,))
    finally:
        for bn, momentum in zip(bns, saved):
            bn.momentum = momentum


class PreciseBN(keras.callbacks.Callback):
    """Recompute the BatchNorm statistics before each validation (and so before each
    checkpoint, which follows the validation)."""

    def __init__(self, dataset, strategy=None, batches: int = 8):
        super().__init__()
        self.dataset, self.strategy, self.batches = dataset, strategy, batches

    def on_test_begin(self, logs=None):
        recompute_bn_statistics(self.model, self.dataset, self.batches, self.strategy)
