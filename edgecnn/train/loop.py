"""``edgecnn train``: float training, quantization-aware epochs, int8 conversion, in a
resumable run folder.

The run folder holds::

    config.json          every setting (``--resume`` reads it back)
    state.json           phase and completed epochs (written after each checkpoint)
    log.csv              one row per completed epoch (float and QAT), never repeated
    tensorboard/         TensorBoard events (train/ and validation/)
    checkpoints/float/   tf.train checkpoints: model, optimizer (with its step), epoch
    checkpoints/qat/     the same for the QAT epochs
    model.keras          the float model: raw RGB pixels in, logits out (as the .tflite)
    model_int8.tflite    (+ .json card) int8: QAT when --qat-epochs > 0, else calibrated
    model_ptq_int8.tflite  with --compare-ptq: post-training int8 of the same float model
    summary.json         float / int8 validation accuracy and the files

An epoch counts as completed when its checkpoint is written; ``--resume`` restores the last
one (weights, optimizer slots and step, so the learning-rate schedule continues where it
was) and drops any log row written after it, so no completed epoch is lost or repeated.
"""
from __future__ import annotations

import csv
import json
import os
import tempfile
import time
from dataclasses import asdict, dataclass, field, fields

import numpy as np

from .._io import atomic_write_bytes, atomic_write_json
from .._keras import keras, tf
from ..errors import EdgecnnError

CONFIG_FILE, STATE_FILE, LOG_FILE, SUMMARY_FILE = ("config.json", "state.json", "log.csv",
                                                   "summary.json")
LOG_COLUMNS = ("epoch", "phase", "step", "lr", "loss", "accuracy", "val_loss", "val_accuracy",
               "seconds")
OPTIMIZERS = ("adam", "sgd")
#: Adam's default peak rate from scratch, and when fine-tuning --weights. 5e-3 rather than
#: Keras's 1e-3: edgecnn's default runs are short (10 epochs), and on a 1,438-image digit
#: folder mobilenet_v2 at 32 px reached 56 % in 10 epochs at 1e-3, 81 % at 2e-3, 91-94 % at
#: 5e-3 (README, Training). Fine-tuning keeps 1e-4 (pretrained features move gently).
ADAM_LR, ADAM_FINE_TUNE_LR = 5e-3, 1e-4


