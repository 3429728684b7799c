"""Dropping layers equals skipping them, for every architecture and head; the record; impossible sets."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from layerdrop.architectures import layer_modules, num_layers
from layerdrop.errors import LayerDropError
from layerdrop.surgery import drop_layers
from drop_check import drop_and_check
from tiny_models import TINY, tiny_inputs, tiny_model

DROP = [1, 2]  # a middle pair: renumbering, per-layer config and caches all matter


def logits(model: nn.Module, inputs: dict) -> torch.Tensor:
    with torch.no_grad():
        return model(**inputs).logits


@pytest.mark.parametrize("model_type", list(TINY))
def test_dropped_model_equals_reference_forward(model_type: str) -> None:
    model = drop_and_check(tiny_model(model_type), DROP, strategy={"name": "explicit"})
    assert num_layers(model.config) == 2
    assert len(layer_modules(model)) == 2


@pytest.mark.parametrize("model_type", ["bert", "llama", "xlnet"])
def test_dropping_nothing_is_bit_identical(model_type: str) -> None:
    model = tiny_model(model_type)
    inputs = tiny_inputs()
    before = logits(model, inputs)
    drop_layers(model, [])
    assert torch.equal(logits(model, inputs), before)
    assert model.config.layer_dropping["dropped_layers"] == []


def test_record_and_renumbering() -> None:
    model = tiny_model("llama")
    drop_layers(model, [1], strategy={"name": "explicit"})
    assert [layer.self_attn.layer_idx for layer in model.model.layers] == [0, 1, 2]
    drop_layers(model, [0], strategy={"name": "top", "num_drop": 1})
    record = model.config.layer_dropping
    assert record["original_num_layers"] == 4
    assert record["kept_layers"] == [2, 3]  # original numbering across both drops
    assert record["dropped_layers"] == [0, 1]
    assert record["strategy"] == {"name": "top", "num_drop": 1}
    assert record["previous"]["dropped_layers"] == [1]


def test_per_layer_config_lists_are_cut() -> None:
    model = tiny_model("qwen2")
    model.config.layer_types = ["full_attention", "sliding_attention", "full_attention", "sliding_attention"]
    drop_layers(model, [0, 3])
    assert model.config.layer_types == ["sliding_attention", "full_attention"]


@pytest.mark.parametrize("indices", [[4], [-1], [1, 1], [0, 1, 2, 3]])
def test_impossible_layer_sets_are_refused(indices: list[int]) -> None:
    model = tiny_model("bert")
    with pytest.raises(LayerDropError):
        drop_layers(model, indices)
    assert num_layers(model.config) == 4


def test_albert_with_several_groups_is_refused() -> None:
    from transformers import AlbertConfig, AlbertModel

    model = AlbertModel(
        AlbertConfig(
            hidden_size=32,
            embedding_size=16,
            num_hidden_layers=4,
            num_attention_heads=2,
            intermediate_size=37,
            num_hidden_groups=2,
        )
    )
    with pytest.raises(LayerDropError, match="num_hidden_groups"):
        drop_layers(model, [1])


def test_unsupported_architecture_lists_supported_ones() -> None:
    from transformers import T5Config, T5Model

    with pytest.raises(LayerDropError, match=r"unsupported architecture 't5'; supported: bert, roberta"):
        drop_layers(T5Model(T5Config(d_model=16, d_ff=32, num_layers=2, num_heads=2, d_kv=8, vocab_size=50)), [0])


@pytest.mark.parametrize("model_type", ["gpt2", "llama"])
def test_generation_with_kv_cache_after_dropping_a_middle_layer(model_type: str) -> None:
    model = tiny_model(model_type)
    drop_layers(model, [2])
    prompt = tiny_inputs(batch=1, length=5)["input_ids"]
    settings = dict(max_new_tokens=8, do_sample=False, pad_token_id=0)
    with torch.no_grad():
        cached = model.generate(prompt, use_cache=True, **settings)
        uncached = model.generate(prompt, use_cache=False, **settings)
    assert cached.shape == (1, 13)
    assert torch.equal(cached, uncached)
