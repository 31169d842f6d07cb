"""``edgecnn train``: float training, QAT and int8 conversion in a resumable run folder."""
from __future__ import annotations

import json
import os
import sys
import time

import click

from ..errors import EdgecnnError
from .options import (WEIGHTS_HELP, alpha_resolution_options, family_flags, family_options,
                      json_option, weights_choice)


@click.command()
@click.argument("name", required=False)
@click.option("--data", "data_dir", default=None, metavar="DIR",
              help="Image folder: one sub-folder of jpg/png/bmp/gif images per class.")
@click.option("--dataset", default=None, metavar="NAME",
              help="digits (built-in, offline: scikit-learn's handwritten digits, upscaled) or "
                   "a TensorFlow Datasets name already on disk (needs tensorflow-datasets).")
@click.option("--tfds-dir", default=None, metavar="DIR",
              help="data_dir of the TensorFlow Datasets copy [default: ~/tensorflow_datasets].")
@alpha_resolution_options
@family_flags
@click.option("--epochs", type=click.IntRange(min=1), default=10, show_default=True,
              help="Float training epochs.")
@click.option("--batch-size", "-b", type=click.IntRange(min=1), default=32, show_default=True,
              help="Global batch size (split across replicas).")
@click.option("--lr", type=float, default=None,
              help="Peak learning rate [default: adam 5e-3 (1e-4 when fine-tuning --weights), "
                   "sgd 0.1 x batch/256 (a tenth of that when fine-tuning)].")
@click.option("--optimizer", type=click.Choice(["adam", "sgd"]), default="adam",
              show_default=True, help="Adam, or SGD with Nesterov momentum 0.9.")
@click.option("--weight-decay", type=float, default=0.0, show_default=True,
              help="Decoupled weight decay (not on biases and BatchNorm).")
@click.option("--warmup-epochs", type=float, default=1.0, show_default=True,
              help="Linear learning-rate warmup from 0 over these epochs.")
@click.option("--cosine/--no-cosine", default=True, show_default=True,
              help="Cosine learning-rate decay to 0 after the warmup (else constant).")
@click.option("--label-smoothing", type=float, default=0.0, show_default=True,
              help="Label smoothing epsilon (0.1 is typical).")
@click.option("--mixup", type=float, default=0.0, show_default=True,
              help="Mixup Beta(a, a) parameter for float training (0: off; 0.2 is typical).")
@weights_choice("none", WEIGHTS_HELP + " With other classes than the weights': their "
                "backbone and a new classifier.")
@click.option("--dropout", type=float, default=None,
              help="Dropout before the classifier [default: the family's].")
@click.option("--qat-epochs", type=click.IntRange(min=0), default=0, show_default=True,
              help="Quantization-aware epochs after float training (implies --int8).")
@click.option("--qat-lr", type=float, default=None,
              help="Peak learning rate of the QAT epochs [default: --lr / 100].")
@click.option("--int8", is_flag=True,
              help="Convert to an integer-only int8 .tflite (QAT with --qat-epochs, else "
                   "post-training calibration on training images).")
@click.option("--compare-ptq", is_flag=True,
              help="With --qat-epochs: also convert the float model post-training and report "
                   "both int8 accuracies.")
@click.option("--calib-samples", type=click.IntRange(min=1), default=200, show_default=True,
              help="Training images for post-training int8 calibration.")
@click.option("--val-split", type=float, default=0.2, show_default=True,
              help="Validation fraction (class-stratified).")
@click.option("--augment", type=click.Choice(["auto", "standard", "light", "none"]),
              default="auto", show_default=True,
              help="standard: random resized crop 8-100 % and flips; light: crops >= 60 %, "
                   "no flip; auto: light for images under 64 px or under 100 training images "
                   "per class, standard otherwise.")
@click.option("--limit", type=click.IntRange(min=2), default=None,
              help="Use at most this many images (a random, class-mixed subset).")
@click.option("--seed", type=int, default=0, show_default=True,
              help="Seeds the train/validation split, --limit's subset and the shuffling; "
                   "not the initial weights, the random crops and flips or mixup, so two runs "
                   "differ by a few points on small data.")
@click.option("--strategy", type=click.Choice(["auto", "one", "mirrored", "multiworker"]),
              default="auto", show_default=True,
              help="tf.distribute: one device, MirroredStrategy over local GPUs (or logical "
                   "CPUs), MultiWorkerMirroredStrategy from TF_CONFIG; auto picks.")
