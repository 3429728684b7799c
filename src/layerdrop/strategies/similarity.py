"""How much each layer changes its input, from ONE forward pass with hooks on the layer modules.

Hooks see exactly what enters and leaves every layer. `output_hidden_states` would not do: for
decoders its last entry comes after the final norm, which would make the top layer look like
it changes its input a lot. The forward pass stops right after the last layer (no final norm,
pooler or head), and each state is reduced to pooled vectors and per-token norms as soon as it
appears, so memory stays at two layers' activations whatever the depth.

States are numbered 0..L: state 0 is the input of layer 0 (the embeddings), state i+1 the
output of layer i. A representation is pooled per text in one of three ways (`POOLINGS`):
"first" non-padding token (BERT's [CLS]), "last" non-padding token (what a decoder has read the
whole text with) or "mean" over the non-padding tokens. Cosines are averaged over texts.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any
from collections.abc import Iterable, Mapping

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from tqdm.auto import tqdm
from transformers import PretrainedConfig, PreTrainedModel

from layerdrop.architectures import architecture_for, layer_modules
from layerdrop.errors import LayerDropError
from layerdrop.strategies.base import POOLINGS

TIME_MAJOR = {"xlnet"}  # layers that see (tokens, batch, hidden) instead of (batch, tokens, hidden)
MODEL_INPUTS = ("input_ids", "attention_mask", "token_type_ids", "position_ids")


def default_pooling(config: PretrainedConfig) -> str:
    """The token a model sums a text up in: the last for decoders and XLNet, else the first ([CLS]).

    Decoders are those with a final norm (GPT-2, Llama, …; Gromov et al. use the last token), and
    XLNet's <cls> comes last.
    """
    return "last" if architecture_for(config).final_norm or getattr(config, "summary_type", None) == "last" else "first"


def check_pooling(pooling: str) -> str:
    """`pooling` itself if it is one of `POOLINGS`, else a one-line error listing them."""
    if pooling not in POOLINGS:
        raise LayerDropError(f"unknown pooling {pooling!r}; choose one of {', '.join(POOLINGS)}")
    return pooling


def hidden_of(output: Any) -> Tensor:
    """The hidden state a layer returned (some layers return a tuple with it first)."""
    return output[0] if isinstance(output, tuple) else output


def model_inputs(batch: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """The keys of a tokenized batch that the model's forward takes (labels are left out)."""
    return {key: value for key, value in batch.items() if key in MODEL_INPUTS}


def forward_kwargs(model: PreTrainedModel) -> dict[str, Any]:
    """No KV cache: nothing is generated, and building one costs time."""
    return {"use_cache": False} if hasattr(model.config, "use_cache") else {}


@dataclass
class SimilarityScores:
    """Averages over the data of how alike the states are.

    `cosine[p]` and `angular[p]` are (L+1)×(L+1) matrices for pooling p: the mean cosine, and the
    mean angular distance arccos(cos)/π, between states i and j. `token_cosine[i]` is the cosine
    between layer i's input and output token by token, averaged over all non-padding tokens.
    """

    cosine: dict[str, Tensor]
    angular: dict[str, Tensor]
    token_cosine: Tensor
    num_texts: int
    num_tokens: int

    @property
    def num_layers(self) -> int:
        """L, the number of layers scored (one token-wise cosine per layer)."""
        return len(self.token_cosine)

    def contribution(self, pooling: str) -> list[float]:
        """Per layer, the cosine between its pooled input and output (Sajjad et al.): high = little contribution."""
        return torch.diagonal(self.cosine[check_pooling(pooling)], offset=1).tolist()

    def block_influence(self) -> list[float]:
        """Per layer, ShortGPT's block influence: 1 − the mean token-wise cosine of input and output."""
        return (1 - self.token_cosine).tolist()

    def angular_distance(self, pooling: str, block_size: int = 1) -> list[float]:
        """Per start ℓ, the mean angular distance between the input of layer ℓ and the output of layer ℓ+n−1."""
        if not 1 <= block_size <= self.num_layers:
            raise LayerDropError(f"block size must be between 1 and {self.num_layers}, got {block_size}")
        return torch.diagonal(self.angular[check_pooling(pooling)], offset=block_size).tolist()


