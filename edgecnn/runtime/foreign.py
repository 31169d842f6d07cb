"""Image classifiers edgecnn did not convert (TF Hub, Kaggle, Coral, MediaPipe, the TFLite
hosted models): what their card would say, read from the file where it says it and assumed
where it does not, stated in one line.

A .tflite from elsewhere may carry TFLite Metadata (``TFLITE_METADATA``, the
``metadata_schema.fbs`` flatbuffer of tflite-support): the input's normalization (mean and
std in pixel units), its value range, and the label file, packed into a zip archive appended
to the model. ``foreign_card`` builds a :class:`~edgecnn.runtime.card.ModelCard` from that
metadata, the user's ``--labels`` / ``--preprocess`` / ``--resize`` options and the graph
itself (input quantization; whether the model ends in SOFTMAX), so that predict, eval and
bench read and feed it as they do edgecnn's own models. numpy and the standard library only.
"""
from __future__ import annotations

import io
import os
import zipfile
from dataclasses import dataclass

import numpy as np

from ..errors import EdgecnnError
from .verify import _Invalid, _Reader

METADATA_NAME = "TFLITE_METADATA"

#: The parts of tflite-support's metadata_schema.fbs (schema 1.x, file identifier "M001")
#: that are read, in field-id order (a union takes two ids: its type, then its table).
METADATA_SCHEMA = {
    "ModelMetadata": (("name", "str"), ("description", "str"), ("version", "str"),
                      ("subgraph_metadata", "[SubGraphMetadata]"), ("author", "str"),
                      ("license", "str"), ("associated_files", "[AssociatedFile]"),
                      ("min_parser_version", "str")),
    "SubGraphMetadata": (("name", "str"), ("description", "str"),
                         ("input_tensor_metadata", "[TensorMetadata]"),
                         ("output_tensor_metadata", "[TensorMetadata]"),
                         ("associated_files", "[AssociatedFile]")),
    "TensorMetadata": (("name", "str"), ("description", "str"), ("dimension_names", "[I]"),
                       ("content", ""), ("process_units", "[ProcessUnit]"), ("stats", "Stats"),
                       ("associated_files", "[AssociatedFile]")),
    "ProcessUnit": (("options_type", "B"), ("options", {1: "NormalizationOptions"})),
    "NormalizationOptions": (("mean", "[f]"), ("std", "[f]")),
    "Stats": (("max", "[f]"), ("min", "[f]")),
    "AssociatedFile": (("name", "str"), ("description", "str"), ("type", "b"),
                       ("locale", "str")),
    "": (),
}
TENSOR_AXIS_LABELS = 2  # AssociatedFileType

#: --preprocess: how raw RGB pixels (0-255) become the input's real values, as (mean, std)
#: in pixel units: (pixel - mean) / std.
PREPROCESS = {"raw": (0.0, 1.0), "zero-to-one": (0.0, 255.0),
              "minus-one-to-one": (127.5, 127.5)}
PREPROCESS_CHOICES = (*PREPROCESS, "mean-std")
#: --resize: the shorter side scaled and the centered square cut (edgecnn's, torchvision's
#: evaluation), or the whole photo scaled to the square (TFLite's Task Library, MediaPipe).
FITS = ("shorter-center-crop", "stretch")


@dataclass
class ForeignOptions:
    """What the user said about a model without a card (None: not said)."""

    labels: str | None = None
    preprocess: str | None = None
    mean: str | None = None
    std: str | None = None
    resize: str | None = None
    crop: float | None = None

    def given(self) -> bool:
        return any(v is not None for v in vars(self).values())


# --- TFLite Metadata -----------------------------------------------------------------------

