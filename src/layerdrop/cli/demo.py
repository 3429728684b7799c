"""`layerdrop demo`: drop layers, win the quality back, and measure the speed, on an embedded default with no network.

The bundled all-MiniLM-L6-v2 (a real pre-trained 6-layer BERT) is fine-tuned on the built-in
toy-sentiment task: the teacher. From it, 2 of 6 layers are dropped at the top (the paper's best
choice) and at the bottom (its worst), in the paper's "fine-tuned" regime, and each smaller model
gets its quality back twice, by plain fine-tuning and by distillation from the teacher, with the
same budget. Last, the speed of a 4-layer model is measured beside the 6-layer one, next to the
ideal ratio from FLOPs.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from layerdrop.cli import app

if TYPE_CHECKING:
    from rich.table import Table

MODEL = "bundled:all-MiniLM-L6-v2"
TASK = "toy-sentiment"
STRATEGIES = {"top": "top 2", "bottom": "bottom 2"}  # two cuts, not more: the whole job stays under 5 minutes
# Teacher: 3 epochs at 1e-4 (this sentence encoder's new head barely moves at the paper's 2e-5). Recovery: 4 epochs
# at 2e-4 from the teacher's weights, and for distillation the hidden-state loss too (bottom-2 model: 98.7% of the
# teacher without it, 99.2% with it; at 3 epochs, 97.2% with it): measured on this machine, see README.
TEACHER_TRAINING = {"epochs": 3, "learning_rate": 1e-4}
RECOVERY_TRAINING = {"epochs": 4, "learning_rate": 2e-4}
DISTILLATION = {"hidden_weight": 1.0}


@app.command()
def demo(
    output: Annotated[
        Path, typer.Option("--output", "-o", help="folder for the results, the teacher and the distilled top-2 model")
    ] = Path("out/demo"),
) -> None:
    """Fine-tune the bundled all-MiniLM-L6-v2, drop 2 of its 6 layers, recover them, measure the speed-up.

    The toy task trains the teacher; the top and the bottom 2 layers are dropped from it, and each
    smaller model is recovered by fine-tuning and by distillation. One table says what each kept.
    """
    from rich.console import Console

    from layerdrop.experiment import RunConfig, run_experiment
    from layerdrop.outputs import check_output, write_json

    check_output(output, "dir", overwrite=True, what="--output")  # before minutes of training, not after
    teacher_dir = output / "teacher"
    steps = 1 + 2 * len(STRATEGIES)
    _step(1, steps, "the teacher: all-MiniLM-L6-v2 fine-tuned on the toy task")
    teacher = run_experiment(RunConfig(model=MODEL, task=TASK, training=TEACHER_TRAINING), teacher_dir, overwrite=True)
    write_json(output / "teacher.json", teacher, overwrite=True)
    rows = []
    for index, (strategy, label) in enumerate(STRATEGIES.items()):
        recovered = {}
        for offset, distill in enumerate((False, True)):
            _step(
                2 + 2 * index + offset, steps, f"{label} dropped, then {'distilled' if distill else 'fine-tuned again'}"
            )
            config = RunConfig(
                model=str(teacher_dir),
                task=TASK,
                strategy=strategy,
                strategy_options={"num_drop": 2},
                regime="finetuned",
                model_is_finetuned=True,
                training=RECOVERY_TRAINING,
                distill=distill,
                distillation=DISTILLATION if distill else {},
            )
            keep = output / "minilm-top2-distilled" if distill and strategy == "top" else None
            recovered[distill] = run_experiment(config, keep, overwrite=True)
            write_json(
                output / f"{strategy}2-{'distilled' if distill else 'finetuned'}.json",
                recovered[distill],
                overwrite=True,
            )
        rows.append((label, recovered[False], recovered[True]))
    speed = _speed(teacher_dir, output / "minilm-top2-distilled")
    write_json(output / "speed.json", speed, overwrite=True)
    Console().print(_table(teacher, rows, speed))
    typer.echo(
        f"results in {output}/*.json; the teacher in {teacher_dir}; "
        f"the distilled top-2 model in {output / 'minilm-top2-distilled'}"
    )


def _step(number: int, total: int, what: str) -> None:
    typer.echo(f"[{number}/{total}] {what}", err=True)


def _speed(full: Path, smaller: Path) -> dict[str, Any]:
    """Forward-pass speed of the 6- and the 4-layer model (batch 32 x 64 tokens, interleaved) beside the FLOPs ratio."""
    from layerdrop.bench import run_bench
    from layerdrop.settings import BenchSettings

    typer.echo("measuring inference speed", err=True)
    report = run_bench(
        [str(full), str(smaller)], BenchSettings(batch_sizes=[32], seq_lens=[64], repeats=10, warmup=2, memory=False)
    )
    cell = report.models[1].cells[0]
    return {
        "speedup": cell.speedup,
        "ideal": cell.ideal_speedup,
        "full_ms": report.models[0].cells[0].median_ms,
        "smaller_ms": cell.median_ms,
        "threads": report.threads,
        "device": report.device_name,
    }


def _table(teacher: dict[str, Any], rows: list[tuple[str, dict, dict]], speed: dict[str, Any]) -> Table:
    from rich import box
    from rich.table import Table

    full = teacher["score"]
    table = Table(
        box=box.SIMPLE_HEAD,
        title=f"all-MiniLM-L6-v2 on {TASK}: {teacher['train_examples']} train, "
        f"{teacher['eval_examples']['validation']} dev sentences",
    )
    for column in (
        "model",
        "layers",
        "params",
        "after\ndrop",
        "fine-\ntuned",
        "%\nfull",
        "dis-\ntilled",
        "%\nfull",
        "speed-\nup",
    ):  # narrow headers: the table fits 80 columns, the width rich gives a log
        table.add_column(column, justify="left" if column == "model" else "right", no_wrap=True)
    speedup = f"{speed['speedup']:.2f}×"
    table.add_row(
        "teacher",
        str(teacher["num_layers"]),
        f"{teacher['params'] / 1e6:.1f}M",
        "",
        f"{100 * full:.1f}",
        "100.0",
        "",
        "",
        "1.00×",
    )
    for label, plain, distilled in rows:
        table.add_row(
            label,
            str(distilled["num_layers"]),
            f"{distilled['params'] / 1e6:.1f}M",
            f"{100 * distilled['stages']['dropped_before_retraining']['score']:.1f}",
            f"{100 * plain['score']:.1f}",
            f"{100 * plain['score'] / full:.1f}",
            f"{100 * distilled['score']:.1f}",
            f"{100 * distilled['score'] / full:.1f}",
            speedup,
        )
    table.caption_justify = "left"
    table.caption = (
        f"dev accuracy %; teacher: the full model fine-tuned; recovery: {RECOVERY_TRAINING['epochs']} epochs "
        f"at lr {RECOVERY_TRAINING['learning_rate']:g} from the teacher's weights; "
        f"speed-up: batch 32 × 64 tokens, {speed['threads']} threads, median of 10 "
        f"(ideal, from FLOPs: {speed['ideal']:.2f}×)"
    )
    return table
