"""Sweep engines: the registry, failures recorded and retried, run prerequisites, progress, and Ray end to end."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from pydantic import ValidationError
from rich.console import Console

import layerdrop
from layerdrop.engines.base import Finished
from layerdrop.errors import LayerDropError
from layerdrop.engines import ExecutionSettings
from layerdrop.sweep import Job, expand_grid, failure_counts, identity, parse_sweep, run_key, run_sweep
from layerdrop.sweep_progress import SweepProgress

# A Ray started by these tests listens on the loopback interface only (this switch must be set
# before ray is imported) and writes no token to the home folder.
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
os.environ.setdefault("RAY_AUTH_MODE", "disabled")

GRID = {
    "models": ["bert-base-uncased"],
    "strategies": ["top"],
    "num_drop": [1, 2, 3],
    "tasks": ["rte", "sst2"],
    "seeds": [1],
}
SRC = Path(layerdrop.__file__).resolve().parents[1]

# The sweep driver in a process of its own. Its runner is defined here, in __main__, so Ray ships
# it to workers by value. A run logs "start KEY PID" and sleeps; its result is a function of the
# spec only, plus the pid that ran it.
DRIVER = textwrap.dedent(
    """
    import hashlib, json, os, sys, time
    from pathlib import Path
    from layerdrop.engines import ExecutionSettings
    from layerdrop.sweep import identity, run_key, run_sweep

    def fake_runner(log_path, seconds):
        def run(spec):  # a closure: Ray workers do not share this process's environment
            key = run_key(spec)
            with open(log_path, "a") as log:
                log.write(f"start {key} {os.getpid()}\\n")
            time.sleep(seconds)
            score = int(hashlib.sha256(key.encode()).hexdigest()[:6], 16) / 16**6
            return {**identity(spec), "metrics": {"accuracy": score}, "score": score, "pid": os.getpid()}
        return run

    if __name__ == "__main__":
        db, specs, engine, address, retries, log_path, seconds = sys.argv[1:]
        execution = ExecutionSettings(engine=engine, address=address or None, retries=int(retries))
        runner = fake_runner(log_path, float(seconds))
        outcome = run_sweep(json.loads(Path(specs).read_text()), Path(db), runner=runner, execution=execution)
        sys.exit(1 if outcome.failures else 0)
    """
)


def _driver(
    tmp_path: Path,
    db: Path,
    engine: str,
    address: str = "",
    retries: int = 1,
    seconds: float = 0.0,
    block_ray: bool = False,
) -> subprocess.Popen:
    script, specs = tmp_path / "driver.py", tmp_path / "specs.json"
    script.write_text(("import sys; sys.modules['ray'] = None\n" if block_ray else "") + DRIVER)
    specs.write_text(json.dumps(expand_grid(parse_sweep(GRID))))
    return subprocess.Popen(
        [
            sys.executable,
            str(script),
            str(db),
            str(specs),
            engine,
            address,
            str(retries),
            str(tmp_path / "runs.log"),
            str(seconds),
        ],
        env={**os.environ, "PYTHONPATH": str(SRC)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _starts(tmp_path: Path) -> list[tuple[str, int]]:
    path = tmp_path / "runs.log"
    lines = path.read_text().splitlines() if path.exists() else []
    return [(parts[1], int(parts[2])) for parts in (line.split() for line in lines) if len(parts) == 3]


def _results(db: Path) -> dict[str, dict]:
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT run_key, result FROM runs").fetchall()
    return {key: json.loads(result) for key, result in rows}


def _ok(spec: dict) -> dict:
    return {**identity(spec), "metrics": {"accuracy": 0.5}, "score": 0.5}


def test_execution_settings_are_checked() -> None:
    with pytest.raises(ValidationError, match="unknown engine 'rey'; choose one of local, ray"):
        ExecutionSettings(engine="rey")
    with pytest.raises(ValidationError, match="address is for engine ray"):
        ExecutionSettings(address="auto")
    config = parse_sweep({**GRID, "engine": "ray", "address": "10.0.0.1:6379", "retries": 0})
    assert config.execution() == ExecutionSettings(engine="ray", address="10.0.0.1:6379", retries=0)
    assert config.execution(engine="local", workers=2) == ExecutionSettings(
        workers=2, retries=0
    )  # the address went with ray
    with pytest.raises(LayerDropError, match="^config: engine: unknown engine 'rya'"):
        parse_sweep({**GRID, "engine": "rya"})


def test_local_engine_needs_no_ray_and_ray_without_it_is_one_line(tmp_path: Path) -> None:
    local = _driver(tmp_path, tmp_path / "local.sqlite", "local", block_ray=True)
    _, stderr = local.communicate(timeout=120)
    assert local.returncode == 0, stderr
    assert len(_results(tmp_path / "local.sqlite")) == 8

    config = tmp_path / "grid.yaml"
    config.write_text(json.dumps(GRID))
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; sys.modules['ray'] = None\nfrom layerdrop.cli import main; main()",
            "sweep",
            str(config),
            "--engine",
            "ray",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2
    assert done.stderr.splitlines() == ["error: --engine ray needs ray: pip install 'layerdrop[ray]'"]
    assert not (tmp_path / "grid.sqlite").exists()


def test_failures_are_recorded_with_their_error_and_retried(tmp_path: Path) -> None:
    db = tmp_path / "sweep.sqlite"
    specs = expand_grid(parse_sweep(GRID))
    broken = {run_key(s) for s in specs if identity(s)["num_drop"] == 3}

    def runner(spec: dict) -> dict:
        if run_key(spec) in broken:
            raise LayerDropError("cannot drop 3 of 2 layers")
        return _ok(spec)

    for attempt in (1, 2):
        outcome = run_sweep(specs, db, runner=runner, console=Console(file=open(os.devnull, "w")))
        assert len(outcome.failures) == len(broken) == 2
        assert failure_counts(sqlite3.connect(db)) == {key: (attempt, "cannot drop 3 of 2 layers") for key in broken}
    with sqlite3.connect(db) as conn:
        rows = conn.execute(
            "SELECT run_key, attempt, error, detail, spec FROM failures ORDER BY run_key, attempt"
        ).fetchall()
    assert [(key, attempt) for key, attempt, *_ in rows] == [(key, n) for key in sorted(broken) for n in (1, 2)]
    assert all(
        "Traceback" in detail and "LayerDropError: cannot drop 3 of 2 layers" in detail for *_, detail, _ in rows
    )
    assert {run_key(json.loads(spec)) for *_, spec in rows} == broken

    outcome = run_sweep(specs, db, runner=_ok)
    assert (outcome.skipped, outcome.finished, outcome.failures) == (len(specs) - 2, 2, [])
    assert len(_results(db)) == len(specs)
    assert len(failure_counts(sqlite3.connect(db))) == 2  # the history stays


def test_a_run_starts_only_after_the_runs_it_needs(tmp_path: Path) -> None:
    specs = expand_grid(parse_sweep(GRID))
    teacher = {
        task: next(s for s in specs if s["task"] == task and identity(s)["strategy"] == "none")
        for task in ("rte", "sst2")
    }
    teacher_sst2 = run_key(teacher["sst2"])
    jobs = [
        Job(run_key(s), s, needs=() if s in teacher.values() else (run_key(teacher[s["task"]]),))
        for s in reversed(specs)
    ]
    started: list[str] = []

    def runner(spec: dict) -> dict:
        started.append(run_key(spec))
        if spec is teacher["sst2"]:
            raise LayerDropError("teacher diverged")
        return _ok(spec)

    outcome = run_sweep(jobs, tmp_path / "sweep.sqlite", runner=runner)
    rte_students = [job.key for job in jobs if job.needs == (run_key(teacher["rte"]),)]
    assert started.index(run_key(teacher["rte"])) < min(started.index(key) for key in rte_students)
    sst2_students = [job.spec for job in jobs if job.needs == (run_key(teacher["sst2"]),)]
    assert not set(map(run_key, sst2_students)) & set(started)  # never handed to the engine
    assert sorted(map(run_key, (spec for spec, _ in outcome.failures))) == sorted(
        map(run_key, [teacher["sst2"], *sst2_students])
    )
    assert {message for spec, message in outcome.failures if spec is not teacher["sst2"]} == {
        "the run it needs failed (bert-base-uncased sst2 none K=0 seed=1 pretrained)"
    }

    started.clear()
    teacher["sst2"] = None  # it succeeds this time
    outcome = run_sweep(jobs, tmp_path / "sweep.sqlite", runner=runner)
    assert outcome.failures == [] and outcome.finished == 4
    assert len(started) == 4 and started[0] == teacher_sst2  # the teacher again first, then its students


def test_progress_counts_and_time_left_when_not_a_terminal() -> None:
    now = [100.0]
    lines = Console(file=open(os.devnull, "w"), width=200, force_terminal=False, record=True)
    progress = SweepProgress(lines, total=10, skipped=4, clock=lambda: now[0])
    with progress:
        assert progress.seconds_left() is None
        now[0] = 130.0
        progress.run_finished("run a", 0.75, running=2)
        now[0] = 160.0
        progress.run_failed("run b", "out of memory", running=2)
    text = lines.export_text().splitlines()
    # 2 runs ended in 60 s, so the 4 still to go take about 120 s more.
    assert text == [
        "[5/10] done run a: score 0.7500 (running 2, failed 0, about 0:02:30 left)",
        "[6/10] failed run b: out of memory (running 2, failed 1, about 0:02:00 left)",
    ]


def test_ray_task_options() -> None:
    pytest.importorskip("ray")
    from layerdrop.engines.ray import task_options

    assert task_options({"CPU": 32.0, "GPU": 4.0}, retries=1) == {
        "num_gpus": 1,
        "max_calls": 1,
        "max_retries": 1,
        "retry_exceptions": False,
    }
    assert task_options({"CPU": 2.0}, retries=0) == {"num_cpus": 1, "max_retries": 0, "retry_exceptions": False}


def test_finished_keeps_the_traceback_of_a_failure() -> None:
    try:
        raise RuntimeError("boom")
    except RuntimeError as err:
        finished = Finished.failed("k", err)
    assert finished.result is None and "RuntimeError: boom" in finished.detail and "Traceback" in finished.detail


@pytest.fixture(scope="module")
def ray_cluster(tmp_path_factory: pytest.TempPathFactory):
    """A Ray on this machine: 2 CPUs, no dashboard, loopback only, its files in a temporary folder."""
    ray = pytest.importorskip("ray")
    path = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = os.pathsep.join([str(SRC), *([path] if path else [])])  # for the workers Ray starts
    ray.init(
        num_cpus=2,
        include_dashboard=False,
        _temp_dir=str(tmp_path_factory.mktemp("ray")),
        object_store_memory=80 * 2**20,
        log_to_driver=False,
        configure_logging=False,
    )
    try:
        yield ray.get_runtime_context().gcs_address
    finally:
        ray.shutdown()
        os.environ.pop("PYTHONPATH") if path is None else os.environ.update(PYTHONPATH=path)


@pytest.mark.slow
def test_ray_sweep_survives_a_killed_worker_and_driver(tmp_path: Path, ray_cluster: str) -> None:
    specs = expand_grid(parse_sweep(GRID))
    assert len(specs) == 8
    (tmp_path / "ref").mkdir()
    reference = _driver(tmp_path / "ref", tmp_path / "ref.sqlite", "local")  # the in-process engine
    assert reference.wait(timeout=120) == 0, reference.stderr.read()
    expected = _results(tmp_path / "ref.sqlite")

    db = tmp_path / "ray.sqlite"
    driver = _driver(tmp_path, db, "ray", address=ray_cluster, retries=0, seconds=1.5)
    deadline = time.monotonic() + 60
    while not _starts(tmp_path) and time.monotonic() < deadline:
        time.sleep(0.05)
    victim_key, victim_pid = _starts(tmp_path)[0]
    os.kill(victim_pid, signal.SIGKILL)  # a worker dies mid-run
    while len(_results(db)) < 2 and time.monotonic() < deadline and driver.poll() is None:
        time.sleep(0.05)
    assert driver.poll() is None, driver.communicate()
    driver.send_signal(signal.SIGKILL)  # then the driver, with runs in flight
    driver.wait()
    partial = _results(db)
    assert 2 <= len(partial) < len(specs) and victim_key not in partial
    assert failure_counts(sqlite3.connect(db))[victim_key][0] == 1  # recorded with its error

    resumed = _driver(tmp_path, db, "ray", address=ray_cluster, seconds=1.5)
    _, stderr = resumed.communicate(timeout=120)
    assert resumed.returncode == 0, stderr

    results = _results(db)
    assert sorted(results) == sorted(run_key(spec) for spec in specs)  # every run, each once (the key is unique)
    assert {key: {k: v for k, v in r.items() if k != "pid"} for key, r in results.items()} == {
        key: {k: v for k, v in r.items() if k != "pid"} for key, r in expected.items()
    }
    assert all(r["pid"] != resumed.pid for r in results.values())  # they ran in Ray's workers, not the driver
    assert partial.items() <= results.items()  # runs finished before the kill were kept, not rerun
    print(
        f"kill-resume: {len(partial)} runs before the driver was killed; worker death recorded as: "
        f"{failure_counts(sqlite3.connect(db))[victim_key][1]}"
    )


def test_dry_run_marks_failed_runs_to_retry(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from run_cli import layerdrop_in_process

    config, db = tmp_path / "grid.yaml", tmp_path / "grid.sqlite"
    config.write_text(json.dumps(GRID))
    specs = expand_grid(parse_sweep(GRID))

    def runner(spec: dict) -> dict:
        if identity(spec)["num_drop"] == 3:
            raise LayerDropError("cannot drop 3")
        return _ok(spec)

    run_sweep(specs, db, runner=runner, console=Console(file=open(os.devnull, "w")))
    done = layerdrop_in_process(capsys, "sweep", str(config), "--dry-run")
    assert done.returncode == 0, done.stderr
    assert f"8 runs, 6 already in {db}, 2 failed before (they run again)" in done.stdout.splitlines()
