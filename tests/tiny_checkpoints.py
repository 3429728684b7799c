"""Tiny checkpoints on disk, as a user's folder holds them, and the ways their weights get damaged.

A 4-layer BERT and a word-level tokenizer that knows every word of the built-in toy task, so fine-tuning and
evaluating one take about a second.
"""

from __future__ import annotations

import functools
import re
from pathlib import Path
from typing import Any

import torch
from transformers import BertConfig, BertForSequenceClassification, BertModel, BertTokenizer, PreTrainedTokenizerBase

from tiny_models import ENCODER

SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
WEIGHTS = "model.safetensors"
# How weights get damaged: a disk or copy error, an interrupted download or copy, a failed write, a lost file.
DAMAGE = ("corrupted", "truncated", "empty", "missing")


@functools.cache
def toy_words() -> tuple[str, ...]:
    """Every word and punctuation mark of the toy task's sentences, sorted."""
    from layerdrop.glue.toy import toy_splits

    return tuple(
        sorted({w for split in toy_splits().values() for s in split["sentence"] for w in re.findall(r"\w+|[^\w\s]", s)})
    )


def tiny_tokenizer() -> BertTokenizer:
    return BertTokenizer(vocab={word: i for i, word in enumerate([*SPECIAL_TOKENS, *toy_words()])})


def save_tiny_bert(
    path: Path, *, head: bool = True, seed: int = 0, tokenizer: PreTrainedTokenizerBase | None = None, **config: Any
) -> Path:
    """A randomly initialised 4-layer BERT with its tokenizer, saved to `path`.

    A 2-label classifier, or with `head=False` the bare encoder, like a pre-trained checkpoint nobody fine-tuned.
    `tokenizer` (default: the toy task's word-level one) sets the vocabulary; `config` overrides BERT settings.
    """
    tokenizer = tokenizer or tiny_tokenizer()
    config = BertConfig(**{**ENCODER, "vocab_size": len(tokenizer), **config}, num_labels=2)
    torch.manual_seed(seed)
    model = BertForSequenceClassification(config) if head else BertModel(config)
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


LM_WORDS = "the cat dog sat ran on mat log a red blue sky sea is and of to in it was".split()


def save_tiny_llama(path: Path, *, layers: int = 4, seed: int = 0) -> Path:
    """A randomly initialised Llama causal LM with a word-level tokenizer (unknown words map to <unk>)."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import AutoConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    vocab = {token: i for i, token in enumerate(["<unk>", "<s>", "</s>", *LM_WORDS])}
    backend = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend, unk_token="<unk>", bos_token="<s>", eos_token="</s>", pad_token="</s>"
    )
    config = AutoConfig.for_model(
        "llama",
        hidden_size=32,
        num_hidden_layers=layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        intermediate_size=37,
        vocab_size=len(vocab),
        bos_token_id=1,
        eos_token_id=2,
        pad_token_id=2,
        max_position_embeddings=256,
        initializer_range=0.2,
    )
    torch.manual_seed(seed)
    LlamaForCausalLM(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def lm_text(words: int = 400, seed: int = 0) -> str:
    """Running text of the tiny Llama's words, a sentence per line."""
    generator = torch.Generator().manual_seed(seed)
    picks = torch.randint(0, len(LM_WORDS), (words,), generator=generator).tolist()
    return "\n".join(" ".join(LM_WORDS[i] for i in picks[start : start + 8]) for start in range(0, words, 8)) + "\n"


def damage_weights(folder: Path, how: str) -> None:
    """Damage the checkpoint's weights file in one of the ways of `DAMAGE`."""
    weights = folder / WEIGHTS
    data = weights.read_bytes()
    if how == "corrupted":  # the header length and JSON header overwritten with junk
        weights.write_bytes(b"\xff" * 64 + data[64:])
    elif how == "truncated":
        weights.write_bytes(data[: len(data) // 2])
    elif how == "empty":
        weights.write_bytes(b"")
    elif how == "missing":
        weights.unlink()
    else:
        raise ValueError(how)
