"""The model registry: every network edgecnn can build, by name.

Each entry declares its default input size, the preprocessing its inputs expect, and the
family options it accepts. Registering a name twice is an error.

The registry knows no family: each family module registers its models when it is imported,
and ``edgecnn.models`` (its ``__init__``) imports every family, so any import of
``edgecnn.models`` or of one of its modules fills the registry (timm's layering:
``registry`` <- ``blocks`` <- ``builder`` <- families <- ``__init__``).
"""
from __future__ import annotations

import difflib
import json
import math
from dataclasses import dataclass, field
from typing import Any, Callable

from ..errors import EdgecnnError


@dataclass(frozen=True)
class Preprocessing:
    """What a network expects of its input: RGB pixels in ``input_range`` (a camera frame
    gives 0-255), normalized per channel as ``(pixel - mean) / std``; and how a photo
    becomes the input square for evaluation: the shorter side resized (``resize``:
    "bilinear" or "bicubic") so that a centered square of ``crop`` of it is the input
    (torchvision's and timm's ``crop_pct``; 0.875 = resize to 256, crop 224), or, with
    ``crop_padding`` P, a crop of size / (size + P) (the TensorFlow EfficientNet reference's
    ``CROP_PADDING = 32``). Neither: the whole shorter side (crop 1.0, edgecnn's training
    pipeline)."""

    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    input_range: tuple[float, float] = (0.0, 255.0)
    description: str = ""
    crop: float | None = None
    crop_padding: int | None = None
    resize: str = "bilinear"

    def apply(self, pixels):
        """Normalize an array of RGB pixels (last axis = channels) to float32."""
        import numpy as np

        x = np.asarray(pixels, dtype=np.float32)
        std = np.asarray(self.std, np.float32)
        # x / std - mean / std: for the MobileNets' 127.5 this is keras' x / 127.5 - 1 op by op
        return x / std - np.asarray(self.mean, np.float32) / std

    def crop_fraction(self, size: int) -> float:
        """The share of the resized image's shorter side that the ``size`` input keeps."""
        if self.crop is not None:
            return float(self.crop)
        if self.crop_padding is not None:
            return round(size / (size + self.crop_padding), 6)
        return 1.0

    def without_crop(self) -> "Preprocessing":
        """The same normalization, read as edgecnn's training pipeline reads (crop 1.0)."""
        from dataclasses import replace

        return replace(self, crop=None, crop_padding=None, resize="bilinear")

    def output_range(self) -> tuple[float, float]:
        lo, hi = self.input_range
        return (min((lo - m) / s for m, s in zip(self.mean, self.std)),
                max((hi - m) / s for m, s in zip(self.mean, self.std)))

    def as_dict(self) -> dict:
        out = {"input_range": list(self.input_range), "mean": list(self.mean),
               "std": list(self.std), "description": self.description, "resize": self.resize}
        if self.crop is not None:
            out["crop"] = self.crop
        if self.crop_padding is not None:
            out["crop_padding"] = self.crop_padding
        return out

    @classmethod
    def from_dict(cls, data: dict) -> "Preprocessing":
        return cls(tuple(data["mean"]), tuple(data["std"]),
                   tuple(data.get("input_range") or (0.0, 255.0)), data.get("description", ""),
                   data.get("crop"), data.get("crop_padding"), data.get("resize") or "bilinear")

    def with_eval(self, crop: float | None = None, crop_padding: int | None = None,
                  resize: str = "bilinear") -> "Preprocessing":
        from dataclasses import replace

        return replace(self, crop=crop, crop_padding=crop_padding, resize=resize)


#: Inputs scaled to [-1, 1]: (x - 127.5) / 127.5 (the TF-slim / keras MobileNets).
MINUS_ONE_TO_ONE = Preprocessing((127.5,) * 3, (127.5,) * 3,
                                 description="RGB 0-255 scaled to [-1, 1]: (x - 127.5) / 127.5")


#: ImageNet mean/std normalization in 0-255 terms (torchvision, keras' EfficientNet).
IMAGENET_MEAN_STD = Preprocessing(
    (0.485 * 255, 0.456 * 255, 0.406 * 255), (0.229 * 255, 0.224 * 255, 0.225 * 255),
    description="RGB 0-255 normalized with the ImageNet mean and std: (x - mean) / std")

# A family's preprocessing has no evaluation crop: random weights, and weights trained by
# edgecnn's pipeline, read the whole shorter side. ImageNet weights say how their publisher
# evaluated them (the catalog's entries, the importer's layouts):
#: TF-slim's ``preprocess_for_eval`` (keras.applications' MobileNets and Xception) and
#: torchvision's ``ImageClassification`` preset: resize 256, center crop 224, bilinear.
CENTER_CROP_0875 = {"crop": 0.875, "resize": "bilinear"}

#: The TensorFlow EfficientNet reference's evaluation (preprocessing.py,
#: ``_decode_and_center_crop``: a center crop of size / (size + 32), bicubic resize).
TF_EFFICIENTNET_EVAL = {"crop_padding": 32, "resize": "bicubic"}


