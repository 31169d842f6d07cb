"""Choosing a tf.distribute strategy: ``auto | one | mirrored | multiworker``."""
from __future__ import annotations

import json
import os

from .._keras import tf
from ..errors import EdgecnnError

STRATEGIES = ("auto", "one", "mirrored", "multiworker")


def _tf_config() -> dict:
    raw = os.environ.get("TF_CONFIG")
    if not raw:
        return {}
    try:
        config = json.loads(raw)
    except ValueError:
        raise EdgecnnError("TF_CONFIG is not valid JSON; see the README's multiworker example "
                           "({\"cluster\": {\"worker\": [...]}, \"task\": {...}})") from None
    if not isinstance(config, dict):
        raise EdgecnnError("TF_CONFIG must be a JSON object with \"cluster\" and \"task\"")
    return config


def cluster_size() -> int:
    cluster = _tf_config().get("cluster", {})
    return sum(len(v) for k, v in cluster.items() if k in ("chief", "worker"))


def make_strategy(name: str = "auto"):
    """A tf.distribute strategy. one: the default (single-device) strategy; mirrored:
    MirroredStrategy over every local GPU, or every logical CPU device when there is no GPU;
    multiworker: MultiWorkerMirroredStrategy from TF_CONFIG; auto: multiworker when
    TF_CONFIG names more than one worker, mirrored with several GPUs, else one.

    Create it before any other TensorFlow work (MultiWorkerMirroredStrategy must configure
    the collective ops at start-up).
    """
    if name not in STRATEGIES:
        raise EdgecnnError(f"strategy must be one of {', '.join(STRATEGIES)}, got {name!r}")
    if name == "auto":
        if cluster_size() > 1:
            name = "multiworker"
        elif len(tf.config.list_physical_devices("GPU")) > 1:
            name = "mirrored"
        else:
            name = "one"
    if name == "one":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        gpus = tf.config.list_logical_devices("GPU")
        devices = [d.name for d in (gpus or tf.config.list_logical_devices("CPU"))]
        return tf.distribute.MirroredStrategy(devices)
    config = _tf_config()
    if not config.get("cluster") or not config.get("task"):
        raise EdgecnnError("--strategy multiworker needs TF_CONFIG with \"cluster\" (the "
                           "workers' host:port) and \"task\" (this worker's type and index); "
                           "see the README's two-machine example")
    return tf.distribute.MultiWorkerMirroredStrategy()


def strategy_name(strategy) -> str:
    if isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return "MultiWorkerMirroredStrategy"  # its class is CollectiveAllReduceStrategy
    return type(strategy).__name__.replace("_DefaultDistributionStrategy", "default")


def is_chief(strategy) -> bool:
    """True on the worker that writes the run folder (the only worker, or the chief, or
    worker 0 when the cluster has no chief)."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.task_type:
        return True
    if resolver.task_type == "chief":
        return True
    has_chief = "chief" in resolver.cluster_spec().as_dict()
    return resolver.task_type == "worker" and resolver.task_id == 0 and not has_chief


def worker_label(strategy) -> str:
    """This process in the cluster: ``"worker 1 of 2"``, or ``""`` outside a cluster."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.task_type:
        return ""
    size = sum(len(v) for k, v in resolver.cluster_spec().as_dict().items()
               if k in ("chief", "worker"))
    return f"{resolver.task_type} {resolver.task_id} of {size}"


def agreed(strategy, value: int, what: str) -> int:
    """``value`` when every worker of a cluster holds the same one; an error on every worker
    otherwise (instead of a hang in the first collective that would follow)."""
    if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return value
    x = tf.constant(float(value))

    @tf.function  # eager collectives are slow and TensorFlow says so
    def mean_and_square():
        return strategy.reduce(tf.distribute.ReduceOp.MEAN,
                               strategy.run(lambda: tf.stack([x, x * x])), axis=None)

    both = mean_and_square().numpy()
    if both[1] - both[0] ** 2 > 1e-6:
        raise EdgecnnError(
            f"the workers restored different {what} ({worker_label(strategy)} has {value}): "
            f"every worker must read the chief's checkpoints; put the run folder on storage "
            f"shared by the machines (e.g. NFS) and restart every worker with --resume RUN_DIR")
    return value
