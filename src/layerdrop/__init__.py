"""layerdrop: make pre-trained transformers smaller and faster by dropping whole layers.

The Python API mirrors the CLI. Names are imported lazily so `layerdrop --help` stays fast.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "LayerDropError": "layerdrop.errors",
    "ARCHITECTURES": "layerdrop.architectures",
    "STRATEGIES": "layerdrop.strategies",
    "select_layers": "layerdrop.strategies",
    "drop_layers": "layerdrop.surgery",
    "dropping_record": "layerdrop.surgery",
    "load_model": "layerdrop.checkpoint",
    "save_model": "layerdrop.checkpoint",
    "model_summary": "layerdrop.summary",
    "DistillConfig": "layerdrop.settings",
    "distill": "layerdrop.distillation",
    "load_encoder": "layerdrop.embeddings",
    "sts_spearman": "layerdrop.embeddings",
    "distill_embeddings": "layerdrop.embeddings",
}

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'layerdrop' has no attribute {name!r}")
