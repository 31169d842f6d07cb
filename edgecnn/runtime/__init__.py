"""The LiteRT side: read, analyze and run a .tflite with numpy and ai-edge-litert only.

Nothing here imports TensorFlow, so it works on the light (device) install.
"""
from .bench import benchmark
from .evaluate import classification_metrics, evaluate_tflite
from .predict import predict_images
from .tflite import (analyze, embed_card, input_spec, load_interpreter, read_card,
                     read_model, run_logits)

__all__ = ["analyze", "benchmark", "classification_metrics", "embed_card", "evaluate_tflite",
           "input_spec", "load_interpreter", "predict_images", "read_card", "read_model",
           "run_logits"]
