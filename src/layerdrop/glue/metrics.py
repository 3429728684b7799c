"""GLUE metrics and the one number per task that the GLUE leaderboard reports.

Each task lists its `metric_names`; `compute_metrics` returns exactly those keys. MNLI is scored
on two dev splits: pass `split="validation_mismatched"` and every key gets the suffix "_mm"
("accuracy_mm"), so the matched and mismatched results merge into one dict. The headline
score is the mean of the task's unsuffixed metrics, which for MNLI is the matched accuracy.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np
from numpy.typing import ArrayLike
from scipy.stats import pearsonr, spearmanr
from sklearn.metrics import accuracy_score, f1_score, matthews_corrcoef

from layerdrop.errors import LayerDropError
from layerdrop.glue.tasks import Task

MISMATCHED_SUFFIX = "_mm"

_METRICS: dict[str, Callable[[np.ndarray, np.ndarray], float]] = {
    "accuracy": lambda pred, gold: accuracy_score(gold, pred),
    "f1": lambda pred, gold: f1_score(gold, pred),  # class 1 (equivalent / duplicate) is positive
    "matthews_correlation": lambda pred, gold: matthews_corrcoef(gold, pred),
    "pearson": lambda pred, gold: pearsonr(pred, gold).statistic,
    "spearmanr": lambda pred, gold: spearmanr(pred, gold).statistic,
}


def logits_to_predictions(task: Task, logits: ArrayLike) -> np.ndarray:
    """Class ids (argmax), or the single output as a float score for regression."""
    logits = np.asarray(logits)
    return logits.reshape(len(logits)) if task.is_regression else logits.argmax(axis=-1)


def compute_metrics(
    task: Task, predictions: ArrayLike, labels: ArrayLike, split: str | None = None
) -> dict[str, float]:
    """The task's metrics of predictions against gold labels, keyed by metric name.

    On MNLI's "validation_mismatched" split the keys end in "_mm".
    """
    pred, gold = np.asarray(predictions), np.asarray(labels)
    if pred.shape != gold.shape:
        raise ValueError(f"{pred.shape[0]} predictions for {gold.shape[0]} labels")
    suffix = MISMATCHED_SUFFIX if split == "validation_mismatched" else ""
    return {name + suffix: float(_METRICS[name](pred, gold)) for name in task.metric_names}


def headline_score(task: Task, metrics: Mapping[str, float]) -> float:
    """GLUE's single score: the mean of the task's metrics (CoLA MCC, MNLI matched accuracy, …)."""
    missing = [name for name in task.metric_names if name not in metrics]
    if missing:
        raise LayerDropError(f"{task.name} results lack {', '.join(missing)}")
    return float(np.mean([metrics[name] for name in task.metric_names]))
