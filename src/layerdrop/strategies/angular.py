"""Gromov et al. 2024 ("The unreasonable ineffectiveness of the deeper layers"): angular distance.

Drop the block of n consecutive layers whose input and output are closest in angle,
arccos(cos(h_ℓ, h_ℓ+n))/π.
"""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import Field

from layerdrop.errors import LayerDropError
from layerdrop.strategies.base import NumDropOptions, Pooling, Selection, SelectionInput, Strategy, rounded


class AngularOptions(NumDropOptions):
    """K, the size of the one block dropped, and which tokens' representations are compared."""

    pooling: Pooling | None = Field(
        None,
        description=(
            "token(s) compared: first (e.g. [CLS]), last or mean (default: first for encoders, last for decoders)"
        ),
    )


def best_block(distances: Sequence[float], size: int, eligible: Sequence[int]) -> list[int]:
    """The block of `size` consecutive eligible layers whose start has the smallest distance (ties: higher)."""
    allowed = set(eligible)
    starts = [s for s in range(len(distances)) if all(i in allowed for i in range(s, s + size))]
    if not starts:
        raise LayerDropError(f"no block of {size} consecutive layers avoids the protected ones")
    start = min(starts, key=lambda s: (distances[s], -s))
    return list(range(start, start + size))


def _select(options: AngularOptions, given: SelectionInput) -> Selection:
    from layerdrop.strategies.similarity import default_pooling

    pooling = options.pooling or default_pooling(given.model.config)
    distances = given.similarity.angular_distance(pooling, options.num_drop)  # one per block start
    layers = best_block(distances, options.num_drop, options.eligible(given.num_layers))
    record = {
        "block_size": options.num_drop,
        "pooling": pooling,
        **options.protection(),
        "num_texts": given.similarity.num_texts,
        "scores": rounded(distances),
    }
    return Selection(layers, record)


ANGULAR = Strategy(
    "angular",
    "drop the block of K consecutive layers whose input and output are closest in angle",
    "Gromov et al. 2024",
    "texts",
    AngularOptions,
    _select,
)
