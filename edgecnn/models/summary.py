"""Describing a configuration: params, MACs, input spec, preprocessing, stage table."""
from __future__ import annotations

from .._keras import keras
from .factory import _check_options, create_model
from .macs import count_macs
from .registry import check_alpha, get_model_spec, resolve_input_size


def release_models() -> None:
    """Free the graphs of models built so far (long loops over many models)."""
    keras.backend.clear_session()


def describe_model(name: str, *, alpha: float = 1.0, input_size=None, rho=None,
                   num_classes: int = 1000, **family_options) -> dict:
    """Everything a user needs to know about one configuration, as plain data."""
    spec = get_model_spec(name)
    alpha = check_alpha(alpha)
    size = resolve_input_size(spec, input_size, rho)
    options = _check_options(spec, family_options)
    model = create_model(name, alpha=alpha, input_size=size, num_classes=num_classes,
                         weights=None, **options)
    trainable = int(sum(keras.backend.count_params(w) for w in model.trainable_weights))
    report = {
        "name": name, "family": spec.family, "paper": spec.paper, "alpha": alpha,
        "resolution": size, "rho": round(size / spec.default_input, 4),
        "options": options, "num_classes": num_classes,
        "params": model.count_params(), "trainable_params": trainable,
        "macs": count_macs(model),
        "input": {"shape": [1, size, size, 3], "dtype": "float32",
                  "range": list(spec.preprocessing.output_range())},
        "preprocessing": spec.preprocessing.as_dict(),
        **spec.describe(alpha=alpha, **options),
    }
    del model
    release_models()
    return report
