"""GLUE tasks, their data and their metrics; every data source yields `nyu-mll/glue` columns and labels."""

from layerdrop.glue.data import (
    available_splits,
    dev_sets,
    features,
    first_examples,
    load_files,
    load_split,
    split_dev,
    train_and_dev,
)
from layerdrop.glue.metrics import (
    MISMATCHED_SUFFIX,
    compute_metrics,
    headline_score,
    logits_to_predictions,
)
from layerdrop.glue.tasks import GLUE_TASKS, TASKS, TOY_TASK, Task, custom_task, get_task
from layerdrop.glue.toy import toy_splits

__all__ = [
    "GLUE_TASKS",
    "MISMATCHED_SUFFIX",
    "TASKS",
    "TOY_TASK",
    "Task",
    "available_splits",
    "compute_metrics",
    "custom_task",
    "dev_sets",
    "features",
    "first_examples",
    "get_task",
    "headline_score",
    "load_files",
    "load_split",
    "logits_to_predictions",
    "split_dev",
    "toy_splits",
    "train_and_dev",
]
