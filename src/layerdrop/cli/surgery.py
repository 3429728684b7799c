"""`layerdrop drop`, `inspect` and `strategies`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional

import typer

from layerdrop.cli import app
from layerdrop.errors import LayerDropError

HEAD_HELP = "model head: base, sequence-classification, token-classification, question-answering, multiple-choice, masked-lm, causal-lm (default: what the checkpoint's config says)"
# Data options, shared by `drop` (data-driven strategies) and `analyze`.
TASK_HELP = "GLUE task whose split scores the layers, e.g. rte (greedy: its dev labels and metric)"
DATA_HELP = "folder with the task's GLUE files, e.g. /data/glue (default: the Hugging Face hub)"
SPLIT_HELP = "split of --task to use (default: its dev split)"
TEXT_FILE_HELP = "score the layers on this file instead of a task: one text per line"
MAX_EXAMPLES_HELP = "use only the first N examples"
POOLING_HELP = "token(s) compared: first (e.g. [CLS]), last or mean over tokens (default: first for encoders, last for decoders)"
BATCH_SIZE_HELP = "texts per forward pass"
MAX_LENGTH_HELP = "truncate texts to this many tokens"


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
    threshold: Optional[float] = typer.Option(None, help="contribution: drop every layer whose input/output cosine is above this, e.g. 0.925"),
    task: Optional[str] = typer.Option(None, help=TASK_HELP),
    data: Optional[Path] = typer.Option(None, help=DATA_HELP),
    split: Optional[str] = typer.Option(None, help=SPLIT_HELP),
    text_file: Optional[Path] = typer.Option(None, help=TEXT_FILE_HELP),
    max_examples: Optional[int] = typer.Option(None, help=MAX_EXAMPLES_HELP),
    pooling: Optional[str] = typer.Option(None, help=POOLING_HELP),
    statistic: Optional[str] = typer.Option(None, help="parameter: weight statistic, norm or variance (default: norm)"),
    objective: Optional[str] = typer.Option(None, help="greedy: what a removal may cost, the task's score or the loss (default: score)"),
    max_drop_percent: Optional[float] = typer.Option(None, help="greedy: stop before the score falls more than this % below the full model's"),
    batch_size: int = typer.Option(32, help=BATCH_SIZE_HELP),
    max_length: int = typer.Option(128, help=MAX_LENGTH_HELP),
) -> None:
    """Drop layers from MODEL and save a plain transformers checkpoint to --output.

    Data-driven strategies (contribution, block-influence, angular, greedy) score the layers on
    --task/--data or --text-file first; parameter looks at the weights only.
    """
    from layerdrop.checkpoint import check_output_dir, load_config, load_model, load_tokenizer, save_model
    from layerdrop.architectures import num_layers
    from layerdrop.strategies import get_strategy, positional_record, select_layers
    from layerdrop.strategies.positional import parse_layer_list
    from layerdrop.surgery import drop_layers

    explicit = parse_layer_list(layers) if layers is not None else None
    name = "explicit" if explicit is not None and strategy == "top" else strategy
    check_output_dir(output, overwrite)  # before any loading
    total = num_layers(load_config(model))
    tokenizer = load_tokenizer(model)
    options = dict(threshold=threshold, pooling=pooling, statistic=statistic, objective=objective, max_drop_percent=max_drop_percent)
    sources = dict(task=task, data=data, split=split, text_file=text_file, max_examples=max_examples)
    if get_strategy(name).kind == "data":
        from layerdrop.strategies.data_driven import check_options, load_data

        if explicit is not None:
            raise LayerDropError(f"--layers goes with strategy 'explicit', not {name!r}")
        options.update(num_drop=num_drop or None, protect_first=protect_first, protect_last=protect_last)
        check_options(name, total, **options)  # before loading data or weights
        examples, task_entry, described = load_data(**sources)
        loaded = load_model(model, head=head or ("sequence-classification" if name == "greedy" else None), num_labels=num_labels)
        indices, record = _select_from_data(name, loaded, tokenizer, examples, task=task_entry, batch_size=batch_size, max_length=max_length, **options)
        if described:
            record["data"] = described
    else:
        if given := [f"--{key.replace('_', '-')}" for key, value in {**options, **sources}.items() if value is not None]:
            raise LayerDropError(f"{', '.join(given)} go with data-driven strategies (see `layerdrop strategies`), not {name!r}")
        indices = select_layers(name, total, num_drop, layers=explicit, seed=seed, protect_first=protect_first, protect_last=protect_last)
        record = positional_record(name, indices, seed=seed, protect_first=protect_first, protect_last=protect_last)
        loaded = load_model(model, head=head, num_labels=num_labels)
    drop_layers(loaded, indices, strategy=record)
    save_model(loaded, output, tokenizer=tokenizer, overwrite=overwrite)
    typer.echo(f"dropped layers {indices} of {total} ({name}); saved {total - len(indices)}-layer model to {output}")


def _select_from_data(name: str, model: Any, tokenizer: Any, examples: Any, **options: Any) -> tuple[list[int], dict[str, Any]]:
    """Choose the layers and print the greedy trace: how far each removal moved the dev score (Table 2)."""
    from layerdrop.strategies.data_driven import select_from_data

    indices, record = select_from_data(name, model, tokenizer, examples, **options)
    if trace := record.get("greedy"):
        typer.echo(f"full model: {_evaluation(trace['baseline'])}")
        for step in trace["steps"]:
            left = step["num_layers"]
            typer.echo(f"removed layer {step['layer']}: {_evaluation(step)} ({left} layer{'s' * (left != 1)} left)")
        typer.echo(f"stopped: {trace['stop_reason']}")
    return indices, record


def _evaluation(entry: dict[str, Any]) -> str:
    return (f"score {entry['score']:.4f}, " if entry["score"] is not None else "") + f"loss {entry['loss']:.4f}"


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
