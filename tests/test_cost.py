"""The cost model of `sweep --dry-run`, against hand-computed work and hours."""

from __future__ import annotations

import json
from contextlib import closing
from pathlib import Path

import pytest

from run_cli import layerdrop_in_process
from layerdrop.cost import REFERENCE, TASK_SIZES, estimate_sweep, model_shape, planned_size, work
from layerdrop.experiment import RunConfig
from layerdrop.sweep import expand_grid, identity, open_db, parse_sweep, record, run_key

MINILM = "bundled:all-MiniLM-L6-v2"
# all-MiniLM-L6-v2's layer: attention 4 x (384 x 384 + 384), FFN 384 x 1536 + 1536 and 1536 x 384 + 384, two LayerNorms.
MINILM_LAYER = 4 * (384 * 384 + 384) + (384 * 1536 + 1536) + (1536 * 384 + 384) + 2 * 2 * 384
TOKENS = TASK_SIZES["toy-sentiment"].tokens  # 13.9 < max_length: not truncated
GRID = {
    "models": [MINILM],
    "strategies": ["top"],
    "num_drop": [2],
    "tasks": ["toy-sentiment"],
    "seeds": [1],
    "run": {"max_train_samples": 100, "training": {"epochs": 2}},
}


def test_minilm_shape_is_read_from_its_config(minilm_dir: Path) -> None:
    assert model_shape(MINILM) == (6, MINILM_LAYER)
    assert model_shape("no-such-org/no-such-model") is None  # offline: unreadable, so the estimate assumes BERT-base


def test_work_of_each_regime_by_hand() -> None:
    base = dict(model="m", task="toy-sentiment", max_train_samples=100, training={"epochs": 2})
    size = planned_size(RunConfig(**base))
    assert (size.train, size.dev, size.tokens) == (100, (400,), TOKENS)
    # Parameter-tokens per parameter in a layer and token: train examples x epochs x layers trained,
    # plus dev examples x layers at each evaluation / 3.
    full = RunConfig(**base)
    assert work(full, size, 6, 1) == pytest.approx(TOKENS * (100 * 2 * 6 + 400 * 6 / 3))
    top2 = RunConfig(**base, strategy="top", strategy_options={"num_drop": 2})
    assert work(top2, size, 6, 1) == pytest.approx(TOKENS * (100 * 2 * 4 + 400 * 4 / 3))
    # finetuned: fine-tune 6 layers, evaluate (6), drop, evaluate (4), fine-tune 4, evaluate (4).
    finetuned = RunConfig(**base, strategy="top", strategy_options={"num_drop": 2}, regime="finetuned")
    assert work(finetuned, size, 6, 1) == pytest.approx(TOKENS * (100 * 2 * (6 + 4) + 400 * (6 + 4 + 4) / 3))
    # iterative, one layer every 2 epochs over 4 epochs: 6, 6, 5, 5 layers.
    iterative = RunConfig(
        **{**base, "training": {"epochs": 4}}, strategy="top", strategy_options={"num_drop": 2}, regime="iterative"
    )
    assert work(iterative, size, 6, 1) == pytest.approx(TOKENS * (100 * (6 + 6 + 5 + 5) + 400 * 4 / 3))
    # contribution scores the layers on the (here 100) training examples first: one forward pass of 6 layers.
    scored = RunConfig(**base, strategy="contribution", strategy_options={"num_drop": 2})
    assert work(scored, size, 6, 1) == pytest.approx(TOKENS * (100 * 2 * 4 + (400 * 4 + 100 * 6) / 3))


def test_sizes_follow_the_caps() -> None:
    mnli = planned_size(RunConfig(model="m", task="mnli", max_eval_samples=1000, training={"max_length": 32}))
    assert (mnli.train, mnli.dev, mnli.tokens) == (392_702, (1000, 1000), 32)
    rte = planned_size(RunConfig(model="m", task="rte", train_from_dev=0.5))
    assert (rte.train, rte.dev) == (138, (139,))  # round(277 / 2) trains, the rest evaluates


def test_dry_run_hours_from_the_assumption_and_from_measured_runs(tmp_path: Path, minilm_dir: Path) -> None:
    specs = expand_grid(parse_sweep(GRID))
    full, top2 = sorted(specs, key=lambda s: identity(s)["num_drop"])
    per_layer_token = {"full": 100 * 2 * 6 + 400 * 6 / 3, "top2": 100 * 2 * 4 + 400 * 4 / 3}
    assumed = {
        name: units * TOKENS * MINILM_LAYER / (78_000 * 85_054_464) / 3600 for name, units in per_layer_token.items()
    }
    estimate = estimate_sweep(specs)
    assert [m.runs for m in estimate.models] == [2] and estimate.models[0].measured_runs == 0
    assert estimate.hours == pytest.approx(assumed["full"] + assumed["top2"])
    assert REFERENCE.rate == 78_000 * 85_054_464

    # The full model ran in 10 s of wall time on this database's machine: the top-2 run then takes
    # its work over the full run's work times 10 s.
    db = tmp_path / "grid.sqlite"
    result = {
        **identity(full),
        "metrics": {"accuracy": 0.9},
        "score": 0.9,
        "train_examples": 100,
        "eval_examples": {"validation": 400},
        "wall_time_s": 10.0,
        "num_layers_original": 6,
    }
    with closing(open_db(db)) as conn:
        record(conn, full, result)
    estimate = estimate_sweep(specs, db, done={run_key(full)})
    assert [(m.runs, m.measured_runs) for m in estimate.models] == [(1, 1)]
    assert estimate.hours * 3600 == pytest.approx(10.0 * per_layer_token["top2"] / per_layer_token["full"])


def test_dry_run_command_prints_the_count_the_estimate_and_the_assumption(
    tmp_path: Path, capsys: pytest.CaptureFixture, minilm_dir: Path
) -> None:
    config = tmp_path / "grid.yaml"
    config.write_text(json.dumps({**GRID, "workers": 2}))
    done = layerdrop_in_process(capsys, "sweep", str(config), "--dry-run")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    hours = estimate_sweep(expand_grid(parse_sweep(GRID))).hours
    assert f"2 runs, 0 already in {tmp_path / 'grid.sqlite'}" in lines
    assert f"cost: 2 runs to run, about {hours:.3g} device-hours" in lines
    assert f"  {MINILM}: 2 runs, {hours:.3g} h at the assumed A100 (bf16) speed" in lines
    assert f"  on 2 local workers: about {hours / 2:.3g} h" in lines
    assert any(
        line.startswith(
            "assumption: a model with 85,054,464 parameters in its layers (BERT-base) trains at 78,000 tokens/s"
        )
        for line in lines
    )
    assert not (tmp_path / "grid.sqlite").exists()  # a dry run creates nothing
