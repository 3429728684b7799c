"""Scoring a model on a task's dev split(s): every metric plus GLUE's headline score."""

from __future__ import annotations

from typing import Any

from datasets import Dataset
from transformers import PreTrainedModel

from layerdrop.glue.data import load_split
from layerdrop.glue.metrics import compute_metrics, headline_score, logits_to_predictions
from layerdrop.glue.tasks import Task
from layerdrop.settings import TrainConfig
from layerdrop.training import predict


def dev_sets(task: Task, data: str | None, max_examples: int | None = None) -> dict[str, Dataset]:
    """Every dev split of `task` (MNLI: matched and mismatched), each cut to its first `max_examples`."""
    return first_examples({split: load_split(task, split, data) for split in task.dev_splits}, max_examples)


def first_examples(sets: dict[str, Dataset], max_examples: int | None) -> dict[str, Dataset]:
    """Each data set cut to its first `max_examples` (all of it when None)."""
    if max_examples is None:
        return sets
    return {split: d.select(range(min(max_examples, len(d)))) for split, d in sets.items()}


def evaluate(model: PreTrainedModel, tokenizer: Any, task: Task, eval_sets: dict[str, Dataset], config: TrainConfig) -> dict[str, Any]:
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
