"""Mean tokens per example of every built-in task, behind the cost model's table (`layerdrop.cost.TASK_SIZES`).

Counts WordPiece tokens of bert-base-uncased's vocabulary (all-MiniLM-L6-v2 ships the same one),
[CLS] and [SEP] included, truncated at 128 tokens (the paper's max length) as `layerdrop run`
does. The train split is measured where ../shared/glue has it, else the dev split (same source
distribution); tasks with no local files are left out. Writes benchmarks/results/task_tokens.json.

    python benchmarks/task_tokens.py [--data ../shared/glue]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from layerdrop.checkpoint import load_tokenizer
from layerdrop.glue import get_task, load_split
from layerdrop.glue.data import available_splits
from layerdrop.glue.tasks import TASKS

MAX_LENGTH = 128


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[1].parent / "shared" / "glue")
    parser.add_argument("--output", type=Path, default=Path(__file__).parent / "results" / "task_tokens.json")
    args = parser.parse_args()
    tokenizer = load_tokenizer("bundled:all-MiniLM-L6-v2")
    found = {}
    for name in TASKS:
        task = get_task(name)
        data = None if name == "toy-sentiment" else args.data
        splits = available_splits(task, data)
        if not splits:
            print(name, "no local data: not measured", flush=True)
            continue
        split = "train" if "train" in splits else splits[0]
        dataset = load_split(task, split, data)
        encoded = tokenizer(*(list(dataset[c]) for c in task.text_columns), truncation=True, max_length=MAX_LENGTH)
        lengths = np.array([len(ids) for ids in encoded["input_ids"]])
        found[name] = {
            "split": split,
            "examples": len(lengths),
            "mean_tokens": round(float(lengths.mean()), 1),
            "truncated_share": round(float((lengths >= MAX_LENGTH).mean()), 4),
        }
        print(name, found[name], flush=True)
    args.output.write_text(
        json.dumps(
            {"tokenizer": "bert-base-uncased WordPiece (all-MiniLM-L6-v2)", "max_length": MAX_LENGTH, "tasks": found},
            indent=2,
        )
        + "\n"
    )


if __name__ == "__main__":
    main()
