"""A sweep's report over every complete point of its folder: sweep.csv, sweep.md (settings,
the table, alpha x resolution grids, the budget pick) and the PNG plots (matplotlib, when
installed); ``report`` (re)writes them all and returns a ``SweepResult``.
"""
from __future__ import annotations

import io
import os
from dataclasses import dataclass, field

from ...utils.files import atomic_write_bytes
from ...errors import EdgecnnError, MissingExtraError
from .pick import BudgetPick, pick_budget
from .store import CSV_NAME, MD_NAME, SweepPoint, device_dir, load_sweep, ms, write_csv

PLOT_LATENCY = "sweep_latency_vs_macs.png"
PLOT_ACCURACY = "sweep_accuracy_vs_latency.png"


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
    threads = first.get("threads", settings.get("threads"))
    device = settings.get("device")
    if device:
        measured_on = (f"{device.get('device') or 'Android device'} (adb serial "
                       f"{device['serial']}, {device.get('abi') or 'ABI unknown'})")
        benchmark = (f"TFLite benchmark_model ({device.get('binary')}) over adb, {threads} "
                     f"thread(s), delegate {device.get('delegate')}"
                     + (f", taskset {device['taskset']}" if device.get("taskset") else "")
                     + ", latency = median (p50) of the timed runs")
    else:
        measured_on = settings.get("machine", "?")
        benchmark = (f"{threads} thread(s), XNNPACK "
                     f"{'on' if settings.get('xnnpack', True) else 'off'}, latency = median "
                     f"(p50) of the steady-state runs")
    lines = [f"# {settings.get('name')} width x resolution sweep ({settings.get('precision')})",
             "", f"- measured on: {measured_on}", f"- benchmark: {benchmark}",
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
    means = [r for r in rows if r.get("p50_stat") == "mean"]
    if means:
        lines += ["", "This benchmark_model prints no median: the p50 column of "
                  + ", ".join(f"alpha {r['alpha']:g} resolution {r['resolution']}"
                              for r in means) + " is the mean of the timed runs."]
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
    device = settings.get("device")
    title = f"{settings.get('name')} {settings.get('precision')}, " \
            f"{settings.get('threads')} thread(s)" + \
            (f", {device.get('device') or device['serial']}" if device else "")
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
    device: str | None = None                           # the adb serial it was measured on

    def rows(self) -> list[dict]:
        return [p.row() for p in self.points]

    def to_dict(self) -> dict:
        return {"directory": self.directory, "device": self.device,
                "settings": self.settings, "rows": self.rows(),
                "measured": self.measured, "reused": self.reused, "files": self.files,
                "pick": self.pick.to_dict() if self.pick else None, "notes": self.notes}


def report(directory: str, budget_ms: float | None = None, plots: bool = True,
           device: str | None = None) -> SweepResult:
    """(Re)write sweep.csv, sweep.md and the plots from every complete point in ``directory``
    (measured on this machine), or with ``device`` (an adb serial) from that device's
    benchmarks, into its folder ``devices/<serial>/``."""
    directory = os.path.abspath(directory)
    settings, points = load_sweep(directory, device)
    if not points:
        raise EdgecnnError(f"{directory} holds no complete sweep point yet"
                           + (f" for device {device}" if device else ""))
    out = device_dir(directory, device) if device else directory
    rows = [p.row() for p in points]
    pick = pick_budget(rows, budget_ms) if budget_ms is not None else None
    result = SweepResult(directory, settings, points, pick=pick, device=device)
    written = []
    if plots:
        try:
            written = write_plots(out, settings, rows, budget_ms)
        except MissingExtraError:
            result.notes.append('no plots: matplotlib is not installed (pip install matplotlib, '
                                'or pip install "edgecnn[tf]")')
    csv_path = os.path.join(out, CSV_NAME)
    md_path = os.path.join(out, MD_NAME)
    write_csv(csv_path, rows)
    atomic_write_bytes(md_path, markdown(settings, rows, pick, written).encode())
    result.files = {"csv": csv_path, "md": md_path,
                    "plots": [os.path.join(out, p) for p in written]}
    return result
