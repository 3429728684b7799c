"""Recovering what dropping 2 of 6 layers costs all-MiniLM-L6-v2 on SST-2 and STS-B, by distillation.

For each task: the teacher is the full model fine-tuned with the settings of `glue_minilm.py`
(lr 1e-4, batch 32, max length 128, seed 42; SST-2 a fixed random 8,000 of its training
sentences x 1 epoch, STS-B all 5,749 pairs x 3 epochs). Each student drops 2 layers (top,
bottom, symmetric) and is trained on the same data with the same settings (`--distill-epochs`
and `--plain-epochs` may give students more epochs), in one of four ways:

- pretrained-plain: dropped from the pre-trained model, fine-tuned on the labels (the paper's recipe,
  `glue_minilm.py`'s top-2 figures);
- pretrained-distill: the same student, distilled from the teacher;
- finetuned-plain: dropped from the fine-tuned teacher, fine-tuned again on the labels (the paper's Table 5 regime);
- finetuned-distill: dropped from the fine-tuned teacher, then distilled from it.

Distillation uses `DistillConfig()`'s defaults unless flags say otherwise. Each run's dev score,
% of the teacher's, and training time (teacher pass included) go to
benchmarks/results/distill-minilm-<task><suffix>.json, rewritten after every run. `--teacher-dir`
keeps the fine-tuned teacher there and reuses it on the next invocation.

    python benchmarks/distill_minilm.py [--tasks sst2,stsb] [--runs top:finetuned-distill,...] [--data ../shared/glue]
"""

from __future__ import annotations

import argparse
import copy
import sys
import time
from pathlib import Path
from typing import Any

import torch
from accelerate.utils import set_seed

from layerdrop.architectures import parameter_count
from layerdrop.checkpoint import load_model, load_tokenizer, save_model
from layerdrop.distillation import distill
from layerdrop.settings import DistillConfig
from layerdrop.evaluation import evaluate
from layerdrop.experiment import versions
from layerdrop.glue import get_task, load_split
from layerdrop.outputs import write_json
from layerdrop.settings import TrainConfig
from layerdrop.strategies import select_layers
from layerdrop.surgery import drop_layers
from layerdrop.training import finetune

MODEL = "bundled:all-MiniLM-L6-v2"
SETTINGS = {"sst2": {"train": 8000, "epochs": 1}, "stsb": {"train": None, "epochs": 3}}
WAYS = ("pretrained-plain", "pretrained-distill", "finetuned-plain", "finetuned-distill")
RUNS = ("top:finetuned-plain", "top:finetuned-distill", "symmetric:finetuned-distill", "bottom:finetuned-distill")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=str(Path(__file__).resolve().parents[1].parent / "shared" / "glue"))
    parser.add_argument("--tasks", default="sst2,stsb")
    parser.add_argument("--runs", default=",".join(RUNS), help=f"STRATEGY:WAY, ways: {', '.join(WAYS)}")
    parser.add_argument("--distill-epochs", type=int, default=None, help="epochs of distillation (default: the task's)")
    parser.add_argument("--plain-epochs", type=int, default=None, help="epochs of plain students (default: the task's)")
    parser.add_argument("--alpha", type=float, default=DistillConfig().alpha)
    parser.add_argument("--temperature", type=float, default=DistillConfig().temperature)
    parser.add_argument("--hidden-weight", type=float, default=DistillConfig().hidden_weight)
    parser.add_argument(
        "--teacher-dir", default=None, help="save the fine-tuned teachers here (<dir>/<task>), reuse them"
    )
    parser.add_argument("--suffix", default="", help="appended to the result file's name")
    parser.add_argument("--out", default=str(Path(__file__).resolve().parent / "results"))
    args = parser.parse_args()
    if not Path(args.data, "SST-2", "train.tsv").is_file():
        sys.exit(f"skipped: GLUE files not found under {args.data} (pass --data)")
    planned = [tuple(run.split(":")) for run in args.runs.split(",")]
    if bad := [run for run in planned if len(run) != 2 or run[1] not in WAYS]:
        sys.exit(f"bad run {':'.join(bad[0])!r}: give STRATEGY:WAY, ways: {', '.join(WAYS)}")
    distill_config = DistillConfig(alpha=args.alpha, temperature=args.temperature, hidden_weight=args.hidden_weight)
    for name in args.tasks.split(","):
        run_task(name, planned, distill_config, args)


