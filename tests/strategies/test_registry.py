"""The registry (strategies/__init__.py): every strategy is one described entry; `choose_layers` refuses bad options."""

from __future__ import annotations

import pytest

from layerdrop.errors import LayerDropError
from layerdrop.strategies import STRATEGIES, get_strategy
from scoring_inputs import batches, select
from tiny_models import tiny_model


def test_every_data_strategy_is_registered_with_a_description() -> None:
    for name in ("contribution", "block-influence", "angular", "parameter", "greedy"):
        assert STRATEGIES[name].needs != "position" and STRATEGIES[name].description and STRATEGIES[name].reference


def test_every_entry_is_registered_under_its_own_name() -> None:
    assert all(name == strategy.name for name, strategy in STRATEGIES.items())
    with pytest.raises(LayerDropError, match="unknown strategy 'middle'; known: top, bottom"):
        get_strategy("middle")


@pytest.mark.parametrize(
    ("name", "options", "message"),
    [
        ("contribution", dict(threshold=1.2), "threshold"),
        ("contribution", dict(threshold=0.9, num_drop=1), "exactly one"),
        ("angular", dict(num_drop=4), "num_drop must be between 1 and 3"),
        ("block-influence", dict(num_drop=1, threshold=0.5), "threshold does not go with strategy 'block-influence'"),
        ("parameter", dict(num_drop=1, statistic="mean"), "statistic: input should be 'norm' or 'variance'"),
        ("greedy", dict(num_drop=1, task="rte"), "labelled data"),
        ("greedy", dict(num_drop=1), "needs a task"),
        ("angular", dict(num_drop=1, pooling="cls"), "pooling: input should be 'first', 'last' or 'mean'"),
    ],
)
def test_bad_input_is_a_layerdrop_error(name: str, options: dict, message: str) -> None:
    with pytest.raises(LayerDropError, match=message):
        select(name, tiny_model("bert"), data=batches(), **options)
