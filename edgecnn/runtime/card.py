"""The model card: what travels with every .tflite edgecnn writes.

The card is the contract between the converter and everything that runs a model (bench,
eval, predict, the sweep, the Android app): which network at which width and resolution,
what the input tensor is and how raw camera pixels become it, what the output means, and
how the conversion was checked. It is stored twice, as JSON in the .tflite's metadata table
(key ``"edgecnn"``) and as a JSON file beside it.

:class:`ModelCard` is the one type for it (no TensorFlow): the converter builds it,
training extends it (``training``), and every reader goes through :meth:`ModelCard.read`
and :meth:`ModelCard.pixels_to_input`. Records that readers interpret are typed
(:class:`ModelInfo`, :class:`TensorInfo`, :class:`CardPreprocessing`); measurement
records (agreement, accuracy, calibration, ops, folds, versions, training) stay plain
JSON objects. Keys a reader does not know (from a newer edgecnn) are kept and written
back unchanged.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field, fields

import numpy as np

from ..errors import EdgecnnError
from .tflite import CARD_KEY, embed_card_dict, quantize_pixels, read_card_dict
from .verify import parse_card

__all__ = ["ModelCard", "ModelInfo", "TensorInfo", "CardPreprocessing", "PRECISIONS",
           "IO_DTYPES", "CARD_KEY"]

PRECISIONS = ("float32", "float16", "dynamic", "int8")
IO_DTYPES = ("float32", "int8", "uint8")


class _Record:
    """A dataclass read from a JSON object: known keys become fields (missing ones None),
    unknown keys are kept in ``extra`` and written back after the known ones. A field is
    written when it has a value or when the JSON it was read from had it (even null)."""

    @classmethod
    def from_dict(cls, data: dict | None):
        data = dict(data or {})
        known = [f.name for f in fields(cls) if f.name not in ("extra", "path")]
        given = {k: data.pop(k) for k in known if k in data}
        record = cls(**given)
        record.extra = data
        record._given = set(given)
        return record

    def to_dict(self) -> dict:
        given = getattr(self, "_given", set())
        out = {}
        for f in fields(self):
            if f.name in ("extra", "path"):
                continue
            value = getattr(self, f.name)
            if value is not None or f.name in given:
                out[f.name] = value.to_dict() if isinstance(value, _Record) else value
        return {**out, **self.extra}


@dataclass
class ModelInfo(_Record):
    """Which network: the registered name and how it was built (``BuiltConfig``), plus
    anything the converting job adds (e.g. ``batchnorm_statistics``) in ``extra``."""

    name: str | None = None
    alpha: float | None = None
    resolution: int | None = None
    options: dict | None = None
    num_classes: int | None = None
    weights: str | None = None
    extra: dict = field(default_factory=dict)


@dataclass
class TensorInfo(_Record):
    """The model's input or output tensor as the app sees it."""

    shape: list | None = None
    dtype: str | None = None
    scale: float | None = None
    zero_point: int | None = None
    range: list | None = None
    meaning: str | None = None
    normalization_folded: dict | None = None
    extra: dict = field(default_factory=dict)

    @property
    def classes(self) -> int | None:
        """The last dimension (of an output: the number of classes)."""
        return int(self.shape[-1]) if self.shape else None


@dataclass
class CardPreprocessing(_Record):
    """How raw RGB pixels (0-255) become what the network computes on. Every model edgecnn
    converts normalizes inside its graph (``inside_model``); ``mean``/``std`` say what that
    normalization is (per channel, in 0-255 terms). How a photo becomes the input square:
    the shorter side resized (``resize``, a filter) so that the centered input keeps
    ``crop_fraction`` of it (0.875: resize to 256, crop 224); cards without it: 1.0."""

    inside_model: bool | None = None
    input_range: list | None = None
    mean: list | None = None
    std: list | None = None
    description: str | None = None
    crop: float | None = None
    crop_padding: int | None = None
    crop_fraction: float | None = None
    resize: str | None = None
    extra: dict = field(default_factory=dict)

    def reading(self) -> tuple[float, str]:
        """(crop fraction, resize filter) to read photos with, checked."""
        from ..data.folder import check_reading

        return check_reading(self.crop_fraction if self.crop_fraction is not None else 1.0,
                             self.resize or "bilinear")