@dataclass
class TrainConfig:
    """Everything a run needs; saved as config.json. See ``edgecnn train --help``."""

    name: str
    alpha: float = 1.0
    resolution: int | None = None
    options: dict = field(default_factory=dict)
    data_dir: str | None = None
    dataset: str | None = None
    tfds_dir: str | None = None
    epochs: int = 10
    batch_size: int = 32
    lr: float | None = None             # None: adam ADAM_LR (ADAM_FINE_TUNE_LR to fine-tune),
    #                                     sgd 0.1 * batch / 256 (/10 to fine-tune)
    optimizer: str = "adam"
    weight_decay: float = 0.0
    warmup_epochs: float = 1.0
    cosine: bool = True
    label_smoothing: float = 0.0
    mixup: float = 0.0
    weights: str = "none"
    dropout: float | None = None
    qat_epochs: int = 0
    qat_lr: float | None = None         # None: lr / 100
    int8: bool = False
    compare_ptq: bool = False
    calib_samples: int = 200
    val_split: float = 0.2
    augment: str = "auto"
    limit: int | None = None
    seed: int = 0
    strategy: str = "auto"
    cache: bool = True
    bn_momentum: float | None = None    # None: min(family's, 1 - 10 / total steps), >= 0.9

    def check(self) -> "TrainConfig":
        from ..models.registry import check_alpha, get_model_spec

        get_model_spec(self.name)
        self.alpha = check_alpha(self.alpha)
        if (self.data_dir is None) == (self.dataset is None):
            raise EdgecnnError("give --data DIR (an image folder) or --dataset NAME (digits, or "
                               "a TensorFlow Datasets name), not both or neither")
        checks = [(self.epochs >= 1, f"--epochs must be >= 1, got {self.epochs}"),
                  (self.batch_size >= 1, f"--batch-size must be >= 1, got {self.batch_size}"),
                  (self.qat_epochs >= 0, f"--qat-epochs must be >= 0, got {self.qat_epochs}"),
                  (self.lr is None or self.lr > 0, f"--lr must be > 0, got {self.lr}"),
                  (self.qat_lr is None or self.qat_lr > 0, f"--qat-lr must be > 0, got "
                   f"{self.qat_lr}"),
                  (self.warmup_epochs >= 0, f"--warmup-epochs must be >= 0, got "
                   f"{self.warmup_epochs}"),
                  (0 <= self.label_smoothing < 1, f"--label-smoothing must be in [0, 1), got "
                   f"{self.label_smoothing}"),
                  (self.mixup >= 0, f"--mixup must be >= 0 (0: off; 0.2 is typical), got "
                   f"{self.mixup}"),
                  (self.weight_decay >= 0, f"--weight-decay must be >= 0, got "
                   f"{self.weight_decay}"),
                  (self.optimizer in OPTIMIZERS, f"--optimizer must be one of "
                   f"{', '.join(OPTIMIZERS)}, got {self.optimizer!r}"),
                  (self.calib_samples >= 1, f"--calib-samples must be >= 1, got "
                   f"{self.calib_samples}")]
        for ok, message in checks:
            if not ok:
                raise EdgecnnError(message)
        if self.qat_epochs > 0:
            self.int8 = True  # QAT's only product is an int8 model
        if self.data_dir is not None:  # --resume may run from another folder
            self.data_dir = os.path.abspath(self.data_dir)
        if self.tfds_dir is not None:
            self.tfds_dir = os.path.abspath(os.path.expanduser(self.tfds_dir))
        return self

    @property
    def total_epochs(self) -> int:
        return self.epochs + self.qat_epochs

    def base_lr(self) -> float:
        if self.lr is not None:
            return float(self.lr)
        fine_tune = str(self.weights).lower() != "none"
        if self.optimizer == "adam":
            return ADAM_FINE_TUNE_LR if fine_tune else ADAM_LR
        lr = 0.1 * self.batch_size / 256
        return lr / 10 if fine_tune else lr

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "TrainConfig":
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


# --- the run folder ----------------------------------------------------------------------------

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


def _read_json(path: str) -> dict:
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError) as exc:
        raise EdgecnnError(f"cannot read {path}: {exc}") from None


def _checkpoint_epoch(directory: str) -> int:
    """The epoch stored in the latest checkpoint of ``directory`` (0 when there is none)."""
    latest = tf.train.latest_checkpoint(directory) if os.path.isdir(directory) else None
    if latest is None:
        return 0
    return int(tf.train.load_variable(latest, "epoch/.ATTRIBUTES/VARIABLE_VALUE"))


def _save_keras(model, path: str) -> None:
    """model.save to a temporary .keras file in the same folder, then a rename."""
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), prefix=".model-", suffix=".keras")
    os.close(fd)
    try:
        model.save(tmp, save_format="keras")
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


# --- models -----------------------------------------------------------------------------------

def build_float(config: TrainConfig, num_classes: int):
    """The deployable float model (pixels in, logits out) with ``config.weights``."""
    from ..converters.deploy import deployable
    from ..models import create_model

    kwargs = dict(alpha=config.alpha, input_size=config.resolution, num_classes=num_classes,
                  dropout=config.dropout, **config.options)
    weights = str(config.weights)
    if weights.lower() == "imagenet" and num_classes != 1000:
        # fine-tuning to new classes: the ImageNet backbone, a fresh classifier
        from dataclasses import replace

        model = create_model(config.name, weights=None, **kwargs)
        backbone = create_model(config.name, weights="imagenet", include_top=False,
                                **{k: v for k, v in kwargs.items() if k != "num_classes"})
        by_name = {layer.name: layer for layer in model.layers}
        for layer in backbone.layers:
            if layer.weights and layer.name in by_name:
                by_name[layer.name].set_weights(layer.get_weights())
        model.edgecnn = replace(model.edgecnn, weights="imagenet (backbone)")
    else:
        model = create_model(config.name, weights=None if weights.lower() == "none" else
                             weights, **kwargs)
    return deployable(model)