def read_metadata(data: bytes, model: dict, name: str = "the model",
                  labels: bool = True) -> dict | None:
    """The TFLite Metadata of a verified model (``verify.verify_model``'s dict) as plain
    values: name, description, version, author, license; ``input``: normalization
    ``mean``/``std`` (pixel units) and ``min``/``max`` stats of the first input;
    ``labels``: the first output's label file (its lines), read from the zip appended to the
    model (``labels=False``: only its name). None when there is none; a damaged one is a
    one-line EdgecnnError."""
    entry = next((m for m in model["metadata"] or [] if m["name"] == METADATA_NAME), None)
    if entry is None:
        return None
    buffer = model["buffers"][entry["buffer"]]
    start, size = (buffer["offset"], buffer["size"]) if buffer["offset"] > 1 else \
        buffer["data"] or (0, 0)
    raw = bytes(data[start:start + size])
    try:
        if len(raw) < 8 or raw[4:8] != b"M001":
            raise _Invalid("no M001 identifier")
        reader = _Reader(raw, METADATA_SCHEMA)
        meta = reader.table(reader.deref(0, "the root offset"), "ModelMetadata",
                            "the metadata")
    except _Invalid as exc:
        raise EdgecnnError(f"{name}: its TFLite metadata ({METADATA_NAME}) is damaged "
                           f"({exc}); give --labels and --preprocess to run it without") from None
    out = {k: meta[k] for k in ("name", "description", "version", "author", "license")
           if meta[k]}
    graphs = meta["subgraph_metadata"] or []
    inputs = (graphs[0]["input_tensor_metadata"] or []) if graphs else []
    outputs = (graphs[0]["output_tensor_metadata"] or []) if graphs else []
    if inputs:
        out["input"] = _tensor_reading(inputs[0])
    files = [f for f in (outputs[0]["associated_files"] or []) if f["type"] ==
             TENSOR_AXIS_LABELS] if outputs else []
    if files:
        label_file = files[0]["name"]
        out["labels_file"] = label_file
        if labels:
            out["labels"] = _associated_lines(data, label_file, name)
    return out


def _tensor_reading(tensor: dict) -> dict:
    reading = {}
    for unit in tensor["process_units"] or []:
        options = unit["options"]
        if unit["options_type"] == 1 and options:
            reading["mean"] = [float(x) for x in options["mean"] or ()]
            reading["std"] = [float(x) for x in options["std"] or ()]
            break
    stats = tensor["stats"]
    if stats and stats["min"] and stats["max"]:
        reading["min"] = [float(x) for x in stats["min"]]
        reading["max"] = [float(x) for x in stats["max"]]
    return reading


def _associated_lines(data: bytes, file_name: str, name: str) -> list[str]:
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            text = archive.read(file_name).decode("utf-8")
    except (zipfile.BadZipFile, KeyError, OSError, UnicodeDecodeError, EOFError) as exc:
        raise EdgecnnError(f"{name}: its metadata names the label file {file_name}, which "
                           f"cannot be read from the model ({exc}); give --labels FILE") from None
    return _label_lines(text)


def _label_lines(text: str) -> list[str]:
    lines = [line.strip() for line in text.splitlines()]
    while lines and not lines[-1]:
        lines.pop()
    return lines


# --- labels -------------------------------------------------------------------------------

def read_label_file(path: str) -> list[str]:
    """A class-name file: one name per line, in output order (the whole line is the name)."""
    if not os.path.isfile(path):
        raise EdgecnnError(f"--labels {path}: no such file; give a text file with one class "
                           f"name per line, in output order")
    try:
        with open(path, encoding="utf-8") as f:
            lines = _label_lines(f.read())
    except (OSError, UnicodeDecodeError) as exc:
        raise EdgecnnError(f"cannot read the label file {path}: {exc}; give UTF-8 text with "
                           f"one class name per line") from None
    if not lines:
        raise EdgecnnError(f"the label file {path} is empty; give one class name per line")
    return lines


def fit_labels(labels: list[str], num_outputs: int, source: str) -> tuple[list[str], str]:
    """``labels`` matched to ``num_outputs``: equal, or 1000 names for a 1001-output model
    whose output 0 is ImageNet's "background" (the TF-slim models), which is prepended."""
    if len(labels) == num_outputs:
        return labels, ""
    if len(labels) == num_outputs - 1 and num_outputs == 1001:
        return ["background", *labels], " (\"background\" prepended as output 0)"
    raise EdgecnnError(f"{source} has {len(labels)} labels but the model has {num_outputs} "
                       f"outputs; give a label file with one line per output")


# --- the card -------------------------------------------------------------------------------

