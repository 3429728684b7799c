"""Scoring a model on a task's dev split(s): every metric plus GLUE's headline score."""

from __future__ import annotations

from typing import Any

from datasets import Dataset
from transformers import PreTrainedModel

from layerdrop.glue.metrics import compute_metrics, headline_score, logits_to_predictions
from layerdrop.glue.tasks import Task
from layerdrop.settings import TrainConfig
from layerdrop.training import predict


def evaluate(
    model: PreTrainedModel, tokenizer: Any, task: Task, eval_sets: dict[str, Dataset], config: TrainConfig
) -> dict[str, Any]:
    """{"metrics": {...}, "score": headline, "eval_examples": {split: n}} over every dev split given.

    MNLI's mismatched split contributes keys ending in "_mm"; the headline stays the matched one.
    """
    metrics: dict[str, float] = {}
    for split, dataset in eval_sets.items():
        logits, labels = predict(model, tokenizer, task, dataset, config)
        metrics.update(compute_metrics(task, logits_to_predictions(task, logits), labels, split=split))
    return {
        "metrics": metrics,
        "score": headline_score(task, metrics),
        "eval_examples": {split: len(dataset) for split, dataset in eval_sets.items()},
    }
