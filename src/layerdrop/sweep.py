"""Sweeps: a YAML grid of runs, validated up front, executed resumably into SQLite.

Each finished run becomes one row keyed by a hash of its spec, inserted in a single transaction
after the run returns. Killing a sweep at any moment therefore loses at most the runs in flight,
and rerunning the same config runs exactly the missing grid points. Runs execute on an engine
(`layerdrop.engines`: this machine, or a Ray cluster); whichever it is, results come back to this
process, the only writer of the database. A failed run is recorded with its error in the
`failures` table and runs again on the next resume.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import sqlite3
from collections.abc import Sequence
from contextlib import closing
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import AfterValidator, BeforeValidator, ConfigDict, Field, PositiveInt, ValidationError, model_validator
from rich.console import Console

from layerdrop.engines import ExecutionSettings, check_available, open_engine
from layerdrop.engines.base import Finished, Result, Runner, Spec
from layerdrop.errors import LayerDropError
from layerdrop.experiment import FULL_MODEL, Regime, RunConfig
from layerdrop.settings import DistillConfig, describe_error, naming
from layerdrop.sweep_progress import SweepProgress

# What identifies a run in the database and the report; every result must have these and more.
IDENTITY = ("model", "task", "strategy", "num_drop", "seed", "regime")
RESULT_KEYS = (*IDENTITY, "score", "metrics")
# Settings that say where things are, not what is computed: left out of run keys, so moving the
# data folder does not rerun the grid.
LOCATIONS = {"data", "teacher"}


def _canonical_task(name: str) -> str:
    """The registered name of a task ("STS-B" -> "stsb"), so equal runs get equal keys."""
    from layerdrop.glue.tasks import get_task

    try:
        return get_task(name).name
    except LayerDropError as err:
        raise ValueError(str(err)) from None


def _known_strategy(name: str) -> str:
    from layerdrop.strategies import STRATEGIES

    if name not in STRATEGIES:
        raise ValueError(f"unknown strategy {name!r}{_suggest(name, list(STRATEGIES))}")
    return name


KList = Annotated[list[PositiveInt], Field(min_length=1)]
TaskName = Annotated[str, AfterValidator(_canonical_task)]
StrategyName = Annotated[str, AfterValidator(_known_strategy)]


class SweepConfig(ExecutionSettings):
    """The keys a sweep YAML may hold; any other key is a typo and is refused.

    The grid axes name models, tasks, strategies, K, seeds and regimes; `run` holds any other
    setting of a run (a `RunConfig` field: data, max_train_samples, training: {epochs, …}), the
    same for every grid point; `per_task` and `strategy_options` refine it per task and per
    strategy. `distill: true` recovers every dropped model by distillation from the fine-tuned full
    model instead of plain fine-tuning (`[false, true]`: both, side by side). Every grid point is
    validated as a `RunConfig` before anything runs. Where the runs execute is the
    `ExecutionSettings` keys at the top level (engine, address, workers, retries).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    models: list[str] = Field(min_length=1)
    strategies: list[StrategyName] = Field(min_length=1)
    num_drop: KList | dict[str, KList]  # K ≥ 1 for all models, or model -> Ks; K = 0 is include_full_model
    tasks: list[TaskName] = Field(min_length=1)
    seeds: list[int] = Field(default=[42], min_length=1)
    regimes: list[Regime] = Field(default=["pretrained"], min_length=1)
    include_full_model: bool = True
    distill: Annotated[
        list[bool], BeforeValidator(lambda v: [v] if isinstance(v, bool) else v), Field(min_length=1)
    ] = [False]
    distillation: dict[str, Any] = {}  # DistillConfig fields, for the distilled runs
    run: dict[str, Any] = {}
    per_task: dict[str, dict[str, Any]] = {}
    strategy_options: dict[str, dict[str, Any]] = {}

    @model_validator(mode="after")
    def _mappings_match_lists(self) -> SweepConfig:
        """Per-model, per-task and per-strategy mappings must name listed models, tasks, strategies."""
        if isinstance(self.num_drop, dict):
            _check_keys("num_drop", self.num_drop, self.models, "model", require_all=True)
        _check_keys(
            "per_task", {_canonical_task(t): v for t, v in self.per_task.items()}, self.tasks, "task", require_all=False
        )
        _check_keys("strategy_options", self.strategy_options, self.strategies, "strategy", require_all=False)
        if axes := sorted(set(self.run) & AXES):
            raise ValueError(
                f"run: {axes[0]!r} is set by the grid; use the top-level keys "
                "(models, tasks, strategies, num_drop, seeds, regimes, distill, distillation)"
            )
        return self

    def num_drop_for(self, model: str) -> list[int]:
        """The Ks to run for `model`: the shared list, or its own entry when K is given per model."""
        return self.num_drop[model] if isinstance(self.num_drop, dict) else self.num_drop

    def execution(self, **overrides: Any) -> ExecutionSettings:
        """Where the runs execute: the config's keys, with `overrides` (the command line's flags) on top.

        Choosing another engine drops the config's address, which belonged to the engine it named.
        """
        own = self.model_dump(include=set(ExecutionSettings.model_fields))
        if "engine" in overrides and "address" not in overrides:
            own.pop("address")
        return ExecutionSettings.model_validate({**own, **overrides})


