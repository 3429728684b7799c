"""The hooked forward pass every similarity strategy scores layers with (strategies/similarity.py).

Checked against `output_hidden_states`; an identity layer is what every similarity strategy finds first.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from layerdrop.architectures import final_norm
from layerdrop.strategies.similarity import layer_similarity
from scoring_inputs import IDENTITY, batches, select, tiny_bert, tiny_llama
from tiny_models import TINY, tiny_inputs, tiny_model


def _reference_cosines(hidden_states: tuple[torch.Tensor, ...], index: torch.Tensor) -> list[float]:
    rows = torch.arange(len(index))
    return [
        float(F.cosine_similarity(a[rows, index], b[rows, index], dim=-1).mean())
        for a, b in zip(hidden_states, hidden_states[1:], strict=False)
    ]


def test_hook_scores_match_output_hidden_states_on_an_encoder() -> None:
    model = tiny_bert()
    (batch,) = batches(count=1)
    with torch.inference_mode():
        states = model(**batch, output_hidden_states=True).hidden_states
    scores = layer_similarity(model, [batch], progress=False)
    assert scores.contribution("first") == pytest.approx(
        _reference_cosines(states, torch.zeros(8, dtype=torch.long)), abs=1e-5
    )
    mask = batch["attention_mask"].bool()
    tokens = [float(F.cosine_similarity(a, b, dim=-1)[mask].mean()) for a, b in zip(states, states[1:], strict=False)]
    assert scores.block_influence() == pytest.approx([1 - t for t in tokens], abs=1e-5)


def test_hooks_see_the_decoders_last_layer_before_the_final_norm() -> None:
    model = tiny_llama()
    with torch.no_grad():  # a trained norm's gains differ per channel (unit gains would leave cosines alone)
        final_norm(model).weight.uniform_(0.2, 2.0, generator=torch.Generator().manual_seed(0))
    (batch,) = batches(count=1)
    with torch.inference_mode():
        states = model(**batch, output_hidden_states=True).hidden_states
    last = batch["attention_mask"].sum(1) - 1
    reference = _reference_cosines(states, last)
    scores = layer_similarity(model, [batch], progress=False).contribution("last")
    assert scores[:-1] == pytest.approx(reference[:-1], abs=1e-5)
    assert abs(scores[-1] - reference[-1]) > 1e-3  # output_hidden_states' last entry is after the norm


@pytest.mark.parametrize("model_type", sorted(TINY))
def test_every_architecture_is_scored(model_type: str) -> None:
    model = tiny_model(model_type)
    data = [dict(tiny_inputs(batch=4, length=9, seed=seed), labels=torch.tensor([0, 1, 1, 0])) for seed in range(2)]
    scores = layer_similarity(model, data)
    assert len(scores.contribution("first")) == 4 and all(-1 <= c <= 1 for c in scores.contribution("mean"))


def test_a_near_identity_encoder_layer_is_chosen_first() -> None:
    model, data = tiny_bert(identity=IDENTITY), batches()
    for name in ("contribution", "block-influence", "angular"):
        assert select(name, model, data=data, num_drop=1)[0] == [IDENTITY], name
