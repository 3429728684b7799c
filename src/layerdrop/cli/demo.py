"""`layerdrop demo`: the main job on an embedded default, with no network."""

from __future__ import annotations

from pathlib import Path

import typer

from layerdrop.cli import app


@app.command()
def demo(output: Path = typer.Option(Path("out/demo"), "--output", "-o", help="where the demo writes its models")) -> None:
    """Drop the top 2 of 6 layers of the bundled all-MiniLM-L6-v2 and inspect the result."""
    from layerdrop.cli.surgery import drop, inspect

    model = "bundled:all-MiniLM-L6-v2"
    inspect(model, as_json=False, head=None)
    drop(model, output=output / "minilm-top2", strategy="top", num_drop=2, layers=None, seed=0,
         protect_first=False, protect_last=False, head=None, num_labels=None, overwrite=True)
    inspect(str(output / "minilm-top2"), as_json=False, head=None)
