"""`layerdrop demo`: the paper's experiment on an embedded default, with no network.

The bundled all-MiniLM-L6-v2 (a real pre-trained 6-layer BERT) is fine-tuned on the built-in
toy-sentiment task as it is and with 2 of its 6 layers dropped by three strategies.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from layerdrop.cli import app

MODEL = "bundled:all-MiniLM-L6-v2"
VARIANTS = [("none", 0), ("top", 2), ("symmetric", 2), ("bottom", 2)]


@app.command()
def demo(
    output: Annotated[Path, typer.Option("--output", "-o", help="folder for the results and the top-2 model")] = Path("out/demo"),
    epochs: Annotated[int, typer.Option(help="training epochs per model")] = 3,
    learning_rate: Annotated[float, typer.Option("--learning-rate", "--lr", help="peak learning rate")] = 1e-4,
) -> None:
    """Fine-tune the bundled all-MiniLM-L6-v2 on the toy task, full and with 2 layers dropped; print a table."""
    from rich.console import Console
    from rich.table import Table

    from layerdrop.experiment import run_experiment
    from layerdrop.outputs import check_output, write_json
    from layerdrop.experiment import RunConfig
    from layerdrop.settings import TrainConfig

    check_output(output, "dir", overwrite=True, what="--output")  # before minutes of training, not after
    results = []
    for strategy, k in VARIANTS:
        typer.echo(f"== {strategy} (K={k})", err=True)
        config = RunConfig(
            model=MODEL, task="toy-sentiment", strategy=strategy, strategy_options={"num_drop": k} if k else {},
            training=TrainConfig(epochs=epochs, learning_rate=learning_rate),
        )
        result = run_experiment(config, output / "minilm-top2" if strategy == "top" else None, overwrite=True)
        write_json(output / f"{strategy}-{k}.json", result, overwrite=True)
        results.append(result)

    full = results[0]
    table = Table(title=f"all-MiniLM-L6-v2 on toy-sentiment ({full['train_examples']} train, {full['eval_examples']['validation']} dev examples)")
    for column in ("strategy", "dropped", "layers", "params", "acc %", "% full", "train s", "ex/s"):
        table.add_column(column, justify="left" if column in ("strategy", "dropped") else "right", no_wrap=True)
    for r in results:
        table.add_row(
            r["strategy"], str(r["dropped_layers"] or "-"), str(r["num_layers"]), f"{r['params'] / 1e6:.1f}M",
            f"{100 * r['score']:.1f}", f"{100 * r['score'] / full['score']:.1f}", f"{r['train_time_s']:.0f}",
            f"{r['train_examples_per_s']:.0f}",
        )
    Console().print(table)
    typer.echo(f"results in {output}/*.json; the top-2 model in {output / 'minilm-top2'}")
