"""The 1000 ImageNet-1k classes, shipped with the package: their names
(``imagenet_classes.txt``) and WordNet ids (``imagenet_wnids.txt``; each file's header says
where it comes from). No TensorFlow."""
from __future__ import annotations

import functools
import os
import re

HERE = os.path.dirname(__file__)
PATH = os.path.join(HERE, "imagenet_classes.txt")
WNIDS_PATH = os.path.join(HERE, "imagenet_wnids.txt")

#: A WordNet noun id as ImageNet names its classes: "n" and eight digits.
WNID = re.compile(r"^n\d{8}$")


def _read(path: str) -> tuple[str, ...]:
    with open(path, encoding="utf-8") as f:
        lines = tuple(line.rstrip("\n") for line in f if not line.startswith("#"))
    if len(lines) != 1000:  # pragma: no cover - a damaged install
        raise RuntimeError(f"{path} has {len(lines)} classes, not 1000; reinstall edgecnn")
    return lines


@functools.lru_cache(maxsize=1)
def _names() -> tuple[str, ...]:
    return _read(PATH)


@functools.lru_cache(maxsize=1)
def _wnids() -> tuple[str, ...]:
    return _read(WNIDS_PATH)


def imagenet_classes() -> list[str]:
    """The ImageNet-1k class names in index order (``imagenet_classes()[281] == "tabby"``)."""
    return list(_names())


def imagenet_wnids() -> list[str]:
    """The ImageNet-1k WordNet ids in index order (``imagenet_wnids()[0] == "n01440764"``)."""
    return list(_wnids())


@functools.lru_cache(maxsize=1)
def wnid_index() -> dict[str, int]:
    """WordNet id -> ImageNet-1k class index."""
    return {wnid: i for i, wnid in enumerate(_wnids())}


def is_wnid(text: str) -> bool:
    return bool(WNID.match(text))
