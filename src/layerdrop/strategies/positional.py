"""Strategies that choose layers by position alone (Sajjad et al. 2023, Section 3): pure functions of (L, K).

Indices are 0-based (0 = the layer next to the embeddings), sorted ascending. The paper counts
from 1; its "even" layers {10, 12} on a 12-layer model are 0-based {9, 11}. Protected ends are
set aside first and the rule runs on the remaining layers, so `top` with the last layer
protected drops the K layers just below it.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Annotated, Any

from pydantic import BeforeValidator, Field, model_validator

from layerdrop.errors import LayerDropError
from layerdrop.settings import named
from layerdrop.strategies.base import NumDropOptions, Selection, SelectionInput, Strategy, StrategyOptions

PAPER = "Sajjad et al. 2023"


def top(num_layers: int, num_drop: int) -> list[int]:
    """The K layers nearest the output."""
    return list(range(num_layers - num_drop, num_layers))


def bottom(num_layers: int, num_drop: int) -> list[int]:
    """The K layers nearest the embeddings."""
    return list(range(num_drop))


def even_alternate(num_layers: int, num_drop: int) -> list[int]:
    """Every other layer counted down from the top one (the paper's even layers when L is even)."""
    return sorted(num_layers - 1 - 2 * i for i in range(num_drop))


def odd_alternate(num_layers: int, num_drop: int) -> list[int]:
    """Every other layer counted down from the second-to-top one (the paper's odd layers when L is even)."""
    return sorted(num_layers - 2 - 2 * i for i in range(num_drop))


def symmetric(num_layers: int, num_drop: int) -> list[int]:
    """The K middle layers.

    When L − K is odd the extra kept layer goes to the bottom, since the paper finds lower layers
    matter most: L=12, K=3 keeps 5 below and 4 above.
    """
    keep_bottom = (num_layers - num_drop + 1) // 2
    return list(range(keep_bottom, keep_bottom + num_drop))


def random_layers(num_layers: int, num_drop: int, seed: int = 0) -> list[int]:
    """K layers drawn uniformly without replacement: the baseline any smarter strategy must beat."""
    return sorted(random.Random(seed).sample(range(num_layers), num_drop))


def parse_layer_list(text: str) -> list[int]:
    """Parse "9,10,11" or "8-11" or "0,4-5" into a sorted list of distinct 0-based indices."""
    indices: list[int] = []
    for part in (p.strip() for p in text.split(",")):
        if not part:
            raise LayerDropError(f"empty item in layer list {text!r}")
        lo, sep, hi = part.partition("-")
        try:
            start, end = (int(lo), int(hi)) if sep else (int(part), int(part))
        except ValueError:
            raise LayerDropError(f"bad layer list {text!r}: {part!r} is not an index or a range like 8-11") from None
        if start > end:
            raise LayerDropError(f"bad layer range {part!r} in {text!r}: start is above end")
        indices.extend(range(start, end + 1))
    if len(set(indices)) != len(indices):
        raise LayerDropError(f"layer list {text!r} names a layer twice")
    return sorted(indices)


class RandomOptions(NumDropOptions):
    """K, and the seed that makes the random draw repeatable."""

    seed: int = Field(0, description="random: seed of the draw")


def _layer_list(value: Any) -> Any:
    return parse_layer_list(value) if isinstance(value, str) else value


class ExplicitOptions(StrategyOptions):
    """The layers to drop, named by index; K follows from them, so it is refused."""

    layers: Annotated[list[int], BeforeValidator(_layer_list)] = Field(
        ..., min_length=1, description="0-based layers to drop, e.g. 9,10,11 or 8-11 (implies --strategy explicit)"
    )

    @model_validator(mode="after")
    def _layers_say_how_many(self) -> ExplicitOptions:
        if self.num_drop is not None:
            raise ValueError(f"{named('layers')} already says which layers to drop; leave out {named('num_drop')}")
        return self


def _by_rule(rule: Callable[[int, int], list[int]]) -> Callable[[NumDropOptions, SelectionInput], Selection]:
    """`select` for a rule of (L, K), applied to the layers left once the protected ends are set aside."""

    def select(options: NumDropOptions, given: SelectionInput) -> Selection:
        eligible = options.eligible(given.num_layers)
        args = (
            (len(eligible), options.num_drop, options.seed)
            if isinstance(options, RandomOptions)
            else (len(eligible), options.num_drop)
        )
        extra = {"seed": options.seed} if isinstance(options, RandomOptions) else {}
        return Selection([eligible[i] for i in rule(*args)], {**extra, **options.protection()})

    return select


def _at_most(share: Callable[[int], int]) -> Callable[[NumDropOptions, int], None]:
    """A check that the alternating rules have enough layers to alternate over."""

    def check(options: NumDropOptions, num_layers: int) -> None:
        options.check_count(num_layers, limit=share(len(options.eligible(num_layers))))

    return check


def _explicit(options: ExplicitOptions, given: SelectionInput) -> Selection:
    return Selection(list(options.layers), {})


def _check_explicit(options: ExplicitOptions, num_layers: int) -> None:
    from layerdrop.surgery import check_layer_set

    check_layer_set(options.layers, num_layers)
    if protected := sorted(set(options.layers) - set(options.eligible(num_layers))):
        raise LayerDropError(f"layers {protected} are protected and cannot be dropped")


TOP = Strategy("top", "drop the K layers nearest the output", PAPER, "position", NumDropOptions, _by_rule(top))
BOTTOM = Strategy(
    "bottom", "drop the K layers nearest the embeddings", PAPER, "position", NumDropOptions, _by_rule(bottom)
)
EVEN_ALTERNATE = Strategy(
    "even-alternate",
    "drop every other layer from the top: 12-layer K=2 drops {9,11} (paper: {10,12})",
    PAPER,
    "position",
    NumDropOptions,
    _by_rule(even_alternate),
    _at_most(lambda n: (n + 1) // 2),
)
ODD_ALTERNATE = Strategy(
    "odd-alternate",
    "drop every other layer from the second-to-top: 12-layer K=2 drops {8,10} (paper: {9,11})",
    PAPER,
    "position",
    NumDropOptions,
    _by_rule(odd_alternate),
    _at_most(lambda n: n // 2),
)
SYMMETRIC = Strategy(
    "symmetric",
    "drop the K middle layers, keeping (L-K)/2 at each end (extra one at the bottom)",
    PAPER,
    "position",
    NumDropOptions,
    _by_rule(symmetric),
)
RANDOM = Strategy(
    "random",
    "drop K layers drawn at random with --seed: the baseline",
    "baseline",
    "position",
    RandomOptions,
    _by_rule(random_layers),
)
EXPLICIT = Strategy(
    "explicit",
    "drop exactly the layers given with --layers, e.g. 9,10,11 or 8-11",
    "-",
    "position",
    ExplicitOptions,
    _explicit,
    _check_explicit,
)
