"""Import a published checkpoint into an edgecnn model, exactly.

``plan_import(path, model_name)`` reads the file (:mod:`.readers`, nothing executed),
recognizes its layout (:mod:`.layouts`) and says which model options the weights need
(PyTorch's padding, ShuffleNet V2's layout); the model is built with them, then
``plan.apply(model)`` pairs the upstream modules, in registration order, with the model's
weighted layers, in creation order, converts each tensor and assigns them all, or nothing
when any pair disagrees. Conversions:

- convolutions OIHW -> HWIO, depthwise (C * m, 1, kh, kw) -> (kh, kw, C, m), linear
  (out, in) -> (in, out) (or a 1x1 conv's (1, 1, in, out)); a missing bias is zero;
  TensorFlow's kernels (layouts with ``weight_format="tf"``) are keras's already;
- BatchNorm: gamma, beta, moving mean and variance, with the upstream's epsilon folded
  exactly into gamma when edgecnn's layer uses another
  (``gamma * sqrt(var + eps_ours) / sqrt(var + eps_theirs)``);
- the first conv's input channels reversed for weights trained on BGR input.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, replace

import numpy as np

from ...errors import EdgecnnError
from .layouts import BY_NAME, LAYOUTS, Layout
from .readers import Checkpoint, read_checkpoint

_UNIT = re.compile(r"^(stage\d+_block\d+)_(.+)$")


@dataclass
class Module:
    """One upstream module: its key prefix, kind ("conv", "linear", "bn") and tensors."""

    name: str
    kind: str
    params: dict


@dataclass
class ImportPlan:
    """What importing ``checkpoint`` into ``model_name`` takes; see the module docstring."""

    checkpoint: Checkpoint
    layout: Layout
    model_name: str
    modules: list

    @property
    def options(self) -> dict:
        """Model options the weights need (pass them to ``create_model``)."""
        return dict(self.layout.options)

    @property
    def preprocessing(self):
        """What the weights expect of the input; a keras file: its family's."""
        if self.layout in (KERAS, TFLITE):
            from ..registry import get_model_spec

            return get_model_spec(self.model_name).preprocessing
        return self.layout.preprocessing_for(self.model_name)

    @property
    def source(self) -> str:
        return f"{self.layout.name}:{os.path.basename(self.checkpoint.path)}"

    @property
    def num_classes(self) -> int | None:
        """The checkpoint classifier's class count (its last linear module's outputs)."""
        if self.layout is TFLITE:
            from .tflite_weights import num_classes

            return num_classes(self.checkpoint.ops)
        last = self.modules[-1] if self.modules else None
        return _outputs(last, self.layout) if last and last.kind == "linear" else None

    def apply(self, model) -> list[dict]:
        """Assign the weights to ``model`` (built with :attr:`options`); returns one report
        row per layer (upstream module, layer, shapes, conversion). A classifier whose
        class count differs from the checkpoint's is left as built (fine-tuning)."""
        if self.layout is KERAS:
            return _apply_keras(self.checkpoint, model)
        if self.layout is TFLITE:
            from .tflite_weights import apply_tflite

            rows = apply_tflite(self.checkpoint.ops, model, self.checkpoint.path)
            self._record(model)
            return rows
        ours = _weighted_layers(model, self.layout)
        modules = list(self.modules)
        skipped = _drop_classifier(modules, ours, model, self.layout)
        if len(modules) != len(ours):
            raise EdgecnnError(
                f"{self.checkpoint.path} ({self.layout.name}) has {len(modules)} weighted "
                f"modules for {len(ours)} layers of {model.name}: a different network, depth "
                f"or options; check --model, --alpha and the family options")
        plan, rows = [], []
        for index, (module, layer) in enumerate(zip(modules, ours)):
            arrays, how = _convert(module, layer, self.layout, first=index == 0)
            expected = [tuple(w.shape) for w in layer.get_weights()]
            if [a.shape for a in arrays] != expected:
                raise EdgecnnError(
                    f"{self.checkpoint.path} does not fit {model.name}: {module.name} gives "
                    f"{[a.shape for a in arrays]} for layer {layer.name}, which has {expected} "
                    f"(different alpha, classes or options?)")
            plan.append((layer, arrays))
            rows.append({"upstream": module.name, "keys": sorted(module.params),
                         "layer": layer.name, "shapes": [list(a.shape) for a in arrays],
                         "conversion": how})
        for layer, arrays in plan:
            layer.set_weights(arrays)
        rows += [{"upstream": m.name, "keys": sorted(m.params), "layer": None, "shapes": [],
                  "conversion": "not loaded: the model has its own classifier"}
                 for m in skipped]
        self._record(model)
        return rows

    def _record(self, model) -> None:
        config = getattr(model, "edgecnn", None)
        if config is not None:
            model.edgecnn = replace(config, weights=self.source,
                                    preprocessing=self.preprocessing)


