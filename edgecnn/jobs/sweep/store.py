"""A sweep folder on disk: its file names, the points in it (a .tflite, its model card and
its benchmark result), reading them back (``load_point``, ``load_sweep``), the settings
manifest (sweep.json) and the CSV table.

Reading a finished sweep needs neither TensorFlow nor ai-edge-litert.
"""
from __future__ import annotations

import csv
import io
import json
import os
import re
from dataclasses import dataclass

from ...utils.files import atomic_write_bytes
from ...errors import EdgecnnError
from ...runtime.bench import is_noisy
from ...runtime.card import ModelCard

MANIFEST = "sweep.json"
CSV_NAME = "sweep.csv"
MD_NAME = "sweep.md"
BENCH_SUFFIX = ".bench.json"
DEVICES_DIR = "devices"          # devices/<serial>/: one phone's benchmarks and report
DEVICE_MANIFEST = "device.json"
CSV_COLUMNS = ("name", "alpha", "resolution", "precision", "params", "macs", "size_bytes",
               "threads", "xnnpack", "runs", "p50_ms", "p90_ms", "mean_ms", "std_ms", "min_ms",
               "max_ms", "noisy", "top1", "keras_top1", "accuracy_samples", "tflite")


def point_stem(name: str, alpha: float, resolution: int, precision: str) -> str:
    """The file name (without extension) of one sweep point."""
    return f"{name}_{alpha:g}_{resolution}_{precision}"


@dataclass
class SweepPoint:
    """One measured configuration: its model card and its benchmark result."""

    stem: str
    card: ModelCard
    bench: dict

    @property
    def alpha(self) -> float:
        return float(self.card.model.alpha)

    @property
    def resolution(self) -> int:
        return int(self.card.model.resolution)

    def row(self) -> dict:
        """The flat record used by the CSV, the tables and the budget pick."""
        card, bench = self.card, self.bench
        accuracy = card.accuracy if isinstance(card.accuracy, dict) else {}
        return {
            "name": card.model.name, "alpha": self.alpha,
            "resolution": self.resolution, "precision": card.precision,
            "params": int(card.params), "macs": int(card.macs),
            "size_bytes": int(card.size_bytes), "threads": bench.get("threads"),
            "xnnpack": bench.get("xnnpack"), "runs": bench.get("runs"),
            **{k: _float(bench.get(k)) for k in ("p50_ms", "p90_ms", "mean_ms", "std_ms",
                                                  "min_ms", "max_ms")},
            "noisy": is_noisy(bench, against_min=True),
            "top1": accuracy.get("tflite_top1"), "keras_top1": accuracy.get("keras_top1"),
            "accuracy_samples": accuracy.get("samples"), "tflite": self.stem + ".tflite",
            # an old benchmark_model prints no median: the sweep ranks by its mean then
            "p50_stat": bench.get("p50_stat", "median"),
        }


def _float(value):
    return None if value is None else float(value)


def _read_json(path: str):
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def converted_card(directory: str, stem: str, alpha=None, resolution=None,
               precision=None) -> ModelCard | None:
    """The card of a complete conversion (.tflite and its card, sizes agreeing), else None."""
    data = _read_json(os.path.join(directory, stem + ".json"))
    if not isinstance(data, dict):
        return None
    card = ModelCard.from_dict(data)
    tflite = os.path.join(directory, stem + ".tflite")
    try:
        if not os.path.isfile(tflite) or os.path.getsize(tflite) != int(card.size_bytes):
            return None
        if precision is not None and card.precision != precision:
            return None
        if alpha is not None and float(card.model.alpha) != float(alpha):
            return None
        if resolution is not None and int(card.model.resolution) != int(resolution):
            return None
        float(card.model.alpha), int(card.model.resolution), int(card.params), int(card.macs)
    except (TypeError, ValueError):
        return None
    return card


def device_dir(directory: str, serial: str) -> str:
    """The folder of one adb device's benchmarks and report inside a sweep folder (serials
    of network devices, ``host:port``, made file-name safe)."""
    return os.path.join(directory, DEVICES_DIR, re.sub(r"[^A-Za-z0-9._-]", "_", serial))


def sweep_devices(directory: str) -> list[str]:
    """The serials of the adb devices a sweep folder holds benchmarks of."""
    root = os.path.join(directory, DEVICES_DIR)
    found = []
    for entry in sorted(os.listdir(root)) if os.path.isdir(root) else []:
        manifest = _read_json(os.path.join(root, entry, DEVICE_MANIFEST))
        if isinstance(manifest, dict) and isinstance(manifest.get("serial"), str):
            found.append(manifest["serial"])
    return found