@dataclass
class ModelCard(_Record):
    """One converted model's card (see the module docstring). ``path`` is where the .tflite
    was written; it is not part of the JSON."""

    precision: str | None = None
    io_dtype: str | None = None
    model: ModelInfo = field(default_factory=ModelInfo)
    params: int | None = None
    macs: int | None = None
    input: TensorInfo = field(default_factory=TensorInfo)
    output: TensorInfo = field(default_factory=TensorInfo)
    preprocessing: CardPreprocessing = field(default_factory=CardPreprocessing)
    size_bytes: int | None = None
    ops: dict | None = None
    all_int8: bool | None = None
    float_ops: dict | None = None
    xnnpack_partitions: int | None = None
    ops_outside_xnnpack: dict | None = None
    xnnpack_refusals: list | None = None   # ops outside the delegate, each with the reason
    agreement: dict | None = None          # top1_agreement, mean_abs_prob_error, samples, data
    accuracy: dict | None = None           # keras_top1, tflite_top1, samples (with labels)
    conversion_seconds: float | None = None
    qat: bool | None = None
    calibration: dict | None = None
    labels: list | None = None
    versions: dict | None = None
    folds: dict | None = None              # what converters.folds changed in the graph
    warnings: list | None = None
    training: dict | None = None           # added by edgecnn train: data, epochs, accuracy
    extra: dict = field(default_factory=dict)
    path: str | None = field(default=None, compare=False)

    # --- reading --------------------------------------------------------------------------

    @classmethod
    def from_dict(cls, data: dict | None) -> "ModelCard":
        data = dict(data or {})
        data.pop("path", None)
        card = super().from_dict(data)
        card.model = ModelInfo.from_dict(card.model if isinstance(card.model, dict) else None)
        card.input = TensorInfo.from_dict(card.input if isinstance(card.input, dict) else None)
        card.output = TensorInfo.from_dict(card.output if isinstance(card.output, dict)
                                           else None)
        card.preprocessing = CardPreprocessing.from_dict(
            card.preprocessing if isinstance(card.preprocessing, dict) else None)
        return card

    @classmethod
    def read(cls, source, name: str | None = None) -> "ModelCard | None":
        """The card of a .tflite (path or bytes; from its metadata, verified first) or of a
        card JSON file (``.json``); None when a .tflite has none. A damaged file or card is
        a one-line EdgecnnError."""
        if isinstance(source, (str, os.PathLike)) and os.fspath(source).endswith(".json"):
            return cls.from_dict(_read_json_card(os.fspath(source), name))
        data = read_card_dict(source, name)
        return None if data is None else cls.from_dict(data)

    # --- writing --------------------------------------------------------------------------

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent)

    def embed(self, model_bytes: bytes) -> bytes:
        """``model_bytes`` with this card in its metadata; ``size_bytes`` is set to the size
        of the result (the card holds the file's size, which the card changes: iterate)."""
        final = model_bytes
        for _ in range(5):
            self.size_bytes = len(final)
            final = embed_card_dict(model_bytes, self.to_dict())
            if len(final) == self.size_bytes:
                break
        return final

    # --- using ----------------------------------------------------------------------------

    @property
    def name(self) -> str | None:
        return self.model.name

    def class_names(self, num_outputs: int, name: str = "the model") -> list[str] | None:
        """The class names the card records (``labels``), checked against the outputs."""
        if not self.labels:
            return None
        if len(self.labels) != num_outputs:
            raise EdgecnnError(f"{name}: the model card has {len(self.labels)} labels but the "
                               f"model has {num_outputs} outputs; re-convert it with edgecnn "
                               f"convert --data")
        return [str(label) for label in self.labels]

    def check_input(self, name: str = "this .tflite") -> None:
        """Refuse a card whose input this module cannot feed (see ``pixels_to_input``)."""
        pre = self.preprocessing
        if pre.inside_model:
            return
        mean = np.asarray(pre.mean or [], np.float32)
        std = np.asarray(pre.std or [], np.float32)
        if mean.size not in (1, 3) or std.size not in (1, 3) or not (std > 0).all():
            raise EdgecnnError(f"{name}: the model card gives no preprocessing (mean and std, "
                               f"one or three each, std > 0); re-convert the model with "
                               f"edgecnn convert")
        if self.input.dtype != "float32" and not (self.input.scale or 0) > 0:
            raise EdgecnnError(f"{name}: the model card says the integer input is normalized "
                               f"outside the model but gives no input scale; re-convert "
                               f"with edgecnn convert")

    def pixels_to_input(self, pixels, name: str = "this .tflite") -> np.ndarray:
        """Raw RGB pixels (N, H, W, 3), 0-255, as the model's input tensor.

        An edgecnn model normalizes inside its graph (``preprocessing.inside_model``): a
        float input takes the pixel values, a uint8 input the pixel itself, an int8 input
        the pixel minus 128; the input's scale and zero point then say what the network sees
        (scale 1, or the normalization itself when it was folded into the quantization). A
        card that says the normalization is outside gives ``(pixel - mean) / std``, as
        float or, for an integer input (a model from elsewhere), quantized with the input's
        scale and zero point (TFLite Metadata's convention).
        """
        self.check_input(name)
        x = np.asarray(pixels, np.float32)
        if not self.preprocessing.inside_model:
            std = np.asarray(self.preprocessing.std, np.float32)
            real = x / std - np.asarray(self.preprocessing.mean, np.float32) / std
            if self.input.dtype == "float32":
                return real
            info = np.iinfo(np.dtype(self.input.dtype))
            q = np.round(real / np.float32(self.input.scale)) + int(self.input.zero_point or 0)
            return np.clip(q, info.min, info.max).astype(self.input.dtype)
        return quantize_pixels(x, self.input.dtype)

    @property
    def scores_are_probabilities(self) -> bool:
        """Whether the output already holds probabilities (a model ending in SOFTMAX)."""
        return str(self.output.meaning or "").startswith("probabilities")

    @property
    def fit(self) -> str:
        """How a photo becomes the input square: "shorter-center-crop" (every edgecnn card)
        or "stretch" (a model from elsewhere read with --resize stretch)."""
        return str(self.preprocessing.extra.get("fit") or "shorter-center-crop")

    def describe_input(self) -> str:
        """One line on how pixels become the input (for reports)."""
        return str(self.preprocessing.description or "inside the model")


def _read_json_card(path: str, name: str | None) -> dict:
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except OSError as exc:
        raise EdgecnnError(f"cannot read {path}: {exc.strerror or exc}") from None
    return parse_card(raw, name or path)
