"""Decode a family's stage table into blocks, and blocks into a Keras graph.

A family declares its architecture as a list of :class:`StageRow` (the paper's table) and
its rounding rules as a :class:`Rounding`; :func:`decode` applies the width multiplier to
every row and yields one resolved :class:`Block` per block, which :func:`build_blocks`
turns into layers. The decoded blocks are plain data (no TensorFlow), so the CLI can print
the stage table of any configuration.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Callable, NamedTuple

from ..errors import EdgecnnError


class StageRow(NamedTuple):
    """One row of a paper's architecture table.

    kind: "ds" (depthwise separable) or "ir" (inverted residual); repeats: blocks in the
    stage (the first one carries the stride); expansion: ratio of expanded to input
    channels (1 = no expansion conv); se: squeeze-excite ratio of the expanded channels
    (0 = none); act: activation name.
    """

    kind: str
    repeats: int
    kernel: int
    stride: int
    expansion: float
    out: int
    se: float = 0.0
    act: str = "relu6"


@dataclass(frozen=True)
class Block:
    """A resolved block: every channel count is final."""

    kind: str
    stage: int
    index: int  # position in the network, counted from 0
    block: int  # position in its stage, counted from 0
    in_channels: int
    out: int
    kernel: int
    stride: int
    expand: int | None
    se: int | None
    act: str


@dataclass(frozen=True)
class Rounding:
    """How a family turns table channels into layer channels.

    out(c, alpha): output channels of a block; expand(in_channels, ratio): the expanded
    channels; se(expanded, ratio): the squeeze-excite's reduced channels.
    """

    out: Callable[[int, float], int]
    expand: Callable[[int, float], int]
    se: Callable[[int, float], int]


def decode(stages: list, alpha: float, in_channels: int, rounding: Rounding,
           first_stage: int = 1) -> list[Block]:
    """Apply ``alpha`` and the family's rounding to every row; one Block per block.

    ``stages`` is a list whose items are a StageRow (a stage of identical blocks) or a list
    of StageRows (a stage whose blocks differ, as in MobileNetV3's tables).
    """
    blocks: list[Block] = []
    for stage, rows in enumerate(stages, start=first_stage):
        b = 0
        for row in [rows] if isinstance(rows, StageRow) else rows:
            out = rounding.out(row.out, alpha)
            for repeat in range(row.repeats):
                expand = rounding.expand(in_channels, row.expansion) \
                    if row.expansion != 1 else None
                se = rounding.se(expand or in_channels, row.se) if row.se else None
                blocks.append(Block(row.kind, stage, len(blocks), b, in_channels, out,
                                    row.kernel, row.stride if repeat == 0 else 1, expand, se,
                                    row.act))
                in_channels = out
                b += 1
    return blocks


def require_channels(name: str, alpha: float, **channels: int) -> None:
    """Refuse a width multiplier that rounds some layer down to zero channels."""
    for what, count in channels.items():
        if count < 1:
            raise EdgecnnError(
                f"alpha {alpha:g} is too small for {name}: its {what} would have {count} "
                f"channels; use a larger alpha")


def with_options(blocks: list[Block], **changes) -> list[Block]:
    """The same blocks with some fields replaced (e.g. ``act="relu"``)."""
    return [replace(b, **changes) for b in blocks]


def build_blocks(x, blocks: list[Block], *, names: Callable[[Block], dict], bn, pad: str,
                 se_gate: str = "hard_sigmoid"):
    """Add every block to the graph ``x`` and return the last output."""
    from .blocks import depthwise_separable, inverted_residual

    for block in blocks:
        layer_names = names(block)
        if block.kind == "ds":
            x = depthwise_separable(x, block.out, kernel=block.kernel, stride=block.stride,
                                    act=block.act, names=layer_names, bn=bn, pad=pad)
        elif block.kind == "ir":
            x = inverted_residual(x, expand=block.expand, out=block.out, kernel=block.kernel,
                                  stride=block.stride, act=block.act, names=layer_names, bn=bn,
                                  pad=pad, se=block.se, se_gate=se_gate)
        else:
            raise ValueError(f"unknown block kind {block.kind!r}")
    return x


def table_rows(blocks: list[Block]) -> list[dict]:
    """Blocks as printable rows; identical consecutive blocks of a stage are merged."""
    rows: list[dict] = []
    for b in blocks:
        row = {"stage": b.stage, "kind": b.kind, "kernel": b.kernel, "stride": b.stride,
               "in": b.in_channels, "expand": b.expand or "-", "out": b.out,
               "se": b.se or "-", "act": b.act, "repeats": 1}
        if rows and {**rows[-1], "repeats": 1} == row:
            rows[-1]["repeats"] += 1
        else:
            rows.append(row)
    return rows
