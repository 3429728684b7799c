"""Greedy search (Sajjad et al. 2023, Section 5): remove the layer whose loss costs least, step by step.

Scores reused from the activations below each candidate equal those of the naive search and of the really
dropped model.
"""

from __future__ import annotations

import copy

import pytest
import torch

from layerdrop.errors import LayerDropError
from layerdrop.glue import get_task
from layerdrop.strategies.greedy_search import greedy_search
from layerdrop.surgery import drop_layers
from scoring_inputs import IDENTITY, batches, select, tiny_llama
from tiny_models import TINY, tiny_inputs, tiny_model


@pytest.mark.parametrize(
    "model_type",
    sorted(t for t, (head, _) in TINY.items() if head.endswith("ForSequenceClassification") and t != "albert"),
)
def test_reuse_agrees_with_the_naive_search_on_every_classifier(model_type: str) -> None:
    model = tiny_model(model_type)
    data = [dict(tiny_inputs(batch=4, length=9, seed=seed), labels=torch.tensor([0, 1, 1, 0])) for seed in range(2)]
    runs = [
        greedy_search(model, data, range(4), max_steps=2, objective="loss", reuse=reuse, progress=False)
        for reuse in (True, False)
    ]
    assert runs[0].removed == runs[1].removed and runs[0].trace == runs[1].trace


def test_greedy_refuses_albert_whose_layers_are_one() -> None:
    with pytest.raises(LayerDropError, match="ALBERT"):
        greedy_search(
            tiny_model("albert"),
            batches(labels=torch.zeros(24, dtype=torch.long)),
            range(4),
            max_steps=1,
            objective="loss",
            progress=False,
        )


def test_an_identity_layer_is_removed_first_by_loss() -> None:
    model = tiny_llama(identity=IDENTITY)
    with torch.inference_mode():  # regression on the model's own outputs: removing the identity costs nothing
        targets = torch.cat([model(**b).logits.squeeze(-1) for b in batches()])
    indices, record = select("greedy", model, data=batches(labels=targets), num_drop=1, objective="loss")
    assert indices == [IDENTITY] and record["greedy"]["steps"][0]["loss"] == 0


@pytest.mark.parametrize("model_type", ["bert", "mistral"])
def test_greedy_by_score_with_reuse_matches_the_naive_search(model_type: str) -> None:
    model = tiny_model(model_type)
    data = batches(labels=torch.randint(0, 2, (24,), generator=torch.Generator().manual_seed(3)))
    runs = [
        greedy_search(model, data, range(4), max_steps=3, task=get_task("rte"), reuse=reuse, progress=False)
        for reuse in (True, False)
    ]
    assert runs[0].removed == runs[1].removed
    assert runs[0].trace == runs[1].trace and runs[0].baseline == runs[1].baseline


def test_greedy_scores_equal_those_of_the_model_with_the_layers_really_dropped() -> None:
    model = tiny_model("mistral")
    data = batches(labels=torch.randint(0, 2, (24,), generator=torch.Generator().manual_seed(3)))
    result = greedy_search(model, data, [0, 1, 2], max_steps=2, objective="loss", progress=False)
    assert 3 not in result.removed  # protected
    smaller = drop_layers(copy.deepcopy(model), result.removed)
    assert greedy_search(
        smaller, data, [], max_steps=0, objective="loss", progress=False
    ).baseline.loss == pytest.approx(result.trace[-1].loss, rel=1e-5)


def test_greedy_stops_before_the_score_falls_too_far() -> None:
    model = tiny_model("mistral")
    with torch.inference_mode():  # labels the full model gets all right: accuracy 1.0 to lose
        labels = torch.cat([model(**b).logits.argmax(-1) for b in batches()])
    indices, record = select("greedy", model, data=batches(labels=labels), task="rte", max_drop_percent=20)
    trace = record["greedy"]
    assert trace["baseline"]["score"] == 1.0 and indices == [3] and trace["steps"][0]["score"] == 0.875
    assert trace["stop_reason"].startswith("removing layer 2 next would cost more than 20%")
    _, record = select("greedy", model, data=batches(labels=labels), task="rte", num_drop=2, max_drop_percent=100)
    assert [step["num_layers"] for step in record["greedy"]["steps"]] == [3, 2] and record["num_drop"] == 2