@dataclass(frozen=True)
class ModelSpec:
    """A registered network.

    ``build(alpha=, input_size=, num_classes=, include_top=, dropout=, **options)``
    returns the tf_keras Model; ``describe(alpha=, **options)`` returns its stage table
    (plain data). ``keras_app`` names the keras.applications constructor with the same
    weights, when there is one; ``keras_kwargs(alpha, **options)`` maps our arguments to it.
    """

    name: str
    family: str
    build: Callable[..., Any]
    describe: Callable[..., dict]
    default_input: int
    preprocessing: Preprocessing
    paper: str
    min_input: int = 32
    default_dropout: float = 0.0
    options: dict = field(default_factory=dict)  # option name -> default value
    keras_app: str | None = None
    keras_kwargs: Callable[..., dict] | None = None
    paddings: tuple = ("tf", "torch")  # the ``padding`` option's values it builds exactly


@dataclass(frozen=True)
class BuiltConfig:
    """How a model was made by ``create_model``: the one record of Keras-side metadata,
    attached as ``model.edgecnn``, carried by ``deployable`` and ``quantize_aware``, and
    written into the file by ``edgecnn.models.io.save_model`` (``to_json``/``from_json``),
    so a loaded model knows its family, multipliers and preprocessing.

    ``params``/``macs``: the float network's (a QAT model's own count includes quantizer
    state); ``unquantized``: layers tfmot left without quantization (QAT models).
    """

    name: str
    alpha: float
    resolution: int
    options: tuple  # sorted (key, value) pairs
    num_classes: int
    include_top: bool
    weights: str | None
    preprocessing: Preprocessing
    params: int | None = None
    macs: int | None = None
    unquantized: tuple = ()

    def as_dict(self) -> dict:
        """The model card's ``model`` record."""
        return {"name": self.name, "alpha": self.alpha, "resolution": self.resolution,
                "options": dict(self.options), "num_classes": self.num_classes,
                "weights": self.weights}

    def to_json(self) -> str:
        return json.dumps({**self.as_dict(), "include_top": self.include_top,
                           "preprocessing": self.preprocessing.as_dict(), "params": self.params,
                           "macs": self.macs, "unquantized": list(self.unquantized)})

    @classmethod
    def from_json(cls, text: str) -> "BuiltConfig":
        d = json.loads(text)
        return cls(d["name"], float(d["alpha"]), int(d["resolution"]),
                   tuple(sorted((d.get("options") or {}).items())), int(d["num_classes"]),
                   bool(d.get("include_top", True)), d.get("weights"),
                   Preprocessing.from_dict(d["preprocessing"]), d.get("params"), d.get("macs"),
                   tuple(d.get("unquantized") or ()))


_REGISTRY: dict[str, ModelSpec] = {}


def register_model(spec: ModelSpec) -> ModelSpec:
    if spec.name in _REGISTRY:
        raise ValueError(f"model {spec.name!r} is already registered")
    _REGISTRY[spec.name] = spec
    return spec


def list_models() -> list[str]:
    """Names of every registered model, sorted."""
    return sorted(_REGISTRY)


def get_model_spec(name: str) -> ModelSpec:
    """The spec of ``name``; an unknown name raises with the closest names."""
    try:
        return _REGISTRY[name]
    except KeyError:
        close = difflib.get_close_matches(str(name), _REGISTRY, n=3, cutoff=0.5)
        hint = f"did you mean {', '.join(close)}?" if close else \
            f"known models: {', '.join(sorted(_REGISTRY))}"
        raise EdgecnnError(f"unknown model {name!r}; {hint}") from None


def check_alpha(alpha) -> float:
    try:
        value = float(alpha)
    except (TypeError, ValueError):
        raise EdgecnnError(f"alpha must be a number > 0, got {alpha!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise EdgecnnError(f"alpha must be a number > 0 (e.g. 0.75), got {alpha!r}")
    return value


def resolve_input_size(spec: ModelSpec, input_size=None, rho=None) -> int:
    """Input side in pixels from ``input_size`` (pixels) or ``rho`` (the paper's
    resolution multiplier, a fraction of the default input); give one or neither."""
    if input_size is not None and rho is not None:
        raise EdgecnnError("give input_size (pixels) or rho (fraction of the default input), "
                           "not both")
    if rho is not None:
        try:
            rho = float(rho)
        except (TypeError, ValueError):
            raise EdgecnnError(f"rho must be a number > 0, got {rho!r}") from None
        if not math.isfinite(rho) or rho <= 0:
            raise EdgecnnError(f"rho must be a number > 0 (e.g. 0.714 for 160 of 224), got {rho}")
        size = int(round(rho * spec.default_input))
    elif input_size is None:
        size = spec.default_input
    else:
        if isinstance(input_size, bool) or not isinstance(input_size, (int, float)) or \
                input_size != int(input_size):
            raise EdgecnnError(f"input_size must be a whole number of pixels, got {input_size!r}")
        size = int(input_size)
    if size < spec.min_input:
        raise EdgecnnError(
            f"input {size}x{size} is too small for {spec.name}: its final feature map must be "
            f"at least 1x1; use an input of at least {spec.min_input} pixels")
    return size
