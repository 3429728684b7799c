"""One run of the paper's experiment: drop layers, fine-tune on a task, evaluate on its dev set(s).

Regimes (the paper's Sections 4 and 6):
- "pretrained": drop from the pre-trained model, then fine-tune (the paper's main setting);
- "finetuned": fine-tune the full model, drop, evaluate as it is, fine-tune again (Table 5);
- "task-specific": fine-tune with the to-be-dropped layers frozen, drop them, fine-tune again;
- "iterative": fine-tune, dropping one layer (chosen by the strategy) every `iterative_every` epochs.
Data-driven strategies score layers on (at most 1,000 examples of) the training data, never on
the dev set they are evaluated on.
"""

from __future__ import annotations

import platform
import time
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from layerdrop.errors import LayerDropError
from layerdrop.settings import TrainConfig

REGIMES = ("pretrained", "finetuned", "task-specific", "iterative")
SELECTION_EXAMPLES = 1000


@dataclass
class Experiment:
    model: str
    task: str
    strategy: str = "none"  # "none": the full model
    num_drop: int = 0
    layers: list[int] | None = None  # for strategy "explicit"
    regime: str = "pretrained"
    data: str | None = None  # local GLUE folder; None: the hub
    train_from_dev: float | None = None
    max_train_samples: int | None = None
    max_eval_samples: int | None = None
    protect_first: bool = False
    protect_last: bool = False
    strategy_options: dict[str, Any] = field(default_factory=dict)  # threshold, pooling, statistic, …
    iterative_every: int = 2
    model_is_finetuned: bool = False  # "finetuned" regime: MODEL is already fine-tuned on the task
    training: TrainConfig = field(default_factory=TrainConfig)
    output: str | None = None  # save the final model here
    overwrite: bool = False  # replace a non-empty output folder

    def __post_init__(self) -> None:
        if self.regime not in REGIMES:
            raise LayerDropError(f"unknown regime {self.regime!r}; choose one of {', '.join(REGIMES)}")
        if self.strategy == "none" and (self.num_drop or self.layers):
            raise LayerDropError("strategy 'none' (the full model) drops no layers")
        if self.regime == "iterative" and self.training.epochs < self.iterative_every * self.num_drop:
            raise LayerDropError(
                f"iterative dropping of {self.num_drop} layers every {self.iterative_every} epochs needs at least "
                f"{self.iterative_every * self.num_drop} epochs, got {self.training.epochs}"
            )
        for name, value in (("max_train_samples", self.max_train_samples), ("max_eval_samples", self.max_eval_samples)):
            if value is not None and value < 1:
                raise LayerDropError(f"{name} must be at least 1, got {value}")

    @classmethod
    def from_spec(cls, spec: dict[str, Any]) -> Experiment:
        """Build from a flat dict (a sweep grid point): training keys go to `training`."""
        own = {f.name for f in fields(cls)} - {"training"}
        train_keys = set(TrainConfig.model_fields)
        if unknown := sorted(set(spec) - own - train_keys):
            raise LayerDropError(f"unknown run setting {unknown[0]!r}")
        return cls(**{k: v for k, v in spec.items() if k in own},
                   training=TrainConfig(**{k: v for k, v in spec.items() if k in train_keys}))


