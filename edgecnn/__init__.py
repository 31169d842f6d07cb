"""edgecnn: efficient CNNs from a Keras definition to a measured on-device model.

``import edgecnn`` is cheap and works on the light (device) install; the model API below
loads TensorFlow on first use and says which extra to install when it is missing.
"""
from ._version import __version__
from .errors import EdgecnnError, EdgecnnWarning, MissingExtraError

_MODEL_API = {"create_model", "list_models", "count_macs", "get_model_spec", "register_model"}
_CONVERT_API = {"convert", "quantize_aware", "deployable"}

__all__ = ["__version__", "EdgecnnError", "EdgecnnWarning", "MissingExtraError", *sorted(_MODEL_API),
           *sorted(_CONVERT_API)]


def __getattr__(name):
    if name in _MODEL_API:
        from . import models

        return getattr(models, name)
    if name in _CONVERT_API:
        from . import converters

        return getattr(converters, name)
    raise AttributeError(f"module 'edgecnn' has no attribute {name!r}")
