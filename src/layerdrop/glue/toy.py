"""A small sentiment task the project generates itself, so the main job needs no network or files.

Sentences come from templates and word lists. Negation flips a clause's polarity and in
"X, but Y" / "although X, Y" the second clause decides the label, so a bag of words is not
enough: a small pre-trained model learns it well above chance but not trivially.
"""

from __future__ import annotations

import random

from datasets import Dataset

from layerdrop.glue.tasks import TOY_TASK

__all__ = ["TOY_TASK", "toy_splits"]

POSITIVE = (
    "good", "great", "wonderful", "charming", "brilliant", "delightful", "moving", "clever",
    "enjoyable", "beautiful", "funny", "gripping", "superb", "touching", "fresh",
)
NEGATIVE = (
    "bad", "boring", "dull", "awful", "terrible", "clumsy", "tedious", "weak", "bland",
    "messy", "pointless", "lifeless", "predictable", "painful", "forgettable",
)
INTENSIFIERS = ("", "", "", "very ", "really ", "truly ", "quite ", "rather ", "incredibly ")
NOUNS = (
    "movie", "film", "plot", "acting", "soundtrack", "ending", "script", "cast", "dialogue",
    "story", "direction", "pacing", "camera work", "humor", "lead actor",
)
# (affirmative, negated) clause templates.
CLAUSES = (
    ("the {noun} was {adj}", "the {noun} was not {adj}"),
    ("the {noun} is {adj}", "the {noun} isn't {adj}"),
    ("i found the {noun} {adj}", "i did not find the {noun} {adj}"),
    ("the {noun} felt {adj}", "the {noun} never felt {adj}"),
    ("critics call the {noun} {adj}", "nobody would call the {noun} {adj}"),
)


def _clause(rng: random.Random, positive: bool) -> str:
    """A clause whose overall polarity is `positive`, negated half of the time."""
    negated = rng.random() < 0.5
    words = NEGATIVE if positive == negated else POSITIVE
    template = rng.choice(CLAUSES)[negated]
    adjective = rng.choice(INTENSIFIERS) + rng.choice(words)
    return template.format(noun=rng.choice(NOUNS), adj=adjective)


def _example(rng: random.Random) -> tuple[str, int]:
    """One sentence and its label (1 = positive); in two-clause sentences the last clause wins."""
    label = rng.randrange(2)
    shape = rng.random()
    if shape < 0.6:
        return _clause(rng, bool(label)) + " .", label
    first = _clause(rng, not label)
    second = _clause(rng, bool(label))
    if shape < 0.8:
        return f"{first} , but {second} .", label
    return f"although {first} , {second} .", label


def toy_splits(seed: int = 0, n_train: int = 1200, n_dev: int = 400) -> dict[str, Dataset]:
    """Deterministic "train" and "validation" splits of distinct sentences (no sentence in both)."""
    rng = random.Random(seed)
    examples: dict[str, int] = {}
    while len(examples) < n_train + n_dev:
        sentence, label = _example(rng)
        examples.setdefault(sentence, label)
    rows = list(examples.items())
    return {
        split: Dataset.from_dict(
            {"sentence": [s for s, _ in part], "label": [label for _, label in part]}
        )
        for split, part in (("train", rows[:n_train]), ("validation", rows[n_train:]))
    }
