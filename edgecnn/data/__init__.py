"""Datasets: image folders and synthetic inputs as numpy arrays (no TensorFlow)."""
from .folder import ImageFolder, load_image_folder, synthetic_images

__all__ = ["ImageFolder", "load_image_folder", "synthetic_images"]