def _values(text: str, what: str) -> list[float]:
    try:
        values = [float(x) for x in str(text).split(",")]
    except ValueError:
        values = []
    if len(values) not in (1, 3):
        raise EdgecnnError(f"--{what} {text}: give one number or three comma-separated ones "
                           f"(per RGB channel, in pixel units 0-255), e.g. 127.5")
    if what == "std" and not all(v > 0 for v in values):
        raise EdgecnnError(f"--std {text}: every std must be > 0")
    return values


def _normalization(options: ForeignOptions, metadata: dict | None, dtype: str):
    """(mean, std, where from) or None: the input's real values are the pixels through
    the integer input's own quantization."""
    if options.preprocess == "mean-std" or (options.preprocess is None and
                                            (options.mean or options.std)):
        if options.mean is None or options.std is None:
            raise EdgecnnError("--preprocess mean-std needs both --mean and --std (pixel "
                               "units, e.g. --mean 123.675,116.28,103.53 --std "
                               "58.395,57.12,57.375 for ImageNet's)")
        return _values(options.mean, "mean"), _values(options.std, "std"), \
            "--preprocess mean-std"
    if options.mean is not None or options.std is not None:
        raise EdgecnnError(f"--mean and --std go with --preprocess mean-std, not "
                           f"{options.preprocess}")
    if options.preprocess is not None:
        mean, std = PREPROCESS[options.preprocess]
        return [mean], [std], f"--preprocess {options.preprocess}"
    reading = (metadata or {}).get("input") or {}
    if reading.get("mean") and reading.get("std") and \
            len(reading["mean"]) in (1, 3) and len(reading["std"]) in (1, 3) and \
            all(s > 0 for s in reading["std"]):
        return reading["mean"], reading["std"], "the model's TFLite metadata"
    if dtype in ("uint8", "int8"):
        return None
    mean, std = PREPROCESS["minus-one-to-one"]
    return [mean], [std], "assumed (float input, no metadata: give --preprocess)"


def _describe(mean: list, std: list) -> str:
    for key, (m, s) in PREPROCESS.items():
        if all(abs(x - m) < 1e-3 for x in mean) and all(abs(x - s) < 1e-3 for x in std):
            return {"raw": "pixels 0-255", "zero-to-one": "pixels / 255 (0 to 1)",
                    "minus-one-to-one": "(pixels - 127.5) / 127.5 (-1 to 1)"}[key]
    return (f"(pixels - [{', '.join(f'{x:g}' for x in mean)}]) / "
            f"[{', '.join(f'{x:g}' for x in std)}]")


#: Ops between a SOFTMAX and the output that keep its values probabilities.
PASS_THROUGH = ("DEQUANTIZE", "QUANTIZE", "RESHAPE", "SQUEEZE")


def ends_in_softmax(interpreter) -> bool:
    """Whether the first output is a SOFTMAX's (through DEQUANTIZE, QUANTIZE, RESHAPE or
    SQUEEZE): the scores are already probabilities."""
    producer = {int(t): op for op in interpreter._get_ops_details() for t in op["outputs"]}
    tensor = int(interpreter.get_output_details()[0]["index"])
    for _ in range(len(producer) + 1):
        op = producer.get(tensor)
        if op is None:
            return False
        if op["op_name"] == "SOFTMAX":
            return True
        if op["op_name"] not in PASS_THROUGH or not len(op["inputs"]):
            return False
        tensor = int(op["inputs"][0])
    return False


