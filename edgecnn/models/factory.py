"""``create_model``: name + multipliers -> a tf_keras Model."""
from __future__ import annotations

import warnings
from dataclasses import replace

from ..errors import EdgecnnError, EdgecnnWarning
from .blocks import PADDINGS, padding_mode
from .registry import BuiltConfig, check_alpha, get_model_spec, resolve_input_size


def _check_options(spec, family_options: dict) -> dict:
    unknown = sorted(set(family_options) - set(spec.options) - {"padding"})
    if unknown:
        valid = ", ".join(sorted(spec.options) + ["padding"])
        raise EdgecnnError(f"{spec.name} has no option {', '.join(unknown)}; its options: {valid}")
    return {**spec.options, **family_options}


def _check_padding(spec, options: dict) -> str:
    """The ``padding`` option every family takes (see ``blocks.PADDINGS``): "tf" (default)
    or "torch", for weights trained with PyTorch's symmetric padding."""
    padding = options.pop("padding", "tf")
    if padding not in PADDINGS:
        raise EdgecnnError(f"padding must be one of {', '.join(PADDINGS)} (TensorFlow's 'same' or "
                           f"PyTorch's symmetric padding), got {padding!r}")
    if padding not in spec.paddings:
        raise EdgecnnError(f"{spec.name} is built with {' or '.join(spec.paddings)} padding only "
                           f"(its published weights use it), got padding={padding!r}")
    return padding


def create_model(name: str, *, alpha: float = 1.0, input_size: int | None = None,
                 rho: float | None = None, num_classes: int = 1000, include_top: bool = True,
                 weights: str | None = "auto", dropout: float | None = None, **family_options):
    """Build a registered network as a tf_keras functional Model.

    alpha: width multiplier; input_size: input side in pixels, or rho: the paper's
    resolution multiplier (fraction of the default input); num_classes and include_top:
    the classifier; dropout: before the classifier (None: the family's default);
    family_options: e.g. ``minimalistic=True``, ``padding="torch"``.

    weights: ``"auto"`` (default): the configuration's published ImageNet weights
    (``edgecnn weights list``), downloaded once into the cache, or random weights with one
    warning (:class:`~edgecnn.errors.EdgecnnWarning`) when there are none or they cannot be
    had; ``"imagenet"``: the same, but failing instead; ``None``/``"none"``: random; or a
    path: a keras ``.h5`` (loaded by layer name) or an upstream checkpoint (PyTorch
    ``.pth``/``.pt``/``.pth.tar``, ``.safetensors``, a TF checkpoint), whose layout is
    recognized and whose needs (padding, ShuffleNet V2 layout) set the options. A classifier
    of another class count than the weights' keeps its random initialization.
    ``model.edgecnn.weights`` records the source ("random" when auto found none) and
    ``model.edgecnn.preprocessing`` what the weights expect of the input.
    """
    spec = get_model_spec(name)
    alpha = check_alpha(alpha)
    size = resolve_input_size(spec, input_size, rho)
    options = _check_options(spec, family_options)
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise EdgecnnError(f"num_classes must be a whole number >= 1, got {num_classes!r}")
    if dropout is None:
        dropout = spec.default_dropout
    elif not 0.0 <= float(dropout) < 1.0:
        raise EdgecnnError(f"dropout must be in [0, 1), got {dropout!r}")
    source = _weights_source(spec, weights, alpha, size, options, num_classes, include_top)
    options = _with_needs(spec, options, family_options, source)
    padding = _check_padding(spec, options)
    with padding_mode(padding):
        model = spec.build(alpha=alpha, input_size=size, num_classes=num_classes,
                           include_top=include_top, dropout=float(dropout), **options)
    if padding != "tf":  # recorded only when not the default, as it changes the graph
        options["padding"] = padding
    model.edgecnn = BuiltConfig(name, alpha, size, tuple(sorted(options.items())), num_classes,
                                include_top, source.label, spec.preprocessing)
    source.load(model)
    return model


