"""`layerdrop analyze`: every per-layer score of a model on some data, as files and plots."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from layerdrop.settings import CalibrationData
from layerdrop.cli import app
from layerdrop.cli.options import Head, ModelArg, Output, Overwrite, settings_options
from layerdrop.strategies.base import Pooling


@app.command()
@settings_options(CalibrationData, into="calibration", panel="Data the layers are scored on")
def analyze(
    model: ModelArg,
    output: Output,
    pooling: Annotated[
        Pooling | None,
        typer.Option(help="token(s) compared: first, last or mean (default: first for encoders, last for decoders)"),
    ] = None,
    head: Head = None,
    overwrite: Overwrite = False,
    calibration: dict[str, Any] | None = None,
) -> None:
    """Score every layer of MODEL on data: cosines, block influence, angular distance, weight statistics.

    The data is a task's split (--task/--data), a file of texts (--text-file), or running text
    (--corpus, or a Hugging Face dataset with --dataset).
    """
    from layerdrop.analysis import analyze_layers, write_analysis
    from layerdrop.calibration import load_calibration, make_batches
    from layerdrop.checkpoint import load_model, load_tokenizer
    from layerdrop.errors import LayerDropError
    from layerdrop.outputs import check_output

    data = CalibrationData.model_validate(calibration)
    if not data.given:
        raise LayerDropError("analyze needs data: --task (with --data), --text-file, --corpus or --dataset")
    check_output(output, "dir", overwrite, what="--output")
    tokenizer = load_tokenizer(model)
    examples, task, described = load_calibration(data, tokenizer)
    loaded = load_model(model, head=head)
    batches = make_batches(examples, tokenizer, task=task, batch_size=data.batch_size, max_length=data.max_length)
    analysis = analyze_layers(loaded, batches, pooling=pooling)
    paths = write_analysis(analysis, output, about={"model": model, "data": described}, overwrite=overwrite)
    _print_table(analysis.rows)
    typer.echo(f"wrote {', '.join(p.name for p in paths)} to {output}")


def _print_table(rows: list[dict[str, float]]) -> None:
    from rich.console import Console
    from rich.table import Table

    headers = ("layer", "cos (first)", "cos (last)", "cos (mean)", "block infl.", "angular", "weight rms")
    table = Table(*headers)
    for row in rows:
        values = (
            row["cosine_first_token"],
            row["cosine_last_token"],
            row["cosine_mean"],
            row["block_influence"],
            row["angular_distance"],
            row["parameter_norm"],
        )
        table.add_row(str(row["layer"]), *(f"{v:.4f}" for v in values))
    Console().print(table)
