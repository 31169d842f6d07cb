"""``create_model``: name + multipliers -> a tf_keras Model."""
from __future__ import annotations

from ..errors import EdgecnnError
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
                 weights: str | None = None, dropout: float | None = None, **family_options):
    """Build a registered network as a tf_keras functional Model.

    alpha: width multiplier; input_size: input side in pixels, or rho: the paper's
    resolution multiplier (fraction of the default input); num_classes and include_top:
    the classifier; weights: None, a keras .h5 weights file (loaded by layer name) or
    "imagenet" (keras.applications' download and cache); dropout: before the classifier
    (None: the family's default); family_options: e.g. ``minimalistic=True``.
    The model expects inputs preprocessed as ``get_model_spec(name).preprocessing`` says.
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
    padding = _check_padding(spec, options)
    with padding_mode(padding):
        model = spec.build(alpha=alpha, input_size=size, num_classes=num_classes,
                           include_top=include_top, dropout=float(dropout), **options)
    if padding != "tf":  # recorded only when not the default, as it changes the graph
        options["padding"] = padding
    if isinstance(weights, str) and weights.lower() == "none":
        weights = None
    model.edgecnn = BuiltConfig(name, alpha, size, tuple(sorted(options.items())), num_classes,
                                include_top, None if weights is None else str(weights),
                                spec.preprocessing)
    if weights is None:
        return model
    if isinstance(weights, str) and weights.lower() == "imagenet":
        from .weights import load_imagenet

        load_imagenet(model, spec, alpha=alpha, input_size=size, num_classes=num_classes,
                      include_top=include_top, options=options)
    else:
        from .weights import load_weights_file

        load_weights_file(model, str(weights))
    return model
