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
Regime = Literal["pretrained", "finetuned", "task-specific", "iterative"]
FULL_MODEL = "none"  # the strategy name of the undropped baseline


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


class ExecutionSettings(Settings):
    """Where and how a sweep's runs execute (see `layerdrop.engines`); the CLI's flags override the config's keys."""

    engine: str = Field("local", description="local (this machine) or ray (a Ray cluster; needs layerdrop's ray extra)")
    address: str | None = Field(
        None, description="ray: the cluster to join, auto or HOST:PORT (default: start Ray on this machine)"
    )
    workers: int = Field(1, gt=0, description="local: parallel runs, one GPU each when there are several")
    retries: int = Field(
        1, ge=0, description="ray: restarts of a run whose worker or node dies (a run that raises reruns on resume)"
    )

    @field_validator("engine")
    @classmethod
    def _known_engine(cls, name: str) -> str:
        from layerdrop.engines import ENGINES

        if name not in ENGINES:
            raise ValueError(f"unknown engine {name!r}; choose one of {', '.join(ENGINES)}")
        return name

    @model_validator(mode="after")
    def _address_needs_ray(self) -> ExecutionSettings:
        if self.address is not None and self.engine != "ray":
            raise ValueError(f"{named('address')} is for {named('engine')} ray")
        return self


class RunConfig(Settings):
    """Everything that decides a run's numbers (where its outputs go is not part of it)."""

    model: str = Field(..., description="Hugging Face hub name, local checkpoint directory, or bundled:NAME")
    task: str = Field(..., description="cola, sst2, mrpc, stsb, qqp, mnli, qnli, rte, wnli or toy-sentiment", json_schema_extra={"flags": ["-t"]})
    strategy: str = Field(FULL_MODEL, description="layer-selection strategy, or none for the full model; see `layerdrop strategies`")
    strategy_options: dict[str, Any] = Field({}, description="the strategy's own options: num_drop, threshold, layers, …")
    regime: Regime = Field(
        "pretrained",
        description="pretrained (drop, then fine-tune), finetuned (fine-tune, drop, fine-tune again), task-specific, iterative",
    )
    iterative_every: int = Field(2, ge=1, description="iterative regime: drop one layer every N epochs")
    model_is_finetuned: bool = Field(False, description="finetuned regime: MODEL is already fine-tuned on the task")
    data: str | None = Field(None, description="local GLUE folder (GLUE TSVs or hub parquet files); default: the Hugging Face hub")
    train_from_dev: float | None = Field(
        None, gt=0, lt=1, description="train on this fraction of the dev set (deterministic split) when there is no train split"
    )
    max_train_samples: int | None = Field(None, ge=1, description="train on a fixed random subsample of this many examples")
    max_eval_samples: int | None = Field(None, ge=1, description="evaluate on the first N dev examples only")
    training: TrainConfig = Field(default_factory=TrainConfig, description="fine-tuning settings")

    @field_validator("task")
    @classmethod
    def _known_task(cls, name: str) -> str:
        from layerdrop.glue.tasks import get_task

        return get_task(name).name

    @model_validator(mode="after")
    def _consistent(self) -> RunConfig:
        if self.strategy == FULL_MODEL:
            if self.strategy_options:
                raise ValueError("strategy 'none' (the full model) drops no layers; give a strategy with its options")
            return self
        from layerdrop.strategies import get_strategy

        strategy = get_strategy(self.strategy)
        options = strategy.parse(self.strategy_options)
        if self.regime == "iterative":
            if strategy.needs != "position" or strategy.name == "explicit":
                raise ValueError("iterative dropping takes a positional strategy (top, bottom, symmetric, …)")
            if self.training.epochs < self.iterative_every * options.num_drop:
                raise ValueError(
                    f"iterative dropping of {options.num_drop} layers every {self.iterative_every} epochs needs at least "
                    f"{self.iterative_every * options.num_drop} epochs, got {self.training.epochs}"
                )
        if strategy.needs == "labels" and self.regime == "pretrained":
            raise ValueError(f"strategy {strategy.name!r} needs a fine-tuned model: use --regime finetuned")
        return self

    @property
    def num_drop(self) -> int:
        """How many layers the run drops (0 for the full model)."""
        options = self.strategy_options
        return int(options.get("num_drop") or len(options.get("layers") or ()))


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
