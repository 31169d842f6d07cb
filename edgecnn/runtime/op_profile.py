"""The operator profiles of a ``benchmark_model`` output (``--enable_op_profiling=true``, or
LiteRT's ``--use_profiler=true``), parsed into data.

The tool prints, for benchmark initialization and for the regular runs, three tab-separated
tables: "Run Order" (one row per node, in execution order), "Top by Computation Time" (the
slowest rows first, ten by default) and "Summary by node type" (one row per op type),
then ``Timings (microseconds):`` for the profiled runs and ``N nodes observed``. Generations differ: the classic tool has a
``[start]`` column, names like ``[MobilenetV1/.../Relu6]:3`` (older builds: no ``:index``,
``[times called]`` 0); LiteRT's has no ``[start]``, prefixes lines with ``INFO: [file:line]``
and prints no section title. Columns are read by their header, so any subset and order of
the known columns parses.

Each section: ``{"section": "initialization" | "regular" | "profile", "run_order": [row],
"top": [row], "summary": [summary row], "timings_us": {...} | None, "nodes_executed": n,
"nodes_observed": n}``. Times in ms as printed; shares in percent.
"""
from __future__ import annotations

import re

# "INFO: " and LiteRT's "INFO: [file.cc:123] " (not "[Init Phase]", which is the message)
_PREFIX = re.compile(r"^(?:INFO|WARN|WARNING|VERBOSE):\s*(?:\[[^\]]*:\d+\]\s*)?")
_TABLE = re.compile(r"^=+\s*(Run Order|Top by Computation Time|Summary by node type)\s*=+$")
_TIMINGS = re.compile(r"^Timings \(microseconds\):\s*(.*)$")
_PAIR = re.compile(r"(\w+)=([-+0-9.eE]+)")
_OBSERVED = re.compile(r"^(\d+) nodes observed$")
_EXECUTED = re.compile(r"^Number of nodes executed:\s*(\d+)$")
SECTIONS = {"Profiling Info for Benchmark Initialization:": "initialization",
            "Operator-wise Profiling Info for Regular Benchmark Runs:": "regular"}
TABLES = {"Run Order": "run_order", "Top by Computation Time": "top",
          "Summary by node type": "summary"}
COLUMNS = {"node type": "node_type", "start": "start_ms", "first": "first_ms",
           "avg ms": "avg_ms", "%": "percent", "avg %": "percent", "cdf%": "cdf_percent",
           "cdf %": "cdf_percent", "mem kb": "mem_kb", "times called": "times_called",
           "count": "count", "name": "name"}
TEXT = {"node_type", "name"}
INTEGER = {"times_called", "count"}


def strip_log_prefix(line: str) -> str:
    """A log line without its ``INFO: `` (and LiteRT's ``[file.cc:123] ``) prefix."""
    return _PREFIX.sub("", line.strip()).strip()


def _columns(header: str) -> list[str] | None:
    cells = [c.strip() for c in header.split("\t") if c.strip()]
    names = [COLUMNS.get(c.strip("[]").strip().lower()) for c in cells]
    if not cells or not all(c.startswith("[") for c in cells) or None in names:
        return None
    return names


def _row(line: str, columns: list[str]) -> dict | None:
    cells = [c.strip() for c in line.strip("\n").split("\t")]
    while cells and not cells[0]:
        cells.pop(0)
    if len(cells) != len(columns):
        return None
    row = {}
    for key, cell in zip(columns, cells):
        if key in TEXT:
            row[key] = cell
            continue
        try:
            value = float(cell.rstrip("%"))
        except ValueError:
            return None
        row[key] = int(value) if key in INTEGER else value
    return row


def parse_op_profiles(text: str) -> list[dict]:
    """Every profile section of a ``benchmark_model`` output, in order (empty when the run
    was not profiled)."""
    sections: list[dict] = []
    current = table = columns = None

    def open_section(kind: str) -> dict:
        section = {"section": kind, "run_order": [], "top": [], "summary": [],
                   "timings_us": None, "nodes_executed": None, "nodes_observed": None}
        sections.append(section)
        return section

    for raw in text.splitlines():
        line = strip_log_prefix(raw)
        stripped = line.strip()
        if stripped in SECTIONS:
            current, table, columns = open_section(SECTIONS[stripped]), None, None
            continue
        match = _TABLE.match(stripped)
        if match:
            key = TABLES[match.group(1)]
            if current is None or (current[key] and key == "run_order") or \
                    current["nodes_observed"] is not None:
                current = open_section("profile")   # LiteRT prints no section title
            table, columns = key, None
            continue
        if table is not None and columns is None:
            columns = _columns(line)
            if columns is None:
                table = None
            continue
        if table is not None and stripped:
            row = _row(line, columns)
            if row is not None:
                current[table].append(row)
                continue
            table = columns = None
        if current is None:
            continue
        match = _TIMINGS.match(stripped)
        if match:
            current["timings_us"] = {k: float(v) for k, v in _PAIR.findall(match.group(1))}
            continue
        match = _EXECUTED.match(stripped) or _OBSERVED.match(stripped)
        if match:
            key = "nodes_executed" if stripped.startswith("Number") else "nodes_observed"
            current[key] = int(match.group(1))
    return sections


def regular_profile(text: str) -> dict | None:
    """The profile of the regular (timed) runs: the "Regular Benchmark Runs" section, else
    the last untitled one (LiteRT), else None."""
    sections = parse_op_profiles(text)
    for kind in ("regular", "profile"):
        found = [s for s in sections if s["section"] == kind]
        if found:
            return found[-1]
    return None
