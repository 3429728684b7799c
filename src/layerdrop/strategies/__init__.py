"""Registry of layer-selection strategies: name → one-line description and how to choose.

Positional strategies need only (L, K); data-driven ones (contribution, angular, greedy, …) add
entries of their own kind in their own modules.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from layerdrop.errors import LayerDropError
from layerdrop.strategies import positional


@dataclass(frozen=True)
class Strategy:
    name: str
    description: str
    kind: str  # "position": a pure function of (L, K); "data": scores layers on data or weights
    choose: Callable[..., list[int]] | None = None  # for kind "position": (L, K) -> indices


STRATEGIES: dict[str, Strategy] = {
    s.name: s
    for s in [
        Strategy("top", "drop the K layers nearest the output", "position", positional.top),
        Strategy("bottom", "drop the K layers nearest the embeddings", "position", positional.bottom),
        Strategy("even-alternate", "drop every other layer from the top: 12-layer K=2 drops {9,11} (paper: {10,12})", "position", positional.even_alternate),
        Strategy("odd-alternate", "drop every other layer from the second-to-top: 12-layer K=2 drops {8,10} (paper: {9,11})", "position", positional.odd_alternate),
        Strategy("symmetric", "drop the K middle layers, keeping (L-K)/2 at each end (extra one at the bottom)", "position", positional.symmetric),
        Strategy("random", "drop K layers drawn at random with --seed: the baseline", "position", positional.random_layers),
        Strategy("explicit", "drop exactly the layers given with --layers, e.g. 9,10,11 or 8-11", "position"),
    ]
}


def register(strategy: Strategy) -> None:
    """Add a strategy to the registry (used by the data-driven strategy modules)."""
    STRATEGIES[strategy.name] = strategy


def get_strategy(name: str) -> Strategy:
    try:
        return STRATEGIES[name]
    except KeyError:
        raise LayerDropError(f"unknown strategy {name!r}; known: {', '.join(STRATEGIES)}") from None


def eligible_layers(num_layers: int, protect_first: bool = False, protect_last: bool = False) -> list[int]:
    """The layers a strategy may choose from once the protected ends are set aside."""
    return [i for i in range(num_layers) if not (protect_first and i == 0) and not (protect_last and i == num_layers - 1)]


def select_layers(
    name: str,
    num_layers: int,
    num_drop: int = 0,
    *,
    layers: list[int] | None = None,
    seed: int = 0,
    protect_first: bool = False,
    protect_last: bool = False,
) -> list[int]:
    """Indices (0-based, sorted) that a positional strategy drops from an L-layer model.

    Protected ends are set aside first and the strategy runs on the remaining layers, so
    `top` with the last layer protected drops the K layers just below it.
    """
    strategy = get_strategy(name)
    if strategy.kind != "position":
        raise LayerDropError(f"strategy {name!r} chooses layers from data; see `layerdrop strategies`")
    if name == "explicit":
        if layers is None:
            raise LayerDropError("strategy 'explicit' needs --layers, e.g. --layers 9,10,11")
        check_layer_set(layers, num_layers)
        eligible = eligible_layers(num_layers, protect_first, protect_last)
        if protected := sorted(set(layers) - set(eligible)):
            raise LayerDropError(f"layers {protected} are protected and cannot be dropped")
        return sorted(layers)
    if layers is not None:
        raise LayerDropError(f"--layers goes with strategy 'explicit', not {name!r}")
    eligible = eligible_layers(num_layers, protect_first, protect_last)
    if not 0 <= num_drop < len(eligible):
        protected = " with its protected layers" if len(eligible) < num_layers else ""
        raise LayerDropError(f"--num-drop must be between 0 and {len(eligible) - 1} for a {num_layers}-layer model{protected}, got {num_drop}")
    if num_drop == 0:
        return []
    args = (len(eligible), num_drop, seed) if name == "random" else (len(eligible), num_drop)
    return [eligible[i] for i in strategy.choose(*args)]


def positional_record(name: str, indices: list[int], *, seed: int = 0, protect_first: bool = False, protect_last: bool = False) -> dict:
    """The `strategy` entry of the layer_dropping record: what a positional choice needs to be redone."""
    record: dict = {"name": name, "num_drop": len(indices)}
    if name == "random":
        record["seed"] = seed
    if protect_first or protect_last:
        record.update(protect_first=protect_first, protect_last=protect_last)
    return record


def check_layer_set(layers: list[int], num_layers: int) -> None:
    """Refuse a layer set that cannot be dropped from an L-layer model."""
    if len(set(layers)) != len(layers):
        raise LayerDropError(f"layer set {sorted(layers)} names a layer twice")
    if bad := [i for i in layers if not 0 <= i < num_layers]:
        raise LayerDropError(f"layer indices {bad} are out of range for a {num_layers}-layer model (valid: 0-{num_layers - 1})")
    if len(layers) >= num_layers:
        raise LayerDropError(f"dropping {len(layers)} of {num_layers} layers would leave none")


# Registers the data-driven strategies (contribution, angular, greedy, …): last, as it imports from here.
from layerdrop.strategies import data_driven  # noqa: E402,F401
