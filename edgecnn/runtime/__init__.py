"""The LiteRT side: read, analyze and run a .tflite with numpy and ai-edge-litert only.

Nothing here imports TensorFlow, so it works on the light (device) install.
"""
from .tflite import (analyze, embed_card, input_spec, load_interpreter, read_card,
                     run_logits)

__all__ = ["analyze", "embed_card", "input_spec", "load_interpreter", "read_card", "run_logits"]
