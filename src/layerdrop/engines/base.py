"""What every engine does: execute submitted runs somewhere and hand each back as it finishes."""

from __future__ import annotations

import traceback
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from layerdrop.engines import ExecutionSettings

Spec = dict[str, Any]  # a RunConfig as a plain dict: what crosses process boundaries and is stored
Result = dict[str, Any]
Runner = Callable[[Spec], Result]  # must be importable by name (or picklable) where the engine runs it


@dataclass(frozen=True)
class Finished:
    """One run back from an engine: its result, or the error that ended it with the traceback where it ran."""

    key: str
    result: Result | None = None
    error: BaseException | None = None
    detail: str = ""

    @classmethod
    def failed(cls, key: str, error: BaseException, detail: str | None = None) -> Finished:
        """A failed run; `detail` defaults to the error's traceback, which is complete where it was raised."""
        detail = detail if detail is not None else "".join(traceback.format_exception(error))
        return cls(key, error=error, detail=detail)


class Engine(ABC):
    """Runs submitted specs and returns them one by one as they finish, in whatever order they finish.

    The sweep driver submits a run once everything it needs has finished (`sweep.Job.needs`), then
    waits with `next_finished`; `slots` says how many runs can be in flight at once (progress
    shows min(slots, runs outstanding) as running). Engines keep no state across invocations.
    """

    def __init__(self, settings: ExecutionSettings, runner: Runner, runs: int) -> None:
        """Start executing `runner` for about `runs` runs (how many the engine will be given)."""
        self.settings = settings
        self.runner = runner
        self.runs = runs

    @abstractmethod
    def submit(self, key: str, spec: Spec) -> None:
        """Start (or queue) one run."""

    @abstractmethod
    def next_finished(self) -> Finished:
        """Block until a submitted run finishes; never raises for the run's own failure."""

    @abstractmethod
    def slots(self) -> int:
        """How many runs can execute at the same time now."""

    @abstractmethod
    def describe(self) -> str:
        """Where the runs execute, in a few words (shown when the sweep starts)."""

    @abstractmethod
    def close(self) -> None:
        """Stop whatever is still running and release what the engine started."""

    def __enter__(self) -> Engine:
        """The engine itself: `with open_engine(...) as engine` closes it however the block ends."""
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        """Close the engine."""
        self.close()
