"""Strategies that choose layers by position alone: pure functions of (L, K).

Indices are 0-based (0 = the layer next to the embeddings), sorted ascending. The paper counts
from 1; its "even" layers {10, 12} on a 12-layer model are 0-based {9, 11}.
"""

from __future__ import annotations

import random

from layerdrop.errors import LayerDropError


def _check(num_layers: int, num_drop: int, limit: int | None = None) -> None:
    """Refuse K outside 0 ≤ K < L (and K above a strategy's own limit)."""
    if num_layers < 1:
        raise LayerDropError(f"the model has {num_layers} layers; nothing can be dropped")
    if not 0 <= num_drop < num_layers:
        raise LayerDropError(f"--num-drop must be between 0 and {num_layers - 1} for a {num_layers}-layer model, got {num_drop}")
    if limit is not None and num_drop > limit:
        raise LayerDropError(f"this strategy can drop at most {limit} of {num_layers} layers, got {num_drop}")


def top(num_layers: int, num_drop: int) -> list[int]:
    """The K layers nearest the output."""
    _check(num_layers, num_drop)
    return list(range(num_layers - num_drop, num_layers))


def bottom(num_layers: int, num_drop: int) -> list[int]:
    """The K layers nearest the embeddings."""
    _check(num_layers, num_drop)
    return list(range(num_drop))


def even_alternate(num_layers: int, num_drop: int) -> list[int]:
    """Every other layer counted down from the top one (the paper's even layers when L is even)."""
    _check(num_layers, num_drop, limit=(num_layers + 1) // 2)
    return sorted(num_layers - 1 - 2 * i for i in range(num_drop))


def odd_alternate(num_layers: int, num_drop: int) -> list[int]:
    """Every other layer counted down from the second-to-top one (the paper's odd layers when L is even)."""
    _check(num_layers, num_drop, limit=num_layers // 2)
    return sorted(num_layers - 2 - 2 * i for i in range(num_drop))


def symmetric(num_layers: int, num_drop: int) -> list[int]:
    """The K middle layers. When L − K is odd the extra kept layer goes to the bottom,
    since the paper finds lower layers matter most: L=12, K=3 keeps 5 below and 4 above."""
    _check(num_layers, num_drop)
    keep_bottom = (num_layers - num_drop + 1) // 2
    return list(range(keep_bottom, keep_bottom + num_drop))


def random_layers(num_layers: int, num_drop: int, seed: int = 0) -> list[int]:
    """K layers drawn uniformly without replacement: the baseline any smarter strategy must beat."""
    _check(num_layers, num_drop)
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
