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

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, model_validator


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
    mixed_precision: MixedPrecision = Field(
        "auto", description="auto (bf16 or fp16 on GPU, none on CPU), no, fp16, bf16"
    )


class CalibrationData(Settings):
    """Where the layers are scored: a split of a task, a file of texts, or running text (a corpus or hub dataset)."""

    task: str | None = Field(
        None, description="task whose split scores the layers, e.g. rte (greedy: its labels and metric)"
    )
    data: str | None = Field(
        None, description="folder with the task's GLUE files, e.g. /data/glue (default: the Hugging Face hub)"
    )
    split: str | None = Field(None, description="split of --task to use (default: its dev split)")
    text_file: str | None = Field(
        None, description="score the layers on this file instead of a task: one text per line"
    )
    corpus: str | None = Field(
        None,
        description=(
            "or on running text of a built-in corpus, e.g. shakespeare:calibration, cut into --max-length pieces"
        ),
    )
    dataset: str | None = Field(
        None, description="or on running text of a Hugging Face dataset NAME[:CONFIG] (needs the hub)"
    )
    max_examples: int | None = Field(None, ge=1, description="use only the first N examples (texts or pieces)")
    batch_size: int = Field(32, ge=1, description="texts per forward pass")
    max_length: int = Field(
        128, ge=2, description="truncate texts to this many tokens (running text: the piece length)"
    )

    @model_validator(mode="after")
    def _one_source(self) -> CalibrationData:
        given = [name for name in ("task", "text_file", "corpus", "dataset") if getattr(self, name) is not None]
        if len(given) > 1:
            raise ValueError(
                f"give one of {', '.join(named(n) for n in ('task', 'text_file', 'corpus', 'dataset'))}, not several"
            )
        if self.task is None and (self.data is not None or self.split is not None):
            raise ValueError(f"{named('data')} and {named('split')} need {named('task')}")
        return self

    @property
    def given(self) -> bool:
        """Whether any data was named."""
        return any(getattr(self, name) is not None for name in ("task", "text_file", "corpus", "dataset"))

    def running_text(self) -> TextSource | None:
        """The corpus or dataset as a `TextSource`, or None for a task or a file of texts."""
        if self.corpus is None and self.dataset is None:
            return None
        return TextSource(corpus=self.corpus, dataset=self.dataset)


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
    seq_lens: IntList = Field(
        [32, 128, 512], description="comma-separated sequence lengths (clamped to the models' position limit)"
    )
    repeats: int = Field(10, ge=1, description="timed forward passes per model and cell; the median is reported")
    warmup: int = Field(3, ge=0, description="untimed forward passes per model and cell before timing")
    device: Literal["cpu", "cuda"] = Field("cpu", description="cpu or cuda")
    dtype: Literal["float32", "float16", "bfloat16"] = Field("float32", description="float32, float16 or bfloat16")
    threads: int | None = Field(
        None, ge=1, description="torch CPU threads (default: torch's own, one per physical core)"
    )
    head: str | None = Field(None, description="model head (default: what the checkpoint's config says)")
    memory: bool = Field(True, description="measure peak memory, each model in a fresh process")
    seed: int = Field(0, description="seed of the random token ids")


class LmEvalConfig(Settings):
    """An lm-evaluation-harness run on a causal language model (`layerdrop evaluate MODEL --lm-eval TASKS`)."""

    lm_eval: Annotated[
        list[str],
        BeforeValidator(lambda v: [t.strip() for t in v.split(",") if t.strip()] if isinstance(v, str) else v),
    ] = Field(
        ...,
        min_length=1,
        description="lm-evaluation-harness tasks, comma-separated, e.g. hellaswag,arc_easy (needs layerdrop[lm-eval])",
    )
    num_fewshot: int | None = Field(None, ge=0, description="lm-eval: examples in context (default: each task's own)")
    limit: float | None = Field(
        None, gt=0, description="lm-eval: examples per task (a fraction when below 1); for quick checks only"
    )
    lm_eval_batch_size: int = Field(8, ge=1, description="lm-eval: batch size")
    include_path: str | None = Field(None, description="lm-eval: folder of extra task YAML files")
    device: str = Field("cpu", description="lm-eval: device, e.g. cpu or cuda")


class DistillConfig(Settings):
    """How a student learns from its teacher.

    Measured on all-MiniLM-L6-v2 with 2 of 6 layers dropped, starting from the fine-tuned teacher
    (toy task, SST-2, STS-B; figures in the README). Each field says why its default.
    """

    alpha: float = Field(
        0.5,
        ge=0,
        le=1,
        description="weight of the task loss on gold labels; the rest (1 - alpha) matches the teacher. "
        "0.5 (DistilBERT's mix) keeps the labels where the teacher errs; 0 did no better on the toy task",
    )
    temperature: float = Field(
        2.0,
        gt=0,
        description="softens both distributions so the teacher's other classes carry signal (classification only); "
        "2, as usual for tasks with few classes: a higher T flattens two or three logits towards uniform",
    )
    hidden_weight: float = Field(
        0.0,
        ge=0,
        description="weight of the MSE between each student layer's output and its teacher layer's (0: off). "
        "Off by default because its cache holds every training token's hidden states (BERT-base on MNLI: "
        "about 290 GB in fp16); turn it on for small data and hard layer choices: with 1.0 the toy task's "
        "bottom-2 student kept 99.2% of its teacher instead of 98.7% (4 epochs at lr 2e-4)",
    )


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