class _Source:
    """Where a model's weights come from: nothing (random), a keras .h5 loaded by layer
    name, or an upstream checkpoint's import plan. ``needs``: the model options the weights
    were trained with; ``preprocessing``: what they expect of the input (None: the
    family's); ``convert_to``: where to cache the imported weights as a keras .h5."""

    def __init__(self, label=None, h5=None, plan=None, new_classifier=False, needs=None,
                 preprocessing=None, convert_to=None, what=None, evaluation=None):
        self.label, self.h5, self.plan, self.new_classifier = label, h5, plan, new_classifier
        # a catalog entry's own evaluation crop and filter (torchvision's per-weights
        # transforms), over the layout's or the family's
        self.evaluation = dict(evaluation or {})
        self.needs = dict(plan.options if plan is not None else needs or {})
        self.preprocessing = plan.preprocessing if plan is not None else preprocessing
        self.convert_to = convert_to
        self.what = what or (f"{plan.checkpoint.path} ({plan.layout.name})" if plan else h5)

    def load(self, model) -> None:
        if self.h5 is not None:
            from .weights import load_weights_file

            load_weights_file(model, self.h5, new_classifier=self.new_classifier)
        elif self.plan is not None:
            self.plan.apply(model)
            self._cache_converted(model)
        if self.label is not None:  # a catalog entry's name, not the file's
            model.edgecnn = replace(model.edgecnn, weights=self.label)
        if self.preprocessing is not None:
            model.edgecnn = replace(model.edgecnn, preprocessing=self.preprocessing)
        if self.evaluation:
            model.edgecnn = replace(model.edgecnn, preprocessing=replace(
                model.edgecnn.preprocessing, crop=self.evaluation.get("crop"),
                crop_padding=self.evaluation.get("crop_padding"),
                resize=self.evaluation.get("resize", "bilinear")))

    def _cache_converted(self, model) -> None:
        """The imported weights as a keras .h5 in the cache, so the next build loads them by
        name instead of reading and mapping the checkpoint again; only from a model that
        holds every tensor of the checkpoint (its own classifier)."""
        import os

        if self.convert_to is None or os.path.exists(self.convert_to) or \
                model.output_shape[-1] != self.plan.num_classes:
            return
        from ..utils.files import atomic_output

        with atomic_output(self.convert_to, suffix=".h5") as tmp:
            model.save_weights(tmp)


def _weights_source(spec, weights, alpha, size, options, num_classes, include_top) -> _Source:
    if weights is None or (isinstance(weights, str) and weights.strip().lower() == "none"):
        return _Source()
    text = str(weights).strip()
    mode = text.lower()
    if mode not in ("auto", "imagenet"):
        return _file_source(spec, text)
    new_classifier = include_top and num_classes != 1000
    if mode == "imagenet" and new_classifier:
        raise EdgecnnError(f"ImageNet weights have 1000 classes, got num_classes={num_classes}; "
                           f"use include_top=False, 1000 classes, or weights=\"auto\" (a new "
                           f"classifier on the pretrained network)")
    from .pretrained.download import pretrained_file

    family = {k: v for k, v in options.items() if k != "padding"}
    entry, path, problem = pretrained_file(spec.name, alpha=alpha, resolution=size,
                                           options=family)
    if path is None:
        if mode == "imagenet":
            raise EdgecnnError(problem)
        warnings.warn(f"{problem}; {spec.name} starts from random weights (weights=\"none\" "
                      f"says so without this warning)", EdgecnnWarning, stacklevel=3)
        return _Source("random")
    label = f"imagenet:{entry.source}"
    evaluation = {k: entry.preprocessing[k] for k in ("crop", "crop_padding", "resize")
                  if k in entry.preprocessing}
    if entry.layout == "keras":
        return _Source(label, h5=path, new_classifier=new_classifier, evaluation=evaluation)
    import os

    from .pretrained.importer import plan_import
    from .pretrained.layouts import BY_NAME

    converted = os.path.normpath(path) + ".keras.h5"
    if os.path.isfile(converted):  # imported before: the layout's needs, weights by name
        layout = BY_NAME[entry.layout]
        return _Source(label, h5=converted, new_classifier=new_classifier,
                       needs=layout.options, preprocessing=layout.preprocessing_for(spec.name),
                       what=f"{path} ({layout.name})", evaluation=evaluation)
    return _Source(label, plan=plan_import(path, spec.name, entry.layout), convert_to=converted,
                   evaluation=evaluation)


def _file_source(spec, path: str) -> _Source:
    import os

    if not os.path.exists(path) and not os.path.isfile(path + ".index"):  # a TF prefix
        raise EdgecnnError(f"weights file {path} does not exist; give auto, imagenet, none, a "
                           f"keras .h5, a PyTorch .pth/.pt/.pth.tar, a .safetensors or a TF "
                           f"checkpoint")
    if path.lower().endswith((".h5", ".hdf5", ".keras")):
        return _Source(path, h5=path)
    from .pretrained.importer import plan_import
    from .pretrained.readers import read_checkpoint

    checkpoint = read_checkpoint(path)
    if checkpoint.format == "keras-h5":
        return _Source(path, h5=path)
    return _Source(plan=plan_import(checkpoint, spec.name))


def _with_needs(spec, options: dict, given: dict, source: _Source) -> dict:
    """``options`` with the model options the weights need; one the caller set otherwise
    is an error (the weights would compute something else)."""
    for key, value in source.needs.items():
        if key in given and given[key] != value:
            raise EdgecnnError(f"{source.what} needs {key}={value!r}, got {key}={given[key]!r}; "
                               f"leave {key} out")
        if key != "padding" and key not in spec.options:
            raise EdgecnnError(f"{spec.name} has no option {key} that {source.what} needs")
    return {**options, **source.needs}
