"""QAT and TFLite conversion with validation and a model card."""
from .convert import convert
from .deploy import deployable
from .qat import quantize_aware, unquantized_layers

__all__ = ["convert", "deployable", "quantize_aware", "unquantized_layers"]
