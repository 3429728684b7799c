"""What a sweep will cost before it runs: device-hours from measured speed, or from a stated assumption.

Work is counted in parameter-tokens: a token trained through a layer with p parameters costs p
(forward and backward, 6 FLOPs per parameter), a token evaluated or scored costs p/3 (forward
only, 2 FLOPs). Embeddings and the classification head are left out: they cost little compute.
Per run that is, over each fine-tuning of the run's regime, examples × epochs × tokens per example
× parameters in the layers the model has at that point; plus every evaluation of the dev set(s),
and one forward pass over the (at most 1,000) examples a data-driven strategy scores layers on
(greedy search makes several, so its runs are underestimated).

Speed, in parameter-tokens per second, comes from the database when it holds finished runs of the
same model (their work counted the same way from their recorded sizes, over their `wall_time_s`,
so evaluation, scoring and per-run overheads are included), else from `REFERENCE`. Model loading
and start-up before `wall_time_s` starts are not counted.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from layerdrop.errors import LayerDropError
from layerdrop.glue.tasks import get_task
from layerdrop.engines import ExecutionSettings
from layerdrop.experiment import FULL_MODEL, RunConfig

SELECTION_EXAMPLES = 1000  # as layerdrop.experiment: data-driven strategies score layers on this many training examples


@dataclass(frozen=True)
class TaskSize:
    """Examples in a task's train split and in each dev split, and mean tokens per example."""

    train: int
    dev: tuple[int, ...]
    tokens: float


# GLUE split sizes are those of nyu-mll/glue on the Hugging Face hub. Tokens: mean WordPiece tokens
# per example (bert-base-uncased vocabulary, [CLS]/[SEP] included, truncated at 128), measured by
# benchmarks/task_tokens.py on ../shared/glue (results/task_tokens.json): the train split where it
# is there, else the dev split. MRPC is not there: 53 is an estimate (two news sentences of ~22
# words at ~1.15 tokens per word, plus 3 special tokens). RoBERTa's and XLNet's tokenizers give
# counts within a few percent of these on English text.
TASK_SIZES: dict[str, TaskSize] = {
    "cola": TaskSize(8_551, (1_043,), 11.3),
    "sst2": TaskSize(67_349, (872,), 13.3),
    "mrpc": TaskSize(3_668, (408,), 53.0),
    "stsb": TaskSize(5_749, (1_500,), 27.8),
    "qqp": TaskSize(363_846, (40_430,), 30.6),
    "mnli": TaskSize(392_702, (9_815, 9_832), 39.1),
    "qnli": TaskSize(104_743, (5_463,), 51.0),
    "rte": TaskSize(2_490, (277,), 66.6),
    "wnli": TaskSize(635, (71,), 37.1),
    "toy-sentiment": TaskSize(1_200, (400,), 13.9),
}


@dataclass(frozen=True)
class Reference:
    """The assumed training speed: tokens per second for a model with `layer_params` parameters in its layers."""

    device: str
    tokens_per_s: float
    layer_params: int
    reasoning: str

    @property
    def rate(self) -> float:
        """Parameter-tokens per second; a model with fewer parameters in its layers trains proportionally faster."""
        return self.tokens_per_s * self.layer_params


