"""Generation benchmark: FLOPs of a whole generation against a formula; exactly N tokens generated.

The formula is written out for the prefill and each decoding step.
"""

from __future__ import annotations

import copy

import pytest
from tiny_models import tiny_model

from layerdrop.bench import make_inputs
from layerdrop.errors import LayerDropError
from layerdrop.generation_bench import bench_generation, generate, generation_flops
from layerdrop.settings import GenerationBenchSettings
from layerdrop.surgery import drop_layers


def flops_by_hand(config, batch: int, prompt: int, new: int) -> int:
    """FLOPs of one generation, 2 per multiply-add.

    Prefill runs every layer on the P prompt tokens (attention over the full P x P square, as the kernel
    computes it); each of the N - 1 later steps runs one token against a cache of P + j keys; the LM head
    runs once per new token (generate keeps only the last logits).
    """
    h, heads, kv_heads, layers = (
        config.hidden_size,
        config.num_attention_heads,
        config.num_key_value_heads,
        config.num_hidden_layers,
    )
    head_dim = getattr(config, "head_dim", None) or h // heads
    linear = 2 * h * (heads + 2 * kv_heads) * head_dim + 2 * heads * head_dim * h + 2 * 3 * h * config.intermediate_size
    attention = 4 * heads * head_dim  # QK^T and AV, per (query, key) pair
    prefill = prompt * linear + attention * prompt * prompt
    decode = sum(linear + attention * (prompt + step) for step in range(1, new))
    return batch * (layers * (prefill + decode) + new * 2 * h * config.vocab_size)


@pytest.mark.parametrize("model_type", ["llama", "qwen3"])
@pytest.mark.parametrize(("batch", "prompt", "new"), [(1, 5, 4), (3, 7, 1)])
def test_generation_flops_match_the_formula(model_type: str, batch: int, prompt: int, new: int) -> None:
    model = tiny_model(model_type).requires_grad_(False)
    inputs = make_inputs(batch, prompt, 99, [0, 1, 2], seed=0, device="cpu")
    assert generation_flops(model, inputs, new) == flops_by_hand(model.config, batch, prompt, new)


def test_bench_compares_each_model_to_the_first_and_generates_exactly_n_tokens() -> None:
    full = tiny_model("llama")
    small = drop_layers(copy.deepcopy(full), [0, 2])
    settings = GenerationBenchSettings(prompt_tokens=6, new_tokens=3, batch_sizes=[1, 2], repeats=1, warmup=0)
    report = bench_generation({"full": full, "small": small}, settings, progress=False)
    assert [m.num_layers for m in report.models] == [4, 2]
    for batch, (first, second) in zip([1, 2], zip(*(m.cells for m in report.models), strict=True), strict=True):
        assert second.flops == flops_by_hand(small.config, batch, 6, 3) and first.flops == flops_by_hand(
            full.config, batch, 6, 3
        )
        assert second.ideal_speedup == pytest.approx(first.flops / second.flops)
        assert second.speedup == pytest.approx(second.tokens_per_second / first.tokens_per_second)
        assert len(second.times_ms) == 1 and second.tokens_per_second == pytest.approx(
            batch * 3 / (second.total_ms / 1e3)
        )
    assert len(report.rows()) == 4
    inputs = make_inputs(2, 6, 99, [0, 1, 2], seed=0, device="cpu")
    assert generate(full, inputs, 5).shape == (2, 11)


def test_bad_input_is_refused() -> None:
    with pytest.raises(LayerDropError, match="causal language model"):
        bench_generation({"bert": tiny_model("bert")}, GenerationBenchSettings(), progress=False)
    with pytest.raises(LayerDropError, match="position limit"):
        bench_generation(
            {"gpt2": tiny_model("gpt2")}, GenerationBenchSettings(prompt_tokens=1000, new_tokens=100), progress=False
        )
