"""Width x resolution sweeps: build, convert and benchmark every (alpha, resolution) point of
a network, then tabulate, plot and pick the best configuration for a latency budget.

- ``run``: ``run_sweep`` (orchestration; resumes from the points already in the folder),
  ``parse_list``;
- ``store``: the sweep folder's files: ``SweepPoint``, ``load_point``, ``load_sweep``, the
  settings manifest, the CSV, and ``devices/<serial>/`` (an adb device's benchmarks);
- ``pick``: ``pick_budget`` and ``BudgetPick`` (the latency-budget pick);
- ``reports``: ``report`` (sweep.csv, sweep.md and the plots) and ``SweepResult``.

Reading a finished sweep (``load_sweep``, ``pick_budget``) needs neither TensorFlow nor
ai-edge-litert; importing this package loads neither.
"""
from .pick import BudgetPick, check_budget, pick_budget
from .reports import SweepResult, markdown, report, write_plots
from .run import PRECISIONS, default_output_dir, parse_list, run_sweep
from .store import (SweepPoint, device_dir, load_point, load_sweep, ms, point_stem,
                    sweep_devices, write_csv)

__all__ = ["PRECISIONS", "BudgetPick", "SweepPoint", "SweepResult", "check_budget",
           "default_output_dir", "device_dir", "load_point", "load_sweep", "markdown", "ms",
           "parse_list", "pick_budget", "point_stem", "report", "run_sweep", "sweep_devices",
           "write_csv", "write_plots"]
