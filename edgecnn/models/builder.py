"""Decode a family's stage table into blocks, and blocks into a Keras graph.

A family declares its architecture as a list of :class:`StageRow` (the paper's table) and
its rounding rules as a :class:`Rounding`; :func:`decode` applies the width multiplier to
every row and yields one resolved :class:`Block` per block, which :func:`build_blocks`
turns into layers by looking the block's kind up in :data:`BLOCK_KINDS`:

- ``ds``: depthwise separable (MobileNet V1);
- ``ir``: inverted residual with optional squeeze-excite (MobileNet V2, V3);
- ``mbconv``: inverted residual with squeeze-excite and drop-connect (EfficientNet B0-B7,
  Lite0-4);
- ``shuffle``: ShuffleNet V1 unit; ``shuffle_v2``: ShuffleNet V2 unit;
- ``xception``: Xception's block of separable convolutions.

The blocks themselves are functions of :mod:`edgecnn.models.blocks`.

Fields that only one kind has (ShuffleNet V1's ``groups``, Xception's ``filters``,
``shortcut`` and ``pool``) travel in the row's and the block's ``extra`` mapping and read
as attributes (``block.groups``). The decoded blocks are plain data: :func:`table_rows`
turns them into the printable stage table of any configuration.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Mapping, NamedTuple

from ..errors import EdgecnnError
from .blocks import (
    BatchNorm,
    depthwise_separable,
    inverted_residual,
    shuffle_unit,
    shuffle_v2_unit,
    xception_block,
)
from .scaling import make_divisible

def _extra_field(extra: Mapping | None, owner: str, name: str):
    if name.startswith("__") or not extra or name not in extra:
        raise AttributeError(f"{owner} has no field {name!r}")
    return extra[name]


class StageRow(NamedTuple):
    """One row of a paper's architecture table.

    kind: a key of :data:`BLOCK_KINDS`; repeats: blocks in the stage (the first one carries
    the stride); expansion: ratio of expanded channels to the input's (or, with
    ``Rounding(expand_from="out")``, to the output's; 1 = no expansion conv); se:
    squeeze-excite ratio (0 = none); act: activation name; extra: the kind's own fields
    (e.g. Xception's ``filters``), read as attributes too (``row.filters``).
    """

    kind: str
    repeats: int
    kernel: int
    stride: int
    expansion: float
    out: int
    se: float = 0.0
    act: str = "relu6"
    extra: Mapping | None = None

    def __getattr__(self, name):
        return _extra_field(self.extra, "StageRow", name)


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
    extra: dict = field(default_factory=dict)  # the kind's own fields (resolved)

    def __getattr__(self, name):  # self.__dict__: no recursion while unpickling
        return _extra_field(self.__dict__.get("extra"), "Block", name)


def truncate(channels: float, ratio: float) -> int:
    """``int(channels * ratio)``: the unrounded expansion of MobileNet V2 and EfficientNet."""
    return int(channels * ratio)


def divisible_by_8(channels: float, ratio: float) -> int:
    """``make_divisible(channels * ratio, 8)``: MobileNetV3's (and timm's) rounding."""
    return make_divisible(channels * ratio, 8)


def keep_extra(extra: Mapping, alpha: float) -> Mapping:
    """A row's extra fields, unscaled."""
    return extra


@dataclass(frozen=True)
class Rounding:
    """How a family turns table channels into layer channels.

    out(c, alpha): output channels of a block (no default: every family says how its width
    scales). expand(base, ratio): the expanded channels, ``base`` being the block's input
    channels or, with ``expand_from="out"``, its output channels (ShuffleNet's bottleneck
    is a fraction of the unit's output); default :func:`truncate`. se(base, ratio): the
    squeeze-excite's reduced channels, ``base`` being the expanded channels or, with
    ``se_from="in"``, the block's input channels (EfficientNet); default
    :func:`divisible_by_8`. extra(fields, alpha): a kind's extra fields scaled by ``alpha``
    (Xception's filters); default :func:`keep_extra`, unchanged.
    """

    out: Callable[[int, float], int]
    expand: Callable[[int, float], int] = truncate
    se: Callable[[int, float], int] = divisible_by_8
    extra: Callable[[Mapping, float], Mapping] = keep_extra
    expand_from: str = "in"   # "in" or "out"
    se_from: str = "expanded"  # "expanded" or "in"


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
            extra = dict(rounding.extra(row.extra, alpha)) if row.extra else {}
            for repeat in range(row.repeats):
                base = out if rounding.expand_from == "out" else in_channels
                expand = rounding.expand(base, row.expansion) if row.expansion != 1 else None
                se_base = in_channels if rounding.se_from == "in" else expand or in_channels
                se = rounding.se(se_base, row.se) if row.se else None
                blocks.append(Block(row.kind, stage, len(blocks), b, in_channels, out,
                                    row.kernel, row.stride if repeat == 0 else 1, expand, se,
                                    row.act, extra))
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