def run_task(name: str, planned: list[tuple[str, str]], distill_config: DistillConfig, args: Any) -> None:
    started = time.perf_counter()
    task, settings, tokenizer = get_task(name), SETTINGS[name], load_tokenizer(MODEL)
    train = load_split(task, "train", args.data)
    if settings["train"]:
        train = train.shuffle(seed=0).select(range(settings["train"]))
    dev = {"validation": load_split(task, "validation", args.data)}
    config = TrainConfig(learning_rate=1e-4, epochs=settings["epochs"])
    distill_training = config.model_copy(update={"epochs": args.distill_epochs or config.epochs})
    plain_training = config.model_copy(update={"epochs": args.plain_epochs or config.epochs})

    def pretrained() -> Any:
        set_seed(config.seed)  # the new head drawn as `layerdrop run` draws it
        return load_model(MODEL, head="sequence-classification", num_labels=task.num_labels)

    def score(model: Any) -> float:
        return evaluate(model, tokenizer, task, dev, config)["score"]

    saved = Path(args.teacher_dir, name) if args.teacher_dir else None
    if saved is not None and saved.is_dir():
        teacher, teacher_time = load_model(str(saved)), None
    else:
        teacher = pretrained()
        teacher_time = finetune(teacher, tokenizer, task, train, config).train_time_s
        if saved is not None:
            save_model(teacher, saved, tokenizer=tokenizer)
    teacher_score = score(teacher)
    print(f"{name} teacher {teacher_score:.4f} (trained in {teacher_time} s)", flush=True)
    runs = [
        {
            "student": "full",
            "way": "teacher",
            "score": teacher_score,
            "retained": 1.0,
            "train_time_s": teacher_time,
            "params": parameter_count(teacher),
        }
    ]
    for strategy, way in planned:
        layers = select_layers(strategy, 6, 2)
        start_from, method = way.split("-")
        student = copy.deepcopy(teacher) if start_from == "finetuned" else pretrained()
        drop_layers(student, layers, strategy={"name": strategy, "num_drop": 2})
        before = score(student) if start_from == "finetuned" else None
        if method == "plain":
            stats = finetune(student, tokenizer, task, train, plain_training)
        else:
            stats = distill(student, teacher, tokenizer, task, train, distill_training, distill_config)
        result = score(student)
        runs.append(
            {
                "student": strategy,
                "dropped": layers,
                "way": way,
                "epochs": stats.epochs,
                "score": result,
                "retained": result / teacher_score,
                "score_before_training": before,
                "train_time_s": stats.train_time_s,
                "params": parameter_count(student),
            }
        )
        print(
            f"{name} {strategy:9s} {way:18s} {stats.epochs} epoch(s): {result:.4f} = "
            f"{100 * result / teacher_score:5.2f}% of the teacher (before training {before}; "
            f"{stats.train_time_s:.0f} s)",
            flush=True,
        )
        write_json(
            Path(args.out) / f"distill-minilm-{name}{args.suffix}.json",
            {
                "model": MODEL,
                "task": name,
                "train_examples": len(train),
                "train_subsample": {"examples": settings["train"], "seed": 0} if settings["train"] else None,
                "training": config.model_dump(),
                "distill_epochs": distill_training.epochs,
                "plain_epochs": plain_training.epochs,
                "distillation": distill_config.model_dump(),
                "runs": runs,
                "wall_time_s": time.perf_counter() - started,
                "torch_threads": torch.get_num_threads(),
                "versions": versions(),
            },
            overwrite=True,
        )


if __name__ == "__main__":
    main()
