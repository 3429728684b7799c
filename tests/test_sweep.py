"""Sweeps: config validation, grid expansion, and resuming after being killed at random moments."""

from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from layerdrop.errors import LayerDropError
from layerdrop.sweep import RESULT_KEYS, expand_grid, identity, load_sweep, parse_sweep, run_key, run_sweep

GRID = {
    "models": ["bert-base-uncased", "distilbert-base-uncased"],
    "strategies": ["top", "bottom"],
    "num_drop": {"bert-base-uncased": [2, 4], "distilbert-base-uncased": [1]},
    "tasks": ["rte", "sst2"],
    "seeds": [1, 2],
}

# A fake runner in a script of its own: it sleeps a little, logs every result it returns
# (with a nonce, so a rerun of the same spec is told apart) and runs the specs given in argv.
SCRIPT = textwrap.dedent(
    """
    import json, os, random, sys, time
    from pathlib import Path
    from layerdrop.sweep import identity, run_sweep

    def fake_runner(spec):
        barrier = os.environ.get("BARRIER")
        if barrier:  # hold every run until two workers have each started one, so both are seen at work
            Path(barrier, str(os.getpid())).touch()
            deadline = time.monotonic() + 60
            while len(os.listdir(barrier)) < 2 and time.monotonic() < deadline:
                time.sleep(0.01)
        time.sleep(random.uniform(0.005, 0.02))
        ident = identity(spec)
        result = {**ident, "metrics": {"accuracy": 0.5}, "score": 0.5, "nonce": os.urandom(8).hex(),
                  "device": os.environ.get("CUDA_VISIBLE_DEVICES"), "pid": os.getpid()}
        with open(os.environ["RUN_LOG"], "a") as log:
            log.write(json.dumps(result) + "\\n")
        time.sleep(random.uniform(0, 0.02))  # a kill here wastes a logged run: it must not be recorded
        return result

    if __name__ == "__main__":
        specs = json.loads(Path(sys.argv[2]).read_text())
        run_sweep(specs, Path(sys.argv[1]), runner=fake_runner, workers=int(sys.argv[3]))
    """
)


def _sweep_process(tmp_path: Path, db: Path, config: dict, env: dict[str, str] | None = None) -> subprocess.Popen:
    """The sweep of `config` in a process of its own, with the fake runner."""
    script, specs = tmp_path / "fake_sweep.py", tmp_path / "specs.json"
    script.write_text(SCRIPT)
    specs.write_text(json.dumps(expand_grid(parse_sweep(config))))
    full_env = {**os.environ, "RUN_LOG": str(tmp_path / "runs.log"), **(env or {})}
    command = [sys.executable, str(script), str(db), str(specs), str(config.get("workers", 1))]
    return subprocess.Popen(command, env=full_env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def _logged(tmp_path: Path) -> list[dict]:
    """Results the fake runner returned; a line cut short by SIGKILL is not a result."""
    path = tmp_path / "runs.log"
    lines = path.read_text().splitlines() if path.exists() else []
    results = []
    for line in lines:
        try:
            results.append(json.loads(line))
        except json.JSONDecodeError:
            pass
    return results


def _rows(db: Path) -> list[tuple[str, str, str]]:
    with sqlite3.connect(db) as conn:
        return conn.execute("SELECT run_key, spec, result FROM runs").fetchall()


@pytest.mark.slow
def test_killed_sweep_resumes_without_losing_or_duplicating_runs(tmp_path: Path) -> None:
    db = tmp_path / "sweep.sqlite"
    specs = expand_grid(parse_sweep(GRID))
    rng = random.Random(1234)
    kills = 0
    for _ in range(6):
        before = len(_logged(tmp_path))
        process = _sweep_process(tmp_path, db, GRID)
        target = before + rng.randint(1, 4)  # let a few runs finish, then kill at a random moment
        deadline = time.monotonic() + 20
        while len(_logged(tmp_path)) < target and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.002)
        time.sleep(rng.uniform(0, 0.03))
        if process.poll() is None:
            process.send_signal(signal.SIGKILL)
            kills += 1
        process.wait()
    assert kills >= 3, "the sweep finished before it could be killed; make the grid bigger"

    process = _sweep_process(tmp_path, db, GRID)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 0, stderr.decode()

    rows = _rows(db)
    assert sorted(key for key, _, _ in rows) == sorted(run_key(spec) for spec in specs)
    logged = {result["nonce"] for result in _logged(tmp_path)}
    for key, spec, result in rows:
        spec, result = json.loads(spec), json.loads(result)
        assert run_key(spec) == key
        assert all(name in result for name in RESULT_KEYS)
        assert {k: result[k] for k in ("model", "task", "strategy", "num_drop", "seed", "regime")} == identity(spec)
        assert result["nonce"] in logged  # a result the runner really returned
    assert len({json.loads(result)["nonce"] for _, _, result in rows}) == len(specs)
    # Finished runs are skipped on resume: only a run killed between returning and being
    # recorded is run again, at most one per kill.
    assert len(specs) <= len(_logged(tmp_path)) <= len(specs) + kills

    rerun = _sweep_process(tmp_path, db, GRID)
    assert rerun.wait(timeout=60) == 0
    assert len(_logged(tmp_path)) <= len(specs) + kills  # nothing left to run
    assert len(_rows(db)) == len(specs)


