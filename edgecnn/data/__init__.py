"""Datasets: image folders and synthetic inputs as numpy arrays (no TensorFlow), and the
ImageNet class names."""
from .folder import ImageFolder, synthetic_images
from .labelled import load_image_folder
from .imagenet import imagenet_classes

__all__ = ["ImageFolder", "imagenet_classes", "load_image_folder",
           "synthetic_images"]