AXES = {"model", "task", "strategy", "strategy_options", "regime", "distill", "teacher", "distillation"}


def _check_keys(name: str, mapping: dict[str, Any], allowed: list[str], what: str, require_all: bool) -> None:
    for key in mapping:
        if key not in allowed:
            raise ValueError(f"{name}: {key!r} is not one of the listed {what}s{_suggest(key, allowed)}")
    missing = [item for item in allowed if item not in mapping]
    if require_all and missing:
        raise ValueError(f"{name}: no entry for {what} {missing[0]!r}")


def _suggest(word: str, choices: list[str]) -> str:
    close = difflib.get_close_matches(word, choices, n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def load_sweep(path: Path) -> SweepConfig:
    """Read and validate a sweep YAML; a relative `run.data` is taken relative to the file. Problems are one line."""
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as err:
        raise LayerDropError(f"cannot read config {path}: {err.strerror}") from None
    except yaml.YAMLError as err:
        raise LayerDropError(f"config {path} is not valid YAML: {' '.join(str(err).split())}") from None
    config = parse_sweep(raw if raw is not None else {})
    if config.run.get("data") is None:
        return config
    data = (path.parent / str(config.run["data"])).expanduser().resolve()
    if not data.is_dir():
        raise LayerDropError(f"config: run.data: no such directory {data}")
    return config.model_copy(update={"run": {**config.run, "data": str(data)}})


def parse_sweep(raw: Any) -> SweepConfig:
    """Validate an already-parsed config mapping."""
    if not isinstance(raw, dict):
        raise LayerDropError("config: expected a mapping of keys to values at the top level")
    try:
        return SweepConfig.model_validate(raw)
    except ValidationError as err:
        raise LayerDropError(_describe(err, raw)) from None


def _describe(err: ValidationError, raw: dict[str, Any]) -> str:
    """One line about the most useful error: unknown keys first, then the most specific one."""
    errors = err.errors()
    unknown = [e for e in errors if e["type"] == "extra_forbidden"]
    if unknown:
        key = str(unknown[0]["loc"][0])
        return f"config: unknown key {key!r}{_suggest(key, list(SweepConfig.model_fields))}"
    where = [(_user_path(e["loc"], raw), e) for e in errors]
    path, first = max(where, key=lambda pair: len(pair[0]))
    if first["type"] == "missing":
        return f"config: missing key {path[0]!r}"
    if first["type"] == "value_error":  # our own checks: the message says what is wrong
        message, got = str(first["ctx"]["error"]), ""
    else:
        message, got = first["msg"], f" (got {first['input']!r})"
    if not path:  # a cross-field check: its message already names the key
        return f"config: {message}"
    shown = "".join(f"[{p!r}]" if isinstance(p, str) else f"[{p}]" for p in path[1:])
    return f"config: {path[0]}{shown}: {message}{got}"


def _user_path(loc: tuple[int | str, ...], raw: Any) -> list[int | str]:
    """The part of a pydantic error location that exists in the user's YAML (drops union tags)."""
    path, node = [], raw
    for part in loc:
        if isinstance(node, dict) and part in node or isinstance(node, list) and isinstance(part, int):
            path.append(part)
            node = node[part] if isinstance(node, dict) or part < len(node) else None
        elif not path:  # a missing top-level key
            return [part]
    return path


def expand_grid(config: SweepConfig, teachers: Path | None = None) -> list[Spec]:
    """Every run of the sweep as a validated `RunConfig` dict, full-model baselines first, each once.

    The full model drops nothing, so the regime makes no difference to it: it runs once per
    model × task × seed, under "pretrained". Distilled runs learn from that baseline, saved as a
    teacher in the folder `teachers` (one per model, task, seed and settings, trained once); the
    finetuned regime's runs learn from their own first fine-tuning instead. Any grid point that is
    not a valid run stops the sweep here, before anything runs, with the point and the setting named.
    """
    if True in config.distill and teachers is None:
        raise LayerDropError(
            "config: distill needs a folder for the teachers (the sweep keeps them beside its database)"
        )
    specs: dict[str, Spec] = {}
    for model in config.models:
        points = [(FULL_MODEL, 0, "pretrained", False)] if config.include_full_model else []
        points += [
            (s, k, r, d)
            for d in config.distill
            for r in config.regimes
            for s in config.strategies
            for k in config.num_drop_for(model)
        ]
        for task in config.tasks:
            for seed in config.seeds:
                for strategy, num_drop, regime, distill in points:
                    spec = _grid_point(config, model, task, strategy, num_drop, regime, seed, distill, teachers)
                    specs.setdefault(run_key(spec), spec)
    return list(specs.values())


def _grid_point(
    config: SweepConfig,
    model: str,
    task: str,
    strategy: str,
    num_drop: int,
    regime: str,
    seed: int,
    distill: bool = False,
    teachers: Path | None = None,
) -> Spec:
    own = {_canonical_task(t): v for t, v in config.per_task.items()}.get(task, {})
    settings = {**config.run, **own}
    training = {**config.run.get("training", {}), **own.get("training", {}), "seed": seed}
    options = {"num_drop": num_drop, **config.strategy_options.get(strategy, {})} if strategy != FULL_MODEL else {}
    point = {
        **settings,
        "model": model,
        "task": task,
        "strategy": strategy,
        "strategy_options": options,
        "regime": regime,
        "training": training,
    }
    if distill:
        point.update(distill=True, distillation=config.distillation)
        if regime != "finetuned":
            teacher = _grid_point(config, model, task, FULL_MODEL, 0, "pretrained", seed)
            point["teacher"] = str(teachers / run_key(teacher))
    try:
        with naming(as_flags=False):
            return RunConfig.model_validate(point).model_dump(exclude_defaults=True)
    except (ValidationError, LayerDropError) as err:
        message = describe_error(err) if isinstance(err, ValidationError) else str(err)
        raise LayerDropError(
            f"config: run {model} {task} {strategy} K={num_drop} seed={seed} {regime}: {message}"
        ) from None


def teacher_of(spec: Spec) -> Spec | None:
    """The full-model run whose saved model a distilled run learns from (None if it learns from no saved teacher).

    It is the run's own settings with nothing dropped, so it is also the grid's baseline for that
    model, task and seed: the same run key.
    """
    if not spec.get("teacher"):
        return None
    config = RunConfig.model_validate(spec)
    baseline = config.model_copy(
        update={
            "strategy": FULL_MODEL,
            "strategy_options": {},
            "regime": "pretrained",
            "distill": False,
            "teacher": None,
            "distillation": DistillConfig(),
        }
    )
    return RunConfig.model_validate(baseline.model_dump()).model_dump(exclude_defaults=True)


def sweep_jobs(specs: Sequence[Spec]) -> tuple[list[Job], SweepRunner]:
    """The runs as jobs (a distilled run needs its teacher's run first) and the runner that saves the teachers."""
    jobs, teachers, missing = [], {}, {}
    for spec in specs:
        teacher = teacher_of(spec)
        if teacher is not None:
            teachers[run_key(teacher)] = spec["teacher"]
            missing[run_key(teacher)] = teacher
        jobs.append(Job(run_key(spec), spec, (run_key(teacher),) if teacher is not None else ()))
    in_grid = {job.key for job in jobs}
    jobs += [Job(key, teacher) for key, teacher in missing.items() if key not in in_grid]  # include_full_model: false
    return jobs, SweepRunner(teachers)


@dataclass(frozen=True)
class SweepRunner:
    """Runs one spec; a run other runs learn from saves its model as their teacher (picklable, for any engine)."""

    teachers: dict[str, str] = field(default_factory=dict)  # run key -> where its model goes

    def __call__(self, spec: Spec) -> Result:
        """Run `spec`, saving its model where other runs learn from it; rerun a teacher whose model is gone."""
        from layerdrop.experiment import run_experiment

        config = RunConfig.model_validate(spec)
        if (key := run_key(spec)) in self.teachers:
            return run_experiment(config, self.teachers[key], overwrite=True)
        if (
            config.teacher is not None and not Path(config.teacher).is_dir()
        ):  # its run finished in a sweep that kept no model
            run_experiment(RunConfig.model_validate(teacher_of(spec)), config.teacher, overwrite=True)
        return run_experiment(config)


def identity(spec: Spec) -> dict[str, Any]:
    """The columns that identify a run in the database and the report."""
    config = RunConfig.model_validate(spec)
    values = (config.model, config.task, config.strategy, config.num_drop, config.training.seed, config.regime)
    return dict(zip(IDENTITY, values, strict=True))


def run_key(spec: Spec) -> str:
    """A stable id for a run: the hash of its canonical JSON, without where its data lives."""
    what = {key: value for key, value in spec.items() if key not in LOCATIONS}
    canonical = json.dumps(what, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    run_key     TEXT PRIMARY KEY,
    model       TEXT NOT NULL,
    task        TEXT NOT NULL,
    strategy    TEXT NOT NULL,
    num_drop    INTEGER NOT NULL,
    seed        INTEGER NOT NULL,
    regime      TEXT NOT NULL,
    score       REAL,
    finished_at TEXT NOT NULL,
    spec        TEXT NOT NULL,
    result      TEXT NOT NULL
)
"""
# Every failed attempt of a run, kept after the run succeeds: what went wrong, where (traceback), when.
FAILURES_SCHEMA = """
CREATE TABLE IF NOT EXISTS failures (
    run_key     TEXT NOT NULL,
    attempt     INTEGER NOT NULL,
    failed_at   TEXT NOT NULL,
    error       TEXT NOT NULL,
    detail      TEXT NOT NULL,
    spec        TEXT NOT NULL,
    PRIMARY KEY (run_key, attempt)
)
"""


def open_db(path: Path) -> sqlite3.Connection:
    """Open (creating if needed) a results database in WAL mode, so reports can read mid-sweep."""
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute(SCHEMA)
    conn.execute(FAILURES_SCHEMA)
    return conn


def finished_keys(conn: sqlite3.Connection) -> set[str]:
    """The run keys already in the database, so a resumed sweep skips them."""
    return {key for (key,) in conn.execute("SELECT run_key FROM runs")}


def record(conn: sqlite3.Connection, spec: Spec, result: Result) -> None:
    """Store one finished run atomically; a key already present is left untouched."""
    row = (
        run_key(spec),
        *(result[key] for key in IDENTITY),
        result["score"],
        _now(),
        json.dumps(spec, sort_keys=True),
        json.dumps(result, sort_keys=True),
    )
    with conn:  # one transaction: commit on success, roll back on error
        conn.execute("INSERT OR IGNORE INTO runs VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", row)


def record_failure(conn: sqlite3.Connection, key: str, spec: Spec, error: str, detail: str) -> int:
    """Store one failed attempt of a run (numbered from 1) atomically; returns the attempt number."""
    with conn:
        (attempts,) = conn.execute("SELECT COUNT(*) FROM failures WHERE run_key = ?", (key,)).fetchone()
        conn.execute(
            "INSERT INTO failures VALUES (?, ?, ?, ?, ?, ?)",
            (key, attempts + 1, _now(), error, detail, json.dumps(spec, sort_keys=True)),
        )
    return attempts + 1


def failure_counts(conn: sqlite3.Connection) -> dict[str, tuple[int, str]]:
    """Run key -> (failed attempts, the last error), for every run that ever failed."""
    rows = conn.execute(
        "SELECT run_key, COUNT(*), (SELECT error FROM failures g WHERE g.run_key = f.run_key "
        "ORDER BY attempt DESC LIMIT 1) FROM failures f GROUP BY run_key"
    )
    return {key: (count, error) for key, count, error in rows}


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def check_result(result: Any) -> None:
    """Refuse a runner's answer that the database or the report could not use."""
    if not isinstance(result, dict):
        raise ValueError(f"runner returned {type(result).__name__}, not a result dict")
    missing = [key for key in RESULT_KEYS if key not in result]
    if missing:
        raise ValueError(f"result lacks {', '.join(missing)}")
    json.dumps(result)  # TypeError for anything JSON cannot hold


def read_results(path: Path) -> list[Result]:
    """Every stored result of a sweep database, oldest first."""
    if not path.is_file():
        raise LayerDropError(f"no such results database: {path}")
    try:
        with closing(sqlite3.connect(path)) as conn:
            rows = conn.execute("SELECT result FROM runs ORDER BY finished_at, run_key").fetchall()
    except sqlite3.DatabaseError as err:
        raise LayerDropError(f"{path} is not a sweep database: {err}") from None
    return [json.loads(result) for (result,) in rows]


@dataclass(frozen=True)
class Job:
    """One run of a sweep: its key, its spec, and the runs it needs finished first.

    `needs` is the seam for work shared between runs: a run that needs others (a student needing
    its teacher, say) is handed to the engine only once every run it names is in the database; if
    one of them fails, it fails too (and both run again on the next resume).
    """

    key: str
    spec: Spec
    needs: tuple[str, ...] = ()

    @classmethod
    def of(cls, spec: Spec) -> Job:
        """A run that needs no other, keyed by its spec."""
        return cls(run_key(spec), spec)


@dataclass
class SweepOutcome:
    """What one invocation did: runs already present, newly finished, and failed (spec, message)."""

    total: int
    skipped: int = 0
    finished: int = 0
    failures: list[tuple[Spec, str]] = field(default_factory=list)


def describe_run(spec: Spec) -> str:
    """One line naming a run, as progress lines and errors show it."""
    run = identity(spec)
    distilled = " distilled" if spec.get("distill") else ""
    return (
        f"{run['model']} {run['task']} {run['strategy']} K={run['num_drop']} seed={run['seed']} "
        f"{run['regime']}{distilled}"
    )


def run_sweep(
    specs: Sequence[Spec | Job],
    db_path: Path,
    runner: Runner | None = None,
    workers: int = 1,
    console: Console | None = None,
    execution: ExecutionSettings | None = None,
) -> SweepOutcome:
    """Run every spec (or job) not yet in the database on the engine `execution` names, recording each as it ends.

    A failing run is recorded in the failures table and reported, and the rest of the grid still
    runs; it stays missing from the runs table, so the next invocation retries it. `workers` is
    the local engine's pool size when `execution` is not given.
    """
    execution = execution or ExecutionSettings(workers=workers)
    check_available(execution.engine)
    console = console or Console(stderr=True, soft_wrap=True)  # in a log, every event stays one line, however long
    jobs = [job if isinstance(job, Job) else Job.of(job) for job in specs]
    with closing(open_db(db_path)) as conn:
        done = finished_keys(conn)
        waiting = [job for job in jobs if job.key not in done]
        outcome = SweepOutcome(total=len(jobs), skipped=len(jobs) - len(waiting))
        _check_needs(waiting, {job.key for job in jobs} | done)
        if not waiting:
            return outcome
        with (
            open_engine(execution, runner or SweepRunner(), len(waiting)) as engine,
            SweepProgress(console, outcome.total, outcome.skipped) as progress,
        ):
            console.print(
                f"sweep: {outcome.total} runs, {outcome.skipped} already in {db_path}, "
                f"{len(waiting)} to run on {engine.describe()}",
                highlight=False,
            )
            by_key = {job.key: job for job in jobs}
            running: dict[str, Job] = {}
            failed: set[str] = set()
            while waiting or running:
                blocked = [job for job in waiting if failed.intersection(job.needs)]
                ready = [job for job in waiting if not failed.intersection(job.needs) and done.issuperset(job.needs)]
                if not (ready or blocked or running):
                    raise ValueError(f"runs {', '.join(job.key for job in waiting)} need each other")
                released = {job.key for job in (*ready, *blocked)}
                waiting = [job for job in waiting if job.key not in released]
                for job in ready:
                    engine.submit(job.key, job.spec)
                    running[job.key] = job
                for job in blocked:
                    needed = by_key[next(key for key in job.needs if key in failed)]
                    error = LayerDropError(f"the run it needs failed ({describe_run(needed.spec)})")
                    _fail(
                        conn,
                        job,
                        Finished.failed(job.key, error, ""),
                        outcome,
                        progress,
                        console,
                        min(engine.slots(), len(running)),
                    )
                    failed.add(job.key)
                if not running:
                    continue
                progress.set_running(min(engine.slots(), len(running)))
                finished = engine.next_finished()
                job = running.pop(finished.key)
                in_flight = min(engine.slots(), len(running))
                if finished.error is None:
                    try:
                        check_result(finished.result)
                    except (ValueError, TypeError) as err:
                        finished = Finished.failed(job.key, err)
                if finished.error is not None:
                    _fail(conn, job, finished, outcome, progress, console, in_flight)
                    failed.add(job.key)
                else:
                    record(conn, job.spec, finished.result)
                    done.add(job.key)
                    outcome.finished += 1
                    progress.run_finished(describe_run(job.spec), finished.result["score"], in_flight)
    return outcome


def _check_needs(jobs: list[Job], known: set[str]) -> None:
    for job in jobs:
        if missing := [key for key in job.needs if key not in known]:
            raise ValueError(f"run {job.key} needs run {missing[0]}, which is neither in the sweep nor finished")


def _fail(
    conn: sqlite3.Connection,
    job: Job,
    finished: Finished,
    outcome: SweepOutcome,
    progress: SweepProgress,
    console: Console,
    running: int,
) -> None:
    """Record and report one failed run; a bug (not a LayerDropError) shows its traceback where it ran."""
    error = finished.error
    message = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    record_failure(conn, job.key, job.spec, message, finished.detail)
    outcome.failures.append((job.spec, message))
    if not isinstance(error, LayerDropError) and finished.detail:
        console.print(finished.detail, style="dim", markup=False, highlight=False)
    progress.run_failed(describe_run(job.spec), message, running)