@click.option("--sync-bn", is_flag=True,
              help="With several replicas (GPUs, workers): BatchNorm statistics over the "
                   "global batch, one all-reduce per layer and step, so the run trains as one "
                   "process would; worth it below ~16 images per replica.")
@click.option("--no-cache", is_flag=True, help="Decode images every epoch instead of caching.")
@click.option("--output", "-o", "run_dir", default=None, metavar="RUN_DIR",
              help="Run folder [default: runs/NAME-YYYYmmdd-HHMMSS].")
@click.option("--resume", "resume_dir", default=None, metavar="RUN_DIR",
              help="Continue the run in RUN_DIR from its last checkpoint (its settings are "
                   "read from RUN_DIR/config.json).")
@json_option("Print the summary as JSON.")
def train(name, data_dir, dataset, tfds_dir, alpha, resolution, minimalistic, extra, epochs,
          batch_size, lr, optimizer, weight_decay, warmup_epochs, cosine, label_smoothing,
          mixup, weights, dropout, qat_epochs, qat_lr, int8, compare_ptq, calib_samples,
          val_split, augment, limit, seed, strategy, sync_bn, no_cache, run_dir, resume_dir,
          as_json):
    """Train NAME on --data DIR or --dataset NAME, then QAT and convert to a .tflite.

    The run folder gets checkpoints, log.csv, TensorBoard events, model.keras (raw pixels
    in, logits out), the .tflite with its model card (float and int8 validation accuracy)
    and summary.json. Ctrl-C or a crash loses no completed epoch: continue with --resume.
    """
    from ..jobs.train import TrainConfig
    from ..jobs.train import train as run_training

    if resume_dir is not None:
        if name is not None or data_dir is not None or dataset is not None:
            raise EdgecnnError("--resume RUN_DIR continues a run with its own settings; drop "
                               "NAME, --data and --dataset")
        run_dir = resume_dir
        config = None
    else:
        if name is None:
            raise EdgecnnError("give a model NAME (see edgecnn list), or --resume RUN_DIR")
        config = TrainConfig(
            name, alpha=alpha, resolution=resolution,
            options=family_options(minimalistic, extra), data_dir=data_dir, dataset=dataset,
            tfds_dir=tfds_dir, epochs=epochs, batch_size=batch_size, lr=lr,
            optimizer=optimizer, weight_decay=weight_decay, warmup_epochs=warmup_epochs,
            cosine=cosine, label_smoothing=label_smoothing, mixup=mixup, weights=weights,
            dropout=dropout, qat_epochs=qat_epochs, qat_lr=qat_lr, int8=int8,
            compare_ptq=compare_ptq, calib_samples=calib_samples, val_split=val_split,
            augment=augment, limit=limit, seed=seed, strategy=strategy, sync_bn=sync_bn,
            cache=not no_cache).check()
        run_dir = run_dir or os.path.join("runs", f"{name}-{time.strftime('%Y%m%d-%H%M%S')}")
    try:
        summary = run_training(config, run_dir, resume=resume_dir is not None, quiet=as_json)
    except KeyboardInterrupt:
        click.echo(f"\ninterrupted: completed epochs are checkpointed; continue with "
                   f"edgecnn train --resume {run_dir}", err=True)
        sys.exit(130)
    except Exception as exc:
        if not _lost_worker(exc):
            raise
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        click.echo(f"error: a worker of the cluster stopped ({first[:160]}); completed "
                   f"epochs are checkpointed: restart every worker with edgecnn train "
                   f"--resume {run_dir}", err=True)
        sys.exit(1)
    if as_json:
        click.echo(json.dumps(summary, indent=2))
    elif summary.get("worker") and not summary["files"]:  # a cluster's non-chief worker
        steps = summary["steps"]
        click.echo(f"{summary['worker']}: {steps['float']} float + {steps['qat']} QAT steps "
                   f"done; the chief writes the run folder")


def _lost_worker(exc: BaseException) -> bool:
    """True for the errors MultiWorkerMirroredStrategy raises when another worker of the
    cluster is gone (its collectives aborted or timed out)."""
    if not os.environ.get("TF_CONFIG"):
        return False
    from .._keras import tf

    return isinstance(exc, (tf.errors.UnavailableError, tf.errors.CancelledError,
                            tf.errors.DeadlineExceededError, tf.errors.AbortedError))
