"""What a running sweep shows: runs done, running and failed, and an estimate of the time left.

On a terminal, a live bar with the per-run lines scrolling above it; in a log (not a terminal),
one line per event, each with the same counts, so a sweep never goes quiet for long in either.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import timedelta
from types import TracebackType

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn


class SweepProgress:
    """Counts of one sweep invocation and their display; `running` is what the engine has in flight."""

    def __init__(self, console: Console, total: int, skipped: int, clock: Callable[[], float] = time.monotonic) -> None:
        """Start counting: `total` runs in the sweep, `skipped` of them already in the database."""
        self.console = console
        self.total = total
        self.skipped = skipped
        self.finished = 0
        self.failed = 0
        self.running = 0
        self.clock = clock
        self.start = clock()
        self.bar: Progress | None = None
        self.bar_task = None

    @property
    def done(self) -> int:
        """Runs in the database: those there before and those finished now."""
        return self.skipped + self.finished

    def seconds_left(self) -> float | None:
        """The runs still to go at this invocation's pace so far (parallelism included); None before any ended."""
        ended = self.finished + self.failed
        if not ended:
            return None
        return (self.clock() - self.start) / ended * (self.total - self.done - self.failed)

    def status(self) -> str:
        """Running, failed and the time left, as the bar and every line show them."""
        left = self.seconds_left()
        eta = "time left unknown" if left is None else f"about {timedelta(seconds=round(left))} left"
        return f"running {self.running}, failed {self.failed}, {eta}"

    def set_running(self, running: int) -> None:
        """The engine now has `running` runs in flight."""
        self.running = running
        self._refresh()

    def run_finished(self, what: str, score: float, running: int) -> None:
        """A run was recorded: one line with its score."""
        self.finished += 1
        self.running = running
        self._line(f"done {escape(what)}: score {score:.4f}")

    def run_failed(self, what: str, message: str, running: int) -> None:
        """A run failed: one line with its error."""
        self.failed += 1
        self.running = running
        self._line(f"[red]failed[/] {escape(what)}: {escape(message)}")

    def _line(self, text: str) -> None:
        self.console.print(f"[{self.done + self.failed}/{self.total}] {text} ({self.status()})", highlight=False)
        self._refresh()

    def _refresh(self) -> None:
        if self.bar is not None:
            self.bar.update(self.bar_task, completed=self.done + self.failed, status=self.status())

    def __enter__(self) -> SweepProgress:
        """Show the bar, on a terminal."""
        if self.console.is_terminal:
            columns = (
                TextColumn("sweep"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[status]}"),
                TimeElapsedColumn(),
            )
            self.bar = Progress(*columns, console=self.console)
            self.bar_task = self.bar.add_task("runs", total=self.total, completed=self.done, status=self.status())
            self.bar.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        """Leave the bar's final state on the terminal."""
        if self.bar is not None:
            self.bar.stop()
