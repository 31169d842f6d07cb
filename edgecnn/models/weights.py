"""Loading weights: keras.applications weight files (.h5) by layer name, or "imagenet"."""
from __future__ import annotations

import os
import re

from .._keras import keras
from ..errors import EdgecnnError


def _weighted_layers(model) -> list[str]:
    return [layer.name for layer in model.layers if layer.weights]


def _h5_layer_names(path: str) -> set[str]:
    import h5py

    try:
        with h5py.File(path, "r") as f:
            group = f["model_weights"] if "model_weights" in f else f
            names = group.attrs.get("layer_names", [])
            return {n.decode() if isinstance(n, bytes) else str(n) for n in names}
    except OSError as exc:
        raise EdgecnnError(f"cannot read weights file {path}: it is not an HDF5 (.h5) file "
                           f"written by Model.save_weights ({exc})") from None


def load_weights_file(model, path: str) -> None:
    """Load a keras ``.h5`` weights file by layer name; every weighted layer must be found."""
    if not os.path.isfile(path):
        raise EdgecnnError(f"weights file {path} does not exist; give a .h5 file written by "
                           f"Model.save_weights, \"imagenet\", or none")
    in_file = _h5_layer_names(path)
    missing = [n for n in _weighted_layers(model) if n not in in_file]
    if missing:
        shown = ", ".join(missing[:4]) + (f" and {len(missing) - 4} more" if len(missing) > 4 else "")
        raise EdgecnnError(f"weights file {path} has no weights for layers {shown} of "
                           f"{model.name}: it was saved from a different network or alpha")
    try:
        model.load_weights(path, by_name=True)
    except ValueError as exc:
        first = str(exc).strip().splitlines()[0]
        raise EdgecnnError(f"weights file {path} does not fit {model.name} (different alpha, "
                           f"classes or options?): {first}") from None


def keras_cache_dir() -> str:
    """Where keras.applications caches downloaded weights (tf_keras' ``get_file``)."""
    base = os.path.join(os.path.expanduser("~"), ".keras")
    if not os.access(base, os.W_OK):
        base = os.path.join("/tmp", ".keras")
    return os.path.join(base, "models")


def _expected_cache_file(message: str) -> str:
    """The cache path of the file keras tried to download, read off its error message."""
    match = re.search(r"(https?://\S+?\.h5)", message)
    name = match.group(1).rsplit("/", 1)[-1] if match else "<the keras weights file>"
    return os.path.join(keras_cache_dir(), name)


def load_imagenet(model, spec, *, alpha: float, input_size: int, num_classes: int,
                  include_top: bool, options: dict) -> None:
    """Fetch keras.applications' ImageNet weights through its own download and cache, then
    copy them into ``model`` layer by layer (the names are the same)."""
    if spec.keras_app is None:
        raise EdgecnnError(f"{spec.name} has no published ImageNet weights in keras.applications;"
                           f" pass a weights file path or none")
    if include_top and num_classes != 1000:
        raise EdgecnnError(f"ImageNet weights have 1000 classes, got num_classes={num_classes}; "
                           f"use include_top=False or 1000 classes")
    constructor = getattr(keras.applications, spec.keras_app)
    kwargs = spec.keras_kwargs(alpha, **options)
    try:
        reference = constructor(input_shape=(input_size, input_size, 3), weights="imagenet",
                                include_top=include_top, **kwargs)
    except ValueError as exc:
        first = str(exc).strip().splitlines()[0]
        raise EdgecnnError(f"keras.applications has no ImageNet weights for {spec.name} "
                           f"alpha {alpha:g} at {input_size}: {first}") from None
    except Exception as exc:  # network failures surface as many exception types
        reason = str(exc).rsplit(" -- ", 1)[-1].strip() or type(exc).__name__
        raise EdgecnnError(
            f"could not download ImageNet weights for {spec.name} ({reason}); "
            f"offline, put keras.applications' weights file at "
            f"{_expected_cache_file(str(exc))} or pass a weights file path") from None
    copy_weights(reference, model)


def copy_weights(source, target) -> None:
    """Copy weights between two models whose weighted layers share names."""
    by_name = {layer.name: layer for layer in source.layers if layer.weights}
    for layer in target.layers:
        if not layer.weights:
            continue
        if layer.name not in by_name:
            raise EdgecnnError(f"ImageNet model has no layer {layer.name}")
        layer.set_weights(by_name[layer.name].get_weights())
