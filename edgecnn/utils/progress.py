"""The one rich progress display of long work (conversion, evaluation, sweeps, training).

``Progress`` is a context manager around a ``rich.progress.Progress`` with edgecnn's columns
(description, bar, done/total, elapsed time). ``task(description, total)`` adds a task and
returns ``advance(done, total=None, description=None)``, the callback that the library's
``progress=`` parameters take. When the display is off (``quiet``, e.g. with --json, or not a
terminal with ``terminal_only``), ``task`` returns a callback that does nothing and
``log``/``warn`` print nothing, so callers never test for a bar. rich is imported only when a
bar is drawn.
"""
from __future__ import annotations

from typing import Callable

Advance = Callable[..., None]


def _nothing(done=None, total=None, description=None, **fields) -> None:
    return None


class Progress:
    """A rich progress bar, or nothing.

    quiet: draw nothing (machine-readable output, or a job inside another one's bar).
    stderr: draw on stderr (the default: stdout carries results); ``False`` draws on stdout.
    transient: the bar disappears when the block ends; ``False`` leaves the finished bar.
    terminal_only: draw only when the stream is a terminal. With ``False`` a stream that is
    not a terminal (a pipe, a log file) still gets the finished bar (unless transient) and
    every ``log``/``warn`` line: the sweep keeps that record of a long run in its logs.
    console: draw on this rich Console instead (e.g. training's, quiet on non-chief workers).
    fields: names of extra text columns after the time (e.g. ``("metrics",)``), set through
    ``advance(..., name=text)``.
    """

    def __init__(self, quiet: bool = False, *, stderr: bool = True, transient: bool = True,
                 terminal_only: bool = True, console=None, fields: tuple = ()):
        self.quiet, self.stderr = quiet, stderr
        self.transient, self.terminal_only = transient, terminal_only
        self.console, self.fields = console, tuple(fields)
        self.bar = None

    def __enter__(self) -> Progress:
        if self.quiet:
            return self
        from rich.console import Console

        console = self.console or Console(stderr=self.stderr)
        if self.terminal_only and not console.is_terminal:
            return self
        from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn
        from rich.progress import Progress as RichProgress

        self.bar = RichProgress(TextColumn("{task.description}"), BarColumn(),
                                MofNCompleteColumn(), TimeElapsedColumn(),
                                *(TextColumn(f"{{task.fields[{name}]}}") for name in self.fields),
                                transient=self.transient, console=console)
        self.bar.__enter__()
        return self

    def __exit__(self, *exc) -> bool:
        if self.bar is not None:
            self.bar.__exit__(*exc)
        return False

    def task(self, description: str, total: int | None = None) -> Advance:
        """A new task; returns ``advance(done, total=None, description=None, **fields)``,
        which sets the number done (and the total, the description or a field when given)."""
        if self.bar is None:
            return _nothing
        bar = self.bar
        task_id = bar.add_task(description, total=total, **{name: "" for name in self.fields})

        def advance(done, total=None, description=None, **fields) -> None:
            if total is not None:
                fields["total"] = total
            if description is not None:
                fields["description"] = description
            bar.update(task_id, completed=done, **fields)
        advance.task_id = task_id
        return advance

    def remove(self, advance: Advance) -> None:
        """Take a finished task off the display."""
        if self.bar is not None and hasattr(advance, "task_id"):
            self.bar.remove_task(advance.task_id)

    def log(self, message: str) -> None:
        """A line (rich markup) printed above the bar."""
        if self.bar is not None:
            self.bar.console.print(message)

    def warn(self, message: str) -> None:
        """``warning: message`` printed above the bar."""
        self.log(f"[bold yellow]warning:[/bold yellow] {message}")
