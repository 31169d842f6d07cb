"""A built-in offline dataset of real images: the 1,797 handwritten digits (8x8, 10 classes)
that ship inside scikit-learn (UCI optical digits), upscaled to the model's input.

Small, real and download-free: used by tests and the demo to train models whose predictions
mean something, so that float-vs-int8 agreement and accuracy are real measurements.
"""
from __future__ import annotations

import numpy as np

from ..errors import MissingExtraError
from .folder import ImageFolder

CLASS_NAMES = [str(d) for d in range(10)]


def load_digits(size: int, limit: int | None = None, seed: int = 0) -> ImageFolder:
    """Digits as uint8 RGB (N, size, size, 3): white strokes on black, bilinear upscaling,
    shuffled with ``seed`` (class-mixed), the first ``limit`` kept."""
    try:
        from sklearn.datasets import load_digits as sk_digits
    except ImportError:
        raise MissingExtraError("the built-in digits dataset", missing="scikit-learn") from None
    from PIL import Image

    data = sk_digits()
    order = np.random.default_rng(seed).permutation(len(data.target))
    if limit is not None:
        order = order[:limit]
    images = np.empty((len(order), size, size, 3), np.uint8)
    for i, index in enumerate(order):
        gray = (data.images[index] * (255.0 / 16.0)).astype(np.uint8)
        big = np.asarray(Image.fromarray(gray).resize((size, size), Image.BILINEAR))
        images[i] = big[..., None]
    return ImageFolder(images, data.target[order].astype(np.int64), CLASS_NAMES,
                       [f"sklearn-digits/{i}" for i in order])
