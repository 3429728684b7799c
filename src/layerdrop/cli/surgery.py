"""`layerdrop drop`, `inspect` and `strategies`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from layerdrop.cli import app

HEAD_HELP = "model head: base, sequence-classification, token-classification, question-answering, multiple-choice, masked-lm, causal-lm (default: what the checkpoint's config says)"


@app.command()
def drop(
    model: str = typer.Argument(..., help="Hugging Face hub name or local checkpoint directory"),
    output: Path = typer.Option(..., "--output", "-o", help="directory for the smaller checkpoint"),
    strategy: str = typer.Option("top", help="which layers to drop; see `layerdrop strategies`"),
    num_drop: int = typer.Option(0, "--num-drop", "-k", help="number of layers to drop (K)"),
    layers: Optional[str] = typer.Option(None, help="explicit 0-based layers to drop, e.g. 9,10,11 or 8-11 (implies --strategy explicit)"),
    seed: int = typer.Option(0, help="seed for --strategy random"),
    protect_first: bool = typer.Option(False, help="never drop the layer next to the embeddings"),
    protect_last: bool = typer.Option(False, help="never drop the top layer"),
    head: Optional[str] = typer.Option(None, help=HEAD_HELP),
    num_labels: Optional[int] = typer.Option(None, help="size of a new classification head"),
    overwrite: bool = typer.Option(False, help="replace a non-empty output directory"),
) -> None:
    """Drop layers from MODEL and save a plain transformers checkpoint to --output."""
    from layerdrop.checkpoint import check_output_dir, load_config, load_model, load_tokenizer, save_model
    from layerdrop.architectures import num_layers
    from layerdrop.strategies import select_layers
    from layerdrop.strategies.positional import parse_layer_list
    from layerdrop.surgery import drop_layers

    explicit = parse_layer_list(layers) if layers is not None else None
    name = "explicit" if explicit is not None and strategy == "top" else strategy
    check_output_dir(output, overwrite)  # before any loading
    total = num_layers(load_config(model))
    indices = select_layers(name, total, num_drop, layers=explicit, seed=seed, protect_first=protect_first, protect_last=protect_last)
    record = {"name": name, "num_drop": len(indices)}
    if name == "random":
        record["seed"] = seed
    if protect_first or protect_last:
        record.update(protect_first=protect_first, protect_last=protect_last)
    loaded = load_model(model, head=head, num_labels=num_labels)
    drop_layers(loaded, indices, strategy=record)
    save_model(loaded, output, tokenizer=load_tokenizer(model), overwrite=overwrite)
    typer.echo(f"dropped layers {indices} of {total} ({name}); saved {total - len(indices)}-layer model to {output}")


@app.command()
def inspect(
    model: str = typer.Argument(..., help="Hugging Face hub name or local checkpoint directory"),
    as_json: bool = typer.Option(False, "--json", help="print JSON instead of a table"),
    head: Optional[str] = typer.Option(None, help=HEAD_HELP),
) -> None:
    """Architecture, layers, parameters, size on disk and the layer-dropping record of MODEL."""
    from layerdrop.summary import model_summary

    summary = model_summary(model, head=head)
    if as_json:
        typer.echo(json.dumps(summary, indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    params = summary["parameters"]
    table = Table(title=summary["model"], show_header=False)
    size = summary["size_on_disk_bytes"]
    rows = [
        ("architecture", f"{summary['architecture']} ({summary['model_type']})"),
        ("layers", str(summary["num_layers"]) + (" (one shared layer, repeated)" if summary["shared_layers"] else "")),
        ("parameters", f"{params['total']:,}"),
        ("  embeddings", f"{params['embeddings']:,}"),
        ("  layers", f"{params['layers']:,}" + (f" ({params['per_layer'][0]:,} per layer)" if params["per_layer"] and len(set(params["per_layer"])) == 1 else "")),
        ("  other (heads, norms, pooler)", f"{params['other']:,}"),
        ("size on disk", f"{size / 2**20:,.1f} MiB" if size is not None else "not on disk"),
    ]
    if record := summary["layer_dropping"]:
        removed = params["removed"]
        rows += [
            ("original layers", str(record["original_num_layers"])),
            ("dropped layers", f"{record['dropped_layers']} ({record['strategy']['name']})"),
            ("kept layers", str(record["kept_layers"])),
            ("parameters removed", f"{removed:,} ({removed / params['original_total']:.1%} of {params['original_total']:,})"),
        ]
    for key, value in rows:
        table.add_row(key, value)
    Console().print(table)


@app.command()
def strategies() -> None:
    """List every layer-selection strategy with a one-line description."""
    from layerdrop.strategies import STRATEGIES

    width = max(map(len, STRATEGIES))
    for strategy in STRATEGIES.values():
        typer.echo(f"{strategy.name:<{width}}  {strategy.description}")
