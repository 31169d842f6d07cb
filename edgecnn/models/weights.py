"""Loading keras weights files (.h5, as keras.applications publishes them) by layer name.

Upstream checkpoints of other formats go through :mod:`edgecnn.models.pretrained`."""
from __future__ import annotations

import os

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


def assign_weights(model, entries: list[tuple[str, list]], source: str, *,
                   new_classifier: bool = False) -> None:
    """Give every weighted layer of ``model`` its weights from ``entries`` (name, arrays).

    Layers are matched by name; layers whose name the source lacks (keras leaves a few
    layers unnamed, e.g. Xception's shortcut convolutions, so their names depend on the
    session that saved them) take the source's unmatched layers in order, when the weight
    shapes agree. Every weighted layer must be found and fit, or nothing is assigned.
    ``new_classifier``: the last weighted layer (the classifier, of another class count
    than the source's) keeps its initialization.
    """
    weighted = [layer for layer in model.layers if layer.weights]
    if new_classifier:
        weighted = weighted[:-1]
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


def load_weights_file(model, path: str, *, new_classifier: bool = False) -> None:
    """Load a keras ``.h5`` weights file into ``model`` (see :func:`assign_weights`)."""
    if not os.path.isfile(path):
        raise EdgecnnError(f"weights file {path} does not exist; give a .h5 file written by "
                           f"Model.save_weights, \"imagenet\", or none")
    assign_weights(model, _read_h5(path), f"weights file {path}",
                   new_classifier=new_classifier)
