"""The run context shared by the phases of ``edgecnn train``: the run folder, the
tf.distribute strategy, the data, the console and the state file."""
from __future__ import annotations

import json
import os
import time
import warnings
from dataclasses import dataclass, field

from ...utils.files import atomic_write_json
from ..._keras import tf
from ...errors import EdgecnnError, EdgecnnWarning
from ...train.checkpoints import CsvLog, checkpoint_epoch
from .config import TrainConfig

#: below this many images per replica, a run split across replicas without --sync-bn is warned
SMALL_BN_BATCH = 16

CONFIG_FILE, STATE_FILE, LOG_FILE, SUMMARY_FILE = ("config.json", "state.json", "log.csv",
                                                   "summary.json")


def read_json(path: str) -> dict:
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError) as exc:
        raise EdgecnnError(f"cannot read {path}: {exc}") from None


def console(quiet: bool):
    from rich.console import Console

    return Console(quiet=quiet, highlight=False, soft_wrap=True)


@dataclass
class RunContext:
    """One run: what every phase (float, QAT, export) reads and writes."""

    config: TrainConfig
    run_dir: str
    strategy: object
    strategy_label: str
    chief: bool
    console: object
    resumed: bool
    worker: str = ""           # "worker 1 of 2" in a cluster
    splits: object = None      # data.pipeline.Splits
    size: int = 0              # input side in pixels
    log: CsvLog | None = None
    done: int = 0              # epochs completed before this process started
    clock: float = field(default_factory=time.perf_counter)

    @property
    def classes(self) -> int:
        return self.splits.num_classes

    @property
    def steps(self) -> int:
        return self.splits.steps_per_epoch

    @property
    def single(self) -> bool:
        """One replica without a mirrored strategy: the trained variables can be exported
        directly."""
        return self.strategy.num_replicas_in_sync == 1 and not isinstance(
            self.strategy, (tf.distribute.MirroredStrategy,
                            tf.distribute.MultiWorkerMirroredStrategy))

    def path(self, *parts: str) -> str:
        return os.path.join(self.run_dir, *parts)

    def checkpoints(self, phase: str) -> str:
        return self.path("checkpoints", phase)

    def at(self) -> str:
        """The time since the run (this process) started, for progress lines."""
        return f"  [{time.perf_counter() - self.clock:.0f} s]"

    def write_state(self, phase: str, epochs_done: int) -> None:
        atomic_write_json(self.path(STATE_FILE),
                          {"phase": phase, "epochs_done": epochs_done,
                           "float_epochs": self.config.epochs,
                           "qat_epochs": self.config.qat_epochs})


def start_run(config: TrainConfig | None, run_dir: str | None, resume: bool,
              quiet: bool) -> tuple[RunContext | None, dict | None]:
    """The checked config and run folder (new, or an earlier run's with ``resume``) and the
    strategy. Returns (context, None), or (None, summary) when a resumed run is finished."""
    if resume:
        if run_dir is None or not os.path.isfile(os.path.join(run_dir, CONFIG_FILE)):
            raise EdgecnnError(f"{run_dir} is not a run folder (no {CONFIG_FILE}); give the "
                               f"-o folder of an earlier edgecnn train (with several workers: "
                               f"the same folder, shared, on every machine)")
        config = TrainConfig.from_dict(read_json(os.path.join(run_dir, CONFIG_FILE))).check()
    else:
        if config is None:
            raise EdgecnnError("give a TrainConfig, or resume=True with a run folder")
        config.check()
        run_dir = run_dir or os.path.join(
            "runs", f"{config.name}-{time.strftime('%Y%m%d-%H%M%S')}")
    run_dir = os.path.abspath(run_dir)
    from ...train.strategy import is_chief, make_strategy, strategy_name, worker_label

    strategy = make_strategy(config.strategy)  # first: multiworker configures collectives
    chief = is_chief(strategy)
    if not resume and chief:  # the other workers of a cluster never write the run folder
        if os.path.isfile(os.path.join(run_dir, CONFIG_FILE)):
            raise EdgecnnError(f"{run_dir} already holds a run; continue it with --resume "
                               f"{run_dir} or choose another -o folder")
        os.makedirs(run_dir, exist_ok=True)
    out = console(quiet or not chief)
    summary_path = os.path.join(run_dir, SUMMARY_FILE)
    if resume and os.path.isfile(summary_path):
        state = read_json(os.path.join(run_dir, STATE_FILE))
        if state.get("phase") == "done":
            out.print(f"run {run_dir} is already finished")
            return None, read_json(summary_path)
    return RunContext(config, run_dir, strategy, strategy_name(strategy), chief, out,
                      resume, worker=worker_label(strategy)), None


def load_data(ctx: RunContext) -> None:
    """The data splits (config.json is written once they are known to be usable, with the
    augmentation ``--augment auto`` chose and why), the log trimmed to the last checkpoint."""
    from ...data.pipeline import make_splits
    from ...models.registry import get_model_spec, resolve_input_size

    config = ctx.config
    ctx.size = config.resolution = resolve_input_size(get_model_spec(config.name),
                                                      config.resolution)
    ctx.splits = splits = make_splits(
        ctx.size, data_dir=config.data_dir, dataset=config.dataset,
        batch_size=config.batch_size, val_split=config.val_split, augment=config.augment,
        cache=config.cache, limit=config.limit, seed=config.seed, tfds_dir=config.tfds_dir)
    if not ctx.resumed:
        config.lr = config.base_lr()  # the rate used: --resume keeps it if a default changes
        if ctx.chief:
            atomic_write_json(ctx.path(CONFIG_FILE),
                              {**config.to_dict(), "augmentation": splits.augment})
    ctx.console.print(
        f"data: {splits.source}: {splits.train_count} training / {splits.val_count} "
        f"validation images, {ctx.classes} classes"
        + (f", {splits.skipped} unreadable or non-image file(s) skipped"
           if splits.skipped else ""))
    ctx.console.print(f"augment: {splits.augment['preset']} ({splits.augment['reason']})")
    ctx.console.print(
        f"model: {config.name} alpha {config.alpha:g} {ctx.size}px, "
        f"{config.epochs} float + {config.qat_epochs} QAT epochs of {ctx.steps} steps, "
        f"batch {config.batch_size}, strategy {ctx.strategy_label} "
        f"({ctx.strategy.num_replicas_in_sync} replica(s)); run folder {ctx.run_dir}")
    replicas = int(ctx.strategy.num_replicas_in_sync)
    if replicas > 1 and not config.sync_bn and config.batch_size / replicas < SMALL_BN_BATCH:
        warnings.warn(EdgecnnWarning(
            f"{config.batch_size / replicas:g} images per replica: BatchNorm statistics of so "
            f"few images make this run train differently from one process with batch "
            f"{config.batch_size}; add --sync-bn to take them over the global batch"))
    ctx.done = max(checkpoint_epoch(ctx.checkpoints("float")),
                   checkpoint_epoch(ctx.checkpoints("qat")))
    ctx.log = CsvLog(ctx.path(LOG_FILE))
    if ctx.chief:
        ctx.log.keep_through(ctx.done)
    if ctx.resumed:
        ctx.console.print(
            f"resuming: {ctx.done} of {config.total_epochs} epochs completed"
            + (f", continuing at epoch {ctx.done + 1}" if ctx.done < config.total_epochs
               else ", converting"))
