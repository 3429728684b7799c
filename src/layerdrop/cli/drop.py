"""`layerdrop drop`, `inspect` and `strategies`."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer

from layerdrop.settings import CalibrationData
from layerdrop.cli import app
from layerdrop.cli.options import Head, ModelArg, Output, Overwrite, settings_options
from layerdrop.strategies import STRATEGIES

StrategyName = Annotated[
    str | None,
    typer.Option(help="which layers to drop (default: top, or explicit with --layers); see `layerdrop strategies`"),
]


@app.command()
@settings_options(*(s.options for s in STRATEGIES.values()), into="options", optional=True, panel="Strategy options")
@settings_options(CalibrationData, into="calibration", optional=True, panel="Data the layers are scored on")
def drop(
    model: ModelArg,
    output: Output,
    strategy: StrategyName = None,
    head: Head = None,
    num_labels: Annotated[int | None, typer.Option(min=1, help="size of a new classification head")] = None,
    overwrite: Overwrite = False,
    options: dict[str, Any] | None = None,
    calibration: dict[str, Any] | None = None,
) -> None:
    """Drop layers from MODEL and save a plain transformers checkpoint to --output.

    Strategies that look at data (contribution, block-influence, angular, greedy) score the layers
    on --task/--data, --text-file or --corpus/--dataset first; parameter looks at the weights only.
    """
    from layerdrop.architectures import num_layers
    from layerdrop.checkpoint import load_model, load_model_config, load_tokenizer, save_model
    from layerdrop.outputs import check_output
    from layerdrop.errors import LayerDropError
    from layerdrop.strategies import SelectionInput, choose_layers, get_strategy
    from layerdrop.surgery import drop_layers

    chosen = get_strategy(strategy or ("explicit" if "layers" in options else "top"))
    data = CalibrationData.model_validate(calibration)
    if data.given and not chosen.uses_data:
        raise LayerDropError(
            f"strategy {chosen.name!r} looks at no data; leave out --task, --text-file, --corpus and --dataset"
        )
    check_output(output, "dir", overwrite, what="--output")  # everything below may take a while
    total = num_layers(load_model_config(model))
    prepared = chosen.prepare(options, total)  # the options, checked before any weights or data load
    tokenizer = load_tokenizer(model)
    if chosen.needs == "position":
        loaded = load_model(model, head=head, num_labels=num_labels)
        selection = chosen.run(prepared, SelectionInput(total))
    else:
        batches, task, described = _calibration_batches(data, tokenizer) if chosen.uses_data else (None, None, {})
        loaded = load_model(model, head=head, num_labels=num_labels)
        selection = choose_layers(chosen.name, loaded, prepared, batches=batches, task=task, data_record=described)
        _print_trace(selection.record)
    drop_layers(loaded, selection.layers, strategy=selection.record)
    save_model(loaded, output, tokenizer=tokenizer, overwrite=overwrite, extra_files_from=model)
    typer.echo(
        f"dropped layers {selection.layers} of {total} ({chosen.name}); "
        f"saved a {total - len(selection.layers)}-layer model to {output}"
    )


def _calibration_batches(data: CalibrationData, tokenizer: Any) -> tuple[Any, Any, dict[str, Any]]:
    """Tokenized batches of the data the layers are scored on, its task, and where it came from."""
    from layerdrop.calibration import load_calibration, make_batches

    examples, task, described = load_calibration(data, tokenizer)
    if examples is None:
        return None, None, {}
    return (
        make_batches(examples, tokenizer, task=task, batch_size=data.batch_size, max_length=data.max_length),
        task,
        described,
    )


def _print_trace(record: dict[str, Any]) -> None:
    """Greedy's trace: how far each removal moved the dev score (the paper's Table 2 question)."""
    if not (trace := record.get("greedy")):
        return
    typer.echo(f"full model: {_evaluation(trace['baseline'])}")
    for step in trace["steps"]:
        left = step["num_layers"]
        typer.echo(f"removed layer {step['layer']}: {_evaluation(step)} ({left} layer{'s' * (left != 1)} left)")
    typer.echo(f"stopped: {trace['stop_reason']}")


def _evaluation(entry: dict[str, Any]) -> str:
    return (f"score {entry['score']:.4f}, " if entry["score"] is not None else "") + f"loss {entry['loss']:.4f}"


@app.command()
def inspect(
    model: ModelArg,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON instead of a table")] = False,
    head: Head = None,
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
    per_layer = params["per_layer"]
    rows = [
        ("architecture", f"{summary['architecture']} ({summary['model_type']})"),
        ("layers", str(summary["num_layers"]) + (" (one shared layer, repeated)" if summary["shared_layers"] else "")),
        ("parameters", f"{params['total']:,}"),
        ("  embeddings", f"{params['embeddings']:,}"),
        (
            "  layers",
            f"{params['layers']:,}"
            + (f" ({per_layer[0]:,} per layer)" if per_layer and len(set(per_layer)) == 1 else ""),
        ),
        ("  other (heads, norms, pooler)", f"{params['other']:,}"),
        ("size on disk", f"{size / 2**20:,.1f} MiB" if size is not None else "not on disk"),
    ]
    if record := summary["layer_dropping"]:
        removed = params["removed"]
        rows += [
            ("original layers", str(record["original_num_layers"])),
            ("dropped layers", f"{record['dropped_layers']} ({record['strategy']['name']})"),
            ("kept layers", str(record["kept_layers"])),
            (
                "parameters removed",
                f"{removed:,} ({removed / params['original_total']:.1%} of {params['original_total']:,})",
            ),
        ]
    for key, value in rows:
        table.add_row(key, value, style=None)
    Console().print(table)


@app.command()
def strategies() -> None:
    """List every layer-selection strategy: name, what it needs, one line, and its paper."""
    width = max(map(len, STRATEGIES))
    for strategy in STRATEGIES.values():
        typer.echo(f"{strategy.name:<{width}}  {strategy.needs:<8}  {strategy.description} ({strategy.reference})")
