"""Metric values on inputs small enough to compute by hand."""

import numpy as np
import pytest

from layerdrop.errors import LayerDropError
from layerdrop.glue import compute_metrics, get_task, headline_score, logits_to_predictions

PRED = [1, 1, 0, 0, 1]
GOLD = [1, 0, 0, 0, 1]  # TP=2 FP=1 TN=2 FN=0


def test_cola_matthews_correlation():
    # (TP*TN - FP*FN) / sqrt((TP+FP)(TP+FN)(TN+FP)(TN+FN)) = 4 / sqrt(3*2*3*2) = 2/3
    metrics = compute_metrics(get_task("cola"), PRED, GOLD)
    assert metrics == {"matthews_correlation": pytest.approx(2 / 3)}
    assert headline_score(get_task("cola"), metrics) == pytest.approx(2 / 3)


def test_mrpc_accuracy_f1_and_their_mean():
    # accuracy 4/5; precision 2/3, recall 1 -> F1 = 2 * (2/3) / (5/3) = 0.8
    task = get_task("mrpc")
    metrics = compute_metrics(task, PRED, GOLD)
    assert metrics == {"accuracy": pytest.approx(0.8), "f1": pytest.approx(0.8)}
    assert headline_score(task, {"accuracy": 0.9, "f1": 0.7}) == pytest.approx(0.8)


def test_stsb_pearson_spearman():
    # x = 1..4, y = 2,4,5,4: pearson 3.5 / sqrt(5 * 4.75); y ranks 1,2.5,4,2.5: spearman 3 / sqrt(5 * 4.5)
    task = get_task("stsb")
    metrics = compute_metrics(task, [1.0, 2.0, 3.0, 4.0], [2.0, 4.0, 5.0, 4.0])
    pearson, spearman = 3.5 / np.sqrt(23.75), 3 / np.sqrt(22.5)
    assert metrics == {"pearson": pytest.approx(pearson), "spearmanr": pytest.approx(spearman)}
    assert headline_score(task, metrics) == pytest.approx((pearson + spearman) / 2)


def test_accuracy_only_tasks():
    for name in ("sst2", "qnli", "rte", "wnli", "toy-sentiment"):
        assert compute_metrics(get_task(name), PRED, GOLD) == {"accuracy": pytest.approx(0.8)}


def test_mnli_mismatched_keys_and_matched_headline():
    task = get_task("mnli")
    matched = compute_metrics(task, [0, 1, 2, 2], [0, 1, 2, 0], split="validation_matched")
    mismatched = compute_metrics(task, [0, 1, 1, 1], [0, 1, 2, 0], split="validation_mismatched")
    assert matched == {"accuracy": 0.75}
    assert mismatched == {"accuracy_mm": 0.5}
    assert headline_score(task, matched | mismatched) == 0.75


def test_headline_needs_the_tasks_metrics():
    with pytest.raises(LayerDropError, match="f1"):
        headline_score(get_task("qqp"), {"accuracy": 0.9})


def test_logits_to_predictions():
    logits = np.array([[0.1, 2.0, -1.0], [3.0, 0.0, 0.0]])
    assert logits_to_predictions(get_task("mnli"), logits).tolist() == [1, 0]
    assert logits_to_predictions(get_task("stsb"), [[0.5], [2.0]]).tolist() == [0.5, 2.0]


def test_length_mismatch_is_an_error():
    with pytest.raises(ValueError):
        compute_metrics(get_task("sst2"), [0, 1], [0, 1, 1])
