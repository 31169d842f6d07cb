"""The latency-budget pick: from a sweep's points, the configuration with the most MACs (or
the best top-1) whose p50 latency fits a budget, with the runner-up and the next step over
it. Plain data, no TensorFlow and no LiteRT (``edgecnn pick`` reads a finished sweep).
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from ...errors import EdgecnnError
from .store import SweepPoint, ms


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