# --- the block kinds: Block -> block of the library --------------------------------------
# Each takes (x, block, names, bn, pad, se_gate, drop_rate) and uses what it needs.

def _ds(x, b: Block, names, bn, pad, se_gate, drop_rate):
    return depthwise_separable(x, b.out, kernel=b.kernel, stride=b.stride, act=b.act,
                               names=names, bn=bn, pad=pad)


def _ir(x, b: Block, names, bn, pad, se_gate, drop_rate):
    return inverted_residual(x, expand=b.expand, out=b.out, kernel=b.kernel, stride=b.stride,
                             act=b.act, names=names, bn=bn, pad=pad, se=b.se, se_gate=se_gate)


def _mbconv(x, b: Block, names, bn, pad, se_gate, drop_rate):
    """EfficientNet's MBConv: the inverted residual with its squeeze-excite (activation the
    block's, a sigmoid gate) and drop-connect."""
    return inverted_residual(x, expand=b.expand, out=b.out, kernel=b.kernel, stride=b.stride,
                             act=b.act, names=names, bn=bn, pad=pad, se=b.se, se_act=b.act,
                             se_gate="sigmoid", drop_rate=drop_rate)


def _shuffle(x, b: Block, names, bn, pad, se_gate, drop_rate):
    # the network's first unit takes the stem's few channels: its 1x1 conv is not grouped
    return shuffle_unit(x, bottleneck=b.expand, out=b.out, kernel=b.kernel, stride=b.stride,
                        groups=b.groups, expand_groups=1 if b.index == 0 else b.groups,
                        names=names, bn=bn)


def _shuffle_v2(x, b: Block, names, bn, pad, se_gate, drop_rate):
    return shuffle_v2_unit(x, branch=b.expand, out=b.out, kernel=b.kernel, stride=b.stride,
                           names=names, bn=bn, layout=b.extra.get("layout", "megvii"))


def _xception(x, b: Block, names, bn, pad, se_gate, drop_rate):
    return xception_block(x, b.filters, act_at=b.act_at, first_act=b.first_act,
                          after_add=b.after_add, shortcut=b.shortcut, pool=b.pool,
                          names=names, bn=bn)


#: Block kind -> function adding that block to a graph.
BLOCK_KINDS: dict[str, Callable] = {
    "ds": _ds, "ir": _ir, "mbconv": _mbconv, "shuffle": _shuffle, "shuffle_v2": _shuffle_v2,
    "xception": _xception,
}


def build_blocks(x, blocks: list[Block], *, names: Callable[[Block], dict], bn: BatchNorm,
                 pad: str = "keras", se_gate: str = "hard_sigmoid", drop_connect: float = 0.0):
    """Add every block to the graph ``x`` and return the last output.

    ``names(block)`` maps each layer role of the block to its name; ``pad`` is the stride-2
    padding mode (:func:`edgecnn.models.blocks.stride_pad`); ``se_gate`` the gate of the
    ``ir`` kind's squeeze-excite; ``drop_connect`` the drop-connect rate of the last
    ``mbconv`` block (block ``i`` of ``n`` drops ``drop_connect * i / n``).
    """
    unknown = sorted({b.kind for b in blocks} - set(BLOCK_KINDS))
    if unknown:
        raise ValueError(f"unknown block kind {', '.join(map(repr, unknown))}; known kinds: "
                         f"{', '.join(sorted(BLOCK_KINDS))}")
    for block in blocks:
        x = BLOCK_KINDS[block.kind](x, block, names(block), bn, pad, se_gate,
                                    drop_connect * block.index / len(blocks))
    return x


def block_row(b: Block) -> dict:
    """A block as a row of the printable stage table (``repeats`` is added by
    :func:`table_rows`)."""
    return {"stage": b.stage, "kind": b.kind, "kernel": b.kernel, "stride": b.stride,
            "in": b.in_channels, "expand": b.expand or "-", "out": b.out,
            "se": b.se or "-", "act": b.act}


def table_rows(blocks: list[Block], row: Callable[[Block], dict] = block_row) -> list[dict]:
    """Blocks as printable rows (``row`` formats one block); identical consecutive rows
    are merged into one with a repeat count."""
    rows: list[dict] = []
    for b in blocks:
        line = {**row(b), "repeats": 1}
        if rows and {**rows[-1], "repeats": 1} == line:
            rows[-1]["repeats"] += 1
        else:
            rows.append(line)
    return rows
