"""Models and data for testing the strategies that score layers.

Tiny models with one layer made (near) identity, random token batches with padding, and a text file of words a
word-level tokenizer knows.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from transformers import AutoConfig, BertForSequenceClassification, BertTokenizer, LlamaForSequenceClassification

from layerdrop.architectures import layer_modules
from layerdrop.glue import get_task
from layerdrop.strategies import choose_layers
from tiny_models import DECODER, tiny_model

IDENTITY = 2  # the layer made (near) identity in the tests
WORDS = "the a movie film plot acting was is not very really good bad great dull boring fun i liked it".split()


def batches(
    count: int = 3, size: int = 8, length: int = 10, seed: int = 0, labels: torch.Tensor | None = None
) -> list[dict[str, torch.Tensor]]:
    """Random token ids (away from the pad id 0) with right padding of varying length."""
    generator = torch.Generator().manual_seed(seed)
    result = []
    for b in range(count):
        ids = torch.randint(5, 99, (size, length), generator=generator)
        mask = torch.ones_like(ids)
        for row in range(0, size, 2):
            mask[row, length - 1 - row % 5 :] = 0
        ids[mask == 0] = 0
        batch = {"input_ids": ids, "attention_mask": mask}
        if labels is not None:
            batch["labels"] = labels[b * size : (b + 1) * size]
        result.append(batch)
    return result


def tiny_llama(num_labels: int = 1, identity: int | None = None) -> LlamaForSequenceClassification:
    """Pre-norm decoder: zeroing a layer's o_proj and down_proj makes it an exact identity."""
    config = AutoConfig.for_model("llama", initializer_range=0.2, pad_token_id=0, num_labels=num_labels, **DECODER)
    torch.manual_seed(0)
    model = LlamaForSequenceClassification(config).eval()
    if identity is not None:
        layer = layer_modules(model)[identity]
        with torch.no_grad():
            layer.self_attn.o_proj.weight.zero_()
            layer.mlp.down_proj.weight.zero_()
    return model


def tiny_bert(identity: int | None = None) -> BertForSequenceClassification:
    """A tiny BERT, with layer `identity` made the identity up to the norm's epsilon.

    Post-norm encoder: with both output projections zeroed a layer returns LayerNorm(x), and x comes out of a
    LayerNorm with the same (initial) gain and bias.
    """
    model = tiny_model("bert")
    if identity is not None:
        layer = layer_modules(model)[identity]
        with torch.no_grad():
            for dense in (layer.attention.output.dense, layer.output.dense):
                dense.weight.zero_()
                dense.bias.zero_()
    return model


def save_scored_bert(path: Path, identity: int | None = None) -> Path:
    """`tiny_bert(identity)` with a word-level tokenizer of `WORDS`, saved as a checkpoint directory."""
    tiny_bert(identity).save_pretrained(path)
    BertTokenizer(
        vocab={w: i for i, w in enumerate(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS])}
    ).save_pretrained(path)
    return path


def write_texts(path: Path, count: int = 12) -> Path:
    generator = torch.Generator().manual_seed(1)
    lines = [
        " ".join(WORDS[int(i)] for i in torch.randint(0, len(WORDS), (3 + n % 6,), generator=generator))
        for n in range(count)
    ]
    path.write_text("\n".join(lines) + "\n")
    return path


def select(name: str, model: Any, data: Any = None, task: str | None = None, **options: Any) -> tuple[list[int], dict]:
    """The layers and record strategy `name` chooses on tokenized `data`."""
    chosen = choose_layers(name, model, options, batches=data, task=get_task(task) if task else None)
    return chosen.layers, chosen.record
