"""Tiny checkpoints on disk, as a user's folder holds them, and the ways their weights get damaged.

A 4-layer BERT and a word-level tokenizer that knows every word of the built-in toy task, so fine-tuning and
evaluating one take about a second.
"""

from __future__ import annotations

import functools
import re
from pathlib import Path

import torch
from transformers import BertConfig, BertForSequenceClassification, BertModel, BertTokenizer

from tiny_models import ENCODER

SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
WEIGHTS = "model.safetensors"
# How weights get damaged: a disk or copy error, an interrupted download or copy, a failed write, a lost file.
DAMAGE = ("corrupted", "truncated", "empty", "missing")


@functools.cache
def toy_words() -> tuple[str, ...]:
    """Every word and punctuation mark of the toy task's sentences, sorted."""
    from layerdrop.glue.toy import toy_splits

    return tuple(sorted({w for split in toy_splits().values() for s in split["sentence"] for w in re.findall(r"\w+|[^\w\s]", s)}))


def tiny_tokenizer() -> BertTokenizer:
    return BertTokenizer(vocab={word: i for i, word in enumerate([*SPECIAL_TOKENS, *toy_words()])})


def save_tiny_bert(path: Path, *, head: bool = True, seed: int = 0) -> Path:
    """A randomly initialised 4-layer BERT with its tokenizer, saved to `path`.

    A 2-label classifier, or with `head=False` the bare encoder, like a pre-trained checkpoint nobody fine-tuned.
    """
    tokenizer = tiny_tokenizer()
    config = BertConfig(**{**ENCODER, "vocab_size": len(tokenizer)}, num_labels=2)
    torch.manual_seed(seed)
    model = BertForSequenceClassification(config) if head else BertModel(config)
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


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
