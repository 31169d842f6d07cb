"""Loading weights: keras.applications weight files (.h5) by layer name, or "imagenet"."""
from __future__ import annotations

import os
import re

from .._keras import keras
from ..errors import EdgecnnError


def _read_h5(path: str) -> list[tuple[str, list]]:
    """(layer name, weight arrays) in file order, from a keras weights file (.h5)."""
    import h5py

    try:
        with h5py.File(path, "r") as f:
            group = f["model_weights"] if "model_weights" in f else f
            entries = []
            for raw in group.attrs.get("layer_names", []):
                name = raw.decode() if isinstance(raw, bytes) else str(raw)
                layer = group[name]
                names = [n.decode() if isinstance(n, bytes) else str(n)
                         for n in layer.attrs.get("weight_names", [])]
                if names:
                    entries.append((name, [layer[n][()] for n in names]))
            return entries
    except OSError as exc:
        raise EdgecnnError(f"cannot read weights file {path}: it is not an HDF5 (.h5) file "
                           f"written by Model.save_weights ({exc})") from None


def _shapes(arrays) -> list[tuple]:
    return [tuple(a.shape) for a in arrays]


def assign_weights(model, entries: list[tuple[str, list]], source: str) -> None:
    """Give every weighted layer of ``model`` its weights from ``entries`` (name, arrays).

    Layers are matched by name; layers whose name the source lacks (keras leaves a few
    layers unnamed, e.g. Xception's shortcut convolutions, so their names depend on the
    session that saved them) take the source's unmatched layers in order, when the weight
    shapes agree. Every weighted layer must be found and fit, or nothing is assigned.
    """
    weighted = [layer for layer in model.layers if layer.weights]
    ours = {layer.name for layer in weighted}
    by_name = dict(entries)
    spare = [(name, arrays) for name, arrays in entries if name not in ours]
    plan = []
    for layer in weighted:
        expected = _shapes(layer.get_weights())
        if layer.name in by_name:
            arrays = by_name[layer.name]
            if _shapes(arrays) != expected:
                raise EdgecnnError(
                    f"weights from {source} do not fit {model.name} (different alpha, classes "
                    f"or options?): layer {layer.name} has shapes {_shapes(arrays)} there, "
                    f"{expected} here")
            plan.append((layer, arrays))
            continue
        while spare and _shapes(spare[0][1]) != expected:
            spare.pop(0)
        if not spare:
            missing = [layer.name for layer in weighted if layer.name not in by_name]
            shown = ", ".join(missing[:4]) + (f" and {len(missing) - 4} more"
                                              if len(missing) > 4 else "")
            raise EdgecnnError(f"{source} has no weights for layers {shown} of {model.name}: "
                               f"it was saved from a different network or alpha")
        plan.append((layer, spare.pop(0)[1]))
    for layer, arrays in plan:
        layer.set_weights(arrays)


def load_weights_file(model, path: str) -> None:
    """Load a keras ``.h5`` weights file into ``model`` (see :func:`assign_weights`)."""
    if not os.path.isfile(path):
        raise EdgecnnError(f"weights file {path} does not exist; give a .h5 file written by "
                           f"Model.save_weights, \"imagenet\", or none")
    assign_weights(model, _read_h5(path), f"weights file {path}")


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
    # keras has ImageNet files for some input sizes only (MobileNet V1/V2: 128-224; most
    # others: the default size). Convolution weights do not depend on the input size, so
    # when keras refuses ours, its default-size weights are used instead.
    sizes = [input_size] + ([spec.default_input] if input_size != spec.default_input else [])
    for attempt, size in enumerate(sizes):
        try:
            reference = constructor(input_shape=(size, size, 3), weights="imagenet",
                                    include_top=include_top, **kwargs)
            break
        except ValueError as exc:
            if attempt + 1 < len(sizes):
                continue
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
    assign_weights(target, [(layer.name, layer.get_weights()) for layer in source.layers
                            if layer.weights], f"keras.applications' {source.name}")
