"""Model core: blocks, scaling, registry and one file per family."""
from .factory import create_model
from .macs import count_macs
from .registry import ModelSpec, Preprocessing, get_model_spec, list_models, register_model

__all__ = ["create_model", "count_macs", "list_models", "get_model_spec", "register_model",
           "ModelSpec", "Preprocessing"]