REFERENCE = Reference(
    device="A100 (bf16)",
    tokens_per_s=78_000,
    layer_params=85_054_464,  # BERT-base: 12 layers of 7,087,872
    reasoning=(
        "transformers' text-classification README (run_glue.py, bert-base-cased, batch 32, every example padded "
        "to 128 tokens) reports MNLI's 3 epochs (1,178,106 examples) in 1:17:06 on one Titan RTX with fp16: "
        "255 examples/s = 32,600 tokens/s; scaled by the dense tensor-core peaks, A100 bf16 312 / Titan RTX "
        "fp16 130 TFLOP/s (x2.4). Batches of short sentences use a GPU less well: expect SST-2 and CoLA "
        "to take longer than estimated"
    ),
)
ASSUMED_SHAPE = (12, 85_054_464 // 12)  # BERT-base, for models whose config cannot be read (offline)


@dataclass(frozen=True)
class RunSize:
    """How much data one run touches: training examples, examples per dev split, tokens per example."""

    train: int
    dev: tuple[int, ...]
    tokens: float


def planned_size(config: RunConfig) -> RunSize:
    """The sizes a run will have, from the task's table entry and the run's caps."""
    task = get_task(config.task)
    if task.name not in TASK_SIZES:
        raise LayerDropError(f"no size known for task {task.name}; the cost model knows {', '.join(TASK_SIZES)}")
    size = TASK_SIZES[task.name]
    train, dev = size.train, size.dev
    if config.train_from_dev is not None:
        train = round(size.dev[0] * config.train_from_dev)
        dev = (size.dev[0] - train, *size.dev[1:])
    if config.max_train_samples is not None:
        train = min(train, config.max_train_samples)
    if config.max_eval_samples is not None:
        dev = tuple(min(n, config.max_eval_samples) for n in dev)
    return RunSize(train, dev, min(size.tokens, config.training.max_length))


def finished_size(config: RunConfig, result: dict[str, Any]) -> RunSize | None:
    """The sizes a finished run had, from its result (None for a task the table does not know)."""
    size = TASK_SIZES.get(result["task"])
    if size is None or not result.get("wall_time_s"):
        return None
    return RunSize(
        result["train_examples"], tuple(result["eval_examples"].values()), min(size.tokens, config.training.max_length)
    )


def work(config: RunConfig, size: RunSize, layers: int, layer_params: float) -> float:
    """Parameter-tokens of one run: its fine-tunings, evaluations and layer scoring (see the module's docstring)."""
    from layerdrop.strategies import get_strategy

    k = config.num_drop
    epochs = config.training.epochs
    dropping = config.strategy != FULL_MODEL
    trained: list[int] = []  # layers in the model during each training epoch
    evaluated: list[int] = [layers - k]  # layers in the model at each evaluation; the final one first
    if config.regime == "iterative":
        trained = [layers - min(k, epoch // config.iterative_every) for epoch in range(epochs)]
    else:
        if config.regime == "finetuned":
            trained += [] if config.model_is_finetuned else [layers] * epochs
            evaluated.append(layers)
        if config.regime == "task-specific":
            trained += [layers] * epochs
        if config.regime in ("finetuned", "task-specific") and dropping:
            evaluated.append(layers - k)
        if config.regime == "pretrained" or dropping:
            trained += [layers - k] * epochs
    scored = min(SELECTION_EXAMPLES, size.train) * layers if dropping and get_strategy(config.strategy).uses_data else 0
    forward = sum(size.dev) * sum(evaluated) + scored
    return layer_params * size.tokens * (size.train * sum(trained) + forward / 3)


def model_shape(name: str) -> tuple[int, int] | None:
    """(layers, parameters per layer) from the model's config, counted on the meta device; None if unreadable."""
    import torch

    from layerdrop.architectures import layer_modules, num_layers, parameter_count
    from layerdrop.checkpoint import load_model_config, model_class

    try:
        config = load_model_config(name)
    except (LayerDropError, OSError):
        return None
    cls = model_class(config, "sequence-classification")
    with torch.device("meta"):
        model = cls.from_config(config) if hasattr(cls, "from_config") else cls._from_config(config)
    return num_layers(config), parameter_count(layer_modules(model)[0])


@dataclass
class ModelCost:
    """The runs of one model still to run, their work, and the speed they are costed at."""

    model: str
    layers: int
    layer_params: int
    shape_assumed: bool  # the config was unreadable: BERT-base's shape stands in
    runs: int = 0
    work: float = 0.0
    rate: float = REFERENCE.rate  # parameter-tokens per second
    measured_runs: int = 0  # finished runs the rate was measured on; 0: the reference assumption

    @property
    def hours(self) -> float:
        """Device-hours of its runs at its rate."""
        return self.work / self.rate / 3600


@dataclass
class Estimate:
    """What the runs still to run of a sweep will cost, per model."""

    models: list[ModelCost] = field(default_factory=list)
    db: Path | None = None

    @property
    def hours(self) -> float:
        """Device-hours of all the runs to run."""
        return sum(m.hours for m in self.models)

    def describe(self, execution: ExecutionSettings | None = None) -> str:
        """Lines for the terminal: the total, each model's share and its source of speed, the assumption."""
        to_run = sum(m.runs for m in self.models)
        lines = [f"cost: {to_run} runs to run, about {_hours(self.hours)} device-hours"]
        for cost in self.models:
            if cost.measured_runs:
                runs, where = cost.measured_runs, self.db
                source = f"at the speed of {runs} finished runs of it in {where} (on the machine that ran them)"
            else:
                shape = " (its config is unreadable here: assumed BERT-base-sized)" if cost.shape_assumed else ""
                source = f"at the assumed {REFERENCE.device} speed{shape}"
            lines.append(f"  {cost.model}: {cost.runs} runs, {_hours(cost.hours)} h {source}")
        if execution is not None and execution.engine == "local" and execution.workers > 1 and to_run:
            lines.append(
                f"  on {execution.workers} local workers: about {_hours(self.hours / min(execution.workers, to_run))} h"
            )
        if any(not m.measured_runs for m in self.models):
            lines.append(
                f"assumption: a model with {REFERENCE.layer_params:,} parameters in its layers (BERT-base) trains at "
                f"{REFERENCE.tokens_per_s:,.0f} tokens/s on an {REFERENCE.device}, other sizes in proportion; "
                f"{REFERENCE.reasoning}"
            )
        lines.append(
            "counted: train examples x epochs x mean tokens per example (per task, at most max_length), "
            "evaluation and layer scoring at a third of that per token; model loading and start-up are not"
        )
        return "\n".join(lines)


def _hours(hours: float) -> str:
    return f"{hours:,.0f}" if hours >= 100 else f"{hours:.3g}"


def estimate_sweep(specs: Iterable[dict[str, Any]], db: Path | None = None, done: set[str] = frozenset()) -> Estimate:
    """The cost of the runs in `specs` whose key is not in `done`, at measured speed where `db` has some."""
    from layerdrop.sweep import run_key

    measured = measured_rates(db) if db is not None else {}
    estimate = Estimate(db=db)
    costs: dict[str, ModelCost] = {}
    for spec in specs:
        if run_key(spec) in done:
            continue
        config = RunConfig.model_validate(spec)
        if config.model not in costs:
            shape = model_shape(config.model)
            layers, layer_params = shape or ASSUMED_SHAPE
            cost = costs[config.model] = ModelCost(config.model, layers, layer_params, shape_assumed=shape is None)
            if config.model in measured:
                cost.measured_runs, per_parameter = measured[config.model]
                cost.rate = per_parameter * layer_params
        cost = costs[config.model]
        cost.runs += 1
        cost.work += work(config, planned_size(config), cost.layers, cost.layer_params)
    estimate.models = list(costs.values())
    return estimate


def measured_rates(db: Path) -> dict[str, tuple[int, float]]:
    """Model -> (finished runs used, their work per parameter in a layer over their wall time).

    Per parameter, because a model's layers all have the same size: the rate times the model's
    parameters per layer is its speed in parameter-tokens per second.
    """
    try:
        with closing(sqlite3.connect(db)) as conn:
            rows = conn.execute("SELECT spec, result FROM runs").fetchall()
    except sqlite3.DatabaseError as err:
        raise LayerDropError(f"{db} is not a sweep database: {err}") from None
    totals: dict[str, list[float]] = {}
    for spec, text in rows:
        try:
            config, result = RunConfig.model_validate(json.loads(spec)), json.loads(text)
        except ValidationError:  # a run recorded in an older format of the settings: not comparable
            continue
        size = finished_size(config, result)
        if size is None:
            continue
        entry = totals.setdefault(config.model, [0, 0.0, 0.0])
        entry[0] += 1
        entry[1] += work(config, size, result["num_layers_original"], 1.0)
        entry[2] += result["wall_time_s"]
    return {model: (int(runs), units / seconds) for model, (runs, units, seconds) in totals.items()}
