"""The paper's contribution-based strategy (Sajjad et al. 2023, Section 3.2).

A layer whose output [CLS] vector is almost its input's contributes little. Cosines come from one
hooked forward pass.
"""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import Field, model_validator

from layerdrop.errors import LayerDropError
from layerdrop.settings import named
from layerdrop.strategies.base import Pooling, Selection, SelectionInput, Strategy, StrategyOptions, extremes, rounded


class ContributionOptions(StrategyOptions):
    """Either K or a cosine threshold, and which tokens' representations are compared."""

    threshold: float | None = Field(
        None,
        gt=-1,
        le=1,
        description="contribution: drop every layer whose input/output cosine is above this, e.g. 0.925",
    )
    pooling: Pooling | None = Field(
        None,
        description=(
            "token(s) compared: first (e.g. [CLS]), last or mean (default: first for encoders, last for decoders)"
        ),
    )

    @model_validator(mode="after")
    def _threshold_or_count(self) -> ContributionOptions:
        if (self.threshold is None) == (self.num_drop is None):
            raise ValueError(f"give exactly one of {named('threshold')} and {named('num_drop')}")
        return self


def above_threshold(scores: Sequence[float], threshold: float, eligible: Sequence[int]) -> list[int]:
    """The eligible layers scoring strictly above `threshold` (the paper: cosine above 0.95, 0.925, 0.9)."""
    return [i for i in eligible if scores[i] > threshold]


def _select(options: ContributionOptions, given: SelectionInput) -> Selection:
    from layerdrop.strategies.similarity import default_pooling

    pooling = options.pooling or default_pooling(given.model.config)
    scores = given.similarity.contribution(pooling)
    eligible = options.eligible(given.num_layers)
    if options.threshold is None:
        layers = extremes(scores, options.num_drop, eligible, highest=True)
    else:
        layers = above_threshold(scores, options.threshold, eligible)
        if len(layers) >= given.num_layers:
            raise LayerDropError(
                f"every layer's cosine is above {named('threshold')} {options.threshold}; nothing would be left"
            )
    threshold = {"threshold": options.threshold} if options.threshold is not None else {}
    record = {
        **threshold,
        "pooling": pooling,
        **options.protection(),
        "num_texts": given.similarity.num_texts,
        "scores": rounded(scores),
    }
    return Selection(layers, record)


CONTRIBUTION = Strategy(
    "contribution",
    "drop layers whose pooled input and output are most alike (cosine): --threshold T or -k K",
    "Sajjad et al. 2023",
    "texts",
    ContributionOptions,
    _select,
)
