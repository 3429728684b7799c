"""The `layerdrop` command line: one typer app, one module per group of commands.

Heavy imports (torch, transformers) happen inside the commands so `--help` stays instant.
"""

from __future__ import annotations

import sys

import typer

from layerdrop.errors import LayerDropError

app = typer.Typer(
    name="layerdrop",
    help="Drop whole layers from pre-trained transformers, fine-tune, evaluate and benchmark the result.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

# Each module registers its commands on `app` when imported.
from layerdrop.cli import surgery  # noqa: E402,F401


def main() -> None:
    """Console entry point: user errors become one line on stderr and exit code 2."""
    try:
        app(standalone_mode=False)
    except LayerDropError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
    except (typer.Abort, KeyboardInterrupt):
        print("aborted", file=sys.stderr)
        sys.exit(130)
    except Exception as err:  # click usage errors arrive here in non-standalone mode
        import click

        if isinstance(err, click.exceptions.UsageError):
            print(f"error: {err.format_message()}", file=sys.stderr)
            sys.exit(2)
        if isinstance(err, click.exceptions.Exit):
            sys.exit(err.exit_code)
        raise
