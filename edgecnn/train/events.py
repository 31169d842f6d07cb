"""TensorBoard event files without the tensorboard package: each file is a TFRecord stream
of ``Event`` protos (the format TensorFlow's own EventsWriter produces), so TensorBoard
reads these scalars wherever it is installed."""
from __future__ import annotations

import os
import socket
import time

from .._keras import keras, tf


class ScalarWriter:
    """Append-only scalars in ``logdir`` (a new events file per process, as TensorBoard
    expects: it merges every file of a folder)."""

    def __init__(self, logdir: str):
        from tensorflow.core.util import event_pb2

        self._event_pb2 = event_pb2
        os.makedirs(logdir, exist_ok=True)
        name = f"events.out.tfevents.{int(time.time())}.{socket.gethostname()}.{os.getpid()}"
        self.path = os.path.join(logdir, name)
        self._writer = tf.io.TFRecordWriter(self.path)
        self._write(event_pb2.Event(wall_time=time.time(), file_version="brain.Event:2"))

    def _write(self, event) -> None:
        self._writer.write(event.SerializeToString())
        self._writer.flush()

    def scalars(self, step: int, values: dict) -> None:
        from tensorflow.core.framework import summary_pb2

        summary = summary_pb2.Summary(value=[
            summary_pb2.Summary.Value(tag=tag, simple_value=float(v)) for tag, v in values.items()
        ])
        self._write(self._event_pb2.Event(wall_time=time.time(), step=int(step),
                                          summary=summary))

    def close(self) -> None:
        self._writer.close()


class EpochScalars(keras.callbacks.Callback):
    """Per-epoch loss/accuracy (train/ and validation/) and the learning rate, by epoch."""

    def __init__(self, logdir: str):
        super().__init__()
        self.logdir = logdir
        self.writers = {}

    def _writer(self, which: str) -> ScalarWriter:
        if which not in self.writers:
            self.writers[which] = ScalarWriter(os.path.join(self.logdir, which))
        return self.writers[which]

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        train = {f"epoch_{k}": v for k, v in logs.items() if not k.startswith("val_")}
        optimizer = self.model.optimizer
        train["epoch_learning_rate"] = float(tf.convert_to_tensor(optimizer.learning_rate))
        self._writer("train").scalars(epoch + 1, train)
        val = {f"epoch_{k[4:]}": v for k, v in logs.items() if k.startswith("val_")}
        if val:
            self._writer("validation").scalars(epoch + 1, val)

    def on_train_end(self, logs=None):
        for writer in self.writers.values():
            writer.close()
        self.writers = {}
