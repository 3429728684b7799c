"""Where a sweep's runs execute: one registered entry per engine, its module imported only when chosen.

Every engine has the same small job (see `base.Engine`): take runs, execute them somewhere, hand
each result or error back to the sweep driver as it finishes. Engines never touch the results
database; the driver is its only writer, so resuming after any kill works the same on every engine.
Adding an engine is one entry here and one module defining `Engine`.
"""

from __future__ import annotations

import importlib
import importlib.util
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pydantic import Field, field_validator, model_validator

from layerdrop.errors import LayerDropError
from layerdrop.settings import Settings, named

if TYPE_CHECKING:
    from layerdrop.engines.base import Engine, Runner


@dataclass(frozen=True)
class EngineEntry:
    """An engine: its name, what it does, the module defining its `Engine`, and what it needs installed."""

    name: str
    description: str
    module: str
    requires: str | None = None  # top-level package the engine imports
    extra: str | None = None  # the layerdrop extra that installs it


ENGINES: dict[str, EngineEntry] = {
    entry.name: entry
    for entry in (
        EngineEntry(
            "local",
            "this machine: runs in this process, or a pool of `workers` processes pinned to one GPU each",
            "layerdrop.engines.local",
        ),
        EngineEntry(
            "ray",
            "a Ray cluster (started here, or joined with `address`): one task per run, one GPU each "
            "where the cluster has GPUs, one CPU otherwise",
            "layerdrop.engines.ray",
            requires="ray",
            extra="ray",
        ),
    )
}


class ExecutionSettings(Settings):
    """Where and how a sweep's runs execute (see `layerdrop.engines`); the CLI's flags override the config's keys."""

    engine: str = Field("local", description="local (this machine) or ray (a Ray cluster; needs layerdrop's ray extra)")
    address: str | None = Field(
        None, description="ray: the cluster to join, auto or HOST:PORT (default: start Ray on this machine)"
    )
    workers: int = Field(1, gt=0, description="local: parallel runs, one GPU each when there are several")
    retries: int = Field(
        1, ge=0, description="ray: restarts of a run whose worker or node dies (a run that raises reruns on resume)"
    )

    @field_validator("engine")
    @classmethod
    def _known_engine(cls, name: str) -> str:
        if name not in ENGINES:
            raise ValueError(f"unknown engine {name!r}; choose one of {', '.join(ENGINES)}")
        return name

    @model_validator(mode="after")
    def _address_needs_ray(self) -> ExecutionSettings:
        if self.address is not None and self.engine != "ray":
            raise ValueError(f"{named('address')} is for {named('engine')} ray")
        return self


def get_engine(name: str) -> EngineEntry:
    """The registered engine called `name`; an unknown name lists the known ones."""
    if name not in ENGINES:
        raise LayerDropError(f"unknown engine {name!r}; choose one of {', '.join(ENGINES)}")
    return ENGINES[name]


def check_available(name: str) -> EngineEntry:
    """The engine, after checking that what it needs is installed (one line naming the extra if not)."""
    entry = get_engine(name)
    if entry.requires and importlib.util.find_spec(entry.requires) is None:
        raise LayerDropError(
            f"{named('engine')} {entry.name} needs {entry.requires}: pip install 'layerdrop[{entry.extra}]'"
        )
    return entry


def open_engine(settings: ExecutionSettings, runner: Runner, runs: int) -> Engine:
    """Start the engine `settings` names for `runs` runs of `runner`; close it (or use `with`) when done."""
    entry = check_available(settings.engine)
    return importlib.import_module(entry.module).Engine(settings, runner, runs)
