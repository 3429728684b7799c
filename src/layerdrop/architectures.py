"""What layerdrop knows about each architecture, as small declarative entries.

Adding an architecture is one `Architecture(...)` line in `ARCHITECTURES`: where the layer stack
lives (relative to the base model, so every head works), which config key counts the layers,
which config lists hold one entry per layer, and where the embeddings and final norm are.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn
from transformers import PretrainedConfig, PreTrainedModel

from layerdrop.errors import LayerDropError


@dataclass(frozen=True)
class Architecture:
    """Where one family of architectures keeps its layers, layer count, embeddings and final norm."""

    model_types: tuple[str, ...]
    layers: str  # dotted path of the nn.ModuleList of layers, relative to model.base_model
    num_layers_key: str  # config key that counts the layers
    embeddings: tuple[str, ...]  # dotted paths of embedding modules, for parameter accounting
    per_layer_config: tuple[str, ...] = ()  # config lists with one entry per layer, cut to the kept ones
    final_norm: str | None = None  # norm applied after the last layer (decoders), relative to the base model
    shared_layers: bool = False  # ALBERT: one set of weights repeated `num_layers_key` times


ARCHITECTURES: tuple[Architecture, ...] = (
    Architecture(
        ("bert", "roberta", "xlm-roberta", "electra", "camembert"),
        "encoder.layer",
        "num_hidden_layers",
        ("embeddings",),
    ),
    Architecture(("deberta-v2",), "encoder.layer", "num_hidden_layers", ("embeddings",)),
    Architecture(("xlnet",), "layer", "n_layer", ("word_embedding",)),
    Architecture(("distilbert",), "transformer.layer", "n_layers", ("embeddings",)),
    # ALBERT repeats one shared layer L times; dropping K layers means K fewer repetitions.
    Architecture(
        ("albert",),
        "encoder.albert_layer_groups",
        "num_hidden_layers",
        ("embeddings", "encoder.embedding_hidden_mapping_in"),
        shared_layers=True,
    ),
    Architecture(("gpt2",), "h", "n_layer", ("wte", "wpe"), final_norm="ln_f"),
    Architecture(
        ("llama", "mistral", "qwen2", "qwen3"),
        "layers",
        "num_hidden_layers",
        ("embed_tokens",),
        per_layer_config=("layer_types",),
        final_norm="norm",
    ),
)

SUPPORTED_MODEL_TYPES: tuple[str, ...] = tuple(t for arch in ARCHITECTURES for t in arch.model_types)


def architecture_for(config: PretrainedConfig) -> Architecture:
    """The entry for a config's model_type, or a one-line error listing what is supported."""
    for arch in ARCHITECTURES:
        if config.model_type in arch.model_types:
            return arch
    raise LayerDropError(
        f"unsupported architecture {config.model_type!r}; supported: {', '.join(SUPPORTED_MODEL_TYPES)}"
    )


def num_layers(config: PretrainedConfig) -> int:
    """The number of layers the config declares, read from the architecture's own config key."""
    return int(getattr(config, architecture_for(config).num_layers_key))


def get_submodule(model: PreTrainedModel, path: str) -> nn.Module:
    """A module of the base model by dotted path (so heads on top do not matter)."""
    return model.base_model.get_submodule(path)


def layer_modules(model: PreTrainedModel) -> list[nn.Module]:
    """The layers in forward order, one entry per layer (ALBERT's shared group repeated)."""
    arch = architecture_for(model.config)
    stack = get_submodule(model, arch.layers)
    if arch.shared_layers:
        check_shared_layers(model.config)
        return [stack[0]] * num_layers(model.config)
    return list(stack)


def check_shared_layers(config: PretrainedConfig) -> None:
    """ALBERT with several layer groups maps depth to groups by position; dropping would remap them."""
    if getattr(config, "num_hidden_groups", 1) != 1:
        raise LayerDropError(
            f"ALBERT with num_hidden_groups={config.num_hidden_groups} is not supported; "
            "only the usual single shared group"
        )


def final_norm(model: PreTrainedModel) -> nn.Module | None:
    """The norm a decoder applies after its last layer, or None where the architecture has none."""
    arch = architecture_for(model.config)
    return get_submodule(model, arch.final_norm) if arch.final_norm else None


def embedding_parameters(model: PreTrainedModel) -> int:
    """Parameters in the embedding modules, each shared tensor counted once."""
    arch = architecture_for(model.config)
    seen: set[int] = set()
    total = 0
    for path in arch.embeddings:
        for p in get_submodule(model, path).parameters():
            if id(p) not in seen:
                seen.add(id(p))
                total += p.numel()
    return total


def parameter_count(module: nn.Module) -> int:
    """Total number of parameters in `module` (shared tensors are counted once by `parameters()`)."""
    return sum(p.numel() for p in module.parameters())


CAUSAL_LM_CLASSES = ("ForCausalLM", "LMHeadModel")  # how transformers names the classes with a next-token head


def require_causal_lm(model: PreTrainedModel, needed_for: str) -> None:
    """Refuse, in one line, a model without a next-token head (an encoder, a classifier, a masked LM)."""
    if not type(model).__name__.endswith(CAUSAL_LM_CLASSES):
        name = type(model).__name__
        raise LayerDropError(f"{needed_for} needs a causal language model (--head causal-lm), not {name}")