def run_experiment(spec: Experiment | dict[str, Any]) -> dict[str, Any]:
    """Run one experiment and return its JSON-able result (what `layerdrop run` writes)."""
    from accelerate import PartialState
    from accelerate.utils import set_seed

    from layerdrop.architectures import num_layers, parameter_count
    from layerdrop.checkpoint import load_model, load_tokenizer, save_model
    from layerdrop.evaluation import evaluate
    from layerdrop.glue import get_task
    from layerdrop.surgery import drop_layers
    from layerdrop.training import finetune

    exp = spec if isinstance(spec, Experiment) else Experiment.from_spec(spec)
    task = get_task(exp.task)
    train, eval_sets, data_record = load_task_data(exp, task)
    if exp.output is not None:
        from layerdrop.checkpoint import check_output_dir

        check_output_dir(exp.output, exp.overwrite)
    started = time.perf_counter()
    set_seed(exp.training.seed)  # the new classification head is drawn from this seed
    model = load_model(exp.model, head="sequence-classification", num_labels=task.num_labels)
    if not task.is_regression:
        model.config.id2label = dict(enumerate(task.label_names))
        model.config.label2id = {name: i for i, name in enumerate(task.label_names)}
    tokenizer = load_tokenizer(exp.model)
    original_layers = num_layers(model.config)
    params_original = parameter_count(model)
    stages: dict[str, Any] = {}
    runs = []

    if exp.regime == "finetuned":
        if not exp.model_is_finetuned:
            runs.append(finetune(model, tokenizer, task, train, exp.training))
        stages["full"] = evaluate(model, tokenizer, task, eval_sets, exp.training)
    indices, record = choose_layers(exp, model, tokenizer, task, train)

    if exp.regime == "iterative":
        runs.append(finetune(model, tokenizer, task, train, exp.training, on_epoch_end=_iterative_dropper(exp, record)))
    else:
        if exp.regime == "task-specific":
            runs.append(finetune(model, tokenizer, task, train, exp.training, frozen_layers=indices))
        if exp.strategy != "none":
            drop_layers(model, indices, strategy=record)
        if exp.regime in ("finetuned", "task-specific") and exp.strategy != "none":
            stages["dropped_before_retraining"] = evaluate(model, tokenizer, task, eval_sets, exp.training)
        if exp.regime == "pretrained" or exp.strategy != "none":
            runs.append(finetune(model, tokenizer, task, train, exp.training))
    final = evaluate(model, tokenizer, task, eval_sets, exp.training)
    if exp.output is not None and PartialState().is_main_process:  # one writer under `accelerate launch`
        save_model(model, exp.output, tokenizer=tokenizer, overwrite=exp.overwrite)

    dropping = getattr(model.config, "layer_dropping", None) or {}
    last = runs[-1] if runs else None
    return {
        "model": exp.model,
        "task": task.name,
        "regime": exp.regime,
        "strategy": exp.strategy,
        "strategy_params": {k: v for k, v in dropping.get("strategy", {}).items() if k != "name"},
        "num_drop": len(dropping.get("dropped_layers", [])),
        "num_layers_original": original_layers,
        "num_layers": num_layers(model.config),
        "dropped_layers": dropping.get("dropped_layers", []),
        "kept_layers": dropping.get("kept_layers", list(range(original_layers))),
        "metrics": final["metrics"],
        "score": final["score"],
        "stages": stages,
        "params": parameter_count(model),
        "params_original": params_original,
        "train_examples": last.train_examples if last else 0,
        "train_time_s": sum(r.train_time_s for r in runs),
        "train_examples_per_s": last.train_examples_per_s if last else None,
        "train_events": [event for r in runs for event in r.events],
        "eval_examples": final["eval_examples"],
        "seed": exp.training.seed,
        "training": exp.training.model_dump(),
        "data": data_record,
        "wall_time_s": time.perf_counter() - started,
        "versions": versions(),
        "finished_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


def load_task_data(exp: Experiment, task: Any) -> tuple[Any, dict[str, Any], dict[str, Any]]:
    """(train split, {dev split: data}, record of where they came from and how they were cut)."""
    from layerdrop.evaluation import dev_sets, first_examples
    from layerdrop.glue import available_splits, load_split, train_from_dev

    record: dict[str, Any] = {"source": exp.data or "hub"}
    eval_sets = dev_sets(task, exp.data)
    if exp.train_from_dev is not None:
        first = task.dev_splits[0]
        train, eval_sets[first] = train_from_dev(eval_sets[first], exp.train_from_dev, seed=0)
        record["train_from_dev"] = {"fraction": exp.train_from_dev, "split": first, "seed": 0}
    elif "train" not in available_splits(task, exp.data):
        raise LayerDropError(f"no train split of {task.name} in {exp.data or 'the hub'}; pass --train-from-dev FRACTION to train on part of the dev set")
    else:
        train = load_split(task, "train", exp.data)
    if exp.max_train_samples is not None and exp.max_train_samples < len(train):
        train = train.shuffle(seed=0).select(range(exp.max_train_samples))
        record["train_subsample"] = {"examples": exp.max_train_samples, "seed": 0}
    if exp.max_eval_samples is not None:
        eval_sets = first_examples(eval_sets, exp.max_eval_samples)  # after any train/dev split
        record["eval_subsample"] = {"examples": exp.max_eval_samples, "first": True}
    return train, eval_sets, record


def choose_layers(exp: Experiment, model: Any, tokenizer: Any, task: Any, train: Any) -> tuple[list[int], dict[str, Any]]:
    """The layer set and its record for the experiment's strategy (empty for the full model)."""
    from layerdrop.architectures import num_layers
    from layerdrop.strategies import get_strategy, positional_record, select_layers

    if exp.strategy == "none":
        return [], {"name": "none"}
    if exp.regime == "iterative":
        if get_strategy(exp.strategy).kind != "position" or exp.strategy == "explicit":
            raise LayerDropError("iterative dropping takes a positional strategy (top, bottom, symmetric, …)")
        return [], {"name": exp.strategy, "num_drop": exp.num_drop, "iterative_every": exp.iterative_every}
    if get_strategy(exp.strategy).kind == "position":
        indices = select_layers(exp.strategy, num_layers(model.config), exp.num_drop, layers=exp.layers,
                                seed=exp.training.seed, protect_first=exp.protect_first, protect_last=exp.protect_last)
        return indices, positional_record(exp.strategy, indices, seed=exp.training.seed,
                                          protect_first=exp.protect_first, protect_last=exp.protect_last)
    if exp.strategy == "greedy" and exp.regime == "pretrained":
        raise LayerDropError("greedy selection needs a fine-tuned model: use --regime finetuned")
    from layerdrop.strategies.data_driven import select_from_data

    sample = train.select(range(min(SELECTION_EXAMPLES, len(train))))
    return select_from_data(exp.strategy, model, tokenizer, sample, task=task, num_drop=exp.num_drop or None,
                            batch_size=exp.training.eval_batch_size, max_length=exp.training.max_length,
                            protect_first=exp.protect_first, protect_last=exp.protect_last, **exp.strategy_options)


def _iterative_dropper(exp: Experiment, record: dict[str, Any]):
    """An epoch-end hook that drops one layer, chosen by the positional strategy, every N epochs."""
    from layerdrop.architectures import num_layers
    from layerdrop.strategies import select_layers
    from layerdrop.surgery import drop_layers

    def on_epoch_end(epoch: int, model: Any) -> str | None:
        if epoch % exp.iterative_every or epoch // exp.iterative_every > exp.num_drop:
            return None
        index = select_layers(exp.strategy, num_layers(model.config), 1, seed=exp.training.seed + epoch,
                              protect_first=exp.protect_first, protect_last=exp.protect_last)
        drop_layers(model, index, strategy=record)
        kept = model.config.layer_dropping["kept_layers"]
        return f"epoch {epoch}: dropped layer {index[0]} (now {len(kept)} layers: {kept})"

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


def save_result(result: dict[str, Any], path: str | Path) -> None:
    """Write a result as JSON atomically (a temporary file renamed into place)."""
    import json
    import os
    import tempfile

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    with os.fdopen(fd, "w") as handle:
        json.dump(result, handle, indent=2)
    os.replace(tmp, path)
