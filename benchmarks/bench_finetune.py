"""Fine-tuning throughput: the plain Hugging Face Trainer recipe of run_glue.py vs layerdrop.

Both fine-tune the same model on the same RTE training data in this one process, with the same
hyper-parameters (the paper's: lr 2e-5, batch 32, max length 128, linear schedule, seed 42).
The Trainer pads every example to 128 tokens, as run_glue.py does by default; layerdrop pads
each batch to its longest example and groups batches by length. Prints train examples/s of
both, their ratio, and both dev accuracies.

    python benchmarks/bench_finetune.py [--epochs 3] [--data ../shared/glue]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from transformers import AutoTokenizer, Trainer, TrainingArguments, set_seed

from layerdrop.checkpoint import load_model, resolve_source
from layerdrop.evaluation import evaluate
from layerdrop.glue import compute_metrics, get_task, load_split
from layerdrop.settings import TrainConfig
from layerdrop.training import finetune

MODEL = "bundled:all-MiniLM-L6-v2"


def trainer_recipe(train, dev, task, config: TrainConfig) -> tuple[float, float]:
    """run_glue.py's way: pad to max_length in preprocessing, then Trainer.train(). Returns (examples/s, accuracy)."""
    tokenizer = AutoTokenizer.from_pretrained(resolve_source(MODEL))

    def preprocess(batch):
        encoded = tokenizer(
            *(batch[c] for c in task.text_columns), padding="max_length", max_length=config.max_length, truncation=True
        )
        encoded["labels"] = batch["label"]
        return encoded

    columns = [*task.text_columns, "label"]
    train_enc = train.map(preprocess, batched=True, remove_columns=columns)
    dev_enc = dev.map(preprocess, batched=True, remove_columns=columns)
    set_seed(config.seed)
    model = load_model(MODEL, head="sequence-classification", num_labels=task.num_labels)
    with tempfile.TemporaryDirectory() as tmp:
        args = TrainingArguments(
            output_dir=tmp,
            per_device_train_batch_size=config.batch_size,
            per_device_eval_batch_size=config.eval_batch_size,
            learning_rate=config.learning_rate,
            num_train_epochs=config.epochs,
            seed=config.seed,
            save_strategy="no",
            eval_strategy="no",
            report_to="none",
            logging_strategy="no",
            disable_tqdm=False,
            use_cpu=not torch.cuda.is_available(),
        )
        trainer = Trainer(model=model, args=args, train_dataset=train_enc)
        start = time.perf_counter()
        trainer.train()
        elapsed = time.perf_counter() - start
        logits = trainer.predict(dev_enc).predictions
    accuracy = compute_metrics(task, np.argmax(logits, axis=-1), dev["label"])["accuracy"]
    return len(train) * config.epochs / elapsed, accuracy


def layerdrop_recipe(train, dev, task, config: TrainConfig) -> tuple[float, float]:
    tokenizer = AutoTokenizer.from_pretrained(resolve_source(MODEL))
    set_seed(config.seed)
    model = load_model(MODEL, head="sequence-classification", num_labels=task.num_labels)
    stats = finetune(model, tokenizer, task, train, config)
    return stats.train_examples_per_s, evaluate(model, tokenizer, task, {"validation": dev}, config)["metrics"][
        "accuracy"
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=str(Path(__file__).resolve().parents[1].parent / "shared" / "glue"))
    parser.add_argument("--epochs", type=int, default=3)
    args = parser.parse_args()
    if not Path(args.data, "RTE", "train.tsv").is_file():
        sys.exit(f"skipped: RTE not found under {args.data} (pass --data)")
    task = get_task("rte")
    train, dev = load_split(task, "train", args.data), load_split(task, "validation", args.data)
    config = TrainConfig(epochs=args.epochs)
    print(
        f"RTE: {len(train)} train, {len(dev)} dev; all-MiniLM-L6-v2; {args.epochs} epochs; "
        f"torch threads {torch.get_num_threads()}"
    )
    trainer_speed, trainer_acc = trainer_recipe(train, dev, task, config)
    ours_speed, ours_acc = layerdrop_recipe(train, dev, task, config)
    print(f"Trainer (pad to 128):          {trainer_speed:7.1f} train examples/s, dev accuracy {trainer_acc:.4f}")
    print(f"layerdrop (dynamic, grouped):  {ours_speed:7.1f} train examples/s, dev accuracy {ours_acc:.4f}")
    print(f"speed-up: {ours_speed / trainer_speed:.2f}x")


if __name__ == "__main__":
    main()