def plan_import(source, model_name: str, layout: str | None = None) -> ImportPlan:
    """Read ``source`` (a path or a :class:`Checkpoint`) and plan its import into
    ``model_name``; ``layout`` forces a layout (its name), else it is recognized."""
    checkpoint = source if isinstance(source, Checkpoint) else read_checkpoint(str(source))
    if checkpoint.format == "keras-h5":
        return ImportPlan(checkpoint, KERAS, model_name, [])
    if checkpoint.format == "tflite":
        return ImportPlan(checkpoint, TFLITE, model_name, [])
    chosen = _choose_layout(checkpoint, layout)
    if not chosen.fits(model_name):
        raise EdgecnnError(
            f"{checkpoint.path} holds {chosen.upstream}'s {chosen.name} weights, which fit "
            f"{', '.join(m.rstrip('*') + ('...' if m.endswith('*') else '') for m in chosen.models)}"
            f", not {model_name}")
    return ImportPlan(checkpoint, chosen, model_name, _modules(checkpoint, chosen))


#: keras weights files (.h5): layers matched by name (:func:`edgecnn.models.weights.assign_weights`).
KERAS = Layout("keras", "keras (Model.save_weights, keras.applications)", ("*",), (), (), 1e-3)
#: a classifier .tflite: weighted ops in graph order, BatchNorm folded (:mod:`.tflite_weights`).
TFLITE = Layout("tflite", "a .tflite's folded weights", ("*",), (), (), 1e-3)


def _apply_keras(checkpoint: Checkpoint, model) -> list[dict]:
    from ..weights import assign_weights

    layers: dict[str, list] = {}
    for key, value in checkpoint.tensors.items():
        layers.setdefault(key.split("/", 1)[0], []).append(np.asarray(value))
    assign_weights(model, list(layers.items()), checkpoint.path)
    return [{"upstream": layer.name, "keys": [w.name for w in layer.weights],
             "layer": layer.name, "shapes": [list(w.shape) for w in layer.weights],
             "conversion": "by layer name"} for layer in model.layers if layer.weights]


def _choose_layout(checkpoint: Checkpoint, name: str | None) -> Layout:
    if name is not None:
        if name not in BY_NAME:
            raise EdgecnnError(f"unknown layout {name!r}; known: {', '.join(BY_NAME)}")
        layout = BY_NAME[name]
        if not layout.matches(checkpoint.tensors):
            raise EdgecnnError(f"{checkpoint.path} does not have {name}'s keys "
                               f"({', '.join(layout.signature)})")
        return layout
    found = [layout for layout in LAYOUTS if layout.matches(checkpoint.tensors)]
    if not found:
        sample = ", ".join(list(checkpoint.tensors)[:4])
        raise EdgecnnError(
            f"{checkpoint.path}: unknown checkpoint layout (keys {sample}, ...); edgecnn reads "
            f"{', '.join(BY_NAME)} (pass --layout to choose one)")
    if len(found) == 1:
        return found[0]
    named = f"{os.path.basename(checkpoint.path)} {_architecture_beside(checkpoint.path)}"
    hinted = [layout for layout in found if layout.hint and layout.hint in named]
    if hinted:
        return hinted[0]
    if any(layout.hint for layout in found):  # same keys, different padding and epsilon
        choices = " or ".join(layout.name for layout in found)
        raise EdgecnnError(
            f"{checkpoint.path} has the keys of {choices}, which compute differently (padding, "
            f"BatchNorm epsilon): keep timm's file name (tf_... for its TensorFlow ports) or "
            f"its config.json beside the file, or name the layout: edgecnn weights import "
            f"{checkpoint.path} --layout ...")
    return found[0]


