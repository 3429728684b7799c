"""`layerdrop sweep` and `report`: run a grid of experiments resumably, then tabulate and plot it."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from layerdrop.cli import app
from layerdrop.cli.options import Overwrite, settings_options
from layerdrop.engines import ExecutionSettings


@app.command()
@settings_options(ExecutionSettings, into="execution", optional=True, panel="Execution (override the config)")
def sweep(
    config: Annotated[Path, typer.Argument(help="sweep YAML (see configs/)")],
    db: Annotated[
        Path | None, typer.Option(help="SQLite results file (default: <config stem>.sqlite beside the config)")
    ] = None,
    dry_run: Annotated[
        bool,
        typer.Option("--dry-run", help="list the grid, which runs are done, and what the rest will cost; run nothing"),
    ] = False,
    execution: dict[str, Any] | None = None,
) -> None:
    """Run every grid point of CONFIG not yet in the results database; rerun to resume (failed runs run again)."""
    from contextlib import closing

    from rich.console import Console
    from rich.table import Table

    from layerdrop.errors import LayerDropError
    from layerdrop.outputs import check_output
    from layerdrop.sweep import (
        describe_run,
        expand_grid,
        failure_counts,
        finished_keys,
        identity,
        load_sweep,
        open_db,
        run_key,
        run_sweep,
        sweep_jobs,
    )

    settings = load_sweep(config)
    how = settings.execution(**execution)
    db = db or config.with_suffix(".sqlite")
    specs = expand_grid(settings, teachers=db.with_suffix(".teachers"))
    if dry_run:
        from layerdrop.cost import estimate_sweep

        done: set[str] = set()
        failures: dict[str, tuple[int, str]] = {}
        if db.exists():  # a dry run creates nothing
            with closing(open_db(db)) as conn:
                done, failures = finished_keys(conn), failure_counts(conn)
        table = Table("run key", "model", "task", "strategy", "K", "seed", "regime", "recovery", "status")
        for spec in specs:
            key = run_key(spec)
            status = "done" if key in done else f"failed {failures[key][0]}×, to run" if key in failures else "to run"
            recovery = "distillation" if spec.get("distill") else "fine-tuning"
            table.add_row(key, *map(str, identity(spec).values()), recovery, status)
        Console().print(table)
        retry = sum(run_key(s) in failures and run_key(s) not in done for s in specs)
        typer.echo(
            f"{len(specs)} runs, {sum(run_key(s) in done for s in specs)} already in {db}"
            + (f", {retry} failed before (they run again)" if retry else "")
        )
        typer.echo(estimate_sweep(specs, db if db.exists() else None, done).describe(how))
        return
    check_output(db, "file", overwrite=True, what="--db")  # results are added to it, so it may exist
    jobs, runner = sweep_jobs(specs)
    outcome = run_sweep(jobs, db, runner=runner, execution=how)
    typer.echo(
        f"{outcome.total} runs: {outcome.skipped} were already in {db}, {outcome.finished} finished now, "
        f"{len(outcome.failures)} failed"
    )
    if outcome.failures:
        spec, message = outcome.failures[0]
        raise LayerDropError(
            f"{len(outcome.failures)} runs failed, first {describe_run(spec)}: {message}; "
            f"errors are in {db} (table failures); rerun to retry them"
        )


@app.command()
def report(
    results: Annotated[list[Path], typer.Argument(help="sweep SQLite file(s), run JSON files, or directories of them")],
    output: Annotated[Path, typer.Option("--output", "-o", help="folder for the tables and the chart")] = Path(
        "report"
    ),
    formats: Annotated[str, typer.Option(help="comma-separated subset of md, csv, tex, png")] = "md,csv,tex,png",
    overwrite: Overwrite = False,
) -> None:
    """Paper-style tables (score per task, Δ, % retained, best strategy per K, layers droppable within 1%) and chart."""
    from layerdrop.outputs import check_output
    from layerdrop.report import TITLES, build_report, load_results, markdown_files, write_report

    check_output(output, "dir", overwrite, what="--output")
    built = build_report(load_results(results))
    written = write_report(built, output, [f.strip() for f in formats.split(",") if f.strip()], overwrite=overwrite)
    for name, text in markdown_files(built).items():
        typer.echo(f"{TITLES[name]}\n\n{text}")
    typer.echo(f"wrote {', '.join(str(path) for path in written)}")
