"""Photos read as a model input (resize, center crop, filter), and synthetic images.

Only numpy and Pillow: usable for calibration and evaluation on a small install.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from ..errors import EdgecnnError
from .decode import IMAGE_EXTENSIONS, decode_image, pil_image  # noqa: F401  (re-exported)


@dataclass
class ImageFolder:
    images: np.ndarray        # (N, size, size, 3) uint8 RGB
    labels: np.ndarray        # (N,) int64 class indices
    class_names: list[str]    # sorted sub-folder names
    files: list[str]
    skipped: list[str] = field(default_factory=list)  # files that were not readable images


def check_reading(crop: float = 1.0, resize: str = "bilinear") -> tuple[float, str]:
    """A (crop fraction, resize filter) pair, checked: 0 < crop <= 1, a known filter."""
    try:
        crop = float(crop)
    except (TypeError, ValueError):
        crop = float("nan")
    if not 0.0 < crop <= 1.0:
        raise EdgecnnError(f"crop fraction {crop} is not in (0, 1]; 0.875 reads a 224 input "
                           f"from the center of a 256 resize, 1.0 the whole shorter side")
    if resize not in RESIZE_FILTERS:
        raise EdgecnnError(f"resize filter {resize!r} is unknown; use "
                           f"{' or '.join(RESIZE_FILTERS)}")
    return crop, resize


#: Resize filters by name (Pillow's; both antialias when shrinking, as torchvision's do).
RESIZE_FILTERS = ("bilinear", "bicubic")


def load_image(path: str, size: int, crop: float = 1.0, resize: str = "bilinear",
               fit: str = "shorter-center-crop") -> np.ndarray:
    """A photo as the ``size`` x ``size`` uint8 RGB input: the shorter side resized to
    ``floor(size / crop)`` with the ``resize`` filter, then the centered square cropped
    (crop 0.875 at 224: resize to 256, crop 224, as torchvision's and timm's evaluation;
    crop 1.0: the whole shorter side, as edgecnn's training pipeline). ``fit="stretch"``:
    the whole photo resized to the square, as TFLite's Task Library feeds a classifier."""
    crop, resize = check_reading(crop, resize)
    Image = pil_image()
    scaled = max(size, int(math.floor(size / crop + 1e-6)))
    flt = Image.BICUBIC if resize == "bicubic" else Image.BILINEAR
    im = Image.fromarray(decode_image(path), "RGB")
    if fit == "stretch":
        return np.asarray(im.resize((size, size), flt), dtype=np.uint8)
    w, h = im.size
    scale = scaled / min(w, h)
    im = im.resize((max(scaled, round(w * scale)), max(scaled, round(h * scale))), flt)
    w, h = im.size
    left, top = (w - size) // 2, (h - size) // 2
    return np.asarray(im.crop((left, top, left + size, top + size)), dtype=np.uint8)


def synthetic_images(n: int, size: int, seed: int = 0) -> np.ndarray:
    """Smooth random colour fields with edges: a stand-in for photos when no data is given.
    Fine for latency work and for exercising quantization, meaningless for accuracy."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    out = np.empty((n, size, size, 3), np.uint8)
    for i in range(n):
        img = np.zeros((size, size, 3), np.float32)
        for c in range(3):
            a, b, f = rng.normal(size=3)
            img[..., c] = 128 + 60 * np.sin(6 * (a * xx + b * yy) + f)
        for _ in range(rng.integers(2, 6)):  # a few flat blobs give edges
            cy, cx, r = rng.uniform(0, 1, 3) * [1, 1, 0.3]
            mask = (yy - cy) ** 2 + (xx - cx) ** 2 < r ** 2
            img[mask] = rng.uniform(0, 255, 3)
        img += rng.normal(0, 8, img.shape)
        out[i] = np.clip(img, 0, 255).astype(np.uint8)
    return out