def _architecture_beside(path: str) -> str:
    """The ``architecture`` of the Hugging Face hub's config.json beside a checkpoint (timm
    names it there, e.g. tf_efficientnet_lite0), or ""."""
    import json

    config = os.path.join(os.path.dirname(os.path.abspath(path)), "config.json")
    try:
        with open(config) as f:
            return str(json.load(f).get("architecture", ""))
    except (OSError, ValueError, AttributeError):
        return ""


def _modules(checkpoint: Checkpoint, layout: Layout) -> list[Module]:
    """The checkpoint's weighted modules in the upstream's registration order."""
    grouped: dict[str, dict] = {}
    renamed = dict(layout.param_names)
    for key, value in checkpoint.tensors.items():
        prefix, _, param = layout.local(key).rpartition(layout.sep)
        grouped.setdefault(prefix.replace(layout.sep, "."), {})[
            renamed.get(param, param)] = np.asarray(value)
    modules = []
    for name in sorted(grouped, key=lambda n: _sort_key(n, grouped, layout)):
        params = grouped[name]
        if "running_mean" in params:
            kind = "bn"
        elif "weight" in params and params["weight"].ndim == 4:
            kind = "conv"
        elif "weight" in params and params["weight"].ndim == 2:
            kind = "linear"
        else:
            raise EdgecnnError(f"{checkpoint.path}: cannot tell what module {name} is (tensors "
                               f"{', '.join(sorted(params))})")
        modules.append(Module(name, kind, params))
    return modules


def _sort_key(name: str, grouped: dict, layout: Layout) -> tuple:
    """Position of module ``name`` in registration order: numbered parts by number, named
    parts by the layout's order for their siblings."""
    parts = name.split(".")
    key = []
    for depth, part in enumerate(parts):
        named, number = _split_number(part, layout)
        if not named:
            key.append((0, number))
            continue
        parent = ".".join(parts[:depth])
        siblings = _named_children(parent, grouped, layout)
        order = next((o for o in layout.order if siblings <= set(o)), None)
        if order is None:
            unknown = sorted(siblings - set().union(*map(set, layout.order)))
            raise EdgecnnError(f"checkpoint module {name!r} is not part of the {layout.name} "
                               f"layout (unknown: {', '.join(unknown) or parent})")
        key.append((1, order.index(named), number))
    return tuple(key)


def _split_number(part: str, layout: Layout) -> tuple[str, int]:
    """``("", n)`` for a numbered child, ``(prefix, n)`` for one named by a layout's numbered
    prefix (``blocks_12``), else ``(part, 0)``."""
    if part.isdigit():
        return "", int(part)
    for prefix in layout.numbered:
        if part.startswith(prefix) and part[len(prefix):].isdigit():
            return prefix, int(part[len(prefix):])
    return part, 0


def _named_children(parent: str, grouped: dict, layout: Layout) -> frozenset:
    prefix = parent + "." if parent else ""
    depth = parent.count(".") + 1 if parent else 0
    children = (_split_number(n.split(".")[depth], layout)[0] for n in grouped
                if n.startswith(prefix))
    return frozenset(c for c in children if c)


def _weighted_layers(model, layout: Layout) -> list:
    """The model's weighted layers in creation order: keras lists a functional model's
    layers by depth, which interleaves the two branches of a ShuffleNet V2 stride-2 unit;
    there the layout's role order puts them back as the upstream registers them."""
    layers = [layer for layer in model.layers if layer.weights]
    if not layout.unit_roles:
        return layers
    rank = {role: i for i, role in enumerate(layout.unit_roles)}
    ordered, unit, pending = [], None, []
    for layer in layers + [None]:
        match = _UNIT.match(layer.name) if layer is not None else None
        name = match.group(1) if match else None
        if name != unit or name is None:
            ordered += sorted(pending, key=lambda l: rank.get(_UNIT.match(l.name).group(2), 99))
            pending, unit = [], name
        if layer is None:
            break
        if name is None:
            ordered.append(layer)
        else:
            pending.append(layer)
    return ordered


def _outputs(module: Module, layout: Layout) -> int:
    """A linear module's output count: (out, in) in PyTorch, (in, out) in TensorFlow."""
    shape = module.params["weight"].shape
    return int(shape[-1] if layout.weight_format == "tf" else shape[0])


