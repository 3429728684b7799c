"""`layerdrop bench`: FLOPs against a hand count, every cell in the JSON, memory probe, bad input."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError
from transformers import BertConfig, BertModel

from layerdrop.bench import count_flops, load_for_bench, make_inputs, run_bench
from layerdrop.settings import BenchSettings, describe_error
from layerdrop.surgery import drop_layers

HIDDEN, INTERMEDIATE, LAYERS, MAX_POSITIONS = 32, 64, 4, 64
CONFIG = dict(vocab_size=100, hidden_size=HIDDEN, num_hidden_layers=LAYERS, num_attention_heads=4, intermediate_size=INTERMEDIATE, max_position_embeddings=MAX_POSITIONS)


def layer_flops(batch: int, length: int) -> int:
    """One BERT layer: Q, K, V, output projections, two FFN matmuls, QK^T and attention x V."""
    tokens = batch * length
    return 2 * (4 * tokens * HIDDEN * HIDDEN + 2 * tokens * HIDDEN * INTERMEDIATE) + 2 * 2 * batch * length * length * HIDDEN


def pooler_flops(batch: int) -> int:
    return 2 * batch * HIDDEN * HIDDEN


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A random 4-layer BERT and the same model with its top two layers dropped, both saved."""
    root = tmp_path_factory.mktemp("bench")
    model = BertModel(BertConfig(**CONFIG))
    model.save_pretrained(root / "full")
    drop_layers(model, [2, 3])
    model.save_pretrained(root / "half")
    return root / "full", root / "half"


def bench_cli(*args: str | Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", "from layerdrop.cli import main; main()", "bench", *map(str, args)], capture_output=True, text=True)


def test_flops_equal_a_hand_count_including_attention_and_pooler(models: tuple[Path, Path]) -> None:
    full, half = (load_for_bench(str(path), BenchSettings()) for path in models)
    inputs = make_inputs(3, 16, CONFIG["vocab_size"], [0], seed=0, device="cpu")
    assert count_flops(full, inputs) == LAYERS * layer_flops(3, 16) + pooler_flops(3)
    assert count_flops(half, inputs) == LAYERS // 2 * layer_flops(3, 16) + pooler_flops(3)
    # the head's cost keeps the ideal speed-up of half the layers strictly below 2
    assert 1.9 < count_flops(full, inputs) / count_flops(half, inputs) < 2


def test_inputs_avoid_special_ids_and_are_reproducible() -> None:
    first = make_inputs(4, 50, 10, [0, 1, 2, 3], seed=1, device="cpu")
    assert first["input_ids"].min() >= 4 and first["input_ids"].max() < 10
    assert first["attention_mask"].all()
    assert (first["input_ids"] == make_inputs(4, 50, 10, [0, 1, 2, 3], seed=1, device="cpu")["input_ids"]).all()


def test_json_and_csv_hold_every_cell_with_lengths_clamped(models: tuple[Path, Path], tmp_path: Path) -> None:
    full, half = models
    result = bench_cli(full, half, "--batch-sizes", "1,2", "--seq-lens", "8,100", "--repeats", "2", "--warmup", "1", "--threads", "1", "--no-memory", "--json", tmp_path / "r.json", "--csv", tmp_path / "r.csv")
    assert result.returncode == 0, result.stderr
    assert "meas./" in result.stdout  # the table
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["notes"] == [f"sequence length 100 clamped to {MAX_POSITIONS}, the position limit of {full}"]
    for model, layers in zip(report["models"], (LAYERS, LAYERS // 2)):
        assert model["num_layers"] == layers
        assert [(c["batch_size"], c["seq_len"]) for c in model["cells"]] == [(1, 8), (1, MAX_POSITIONS), (2, 8), (2, MAX_POSITIONS)]
        for cell in model["cells"]:
            assert len(cell["times_ms"]) == 2 and cell["median_ms"] > 0 and cell["throughput"] > 0
            assert cell["flops"] == layers * layer_flops(cell["batch_size"], cell["seq_len"]) + pooler_flops(cell["batch_size"])
    first, second = report["models"]
    assert all(cell["speedup"] == cell["ideal_speedup"] == 1 for cell in first["cells"])
    for cell, base in zip(second["cells"], first["cells"]):
        assert cell["ideal_speedup"] == pytest.approx(base["flops"] / cell["flops"])
        assert cell["speedup_vs_ideal"] == pytest.approx(cell["speedup"] / cell["ideal_speedup"])
    with (tmp_path / "r.csv").open() as handle:
        assert len(list(csv.DictReader(handle))) == 8


def test_memory_is_measured_per_model_in_a_fresh_process(models: tuple[Path, Path]) -> None:
    report = run_bench([str(models[1])], BenchSettings(batch_sizes=[2], seq_lens=[64], repeats=1, warmup=0, threads=1))
    model = report.models[0]
    cell = model.cells[0]
    assert report.memory_method
    assert model.loaded_memory_bytes > 0
    assert cell.peak_memory_bytes >= cell.activation_memory_bytes >= 0
    assert cell.peak_memory_bytes > cell.activation_memory_bytes  # the peak includes the loaded process


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--batch-sizes", "a,b"], "--batch-sizes: expected comma-separated integers, got 'a,b'"),
        (["--seq-lens", "0,128"], "--seq-lens: input should be greater than or equal to 1 (got 0)"),
        (["--repeats", "0"], "--repeats: input should be greater than or equal to 1 (got 0)"),
        (["--device", "tpu"], "Invalid value for '--device'"),
    ],
)
def test_bad_lists_are_one_line_errors(models: tuple[Path, Path], args: list[str], fragment: str) -> None:
    assert_one_line_error(bench_cli(models[0], *args), fragment)


@pytest.mark.parametrize(
    ("settings", "fragment"),
    [
        (dict(repeats=0), "repeats: input should be greater than or equal to 1"),
        (dict(threads=0), "threads: input should be greater than or equal to 1"),
        (dict(device="tpu"), "device: input should be 'cpu' or 'cuda'"),
        (dict(dtype="int8"), "dtype: input should be 'float32', 'float16' or 'bfloat16'"),
        (dict(batch_sizes=()), "batch_sizes: value should have at least 1 item"),
    ],
)
def test_bad_settings_are_refused_before_loading(settings: dict, fragment: str) -> None:
    with pytest.raises(ValidationError) as raised:
        BenchSettings(**settings)
    assert fragment in describe_error(raised.value)


def test_unknown_model_is_a_one_line_error(models: tuple[Path, Path], tmp_path: Path) -> None:
    assert_one_line_error(bench_cli(models[0], tmp_path / "no-such-model"), "no model at")


def assert_one_line_error(result: subprocess.CompletedProcess, fragment: str) -> None:
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == 2, result.stderr
    assert len(lines) == 1 and lines[0].startswith("error: ") and fragment in lines[0], result.stderr
