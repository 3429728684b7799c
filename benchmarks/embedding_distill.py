"""Zero-shot STS-B of all-MiniLM-L6-v2 with 2 of 6 layers dropped, before and after embedding distillation.

Scores are Spearman x 100 of the cosine similarity of the two sentences' embeddings (the model's
own pooling: mean, then normalised) against the gold scores, on the STS-B dev set. The students
drop the top, bottom or symmetric 2 layers, or the pair chosen from data: the pair whose removal
keeps the best zero-shot Spearman on the first `--select-pairs` STS-B *train* pairs (never dev).
Each student is then trained so its embeddings match the full model's (MSE), the
sentence-transformers layer-reduction recipe, on unlabelled sentences: every distinct sentence
of the STS-B train split (its scores unused), optionally plus SST-2 train sentences.
Writes benchmarks/results/embedding-distill.json after each student.

Learning rate 1e-3, not sentence-transformers' 1e-4: with ~10k sentences and a few hundred steps,
1e-4 moved the top-2 student from 66.8 to 80.8 only (2 epochs); 1e-3 on 2,000 sentences already gave 82.1.

    python benchmarks/embedding_distill.py [--epochs 2] [--lr 1e-3] [--students top,data] [--data ../shared/glue]
"""

from __future__ import annotations

import argparse
import itertools
import sys
import time
from pathlib import Path

import torch
from accelerate.utils import set_seed

from layerdrop.embeddings import distill_embeddings, load_encoder, sentences_from, sts_spearman, task_sentences
from layerdrop.experiment import versions
from layerdrop.glue import get_task, load_split
from layerdrop.outputs import write_json
from layerdrop.settings import TrainConfig
from layerdrop.strategies import select_layers
from layerdrop.surgery import drop_layers

MODEL = "bundled:all-MiniLM-L6-v2"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=str(Path(__file__).resolve().parents[1].parent / "shared" / "glue"))
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--sst2", type=int, default=0, help="also train on this many SST-2 train sentences")
    parser.add_argument(
        "--select-pairs", type=int, default=500, help="STS-B train pairs that choose the data-driven pair"
    )
    parser.add_argument("--students", default="top,data", help="any of top, bottom, symmetric, data, or layers as 1+2")
    parser.add_argument("--out", default=str(Path(__file__).resolve().parent / "results" / "embedding-distill.json"))
    args = parser.parse_args()
    if not Path(args.data, "STS-B", "train.tsv").is_file():
        sys.exit(f"skipped: STS-B not found under {args.data} (pass --data)")
    started = time.perf_counter()
    task = get_task("stsb")
    train, dev = load_split(task, "train", args.data), load_split(task, "validation", args.data)
    texts = task_sentences(train, task)
    if args.sst2:
        sst2 = get_task("sst2")
        texts += task_sentences(load_split(sst2, "train", args.data).shuffle(seed=0).select(range(args.sst2)), sst2)
    sentences = sentences_from(texts)
    config = TrainConfig(epochs=args.epochs, learning_rate=args.lr, batch_size=args.batch_size)
    teacher = load_encoder(MODEL)
    full = sts_spearman(teacher, dev, task, progress=False)
    print(f"full model: {full:.2f}; {len(sentences)} training sentences", flush=True)

    students: dict[str, list[int]] = {}
    selection = {}
    for name in args.students.split(","):
        if name.replace("+", "").isdigit():  # an explicit pair, e.g. 1+2
            students[name] = [int(i) for i in name.split("+")]
            continue
        if name != "data":
            students[name] = select_layers(name, 6, 2)
            continue
        sample = train.select(range(min(args.select_pairs, len(train))))
        scores = {}
        for pair in itertools.combinations(range(6), 2):
            encoder = load_encoder(MODEL)
            drop_layers(encoder.model, list(pair))
            scores[pair] = sts_spearman(encoder, sample, task, progress=False)
        best = max(scores, key=scores.get)
        selection = {str(list(pair)): score for pair, score in scores.items()}
        students[f"data {list(best)}"] = list(best)
        print(f"pair chosen on {len(sample)} train pairs: {list(best)} ({scores[best]:.2f})", flush=True)

    runs = [dict(student="full", dropped=[], spearman=full, retained=1.0)]
    for name, layers in students.items():
        set_seed(config.seed)
        student = load_encoder(MODEL)
        drop_layers(
            student.model,
            layers,
            strategy={"name": name.split()[0] if not name[0].isdigit() else "explicit", "num_drop": 2},
        )
        before = sts_spearman(student, dev, task, progress=False)
        stats = distill_embeddings(student, teacher, sentences, config)
        after = sts_spearman(student, dev, task, progress=False)
        runs.append(
            dict(
                student=name,
                dropped=layers,
                spearman_before=before,
                spearman=after,
                retained_before=before / full,
                retained=after / full,
                train_time_s=stats.train_time_s,
                final_loss=stats.final_loss,
            )
        )
        print(
            f"{name:16s} {layers}: {before:.2f} -> {after:.2f} "
            f"({100 * before / full:.1f}% -> {100 * after / full:.1f}% "
            f"of full; {stats.train_time_s:.0f} s)",
            flush=True,
        )
        write_json(
            args.out,
            {
                "model": MODEL,
                "metric": "STS-B dev Spearman x 100 of cosine similarity, zero-shot",
                "training_sentences": len(sentences),
                "sources": ["STS-B train (both sides, scores unused)"]
                + ([f"SST-2 train, {args.sst2} random sentences (seed 0)"] if args.sst2 else []),
                "training": config.model_dump(),
                "selection_on_train_pairs": selection,
                "runs": runs,
                "wall_time_s": time.perf_counter() - started,
                "torch_threads": torch.get_num_threads(),
                "versions": versions(),
            },
            overwrite=True,
        )


if __name__ == "__main__":
    main()