def _drop_classifier(modules: list, ours: list, model, layout: Layout) -> list:
    """Remove the checkpoint's classifier where the model has none (``include_top=False``)
    or one of another class count; returns the removed modules."""
    skipped = []
    while len(modules) > len(ours) and modules and modules[-1].kind == "linear":
        skipped.insert(0, modules.pop())
    if ours and modules and len(modules) == len(ours) and modules[-1].kind == "linear":
        last, module = ours[-1], modules[-1]
        out = _outputs(module, layout)
        if last.get_weights()[0].shape[-1] != out:
            skipped.insert(0, modules.pop())
            ours.pop()
    return skipped


def _convert(module: Module, layer, layout: Layout, *, first: bool) -> tuple[list, str]:
    kind = type(layer).__name__
    p = module.params
    if kind == "BatchNormalization":
        if module.kind != "bn":
            raise _mismatch(module, layer)
        return _batchnorm(p, layout.bn_eps, layer.epsilon)
    if module.kind == "bn":
        raise _mismatch(module, layer)
    w = p["weight"].astype(np.float32)
    if layout.weight_format == "tf":
        kernel, how = _tf_kernel(module, layer, w, kind)
    elif kind == "DepthwiseConv2D":
        if w.ndim != 4 or w.shape[1] != 1:
            raise _mismatch(module, layer)
        channels = layer.get_weights()[0].shape[2]
        kernel = w.reshape(channels, -1, *w.shape[2:]).transpose(2, 3, 0, 1)
        how = "depthwise (C*m,1,kh,kw) -> (kh,kw,C,m)"
    elif kind == "Conv2D":
        kernel = w.transpose(2, 3, 1, 0) if w.ndim == 4 else w.T[None, None]
        how = "OIHW -> HWIO" if w.ndim == 4 else "linear (out,in) -> 1x1 conv (1,1,in,out)"
        if first and layout.bgr:
            kernel = kernel[:, :, ::-1, :]
            how += ", input channels BGR -> RGB"
    elif kind == "Dense":
        if w.ndim != 2:
            raise _mismatch(module, layer)
        kernel, how = w.T, "(out,in) -> (in,out)"
    else:
        raise _mismatch(module, layer)
    arrays = [np.ascontiguousarray(kernel)]
    if getattr(layer, "use_bias", False):
        bias = p.get("bias")
        arrays.append(np.zeros(kernel.shape[-1] if kind != "DepthwiseConv2D" else
                               kernel.shape[2] * kernel.shape[3], np.float32)
                      if bias is None else bias.astype(np.float32))
        if bias is None:
            how += ", zero bias (none upstream)"
    return arrays, how


def _tf_kernel(module: Module, layer, w: np.ndarray, kind: str) -> tuple[np.ndarray, str]:
    """A TensorFlow kernel for ``layer``: keras's own layout, so only a dense kernel feeding
    a 1x1 conv is reshaped."""
    if kind in ("DepthwiseConv2D", "Conv2D") and w.ndim == 4:
        return w, "as stored (TensorFlow HWIO)" if kind == "Conv2D" else \
            "as stored (TensorFlow depthwise (kh,kw,C,m))"
    if kind == "Conv2D" and w.ndim == 2:
        return w[None, None], "dense (in,out) -> 1x1 conv (1,1,in,out)"
    if kind == "Dense" and w.ndim == 2:
        return w, "as stored (TensorFlow dense (in,out))"
    raise _mismatch(module, layer)


def _batchnorm(p: dict, eps_theirs: float, eps_ours: float) -> tuple[list, str]:
    gamma = p.get("weight")
    channels = p["running_mean"].shape[0]
    gamma = np.ones(channels, np.float32) if gamma is None else gamma.astype(np.float64)
    beta = p.get("bias")
    beta = np.zeros(channels, np.float32) if beta is None else beta
    mean = p["running_mean"].astype(np.float32)
    var = p["running_var"].astype(np.float64)
    how = "gamma, beta, mean, variance"
    if not np.isclose(eps_theirs, eps_ours, rtol=1e-6, atol=0):
        gamma = gamma * np.sqrt(var + eps_ours) / np.sqrt(var + eps_theirs)
        how += f"; epsilon {eps_theirs:g} -> {eps_ours:g} folded into gamma"
    return ([np.asarray(gamma, np.float32), np.asarray(beta, np.float32), mean,
             np.asarray(var, np.float32)], how)


def _mismatch(module: Module, layer) -> EdgecnnError:
    return EdgecnnError(f"checkpoint module {module.name} ({module.kind}) does not pair with "
                        f"layer {layer.name} ({type(layer).__name__}): the checkpoint is for "
                        f"another network or options")