@pytest.mark.slow
def test_workers_run_in_parallel_each_pinned_to_one_gpu(tmp_path: Path) -> None:
    db = tmp_path / "sweep.sqlite"
    config = {**GRID, "models": ["bert-base-uncased"], "seeds": [1], "workers": 2, "num_drop": [2, 4]}
    (tmp_path / "barrier").mkdir()
    process = _sweep_process(
        tmp_path, db, config, env={"CUDA_VISIBLE_DEVICES": "3,5", "BARRIER": str(tmp_path / "barrier")}
    )
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 0, stderr.decode()
    results = [json.loads(result) for _, _, result in _rows(db)]
    assert len(results) == len(expand_grid(parse_sweep(config)))
    device_of = {}
    for result in results:
        assert device_of.setdefault(result["pid"], result["device"]) == result["device"]
    assert len(device_of) >= 2, "the runs were not spread over two worker processes"
    assert set(device_of.values()) == {"3", "5"}  # one GPU per worker
    assert len(set(device_of.values())) == len(device_of)


def test_failed_runs_are_reported_and_retried_on_the_next_invocation(tmp_path: Path) -> None:
    db = tmp_path / "sweep.sqlite"
    specs = expand_grid(parse_sweep({**GRID, "seeds": [1]}))

    def runner(spec: dict) -> dict:
        if identity(spec)["num_drop"] == 4:
            raise LayerDropError("cannot drop 4 of 2 layers")
        return {**identity(spec), "metrics": {"accuracy": 0.5}, "score": 0.5}

    outcome = run_sweep(specs, db, runner=runner)
    failed = [spec for spec in specs if identity(spec)["num_drop"] == 4]
    assert [spec for spec, _ in outcome.failures] == failed
    assert outcome.finished == len(specs) - len(failed)
    assert outcome.failures[0][1] == "cannot drop 4 of 2 layers"

    outcome = run_sweep(specs, db, runner=lambda spec: {**identity(spec), "metrics": {}, "score": 0.1})
    assert (outcome.skipped, outcome.finished, outcome.failures) == (len(specs) - len(failed), len(failed), [])


def test_incomplete_results_are_not_recorded(tmp_path: Path) -> None:
    db = tmp_path / "sweep.sqlite"
    specs = expand_grid(
        parse_sweep({**GRID, "models": ["bert-base-uncased"], "num_drop": [2], "tasks": ["rte"], "seeds": [1]})
    )
    outcome = run_sweep(specs, db, runner=lambda spec: {"score": 0.5})
    assert len(outcome.failures) == len(specs)
    assert outcome.failures[0][1].startswith("result lacks model")
    assert _rows(db) == []


def test_grid_has_full_model_baselines_per_model_task_seed() -> None:
    specs = [identity(s) for s in expand_grid(parse_sweep({**GRID, "regimes": ["pretrained", "finetuned"]}))]
    full = [s for s in specs if s["strategy"] == "none"]
    assert len(full) == 2 * 2 * 2  # models × tasks × seeds, not × regimes
    assert all(s["num_drop"] == 0 and s["regime"] == "pretrained" for s in full)
    dropped = [s for s in specs if s["strategy"] != "none"]
    assert len(dropped) == (2 * 2 + 2 * 1) * 2 * 2 * 2  # (strategies × K) per model, × tasks × seeds × regimes
    assert {s["num_drop"] for s in dropped if s["model"] == "distilbert-base-uncased"} == {1}
    assert len({run_key(s) for s in expand_grid(parse_sweep(GRID))}) == len(expand_grid(parse_sweep(GRID)))
    assert not any(
        identity(s)["strategy"] == "none" for s in expand_grid(parse_sweep({**GRID, "include_full_model": False}))
    )


