"""`layerdrop bench`: latency, throughput, memory and FLOPs of models, and speed-ups over the first."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from layerdrop.settings import BenchSettings, GenerationBenchSettings
from layerdrop.cli import app
from layerdrop.cli.options import Overwrite, settings_options

if TYPE_CHECKING:
    from rich.table import Table

    from layerdrop.bench import BenchReport, ModelResult
    from layerdrop.generation_bench import GenerationReport


@app.command()
@settings_options(BenchSettings, GenerationBenchSettings, into="settings", optional=True)
def bench(
    models: Annotated[
        list[str], typer.Argument(help="hub names or local checkpoints; speed-ups are relative to the first")
    ],
    generate: Annotated[
        bool,
        typer.Option("--generate", help="decoders: time generation with the KV cache (time to first token, tokens/s)"),
    ] = False,
    json_path: Annotated[
        Path | None, typer.Option("--json", help="also write every figure, raw timings included, as JSON")
    ] = None,
    csv_path: Annotated[Path | None, typer.Option("--csv", help="also write one row per model and cell as CSV")] = None,
    overwrite: Overwrite = False,
    settings: dict[str, Any] | None = None,
) -> None:
    """Benchmark MODELS on random inputs: parameters, size, latency, throughput, peak memory, FLOPs, speed-up.

    Forward passes by default (batch sizes 1,8,32 × lengths 32,128,512); with --generate, greedy generation of
    --new-tokens after a --prompt-tokens prompt at batch sizes 1,8, beside the ideal speed-up from FLOPs.
    """
    from rich.console import Console

    from layerdrop.errors import LayerDropError
    from layerdrop.outputs import check_output, write_text
    from layerdrop.settings import flag

    schema = GenerationBenchSettings if generate else BenchSettings
    if foreign := [name for name in settings if name not in schema.model_fields]:
        raise LayerDropError(f"{flag(foreign[0])} goes {'without' if generate else 'with'} --generate")
    config = schema.model_validate(settings)
    for path, option in ((json_path, "--json"), (csv_path, "--csv")):
        if path is not None:
            check_output(path, "file", overwrite, what=option)
    console = Console(stderr=True, soft_wrap=True)  # in a log, one line per step, however long
    if generate:
        from layerdrop.generation_bench import run_generation_bench

        report = run_generation_bench(models, config, progress=console.is_terminal)
        Console().print(_generation_table(report))
    else:
        from layerdrop.bench import run_bench

        report = run_bench(models, config, _progress(console))
        Console().print(_table(report))
    if json_path:
        write_text(json_path, json.dumps(report.to_dict(), indent=2), overwrite, what="--json")
    if csv_path:
        rows = report.rows()
        text = io.StringIO()
        writer = csv.DictWriter(text, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
        write_text(csv_path, text.getvalue(), overwrite, what="--csv")


def _progress(console: Any) -> Any:
    """A step callback: a live bar on a terminal, one line per step in a log (so minutes never pass in silence)."""
    if not console.is_terminal:
        return lambda what, done, total: console.print(f"[{done}/{total}] {what}", highlight=False)
    from rich.progress import Progress

    progress = Progress(console=console, transient=True)
    task = progress.add_task("loading models", total=None)

    def step(what: str, done: int, total: int) -> None:
        progress.start()
        progress.update(task, description=what, completed=done, total=total)
        if done >= total:
            progress.stop()

    return step


def _table(report: BenchReport) -> Table:
    """One table per run: a row per model and cell, grouped by cell, speed-ups against the first model."""
    from rich import box
    from rich.table import Table

    labels = _labels([m.model for m in report.models])
    settings = report.settings
    caption = [
        f"{report.device_name}, {settings['dtype']}, {report.threads} threads, "
        f"median of {settings['repeats']} after {settings['warmup']} warm-up",
        *(_describe(label, model) for label, model in zip(labels, report.models, strict=True)),
        *(
            [f"memory: {report.memory_method}; act. = peak minus memory before the forward"]
            if report.memory_method
            else []
        ),
        "ideal = FLOPs of the first model / FLOPs of this one",
        *report.notes,
    ]
    busiest = max(cell.background_cpu or 0.0 for m in report.models for cell in m.cells)
    if busiest > 0.1:
        caption.append(
            f"warning: other processes kept up to {busiest:.0%} of the CPUs busy while timing; the timings are noisy"
        )
    table = Table(
        title="layerdrop bench",
        caption="\n".join(caption),
        caption_justify="left",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
        collapse_padding=True,
    )
    for column in (
        "batch\n×len",
        "model",
        "GFLOP",
        "median\nms",
        "p90\nms",
        "seq/s",
        "peak\nMiB",
        "act.\nMiB",
        "speed\n-up",
        "ideal",
        "meas./\nideal",
    ):
        table.add_column(column, justify="left" if column == "model" else "right", overflow="fold")
    for index in range(len(report.models[0].cells)):
        for label, model in zip(labels, report.models, strict=True):
            cell = model.cells[index]
            table.add_row(
                f"{cell.batch_size}×{cell.seq_len}",
                label,
                f"{cell.flops / 1e9:,.2f}",
                f"{cell.median_ms:.1f}",
                f"{cell.p90_ms:.1f}",
                f"{cell.throughput:.{1 if cell.throughput < 100 else 0}f}",
                _mib(cell.peak_memory_bytes, digits=0),
                _mib(cell.activation_memory_bytes),
                f"{cell.speedup:.2f}",
                f"{cell.ideal_speedup:.2f}",
                f"{cell.speedup_vs_ideal:.3f}",
                end_section=model is report.models[-1],
            )
    return table


def _generation_table(report: GenerationReport) -> Table:
    """A row per model and batch size: time to first token, tokens/s and the speed-up beside the FLOPs ratio."""
    from rich import box
    from rich.table import Table

    labels = _labels([m.model for m in report.models])
    settings = report.settings
    caption = [
        f"{report.device_name}, {settings['dtype']}, {report.threads} threads, greedy, "
        f"{settings['prompt_tokens']} prompt tokens "
        f"then {settings['new_tokens']} new, KV cache, median of {settings['repeats']}",
        *(
            f"{label}: {m.model}, {m.num_layers} layers, {m.parameters:,} parameters"
            for label, m in zip(labels, report.models, strict=True)
        ),
        "ideal = FLOPs of the first model's generation / FLOPs of this one's (embeddings and LM head included)",
    ]
    table = Table(
        title="layerdrop bench --generate", caption="\n".join(caption), caption_justify="left", box=box.SIMPLE_HEAD
    )
    for column in (
        "batch",
        "model",
        "GFLOP",
        "first token\nms",
        "total\nms",
        "tokens/s",
        "speed\n-up",
        "ideal",
        "meas./\nideal",
    ):
        model_column = column == "model"  # figures never wrap; a long model label folds instead
        table.add_column(column, justify="left" if model_column else "right", no_wrap=not model_column, overflow="fold")
    for index in range(len(report.models[0].cells)):
        for label, model in zip(labels, report.models, strict=True):
            cell = model.cells[index]
            table.add_row(
                str(cell.batch_size),
                label,
                f"{cell.flops / 1e9:,.1f}",
                f"{cell.first_token_ms:.0f}",
                f"{cell.total_ms:.0f}",
                f"{cell.tokens_per_second:.1f}",
                f"{cell.speedup:.2f}",
                f"{cell.ideal_speedup:.2f}",
                f"{cell.speedup_vs_ideal:.3f}",
                end_section=model is report.models[-1],
            )
    return table


def _describe(label: str, model: ModelResult) -> str:
    size = f"{_mib(model.size_on_disk_bytes)} MiB on disk" if model.size_on_disk_bytes is not None else "not on disk"
    return f"{label}: {model.model}, {model.num_layers} layers, {model.parameters:,} parameters, {size}"


def _labels(names: list[str]) -> list[str]:
    """Short names for the table: the last path component, unless that is ambiguous."""
    short = [Path(name).name or name for name in names]
    return short if len(set(short)) == len(short) else [f"#{i} {name}" for i, name in enumerate(short)]


def _mib(size: int | None, digits: int = 1) -> str:
    return "-" if size is None else f"{size / 2**20:.{digits}f}"
