"""Sentence embeddings the sentence-transformers way: zero-shot STS scoring and embedding distillation.

A sentence-transformers checkpoint is a transformers checkpoint plus a few small files saying how
token vectors become one sentence vector: `modules.json` lists the modules in order (Transformer,
Pooling, often Normalize), `1_Pooling/config.json` says which pooling. `load_encoder` reads
them, so a model is scored the way it was trained to be used; a checkpoint without them gets
mean pooling, the sentence-transformers default. `checkpoint.save_model(..., extra_files_from=source)`
carries these files over to a dropped or distilled model, so `SentenceTransformer(output)` loads it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from datasets import Dataset
from scipy.stats import spearmanr
from tqdm.auto import tqdm
from transformers import PreTrainedModel
from transformers.utils import ModelOutput

from layerdrop.checkpoint import ST_MODULES_FILE, load_model, load_tokenizer, read_st_json, resolve_source
from layerdrop.errors import LayerDropError
from layerdrop.glue.tasks import Task
from layerdrop.settings import TrainConfig
from layerdrop.training import INDEX, TrainStats, finetune, model_inputs

NORMALIZE_MODULE = "sentence_transformers.models.Normalize"
POOLING_MODULE = "sentence_transformers.models.Pooling"

Pool = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # (token vectors [B, L, H], mask [B, L]) -> [B, H]


def _mean(tokens: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    mask = mask.unsqueeze(-1).to(tokens.dtype)
    return (tokens * mask).sum(1) / mask.sum(1).clamp(min=1e-9)


def _mean_sqrt_len(tokens: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    mask = mask.unsqueeze(-1).to(tokens.dtype)
    return (tokens * mask).sum(1) / mask.sum(1).clamp(min=1e-9).sqrt()


def _max(tokens: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    return tokens.masked_fill(~mask.bool().unsqueeze(-1), torch.finfo(tokens.dtype).min).max(1).values


def _cls(tokens: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    return tokens[:, 0]


def _last_token(tokens: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The last non-padding token (right padding), as decoder embedding models use."""
    last = mask.sum(1).long() - 1
    return tokens[torch.arange(len(tokens), device=tokens.device), last]


# 1_Pooling/config.json key -> pooling; sentence-transformers concatenates several when several are true.
POOLINGS: dict[str, Pool] = {
    "pooling_mode_cls_token": _cls,
    "pooling_mode_mean_tokens": _mean,
    "pooling_mode_max_tokens": _max,
    "pooling_mode_mean_sqrt_len_tokens": _mean_sqrt_len,
    "pooling_mode_lasttoken": _last_token,
}
DEFAULT_POOLING = ("pooling_mode_mean_tokens",)


@dataclass(frozen=True)
class PoolingSpec:
    """How token vectors become a sentence vector: which poolings (concatenated) and whether to L2-normalise."""

    modes: tuple[str, ...] = DEFAULT_POOLING
    normalize: bool = False
    max_length: int | None = None  # sentence-transformers' max_seq_length, when the checkpoint sets one

    def __call__(self, tokens: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Sentence vectors [B, D] of token vectors [B, L, H] under attention mask [B, L]."""
        pooled = torch.cat([POOLINGS[mode](tokens, mask) for mode in self.modes], dim=-1)
        return F.normalize(pooled, dim=-1) if self.normalize else pooled


def read_pooling(source: str | Path) -> PoolingSpec:
    """The pooling a checkpoint folder declares in its sentence-transformers files; mean pooling without them."""
    folder = Path(source)
    modules = read_st_json(folder / ST_MODULES_FILE) if (folder / ST_MODULES_FILE).is_file() else []
    if not isinstance(modules, list):
        raise LayerDropError(f"{folder / ST_MODULES_FILE} is not a list of modules")
    types = [m.get("type", "") for m in modules]
    pooling = next((m for m in modules if m.get("type") == POOLING_MODULE), None)
    modes = DEFAULT_POOLING
    if pooling is not None:
        config = read_st_json(folder / pooling.get("path", "") / "config.json")
        modes = tuple(key for key in POOLINGS if config.get(key))
        unknown = [k for k, v in config.items() if k.startswith("pooling_mode_") and v and k not in POOLINGS]
        if unknown or not modes:
            raise LayerDropError(f"{folder}: unsupported sentence-transformers pooling {unknown or 'none'}")
    settings_file = folder / "sentence_bert_config.json"
    max_length = read_st_json(settings_file).get("max_seq_length") if settings_file.is_file() else None
    return PoolingSpec(modes=modes, normalize=NORMALIZE_MODULE in types, max_length=max_length)


@dataclass
class SentenceEncoder:
    """A base model (no task head), its tokenizer, and the pooling that turns its output into embeddings."""

    model: PreTrainedModel
    tokenizer: Any
    pooling: PoolingSpec

    def embed(self, batch: dict[str, torch.Tensor], outputs: ModelOutput | None = None) -> torch.Tensor:
        """Pooled embeddings of a tokenized batch ([B, H]); pass `outputs` to pool an existing forward pass."""
        outputs = outputs if outputs is not None else self.model(**model_inputs(batch))
        return self.pooling(outputs.last_hidden_state, batch["attention_mask"])

    @torch.inference_mode()
    def encode(
        self, sentences: Sequence[str], batch_size: int = 64, max_length: int | None = None, progress: bool = True
    ) -> torch.Tensor:
        """Embeddings of `sentences` ([N, H], float32, in the order given), batched longest first for speed.

        Sentences are cut at `max_length` tokens, by default the checkpoint's own max_seq_length (else 512).
        """
        self.model.eval()
        limit = max_length or self.pooling.max_length or 512
        order = sorted(range(len(sentences)), key=lambda i: -len(sentences[i]))
        result = torch.empty(len(sentences), 0)
        for start in tqdm(range(0, len(order), batch_size), desc="embedding", disable=not progress):
            chunk = order[start : start + batch_size]
            batch = self.tokenizer(
                [sentences[i] for i in chunk], padding=True, truncation=True, max_length=limit, return_tensors="pt"
            ).to(self.model.device)
            embeddings = self.embed(dict(batch)).float().cpu()
            if result.shape[1] == 0:
                result = torch.empty(len(sentences), embeddings.shape[1])
            result[chunk] = embeddings
        return result


def load_encoder(name: str) -> SentenceEncoder:
    """A model as a sentence encoder: its base model, tokenizer and its own pooling (mean when it declares none).

    Task heads are ignored: a fine-tuned classifier embeds with its encoder's output.
    """
    tokenizer = load_tokenizer(name)
    if tokenizer is None:
        raise LayerDropError(f"model {name!r} has no tokenizer; embeddings need one saved with the model")
    return SentenceEncoder(load_model(name, head="base"), tokenizer, read_pooling(resolve_source(name)))


def sts_spearman(
    encoder: SentenceEncoder, pairs: Dataset, task: Task, batch_size: int = 64, progress: bool = True
) -> float:
    """Zero-shot STS score: Spearman correlation × 100 of the two sentences' cosine similarity with the gold scores.

    `pairs` has the task's two text columns and "label" (e.g. STS-B's dev split).
    """
    if len(task.text_columns) != 2:
        raise LayerDropError(f"embedding similarity needs a sentence-pair task, not {task.name}")
    first, second = (list(pairs[column]) for column in task.text_columns)
    if len(first) < 2:
        raise LayerDropError(f"{task.name}: need at least 2 sentence pairs to correlate, got {len(first)}")
    embeddings = encoder.encode(first + second, batch_size=batch_size, progress=progress)
    cosine = F.cosine_similarity(embeddings[: len(first)], embeddings[len(first) :], dim=-1).numpy()
    return float(100 * spearmanr(cosine, np.asarray(pairs["label"])).statistic)


SENTENCES = Task(name="sentences", text_columns=("sentence",), num_labels=0, label_names=(), metric_names=())


def sentences_from(texts: Sequence[str]) -> Dataset:
    """Unlabelled training sentences (blank and repeated lines dropped, order kept) as a one-column data set."""
    unique = list(dict.fromkeys(t.strip() for t in texts if t.strip()))
    if not unique:
        raise LayerDropError("no sentences to train on")
    return Dataset.from_dict({"sentence": unique})


def task_sentences(data: Dataset, task: Task) -> list[str]:
    """Every sentence of a task's split (both sides of a pair), for embedding distillation on its text."""
    return [text for column in task.text_columns for text in data[column]]