def _set_bn_momentum(model, config: TrainConfig, total_steps: int) -> float | None:
    """Short runs need a faster BatchNorm moving average than ImageNet's 0.999, or the
    inference statistics lag far behind the weights."""
    bns = [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]
    if not bns:
        return None
    target = config.bn_momentum
    if target is None:
        target = min(max(0.9, 1.0 - 10.0 / max(1, total_steps)), max(b.momentum for b in bns))
    for bn in bns:
        bn.momentum = min(bn.momentum, target) if config.bn_momentum is None else target
    return float(target)


def _optimizer(config: TrainConfig, schedule):
    if config.optimizer == "sgd":
        opt = keras.optimizers.SGD(schedule, momentum=0.9, nesterov=True,
                                   weight_decay=config.weight_decay or None)
    elif config.weight_decay:
        opt = keras.optimizers.AdamW(schedule, weight_decay=config.weight_decay)
    else:
        opt = keras.optimizers.Adam(schedule)
    if config.weight_decay:  # Bag of Tricks: no decay on biases and BatchNorm's gamma/beta
        opt.exclude_from_weight_decay(var_names=["bias", "gamma", "beta"])
    return opt


def _compile(model, optimizer, label_smoothing: float) -> None:
    model.compile(optimizer=optimizer,
                  loss=keras.losses.CategoricalCrossentropy(from_logits=True,
                                                            label_smoothing=label_smoothing),
                  metrics=[keras.metrics.CategoricalAccuracy(name="accuracy")])


# --- progress and checkpoints -------------------------------------------------------------

