"""``TrainConfig``: every setting of a training run (saved as the run's config.json, read
back by ``--resume``), checked before anything runs."""
from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field, fields

from ...errors import EdgecnnError
from ...models.registry import check_alpha, get_model_spec
from ...train.optim import OPTIMIZERS

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
    sync_bn: bool = False               # BatchNorm statistics over the global batch
    cache: bool = True
    bn_momentum: float | None = None    # None: min(family's, 1 - 10 / total steps), >= 0.9

    def check(self) -> "TrainConfig":
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

