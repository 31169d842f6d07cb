"""The 1000 ImageNet-1k class names, shipped with the package (``imagenet_classes.txt``;
its header says where they come from). No TensorFlow."""
from __future__ import annotations

import functools
import os

PATH = os.path.join(os.path.dirname(__file__), "imagenet_classes.txt")


@functools.lru_cache(maxsize=1)
def _names() -> tuple[str, ...]:
    with open(PATH, encoding="utf-8") as f:
        names = tuple(line.rstrip("\n") for line in f if not line.startswith("#"))
    if len(names) != 1000:  # pragma: no cover - a damaged install
        raise RuntimeError(f"{PATH} has {len(names)} class names, not 1000; reinstall edgecnn")
    return names


def imagenet_classes() -> list[str]:
    """The ImageNet-1k class names in index order (``imagenet_classes()[281] == "tabby"``)."""
    return list(_names())
