"""Greedy layer removal by perplexity on decoder LLMs (SLEB): reuse equals the naive search.

Each step's perplexity also equals that of the model with those layers really dropped, computed by hand.
"""

from __future__ import annotations

import copy
import math

import pytest
import torch
import torch.nn.functional as F
from tiny_models import tiny_model

from layerdrop.errors import LayerDropError
from layerdrop.strategies import choose_layers
from layerdrop.strategies.greedy_search import greedy_search
from layerdrop.surgery import drop_layers


def text_batches(count: int = 2, size: int = 3, length: int = 12, seed: int = 0) -> list[dict[str, torch.Tensor]]:
    """Random token ids; the first batch has a right-padded row so the mask must be honoured."""
    generator = torch.Generator().manual_seed(seed)
    result = []
    for index in range(count):
        ids = torch.randint(5, 99, (size, length), generator=generator)
        mask = torch.ones_like(ids)
        if index == 0:
            mask[0, -4:] = 0
        result.append({"input_ids": ids, "attention_mask": mask})
    return result


def perplexity_by_hand(model: torch.nn.Module, batches: list[dict[str, torch.Tensor]]) -> float:
    """exp(mean next-token NLL over every unpadded target), one log-softmax per position."""
    total, count = 0.0, 0
    with torch.no_grad():
        for batch in batches:
            logits = model(**batch).logits
            for row in range(len(batch["input_ids"])):
                length = int(batch["attention_mask"][row].sum())
                for position in range(length - 1):
                    log_probs = F.log_softmax(logits[row, position].double(), dim=-1)
                    total -= float(log_probs[batch["input_ids"][row, position + 1]])
                    count += 1
    return math.exp(total / count)


@pytest.mark.parametrize("model_type", ["llama", "qwen2"])
def test_greedy_by_perplexity_with_reuse_matches_naive_search_and_real_dropping(model_type: str) -> None:
    model = tiny_model(model_type)
    data = text_batches()
    runs = [
        greedy_search(model, data, range(4), max_steps=2, objective="perplexity", reuse=reuse, progress=False)
        for reuse in (True, False)
    ]
    assert runs[0].removed == runs[1].removed
    assert [e.loss for e in runs[0].trace] == pytest.approx([e.loss for e in runs[1].trace], rel=1e-6)
    assert math.exp(runs[0].baseline.loss) == pytest.approx(perplexity_by_hand(model, data), rel=1e-6)
    for step in range(2):
        smaller = drop_layers(copy.deepcopy(model), runs[0].removed[: step + 1])
        assert math.exp(runs[0].trace[step].loss) == pytest.approx(perplexity_by_hand(smaller, data), rel=1e-5)


def test_greedy_strategy_on_a_decoder_defaults_to_perplexity_and_records_it() -> None:
    model = tiny_model("llama")
    chosen = choose_layers("greedy", model, {"num_drop": 1}, batches=text_batches(), progress=False)
    assert chosen.record["objective"] == "perplexity" and len(chosen.layers) == 1
    assert chosen.record["greedy"]["steps"][0]["layer"] == chosen.layers[0]


def test_perplexity_needs_a_language_model() -> None:
    with pytest.raises(LayerDropError, match="perplexity needs a causal language model"):
        greedy_search(
            tiny_model("mistral"), text_batches(), range(4), max_steps=1, objective="perplexity", progress=False
        )
