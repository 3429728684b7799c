"""Task distillation: train a dropped (or smaller same-family) student to match a fine-tuned teacher.

The loss (Hinton et al. 2015; DistilBERT; TinyBERT for the hidden states) is

    alpha * task loss + (1 - alpha) * T^2 * KL(softmax(teacher / T) || softmax(student / T))

for classification, with MSE to the teacher's prediction instead of the KL for regression, plus
`hidden_weight` * MSE between each student layer's output and the output of the teacher layer it
came from. The teacher is frozen and in eval mode, so its outputs for an example never change:
they are computed once per training set (`teacher_outputs`) and looked up by row number at each
step, so a distillation epoch costs little more than plain fine-tuning. Training runs in the one
loop of `layerdrop.training.finetune`, with `DistillationObjective` as its objective.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from accelerate import PartialState
from datasets import Dataset
from tqdm.auto import tqdm
from transformers import PretrainedConfig, PreTrainedModel
from transformers.utils import ModelOutput

from layerdrop.architectures import num_layers
from layerdrop.errors import LayerDropError
from layerdrop.glue.tasks import Task
from layerdrop.settings import DistillConfig, TrainConfig
from layerdrop.surgery import dropping_record
from layerdrop.training import INDEX, TrainStats, finetune


def layer_map(student: PretrainedConfig, teacher: PretrainedConfig) -> list[int]:
    """For each student layer, the index of the teacher layer it should match (teacher's own numbering).

    A dropped student's `layer_dropping.kept_layers` says where each of its layers came from, in the
    original model's numbering (after dropping {2} of 6: [0, 1, 3, 4, 5], so student layer 2 matches
    teacher layer 3); a teacher that was itself dropped is mapped through its own record. A smaller
    student without a record gets the uniform map of DistilBERT and TinyBERT: student layer i matches
    teacher layer (i + 1) * T // S - 1, so the top layers align (4 of 6: [0, 2, 3, 5]).
    """
    student_layers, teacher_layers = num_layers(student), num_layers(teacher)
    student_record, teacher_record = dropping_record(student), dropping_record(teacher)
    if student_record is None:
        if student_layers > teacher_layers:
            raise LayerDropError(f"the student has more layers ({student_layers}) than the teacher ({teacher_layers})")
        return [(i + 1) * teacher_layers // student_layers - 1 for i in range(student_layers)]
    teacher_kept = teacher_record["kept_layers"] if teacher_record else list(range(teacher_layers))
    if student_record["original_num_layers"] != (teacher_record or {}).get("original_num_layers", teacher_layers):
        raise LayerDropError(
            f"the student was cut from a {student_record['original_num_layers']}-layer model, "
            f"the teacher has {teacher_layers} layers: not the model it came from"
        )
    missing = [layer for layer in student_record["kept_layers"] if layer not in teacher_kept]
    if missing:
        raise LayerDropError(f"the student keeps original layer(s) {missing} that the teacher no longer has")
    return [teacher_kept.index(layer) for layer in student_record["kept_layers"]]


def distillation_loss(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    labels: torch.Tensor | None,
    *,
    alpha: float,
    temperature: float,
    student_hidden: Sequence[torch.Tensor] = (),
    teacher_hidden: Sequence[torch.Tensor] = (),
    attention_mask: torch.Tensor | None = None,
    hidden_weight: float = 0.0,
) -> torch.Tensor:
    """The distillation loss of one batch (a pure function of its inputs).

    Logits are [B, C]; one output column (C = 1) means regression: MSE to the gold score and to the
    teacher's prediction, no temperature. `student_hidden[k]` and `teacher_hidden[k]` are the [B, L, H]
    outputs of the k-th mapped pair of layers; their MSE is averaged over the non-padding tokens of
    `attention_mask` [B, L], every hidden unit and every pair. `labels` may be None when alpha is 0.
    """
    regression = student_logits.shape[-1] == 1
    if regression:
        soft = F.mse_loss(student_logits.squeeze(-1), teacher_logits.squeeze(-1).to(student_logits.dtype))
    else:
        soft = temperature**2 * F.kl_div(
            F.log_softmax(student_logits / temperature, dim=-1),
            F.log_softmax(teacher_logits.to(student_logits.dtype) / temperature, dim=-1),
            log_target=True,
            reduction="batchmean",
        )
    loss = (1 - alpha) * soft
    if alpha > 0:
        if labels is None:
            raise LayerDropError("the task loss (alpha > 0) needs labels")
        hard = (
            F.mse_loss(student_logits.squeeze(-1), labels.to(student_logits.dtype))
            if regression
            else F.cross_entropy(student_logits, labels)
        )
        loss = loss + alpha * hard
    if hidden_weight > 0:
        if len(student_hidden) != len(teacher_hidden) or not student_hidden:
            raise ValueError(f"{len(student_hidden)} student and {len(teacher_hidden)} teacher hidden states")
        mask = attention_mask if attention_mask is not None else torch.ones(student_hidden[0].shape[:2])
        mask = mask.to(student_hidden[0].dtype).unsqueeze(-1)
        pairs = zip(student_hidden, teacher_hidden, strict=True)
        squared = sum((((s - t.to(s.dtype)) ** 2) * mask).sum() for s, t in pairs)
        loss = loss + hidden_weight * squared / (mask.sum() * student_hidden[0].shape[-1] * len(student_hidden))
    return loss


@dataclass
class TeacherOutputs:
    """A teacher's outputs for every example of one tokenized training set, indexed by row number.

    Logits are kept in float32 ([N, C], small). Hidden states, when kept, only for the layers the
    loss uses, in float16 and without padding: one [tokens, layers, H] block of every example's
    real tokens, concatenated; `offsets[i]` is where example i starts.
    """

    logits: torch.Tensor
    layers: tuple[int, ...] = ()
    hidden: torch.Tensor | None = None
    offsets: torch.Tensor | None = None

    def lookup(self, indices: torch.Tensor, attention_mask: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Logits [B, C] of these examples, and per kept layer their hidden states [B, L, H].

        Hidden states are laid out on the batch's non-padding positions (`attention_mask` [B, L]),
        zeros elsewhere, as float32.
        """
        indices = indices.cpu()
        logits = self.logits[indices]
        if self.hidden is None:
            return logits, []
        mask = attention_mask.cpu().bool()
        hidden = torch.zeros(*mask.shape, len(self.layers), self.hidden.shape[-1])
        for row, index in enumerate(indices.tolist()):
            hidden[row][mask[row]] = self.hidden[self.offsets[index] : self.offsets[index + 1]].float()
        return logits, list(hidden.unbind(dim=2))


