"""Width x resolution sweeps: build, convert and benchmark every (alpha, resolution) point of a
network, then tabulate, plot and pick the best configuration for a latency budget.

The MobileNet paper's width x resolution table, measured on the machine that runs it. Each
point's .tflite, model card (.json) and benchmark result (.bench.json) live in the sweep folder;
a point whose three files are complete and consistent is never redone, so an interrupted sweep
resumes where it stopped. Reading a finished sweep (``load_sweep``, ``pick_budget``) needs
neither TensorFlow nor ai-edge-litert.
"""
from __future__ import annotations

import csv
import io
import json
import math
import os
import platform
from dataclasses import asdict, dataclass, field

from ._io import atomic_write_bytes, atomic_write_json
from .errors import EdgecnnError, MissingExtraError

PRECISIONS = ("float32", "float16", "dynamic", "int8")
MANIFEST = "sweep.json"
CSV_NAME = "sweep.csv"
MD_NAME = "sweep.md"
PLOT_LATENCY = "sweep_latency_vs_macs.png"
PLOT_ACCURACY = "sweep_accuracy_vs_latency.png"
BENCH_SUFFIX = ".bench.json"
CSV_COLUMNS = ("name", "alpha", "resolution", "precision", "params", "macs", "size_bytes",
               "threads", "xnnpack", "runs", "p50_ms", "p90_ms", "mean_ms", "std_ms", "min_ms",
               "max_ms", "noisy", "top1", "keras_top1", "accuracy_samples", "tflite")


# ---------------------------------------------------------------------------------------------
# Inputs


def parse_list(text, what: str, kind=float) -> list:
    """``"0.25,0.5"`` -> ``[0.25, 0.5]`` (order kept, duplicates dropped); every value > 0."""
    example = "0.25,0.5,0.75,1.0" if kind is float else "128,160,192,224"
    noun = "numbers" if kind is float else "whole numbers"
    if isinstance(text, (list, tuple)):
        items = list(text)
    else:
        items = [t.strip() for t in str(text).split(",")]
    values = []
    for item in items:
        try:
            value = kind(item)
            if kind is int and isinstance(item, float) and item != value:
                raise ValueError
        except (TypeError, ValueError):
            raise EdgecnnError(f"{what} must be comma-separated {noun} > 0 (e.g. {example}), "
                               f"got {text!r}") from None
        if not math.isfinite(value) or value <= 0:
            raise EdgecnnError(f"{what} values must be > 0 (e.g. {example}), got {item!r}")
        if value not in values:
            values.append(value)
    if not values:
        raise EdgecnnError(f"{what} needs at least one value (e.g. {example})")
    return values


def point_stem(name: str, alpha: float, resolution: int, precision: str) -> str:
    """The file name (without extension) of one sweep point."""
    return f"{name}_{alpha:g}_{resolution}_{precision}"


def default_output_dir(name: str, precision: str) -> str:
    return os.path.join(os.getcwd(), f"sweep_{name}_{precision}")


# ---------------------------------------------------------------------------------------------
# Points on disk


@dataclass
class SweepPoint:
    """One measured configuration: its model card and its benchmark result."""

    stem: str
    card: dict
    bench: dict

    @property
    def alpha(self) -> float:
        return float(self.card["model"]["alpha"])

    @property
    def resolution(self) -> int:
        return int(self.card["model"]["resolution"])

    def row(self) -> dict:
        """The flat record used by the CSV, the tables and the budget pick."""
        card, bench = self.card, self.bench
        accuracy = card.get("accuracy") or {}
        return {
            "name": card["model"].get("name"), "alpha": self.alpha,
            "resolution": self.resolution, "precision": card["precision"],
            "params": int(card["params"]), "macs": int(card["macs"]),
            "size_bytes": int(card["size_bytes"]), "threads": bench.get("threads"),
            "xnnpack": bench.get("xnnpack"), "runs": bench.get("runs"),
            **{k: _float(bench.get(k)) for k in ("p50_ms", "p90_ms", "mean_ms", "std_ms",
                                                  "min_ms", "max_ms")},
            "noisy": is_noisy(bench),
            "top1": accuracy.get("tflite_top1"), "keras_top1": accuracy.get("keras_top1"),
            "accuracy_samples": accuracy.get("samples"), "tflite": self.stem + ".tflite",
        }


