"""`layerdrop run`, `finetune` and `evaluate`: the paper's experiment on GLUE or the built-in task."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from layerdrop.cli import app
from layerdrop.cli.options import ModelArg, Overwrite, ResultFile, settings_options
from layerdrop.experiment import RunConfig
from layerdrop.settings import DistillConfig, LmEvalConfig, TrainConfig
from layerdrop.strategies import STRATEGIES

SavedModel = Annotated[Path | None, typer.Option("--output", "-o", help="save the final model here")]
STRATEGY_OPTIONS = tuple(s.options for s in STRATEGIES.values())


def _check_outputs(output: Path | None, result: Path | None, overwrite: bool) -> None:
    """Every output location is checked before any work starts, so a bad one never costs a run."""
    from layerdrop.outputs import check_output

    if output is not None:
        check_output(output, "dir", overwrite, what="--output")
    if result is not None:
        check_output(result, "file", overwrite, what="--result")


def _emit(result: dict[str, Any], path: Path | None, overwrite: bool) -> None:
    """Print the result, or write it to `path`; under `accelerate launch`, only the main process does."""
    from accelerate import PartialState

    from layerdrop.outputs import write_json

    if not PartialState().is_main_process:
        return
    if path is None:
        typer.echo(json.dumps(result, indent=2))
        return
    write_json(path, result, overwrite, what="--result")
    typer.echo(f"{result['task']}: score {result['score']:.4f} {result['metrics']}; result in {path}")


@app.command()
@settings_options(DistillConfig, into="distillation", panel="Distillation (with --distill)")
@settings_options(TrainConfig, into="training", panel="Training")
@settings_options(*STRATEGY_OPTIONS, into="options", optional=True, exclude={"seed"}, panel="Strategy options")
@settings_options(RunConfig, into="settings", exclude={"model", "training", "strategy_options"})
def run(
    model: ModelArg,
    output: SavedModel = None,
    overwrite: Overwrite = False,
    result: ResultFile = None,
    settings: dict[str, Any] | None = None,
    options: dict[str, Any] | None = None,
    training: dict[str, Any] | None = None,
    distillation: dict[str, Any] | None = None,
) -> None:
    """Drop layers from MODEL, fine-tune on a task, evaluate on its dev set; print or write one JSON result.

    With --distill, the dropped model is distilled from the fine-tuned full model instead of fine-tuned alone.
    """
    from layerdrop.experiment import run_experiment

    if "layers" in options and settings["strategy"] == "none":
        settings["strategy"] = "explicit"
    config = RunConfig.model_validate(
        {**settings, "model": model, "strategy_options": options, "training": training, "distillation": distillation}
    )
    _check_outputs(output, result, overwrite)
    _emit(run_experiment(config, output, overwrite), result, overwrite)


@app.command()
@settings_options(TrainConfig, into="training", panel="Training")
@settings_options(
    RunConfig, into="settings", include={"task", "data", "train_from_dev", "max_train_samples", "max_eval_samples"}
)
def finetune(
    model: ModelArg,
    output: Annotated[Path, typer.Option("--output", "-o", help="save the fine-tuned model here")],
    overwrite: Overwrite = False,
    result: ResultFile = None,
    settings: dict[str, Any] | None = None,
    training: dict[str, Any] | None = None,
) -> None:
    """Fine-tune MODEL (as it is, dropped or not) on a task, evaluate it, and save it to --output."""
    from layerdrop.experiment import run_experiment

    config = RunConfig.model_validate({**settings, "model": model, "training": training})
    _check_outputs(output, result, overwrite)
    _emit(run_experiment(config, output, overwrite), result, overwrite)


@app.command()
@settings_options(LmEvalConfig, into="harness", optional=True, panel="lm-evaluation-harness (instead of --task)")
@settings_options(TrainConfig, into="training", include={"eval_batch_size", "max_length"})
@settings_options(RunConfig, into="settings", include={"task", "data", "max_eval_samples"}, optional=True)
def evaluate(
    model: ModelArg,
    embeddings: Annotated[
        bool,
        typer.Option(
            "--embeddings", help="zero-shot: cosine similarity of pooled sentence embeddings vs the gold scores (STS-B)"
        ),
    ] = False,
    overwrite: Overwrite = False,
    result: ResultFile = None,
    settings: dict[str, Any] | None = None,
    training: dict[str, Any] | None = None,
    harness: dict[str, Any] | None = None,
) -> None:
    """Score MODEL on a task's dev set(s), zero-shot as a sentence encoder, or with lm-eval.

    MODEL is a fine-tuned classifier (--task), a sentence encoder scored zero-shot (--embeddings),
    or a language model run through lm-evaluation-harness (--lm-eval).
    """
    from layerdrop.errors import LayerDropError
    from layerdrop.experiment import versions

    if harness:
        if settings:
            raise LayerDropError("give either --task or --lm-eval, not both")
        from layerdrop.harness import run_lm_eval

        config = LmEvalConfig.model_validate(harness)
        _check_outputs(None, result, overwrite)
        _emit({"model": model, "lm_eval": run_lm_eval(model, config), "versions": versions()}, result, overwrite)
        return
    from layerdrop.architectures import num_layers
    from layerdrop.checkpoint import load_model, load_tokenizer
    from layerdrop.evaluation import evaluate as evaluate_model
    from layerdrop.glue import dev_sets, get_task

    run = RunConfig.model_validate({**settings, "model": model, "training": training})
    _check_outputs(None, result, overwrite)
    task = get_task(run.task)
    eval_sets = dev_sets(task, run.data, run.max_eval_samples)
    if embeddings:
        from layerdrop.embeddings import load_encoder, sts_spearman

        if not (task.is_regression and len(task.text_columns) == 2):
            raise LayerDropError(f"--embeddings scores sentence-pair similarity (e.g. --task stsb), not {task.name}")
        spearman = sts_spearman(
            load_encoder(model), eval_sets[task.dev_splits[0]], task, batch_size=run.training.eval_batch_size
        )
        _emit(
            {
                "model": model,
                "task": task.name,
                "embeddings": True,
                "metrics": {"spearman_x100": spearman},
                "score": spearman,
                "eval_examples": {s: len(d) for s, d in eval_sets.items()},
                "versions": versions(),
            },
            result,
            overwrite,
        )
        return
    loaded = load_model(model, head="sequence-classification", trained_head=True)
    if loaded.config.num_labels != task.num_labels:
        raise LayerDropError(
            f"{model} has {loaded.config.num_labels} outputs but {task.name} needs {task.num_labels}; "
            "is it fine-tuned on this task?"
        )
    scores = evaluate_model(loaded, load_tokenizer(model), task, eval_sets, run.training)
    _emit(
        {
            "model": model,
            "task": task.name,
            "num_layers": num_layers(loaded.config),
            "layer_dropping": getattr(loaded.config, "layer_dropping", None),
            **scores,
            "versions": versions(),
        },
        result,
        overwrite,
    )
