"""Benchmarking: FLOPs against a hand count, reproducible inputs, the memory probe, settings refused before loading."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from layerdrop.bench import count_flops, load_for_bench, make_inputs, run_bench
from layerdrop.settings import BenchSettings, describe_error
from bench_models import CONFIG, LAYERS, layer_flops, pooler_flops, save_bench_models


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return save_bench_models(tmp_path_factory.mktemp("bench"))


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


@pytest.mark.slow
def test_memory_is_measured_per_model_in_a_fresh_process(models: tuple[Path, Path]) -> None:
    report = run_bench([str(models[1])], BenchSettings(batch_sizes=[2], seq_lens=[64], repeats=1, warmup=0, threads=1))
    model = report.models[0]
    cell = model.cells[0]
    assert report.memory_method
    assert model.loaded_memory_bytes > 0
    assert cell.peak_memory_bytes >= cell.activation_memory_bytes >= 0
    assert cell.peak_memory_bytes > cell.activation_memory_bytes  # the peak includes the loaded process


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