class _Accumulator:
    """Receives the L+1 states of each batch in order and keeps running sums.

    Each state costs three kernels (pooling, token norms, dot with the state before); the rest
    waits for the batch's end and runs once over all layers, so scoring adds little to the pass.
    """

    def __init__(self, num_layers: int, time_major: bool) -> None:
        self.num_layers = num_layers
        self.time_major = time_major
        size = num_layers + 1
        self.cosine = torch.zeros(len(POOLINGS), size, size, dtype=torch.float64)
        self.angular = torch.zeros(len(POOLINGS), size, size, dtype=torch.float64)
        self.token_cosine = torch.zeros(num_layers, dtype=torch.float64)
        self.num_texts = 0
        self.num_tokens = 0

    def start_batch(self, mask: Tensor) -> None:
        """`weights` (batch, POOLINGS, tokens) turn a state into its pooled vectors with one matmul."""
        self.mask = mask.float()
        rows = torch.arange(mask.shape[0])
        self.weights = torch.zeros(mask.shape[0], len(POOLINGS), mask.shape[1])
        self.weights[rows, 0, self.mask.argmax(1)] = 1  # first non-padding token
        self.weights[rows, 1, mask.shape[1] - 1 - self.mask.flip(1).argmax(1)] = 1  # last one
        self.weights[:, 2] = self.mask / self.mask.sum(1, keepdim=True).clamp(min=1)  # mean
        self.pooled: list[Tensor] = []
        self.norms: list[Tensor] = []
        self.dots: list[Tensor] = []
        self.previous: Tensor | None = None

    def add_state(self, state: Tensor) -> None:
        state = (state.transpose(0, 1) if self.time_major else state).float()
        self.pooled.append(torch.bmm(self.weights, state))
        self.norms.append(torch.linalg.vector_norm(state, dim=-1))
        if self.previous is not None:
            self.dots.append(torch.einsum("btd,btd->bt", self.previous, state))
        self.previous = state

    def end_batch(self) -> None:
        if len(self.pooled) != self.num_layers + 1:
            raise RuntimeError(
                f"captured {len(self.pooled)} states for {self.num_layers} layers; "
                "the layer hooks did not fire as expected"
            )
        unit = F.normalize(torch.stack(self.pooled, dim=2), dim=-1)  # (batch, POOLINGS, L+1, hidden)
        cosine = (unit @ unit.transpose(-1, -2)).clamp(-1, 1).double()
        self.cosine += cosine.sum(0)
        self.angular += torch.arccos(cosine).sum(0) / math.pi
        norms = torch.stack(self.norms)  # (L+1, batch, tokens)
        token = torch.stack(self.dots) / (norms[:-1] * norms[1:]).clamp(min=1e-12)
        self.token_cosine += (token.clamp(-1, 1) * self.mask).sum((1, 2)).double()
        self.num_texts += int(self.mask.shape[0])
        self.num_tokens += int(self.mask.sum())
        self.previous = None

    def result(self) -> SimilarityScores:
        if not self.num_texts:
            raise LayerDropError("no data to score the layers on")
        return SimilarityScores(
            cosine={p: self.cosine[i] / self.num_texts for i, p in enumerate(POOLINGS)},
            angular={p: self.angular[i] / self.num_texts for i, p in enumerate(POOLINGS)},
            token_cosine=self.token_cosine / self.num_tokens,
            num_texts=self.num_texts,
            num_tokens=self.num_tokens,
        )


class _StopForward(Exception):
    """Raised after the last layer: the final norm, pooler and head are not needed."""


def layer_similarity(
    model: PreTrainedModel, batches: Iterable[Mapping[str, Tensor]], progress: bool = True
) -> SimilarityScores:
    """Score every layer on `batches` (tokenized: input_ids, attention_mask, …) in one pass each."""
    layers = layer_modules(model)
    acc = _Accumulator(len(layers), model.config.model_type in TIME_MAJOR)
    calls = 0

    def on_input(module: nn.Module, args: tuple, kwargs: dict) -> None:
        if calls == 0:  # ALBERT calls its one shared layer L times
            acc.add_state(hidden_of(args[0] if args else kwargs["hidden_states"]))

    def on_output(module: nn.Module, args: tuple, output: Any) -> None:
        nonlocal calls
        calls += 1
        acc.add_state(hidden_of(output))
        if calls == len(layers):
            raise _StopForward

    handles = [layers[0].register_forward_pre_hook(on_input, with_kwargs=True)]
    handles += [module.register_forward_hook(on_output) for module in {id(m): m for m in layers}.values()]
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            for batch in tqdm(batches, desc="scoring layers", unit="batch", disable=not progress):
                inputs = model_inputs(batch)
                acc.start_batch(inputs.get("attention_mask", torch.ones_like(inputs["input_ids"])))
                calls = 0
                try:
                    model(**inputs, **forward_kwargs(model))
                except _StopForward:
                    pass
                acc.end_batch()
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)
    return acc.result()
