"""One run of the paper's experiment: drop layers, fine-tune on a task, evaluate on its dev set(s).

`RunConfig` is the one schema of a run: `layerdrop run` builds its options from it, a
sweep validates every grid point through it, and `run_experiment` takes it. Regimes (the paper's
Sections 4 and 6):
- "pretrained": drop from the pre-trained model, then fine-tune (the paper's main setting);
- "finetuned": fine-tune the full model, drop, evaluate as it is, fine-tune again (Table 5);
- "task-specific": fine-tune with the to-be-dropped layers frozen, drop them, fine-tune again;
- "iterative": fine-tune, dropping one layer (chosen by the strategy) every `iterative_every` epochs.
Data-driven strategies score layers on (at most 1,000 examples of) the training data, never on
the dev set they are evaluated on.
"""

from __future__ import annotations

import copy
import platform
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from layerdrop.errors import LayerDropError
from layerdrop.settings import DistillConfig, Settings, TrainConfig, named

Regime = Literal["pretrained", "finetuned", "task-specific", "iterative"]
FULL_MODEL = "none"  # the strategy name of the undropped baseline
SELECTION_EXAMPLES = 1000  # training examples data-driven strategies score the layers on


class RunConfig(Settings):
    """Everything that decides a run's numbers (where its outputs go is not part of it)."""

    model: str = Field(..., description="Hugging Face hub name, local checkpoint directory, or bundled:NAME")
    task: str = Field(
        ...,
        description="cola, sst2, mrpc, stsb, qqp, mnli, qnli, rte, wnli or toy-sentiment",
        json_schema_extra={"flags": ["-t"]},
    )
    strategy: str = Field(
        FULL_MODEL, description="layer-selection strategy, or none for the full model; see `layerdrop strategies`"
    )
    strategy_options: dict[str, Any] = Field(
        {}, description="the strategy's own options: num_drop, threshold, layers, …"
    )
    regime: Regime = Field(
        "pretrained",
        description=(
            "pretrained (drop, then fine-tune), finetuned (fine-tune, drop, fine-tune again), task-specific, iterative"
        ),
    )
    iterative_every: int = Field(2, ge=1, description="iterative regime: drop one layer every N epochs")
    model_is_finetuned: bool = Field(False, description="finetuned regime: MODEL is already fine-tuned on the task")
    data: str | None = Field(
        None, description="local GLUE folder (GLUE TSVs or hub parquet files); default: the Hugging Face hub"
    )
    train_from_dev: float | None = Field(
        None,
        gt=0,
        lt=1,
        description="train on this fraction of the dev set (deterministic split) when there is no train split",
    )
    max_train_samples: int | None = Field(
        None, ge=1, description="train on a fixed random subsample of this many examples"
    )
    max_eval_samples: int | None = Field(None, ge=1, description="evaluate on the first N dev examples only")
    training: TrainConfig = Field(default_factory=TrainConfig, description="fine-tuning settings")
    distill: bool = Field(
        False,
        description=(
            "recover the dropped model by distillation from the fine-tuned full model instead of plain fine-tuning"
        ),
    )
    teacher: str | None = Field(
        None,
        description="distill: the fine-tuned full model to learn from (default: MODEL fine-tuned first, in this run)",
    )
    distillation: DistillConfig = Field(default_factory=DistillConfig, description="distillation settings")

    @field_validator("task")
    @classmethod
    def _known_task(cls, name: str) -> str:
        from layerdrop.glue.tasks import get_task

        return get_task(name).name

    @model_validator(mode="after")
    def _consistent(self) -> RunConfig:
        if not self.distill and (self.teacher is not None or self.distillation != DistillConfig()):
            raise ValueError(f"{named('teacher')} and the distillation settings go with {named('distill')}")
        if self.distill and self.strategy == FULL_MODEL:
            raise ValueError("distillation recovers a dropped model: give a strategy and its options")
        if self.distill and self.regime == "iterative" and self.distillation.hidden_weight > 0:
            raise ValueError(
                "iterative dropping changes which teacher layer each student layer matches: use hidden_weight 0"
            )
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
                    f"iterative dropping of {options.num_drop} layers every {self.iterative_every} epochs "
                    f"needs at least {self.iterative_every * options.num_drop} epochs, got {self.training.epochs}"
                )
        if strategy.judges_outputs and self.regime == "pretrained":
            raise ValueError(f"strategy {strategy.name!r} needs a fine-tuned model: use --regime finetuned")
        return self

    @property
    def num_drop(self) -> int:
        """How many layers the run drops (0 for the full model); `layers` counted once parsed ("1-2" is two)."""
        if self.strategy == FULL_MODEL:
            return 0
        from layerdrop.strategies import get_strategy

        options = get_strategy(self.strategy).parse(self.strategy_options)
        return int(options.num_drop or len(getattr(options, "layers", None) or ()))

    def load_data(self, task: Any) -> tuple[Any, dict[str, Any], dict[str, Any]]:
        """(train split, {dev split: data}, where they came from): what this run's data settings select."""
        from layerdrop.glue import train_and_dev

        return train_and_dev(
            task,
            self.data,
            train_from_dev=self.train_from_dev,
            max_train_samples=self.max_train_samples,
            max_eval_samples=self.max_eval_samples,
        )


