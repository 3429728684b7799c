"""`layerdrop sweep` and `report`: run a grid of experiments resumably, then tabulate and plot it."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from layerdrop.cli import app
from layerdrop.errors import LayerDropError


@app.command()
def sweep(
    config: Path = typer.Argument(..., help="sweep YAML (see configs/)"),
    db: Optional[Path] = typer.Option(None, help="SQLite results file (default: <config stem>.sqlite beside the config)"),
    workers: Optional[int] = typer.Option(None, min=1, help="parallel runs, one GPU each when there are several (overrides the config)"),
    dry_run: bool = typer.Option(False, "--dry-run", help="list the grid and which runs are done, run nothing"),
) -> None:
    """Run every grid point of CONFIG not yet in the results database; rerun to resume."""
    from contextlib import closing

    from rich.console import Console
    from rich.table import Table

    from layerdrop.sweep import describe_run, expand_grid, finished_keys, load_config, open_db, run_key, run_sweep

    settings = load_config(config)
    specs = expand_grid(settings)
    db = db or config.with_suffix(".sqlite")
    if dry_run:
        done: set[str] = set()
        if db.exists():  # a dry run creates nothing
            with closing(open_db(db)) as conn:
                done = finished_keys(conn)
        table = Table("run key", "model", "task", "strategy", "K", "seed", "regime", "status")
        for spec in specs:
            key = run_key(spec)
            fields = (spec[k] for k in ("model", "task", "strategy", "num_drop", "seed", "regime"))
            table.add_row(key, *map(str, fields), "done" if key in done else "to run")
        Console().print(table)
        typer.echo(f"{len(specs)} runs, {sum(run_key(s) in done for s in specs)} already in {db}")
        return
    outcome = run_sweep(specs, db, workers=workers or settings.workers)
    typer.echo(f"{outcome.total} runs: {outcome.skipped} were already in {db}, {outcome.finished} finished now, "
               f"{len(outcome.failures)} failed")
    if outcome.failures:
        spec, message = outcome.failures[0]
        raise LayerDropError(f"{len(outcome.failures)} runs failed, first {describe_run(spec)}: {message}; rerun to retry them")


@app.command()
def report(
    results: list[Path] = typer.Argument(..., help="sweep SQLite file(s), run JSON files, or directories of them"),
    output: Path = typer.Option(Path("report"), "--output", "-o", help="directory for the tables and the chart"),
    formats: str = typer.Option("md,csv,tex,png", help="comma-separated subset of md, csv, tex, png"),
) -> None:
    """Paper-style tables (score per task, Δ, % retained, best strategy per K, layers droppable within 1%) and chart."""
    from layerdrop.report import TITLES, build_report, load_results, markdown_files, write_report

    built = build_report(load_results(results))
    written = write_report(built, output, [f.strip() for f in formats.split(",") if f.strip()])
    for name, text in markdown_files(built).items():
        typer.echo(f"{TITLES[name]}\n\n{text}")
    typer.echo(f"wrote {', '.join(str(path) for path in written)}")