def test_per_task_options_and_stable_keys() -> None:
    config = parse_sweep(
        {
            **GRID,
            "tasks": ["STS-B", "sst2"],
            "per_task": {"sst2": {"max_train_samples": 100}},
            "run": {"training": {"learning_rate": "1e-4"}},
        }
    )  # PyYAML reads 1e-4 (no dot) as a string
    specs = expand_grid(config)
    assert {s["task"] for s in specs} == {"stsb", "sst2"}
    assert {s.get("max_train_samples") for s in specs if s["task"] == "sst2"} == {100}
    assert all("max_train_samples" not in s for s in specs if s["task"] == "stsb")
    assert {s["training"]["learning_rate"] for s in specs} == {1e-4}
    spec = specs[0]
    assert run_key(spec) == run_key(dict(reversed(list(spec.items()))))
    assert run_key(spec) != run_key({**spec, "training": {**spec["training"], "seed": 99}})
    assert run_key(spec) == run_key({**spec, "data": "/moved/elsewhere"})  # where the data lives is not part of a run


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"stratgies": ["top"]}, "config: unknown key 'stratgies' (did you mean 'strategies'?)"),
        ({"models": "bert-base-uncased"}, "config: models: Input should be a valid list (got 'bert-base-uncased')"),
        ({"tasks": []}, "config: tasks: List should have at least 1 item after validation, not 0 (got [])"),
        ({"tasks": ["sst-3"]}, "config: tasks[0]: unknown task 'sst-3'"),
        ({"strategies": ["topp"]}, "config: strategies[0]: unknown strategy 'topp' (did you mean 'top'?)"),
        ({"num_drop": [2, "x"]}, "config: num_drop[1]: Input should be a valid integer"),
        ({"num_drop": {"bert-base-uncased": [2]}}, "config: num_drop: no entry for model 'distilbert-base-uncased'"),
        (
            {"num_drop": {"bert-base": [2], "distilbert-base-uncased": [1]}},
            "config: num_drop: 'bert-base' is not one of the listed models (did you mean 'bert-base-uncased'?)",
        ),
        (
            {"regimes": ["pre-trained"]},
            "config: regimes[0]: Input should be 'pretrained', 'finetuned', 'task-specific' or 'iterative'",
        ),
        (
            {"run": {"training": {"epochs": "three"}}},
            "config: run bert-base-uncased rte none K=0 seed=1 pretrained: "
            "training.epochs: input should be a valid integer",
        ),
        (
            {"run": {"train_from_dev": 1.5}},
            "config: run bert-base-uncased rte none K=0 seed=1 pretrained: train_from_dev: input should be less than 1",
        ),
        (
            {"run": {"treshold": 0.9}},
            "config: run bert-base-uncased rte none K=0 seed=1 pretrained: unknown setting 'treshold'",
        ),
        ({"run": {"task": "rte"}}, "config: run: 'task' is set by the grid"),
        ({"distill": True}, "config: distill needs a folder for the teachers"),
        ({"per_task": {"cola": {"max_train_samples": 10}}}, "config: per_task: 'cola' is not one of the listed tasks"),
        (
            {"strategy_options": {"top": {"treshold": 0.9}}},
            "config: run bert-base-uncased rte top K=2 seed=1 pretrained: treshold does not go with strategy 'top'",
        ),
        (
            {"regimes": ["iterative"], "run": {"training": {"epochs": 3}}},
            "config: run bert-base-uncased rte top K=2 seed=1 iterative: "
            "iterative dropping of 2 layers every 2 epochs needs at least 4 epochs, got 3",
        ),
        ({"workers": 0}, "config: workers: Input should be greater than 0"),
    ],
)
def test_bad_configs_name_the_key(change: dict, message: str) -> None:
    with pytest.raises(LayerDropError) as raised:
        expand_grid(parse_sweep({**GRID, **change}))  # everything is checked before anything runs
    assert str(raised.value).startswith(message)
    assert "\n" not in str(raised.value)


