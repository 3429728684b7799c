"""Sliding-window perplexity against a hand computation.

One forward pass per scored token, on the tokens of its window before it, and the log-softmax written out.
"""

from __future__ import annotations

import math

import pytest
import torch
from pydantic import ValidationError
from tiny_models import tiny_model

from layerdrop.errors import LayerDropError
from layerdrop.perplexity import perplexity, windows
from layerdrop.settings import PerplexitySettings


def stream(length: int = 40, seed: int = 0) -> torch.Tensor:
    return torch.randint(5, 99, (length,), generator=torch.Generator().manual_seed(seed))


def window_begin(position: int, context: int, stride: int) -> int | None:
    """Where the window that scores `position` starts; None when no window scores it.

    Window k starts at k * stride; the first scores positions 1 … context - 1, window k > 0 those
    from where window k - 1 ended (its start + context) up to its own end, except its own first token.
    """
    if position < context:
        return 0 if position > 0 else None
    k = (position - context) // stride + 1
    return k * stride if position > k * stride else None


def perplexity_by_hand(model: torch.nn.Module, ids: torch.Tensor, context: int, stride: int) -> tuple[float, int]:
    total, count = 0.0, 0
    with torch.no_grad():
        for position in range(len(ids)):
            begin = window_begin(position, context, stride)
            if begin is None:
                continue
            logits = model(input_ids=ids[begin:position].unsqueeze(0)).logits[0, -1].double()
            shifted = logits - logits.max()
            log_probs = shifted - torch.log(torch.exp(shifted).sum())
            total -= float(log_probs[ids[position]])
            count += 1
    return math.exp(total / count), count


@pytest.mark.parametrize("model_type", ["llama", "qwen2"])
@pytest.mark.parametrize(
    ("context", "stride"), [(64, 64), (16, 6), (16, 16)], ids=["one-window", "stride", "no-overlap"]
)
def test_perplexity_equals_a_hand_computation(model_type: str, context: int, stride: int) -> None:
    model, ids = tiny_model(model_type), stream()
    result = perplexity(model, ids, PerplexitySettings(context=context, stride=stride), progress=False)
    expected, count = perplexity_by_hand(model, ids, context, stride)
    assert result.perplexity == pytest.approx(expected, rel=1e-5)
    assert result.mean_nll == pytest.approx(math.log(expected), rel=1e-5)
    assert result.tokens_scored == count
    assert result.windows == len(windows(len(ids), context, stride))


def test_windows_score_every_token_once_with_a_stride() -> None:
    assert windows(10, 4, 2) == [(0, 1, 4), (2, 4, 6), (4, 6, 8), (6, 8, 10)]
    assert windows(10, 4, 4) == [
        (0, 1, 4),
        (4, 5, 8),
        (8, 9, 10),
    ]  # no overlap: each window's first token has no context
    assert windows(3, 8, 4) == [(0, 1, 3)]


def test_context_is_capped_at_the_position_limit() -> None:
    model = tiny_model("gpt2")
    model.config.n_positions = 12  # the check reads the config; the embeddings are larger, so the forward runs
    result = perplexity(model, stream(30), PerplexitySettings(context=64, stride=64), progress=False)
    assert result.context == 12 and result.stride == 12


def test_bad_input_is_refused() -> None:
    with pytest.raises(ValidationError, match="cannot exceed"):
        PerplexitySettings(context=8, stride=16)
    with pytest.raises(LayerDropError, match="causal language model"):
        perplexity(
            tiny_model("roberta"), stream(), progress=False
        )  # a masked LM has a vocabulary head, but no next-token one
    with pytest.raises(LayerDropError, match="at least 2 tokens"):
        perplexity(tiny_model("llama"), stream(1), progress=False)
