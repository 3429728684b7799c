"""Two tiny BERTs for benchmarking (4 layers, and the same with 2 dropped) and a hand count of their FLOPs."""

from __future__ import annotations

from pathlib import Path

from transformers import BertConfig, BertModel

from layerdrop.surgery import drop_layers

HIDDEN, INTERMEDIATE, LAYERS, MAX_POSITIONS = 32, 64, 4, 64
CONFIG = dict(
    vocab_size=100,
    hidden_size=HIDDEN,
    num_hidden_layers=LAYERS,
    num_attention_heads=4,
    intermediate_size=INTERMEDIATE,
    max_position_embeddings=MAX_POSITIONS,
)


def layer_flops(batch: int, length: int) -> int:
    """One BERT layer: Q, K, V, output projections, two FFN matmuls, QK^T and attention x V."""
    tokens = batch * length
    return (
        2 * (4 * tokens * HIDDEN * HIDDEN + 2 * tokens * HIDDEN * INTERMEDIATE)
        + 2 * 2 * batch * length * length * HIDDEN
    )


def pooler_flops(batch: int) -> int:
    return 2 * batch * HIDDEN * HIDDEN


def save_bench_models(root: Path) -> tuple[Path, Path]:
    """A random 4-layer BERT and the same model with its top two layers dropped, both saved under `root`."""
    model = BertModel(BertConfig(**CONFIG))
    model.save_pretrained(root / "full")
    drop_layers(model, [2, 3])
    model.save_pretrained(root / "half")
    return root / "full", root / "half"
