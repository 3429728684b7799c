"""Token-level perplexity of a causal language model on a token stream, with a sliding window.

The window is the one of the transformers perplexity guide: windows of `context` tokens start
every `stride` tokens; each window scores only the tokens no earlier window scored, so every token
is scored once, with up to `context - 1` tokens before it as context (the first window scores all
its tokens but the first, which has no context). A stride below the context costs more forward
passes and gives each token more context, so a lower, fairer perplexity. With stride = context the
windows do not overlap and the first token of each window goes unscored.
"""

from __future__ import annotations

import inspect
import math
import time
from dataclasses import asdict, dataclass
from typing import Any

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm
from transformers import PreTrainedModel

from layerdrop.architectures import require_causal_lm
from layerdrop.errors import LayerDropError
from layerdrop.settings import PerplexitySettings


@dataclass
class PerplexityResult:
    """Perplexity of one model on one token stream, and how it was computed."""

    perplexity: float  # exp(mean_nll)
    mean_nll: float  # mean negative log-likelihood per scored token, in nats
    tokens_scored: int
    windows: int  # forward passes
    context: int  # window length used (after capping at the model's position limit)
    stride: int
    seconds: float
    tokens_per_second: float  # scored tokens per second of forward passes

    def to_dict(self) -> dict[str, Any]:
        """Plain values, for JSON."""
        return asdict(self)


def windows(num_tokens: int, context: int, stride: int) -> list[tuple[int, int, int]]:
    """(begin, first scored, end) of each window over `num_tokens` tokens; end is exclusive."""
    spans, begin, scored_until = [], 0, 0
    while True:
        end = min(begin + context, num_tokens)
        first = max(scored_until, begin + 1)
        if first < end:
            spans.append((begin, first, end))
        scored_until = end
        if end == num_tokens:
            return spans
        begin += stride


def perplexity(
    model: PreTrainedModel, tokens: torch.Tensor, settings: PerplexitySettings | None = None, progress: bool = True
) -> PerplexityResult:
    """Perplexity of `model` on the 1-D stream `tokens` (see `layerdrop.corpora.load_tokens`)."""
    settings = settings or PerplexitySettings()
    if tokens.ndim != 1 or len(tokens) < 2:
        raise LayerDropError("perplexity needs a 1-D stream of at least 2 tokens")
    require_causal_lm(model, "perplexity")
    limit = getattr(model.config, "max_position_embeddings", None) or getattr(model.config, "n_positions", None)
    context = min(settings.context, limit) if isinstance(limit, int) else settings.context
    stride = min(settings.stride, context)
    spans = windows(len(tokens), context, stride)
    # Logits of the positions that predict scored tokens only: the LM head is a fifth of a small model's work.
    keeps_logits = "logits_to_keep" in inspect.signature(model.forward).parameters
    tokens = tokens.to(model.device)
    total_nll, scored = 0.0, 0
    was_training = model.training
    model.eval()
    start = time.perf_counter()
    bar = tqdm(spans, desc="perplexity", unit="window", disable=not progress)
    with torch.inference_mode():
        for begin, first, end in bar:
            window = tokens[begin:end].unsqueeze(0)
            needed = end - first + 1  # the logits at first-1 … end-1; the last one predicts past the window
            extra = {"logits_to_keep": needed} if keeps_logits else {}
            logits = model(input_ids=window, use_cache=False, **extra).logits[0, -needed:-1]
            total_nll += float(F.cross_entropy(logits.float(), tokens[first:end], reduction="sum"))
            scored += end - first
            bar.set_postfix(ppl=f"{math.exp(total_nll / scored):.2f}")
    seconds = time.perf_counter() - start
    model.train(was_training)
    mean_nll = total_nll / scored
    return PerplexityResult(
        math.exp(mean_nll), mean_nll, scored, len(spans), context, stride, seconds, scored / seconds
    )