def test_missing_key_and_data_directory(tmp_path: Path) -> None:
    with pytest.raises(LayerDropError, match="^config: missing key 'tasks'$"):
        parse_sweep({k: v for k, v in GRID.items() if k != "tasks"})
    (tmp_path / "glue").mkdir()
    config = tmp_path / "configs" / "grid.yaml"
    config.parent.mkdir()
    config.write_text(json.dumps({**GRID, "run": {"data": "../glue"}}))  # JSON is YAML
    assert load_sweep(config).run["data"] == str((tmp_path / "glue").resolve())
    config.write_text(json.dumps({**GRID, "run": {"data": "../nowhere"}}))
    with pytest.raises(LayerDropError, match="^config: run.data: no such directory"):
        load_sweep(config)


CONFIGS = sorted((Path(__file__).resolve().parents[1] / "configs").glob("*.yaml"))


@pytest.mark.parametrize("path", CONFIGS, ids=[p.name for p in CONFIGS])
def test_every_shipped_config_loads_and_expands(path: Path, tmp_path: Path) -> None:
    """Each file in configs/ is a valid sweep: it loads and every grid point validates as a run.

    It is copied into a tree where its relative data folder exists, so the real data need not be here.
    """
    import yaml

    copy = tmp_path / "repo" / "configs" / path.name
    copy.parent.mkdir(parents=True)
    copy.write_text(path.read_text())
    data = (yaml.safe_load(path.read_text()).get("run") or {}).get("data")
    if data is not None:
        (copy.parent / data).resolve().mkdir(parents=True, exist_ok=True)
    config = load_sweep(copy)
    specs = expand_grid(config)
    assert specs and len({run_key(spec) for spec in specs}) == len(specs)
    assert {identity(spec)["model"] for spec in specs} == set(config.models)
    assert {identity(spec)["task"] for spec in specs} == set(config.tasks)


def test_distilled_runs_share_one_teacher_trained_once(tmp_path: Path, tiny_bert_dir: Path) -> None:
    """The baseline of each model, task and seed is saved as the teacher; every distilled run learns from it."""
    from layerdrop.sweep import SweepRunner, sweep_jobs, teacher_of

    config = parse_sweep(
        {
            "models": [str(tiny_bert_dir)],
            "strategies": ["top", "bottom"],
            "num_drop": [1],
            "tasks": ["toy-sentiment"],
            "seeds": [1],
            "distill": [False, True],
            "distillation": {"alpha": 0.25},
            "run": {
                "max_train_samples": 32,
                "max_eval_samples": 16,
                "training": {"epochs": 1, "batch_size": 16, "max_length": 32, "learning_rate": 1e-3},
            },
        }
    )
    teachers = tmp_path / "sweep.teachers"
    specs = expand_grid(config, teachers=teachers)
    baseline = next(s for s in specs if "strategy" not in s)
    distilled = [s for s in specs if s.get("distill")]
    assert len(specs) == 5 and len(distilled) == 2
    assert all(teacher_of(s) == baseline and s["teacher"] == str(teachers / run_key(baseline)) for s in distilled)
    assert all(s["distillation"] == {"alpha": 0.25} for s in distilled)
    jobs, runner = sweep_jobs(specs)
    assert {job.key: job.needs for job in jobs if job.needs} == {run_key(s): (run_key(baseline),) for s in distilled}
    assert isinstance(runner, SweepRunner) and runner.teachers == {run_key(baseline): str(teachers / run_key(baseline))}

    db = tmp_path / "sweep.sqlite"
    outcome = run_sweep(jobs, db, runner=runner)
    assert (outcome.finished, outcome.failures) == (5, [])
    assert (teachers / run_key(baseline) / "config.json").is_file()
    results = {row[0]: json.loads(row[2]) for row in _rows(db)}
    teacher_score = results[run_key(baseline)]["score"]
    for spec in distilled:
        result = results[run_key(spec)]
        assert result["recovery"] == "distillation" and result["teacher"]["score"] == pytest.approx(teacher_score)
    assert {results[run_key(s)]["recovery"] for s in specs if "strategy" in s and not s.get("distill")} == {
        "fine-tuning"
    }
