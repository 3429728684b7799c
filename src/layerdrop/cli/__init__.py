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
from layerdrop.cli import surgery, analysis, glue, experiments, bench, demo  # noqa: E402,F401  (order = order in --help)


def main() -> None:
    """Console entry point: user errors become one line on stderr and exit code 2."""
    try:
        app(standalone_mode=False)
    except LayerDropError as err:
        _fail(str(err))
    except KeyboardInterrupt:
        _fail("interrupted", code=130)
    except Exception as err:
        # Usage errors of the (possibly vendored) click under typer: duck-typed, not imported.
        if hasattr(err, "format_message") and hasattr(err, "exit_code"):
            message = err.format_message().strip()
            if not message:  # no arguments at all: the help was printed
                sys.exit(err.exit_code)
            _fail(message.splitlines()[0], code=err.exit_code or 2)
        raise


def _fail(message: str, code: int = 2) -> None:
    print(f"error: {message}", file=sys.stderr)
    sys.exit(code)