class _Epochs(keras.callbacks.Callback):
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
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, \
            TimeElapsedColumn

        self.progress = Progress(TextColumn("{task.description}"), BarColumn(),
                                 MofNCompleteColumn(), TimeElapsedColumn(),
                                 TextColumn("{task.fields[metrics]}"), console=self.console,
                                 transient=True)
        self.progress.start()

    def on_train_end(self, logs=None):
        if self.progress is not None:
            self.progress.stop()

    def on_epoch_begin(self, epoch, logs=None):
        self.start = time.perf_counter()
        self.task = self.progress.add_task(
            f"{self.phase} epoch {epoch + 1}/{self.total_epochs}", total=self.steps, metrics="")

    def on_train_batch_end(self, batch, logs=None):
        logs = logs or {}
        self.progress.update(self.task, completed=batch + 1,
                             metrics=f"loss {logs.get('loss', float('nan')):.3f} "
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
        if self.chief:
            self.log.append(row)
        self.epoch_var.assign(epoch + 1)
        self.manager.save(checkpoint_number=epoch + 1)  # every worker saves (collectives)
        if self.chief:
            self.write_state(self.phase, epoch + 1)
        self.progress.remove_task(self.task)
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


class _PreciseBN(keras.callbacks.Callback):
    """Recompute the BatchNorm statistics before each validation (and so before each
    checkpoint, which follows the validation)."""

    def __init__(self, dataset, strategy=None, batches: int = 8):
        super().__init__()
        self.dataset, self.strategy, self.batches = dataset, strategy, batches

    def on_test_begin(self, logs=None):
        recompute_bn_statistics(self.model, self.dataset, self.batches, self.strategy)


def _checkpointing(model, optimizer, directory: str, chief: bool):
    epoch_var = tf.Variable(0, dtype=tf.int64, trainable=False, name="epoch")
    checkpoint = tf.train.Checkpoint(model=model, optimizer=optimizer, epoch=epoch_var)
    if not chief:  # other workers write throw-away copies (saving is a collective op)
        directory = tempfile.mkdtemp(prefix="edgecnn-worker-ckpt-")
    manager = tf.train.CheckpointManager(checkpoint, directory, max_to_keep=2)
    if manager.latest_checkpoint:
        optimizer.build(model.trainable_variables)  # slots exist before they are restored
        checkpoint.restore(manager.latest_checkpoint).assert_existing_objects_matched()
    return epoch_var, manager


# --- conversion and evaluation -----------------------------------------------------------

def _accuracy(model, dataset) -> float:
    results = model.evaluate(dataset, verbose=0, return_dict=True)
    return round(100.0 * float(results["accuracy"]), 2)


def _tflite_accuracy(path: str, images, labels) -> float:
    from ..runtime import tflite as rt

    interpreter = rt.load_interpreter(path)
    logits = rt.run_logits(interpreter, images)
    return round(100.0 * float(np.mean(logits.argmax(1) == labels)), 2)


def _add_to_card(path: str, extra: dict) -> None:
    """Add ``extra`` to the card embedded in ``path`` and to the JSON beside it."""
    from ..runtime import tflite as rt

    with open(path, "rb") as f:
        model_bytes = f.read()
    card = rt.read_card(model_bytes) or {}
    card.update(extra)
    final = model_bytes
    for _ in range(5):  # the card holds the file's size, which the card changes
        card["size_bytes"] = len(final)
        final = rt.embed_card(model_bytes, card)
        if len(final) == card["size_bytes"]:
            break
    atomic_write_bytes(path, final)
    atomic_write_json(os.path.splitext(path)[0] + ".json", card)


# --- the run ------------------------------------------------------------------------------------

def _console(quiet: bool):
    from rich.console import Console

    return Console(quiet=quiet, highlight=False, soft_wrap=True)


def train(config: TrainConfig | None = None, run_dir: str | None = None, *,
          resume: bool = False, quiet: bool = False) -> dict:
    """Run (or with ``resume=True`` continue) a training run in ``run_dir``; returns the
    summary (also written as summary.json)."""
    if resume:
        if run_dir is None or not os.path.isfile(os.path.join(run_dir, CONFIG_FILE)):
            raise EdgecnnError(f"{run_dir} is not a run folder (no {CONFIG_FILE}); give the "
                               f"-o folder of an earlier edgecnn train")
        config = TrainConfig.from_dict(_read_json(os.path.join(run_dir, CONFIG_FILE))).check()
    else:
        if config is None:
            raise EdgecnnError("give a TrainConfig, or resume=True with a run folder")
        config.check()
        run_dir = run_dir or os.path.join(
            "runs", f"{config.name}-{time.strftime('%Y%m%d-%H%M%S')}")
        if os.path.isfile(os.path.join(run_dir, CONFIG_FILE)):
            raise EdgecnnError(f"{run_dir} already holds a run; continue it with --resume "
                               f"{run_dir} or choose another -o folder")
        os.makedirs(run_dir, exist_ok=True)
    run_dir = os.path.abspath(run_dir)
    from .strategy import is_chief, make_strategy, strategy_name

    strategy = make_strategy(config.strategy)  # first: multiworker configures collectives
    chief = is_chief(strategy)
    console = _console(quiet or not chief)
    summary_path = os.path.join(run_dir, SUMMARY_FILE)
    if resume and os.path.isfile(summary_path):
        state = _read_json(os.path.join(run_dir, STATE_FILE))
        if state.get("phase") == "done":
            console.print(f"run {run_dir} is already finished")
            return _read_json(summary_path)
    return _run(config, run_dir, strategy, chief, console, resume,
                strategy_name(strategy))


def _run(config, run_dir, strategy, chief, console, resumed, strategy_label) -> dict:
    from ..converters.convert import convert
    from ..converters.qat import _freeze_batchnorm, quantize_aware
    from ..data.pipeline import make_splits, mixup, one_hot
    from ..models.registry import get_model_spec, resolve_input_size
    from .schedule import WarmupCosine

    clock = time.perf_counter()

    def at() -> str:
        return f"  [{time.perf_counter() - clock:.0f} s]"

    spec = get_model_spec(config.name)
    size = resolve_input_size(spec, config.resolution)
    config.resolution = size
    splits = make_splits(size, data_dir=config.data_dir, dataset=config.dataset,
                         batch_size=config.batch_size, val_split=config.val_split,
                         augment=config.augment, cache=config.cache, limit=config.limit,
                         seed=config.seed, tfds_dir=config.tfds_dir)
    classes = splits.num_classes
    steps = splits.steps_per_epoch
    if not resumed:
        config.lr = config.base_lr()  # the rate used: --resume keeps it if a default changes
        if chief:  # written once the data is known to be usable, with the augmentation
            # --augment auto chose and why, for the record
            atomic_write_json(os.path.join(run_dir, CONFIG_FILE),
                              {**config.to_dict(), "augmentation": splits.augment})
    console.print(f"data: {splits.source}: {splits.train_count} training / {splits.val_count} "
                  f"validation images, {classes} classes"
                  + (f", {splits.skipped} unreadable or non-image file(s) skipped"
                     if splits.skipped else ""))
    console.print(f"augment: {splits.augment['preset']} ({splits.augment['reason']})")
    console.print(f"model: {config.name} alpha {config.alpha:g} {size}px, "
                  f"{config.epochs} float + {config.qat_epochs} QAT epochs of {steps} steps, "
                  f"batch {config.batch_size}, strategy {strategy_label} "
                  f"({strategy.num_replicas_in_sync} replica(s)); run folder {run_dir}")

    ckpt_root = os.path.join(run_dir, "checkpoints")
    float_done = _checkpoint_epoch(os.path.join(ckpt_root, "float"))
    qat_done = _checkpoint_epoch(os.path.join(ckpt_root, "qat"))
    done = max(float_done, qat_done)
    log = CsvLog(os.path.join(run_dir, LOG_FILE))
    if chief:
        log.keep_through(done)
    if resumed:
        console.print(f"resuming: {done} of {config.total_epochs} epochs completed"
                      + (f", continuing at epoch {done + 1}" if done < config.total_epochs
                         else ", converting"))

    def write_state(phase, epochs_done):
        atomic_write_json(os.path.join(run_dir, STATE_FILE),
                          {"phase": phase, "epochs_done": epochs_done,
                           "float_epochs": config.epochs, "qat_epochs": config.qat_epochs})

    callbacks_common = []
    if chief:
        from .events import EpochScalars

        callbacks_common.append(EpochScalars(os.path.join(run_dir, "tensorboard")))

    train_ds = one_hot(splits.train, classes)
    val_ds = one_hot(splits.val, classes)

    # --- float training
    base_lr = config.base_lr()
    with strategy.scope():
        model = build_float(config, classes)
        bn_momentum = _set_bn_momentum(model, config, config.epochs * steps)
        schedule = WarmupCosine(base_lr, config.epochs * steps,
                                int(round(config.warmup_epochs * steps)), config.cosine)
        optimizer = _optimizer(config, schedule)
        _compile(model, optimizer, config.label_smoothing)
        epoch_var, manager = _checkpointing(model, optimizer, os.path.join(ckpt_root, "float"),
                                            chief)
    start = int(epoch_var.numpy())
    float_acc = None
    if start < config.epochs:
        history = model.fit(
            mixup(train_ds, config.mixup, classes, seed=config.seed), epochs=config.epochs,
            initial_epoch=start, steps_per_epoch=steps, validation_data=val_ds, verbose=0,
            callbacks=[_Epochs(phase="float", total_epochs=config.total_epochs, steps=steps,
                               epoch_var=epoch_var, manager=manager, log=log,
                               write_state=write_state, console=console, chief=chief),
                       _PreciseBN(splits.train_plain,
                                  None if strategy is tf.distribute.get_strategy() else
                                  strategy),
                       *callbacks_common])
        float_acc = round(100.0 * float(history.history["val_accuracy"][-1]), 2)
    if float_acc is None:  # trained before a resume: evaluate the restored weights
        float_acc = _accuracy(model, val_ds)
    console.print(f"float model: validation accuracy {float_acc:.2f} % "
                  f"({splits.val_count} images){at()}")

    single = strategy.num_replicas_in_sync == 1 and not isinstance(
        strategy, (tf.distribute.MirroredStrategy, tf.distribute.MultiWorkerMirroredStrategy))

    def export_float():
        """The float model outside the strategy (conversion traces plain variables)."""
        if single:
            return model
        fresh = build_float(TrainConfig.from_dict({**config.to_dict(), "weights": "none"}),
                            classes)
        fresh.set_weights(model.get_weights())
        return fresh

    # --- QAT
    qat = None
    qat_keras_acc = None
    if config.qat_epochs > 0:
        qat_lr = config.qat_lr or base_lr / 100
        with strategy.scope():
            qat = quantize_aware(model)
            _freeze_batchnorm(qat)
            qat_steps = config.qat_epochs * steps
            qopt = _optimizer(config, WarmupCosine(qat_lr, qat_steps, 0, config.cosine))
            _compile(qat, qopt, config.label_smoothing)
            qepoch_var, qmanager = _checkpointing(qat, qopt, os.path.join(ckpt_root, "qat"),
                                                  chief)
        qstart = max(int(qepoch_var.numpy()), config.epochs)
        if qstart < config.total_epochs:
            history = qat.fit(
                train_ds, epochs=config.total_epochs, initial_epoch=qstart,
                steps_per_epoch=steps, validation_data=val_ds, verbose=0,
                callbacks=[_Epochs(phase="qat", total_epochs=config.total_epochs, steps=steps,
                                   epoch_var=qepoch_var, manager=qmanager, log=log,
                                   write_state=write_state, console=console, chief=chief),
                           *callbacks_common])
            qat_keras_acc = round(100.0 * float(history.history["val_accuracy"][-1]), 2)
        else:
            qat_keras_acc = _accuracy(qat, val_ds)
        console.print(f"QAT model (fake-quantized Keras): validation accuracy "
                      f"{qat_keras_acc:.2f} %{at()}")

    summary = {"run_dir": run_dir, "model": config.name, "alpha": config.alpha,
               "resolution": size, "dataset": splits.source, "classes": splits.class_names,
               "train_images": splits.train_count, "val_images": splits.val_count,
               "skipped_files": splits.skipped, "augmentation": splits.augment,
               "epochs": config.epochs,
               "qat_epochs": config.qat_epochs, "strategy": strategy_label,
               "replicas": int(strategy.num_replicas_in_sync), "bn_momentum": bn_momentum,
               "float_val_accuracy": float_acc, "qat_keras_val_accuracy": qat_keras_acc,
               "files": {}}
    if not chief:
        return summary

    # --- files: the float .keras, then the .tflite(s) with their cards
    write_state("convert", config.total_epochs)
    float_model = export_float()
    keras_path = os.path.join(run_dir, "model.keras")
    _save_keras(float_model, keras_path)
    summary["files"]["keras"] = keras_path

    val_images, val_labels = splits.val_arrays(limit=10000)
    pick = np.random.default_rng(config.seed).permutation(len(val_images))[:256]
    check_images, check_labels = val_images[pick], val_labels[pick]
    common = dict(validation_data=check_images, validation_labels=check_labels,
                  labels=splits.class_names, validation_source="validation images (labelled)")
    training_card = {"dataset": splits.source, "train_images": splits.train_count,
                     "val_images": splits.val_count, "epochs": config.epochs,
                     "qat_epochs": config.qat_epochs, "label_smoothing": config.label_smoothing,
                     "mixup": config.mixup, "float_val_accuracy": float_acc,
                     "qat_keras_val_accuracy": qat_keras_acc,
                     "accuracy_images": int(len(val_images))}

    def finish(path, key):
        acc = _tflite_accuracy(path, val_images, val_labels)
        summary[f"{key}_val_accuracy"] = acc
        summary["files"][key] = path
        _add_to_card(path, {"training": {**training_card, "tflite_val_accuracy": acc,
                                         "method": key}})
        return acc

    calibration = None
    if config.int8 and (config.qat_epochs == 0 or config.compare_ptq):
        calibration, _ = splits.train_arrays(limit=config.calib_samples)
    if config.int8 and (config.qat_epochs == 0 or config.compare_ptq):
        name = "model_int8.tflite" if config.qat_epochs == 0 else "model_ptq_int8.tflite"
        with console.status("post-training int8 conversion (calibrating)"):
            convert(float_model, os.path.join(run_dir, name), "int8",
                    representative_data=calibration, calibration_source="training images",
                    **common)
        acc = finish(os.path.join(run_dir, name), "ptq_int8")
        console.print(f"post-training int8 (.tflite): validation accuracy {acc:.2f} %{at()}")
    if qat is not None:
        qat_export = qat
        if not single:
            qat_export = quantize_aware(float_model)
            qat_export.set_weights(qat.get_weights())
        path = os.path.join(run_dir, "model_int8.tflite")
        with console.status("QAT int8 conversion"):
            convert(qat_export, path, "int8", **common)
        acc = finish(path, "qat_int8")
        console.print(f"QAT int8 (.tflite): validation accuracy {acc:.2f} %{at()}")
    if not config.int8:
        path = os.path.join(run_dir, "model_float32.tflite")
        with console.status("float32 conversion"):
            convert(float_model, path, "float32", **common)
        finish(path, "float32")
    summary["int8_val_accuracy"] = summary.get("qat_int8_val_accuracy",
                                               summary.get("ptq_int8_val_accuracy"))
    summary["tflite"] = summary["files"].get("qat_int8") or summary["files"].get("ptq_int8") \
        or summary["files"].get("float32")
    atomic_write_json(os.path.join(run_dir, SUMMARY_FILE), summary)
    write_state("done", config.total_epochs)
    _print_summary(summary, console)
    return summary


def _print_summary(summary: dict, console) -> None:
    from rich.table import Table

    table = Table(title=f"{summary['model']} alpha {summary['alpha']:g} "
                        f"{summary['resolution']}px on {summary['dataset']} "
                        f"({summary['val_images']} validation images)")
    table.add_column("model")
    table.add_column("validation top-1", justify="right")
    table.add_row("float (Keras)", f"{summary['float_val_accuracy']:.2f} %")
    if summary.get("qat_keras_val_accuracy") is not None:
        table.add_row("QAT (Keras, fake-quantized)", f"{summary['qat_keras_val_accuracy']:.2f} %")
    if summary.get("ptq_int8_val_accuracy") is not None:
        table.add_row("int8 post-training (.tflite)", f"{summary['ptq_int8_val_accuracy']:.2f} %")
    if summary.get("qat_int8_val_accuracy") is not None:
        table.add_row("int8 QAT (.tflite)", f"{summary['qat_int8_val_accuracy']:.2f} %")
    if summary.get("float32_val_accuracy") is not None:
        table.add_row("float32 (.tflite)", f"{summary['float32_val_accuracy']:.2f} %")
    console.print(table)
    for key, path in summary["files"].items():
        console.print(f"{key}: {path}")
