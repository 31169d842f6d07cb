"""What makes a training run resumable: the per-epoch CSV log and tf.train checkpoints of
the model, the optimizer (with its step) and the epoch counter."""
from __future__ import annotations

import atexit
import csv
import os
import shutil
import tempfile

from ..utils.files import atomic_write_bytes
from .._keras import tf

LOG_COLUMNS = ("epoch", "phase", "step", "lr", "loss", "accuracy", "val_loss", "val_accuracy",
               "seconds")


class CsvLog:
    """log.csv: one row per completed epoch, flushed to disk as it is written."""

    def __init__(self, path: str):
        self.path = path

    def rows(self) -> list[dict]:
        if not os.path.exists(self.path):
            return []
        with open(self.path, newline="") as f:
            return list(csv.DictReader(f))

    def keep_through(self, epoch: int) -> None:
        """Drop rows of epochs after ``epoch`` (written before a checkpoint that never
        landed), rewriting the file atomically."""
        rows = [r for r in self.rows() if int(r["epoch"]) <= epoch]
        lines = [",".join(LOG_COLUMNS)] + [",".join(str(r[c]) for c in LOG_COLUMNS)
                                           for r in rows]
        atomic_write_bytes(self.path, ("\n".join(lines) + "\n").encode())

    def append(self, row: dict) -> None:
        if not os.path.exists(self.path):
            self.keep_through(0)
        with open(self.path, "a", newline="") as f:
            csv.DictWriter(f, LOG_COLUMNS).writerow(row)
            f.flush()
            os.fsync(f.fileno())


def checkpoint_epoch(directory: str) -> int:
    """The epoch stored in the latest checkpoint of ``directory`` (0 when there is none)."""
    latest = tf.train.latest_checkpoint(directory) if os.path.isdir(directory) else None
    if latest is None:
        return 0
    return int(tf.train.load_variable(latest, "epoch/.ATTRIBUTES/VARIABLE_VALUE"))


def checkpointing(model, optimizer, directory: str, chief: bool):
    """The epoch variable and a CheckpointManager for ``directory``, restored from its latest
    checkpoint when there is one (weights, optimizer slots and step, epoch).

    Every worker of a cluster restores from ``directory`` (the run folder, shared between
    machines), but only the chief saves there: saving is a collective op, so the others save
    throw-away copies in a temporary folder removed when the process ends."""
    epoch_var = tf.Variable(0, dtype=tf.int64, trainable=False, name="epoch")
    checkpoint = tf.train.Checkpoint(model=model, optimizer=optimizer, epoch=epoch_var)
    latest = tf.train.latest_checkpoint(directory) if os.path.isdir(directory) else None
    save_to = directory
    if not chief:
        save_to = tempfile.mkdtemp(prefix="edgecnn-worker-ckpt-")
        atexit.register(shutil.rmtree, save_to, ignore_errors=True)
    manager = tf.train.CheckpointManager(checkpoint, save_to, max_to_keep=2)
    if latest:
        optimizer.build(model.trainable_variables)  # slots exist before they are restored
        checkpoint.restore(latest).assert_existing_objects_matched()
    return epoch_var, manager
