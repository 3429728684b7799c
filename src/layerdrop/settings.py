"""The schemas of layerdrop's settings, each defined once and validated once.

The CLI builds its options (flags, defaults, help) from these fields, a sweep validates every
grid point through them, and the Python API takes them as they are. Each field carries its
description; `json_schema_extra={"flags": [...]}` adds short flags for the command line.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, field_validator, model_validator


class Settings(BaseModel):
    """Base of every settings schema: unknown keys are refused and values are frozen once validated."""

    model_config = ConfigDict(extra="forbid", frozen=True)


MixedPrecision = Literal["auto", "no", "fp16", "bf16"]


class TrainConfig(Settings):
    """How a model is fine-tuned. Defaults are the paper's (those of transformers' run_glue.py)."""

    epochs: int = Field(3, ge=1, description="training epochs")
    learning_rate: float = Field(
        2e-5, gt=0, description="peak learning rate (linear decay)", json_schema_extra={"flags": ["--lr"]}
    )
    batch_size: int = Field(32, ge=1, description="training batch size (global: split across processes)")
    eval_batch_size: int = Field(64, ge=1, description="evaluation batch size")
    max_length: int = Field(128, ge=2, description="maximum tokens per example")
    weight_decay: float = Field(0.0, ge=0, description="AdamW weight decay (not on biases and norms)")
    warmup_ratio: float = Field(0.0, ge=0, lt=1, description="fraction of steps for linear warm-up")
    max_grad_norm: float = Field(1.0, ge=0, description="gradient clipping norm (0: no clipping)")
    seed: int = Field(42, description="random seed (head initialisation, shuffling, dropout)")
    group_by_length: bool = Field(True, description="batch examples of similar length together")
    mixed_precision: MixedPrecision = Field("auto", description="auto (bf16 or fp16 on GPU, none on CPU), no, fp16, bf16")


class CalibrationData(Settings):
    """Where the layers are scored: a split of a task, or a text file."""

    task: str | None = Field(None, description="task whose split scores the layers, e.g. rte (greedy: its labels and metric)")
    data: str | None = Field(None, description="folder with the task's GLUE files, e.g. /data/glue (default: the Hugging Face hub)")
    split: str | None = Field(None, description="split of --task to use (default: its dev split)")
    text_file: str | None = Field(None, description="score the layers on this file instead of a task: one text per line")
    max_examples: int | None = Field(None, ge=1, description="use only the first N examples")
    batch_size: int = Field(32, ge=1, description="texts per forward pass")
    max_length: int = Field(128, ge=2, description="truncate texts to this many tokens")

    @model_validator(mode="after")
    def _one_source(self) -> CalibrationData:
        if self.text_file is not None and (self.task is not None or self.data is not None):
            raise ValueError("give either --text-file or --task/--data, not both")
        if self.task is None and (self.data is not None or self.split is not None):
            raise ValueError("--data and --split need --task")
        return self

    @property
    def given(self) -> bool:
        return self.task is not None or self.text_file is not None


def _int_list(value: Any) -> Any:
    """'1,8,32' -> [1, 8, 32]; lists pass through for pydantic to check."""
    if isinstance(value, str):
        parts = [part.strip() for part in value.split(",")]
        if not all(part.isdigit() for part in parts):
            raise ValueError(f"expected comma-separated integers, got {value!r}")
        return [int(part) for part in parts]
    return value


IntList = Annotated[list[Annotated[int, Field(ge=1)]], BeforeValidator(_int_list), Field(min_length=1)]


class BenchSettings(Settings):
    """What to measure and how; validated on construction so bad input fails before any loading."""

    batch_sizes: IntList = Field([1, 8, 32], description="comma-separated batch sizes")
    seq_lens: IntList = Field([32, 128, 512], description="comma-separated sequence lengths (clamped to the models' position limit)")
    repeats: int = Field(10, ge=1, description="timed forward passes per model and cell; the median is reported")
    warmup: int = Field(3, ge=0, description="untimed forward passes per model and cell before timing")
    device: Literal["cpu", "cuda"] = Field("cpu", description="cpu or cuda")
    dtype: Literal["float32", "float16", "bfloat16"] = Field("float32", description="float32, float16 or bfloat16")
    threads: int | None = Field(None, ge=1, description="torch CPU threads (default: torch's own, one per physical core)")
    head: str | None = Field(None, description="model head (default: what the checkpoint's config says)")
    memory: bool = Field(True, description="measure peak memory, each model in a fresh process")
    seed: int = Field(0, description="seed of the random token ids")


class LmEvalConfig(Settings):
    """An lm-evaluation-harness run on a causal language model (`layerdrop evaluate MODEL --lm-eval TASKS`)."""

    lm_eval: Annotated[list[str], BeforeValidator(lambda v: [t.strip() for t in v.split(",") if t.strip()] if isinstance(v, str) else v)] = Field(
        ..., min_length=1, description="lm-evaluation-harness tasks, comma-separated, e.g. hellaswag,arc_easy (needs layerdrop[lm-eval])"
    )
    num_fewshot: int | None = Field(None, ge=0, description="lm-eval: examples in context (default: each task's own)")
    limit: float | None = Field(None, gt=0, description="lm-eval: examples per task (a fraction when below 1); for quick checks only")
    lm_eval_batch_size: int = Field(8, ge=1, description="lm-eval: batch size")
    include_path: str | None = Field(None, description="lm-eval: folder of extra task YAML files")
    device: str = Field("cpu", description="lm-eval: device, e.g. cpu or cuda")

# How settings are named in messages: as command-line flags (--num-drop) inside a command, as
# keys (num_drop) where a config file is being read. The CLI sets it; a sweep switches it back.
_AS_FLAGS: ContextVar[bool] = ContextVar("as_flags", default=False)


def flag(name: str) -> str:
    """The command-line flag of a settings field: num_drop -> --num-drop."""
    return "--" + name.replace("_", "-")


def named(name: str) -> str:
    """A settings field as messages name it: its flag on the command line, its key elsewhere."""
    return flag(name) if _AS_FLAGS.get() else name


@contextmanager
def naming(as_flags: bool) -> Iterator[None]:
    """Within the block, messages name settings as flags (True) or as keys (False)."""
    token = _AS_FLAGS.set(as_flags)
    try:
        yield
    finally:
        _AS_FLAGS.reset(token)


def describe_error(err: ValidationError) -> str:
    """One line about the most useful problem in `err`: an unknown key first, then the first other."""
    errors = sorted(err.errors(), key=lambda e: e["type"] != "extra_forbidden")
    first = errors[0]
    parts = [str(p) for p in first["loc"] if not str(p).startswith("function-after")]
    keys = [p for p in parts if not p.isdigit()]  # on the command line, a list is one flag
    name = named(keys[-1]) if _AS_FLAGS.get() and keys else ".".join(parts)
    if first["type"] == "extra_forbidden":
        return f"unknown setting {name!r}"
    if first["type"] == "missing":
        return f"{name} is required"
    if first["type"] == "value_error":  # a validator of ours: its message says it all
        message = str(first["ctx"]["error"])
        return f"{name}: {message}" if name else message
    got = first.get("input")
    return f"{name}: {first['msg'][0].lower()}{first['msg'][1:]} (got {got!r})" if name else first["msg"]
