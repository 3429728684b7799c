"""`layerdrop bench`: latency, throughput, memory and FLOPs of models, and speed-ups over the first."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import TYPE_CHECKING, Optional

import typer

from layerdrop.cli import app
from layerdrop.cli.surgery import HEAD_HELP
from layerdrop.errors import LayerDropError

if TYPE_CHECKING:
    from rich.table import Table

    from layerdrop.bench import BenchReport, ModelResult


@app.command()
def bench(
    models: list[str] = typer.Argument(..., help="hub names or local checkpoints; speed-ups are relative to the first"),
    batch_sizes: str = typer.Option("1,8,32", help="comma-separated batch sizes"),
    seq_lens: str = typer.Option("32,128,512", help="comma-separated sequence lengths (clamped to the models' position limit)"),
    repeats: int = typer.Option(10, help="timed forward passes per model and cell; the median is reported"),
    warmup: int = typer.Option(3, help="untimed forward passes per model and cell before timing"),
    device: str = typer.Option("cpu", help="cpu or cuda"),
    dtype: str = typer.Option("float32", help="float32, float16 or bfloat16"),
    threads: Optional[int] = typer.Option(None, help="torch CPU threads (default: torch's own, one per physical core)"),
    head: Optional[str] = typer.Option(None, help=HEAD_HELP),
    memory: bool = typer.Option(True, "--memory/--no-memory", help="measure peak memory, each model in a fresh process"),
    seed: int = typer.Option(0, help="seed of the random token ids"),
    json_path: Optional[Path] = typer.Option(None, "--json", help="also write every figure, raw timings included, as JSON"),
    csv_path: Optional[Path] = typer.Option(None, "--csv", help="also write one row per model and cell as CSV"),
) -> None:
    """Benchmark MODELS on random inputs: parameters, size, latency, throughput, peak memory, FLOPs, speed-up."""
    batches, lengths = _int_list(batch_sizes, "--batch-sizes"), _int_list(seq_lens, "--seq-lens")
    from rich.console import Console
    from rich.progress import Progress
    from transformers.utils import logging as transformers_logging

    from layerdrop.bench import BenchSettings, run_bench

    transformers_logging.disable_progress_bar()  # ours is the one to watch
    settings = BenchSettings(batches, lengths, repeats, warmup, device, dtype, threads, head, memory, seed)
    with Progress(console=Console(stderr=True), transient=True) as progress:
        task = progress.add_task("loading models", total=None)
        report = run_bench(models, settings, lambda what, done, total: progress.update(task, description=what, completed=done, total=total))
    Console().print(_table(report))
    for path in filter(None, (json_path, csv_path)):
        path.parent.mkdir(parents=True, exist_ok=True)
    if json_path:
        json_path.write_text(json.dumps(report.to_dict(), indent=2))
    if csv_path:
        rows = report.rows()
        with csv_path.open("w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)


def _int_list(text: str, option: str) -> tuple[int, ...]:
    """'1,8,32' -> (1, 8, 32); anything but positive integers is a one-line error."""
    parts = [part.strip() for part in text.split(",")]
    if not all(part.isdigit() and int(part) >= 1 for part in parts):
        raise LayerDropError(f"{option} must be comma-separated integers >= 1, got {text!r}")
    return tuple(int(part) for part in parts)


def _table(report: BenchReport) -> Table:
    """One table per run: a row per model and cell, grouped by cell, speed-ups against the first model."""
    from rich import box
    from rich.table import Table

    labels = _labels([m.model for m in report.models])
    settings = report.settings
    caption = [
        f"{report.device_name}, {settings['dtype']}, {report.threads} threads, median of {settings['repeats']} after {settings['warmup']} warm-up",
        *(_describe(label, model) for label, model in zip(labels, report.models)),
        *([f"memory: {report.memory_method}; act. = peak minus memory before the forward"] if report.memory_method else []),
        "ideal = FLOPs of the first model / FLOPs of this one",
        *report.notes,
    ]
    busiest = max(cell.background_cpu or 0.0 for m in report.models for cell in m.cells)
    if busiest > 0.1:
        caption.append(f"warning: other processes kept up to {busiest:.0%} of the CPUs busy while timing; the timings are noisy")
    table = Table(title="layerdrop bench", caption="\n".join(caption), caption_justify="left", box=box.SIMPLE_HEAD, pad_edge=False, collapse_padding=True)
    for column in ("batch\n×len", "model", "GFLOP", "median\nms", "p90\nms", "seq/s", "peak\nMiB", "act.\nMiB", "speed\n-up", "ideal", "meas./\nideal"):
        table.add_column(column, justify="left" if column == "model" else "right", overflow="fold")
    for index in range(len(report.models[0].cells)):
        for label, model in zip(labels, report.models):
            cell = model.cells[index]
            table.add_row(
                f"{cell.batch_size}×{cell.seq_len}", label, f"{cell.flops / 1e9:,.2f}",
                f"{cell.median_ms:.1f}", f"{cell.p90_ms:.1f}", f"{cell.throughput:.{1 if cell.throughput < 100 else 0}f}",
                _mib(cell.peak_memory_bytes, digits=0), _mib(cell.activation_memory_bytes),
                f"{cell.speedup:.2f}", f"{cell.ideal_speedup:.2f}", f"{cell.speedup_vs_ideal:.3f}",
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