NOISY_RATIO = 1.5


def is_noisy(bench: dict) -> bool:
    """A measurement disturbed by other work on the machine: a wide spread (p90/p50 > 1.5, as
    the runner flags it) or a median far above the fastest run (p50/min > 1.5: the core was
    shared for most of the runs)."""
    try:
        p50, p90, low = (float(bench[k]) for k in ("p50_ms", "p90_ms", "min_ms"))
    except (KeyError, TypeError, ValueError):
        return bool(bench.get("noisy"))
    return bool(bench.get("noisy")) or p90 > NOISY_RATIO * p50 or p50 > NOISY_RATIO * low


def _float(value):
    return None if value is None else float(value)


def _read_json(path: str):
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def _converted(directory: str, stem: str, alpha=None, resolution=None,
               precision=None) -> dict | None:
    """The card of a complete conversion (.tflite and its card, sizes agreeing), else None."""
    card = _read_json(os.path.join(directory, stem + ".json"))
    tflite = os.path.join(directory, stem + ".tflite")
    try:
        model = card["model"]
        if not os.path.isfile(tflite) or os.path.getsize(tflite) != int(card["size_bytes"]):
            return None
        if precision is not None and card["precision"] != precision:
            return None
        if alpha is not None and float(model["alpha"]) != float(alpha):
            return None
        if resolution is not None and int(model["resolution"]) != int(resolution):
            return None
        int(card["params"]), int(card["macs"])
    except (TypeError, KeyError, ValueError):
        return None
    return card


def load_point(directory: str, stem: str, alpha=None, resolution=None, precision=None,
               threads=None) -> SweepPoint | None:
    """A point whose .tflite, card and benchmark are all complete and agree, else None."""
    card = _converted(directory, stem, alpha, resolution, precision)
    if card is None:
        return None
    bench = _read_json(os.path.join(directory, stem + BENCH_SUFFIX))
    try:
        float(bench["p50_ms"])
        if threads is not None and int(bench["threads"]) != int(threads):
            return None
        if bench.get("size_bytes") is not None and int(bench["size_bytes"]) != card["size_bytes"]:
            return None
    except (TypeError, KeyError, ValueError):
        return None
    return SweepPoint(stem, card, bench)


def load_sweep(directory: str) -> tuple[dict, list[SweepPoint]]:
    """The settings and every complete point of a sweep folder (sorted by alpha, resolution).
    Needs neither TensorFlow nor ai-edge-litert."""
    if not os.path.isdir(directory):
        raise EdgecnnError(f"sweep folder {directory} does not exist; run edgecnn sweep NAME "
                           f"-o {directory} first")
    settings = _read_json(os.path.join(directory, MANIFEST))
    if not isinstance(settings, dict):
        raise EdgecnnError(f"{directory} is not a sweep folder (no readable {MANIFEST}); give "
                           f"the -o folder of edgecnn sweep")
    points = []
    for entry in sorted(os.listdir(directory)):
        if entry.endswith(BENCH_SUFFIX):
            point = load_point(directory, entry[:-len(BENCH_SUFFIX)],
                               precision=settings.get("precision"),
                               threads=settings.get("threads"))
            if point is not None:
                points.append(point)
    points.sort(key=lambda p: (p.alpha, p.resolution))
    return settings, points


# ---------------------------------------------------------------------------------------------
# Budget pick


