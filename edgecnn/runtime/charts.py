"""PNG charts for the reports (``--plot``): matplotlib's object API (no pyplot, no GUI
backend, no global state), written atomically. matplotlib comes with the full install; on
the light install ``--plot`` says how to get it."""
from __future__ import annotations

import io

from ..errors import MissingExtraError


def figure(what: str, size: tuple[float, float]):
    """A new matplotlib Figure, or a one-line error naming ``what`` needs matplotlib."""
    try:
        from matplotlib.figure import Figure
    except ImportError:
        raise MissingExtraError(what, missing="matplotlib") from None
    return Figure(figsize=size)


def save_png(fig, output: str) -> str:
    """Write ``fig`` to ``output`` as a PNG, atomically; returns the path."""
    from ..utils.files import atomic_write_bytes

    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    atomic_write_bytes(output, buffer.getvalue())
    return output


def bar_chart(output: str, labels: list[str], values: list[float], *, title: str, xlabel: str,
              what: str, highlight: list[bool] | None = None, note: str | None = None) -> str:
    """Horizontal bars, first label at the top; ``highlight``ed bars drawn in another
    colour; each bar's value written at its end."""
    from ..utils.files import check_output_path

    output = check_output_path(output)
    height = min(2.0 + 0.28 * len(labels), 60.0)
    fig = figure(what, (10.0, height))
    ax = fig.add_subplot()
    colours = ["#d62728" if highlight and highlight[i] else "#1f77b4"
               for i in range(len(labels))]
    positions = list(range(len(labels)))[::-1]
    ax.barh(positions, values, color=colours)
    ax.set_yticks(positions, labels, fontsize=8)
    ax.set_xlabel(xlabel)
    ax.set_title(title, fontsize=10)
    span = max([abs(v) for v in values] + [1e-9])
    for y, v in zip(positions, values):
        ax.text(v + 0.01 * span, y, f"{v:.4g}", va="center", fontsize=7)
    if note:
        ax.text(0.99, 0.01, note, transform=ax.transAxes, ha="right", va="bottom", fontsize=7,
                color="#555555")
    return save_png(fig, output)
