"""What `layerdrop inspect` reports: layers, parameters and size, without loading the weights."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from layerdrop.architectures import architecture_for, embedding_parameters, layer_modules, num_layers, parameter_count
from layerdrop.checkpoint import WEIGHT_SUFFIXES, check_weights, load_model_config, model_class, resolve_source
from layerdrop.surgery import dropping_record


def model_summary(name: str, head: str | None = None) -> dict[str, Any]:
    """Architecture, layer count, parameters, size on disk and the `layer_dropping` record of a model.

    Parameters (total, embeddings, per layer) are counted on the meta device, so this is instant even
    for a 70B model.
    """
    config = load_model_config(name)
    check_weights(name)  # a checkpoint with missing or broken weights is not fine
    arch = architecture_for(config)
    cls = model_class(config, head)
    with torch.device("meta"):
        model = cls.from_config(config) if hasattr(cls, "from_config") else cls._from_config(config)
    layers = layer_modules(model)
    total = parameter_count(model)
    per_layer = [parameter_count(layer) for layer in layers]
    layer_total = parameter_count(layers[0]) if arch.shared_layers else sum(per_layer)
    summary: dict[str, Any] = {
        "model": name,
        "architecture": type(model).__name__,
        "model_type": config.model_type,
        "num_layers": num_layers(config),
        "parameters": {
            "total": total,
            "embeddings": embedding_parameters(model),
            "layers": layer_total,
            "per_layer": per_layer,
            "other": total - embedding_parameters(model) - layer_total,
        },
        "shared_layers": arch.shared_layers,
        "size_on_disk_bytes": size_on_disk(name),
        "layer_dropping": dropping_record(config),
    }
    if record := summary["layer_dropping"]:
        removed = 0 if arch.shared_layers else len(record["dropped_layers"]) * (per_layer[0] if per_layer else 0)
        summary["parameters"]["original_total"] = total + removed
        summary["parameters"]["removed"] = removed
    return summary


def size_on_disk(name: str) -> int | None:
    """Bytes of weight files in a local checkpoint or the local hub cache; None when not on disk."""
    folder = Path(resolve_source(name))
    if not (folder / "config.json").is_file():
        from huggingface_hub import try_to_load_from_cache

        cached = try_to_load_from_cache(name, "config.json")
        if not isinstance(cached, str):
            return None
        folder = Path(cached).parent
    return sum(f.stat().st_size for f in folder.iterdir() if f.suffix in WEIGHT_SUFFIXES)