def run_experiment(config: RunConfig, output: str | Path | None = None, overwrite: bool = False) -> dict[str, Any]:
    """Run one experiment and return its JSON-able result (what `layerdrop run` writes).

    With `output`, the final model is saved there (checked before any work starts).
    """
    from accelerate import PartialState
    from accelerate.utils import set_seed

    from layerdrop.architectures import num_layers, parameter_count
    from layerdrop.checkpoint import load_model, load_tokenizer, save_model
    from layerdrop.evaluation import evaluate
    from layerdrop.glue import get_task
    from layerdrop.outputs import check_output
    from layerdrop.surgery import drop_layers, dropping_record
    from layerdrop.training import finetune

    if output is not None:
        check_output(output, "dir", overwrite, what="--output")
    task = get_task(config.task)
    train, eval_sets, data_record = config.load_data(task)
    started = time.perf_counter()
    set_seed(config.training.seed)  # the new classification head is drawn from this seed
    model = load_model(config.model, head="sequence-classification", num_labels=task.num_labels)
    if not task.is_regression:
        model.config.id2label = dict(enumerate(task.label_names))
        model.config.label2id = {name: i for i, name in enumerate(task.label_names)}
    tokenizer = load_tokenizer(config.model)
    params_original = parameter_count(model)
    original_record = dropping_record(model.config)
    stages: dict[str, Any] = {}
    runs = []
    dropping = config.strategy != FULL_MODEL
    teacher = _given_teacher(config, task)
    if config.distill and teacher is None and config.regime != "finetuned":  # the full model, fine-tuned in this run
        teacher = copy.deepcopy(model)
        runs.append(finetune(teacher, tokenizer, task, train, config.training))

    if config.regime == "finetuned":
        if not config.model_is_finetuned:
            runs.append(finetune(model, tokenizer, task, train, config.training))
        stages["full"] = evaluate(model, tokenizer, task, eval_sets, config.training)
        if config.distill and teacher is None:
            teacher = copy.deepcopy(model)
    recover = _recovery(config, tokenizer, task, train, teacher)
    if config.regime == "iterative":
        runs.append(recover(model, on_epoch_end=_iterative_dropper(config)))
    else:
        layers, record = choose_run_layers(config, model, tokenizer, task, train) if dropping else ([], {})
        if config.regime == "task-specific":
            runs.append(finetune(model, tokenizer, task, train, config.training, frozen_layers=layers))
        if dropping:
            drop_layers(model, layers, strategy=record)
        if config.regime in ("finetuned", "task-specific") and dropping:
            stages["dropped_before_retraining"] = evaluate(model, tokenizer, task, eval_sets, config.training)
        if config.regime == "pretrained" or dropping:
            runs.append(recover(model))
    final = evaluate(model, tokenizer, task, eval_sets, config.training)
    if output is not None and PartialState().is_main_process:  # one writer under `accelerate launch`
        save_model(model, output, tokenizer=tokenizer, overwrite=overwrite)
    teaching = {}
    if teacher is not None:
        scored = evaluate(teacher, tokenizer, task, eval_sets, config.training)
        name = config.teacher or (
            config.model if config.model_is_finetuned else f"{config.model}, fine-tuned in this run"
        )
        teaching = {
            "teacher": {"model": name, "metrics": scored["metrics"], "score": scored["score"]},
            "retained": final["score"] / scored["score"] if scored["score"] else None,
        }

    record = dropping_record(model.config) or {}
    strategy = record.get("strategy", {}) if record else {}
    last = runs[-1] if runs else None
    return {
        "model": config.model,
        "task": task.name,
        "regime": config.regime,
        # What the model is: a fine-tuned model dropped earlier reports that strategy, not "none".
        "strategy": strategy.get("name", FULL_MODEL),
        "strategy_params": {k: v for k, v in strategy.items() if k != "name"},
        "num_drop": len(record.get("dropped_layers", [])),
        "num_layers_original": record.get("original_num_layers", num_layers(model.config)),
        "num_layers": num_layers(model.config),
        "dropped_layers": record.get("dropped_layers", []),
        "kept_layers": record.get("kept_layers", list(range(num_layers(model.config)))),
        "dropped_earlier": original_record is not None,
        "metrics": final["metrics"],
        "score": final["score"],
        "stages": stages,
        "recovery": "distillation" if config.distill else "fine-tuning",
        **teaching,
        "params": parameter_count(model),
        "params_original": params_original,
        "train_examples": last.train_examples if last else 0,
        "train_steps": sum(r.steps for r in runs),
        "train_loss": {"first": last.first_loss, "final": last.final_loss} if last else None,
        "train_time_s": sum(r.train_time_s for r in runs),
        "train_examples_per_s": last.train_examples_per_s if last else None,
        "train_events": [event for r in runs for event in r.events],
        "eval_examples": final["eval_examples"],
        "seed": config.training.seed,
        "settings": config.model_dump(),
        "data": data_record,
        "wall_time_s": time.perf_counter() - started,
        "versions": versions(),
        "finished_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


def _given_teacher(config: RunConfig, task: Any) -> Any:
    """The teacher named by `teacher`, checked to be fine-tuned for the task; None when not given."""
    if config.teacher is None:
        return None
    from layerdrop.checkpoint import load_model

    teacher = load_model(config.teacher, head="sequence-classification", trained_head=True)
    if teacher.config.num_labels != task.num_labels:
        raise LayerDropError(
            f"teacher {config.teacher!r} has {teacher.config.num_labels} outputs "
            f"but {task.name} needs {task.num_labels}"
        )
    return teacher


def _recovery(config: RunConfig, tokenizer: Any, task: Any, train: Any, teacher: Any) -> Callable[..., Any]:
    """How the dropped model gets its quality back: plain fine-tuning, or distillation from `teacher`."""
    from layerdrop.training import finetune

    if not config.distill:
        return lambda model, **hooks: finetune(model, tokenizer, task, train, config.training, **hooks)
    from layerdrop.distillation import distill

    return lambda model, **hooks: distill(
        model, teacher, tokenizer, task, train, config.training, config.distillation, **hooks
    )


def choose_run_layers(
    config: RunConfig, model: Any, tokenizer: Any, task: Any, train: Any
) -> tuple[list[int], dict[str, Any]]:
    """The layer set and its record for the run's strategy; data-driven ones look at training examples only."""
    from layerdrop.calibration import make_batches
    from layerdrop.strategies import choose_layers, get_strategy

    strategy = get_strategy(config.strategy)
    options = dict(config.strategy_options)
    if strategy.name == "random":
        options.setdefault("seed", config.training.seed)
    batches = None
    if strategy.uses_data:
        sample = train.select(range(min(SELECTION_EXAMPLES, len(train))))
        batches = make_batches(
            sample,
            tokenizer,
            task=task,
            batch_size=config.training.eval_batch_size,
            max_length=config.training.max_length,
        )
    selection = choose_layers(
        strategy.name,
        model,
        options,
        batches=batches,
        task=task,
        data_record={"split": "train", "num_examples": min(SELECTION_EXAMPLES, len(train))},
    )
    return selection.layers, selection.record


def _iterative_dropper(config: RunConfig) -> Callable[[int, Any], str | None]:
    """An epoch-end hook that drops one layer, chosen by the positional strategy, every N epochs."""
    from layerdrop.architectures import num_layers
    from layerdrop.strategies import SelectionInput, get_strategy
    from layerdrop.surgery import drop_layers

    strategy = get_strategy(config.strategy)
    total = config.num_drop
    record = {"name": strategy.name, "num_drop": total, "iterative_every": config.iterative_every}

    def on_epoch_end(epoch: int, model: Any) -> str | None:
        if epoch % config.iterative_every or epoch // config.iterative_every > total:
            return None
        options = {**config.strategy_options, "num_drop": 1}
        if strategy.name == "random":
            options["seed"] = config.training.seed + epoch
        layer = strategy.run(options, SelectionInput(num_layers(model.config))).layers
        drop_layers(model, layer, strategy=record)
        kept = model.config.layer_dropping["kept_layers"]
        return f"epoch {epoch}: dropped layer {layer[0]} (now {len(kept)} layers: {kept})"

    return on_epoch_end


def versions() -> dict[str, str]:
    """Versions of everything that can change a number in the result."""
    from importlib.metadata import PackageNotFoundError, version

    found = {"python": platform.python_version()}
    for package in ("layerdrop", "torch", "transformers", "accelerate", "datasets", "scikit-learn", "scipy"):
        try:
            found[package] = version(package)
        except PackageNotFoundError:
            pass
    return found
