"""`layerdrop distill`: win back what dropping cost by learning from the uncut, fine-tuned model."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from layerdrop.cli import app
from layerdrop.cli.options import ModelArg, Output, Overwrite, ResultFile, settings_options
from layerdrop.experiment import RunConfig
from layerdrop.settings import DistillConfig, TrainConfig

# Embedding distillation learns a regression on pooled vectors from scratch signal: it needs a far higher
# learning rate than fine-tuning (measured on all-MiniLM-L6-v2: 1e-4 reached 93% of the teacher, 1e-3 97%).
EMBEDDING_TRAINING = {"learning_rate": 1e-3, "epochs": 2}


@app.command()
@settings_options(DistillConfig, into="distillation", panel="Distillation")
@settings_options(
    TrainConfig,
    into="training",
    optional=True,
    panel="Training (defaults: fine-tuning's; --embeddings: lr 1e-3, 2 epochs)",
)
@settings_options(
    RunConfig,
    into="settings",
    include={"task", "data", "train_from_dev", "max_train_samples", "max_eval_samples"},
    optional=True,
)
def distill(
    model: ModelArg,
    teacher: Annotated[
        str, typer.Option(help="the uncut model, fine-tuned on the task (or, with --embeddings, the sentence encoder)")
    ],
    output: Output,
    embeddings: Annotated[
        bool,
        typer.Option("--embeddings", help="match the teacher's pooled sentence embeddings (MSE) on unlabelled text"),
    ] = False,
    text_file: Annotated[
        Path | None, typer.Option(help="--embeddings: train on these sentences, one per line (instead of --task)")
    ] = None,
    overwrite: Overwrite = False,
    result: ResultFile = None,
    settings: dict[str, Any] | None = None,
    training: dict[str, Any] | None = None,
    distillation: dict[str, Any] | None = None,
) -> None:
    """Distil TEACHER into MODEL (a dropped or smaller model of the same family) and save it to --output.

    On a task: alpha x task loss + (1 - alpha) x T^2 x KL of softened logits (MSE for regression), plus an optional
    hidden-state loss between each kept layer and the teacher layer it came from. With --embeddings: the
    sentence-transformers layer-reduction recipe, on --text-file or a task's training sentences.
    """
    from layerdrop.errors import LayerDropError
    from layerdrop.outputs import check_output

    if embeddings:
        if distillation != DistillConfig().model_dump():
            raise LayerDropError(
                "--alpha, --temperature and --hidden-weight go with task distillation, not --embeddings"
            )
        config = TrainConfig.model_validate({**EMBEDDING_TRAINING, **training})
    else:
        if text_file is not None:
            raise LayerDropError("--text-file goes with --embeddings; task distillation trains on --task")
        config = TrainConfig.model_validate(training)
    if text_file is None and "task" not in settings:
        raise LayerDropError("give --task (or, with --embeddings, --text-file) to train on")
    check_output(output, "dir", overwrite, what="--output")
    if result is not None:
        check_output(result, "file", overwrite, what="--result")
    run = (
        _embeddings(model, teacher, text_file, settings, config)
        if embeddings
        else _task(model, teacher, settings, config, distillation)
    )
    student, tokenizer, record = run
    from layerdrop.checkpoint import save_model
    from layerdrop.experiment import versions
    from layerdrop.outputs import write_json

    student.name_or_path = model
    save_model(student, output, tokenizer=tokenizer, overwrite=overwrite, extra_files_from=model)
    record = {"model": model, "teacher": teacher, **record, "training": config.model_dump(), "versions": versions()}
    if result is not None:
        write_json(result, record, overwrite, what="--result")
    typer.echo(_summary(record) + f"; saved to {output}")


def _task(
    model: str, teacher_name: str, settings: dict[str, Any], training: TrainConfig, distillation: dict[str, Any]
) -> tuple[Any, Any, dict]:
    """Task distillation: the student (a new head if it has none) learns from the fine-tuned teacher."""
    from accelerate.utils import set_seed

    from layerdrop.checkpoint import load_model, load_tokenizer
    from layerdrop.distillation import distill as distil
    from layerdrop.errors import LayerDropError
    from layerdrop.evaluation import evaluate
    from layerdrop.glue import get_task

    run = RunConfig.model_validate({**settings, "model": model, "training": training})
    options = DistillConfig.model_validate(distillation)
    task = get_task(run.task)
    train, eval_sets, data = run.load_data(task)
    teacher = load_model(teacher_name, head="sequence-classification", trained_head=True)
    if teacher.config.num_labels != task.num_labels:
        raise LayerDropError(
            f"teacher {teacher_name!r} has {teacher.config.num_labels} outputs but {task.name} needs {task.num_labels}"
        )
    set_seed(training.seed)
    student = load_model(model, head="sequence-classification", num_labels=task.num_labels)
    student.config.id2label, student.config.label2id = teacher.config.id2label, teacher.config.label2id
    tokenizer = load_tokenizer(model)
    stats = distil(student, teacher, tokenizer, task, train, training, options)
    scored, teacher_scored = (evaluate(m, tokenizer, task, eval_sets, training) for m in (student, teacher))
    record = {
        "task": task.name,
        "metrics": scored["metrics"],
        "score": scored["score"],
        "teacher_score": teacher_scored["score"],
        "retained": scored["score"] / teacher_scored["score"] if teacher_scored["score"] else None,
        "distillation": options.model_dump(),
        "train": stats.as_dict(),
        "data": data,
        "eval_examples": scored["eval_examples"],
    }
    return student, tokenizer, record


def _embeddings(
    model: str, teacher_name: str, text_file: Path | None, settings: dict[str, Any], training: TrainConfig
) -> tuple[Any, Any, dict]:
    """Embedding distillation on unlabelled sentences; zero-shot STS-B before and after when the task is STS-B."""
    from layerdrop.embeddings import distill_embeddings, load_encoder, sentences_from, sts_spearman, task_sentences
    from layerdrop.errors import LayerDropError
    from layerdrop.glue import dev_sets, get_task, load_split

    task = get_task(settings["task"]) if "task" in settings else None
    if text_file is not None:
        if task is not None:
            raise LayerDropError("give either --text-file or --task for the sentences, not both")
        if not text_file.is_file():
            raise LayerDropError(f"no text file at {str(text_file)!r}")
        sentences = sentences_from(text_file.read_text(encoding="utf-8").splitlines())
    else:
        split = load_split(task, "train", settings.get("data"))
        sentences = sentences_from(task_sentences(split, task))
    student, teacher = load_encoder(model), load_encoder(teacher_name)
    scores = {}
    similarity = task is not None and task.is_regression and len(task.text_columns) == 2
    if similarity:
        dev = dev_sets(task, settings.get("data"), settings.get("max_eval_samples"))[task.dev_splits[0]]
        scores = {
            "teacher_spearman": sts_spearman(teacher, dev, task),
            "spearman_before": sts_spearman(student, dev, task),
        }
    stats = distill_embeddings(student, teacher, sentences, training)
    if similarity:
        scores["spearman"] = sts_spearman(student, dev, task)
        scores["retained"] = scores["spearman"] / scores["teacher_spearman"]
    record = {
        "embeddings": True,
        "sentences": len(sentences),
        **({"task": task.name} if task else {"text_file": str(text_file)}),
        **scores,
        "train": stats.as_dict(),
    }
    return student.model, student.tokenizer, record


def _summary(record: dict[str, Any]) -> str:
    if "spearman" in record:
        return (
            f"zero-shot {record['task']} Spearman {record['spearman_before']:.2f} -> {record['spearman']:.2f} "
            f"(teacher {record['teacher_spearman']:.2f}, {100 * record['retained']:.1f}% retained)"
        )
    if "score" in record:
        return (
            f"{record['task']}: score {record['score']:.4f} "
            f"(teacher {record['teacher_score']:.4f}, {100 * record['retained']:.1f}% retained)"
        )
    return f"distilled on {record['sentences']:,} sentences"
