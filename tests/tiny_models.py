"""Tiny randomly initialised models, one per supported architecture, with a variety of heads."""

from __future__ import annotations

import torch
import transformers
from transformers import AutoConfig, PreTrainedModel

ENCODER = dict(hidden_size=32, num_hidden_layers=4, num_attention_heads=2, intermediate_size=37, vocab_size=99)
DECODER = dict(
    hidden_size=32,
    num_hidden_layers=4,
    num_attention_heads=4,
    num_key_value_heads=2,
    intermediate_size=37,
    vocab_size=99,
)

# model_type -> (head class, config overrides)
TINY: dict[str, tuple[str, dict]] = {
    "bert": ("BertForSequenceClassification", ENCODER),
    "roberta": ("RobertaForMaskedLM", ENCODER),
    "xlm-roberta": ("XLMRobertaForSequenceClassification", ENCODER),
    "electra": ("ElectraForSequenceClassification", dict(ENCODER, embedding_size=16)),
    "deberta-v2": (
        "DebertaV2ForSequenceClassification",
        dict(ENCODER, relative_attention=True, position_buckets=8, pos_att_type=["c2p", "p2c"]),
    ),
    "xlnet": ("XLNetForSequenceClassification", dict(d_model=32, n_layer=4, n_head=2, d_inner=37, vocab_size=99)),
    "distilbert": (
        "DistilBertForSequenceClassification",
        dict(dim=32, n_layers=4, n_heads=2, hidden_dim=37, vocab_size=99),
    ),
    "albert": ("AlbertForSequenceClassification", dict(ENCODER, embedding_size=16)),
    "gpt2": ("GPT2LMHeadModel", dict(n_embd=32, n_layer=4, n_head=2, vocab_size=99, bos_token_id=0, eos_token_id=0)),
    "llama": ("LlamaForCausalLM", DECODER),
    "mistral": ("MistralForSequenceClassification", dict(DECODER, pad_token_id=0)),
    "qwen2": ("Qwen2ForCausalLM", DECODER),
    "qwen3": ("Qwen3ForCausalLM", dict(DECODER, head_dim=8)),
}


def tiny_model(model_type: str, seed: int = 0) -> PreTrainedModel:
    """A tiny model in eval mode, weights from a fixed seed, initialised wide enough that every layer matters."""
    head, overrides = TINY[model_type]
    config = AutoConfig.for_model(model_type, initializer_range=0.2, **overrides)
    torch.manual_seed(seed)
    return getattr(transformers, head)(config).eval()


def tiny_inputs(batch: int = 2, length: int = 7, seed: int = 0) -> dict[str, torch.Tensor]:
    """Token ids away from special ids, with one padded row so masks matter."""
    generator = torch.Generator().manual_seed(seed)
    input_ids = torch.randint(5, 99, (batch, length), generator=generator)
    attention_mask = torch.ones_like(input_ids)
    attention_mask[0, -2:] = 0
    return {"input_ids": input_ids, "attention_mask": attention_mask}
