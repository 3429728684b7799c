"""`layerdrop analyze`: every per-layer score of a model on some data, as files and plots."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from layerdrop.cli import app
from layerdrop.cli.surgery import (
    BATCH_SIZE_HELP,
    DATA_HELP,
    HEAD_HELP,
    MAX_EXAMPLES_HELP,
    MAX_LENGTH_HELP,
    POOLING_HELP,
    SPLIT_HELP,
    TASK_HELP,
    TEXT_FILE_HELP,
)
from layerdrop.errors import LayerDropError


@app.command()
def analyze(
    model: str = typer.Argument(..., help="Hugging Face hub name or local checkpoint directory"),
    output: Path = typer.Option(..., "--output", "-o", help="directory for scores.json, scores.csv and the plots"),
    task: Optional[str] = typer.Option(None, help=TASK_HELP),
    data: Optional[Path] = typer.Option(None, help=DATA_HELP),
    split: Optional[str] = typer.Option(None, help=SPLIT_HELP),
    text_file: Optional[Path] = typer.Option(None, help=TEXT_FILE_HELP),
    max_examples: Optional[int] = typer.Option(None, help=MAX_EXAMPLES_HELP),
    pooling: Optional[str] = typer.Option(None, help=POOLING_HELP),
    batch_size: int = typer.Option(32, help=BATCH_SIZE_HELP),
    max_length: int = typer.Option(128, help=MAX_LENGTH_HELP),
    head: Optional[str] = typer.Option(None, help=HEAD_HELP),
) -> None:
    """Score every layer of MODEL on --task/--data or --text-file: cosines, block influence, angular distance, weights."""
    from layerdrop.strategies.data_driven import load_data, make_batches

    if output.exists() and not output.is_dir():
        raise LayerDropError(f"output {str(output)!r} exists and is not a directory")
    examples, task_entry, described = load_data(task=task, data=data, split=split, text_file=text_file, max_examples=max_examples)
    if examples is None:
        raise LayerDropError("analyze needs data: --task (with --data) or --text-file")
    from layerdrop.analysis import analyze_layers, write_report
    from layerdrop.checkpoint import load_model, load_tokenizer
    from layerdrop.strategies.similarity import check_pooling

    if pooling is not None:
        check_pooling(pooling)
    loaded = load_model(model, head=head)
    batches = make_batches(examples, load_tokenizer(model), task=task_entry, batch_size=batch_size, max_length=max_length)
    analysis = analyze_layers(loaded, batches, pooling=pooling)
    paths = write_report(analysis, output, about={"model": model, "data": described})
    _print_table(analysis.rows)
    typer.echo(f"wrote {', '.join(p.name for p in paths)} to {output}")


def _print_table(rows: list[dict[str, float]]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table("layer", "cos [first]", "cos [last]", "cos [mean]", "block infl.", "angular", "weight rms")
    for row in rows:
        values = (row["cosine_first_token"], row["cosine_last_token"], row["cosine_mean"], row["block_influence"], row["angular_distance"], row["parameter_norm"])
        table.add_row(str(row["layer"]), *(f"{v:.4f}" for v in values))
    Console().print(table)
