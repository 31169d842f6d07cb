"""The LiteRT side: read, analyze and run a .tflite with numpy and ai-edge-litert only.

Nothing here imports TensorFlow, so it works on the light (device) install. Layering, lowest
first: ``verify``, ``sandbox``, ``flatbuf`` <- ``tflite``, ``xnnpack`` <- ``card`` <-
``bench``, ``adb``, ``evaluate``, ``predict``.
"""
from .bench import benchmark
from .card import ModelCard
from .evaluate import classification_metrics, evaluate_tflite
from .predict import predict_images
from .tflite import analyze, input_spec, load_interpreter, read_model, run_logits

read_card = ModelCard.read  # the card of a .tflite (or its JSON), or None

__all__ = ["ModelCard", "analyze", "benchmark", "classification_metrics", "evaluate_tflite",
           "input_spec", "load_interpreter", "predict_images", "read_card", "read_model",
           "run_logits"]