class EmbeddingMSE:
    """The training objective of embedding distillation: MSE between student and cached teacher embeddings.

    `prepare` embeds every training sentence with the teacher once (frozen, eval mode); each step
    looks its batch up by row number.
    """

    def __init__(self, student: SentenceEncoder, teacher: SentenceEncoder, batch_size: int = 64, progress: bool = True):
        """Match `student`'s embeddings to `teacher`'s; `batch_size` is the teacher's batch for its one pass."""
        self.student, self.teacher = student, teacher
        self.batch_size, self.progress = batch_size, progress
        self.forward_kwargs: dict[str, Any] = {}
        self.targets: torch.Tensor | None = None

    @torch.inference_mode()
    def prepare(self, data: Dataset) -> None:
        """Embed every tokenized training sentence with the teacher, longest first."""
        self.teacher.model.eval()
        targets = torch.empty(0)
        order = np.argsort(-np.asarray(data["length"]), kind="stable")
        columns = [c for c in ("input_ids", "attention_mask", "token_type_ids") if c in data.column_names]
        for start in tqdm(range(0, len(order), self.batch_size), desc="teacher embeddings", disable=not self.progress):
            rows = data.select(order[start : start + self.batch_size]).select_columns(columns)
            batch = self.student.tokenizer.pad(rows.to_dict(), return_tensors="pt").to(self.teacher.model.device)
            embeddings = self.teacher.embed(dict(batch)).float().cpu()
            if targets.numel() == 0:
                targets = torch.empty(len(data), embeddings.shape[1])
            targets[order[start : start + self.batch_size]] = embeddings
        self.targets = targets

    def __call__(self, outputs: ModelOutput, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """MSE between the batch's student embeddings and its cached teacher embeddings."""
        student = self.student.pooling(outputs.last_hidden_state, batch["attention_mask"])
        target = self.targets[batch[INDEX].cpu()].to(student.device)
        if student.shape != target.shape:
            raise LayerDropError(
                f"student embeddings have {student.shape[-1]} dimensions, the teacher's {target.shape[-1]}"
            )
        return F.mse_loss(student, target)


def distill_embeddings(
    student: SentenceEncoder, teacher: SentenceEncoder, sentences: Dataset, config: TrainConfig, progress: bool = True
) -> TrainStats:
    """Train `student` in place so its embeddings match `teacher`'s (MSE) on unlabelled `sentences`.

    The sentence-transformers layer-reduction recipe: the student is usually the teacher with layers
    dropped; both use the student's tokenizer (same family) and their own poolings. The teacher
    embeds each sentence once, before training.
    """
    objective = EmbeddingMSE(student, teacher, batch_size=config.eval_batch_size, progress=progress)
    return finetune(
        student.model, student.tokenizer, SENTENCES, sentences, config, objective=objective, progress=progress
    )
