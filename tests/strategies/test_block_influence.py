"""Block influence (Men et al. 2024, ShortGPT): 1 - mean token cosine between a layer's input and output."""

from __future__ import annotations

import pytest

from scoring_inputs import IDENTITY, batches, select, tiny_llama


def test_an_identity_layer_has_no_block_influence() -> None:
    indices, record = select("block-influence", tiny_llama(identity=IDENTITY), data=batches(), num_drop=1)
    assert indices == [IDENTITY] and record["scores"][IDENTITY] == pytest.approx(0, abs=1e-6)
