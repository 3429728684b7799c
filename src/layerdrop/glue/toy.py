"""A small sentiment task the project generates itself, so the main job needs no network or files.

Sentences come from templates and word lists. Negation ("not", "never", "far from", …) flips
a clause's polarity, and in two-clause sentences the connective says which clause decides the
label ("X, but Y": Y; "X, even though Y": X) while the other clause says the opposite, so a
bag of words is not enough. The dev split also uses adjectives that never occur in training,
so its score rests partly on what the pre-trained layers know about words, which dropping
layers erodes.
"""

from __future__ import annotations

import random

from datasets import Dataset

from layerdrop.glue.tasks import TOY_TASK

__all__ = ["TOY_TASK", "toy_splits"]

POSITIVE = (
    "good",
    "great",
    "wonderful",
    "charming",
    "brilliant",
    "delightful",
    "moving",
    "clever",
    "enjoyable",
    "beautiful",
    "funny",
    "gripping",
    "superb",
    "touching",
    "fresh",
    "excellent",
    "lovely",
    "inspiring",
    "hilarious",
    "masterful",
)
NEGATIVE = (
    "bad",
    "boring",
    "dull",
    "awful",
    "terrible",
    "clumsy",
    "tedious",
    "weak",
    "bland",
    "messy",
    "pointless",
    "lifeless",
    "predictable",
    "painful",
    "forgettable",
    "dreadful",
    "mediocre",
    "annoying",
    "shallow",
    "disappointing",
)
HELD_OUT = 5  # the last adjectives of each list appear in the dev split only
INTENSIFIERS = ("", "", "", "very ", "really ", "truly ", "quite ", "rather ", "incredibly ")
NOUNS = (
    "movie",
    "film",
    "plot",
    "acting",
    "soundtrack",
    "ending",
    "script",
    "cast",
    "dialogue",
    "story",
    "direction",
    "pacing",
    "camera work",
    "humor",
    "lead actor",
)
# (affirmative, negated) clause templates.
CLAUSES = (
    ("the {noun} was {adj}", "the {noun} was not {adj}"),
    ("the {noun} is {adj}", "the {noun} isn't {adj}"),
    ("i found the {noun} {adj}", "i did not find the {noun} {adj}"),
    ("the {noun} felt {adj}", "the {noun} never felt {adj}"),
    ("critics call the {noun} {adj}", "nobody would call the {noun} {adj}"),
    ("the {noun} was {adj}", "the {noun} was far from {adj}"),
    ("the {noun} seemed {adj}", "the {noun} hardly seemed {adj}"),
    ("the {noun} was {adj}", "the {noun} was anything but {adj}"),
)
# Two-clause templates and which clause (0 = a, 1 = b) carries the sentence's sentiment.
CONNECTIVES = (
    ("{a} , but {b}", 1),
    ("although {a} , {b}", 1),
    ("{a} , and yet {b}", 1),
    ("{a} , even though {b}", 0),
    ("{a} , although {b}", 0),
)


def _clause(rng: random.Random, positive: bool, n_adjectives: int) -> str:
    """A clause whose overall polarity is `positive`, negated half of the time."""
    negated = rng.random() < 0.5
    words = NEGATIVE if positive == negated else POSITIVE
    template = rng.choice(CLAUSES)[negated]
    adjective = rng.choice(INTENSIFIERS) + rng.choice(words[:n_adjectives])
    return template.format(noun=rng.choice(NOUNS), adj=adjective)


def _example(rng: random.Random, n_adjectives: int) -> tuple[str, int]:
    """One sentence and its label (1 = positive): a single clause, or two of opposite sentiment."""
    label = rng.randrange(2)
    if rng.random() < 0.4:
        return _clause(rng, bool(label), n_adjectives) + " .", label
    template, deciding = rng.choice(CONNECTIVES)
    clauses = [_clause(rng, bool(label) == (i == deciding), n_adjectives) for i in range(2)]
    return template.format(a=clauses[0], b=clauses[1]) + " .", label


def toy_splits(seed: int = 0, n_train: int = 1200, n_dev: int = 400) -> dict[str, Dataset]:
    """Deterministic "train" and "validation" splits of distinct sentences (no sentence in both)."""
    rng = random.Random(seed)
    seen: set[str] = set()
    splits = {}
    for split, size, n_adjectives in (
        ("train", n_train, len(POSITIVE) - HELD_OUT),
        ("validation", n_dev, len(POSITIVE)),
    ):
        sentences, labels = [], []
        while len(sentences) < size:
            sentence, label = _example(rng, n_adjectives)
            if sentence not in seen:
                seen.add(sentence)
                sentences.append(sentence)
                labels.append(label)
        splits[split] = Dataset.from_dict({"sentence": sentences, "label": labels})
    return splits
