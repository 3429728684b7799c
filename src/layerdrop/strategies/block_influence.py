"""ShortGPT's block influence (Men et al. 2024): the layers with the least influence go first.

A layer's influence is 1 − the token-wise cosine of its input and output, averaged over every
non-padding token.
"""

from __future__ import annotations

from layerdrop.strategies.base import NumDropOptions, Selection, SelectionInput, Strategy, extremes, rounded


def _select(options: NumDropOptions, given: SelectionInput) -> Selection:
    scores = given.similarity.block_influence()
    layers = extremes(scores, options.num_drop, options.eligible(given.num_layers), highest=False)
    return Selection(
        layers, {**options.protection(), "num_texts": given.similarity.num_texts, "scores": rounded(scores)}
    )


BLOCK_INFLUENCE = Strategy(
    "block-influence",
    "drop the K layers with the lowest block influence, 1 - mean token-wise cosine",
    "Men et al. 2024 (ShortGPT)",
    "texts",
    NumDropOptions,
    _select,
)
