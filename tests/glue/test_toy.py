"""The built-in toy task: deterministic, balanced splits whose labels follow negation and connectives."""

import re

from layerdrop.glue import toy, toy_splits


def test_toy_splits_are_deterministic_distinct_and_balanced():
    splits = toy_splits(seed=3, n_train=300, n_dev=100)
    assert splits["train"].to_dict() == toy_splits(seed=3, n_train=300, n_dev=100)["train"].to_dict()
    assert splits["train"]["sentence"] != toy_splits(seed=4, n_train=300, n_dev=100)["train"]["sentence"]
    assert (len(splits["train"]), len(splits["validation"])) == (300, 100)
    assert not set(splits["train"]["sentence"]) & set(splits["validation"]["sentence"])
    assert 0.4 < sum(splits["train"]["label"]) / 300 < 0.6


NEGATORS = re.compile(r"\b(not|isn't|never|nobody|far from|hardly|anything but)\b")


def _clause_is_positive(clause: str) -> bool:
    """What a toy clause says, read back from its words: the adjective's polarity, flipped by negation."""
    return (clause.split()[-1] in toy.POSITIVE) != bool(NEGATORS.search(clause))


def test_toy_labels_follow_negation_and_connectives():
    splits = toy_splits(n_train=300, n_dev=100)
    rows = splits["train"].to_list() + splits["validation"].to_list()
    seen_words = {word for row in splits["train"].to_list() for word in row["sentence"].split()}
    assert not seen_words & set(toy.POSITIVE[-toy.HELD_OUT :] + toy.NEGATIVE[-toy.HELD_OUT :])
    assert all(not NEGATORS.search(plain) and NEGATORS.search(negated) for plain, negated in toy.CLAUSES)
    for row in rows:
        sentence = row["sentence"].removesuffix(" .")
        for template, deciding in toy.CONNECTIVES:
            match = re.fullmatch(template.format(a="(.+)", b="(.+)"), sentence)
            if match:
                clauses = [_clause_is_positive(c) for c in match.groups()]
                assert clauses[deciding] == bool(row["label"]) != clauses[1 - deciding]
                break
        else:
            assert _clause_is_positive(sentence) == bool(row["label"])
