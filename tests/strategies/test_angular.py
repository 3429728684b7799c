"""Angular distance (Gromov et al. 2024): the block of n layers whose input and output point the same way."""

from __future__ import annotations

import pytest

from layerdrop.strategies.angular import best_block
from scoring_inputs import IDENTITY, batches, select, tiny_llama


def test_blocks() -> None:
    assert best_block([0.5, 0.2, 0.4], 2, range(4)) == [1, 2]
    assert best_block([0.5, 0.2, 0.4], 2, [0, 1]) == [0, 1]  # the block must avoid protected layers


@pytest.mark.parametrize("pooling", ["first", "last", "mean"])
def test_an_identity_decoder_layer_is_chosen_first(pooling: str) -> None:
    model, data = tiny_llama(identity=IDENTITY), batches()
    assert select("angular", model, data=data, num_drop=1, pooling=pooling)[0] == [IDENTITY]
