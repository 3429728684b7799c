"""Positional strategies give exactly the paper's layer sets (0-based) on a 12-layer model."""

from __future__ import annotations

import pytest

from layerdrop.errors import LayerDropError
from layerdrop.strategies import select_layers
from layerdrop.strategies.positional import parse_layer_list

PAPER_SETS = [
    ("top", 2, [10, 11]),
    ("top", 4, [8, 9, 10, 11]),
    ("top", 6, [6, 7, 8, 9, 10, 11]),
    ("bottom", 2, [0, 1]),
    ("bottom", 4, [0, 1, 2, 3]),
    ("bottom", 6, [0, 1, 2, 3, 4, 5]),
    ("even-alternate", 2, [9, 11]),
    ("even-alternate", 4, [5, 7, 9, 11]),
    ("even-alternate", 6, [1, 3, 5, 7, 9, 11]),
    ("odd-alternate", 2, [8, 10]),
    ("odd-alternate", 4, [4, 6, 8, 10]),
    ("odd-alternate", 6, [0, 2, 4, 6, 8, 10]),
    ("symmetric", 2, [5, 6]),
    ("symmetric", 4, [4, 5, 6, 7]),
    ("symmetric", 6, [3, 4, 5, 6, 7, 8]),
]


@pytest.mark.parametrize(("name", "k", "expected"), PAPER_SETS)
def test_paper_layer_sets(name: str, k: int, expected: list[int]) -> None:
    assert select_layers(name, 12, k) == expected


def test_symmetric_odd_remainder_keeps_extra_layer_at_bottom() -> None:
    assert select_layers("symmetric", 12, 3) == [5, 6, 7]  # 5 kept below, 4 above
    assert select_layers("symmetric", 6, 1) == [3]


def test_distilbert_depth() -> None:
    assert select_layers("top", 6, 3) == [3, 4, 5]
    assert select_layers("even-alternate", 6, 3) == [1, 3, 5]


def test_a_strategy_needs_a_positive_k() -> None:
    for k in (0, None):
        with pytest.raises(LayerDropError, match="num_drop"):
            select_layers("top", 12, k)


def test_random_is_seeded() -> None:
    first = select_layers("random", 12, 4, seed=1)
    assert first == select_layers("random", 12, 4, seed=1)
    assert len(set(first)) == 4 and all(0 <= i < 12 for i in first)
    assert any(select_layers("random", 12, 4, seed=s) != first for s in range(2, 6))


def test_protection_runs_strategy_on_remaining_layers() -> None:
    assert select_layers("top", 12, 2, protect_last=True) == [9, 10]
    assert select_layers("bottom", 12, 2, protect_first=True) == [1, 2]
    assert select_layers("symmetric", 12, 2, protect_first=True, protect_last=True) == [5, 6]
    with pytest.raises(LayerDropError, match="protected"):
        select_layers("explicit", 12, layers=[0, 3], protect_first=True)


def test_explicit_and_ranges() -> None:
    assert parse_layer_list("9,10,11") == [9, 10, 11]
    assert parse_layer_list("8-11") == [8, 9, 10, 11]
    assert parse_layer_list("0, 4-5") == [0, 4, 5]
    assert select_layers("explicit", 12, layers=parse_layer_list("11,3")) == [3, 11]


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: select_layers("top", 12, 12), "between 1 and 11"),
        (lambda: select_layers("top", 12, -1), "greater than or equal to 1"),
        (lambda: select_layers("even-alternate", 5, 4), "at most 3"),
        (lambda: select_layers("odd-alternate", 12, 7), "at most 6"),
        (lambda: select_layers("explicit", 4, layers=[0, 1, 2, 3]), "leave none"),
        (lambda: select_layers("explicit", 4, layers=[4]), "out of range"),
        (lambda: select_layers("explicit", 4), "layers is required"),
        (lambda: select_layers("explicit", 4, 2, layers=[1]), "leave out num_drop"),
        (lambda: select_layers("top", 4, 1, threshold=0.9), "threshold does not go with strategy 'top'"),
        (lambda: select_layers("nope", 4, 1), "unknown strategy"),
        (lambda: parse_layer_list("1,1"), "twice"),
        (lambda: parse_layer_list("3-1"), "start is above end"),
        (lambda: parse_layer_list("a"), "not an index"),
        (lambda: parse_layer_list("1,,2"), "empty item"),
    ],
)
def test_impossible_requests_are_refused(call, message: str) -> None:
    with pytest.raises(LayerDropError, match=message):
        call()