@dataclass
class BudgetPick:
    """The best configuration within a p50 latency budget and its neighbours.

    best: the most MACs (``by="macs"``) or best top-1 (``by="accuracy"``) with p50 <= budget;
    inside: the runner-up within the budget; over: the next configuration beyond the budget,
    the fastest one over it that would beat ``best`` (the fastest of all when nothing fits).
    """

    budget_ms: float
    by: str
    best: dict | None
    inside: dict | None
    over: dict | None

    def to_dict(self) -> dict:
        return asdict(self)

    def lines(self) -> list[str]:
        """The pick in words, one line each."""
        metric = "top-1" if self.by == "accuracy" else "MACs"
        out = []
        if self.best is None:
            out.append(f"nothing fits {self.budget_ms:g} ms p50")
        else:
            out.append(f"pick: {_describe(self.best)} (most {metric} within "
                       f"{self.budget_ms:g} ms p50)")
        if self.inside is not None:
            out.append(f"runner-up within the budget: {_describe(self.inside)}")
        if self.over is not None:
            what = "fastest configuration" if self.best is None else \
                "next step over the budget"
            out.append(f"{what}: {_describe(self.over)}")
        elif self.best is not None:
            out.append("nothing better is over the budget: the pick is the best configuration "
                       "measured")
        return out


def _describe(row: dict) -> str:
    text = (f"alpha {row['alpha']:g} resolution {row['resolution']}: p50 {ms(row['p50_ms'])} ms, "
            f"{row['macs'] / 1e6:,.1f} M MACs, {row['params'] / 1e6:.2f} M params")
    if row.get("top1") is not None:
        text += f", top-1 {row['top1']:.1f} %"
    return text


def check_budget(budget_ms) -> float:
    """A latency budget in ms: a finite number > 0."""
    try:
        budget = float(budget_ms)
    except (TypeError, ValueError):
        raise EdgecnnError(f"the budget must be a latency in ms > 0, got {budget_ms!r}") from None
    if not math.isfinite(budget) or budget <= 0:
        raise EdgecnnError(f"the budget must be a latency in ms > 0 (e.g. 5), got {budget_ms!r}")
    return budget


def pick_budget(rows, budget_ms: float, by: str | None = None) -> BudgetPick:
    """Pick from sweep rows (``SweepPoint.row()`` dicts or points) for a p50 budget in ms.

    by: "macs" or "accuracy"; default accuracy when every row has a top-1, else MACs.
    """
    rows = [r.row() if isinstance(r, SweepPoint) else r for r in rows]
    budget = check_budget(budget_ms)
    if not rows:
        raise EdgecnnError("no measured configurations to pick from")
    has_accuracy = all(r.get("top1") is not None for r in rows)
    if by is None:
        by = "accuracy" if has_accuracy else "macs"
    if by not in ("macs", "accuracy"):
        raise EdgecnnError(f"pick by macs or accuracy, got {by!r}")
    if by == "accuracy" and not has_accuracy:
        raise EdgecnnError("picking by accuracy needs a sweep run with --data; pick by macs")

    def merit(r):  # bigger is better; ties go to the faster one
        first = float(r["top1"]) if by == "accuracy" else int(r["macs"])
        return (first, -float(r["p50_ms"]))

    fits = sorted((r for r in rows if float(r["p50_ms"]) <= budget), key=merit, reverse=True)
    best = fits[0] if fits else None
    inside = fits[1] if len(fits) > 1 else None
    beyond = [r for r in rows if float(r["p50_ms"]) > budget
              and (best is None or merit(r)[0] > merit(best)[0])]
    over = min(beyond, key=lambda r: (float(r["p50_ms"]), -merit(r)[0])) if beyond else None
    return BudgetPick(budget, by, best, inside, over)


# ---------------------------------------------------------------------------------------------
# Reports


def write_csv(path: str, rows: list[dict]) -> None:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: "" if row.get(k) is None else row[k] for k in CSV_COLUMNS})
    atomic_write_bytes(path, buffer.getvalue().encode())


def ms(value) -> str:
    """A latency for people: 3 decimals below 1 ms, 2 above."""
    if value is None:
        return "-"
    return f"{value:.3f}" if value < 1 else f"{value:.2f}"


def _size(n: int) -> str:
    return f"{n / 1e6:.2f} MB" if n >= 1e6 else f"{n / 1e3:.0f} KB"


