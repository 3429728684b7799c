"""Cost of a distillation epoch against a plain fine-tuning epoch of the same student.

all-MiniLM-L6-v2 with its top 2 of 6 layers dropped (the student) learns on a fixed random
subsample of SST-2 from the full 6-layer model (the teacher), four ways, in this one process,
interleaved and repeated (the median is reported):

- plain: `finetune` with the task loss;
- cached: `distill`, the teacher run once over the training set before the first step
  (its pass is timed separately, and counted both per epoch and amortised over `--epochs`);
- cached + hidden: the same with the hidden-state loss (teacher hidden states stored in fp16);
- naive: the teacher run on every batch of every epoch, as a distillation loop without a cache does.

Each epoch is timed around the whole `finetune` call (tokenizing included, alike for all), by the
wall clock or, with `--clock cpu`, by this process's CPU time, which other jobs on a shared
machine disturb far less.

The teacher's weights do not change its cost, so it is the pre-trained model with a new head
(no fine-tuning needed for a timing). Writes benchmarks/results/bench_distill.json.

    python benchmarks/bench_distill.py [--train 2000] [--repeats 3] [--epochs 3] [--clock wall|cpu] [--data DIR]
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch
from accelerate.utils import set_seed

from layerdrop.checkpoint import load_model, load_tokenizer
from layerdrop.distillation import DistillationObjective, distillation_loss, layer_map
from layerdrop.settings import DistillConfig
from layerdrop.experiment import versions
from layerdrop.glue import get_task, load_split
from layerdrop.outputs import write_json
from layerdrop.settings import TrainConfig
from layerdrop.surgery import drop_layers
from layerdrop.training import finetune, model_inputs

MODEL = "bundled:all-MiniLM-L6-v2"


CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}
clock = CLOCKS["wall"]


class TimedPrepare(DistillationObjective):
    """The library's objective, with its one teacher pass timed."""

    def prepare(self, data: Any) -> None:
        start = clock()
        super().prepare(data)
        self.prepare_s = clock() - start


class NaiveDistillation(DistillationObjective):
    """The same loss with the teacher run on every batch instead of looked up."""

    def prepare(self, data: Any) -> None:
        self.prepare_s = 0.0

    def __call__(self, outputs: Any, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        with torch.inference_mode():
            teacher = self.teacher(**model_inputs(batch), output_hidden_states=bool(self.layers))
        hidden = [teacher.hidden_states[layer + 1] for layer in self.layers]
        return distillation_loss(
            outputs.logits,
            teacher.logits.clone(),
            batch.get("labels"),
            alpha=self.config.alpha,
            temperature=self.config.temperature,
            student_hidden=outputs.hidden_states[1:] if self.layers else (),
            teacher_hidden=[h.clone() for h in hidden],
            attention_mask=batch["attention_mask"],
            hidden_weight=self.config.hidden_weight,
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=str(Path(__file__).resolve().parents[1].parent / "shared" / "glue"))
    parser.add_argument("--train", type=int, default=2000, help="SST-2 training sentences (fixed random subsample)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=3, help="epochs over which the one teacher pass is amortised")
    parser.add_argument(
        "--clock",
        choices=CLOCKS,
        default="wall",
        help="wall time, or this process's CPU time (steadier while other jobs share the cores)",
    )
    parser.add_argument("--out", default=str(Path(__file__).resolve().parent / "results" / "bench_distill.json"))
    args = parser.parse_args()
    global clock
    clock = CLOCKS[args.clock]
    if not Path(args.data, "SST-2", "train.tsv").is_file():
        sys.exit(f"skipped: SST-2 not found under {args.data} (pass --data)")
    task = get_task("sst2")
    train = load_split(task, "train", args.data).shuffle(seed=0).select(range(args.train))
    tokenizer = load_tokenizer(MODEL)
    set_seed(0)
    teacher = load_model(MODEL, head="sequence-classification", num_labels=2).eval()
    student0 = drop_layers(copy.deepcopy(teacher), [4, 5], strategy={"name": "top", "num_drop": 2})
    layers = layer_map(student0.config, teacher.config)
    config = TrainConfig(epochs=1, learning_rate=1e-4)
    kinds = {
        "plain": None,
        "cached": lambda: TimedPrepare(teacher, tokenizer, DistillConfig(), progress=False),
        "cached_hidden": lambda: TimedPrepare(
            teacher, tokenizer, DistillConfig(hidden_weight=1.0), layers, progress=False
        ),
        "naive": lambda: NaiveDistillation(teacher, tokenizer, DistillConfig(), progress=False),
        "naive_hidden": lambda: NaiveDistillation(
            teacher, tokenizer, DistillConfig(hidden_weight=1.0), layers, progress=False
        ),
    }
    times: dict[str, list[float]] = {k: [] for k in kinds}
    teacher_pass: dict[str, list[float]] = {k: [] for k in kinds}
    for repeat in range(args.repeats):
        for kind, make in kinds.items():
            objective = make() if make else None
            student = copy.deepcopy(student0)
            start = clock()
            finetune(student, tokenizer, task, train, config, objective=objective, progress=False)
            total = clock() - start
            pass_s = getattr(objective, "prepare_s", 0.0)
            times[kind].append(total - pass_s)
            teacher_pass[kind].append(pass_s)
            print(
                f"repeat {repeat + 1} {kind:14s} epoch {total - pass_s:6.1f} s + teacher pass {pass_s:5.1f} s",
                flush=True,
            )
    epoch = {k: statistics.median(v) for k, v in times.items()}
    passes = {k: statistics.median(v) for k, v in teacher_pass.items()}
    plain = epoch["plain"]
    ratios = {}
    for kind in kinds:
        ratios[kind] = {
            "one_epoch_incl_teacher_pass": (epoch[kind] + passes[kind]) / plain,
            f"amortised_over_{args.epochs}_epochs": (epoch[kind] + passes[kind] / args.epochs) / plain,
            "epoch_excl_teacher_pass": epoch[kind] / plain,
        }
    result = {
        "model": MODEL,
        "student": "top 2 of 6 dropped",
        "task": "sst2",
        "train_examples": args.train,
        "training": config.model_dump(),
        "repeats": args.repeats,
        "clock": args.clock,
        "torch_threads": torch.get_num_threads(),
        "epoch_s_median": epoch,
        "teacher_pass_s_median": passes,
        "ratio_to_plain_epoch": ratios,
        "epoch_s_all": times,
        "versions": versions(),
    }
    write_json(args.out, result, overwrite=True)
    print(f"\nSST-2 {args.train} sentences, batch 32, median of {args.repeats}; plain epoch {plain:.1f} s")
    print(f"{'kind':15s} {'epoch s':>8s} {'teacher s':>9s} {'1 epoch':>8s} {f'amort. {args.epochs}':>9s}")
    for kind in kinds:
        r = ratios[kind]
        print(
            f"{kind:15s} {epoch[kind]:8.1f} {passes[kind]:9.1f} {r['one_epoch_incl_teacher_pass']:8.2f}x "
            f"{r[f'amortised_over_{args.epochs}_epochs']:8.2f}x"
        )


if __name__ == "__main__":
    main()