# --- decoder language models: text, perplexity, healing, generation speed -------------------------


class TextSource(Settings):
    """Running text for perplexity, calibration or healing: a file, a built-in corpus or a hub dataset.

    Corpus names are checked by `layerdrop.corpora.parse_corpus` (a layer above), which a command can
    call before loading any model.
    """

    text_file: str | None = Field(None, description="a UTF-8 text file, read as one running text")
    corpus: str | None = Field(
        None, description="built-in corpus and part, e.g. shakespeare:eval (parts: calibration, train, eval)"
    )
    dataset: str | None = Field(
        None, description="Hugging Face dataset NAME[:CONFIG], e.g. wikitext:wikitext-2-raw-v1 (needs the hub)"
    )
    dataset_split: str = Field("test", description="split of --dataset to read")
    text_column: str = Field("text", description="column of --dataset holding the text")
    max_tokens: int | None = Field(None, ge=2, description="use only the first N tokens of the text")

    @model_validator(mode="after")
    def _one_source(self) -> TextSource:
        given = [name for name in ("text_file", "corpus", "dataset") if getattr(self, name) is not None]
        if len(given) != 1:
            raise ValueError(f"give exactly one of {named('text_file')}, {named('corpus')}, {named('dataset')}")
        return self


class PerplexitySettings(Settings):
    """The sliding window of token-level perplexity (as in the transformers perplexity guide)."""

    context: int = Field(1024, ge=2, description="tokens per window (capped at the model's position limit)")
    stride: int = Field(512, ge=1, description="tokens the window moves each step; each token is scored once")

    @model_validator(mode="after")
    def _stride_fits(self) -> PerplexitySettings:
        if self.stride > self.context:
            stride, context = f"{named('stride')} ({self.stride})", f"{named('context')} ({self.context})"
            raise ValueError(f"{stride} cannot exceed {context}: tokens would be skipped")
        return self


HealMethod = Literal["lora", "distill"]


class HealSettings(Settings):
    """How a model with dropped layers is healed on running text (`layerdrop heal`).

    Both methods train LoRA adapters on the linear projections of the kept layers and merge them
    into the weights at the end, so the output is a plain checkpoint; they differ in the loss.
    The defaults (36 steps of 8 x 256 tokens, 74k tokens) are sized for SmolLM2-135M with 6 of its
    30 layers dropped: on 2 CPU cores a step took 13 to 19 s for lora and 23 s for distill (CPU time / 2,
    measured on a shared machine), so the budget runs 8 to 14 minutes.
    """

    method: HealMethod = Field(
        "lora",
        description="lora: next-token loss on the text; distill: KL to the uncut teacher's next-token distribution "
        "(needs --teacher)",
    )
    steps: int = Field(
        36, ge=1, description="optimizer steps; tokens trained on = steps x batch size x sequence length"
    )
    batch_size: int = Field(8, ge=1, description="sequences per step")
    sequence_length: int = Field(
        256, ge=2, description="tokens per training sequence (the text is cut into such chunks)"
    )
    learning_rate: float = Field(
        1e-3,
        gt=0,
        description="peak learning rate (linear warm-up, then linear decay to 0)",
        json_schema_extra={"flags": ["--lr"]},
    )
    warmup_steps: int = Field(2, ge=0, description="steps of linear learning-rate warm-up")
    lora_rank: int = Field(8, ge=1, description="rank of the LoRA adapters")
    lora_alpha: float = Field(16.0, gt=0, description="LoRA scaling numerator (the update is scaled by alpha / rank)")
    lora_dropout: float = Field(0.0, ge=0, lt=1, description="dropout on the LoRA adapters' input")
    temperature: float = Field(
        1.0, gt=0, description="distill: softmax temperature of teacher and student (the loss is scaled by T^2)"
    )
    weight_decay: float = Field(0.0, ge=0, description="AdamW weight decay on the adapters")
    max_grad_norm: float = Field(1.0, ge=0, description="gradient clipping norm (0: no clipping)")
    seed: int = Field(0, description="random seed (adapter initialisation, order of the training sequences)")


class GenerationBenchSettings(Settings):
    """Generation speed of decoders (`layerdrop bench` in decoder mode): greedy, fixed length, with the KV cache."""

    prompt_tokens: int = Field(128, ge=1, description="tokens of the (random) prompt, P")
    new_tokens: int = Field(
        64, ge=1, description="tokens generated after the prompt, N (always exactly N: end-of-text is suppressed)"
    )
    batch_sizes: IntList = Field([1, 8], description="comma-separated batch sizes (prompts generated together)")
    repeats: int = Field(3, ge=1, description="timed generations per model and batch size; the median is reported")
    warmup: int = Field(1, ge=0, description="untimed generations per model and batch size before timing")
    device: Literal["cpu", "cuda"] = Field("cpu", description="cpu or cuda")
    dtype: Literal["float32", "float16", "bfloat16"] = Field("float32", description="float32, float16 or bfloat16")
    threads: int | None = Field(
        None, ge=1, description="torch CPU threads (default: torch's own, one per physical core)"
    )
    seed: int = Field(0, description="seed of the random prompt token ids")