def _pivot(rows, value, fmt) -> list[str]:
    alphas = sorted({r["alpha"] for r in rows})
    sizes = sorted({r["resolution"] for r in rows})
    cell = {(r["alpha"], r["resolution"]): r for r in rows}
    lines = ["| alpha \\ resolution | " + " | ".join(str(s) for s in sizes) + " |",
             "|---|" + "---:|" * len(sizes)]
    for a in alphas:
        values = [fmt(cell[a, s][value]) if (a, s) in cell and cell[a, s][value] is not None
                  else "-" for s in sizes]
        lines.append(f"| {a:g} | " + " | ".join(values) + " |")
    return lines


def markdown(settings: dict, rows: list[dict], pick: BudgetPick | None = None,
             plots: list[str] = ()) -> str:
    """The sweep as a Markdown document: settings, the table, the alpha x resolution grids."""
    has_accuracy = any(r.get("top1") is not None for r in rows)
    first = rows[0] if rows else {}
    lines = [f"# {settings.get('name')} width x resolution sweep ({settings.get('precision')})",
             "",
             f"- measured on: {settings.get('machine', '?')}",
             (f"- benchmark: {first.get('threads', settings.get('threads'))} thread(s), "
              f"XNNPACK {'on' if settings.get('xnnpack', True) else 'off'}, latency = median "
              f"(p50) of the steady-state runs"),
             (f"- classes: {settings.get('num_classes')}, weights: {settings.get('weights')}, "
              f"options: {settings.get('options') or '-'}")]
    if settings.get("data"):
        lines.append(f"- data: {settings['data']} (calibration and top-1 on up to "
                     f"{settings.get('calib_samples')} images)")
    else:
        lines.append("- data: none" + (" (int8 calibrated on synthetic images: latency is "
                                         "meaningful, accuracy is not measured)"
                                         if settings.get("precision") == "int8" else ""))
    lines += ["", f"{len(rows)} configurations.", "",
              "| alpha | resolution | params | MACs | size | p50 ms | p90 ms | min ms |"
              + (" top-1 % |" if has_accuracy else ""),
              "|---:|---:|---:|---:|---:|---:|---:|---:|" + ("---:|" if has_accuracy else "")]
    for r in rows:
        line = (f"| {r['alpha']:g} | {r['resolution']} | {r['params'] / 1e6:.2f} M | "
                f"{r['macs'] / 1e6:,.1f} M | {_size(r['size_bytes'])} | {ms(r['p50_ms'])} | "
                f"{ms(r.get('p90_ms'))} | {ms(r.get('min_ms'))} |")
        if has_accuracy:
            line += f" {r['top1']:.1f} |" if r.get("top1") is not None else " - |"
        lines.append(line)
    noisy = [r for r in rows if r.get("noisy")]
    if noisy:
        lines += ["", "Noisy measurements (p90/p50 or p50/min > 1.5: the machine was busy): "
                  + ", ".join(f"alpha {r['alpha']:g} resolution {r['resolution']}" for r in noisy)
                  + ". Delete their .bench.json files and rerun the sweep on a quiet machine to "
                    "measure only those again."]
    lines += ["", "## p50 latency (ms), alpha x resolution", "",
              *_pivot(rows, "p50_ms", ms),
              "", "## MACs (millions), alpha x resolution", "",
              *_pivot(rows, "macs", lambda v: f"{v / 1e6:,.1f}")]
    if has_accuracy:
        lines += ["", "## top-1 (%), alpha x resolution", "",
                  *_pivot(rows, "top1", lambda v: f"{v:.1f}")]
    if pick is not None:
        lines += ["", f"## Budget {pick.budget_ms:g} ms (p50)", ""]
        lines += [f"- {line}" for line in pick.lines()]
    if plots:
        lines += ["", "## Plots", ""]
        lines += [f"![{os.path.splitext(p)[0]}]({p})" for p in plots]
    return "\n".join(lines) + "\n"


