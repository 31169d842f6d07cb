"""edgecnn's models: the registry, the block library and builder, and one file per family.

Layering runs one way, as in timm: ``registry`` (knows no family) <- ``blocks`` <-
``builder`` <- the family modules (each declares its stage table and registers its models)
<- this package, whose import of every family below fills the registry.
"""
from . import (  # noqa: F401  (importing a family registers its models)
    efficientnet,
    mobilenet_v1,
    mobilenet_v2,
    mobilenet_v3,
    shufflenet,
    shufflenet_v2,
    xception,
)
from .factory import create_model
from .macs import count_macs
from .registry import ModelSpec, Preprocessing, get_model_spec, list_models, register_model

__all__ = ["create_model", "count_macs", "list_models", "get_model_spec", "register_model",
           "ModelSpec", "Preprocessing"]
