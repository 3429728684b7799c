"""What every strategy shares (strategies/base.py): ranking layers by score."""

from __future__ import annotations

from layerdrop.strategies.base import extremes


def test_rankings() -> None:
    scores = [0.3, 0.1, 0.2, 0.1]
    assert extremes(scores, 2, range(4), highest=False) == [1, 3]
    assert extremes(scores, 1, range(4), highest=False) == [3]  # ties go to the higher layer
    assert extremes(scores, 2, range(4), highest=True) == [0, 2]