def _plain_ticks(*axes) -> None:
    """Log axes labelled 0.5, 1, 2 instead of 5x10^-1."""
    from matplotlib.ticker import FuncFormatter

    for axis in axes:
        axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        axis.set_minor_formatter(FuncFormatter(
            lambda v, _: f"{v:g}" if f"{v:e}"[0] in "235" else ""))  # 2s, 3s, 5s


def _figure_bytes(fig) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=120, bbox_inches="tight")
    return buffer.getvalue()


def write_plots(directory: str, settings: dict, rows: list[dict],
                budget_ms: float | None = None) -> list[str]:
    """PNG plots (matplotlib): latency against MACs, and top-1 against latency when measured.
    Returns the file names written; raises MissingExtraError without matplotlib."""
    try:
        from matplotlib.figure import Figure
    except ImportError:
        raise MissingExtraError("plotting a sweep", missing="matplotlib") from None
    title = f"{settings.get('name')} {settings.get('precision')}, " \
            f"{settings.get('threads')} thread(s)"
    alphas = sorted({r["alpha"] for r in rows})

    def plot(name, points, x, y, *, latency_on_x, xlabel, ylabel, heading):
        """One line per alpha through its resolutions, each point labelled alpha/res; the
        budget drawn across the latency axis; log axes except for top-1."""
        fig = Figure(figsize=(7, 5))
        ax = fig.add_subplot()
        for a in alphas:
            line = sorted((r for r in points if r["alpha"] == a),
                          key=lambda r: r["resolution"])
            if not line:
                continue
            ax.plot([x(r) for r in line], [y(r) for r in line], "o-", label=f"alpha {a:g}")
            for r in line:
                ax.annotate(f"{a:g}/{r['resolution']}", (x(r), y(r)),
                            textcoords="offset points", xytext=(4, 4), fontsize=7)
        if budget_ms is not None:
            line = ax.axvline if latency_on_x else ax.axhline
            line(budget_ms, color="grey", linestyle="--", linewidth=1,
                 label=f"budget {budget_ms:g} ms")
        ax.set_xscale("log")
        if not latency_on_x:
            ax.set_yscale("log")
        _plain_ticks(ax.xaxis, *(() if latency_on_x else (ax.yaxis,)))
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.set_title(f"{heading}: {title}")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
        atomic_write_bytes(os.path.join(directory, name), _figure_bytes(fig))
        return name

    written = [plot(PLOT_LATENCY, rows, lambda r: r["macs"] / 1e6, lambda r: r["p50_ms"],
                    latency_on_x=False, xlabel="MACs (millions)", ylabel="p50 latency (ms)",
                    heading="Latency vs MACs")]
    measured = [r for r in rows if r.get("top1") is not None]
    if measured:
        written.append(plot(PLOT_ACCURACY, measured, lambda r: r["p50_ms"],
                            lambda r: r["top1"], latency_on_x=True, xlabel="p50 latency (ms)",
                            ylabel="top-1 (%)", heading="Accuracy vs latency"))
    return written


@dataclass
class SweepResult:
    """What ``run_sweep`` (or ``report``) produced."""

    directory: str
    settings: dict
    points: list[SweepPoint]
    measured: list[str] = field(default_factory=list)   # stems built/benchmarked this run
    reused: list[str] = field(default_factory=list)     # stems already complete in the folder
    files: dict = field(default_factory=dict)           # csv, md, plots -> paths
    pick: BudgetPick | None = None
    notes: list[str] = field(default_factory=list)      # e.g. why there are no plots

    def rows(self) -> list[dict]:
        return [p.row() for p in self.points]

    def to_dict(self) -> dict:
        return {"directory": self.directory, "settings": self.settings, "rows": self.rows(),
                "measured": self.measured, "reused": self.reused, "files": self.files,
                "pick": self.pick.to_dict() if self.pick else None, "notes": self.notes}


