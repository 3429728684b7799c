"""`layerdrop bench` from the command line: every cell in the JSON and CSV, bad lists and models are one line."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from run_cli import assert_one_line_error, layerdrop_in_process
from bench_models import LAYERS, MAX_POSITIONS, layer_flops, pooler_flops, save_bench_models


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return save_bench_models(tmp_path_factory.mktemp("bench"))


def bench_cli(capsys: pytest.CaptureFixture, *args: str | Path):
    return layerdrop_in_process(capsys, "bench", *args)


def test_json_and_csv_hold_every_cell_with_lengths_clamped(
    models: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    full, half = models
    result = bench_cli(
        capsys,
        full,
        half,
        "--batch-sizes",
        "1,2",
        "--seq-lens",
        "8,100",
        "--repeats",
        "2",
        "--warmup",
        "1",
        "--threads",
        "1",
        "--no-memory",
        "--json",
        tmp_path / "r.json",
        "--csv",
        tmp_path / "r.csv",
    )
    assert result.returncode == 0, result.stderr
    assert "meas./" in result.stdout  # the table
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["notes"] == [f"sequence length 100 clamped to {MAX_POSITIONS}, the position limit of {full}"]
    for model, layers in zip(report["models"], (LAYERS, LAYERS // 2), strict=True):
        assert model["num_layers"] == layers
        assert [(c["batch_size"], c["seq_len"]) for c in model["cells"]] == [
            (1, 8),
            (1, MAX_POSITIONS),
            (2, 8),
            (2, MAX_POSITIONS),
        ]
        for cell in model["cells"]:
            assert len(cell["times_ms"]) == 2 and cell["median_ms"] > 0 and cell["throughput"] > 0
            assert cell["flops"] == layers * layer_flops(cell["batch_size"], cell["seq_len"]) + pooler_flops(
                cell["batch_size"]
            )
    first, second = report["models"]
    assert all(cell["speedup"] == cell["ideal_speedup"] == 1 for cell in first["cells"])
    for cell, base in zip(second["cells"], first["cells"], strict=True):
        assert cell["ideal_speedup"] == pytest.approx(base["flops"] / cell["flops"])
        assert cell["speedup_vs_ideal"] == pytest.approx(cell["speedup"] / cell["ideal_speedup"])
    with (tmp_path / "r.csv").open() as handle:
        assert len(list(csv.DictReader(handle))) == 8


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--batch-sizes", "a,b"], "--batch-sizes: expected comma-separated integers, got 'a,b'"),
        (["--seq-lens", "0,128"], "--seq-lens: input should be greater than or equal to 1 (got 0)"),
        (["--repeats", "0"], "--repeats: input should be greater than or equal to 1 (got 0)"),
        (["--device", "tpu"], "Invalid value for '--device'"),
    ],
)
def test_bad_lists_are_one_line_errors(
    models: tuple[Path, Path], args: list[str], fragment: str, capsys: pytest.CaptureFixture
) -> None:
    assert_one_line_error(bench_cli(capsys, models[0], *args), fragment)


def test_unknown_model_is_a_one_line_error(
    models: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    assert_one_line_error(bench_cli(capsys, models[0], tmp_path / "no-such-model"), "no model at")