@torch.inference_mode()
def teacher_outputs(
    teacher: PreTrainedModel,
    data: Dataset,
    tokenizer: Any,
    layers: Sequence[int] = (),
    batch_size: int = 64,
    progress: bool = True,
) -> TeacherOutputs:
    """Run the frozen teacher once over tokenized `data` (as `training.tokenize` makes it), longest examples first.

    `layers` are the teacher layers (0-based) whose outputs to keep; none: logits only.
    """
    teacher.eval()
    lengths = np.asarray(data["length"])
    order = np.argsort(-lengths, kind="stable")
    columns = [c for c in ("input_ids", "attention_mask", "token_type_ids") if c in data.column_names]
    offsets = torch.from_numpy(np.concatenate([[0], np.cumsum(lengths)]))
    logits: torch.Tensor | None = None
    hidden = None
    for start in tqdm(range(0, len(order), batch_size), desc="teacher outputs", disable=not progress):
        rows = order[start : start + batch_size]
        batch = tokenizer.pad(data.select(rows).select_columns(columns).to_dict(), return_tensors="pt")
        outputs = teacher(**batch.to(teacher.device), output_hidden_states=bool(layers))
        if logits is None:
            logits = torch.empty(len(data), outputs.logits.shape[-1])
            if layers:
                hidden = torch.empty(
                    int(offsets[-1]), len(layers), outputs.hidden_states[0].shape[-1], dtype=torch.float16
                )
        logits[rows] = outputs.logits.float().cpu()
        if layers:
            mask = batch["attention_mask"].cpu().bool()
            kept = torch.stack([outputs.hidden_states[layer + 1] for layer in layers], dim=2).cpu().half()
            for row, index in enumerate(rows):
                hidden[offsets[index] : offsets[index + 1]] = kept[row][mask[row]]
    return TeacherOutputs(logits, tuple(layers), hidden, offsets if layers else None)


