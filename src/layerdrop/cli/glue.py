"""`layerdrop finetune`, `evaluate` and `run`: the paper's experiment on GLUE or a custom task."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer

from layerdrop.cli import app

Model = Annotated[str, typer.Argument(help="Hugging Face hub name or local checkpoint directory")]
TaskName = Annotated[str, typer.Option("--task", "-t", help="cola, sst2, mrpc, stsb, qqp, mnli, qnli, rte, wnli or toy-sentiment")]
Data = Annotated[Optional[str], typer.Option(help="local GLUE folder (GLUE TSVs or hub parquet files); default: the Hugging Face hub")]
TrainFromDev = Annotated[Optional[float], typer.Option(help="train on this fraction of the dev set (deterministic split) when there is no train split")]
MaxTrain = Annotated[Optional[int], typer.Option(help="train on a fixed random subsample of this many examples")]
MaxEval = Annotated[Optional[int], typer.Option(help="evaluate on the first N dev examples only")]
Epochs = Annotated[int, typer.Option(help="training epochs")]
LearningRate = Annotated[float, typer.Option("--learning-rate", "--lr", help="peak learning rate (linear decay)")]
BatchSize = Annotated[int, typer.Option(help="training batch size")]
MaxLength = Annotated[int, typer.Option(help="maximum tokens per example")]
Seed = Annotated[int, typer.Option(help="random seed (head initialisation, shuffling, dropout)")]
WarmupRatio = Annotated[float, typer.Option(help="fraction of steps for linear warm-up")]
WeightDecay = Annotated[float, typer.Option(help="AdamW weight decay")]
MixedPrecision = Annotated[str, typer.Option(help="auto (bf16/fp16 on GPU, none on CPU), no, fp16, bf16")]
Output = Annotated[Optional[Path], typer.Option("--output", "-o", help="save the final model here")]
Overwrite = Annotated[bool, typer.Option(help="replace a non-empty --output folder")]
ResultFile = Annotated[Optional[Path], typer.Option("--result", help="write the JSON result here (default: print it)")]


def _training(epochs: int, learning_rate: float, batch_size: int, max_length: int, seed: int,
              warmup_ratio: float, weight_decay: float, mixed_precision: str):
    from layerdrop.settings import TrainConfig

    return TrainConfig(epochs=epochs, learning_rate=learning_rate, batch_size=batch_size, max_length=max_length,
                       seed=seed, warmup_ratio=warmup_ratio, weight_decay=weight_decay, mixed_precision=mixed_precision)


def _emit(result: dict, path: Optional[Path]) -> None:
    from accelerate import PartialState

    from layerdrop.experiment import save_result

    if not PartialState().is_main_process:  # one writer under `accelerate launch`
        return
    if path is None:
        typer.echo(json.dumps(result, indent=2))
    else:
        save_result(result, path)
        typer.echo(f"{result['task']}: score {result['score']:.4f} {result['metrics']}; result in {path}")


@app.command()
def run(
    model: Model,
    task: TaskName,
    strategy: Annotated[str, typer.Option(help="layer-selection strategy, or none for the full model; see `layerdrop strategies`")] = "none",
    num_drop: Annotated[int, typer.Option("--num-drop", "-k", help="number of layers to drop (K)")] = 0,
    layers: Annotated[Optional[str], typer.Option(help="explicit layers to drop, e.g. 9,10,11 (implies --strategy explicit)")] = None,
    regime: Annotated[str, typer.Option(help="pretrained (drop, then fine-tune), finetuned (fine-tune, drop, fine-tune again), task-specific, iterative")] = "pretrained",
    iterative_every: Annotated[int, typer.Option(help="iterative regime: drop one layer every N epochs")] = 2,
    model_is_finetuned: Annotated[bool, typer.Option(help="finetuned regime: MODEL is already fine-tuned on the task")] = False,
    threshold: Annotated[Optional[float], typer.Option(help="contribution: drop every layer whose cosine is above this, e.g. 0.925")] = None,
    pooling: Annotated[Optional[str], typer.Option(help="contribution/angular: first, last or mean token(s)")] = None,
    statistic: Annotated[Optional[str], typer.Option(help="parameter: norm or variance")] = None,
    objective: Annotated[Optional[str], typer.Option(help="greedy: score or loss")] = None,
    max_drop_percent: Annotated[Optional[float], typer.Option(help="greedy: stop before the score falls more than this % below the full model's")] = None,
    protect_first: Annotated[bool, typer.Option(help="never drop the bottom layer")] = False,
    protect_last: Annotated[bool, typer.Option(help="never drop the top layer")] = False,
    data: Data = None,
    train_from_dev: TrainFromDev = None,
    max_train_samples: MaxTrain = None,
    max_eval_samples: MaxEval = None,
    epochs: Epochs = 3,
    learning_rate: LearningRate = 2e-5,
    batch_size: BatchSize = 32,
    max_length: MaxLength = 128,
    seed: Seed = 42,
    warmup_ratio: WarmupRatio = 0.0,
    weight_decay: WeightDecay = 0.0,
    mixed_precision: MixedPrecision = "auto",
    output: Output = None,
    overwrite: Overwrite = False,
    result: ResultFile = None,
) -> None:
    """Drop layers from MODEL, fine-tune on a task, evaluate on its dev set; print or write one JSON result."""
    from layerdrop.experiment import Experiment, run_experiment
    from layerdrop.strategies.positional import parse_layer_list

    explicit = parse_layer_list(layers) if layers is not None else None
    experiment = Experiment(
        model=model, task=task, strategy="explicit" if explicit is not None and strategy == "none" else strategy,
        num_drop=num_drop, layers=explicit, regime=regime, data=data, train_from_dev=train_from_dev,
        max_train_samples=max_train_samples, max_eval_samples=max_eval_samples, protect_first=protect_first,
        protect_last=protect_last, iterative_every=iterative_every, model_is_finetuned=model_is_finetuned,
        strategy_options={key: value for key, value in dict(threshold=threshold, pooling=pooling, statistic=statistic,
                          objective=objective, max_drop_percent=max_drop_percent).items() if value is not None},
        training=_training(epochs, learning_rate, batch_size, max_length, seed, warmup_ratio, weight_decay, mixed_precision),
        output=str(output) if output else None, overwrite=overwrite,
    )
    _emit(run_experiment(experiment), result)


@app.command()
def finetune(
    model: Model,
    task: TaskName,
    output: Annotated[Path, typer.Option("--output", "-o", help="save the fine-tuned model here")],
    data: Data = None,
    train_from_dev: TrainFromDev = None,
    max_train_samples: MaxTrain = None,
    max_eval_samples: MaxEval = None,
    epochs: Epochs = 3,
    learning_rate: LearningRate = 2e-5,
    batch_size: BatchSize = 32,
    max_length: MaxLength = 128,
    seed: Seed = 42,
    warmup_ratio: WarmupRatio = 0.0,
    weight_decay: WeightDecay = 0.0,
    mixed_precision: MixedPrecision = "auto",
    overwrite: Overwrite = False,
    result: ResultFile = None,
) -> None:
    """Fine-tune MODEL (as it is, dropped or not) on a task, evaluate it, and save it to --output."""
    from layerdrop.experiment import Experiment, run_experiment

    experiment = Experiment(
        model=model, task=task, data=data, train_from_dev=train_from_dev, max_train_samples=max_train_samples,
        max_eval_samples=max_eval_samples, output=str(output), overwrite=overwrite,
        training=_training(epochs, learning_rate, batch_size, max_length, seed, warmup_ratio, weight_decay, mixed_precision),
    )
    _emit(run_experiment(experiment), result)


@app.command()
def evaluate(
    model: Model,
    task: TaskName,
    data: Data = None,
    max_eval_samples: MaxEval = None,
    batch_size: Annotated[int, typer.Option(help="evaluation batch size")] = 64,
    max_length: MaxLength = 128,
    result: ResultFile = None,
) -> None:
    """Score a fine-tuned MODEL on the task's dev set(s): every metric and the headline score."""
    from layerdrop.architectures import num_layers
    from layerdrop.checkpoint import load_model, load_tokenizer
    from layerdrop.evaluation import dev_sets
    from layerdrop.evaluation import evaluate as evaluate_model
    from layerdrop.experiment import versions
    from layerdrop.glue import get_task
    from layerdrop.settings import TrainConfig

    resolved = get_task(task)
    config = TrainConfig(eval_batch_size=batch_size, max_length=max_length)
    eval_sets = dev_sets(resolved, data, max_eval_samples)
    loaded = load_model(model, head="sequence-classification")
    if loaded.config.num_labels != resolved.num_labels:
        from layerdrop.errors import LayerDropError

        raise LayerDropError(f"{model} has {loaded.config.num_labels} outputs but {resolved.name} needs {resolved.num_labels}; is it fine-tuned on this task?")
    scores = evaluate_model(loaded, load_tokenizer(model), resolved, eval_sets, config)
    _emit({"model": model, "task": resolved.name, "num_layers": num_layers(loaded.config),
           "layer_dropping": getattr(loaded.config, "layer_dropping", None), **scores, "versions": versions()}, result)