def foreign_card(path: str, data: bytes, model: dict, interpreter,
                 options: ForeignOptions | None = None):
    """A :class:`~edgecnn.runtime.card.ModelCard` for a .tflite without one, and the one
    line saying what was read from the file and what was assumed (``card.extra["assumed"]``
    holds it too)."""
    from .card import CardPreprocessing, ModelCard, TensorInfo
    from .tflite import input_spec

    options = options or ForeignOptions()
    metadata = read_metadata(data, model, path, labels=options.labels is None)
    spec = input_spec(interpreter)
    out = interpreter.get_output_details()[0]
    num_outputs = int(np.prod(out["shape"][1:]))
    said = []
    labels = None
    if options.labels is not None:
        labels, how = fit_labels(read_label_file(options.labels), num_outputs, options.labels)
        said.append(f"labels from {os.path.basename(options.labels)}{how}")
    elif metadata and metadata.get("labels"):
        labels, how = fit_labels(metadata["labels"], num_outputs,
                                 f"{path}'s label file {metadata['labels_file']}")
        said.append(f"labels from the model's {metadata['labels_file']}{how}")
    else:
        said.append("no labels (class indices; give --labels FILE)")
    norm = _normalization(options, metadata, spec["dtype"])
    pre = CardPreprocessing()
    if norm is None:
        pre.inside_model = True
        low = spec["scale"] * ((0 if spec["dtype"] == "uint8" else -128) - spec["zero_point"])
        high = spec["scale"] * ((255 if spec["dtype"] == "uint8" else 127) -
                                spec["zero_point"])
        pre.description = (f"pixels as the {spec['dtype']} input (its quantization reads "
                           f"them as {low:.4g} to {high:.4g})")
        said.append(f"input: {pre.description}, assumed (give --preprocess to normalize)")
    else:
        mean, std, source = norm
        pre.inside_model, pre.mean, pre.std = False, mean, std
        pre.description = _describe(mean, std)
        said.append(f"input: {pre.description}"
                    + (f" then quantized to {spec['dtype']}" if spec["dtype"] != "float32"
                       else "") + f" ({source})")
    fit = options.resize or "shorter-center-crop"
    if fit not in FITS:
        raise EdgecnnError(f"--resize {fit}: give {' or '.join(FITS)}")
    pre.crop_fraction = 1.0 if options.crop is None else options.crop
    pre.resize = "bilinear"
    pre.extra["fit"] = fit
    said.append(f"photos: {'stretched to the input' if fit == 'stretch' else 'shorter side resized, center crop %g' % pre.crop_fraction}")
    probabilities = ends_in_softmax(interpreter)
    meaning = ("probabilities (the model ends in SOFTMAX)" if probabilities else
               "logits: apply softmax for probabilities")
    card = ModelCard(
        precision=None, io_dtype=spec["dtype"],
        input=TensorInfo(shape=spec["shape"], dtype=spec["dtype"], scale=spec["scale"],
                         zero_point=spec["zero_point"]),
        output=TensorInfo(shape=[int(s) for s in out["shape"]],
                          dtype=np.dtype(out["dtype"]).name, meaning=meaning),
        preprocessing=pre, labels=labels, size_bytes=len(data))
    card.extra["foreign"] = True
    card.extra["assumed"] = "no edgecnn model card: " + "; ".join(said)
    if metadata:
        card.extra["tflite_metadata"] = {k: v for k, v in metadata.items() if k != "labels"}
    card.path = path
    return card


def describe_foreign(path: str, options: ForeignOptions | None = None,
                     threads: int = 1) -> dict:
    """What ``edgecnn info`` says about a .tflite without a card: the graph's analysis
    (``tflite.analyze``: ops, int8 coverage, XNNPACK partitions), its input and output
    tensors with their quantization, its TFLite metadata, and how predict and eval would
    read it (``assumed``)."""
    from . import tflite as rt

    data, model = rt._read_verified(path)
    report = {"card": None, **rt.analyze(data, threads=threads, name=path)}
    interpreter = rt.load_interpreter(data, threads=threads, name=path, checked=True)
    tensors = []
    for role, details in (("input", interpreter.get_input_details()),
                          ("output", interpreter.get_output_details())):
        for d in details:
            scale, zero_point = d["quantization"]
            tensors.append({"role": role, "name": d["name"],
                            "shape": [int(s) for s in d["shape"]],
                            "dtype": np.dtype(d["dtype"]).name,
                            "scale": float(scale) if scale else None,
                            "zero_point": int(zero_point) if scale else None})
    report["tensors"] = tensors
    metadata = read_metadata(data, model, path, labels=False)
    report["tflite_metadata"] = metadata
    try:
        card = foreign_card(path, data, model, interpreter, options)
    except EdgecnnError as exc:  # e.g. labels that do not fit: said, not fatal for info
        report["reading"] = {"error": str(exc)}
        return report
    labels = card.labels or []
    report["reading"] = {"assumed": card.extra["assumed"],
                         "input": card.preprocessing.description,
                         "output": card.output.meaning, "fit": card.fit,
                         "crop_fraction": card.preprocessing.crop_fraction,
                         "labels": len(labels), "first_labels": labels[:3]}
    return report