def load_point(directory: str, stem: str, alpha=None, resolution=None, precision=None,
               threads=None, bench_dir: str | None = None) -> SweepPoint | None:
    """A point whose .tflite, card and benchmark are all complete and agree, else None.
    bench_dir: where its benchmark is (an adb device's folder), default ``directory``."""
    card = converted_card(directory, stem, alpha, resolution, precision)
    if card is None:
        return None
    bench = _read_json(os.path.join(bench_dir or directory, stem + BENCH_SUFFIX))
    try:
        float(bench["p50_ms"])
        if threads is not None and int(bench["threads"]) != int(threads):
            return None
        if bench.get("size_bytes") is not None and int(bench["size_bytes"]) != card.size_bytes:
            return None
    except (TypeError, KeyError, ValueError):
        return None
    return SweepPoint(stem, card, bench)


def load_sweep(directory: str, device: str | None = None) -> tuple[dict, list[SweepPoint]]:
    """The settings and every complete point of a sweep folder (sorted by alpha, resolution),
    measured on this machine or, with ``device`` (a serial), on that adb device; the
    device's settings are then under ``settings["device"]``. Needs neither TensorFlow nor
    ai-edge-litert."""
    if not os.path.isdir(directory):
        raise EdgecnnError(f"sweep folder {directory} does not exist; run edgecnn sweep NAME "
                           f"-o {directory} first")
    settings = _read_json(os.path.join(directory, MANIFEST))
    if not isinstance(settings, dict):
        raise EdgecnnError(f"{directory} is not a sweep folder (no readable {MANIFEST}); give "
                           f"the -o folder of edgecnn sweep")
    bench_dir = directory
    if device is not None:
        bench_dir = device_dir(directory, device)
        manifest = _read_json(os.path.join(bench_dir, DEVICE_MANIFEST))
        if not isinstance(manifest, dict):
            known = ", ".join(sweep_devices(directory)) or "none"
            raise EdgecnnError(f"{directory} holds no benchmarks of device {device} (devices: "
                               f"{known})")
        settings = {**settings, "device": manifest}
    points = []
    for entry in sorted(os.listdir(bench_dir)):
        if entry.endswith(BENCH_SUFFIX):
            point = load_point(directory, entry[:-len(BENCH_SUFFIX)],
                               precision=settings.get("precision"),
                               threads=settings.get("threads"), bench_dir=bench_dir)
            if point is not None:
                points.append(point)
    points.sort(key=lambda p: (p.alpha, p.resolution))
    return settings, points


def write_csv(path: str, rows: list[dict]) -> None:
    """sweep.csv: one ``SweepPoint.row()`` a line (atomically)."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: "" if row.get(k) is None else row[k] for k in CSV_COLUMNS})
    atomic_write_bytes(path, buffer.getvalue().encode())


def ms(value) -> str:
    """A latency for people: 3 decimals below 1 ms, 2 above (sweep.md, the pick's lines and
    the CLI's tables)."""
    if value is None:
        return "-"
    return f"{value:.3f}" if value < 1 else f"{value:.2f}"


def prepare_dir(directory: str) -> str:
    """The sweep folder as an absolute path, created (its parent must exist) and writable."""
    directory = os.path.abspath(directory)
    if os.path.exists(directory) and not os.path.isdir(directory):
        raise EdgecnnError(f"output {directory} is a file; give a folder for the sweep")
    parent = os.path.dirname(directory)
    if not os.path.isdir(parent):
        raise EdgecnnError(f"folder {parent} does not exist; create it or choose another -o")
    os.makedirs(directory, exist_ok=True)
    if not os.access(directory, os.W_OK):
        raise EdgecnnError(f"sweep folder {directory} is not writable")
    return directory


def check_settings(directory: str, settings: dict) -> None:
    """Refuse to resume a folder whose manifest (sweep.json) names other settings (the
    machine and the edgecnn version may differ)."""
    old = _read_json(os.path.join(directory, MANIFEST))
    if not isinstance(old, dict):
        return
    keys = [k for k in settings if k not in ("machine", "edgecnn") and old.get(k) != settings[k]]
    if keys:
        diff = ", ".join(f"{k} {old.get(k)!r} (now {settings[k]!r})" for k in keys)
        raise EdgecnnError(f"{directory} holds a sweep with other settings: {diff}; use the same "
                           f"settings to resume, or another -o folder")


def check_device(folder: str, wanted: dict) -> None:
    """Refuse to add benchmarks to an adb device's folder measured with another delegate or
    CPU mask (its device.json)."""
    old = _read_json(os.path.join(folder, DEVICE_MANIFEST))
    if not isinstance(old, dict):
        return
    keys = [k for k in ("delegate", "taskset") if old.get(k) != wanted.get(k)]
    if keys:
        diff = ", ".join(f"{k} {old.get(k)!r} (now {wanted.get(k)!r})" for k in keys)
        raise EdgecnnError(f"device {wanted['serial']} was measured in this sweep with other "
                           f"settings: {diff}; use the same to resume, or another -o folder")
