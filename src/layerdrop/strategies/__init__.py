"""The strategies that choose which layers to drop, as one table of registered entries.

Each entry (`base.Strategy`) lives in the module named after it and holds its description, its
paper, what it needs, its options schema and its `select`. Adding a strategy is one module and
one line in `STRATEGIES`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from layerdrop.errors import LayerDropError
from layerdrop.strategies import angular, block_influence, contribution, greedy, parameter, positional
from layerdrop.strategies.base import Selection, SelectionInput, Strategy, StrategyOptions

if TYPE_CHECKING:
    from transformers import PreTrainedModel

    from layerdrop.glue.tasks import Task
    from layerdrop.strategies.base import Batch

STRATEGIES: dict[str, Strategy] = {
    strategy.name: strategy
    for strategy in (
        positional.TOP,
        positional.BOTTOM,
        positional.EVEN_ALTERNATE,
        positional.ODD_ALTERNATE,
        positional.SYMMETRIC,
        positional.RANDOM,
        positional.EXPLICIT,
        contribution.CONTRIBUTION,
        block_influence.BLOCK_INFLUENCE,
        angular.ANGULAR,
        parameter.PARAMETER,
        greedy.GREEDY,
    )
}

__all__ = [
    "STRATEGIES",
    "Selection",
    "SelectionInput",
    "Strategy",
    "StrategyOptions",
    "choose_layers",
    "get_strategy",
    "select_layers",
]


def get_strategy(name: str) -> Strategy:
    """The registered strategy called `name`, or a one-line error listing them."""
    try:
        return STRATEGIES[name]
    except KeyError:
        raise LayerDropError(f"unknown strategy {name!r}; known: {', '.join(STRATEGIES)}") from None


def select_layers(name: str, num_layers: int, num_drop: int | None = None, **options: Any) -> list[int]:
    """The layers (0-based, sorted) a positional strategy drops from an L-layer model.

    `select_layers("symmetric", 12, 4)` is [4, 5, 6, 7]; options are the strategy's own
    (`seed=` for random, `layers=` for explicit, `protect_first=`, `protect_last=`).
    """
    strategy = get_strategy(name)
    if strategy.needs != "position":
        raise LayerDropError(f"strategy {name!r} chooses layers from the model; use choose_layers")
    return strategy.run({"num_drop": num_drop, **options}, SelectionInput(num_layers)).layers


def choose_layers(
    name: str,
    model: PreTrainedModel,
    options: Mapping[str, Any] | StrategyOptions | None = None,
    *,
    batches: Sequence[Batch] | None = None,
    task: Task | None = None,
    data_record: dict[str, Any] | None = None,
    progress: bool = True,
) -> Selection:
    """The layers strategy `name` drops from `model`, and the record of how they were chosen.

    `batches` are tokenized (see `layerdrop.calibration.make_batches`) and needed by the strategies
    that look at data; `task` gives greedy its metric.
    """
    from layerdrop.architectures import num_layers

    given = SelectionInput(num_layers(model.config), model, batches, task, progress, data_record or {})
    return get_strategy(name).run(options or {}, given)