def report(directory: str, budget_ms: float | None = None, plots: bool = True) -> SweepResult:
    """(Re)write sweep.csv, sweep.md and the plots from every complete point in ``directory``."""
    directory = os.path.abspath(directory)
    settings, points = load_sweep(directory)
    if not points:
        raise EdgecnnError(f"{directory} holds no complete sweep point yet")
    rows = [p.row() for p in points]
    pick = pick_budget(rows, budget_ms) if budget_ms is not None else None
    result = SweepResult(directory, settings, points, pick=pick)
    written = []
    if plots:
        try:
            written = write_plots(directory, settings, rows, budget_ms)
        except MissingExtraError:
            result.notes.append('no plots: matplotlib is not installed (pip install matplotlib, '
                                'or pip install "edgecnn[tf]")')
    csv_path = os.path.join(directory, CSV_NAME)
    md_path = os.path.join(directory, MD_NAME)
    write_csv(csv_path, rows)
    atomic_write_bytes(md_path, markdown(settings, rows, pick, written).encode())
    result.files = {"csv": csv_path, "md": md_path,
                    "plots": [os.path.join(directory, p) for p in written]}
    return result


# ---------------------------------------------------------------------------------------------
# Running a sweep


def _machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            cpu = next((line.split(":", 1)[1].strip() for line in f
                        if line.startswith("model name")), cpu)
    except OSError:
        pass
    return f"{platform.system()} {platform.machine()}, {cpu}, {os.cpu_count()} CPU(s)"


def _prepare_dir(directory: str) -> str:
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


def _check_settings(directory: str, settings: dict) -> None:
    old = _read_json(os.path.join(directory, MANIFEST))
    if not isinstance(old, dict):
        return
    keys = [k for k in settings if k not in ("machine", "edgecnn") and old.get(k) != settings[k]]
    if keys:
        diff = ", ".join(f"{k} {old.get(k)!r} (now {settings[k]!r})" for k in keys)
        raise EdgecnnError(f"{directory} holds a sweep with other settings: {diff}; use the same "
                           f"settings to resume, or another -o folder")


def _jsonable(obj):
    if hasattr(obj, "item"):  # numpy scalars
        return obj.item()
    if hasattr(obj, "tolist"):
        return obj.tolist()
    return str(obj)


