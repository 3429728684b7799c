"""Dropping layers equals skipping them, for every architecture and head, and survives save/reload."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from layerdrop.architectures import layer_modules, num_layers
from layerdrop.checkpoint import save_model
from layerdrop.errors import LayerDropError
from layerdrop.surgery import drop_layers
from tiny_models import TINY, tiny_inputs, tiny_model

DROP = [1, 2]  # a middle pair: renumbering, per-layer config and caches all matter


def skip_layers_with_hooks(model: nn.Module, skip: list[int]) -> list:
    """Reference: the unmodified model, with each skipped layer's output replaced by its input.

    Hooks count calls per module so ALBERT's shared layer (one module called L times) works too.
    """
    positions: dict[int, list[int]] = {}
    modules: dict[int, nn.Module] = {}
    for position, layer in enumerate(layer_modules(model)):
        positions.setdefault(id(layer), []).append(position)
        modules[id(layer)] = layer
    handles = []
    for key, module in modules.items():
        calls = [0]

        def hook(module, args, kwargs, output, key=key, calls=calls):
            position = positions[key][calls[0] % len(positions[key])]
            calls[0] += 1
            if position not in skip:
                return output
            hidden = args[0] if args else next(v for k, v in kwargs.items() if k in ("hidden_states", "x", "output_h"))
            return hidden if isinstance(output, torch.Tensor) else (hidden, *output[1:])

        handles.append(module.register_forward_hook(hook, with_kwargs=True))
    return handles


def logits(model: nn.Module, inputs: dict) -> torch.Tensor:
    with torch.no_grad():
        return model(**inputs).logits


@pytest.mark.parametrize("model_type", list(TINY))
def test_dropped_model_equals_reference_forward(model_type: str) -> None:
    model = tiny_model(model_type)
    inputs = tiny_inputs()
    reference_model = copy.deepcopy(model)
    handles = skip_layers_with_hooks(reference_model, DROP)
    expected = logits(reference_model, inputs)
    for handle in handles:
        handle.remove()
    full = logits(reference_model, inputs)

    drop_layers(model, DROP, strategy={"name": "explicit"})

    assert num_layers(model.config) == 2
    assert len(layer_modules(model)) == 2
    got = logits(model, inputs)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)
    assert not torch.allclose(got, full, atol=1e-4), "dropping layers should change the output"


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

    model = AlbertModel(AlbertConfig(hidden_size=32, embedding_size=16, num_hidden_layers=4, num_attention_heads=2, intermediate_size=37, num_hidden_groups=2))
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


RELOAD_SCRIPT = """
import json, sys, torch, transformers
for folder, head in json.loads(sys.argv[1]):
    model = getattr(transformers, head).from_pretrained(folder).eval()
    inputs = torch.load(folder + "/inputs.pt")
    with torch.no_grad():
        torch.save(model(**inputs).logits, folder + "/reloaded.pt")
assert not any(name.startswith("layerdrop") for name in sys.modules), "layerdrop was imported"
"""


def test_save_and_reload_without_layerdrop(tmp_path: Path) -> None:
    """Every architecture reloads with plain transformers in a fresh process, with the same logits."""
    inputs = tiny_inputs()
    jobs, expected = [], {}
    for model_type, (head, _) in TINY.items():
        model = tiny_model(model_type)
        drop_layers(model, DROP, strategy={"name": "explicit"})
        folder = save_model(model, tmp_path / model_type)
        torch.save(inputs, folder / "inputs.pt")
        expected[model_type] = logits(model, inputs)
        jobs.append((str(folder), head))
    subprocess.run([sys.executable, "-c", RELOAD_SCRIPT, json.dumps(jobs)], check=True, cwd=tmp_path)
    for model_type in TINY:
        folder = tmp_path / model_type
        torch.testing.assert_close(torch.load(folder / "reloaded.pt"), expected[model_type], rtol=0, atol=0)
        config = json.loads((folder / "config.json").read_text())
        assert config["layer_dropping"]["dropped_layers"] == DROP
        assert config["layer_dropping"]["kept_layers"] == [0, 3]
        assert config["layer_dropping"]["original_num_layers"] == 4
        assert "layerdrop_version" in config["layer_dropping"]
        assert list(folder.glob("*.safetensors"))
        assert "dropped layers (0-based, original numbering): [1, 2]" in (folder / "README.md").read_text()