class DistillationObjective:
    """`finetune`'s objective for task distillation: `prepare` runs the teacher once, each step looks it up."""

    def __init__(
        self,
        teacher: PreTrainedModel,
        tokenizer: Any,
        config: DistillConfig,
        layers: Sequence[int] = (),
        batch_size: int = 64,
        progress: bool = True,
    ):
        """`layers[i]` is the teacher layer that student layer i matches (`layer_map`); used if hidden_weight > 0."""
        self.teacher, self.tokenizer, self.config = teacher, tokenizer, config
        self.layers = tuple(layers) if config.hidden_weight > 0 else ()
        self.batch_size, self.progress = batch_size, progress
        self.forward_kwargs = {"output_hidden_states": True} if self.layers else {}
        self.cache: TeacherOutputs | None = None

    def prepare(self, data: Dataset) -> None:
        """Run the teacher once over the tokenized training data."""
        self.cache = teacher_outputs(self.teacher, data, self.tokenizer, self.layers, self.batch_size, self.progress)

    def __call__(self, outputs: ModelOutput, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """The distillation loss of a batch, the teacher's side looked up by the batch's row numbers."""
        teacher_logits, teacher_hidden = self.cache.lookup(batch[INDEX], batch["attention_mask"])
        device = outputs.logits.device
        if teacher_logits.shape[-1] != outputs.logits.shape[-1]:
            raise LayerDropError(
                f"the student has {outputs.logits.shape[-1]} outputs, the teacher {teacher_logits.shape[-1]}"
            )
        return distillation_loss(
            outputs.logits,
            teacher_logits.to(device),
            batch.get("labels"),
            alpha=self.config.alpha,
            temperature=self.config.temperature,
            student_hidden=outputs.hidden_states[1:] if self.layers else (),
            teacher_hidden=[h.to(device) for h in teacher_hidden],
            attention_mask=batch["attention_mask"],
            hidden_weight=self.config.hidden_weight,
        )


def distill(
    student: PreTrainedModel,
    teacher: PreTrainedModel,
    tokenizer: Any,
    task: Task,
    train: Dataset,
    config: TrainConfig,
    distill_config: DistillConfig | None = None,
    layers: Sequence[int] | None = None,
    progress: bool = True,
    on_epoch_end: Callable[[int, PreTrainedModel], str | None] | None = None,
) -> TrainStats:
    """Train `student` in place on `task`'s raw `train` split to match the fine-tuned `teacher`.

    Student and teacher share `tokenizer` (same family). `layers[i]` is the teacher layer that
    student layer i matches in the hidden-state loss (default: `layer_map`). The teacher is moved
    to the training device and only ever run in inference mode, so it stays as it is; its one pass
    over the data counts in the returned training time.
    """
    distill_config = distill_config or DistillConfig()
    if distill_config.alpha > 0 and "label" not in train.column_names:
        raise LayerDropError(
            "the task loss (alpha > 0) needs labelled training data; set alpha to 0 to train on the teacher alone"
        )
    if distill_config.hidden_weight > 0:
        layers = list(layers) if layers is not None else layer_map(student.config, teacher.config)
        if len(layers) != num_layers(student.config) or not all(0 <= i < num_layers(teacher.config) for i in layers):
            raise LayerDropError(
                f"layer map {layers} does not give a teacher layer for each of the student's "
                f"{num_layers(student.config)} layers"
            )
    else:
        layers = ()
    teacher.to(PartialState().device)
    objective = DistillationObjective(teacher, tokenizer, distill_config, layers, config.eval_batch_size, progress)
    return finetune(
        student, tokenizer, task, train, config, objective=objective, progress=progress, on_epoch_end=on_epoch_end
    )
