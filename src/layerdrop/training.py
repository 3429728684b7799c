"""Fine-tuning and prediction on a task, built on accelerate (CPU, one GPU, or `accelerate launch`).

Defaults are the paper's (those of transformers' run_glue.py): 3 epochs, max length 128,
learning rate 2e-5, batch 32, linear schedule, seed 42. Faster than the usual script because
batches are padded only to their longest example and grouped by length.

Under `accelerate launch --multi_gpu --num_processes N` (on CPUs: with ACCELERATE_USE_CPU=1; accelerate's
`--cpu` starts one process only), `batch_size` stays the global batch: every process
draws the same global batches and trains on its share of each, so N processes take the same
optimizer steps on the same examples as one (each example once per epoch, none repeated to even
out a short last batch), up to floating-point summation order and dropout masks.

What a step minimises is pluggable (an `Objective`: the task loss by default, distillation in
`layerdrop.distillation`), so there is one training loop for every kind of training. Every
tokenized example carries its row number "idx", so an objective can look up per-example data
(a teacher's cached outputs) exactly.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol
from collections.abc import Callable

import numpy as np
import torch
from accelerate import Accelerator, DataLoaderConfiguration
from accelerate.utils import set_seed
from datasets import Dataset
from torch.utils.data import BatchSampler, DataLoader, Sampler
from tqdm.auto import tqdm
from transformers import DataCollatorWithPadding, PreTrainedModel, get_linear_schedule_with_warmup
from transformers.trainer_pt_utils import LengthGroupedSampler
from transformers.utils import ModelOutput

from layerdrop.architectures import layer_modules
from layerdrop.errors import LayerDropError
from layerdrop.glue.tasks import Task
from layerdrop.settings import TrainConfig


@dataclass
class TrainStats:
    """What a fine-tuning run did: examples, epochs, steps, time, throughput and losses, for the result record."""

    train_examples: int
    epochs: int
    steps: int
    train_time_s: float
    train_examples_per_s: float
    final_loss: float
    first_loss: float = float("nan")  # of the first step: with final_loss, whether training went anywhere
    events: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """The stats as a plain dict, for JSON."""
        return asdict(self)


INDEX = "idx"  # each tokenized example's row number in the data it came from


class Objective(Protocol):
    """What a training step minimises, given the model's outputs and the batch (which holds "idx")."""

    forward_kwargs: dict[str, Any]  # extra arguments of the forward pass, e.g. output_hidden_states=True

    def prepare(self, data: Dataset) -> None:
        """Called once with the tokenized training data before the first step (e.g. to run a teacher)."""

    def __call__(self, outputs: ModelOutput, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """The loss to minimise on this batch (the mean over its examples)."""


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


def _loader(data: Dataset, tokenizer: Any, **batching: Any) -> DataLoader:
    """Batches padded to their longest example; `batching` is DataLoader's batch_size or batch_sampler."""
    return DataLoader(data.remove_columns("length"), collate_fn=DataCollatorWithPadding(tokenizer), **batching)


class ShardedBatches(Sampler[list[int]]):
    """This process's share of each global batch of `sampler`, which is seeded alike on every process.

    Shares are contiguous and differ in size by at most one. A process whose share of a short last
    batch is empty trains on the batch's first example with weight 0 instead, so that it still
    takes part in the gradient all-reduce. `weights()` gives each share's loss weight: its size ×
    processes / the global batch size, which makes the averaged gradient that of the global batch.
    """

    def __init__(self, sampler: Sampler[int], batch_size: int, processes: int, index: int) -> None:
        """Share `index` of `processes` of the batches of `batch_size` that `sampler`'s order makes."""
        self.sampler, self.batch_size, self.processes, self.index = sampler, batch_size, processes, index

    def __len__(self) -> int:
        """Batches per epoch: the global batches, the same on every process."""
        return math.ceil(len(self.sampler) / self.batch_size)

    def __iter__(self) -> Iterator[list[int]]:
        """This process's indices of each global batch, in the sampler's order."""
        for batch in BatchSampler(self.sampler, self.batch_size, drop_last=False):
            share = self._share(len(batch))
            yield batch[share.start : share.stop] or batch[:1]

    def weights(self) -> list[float]:
        """Loss weight of each of this process's batches in an epoch, in order."""
        sizes = [min(self.batch_size, len(self.sampler) - step * self.batch_size) for step in range(len(self))]
        return [len(self._share(size)) * self.processes / size for size in sizes]

    def _share(self, size: int) -> range:
        base, extra = divmod(size, self.processes)
        start = self.index * base + min(self.index, extra)
        return range(start, start + base + (self.index < extra))


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
    # split_batches: the scheduler steps once per optimizer step, not once per process.
    accelerator = Accelerator(
        mixed_precision=_mixed_precision(config.mixed_precision),
        dataloader_config=DataLoaderConfiguration(split_batches=True),
    )
    launched = int(os.environ.get("WORLD_SIZE", "1"))
    if launched != accelerator.num_processes:  # torchrun without GPUs: each process would train alone
        raise LayerDropError(
            f"started as {launched} processes but accelerate trains in {accelerator.num_processes}; "
            "without GPUs set ACCELERATE_USE_CPU=1 (accelerate launch --multi_gpu, or torchrun)"
        )
    if accelerator.num_processes > 1 and on_epoch_end is not None:
        raise LayerDropError("iterative dropping changes the model while it trains, which runs in one process only")
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
    batches = ShardedBatches(sampler, config.batch_size, accelerator.num_processes, accelerator.process_index)
    loader = _loader(data, tokenizer, batch_sampler=batches)  # not prepared: accelerate would shard it again

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
        # torch's fused kernel: on 2 CPU cores MiniLM's step took 25 ms instead of 146 (a third of a training step)
        fused=accelerator.device.type in ("cpu", "cuda"),
    )
    total_steps = config.epochs * len(batches)
    scheduler = get_linear_schedule_with_warmup(optimizer, int(config.warmup_ratio * total_steps), total_steps)
    model, optimizer, scheduler = accelerator.prepare(model, optimizer, scheduler)

    model.train()
    events: list[str] = []
    loss_value = first_loss = float("nan")
    bar = tqdm(
        total=total_steps, desc=f"training on {task.name}", disable=not (progress and accelerator.is_local_main_process)
    )
    steps = 0
    for epoch in range(config.epochs):
        for batch, weight in zip(loader, batches.weights(), strict=True):
            batch = batch.to(accelerator.device)
            loss = objective(model(**model_inputs(batch), **objective.forward_kwargs), batch) * weight
            accelerator.backward(loss)
            if config.max_grad_norm:
                accelerator.clip_grad_norm_(model.parameters(), config.max_grad_norm)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad()
            steps += 1
            loss_value = accelerator.reduce(loss.detach(), "mean").item()  # the global batch's mean loss
            first_loss = loss_value if steps == 1 else first_loss
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
        steps=steps,
        train_time_s=elapsed,
        train_examples_per_s=len(data) * config.epochs / elapsed,
        final_loss=loss_value,
        first_loss=first_loss,
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
def predict(
    model: PreTrainedModel, tokenizer: Any, task: Task, dataset: Dataset, config: TrainConfig
) -> tuple[np.ndarray, np.ndarray]:
    """Logits and gold labels for every example of `dataset` (batched longest-first for speed)."""
    accelerator = Accelerator(mixed_precision=_mixed_precision(config.mixed_precision))
    data = tokenize(dataset, tokenizer, task, config.max_length)
    data = data.select(np.argsort(data["length"], kind="stable")[::-1])  # longest first; Dataset.sort warns in pyarrow
    loader = accelerator.prepare(_loader(data, tokenizer, batch_size=config.eval_batch_size))
    model = accelerator.prepare_model(model, evaluation_mode=True)  # no DDP wrapper: nothing to synchronise
    model.eval()
    all_logits, all_labels = [], []
    for batch in tqdm(loader, desc=f"evaluating {task.name}", disable=not accelerator.is_local_main_process):
        logits = model(**model_inputs(batch)).logits.float()
        logits, labels = accelerator.gather_for_metrics((logits, batch["labels"]))
        all_logits.append(logits.cpu().numpy())
        all_labels.append(labels.cpu().numpy())
    return np.concatenate(all_logits), np.concatenate(all_labels)
