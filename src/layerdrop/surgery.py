"""Removing whole layers from a loaded model, in place, and recording what was done in its config."""

from __future__ import annotations

from typing import Any

from torch import nn
from transformers import PreTrainedModel

from layerdrop import __version__
from layerdrop.architectures import architecture_for, check_shared_layers, get_submodule, num_layers
from layerdrop.errors import LayerDropError

RECORD_KEY = "layer_dropping"


def drop_layers(model: PreTrainedModel, indices: list[int], strategy: dict[str, Any] | None = None) -> PreTrainedModel:
    """Remove the layers at `indices` (0-based, current numbering) from `model` and return it.

    Works in place (no copy of a possibly large model). The forward pass afterwards equals the
    original one with those layers skipped. The config is updated so the model saves and reloads
    with plain transformers: the layer count, per-layer config lists, attention `layer_idx`
    (so a KV cache lines up), and a `layer_dropping` record in original numbering, which
    accumulates when a model is dropped from twice.
    """
    config = model.config
    arch = architecture_for(config)
    total = num_layers(config)
    check_layer_set(list(indices), total)
    drop = set(indices)
    keep = [i for i in range(total) if i not in drop]

    if arch.shared_layers:
        check_shared_layers(config)
    else:
        stack: nn.ModuleList = get_submodule(model, arch.layers)
        kept_modules = [stack[i] for i in keep]
        for new_index, layer in enumerate(kept_modules):
            for module in layer.modules():
                if isinstance(getattr(module, "layer_idx", None), int):
                    module.layer_idx = new_index
        parent_path, _, name = arch.layers.rpartition(".")
        setattr(get_submodule(model, parent_path), name, nn.ModuleList(kept_modules))

    for key in arch.per_layer_config:
        values = getattr(config, key, None)
        if isinstance(values, list) and len(values) == total:
            setattr(config, key, [values[i] for i in keep])
    setattr(config, arch.num_layers_key, len(keep))
    for module in model.modules():  # modules that cache the count at init (DistilBERT, XLNet)
        if module is not model and isinstance(getattr(module, arch.num_layers_key, None), int):
            setattr(module, arch.num_layers_key, len(keep))

    _update_record(config, total, keep, strategy)
    return model


def check_layer_set(layers: list[int], num_layers: int) -> None:
    """Refuse a layer set that cannot be dropped from an L-layer model."""
    if len(set(layers)) != len(layers):
        raise LayerDropError(f"layer set {sorted(layers)} names a layer twice")
    if bad := [i for i in layers if not 0 <= i < num_layers]:
        raise LayerDropError(
            f"layer indices {bad} are out of range for a {num_layers}-layer model (valid: 0-{num_layers - 1})"
        )
    if len(layers) >= num_layers:
        raise LayerDropError(f"dropping {len(layers)} of {num_layers} layers would leave none")


def _update_record(config: Any, total: int, keep: list[int], strategy: dict[str, Any] | None) -> None:
    """Write the record in the original model's numbering, composing with an earlier drop."""
    previous = getattr(config, RECORD_KEY, None)
    original_kept = previous["kept_layers"] if previous else list(range(total))
    original_total = previous["original_num_layers"] if previous else total
    kept = [original_kept[i] for i in keep]
    record = {
        "original_num_layers": original_total,
        "num_layers": len(kept),
        "dropped_layers": [i for i in range(original_total) if i not in kept],
        "kept_layers": kept,
        "strategy": strategy or {"name": "explicit"},
        "layerdrop_version": __version__,
    }
    if previous:
        record["previous"] = previous
    setattr(config, RECORD_KEY, record)


def dropping_record(config: Any) -> dict[str, Any] | None:
    """The `layer_dropping` record of a config, or None for a model layerdrop never touched."""
    record = getattr(config, RECORD_KEY, None)
    if record is not None and not isinstance(record, dict):
        raise LayerDropError(f"config key {RECORD_KEY!r} is not a record written by layerdrop")
    return record
