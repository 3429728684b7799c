"""Contribution (Sajjad et al. 2023): drop the layers whose output is most like their input, or above a threshold."""

from __future__ import annotations

import pytest

from layerdrop.errors import LayerDropError
from layerdrop.strategies.contribution import above_threshold
from scoring_inputs import IDENTITY, batches, select, tiny_bert, tiny_llama


def test_thresholds_select_exactly_the_layers_above_them() -> None:
    scores = [0.96, 0.93, 0.91, 0.5, 0.95]
    assert above_threshold(scores, 0.95, range(5)) == [0]  # strictly above: 0.95 itself stays
    assert above_threshold(scores, 0.925, range(5)) == [0, 1, 4]
    assert above_threshold(scores, 0.9, range(5)) == [0, 1, 2, 4]
    assert above_threshold(scores, 0.9, [1, 2, 3]) == [1, 2]  # protected layers are never chosen
    for bad in (1.5, -1.0, -3):
        with pytest.raises(LayerDropError, match="threshold"):
            select("contribution", tiny_bert(), batches(), threshold=bad)


@pytest.mark.parametrize("pooling", ["first", "last", "mean"])
def test_an_identity_decoder_layer_is_chosen_first(pooling: str) -> None:
    model, data = tiny_llama(identity=IDENTITY), batches()
    assert select("contribution", model, data=data, num_drop=1, pooling=pooling)[0] == [IDENTITY]


def test_a_threshold_finds_the_near_identity_encoder_layer() -> None:
    indices, record = select("contribution", tiny_bert(identity=IDENTITY), data=batches(), threshold=0.999)
    assert indices == [IDENTITY] and record["threshold"] == 0.999
