"""Fine-tuning and prediction on a task, built on accelerate (CPU, one GPU, or `accelerate launch`).

Defaults are the paper's (those of transformers' run_glue.py): 3 epochs, max length 128,
learning rate 2e-5, batch 32, linear schedule, seed 42. Faster than the usual script because
batches are padded only to their longest example and grouped by length.

What a step minimises is pluggable (an `Objective`: the task loss by default, distillation in
`layerdrop.distillation`), so there is one training loop for every kind of training. Every
tokenized example carries its row number "idx", so an objective can look up per-example data
(a teacher's cached outputs) exactly.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Protocol

import numpy as np
import torch
from accelerate import Accelerator
from accelerate.utils import set_seed
from datasets import Dataset
from torch.utils.data import DataLoader
from tqdm.auto import tqdm
from transformers import DataCollatorWithPadding, PreTrainedModel, get_linear_schedule_with_warmup
from transformers.utils import ModelOutput
from transformers.trainer_pt_utils import LengthGroupedSampler

from layerdrop.architectures import layer_modules
from layerdrop.errors import LayerDropError
from layerdrop.glue.tasks import Task
from layerdrop.settings import TrainConfig


@dataclass
class TrainStats:
    train_examples: int
    epochs: int
    steps: int
    train_time_s: float
    train_examples_per_s: float
    final_loss: float
    events: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


INDEX = "idx"  # each tokenized example's row number in the data it came from


class Objective(Protocol):
    """What a training step minimises, given the model's outputs and the batch (which holds "idx")."""

    forward_kwargs: dict[str, Any]  # extra arguments of the forward pass, e.g. output_hidden_states=True

    def prepare(self, data: Dataset) -> None:
        """Called once with the tokenized training data before the first step (e.g. to run a teacher)."""

    def __call__(self, outputs: ModelOutput, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """The loss to minimise on this batch."""


class TaskLoss:
    """The model's own loss on the gold labels (cross-entropy, or MSE for regression)."""

    def __init__(self) -> None:
        """Nothing to set up: the model computes this loss itself when the batch has labels."""
        self.forward_kwargs: dict[str, Any] = {}

    def prepare(self, data: Dataset) -> None:
        """Nothing to compute ahead of training."""

    def __call__(self, outputs: ModelOutput, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """The loss the model returned."""
        return outputs.loss


def tokenize(dataset: Dataset, tokenizer: Any, task: Task, max_length: int) -> Dataset:
    """Tokenize a task's raw split for training or prediction.

    Returns token ids (no padding: batches pad themselves), "labels" where the data has labels,
    each example's length, and its row number "idx".
    """
    if tokenizer is None:
        raise LayerDropError("this model has no tokenizer; fine-tuning needs one saved with the model")
    def encode(batch: dict[str, list]) -> dict[str, list]:
        encoded = tokenizer(*(batch[c] for c in task.text_columns), truncation=True, max_length=max_length)
        encoded["length"] = [len(ids) for ids in encoded["input_ids"]]
        return encoded

    encoded = dataset.map(encode, batched=True, remove_columns=list(task.text_columns), desc="tokenizing")
    encoded = encoded.add_column(INDEX, np.arange(len(encoded)))
    return encoded.rename_column("label", "labels") if "label" in encoded.column_names else encoded


def model_inputs(batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The batch without the row numbers, which the model's forward does not take."""
    return {key: value for key, value in batch.items() if key != INDEX}


def _mixed_precision(setting: str) -> str:
    if setting != "auto":
        return setting
    if not torch.cuda.is_available():
        return "no"
    return "bf16" if torch.cuda.is_bf16_supported() else "fp16"


def _loader(data: Dataset, tokenizer: Any, batch_size: int, sampler: Any = None) -> DataLoader:
    collate = DataCollatorWithPadding(tokenizer)
    return DataLoader(data.remove_columns("length"), batch_size=batch_size, sampler=sampler, collate_fn=collate)


def finetune(
    model: PreTrainedModel,
    tokenizer: Any,
    task: Task,
    train: Dataset,
    config: TrainConfig,
    *,
    frozen_layers: list[int] = (),
    on_epoch_end: Callable[[int, PreTrainedModel], str | None] | None = None,
    objective: Objective | None = None,
    progress: bool = True,
) -> TrainStats:
    """Fine-tune `model` in place on the raw `train` split of `task`.

    `frozen_layers` get no updates (the paper's task-specific regime freezes the layers it will
    drop). `on_epoch_end(epoch, model)` may change the model between epochs (iterative dropping);
    parameters it removes leave the optimizer with their state. `objective` replaces the task
    loss (distillation); `train` then needs no "label" column if the objective needs no labels.
    The reported training time includes `objective.prepare` (a teacher's pass over the data).
    """
    set_seed(config.seed)
    objective = objective if objective is not None else TaskLoss()
    accelerator = Accelerator(mixed_precision=_mixed_precision(config.mixed_precision))
    data = tokenize(train, tokenizer, task, config.max_length)
    if len(data) == 0:
        raise LayerDropError(f"no training examples for {task.name}")
    start = time.perf_counter()
    objective.prepare(data)
    generator = torch.Generator().manual_seed(config.seed)
    sampler = (
        LengthGroupedSampler(config.batch_size, lengths=data["length"], generator=generator)
        if config.group_by_length
        else torch.utils.data.RandomSampler(data, generator=generator)
    )
    loader = _loader(data, tokenizer, config.batch_size, sampler)

    layers = layer_modules(model)
    for index in frozen_layers:
        layers[index].requires_grad_(False)
    decay, no_decay = [], []
    for param in model.parameters():
        if param.requires_grad:
            (no_decay if param.ndim < 2 else decay).append(param)
    optimizer = torch.optim.AdamW(
        [{"params": decay, "weight_decay": config.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=config.learning_rate,
    )
    total_steps = config.epochs * math.ceil(len(data) / config.batch_size)
    scheduler = get_linear_schedule_with_warmup(optimizer, int(config.warmup_ratio * total_steps), total_steps)
    model, optimizer, loader, scheduler = accelerator.prepare(model, optimizer, loader, scheduler)

    model.train()
    events: list[str] = []
    loss_value = float("nan")
    bar = tqdm(
        total=total_steps, desc=f"training on {task.name}", disable=not (progress and accelerator.is_local_main_process)
    )
    for epoch in range(config.epochs):
        for batch in loader:
            loss = objective(model(**model_inputs(batch), **objective.forward_kwargs), batch)
            accelerator.backward(loss)
            if config.max_grad_norm:
                accelerator.clip_grad_norm_(model.parameters(), config.max_grad_norm)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad()
            loss_value = loss.item()
            bar.update()
            bar.set_postfix(epoch=epoch + 1, loss=f"{loss_value:.4f}")
        if on_epoch_end is not None and (event := on_epoch_end(epoch + 1, accelerator.unwrap_model(model))):
            events.append(event)
            _forget_removed_parameters(optimizer, accelerator.unwrap_model(model))
    elapsed = time.perf_counter() - start
    bar.close()
    for layer in layer_modules(accelerator.unwrap_model(model)):
        layer.requires_grad_(True)
    model.eval()
    return TrainStats(
        train_examples=len(data),
        epochs=config.epochs,
        steps=total_steps,
        train_time_s=elapsed,
        train_examples_per_s=len(data) * config.epochs / elapsed,
        final_loss=loss_value,
        events=events,
    )


def _forget_removed_parameters(optimizer: torch.optim.Optimizer, model: PreTrainedModel) -> None:
    """Drop parameters that left the model (iterative dropping) from the optimizer and its state."""
    alive = {id(p) for p in model.parameters()}
    for group in optimizer.param_groups:
        removed = [p for p in group["params"] if id(p) not in alive]
        group["params"] = [p for p in group["params"] if id(p) in alive]
        for param in removed:
            optimizer.state.pop(param, None)


@torch.inference_mode()
def predict(model: PreTrainedModel, tokenizer: Any, task: Task, dataset: Dataset, config: TrainConfig) -> tuple[np.ndarray, np.ndarray]:
    """Logits and gold labels for every example of `dataset` (batched longest-first for speed)."""
    accelerator = Accelerator(mixed_precision=_mixed_precision(config.mixed_precision))
    data = tokenize(dataset, tokenizer, task, config.max_length)
    data = data.sort("length", reverse=True)
    loader = accelerator.prepare(_loader(data, tokenizer, config.eval_batch_size))
    model = accelerator.prepare(model)
    model.eval()
    all_logits, all_labels = [], []
    for batch in tqdm(loader, desc=f"evaluating {task.name}", disable=not accelerator.is_local_main_process):
        logits = model(**model_inputs(batch)).logits.float()
        logits, labels = accelerator.gather_for_metrics((logits, batch["labels"]))
        all_logits.append(logits.cpu().numpy())
        all_labels.append(labels.cpu().numpy())
    return np.concatenate(all_logits), np.concatenate(all_labels)
