"""The architecture table: where each model type keeps its layers, its layer count, embeddings and final norm."""

from __future__ import annotations

import pytest
from transformers import AlbertConfig

from layerdrop.architectures import (
    SUPPORTED_MODEL_TYPES,
    architecture_for,
    check_shared_layers,
    embedding_parameters,
    final_norm,
    layer_modules,
    num_layers,
)
from layerdrop.errors import LayerDropError
from tiny_models import TINY, tiny_model


@pytest.mark.parametrize("model_type", list(TINY))
def test_every_tiny_model_has_four_layers_in_forward_order(model_type: str) -> None:
    model = tiny_model(model_type)
    assert model_type in SUPPORTED_MODEL_TYPES
    assert num_layers(model.config) == len(layer_modules(model)) == 4
    if architecture_for(model.config).shared_layers:
        assert len({id(layer) for layer in layer_modules(model)}) == 1  # ALBERT: one layer, repeated
    else:
        assert len({id(layer) for layer in layer_modules(model)}) == 4


def test_final_norm_only_where_the_model_has_one() -> None:
    llama, gpt2, bert = tiny_model("llama"), tiny_model("gpt2"), tiny_model("bert")
    assert final_norm(llama) is llama.model.norm and final_norm(gpt2) is gpt2.transformer.ln_f
    assert final_norm(bert) is None  # post-norm: every layer ends in its own norm


def test_embedding_parameters_by_hand() -> None:
    # word (99 x 32) + position (512 x 32) + token type (2 x 32) embeddings and their LayerNorm (2 x 32)
    assert embedding_parameters(tiny_model("bert")) == 99 * 32 + 512 * 32 + 2 * 32 + 2 * 32
    # GPT-2: word (99 x 32) and position (1024 x 32) embeddings; the LM head shares the word embeddings
    assert embedding_parameters(tiny_model("gpt2")) == 99 * 32 + 1024 * 32


def test_unsupported_and_grouped_models_are_refused() -> None:
    from transformers import T5Config

    with pytest.raises(LayerDropError, match=r"unsupported architecture 't5'; supported: bert, roberta"):
        architecture_for(T5Config())
    with pytest.raises(LayerDropError, match="num_hidden_groups=2 is not supported"):
        check_shared_layers(AlbertConfig(num_hidden_groups=2))
    check_shared_layers(AlbertConfig())