def run_sweep(name: str, alphas, resolutions, *, precision: str = "float32", threads: int = 1,
              data_dir: str | None = None, output_dir: str | None = None,
              num_classes: int = 1000, options: dict | None = None, weights="none",
              calib_samples: int = 200, io_dtype: str | None = None, xnnpack: bool = True,
              runs: int | None = None, warmup: int | None = None,
              min_seconds: float | None = None, budget_ms: float | None = None,
              plots: bool = True, quiet: bool = False) -> SweepResult:
    """Build, convert (``edgecnn convert``'s path) and benchmark every alpha x resolution point
    of ``name``; keep each point's .tflite, card and benchmark in ``output_dir`` (default
    ``sweep_{name}_{precision}``); skip points already complete there; write sweep.csv,
    sweep.md and the plots over every complete point in the folder."""
    alphas = parse_list(alphas, "alpha", float)
    resolutions = parse_list(resolutions, "resolution", int)
    if precision not in PRECISIONS:
        raise EdgecnnError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise EdgecnnError(f"threads must be a whole number >= 1, got {threads!r}")
    if budget_ms is not None:
        budget_ms = check_budget(budget_ms)  # before hours of work
    from .jobs.convert import SYNTHETIC_WARNING, run_convert
    from .models import get_model_spec
    from .models.registry import check_alpha, resolve_input_size

    spec = get_model_spec(name)
    alphas = [check_alpha(a) for a in alphas]
    resolutions = [resolve_input_size(spec, r) for r in resolutions]
    options = dict(options or {})
    if data_dir is not None:
        from .data.folder import list_image_files

        _, classes = list_image_files(data_dir)
        if len(classes) != num_classes:
            raise EdgecnnError(f"--data {data_dir} has {len(classes)} classes but the model has "
                               f"{num_classes} outputs; pass --num-classes {len(classes)} (with "
                               f"weights trained on those classes) to measure accuracy")
        data_dir = os.path.abspath(data_dir)
    directory = _prepare_dir(output_dir or default_output_dir(name, precision))
    from ._version import __version__

    settings = {"name": name, "precision": precision, "threads": threads, "xnnpack": xnnpack,
                "num_classes": num_classes, "options": options, "weights": str(weights),
                "data": data_dir, "calib_samples": calib_samples, "io_dtype": io_dtype,
                "machine": _machine(), "edgecnn": __version__}
    _check_settings(directory, settings)
    atomic_write_json(os.path.join(directory, MANIFEST), settings)

    grid = [(a, r) for a in alphas for r in resolutions]
    measured, reused = [], []
    with _Progress(len(grid), quiet) as progress:
        if precision == "int8" and data_dir is None:
            progress.warn(SYNTHETIC_WARNING)
        if data_dir is not None and str(weights).lower() == "none":
            progress.warn("--data with untrained networks (--weights none): top-1 is chance "
                          "level; pass --weights to measure real accuracy")
        for index, (alpha, resolution) in enumerate(grid):
            stem = point_stem(name, alpha, resolution, precision)
            label = f"alpha {alpha:g} resolution {resolution}"
            if load_point(directory, stem, alpha, resolution, precision, threads) is not None:
                reused.append(stem)
                progress.update(index + 1, f"{label}: already measured")
                continue
            path = os.path.join(directory, stem + ".tflite")
            try:
                if _converted(directory, stem, alpha, resolution, precision) is None:
                    progress.update(index, f"{label}: converting")
                    run_convert(name, alpha=alpha, resolution=resolution,
                                num_classes=num_classes, options=options, precision=precision,
                                weights=weights, data_dir=data_dir, calib_samples=calib_samples,
                                io_dtype=io_dtype, output=path, quiet=True)
                    _release_keras()
                progress.update(index, f"{label}: benchmarking")
                bench = _benchmark(path, threads, runs, warmup, min_seconds, xnnpack)
            except MissingExtraError:
                raise
            except EdgecnnError as exc:
                raise EdgecnnError(f"{name} {label}: {exc}") from None
            atomic_write_json(os.path.join(directory, stem + BENCH_SUFFIX), bench)
            measured.append(stem)
            progress.update(index + 1, f"{label}: done")
            progress.log(f"{name} {label}: p50 {ms(float(bench['p50_ms']))} ms")
    result = report(directory, budget_ms, plots)
    result.measured, result.reused = measured, reused
    return result


def _benchmark(path, threads, runs, warmup, min_seconds, xnnpack) -> dict:
    from .runtime.bench import benchmark

    result = benchmark(path, threads=threads, runs=runs, warmup=warmup,
                       min_seconds=min_seconds, xnnpack=xnnpack)
    return json.loads(json.dumps(dict(result), default=_jsonable))


def _release_keras() -> None:
    """Free the converted model's graph before the next point (16 models in one process)."""
    import gc

    from ._keras import keras

    keras.backend.clear_session()
    gc.collect()


class _Progress:
    """A rich progress bar over the points (stderr), or nothing when quiet."""

    def __init__(self, total: int, quiet: bool):
        self.total, self.quiet = total, quiet
        self.bar = self.task = None

    def __enter__(self):
        if not self.quiet:
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, \
                TimeElapsedColumn

            self.bar = Progress(TextColumn("{task.description}"), BarColumn(),
                                MofNCompleteColumn(), TimeElapsedColumn(),
                                console=Console(stderr=True))
            self.bar.__enter__()
            self.task = self.bar.add_task("sweep", total=self.total)
        return self

    def update(self, done: int, what: str) -> None:
        if self.bar is not None:
            self.bar.update(self.task, completed=done, description=what)

    def log(self, message: str) -> None:
        if self.bar is not None:
            self.bar.console.print(message)

    def warn(self, message: str) -> None:
        self.log(f"[bold yellow]warning:[/bold yellow] {message}")

    def __exit__(self, *exc):
        if self.bar is not None:
            self.bar.__exit__(*exc)
        return False
