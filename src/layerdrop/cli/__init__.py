"""The `layerdrop` command line: one typer app, one module per group of commands, one error boundary.

Heavy imports (torch, transformers) happen inside the commands so `--help` stays instant.
`main` is the only place where failures become messages: a user error, an invalid setting, an
unreadable or unwritable file, Ctrl-C or SIGTERM each end as one `error: …` line on stderr and a
non-zero exit (2, or 130 / 143 when interrupted); anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import os
import signal
import sys
from typing import NoReturn

import typer

from layerdrop.errors import LayerDropError
from layerdrop.settings import naming

app = typer.Typer(
    name="layerdrop",
    help="Drop whole layers from pre-trained transformers, fine-tune, evaluate and benchmark the result.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

# Each module registers its commands on `app` when imported (this order is the order in --help).
from layerdrop.cli import drop, analyze, run, distill, llm, sweep, bench, demo  # noqa: E402,F401,I001

# Libraries' own chatter (load reports, weight-loading and tokenizing bars) is not for our users.
QUIET = {"TRANSFORMERS_VERBOSITY": "error", "HF_DATASETS_DISABLE_PROGRESS_BARS": "1", "TOKENIZERS_PARALLELISM": "false"}


class Terminated(BaseException):
    """SIGTERM, raised in the main thread so outputs being staged are removed on the way out."""


def main() -> None:
    """Console entry point: run the command; turn every failure a user can cause into one line."""
    for key, value in QUIET.items():
        os.environ.setdefault(key, value)
    signal.signal(signal.SIGTERM, _terminate)
    try:
        with naming(as_flags=True):
            code = app(standalone_mode=False)
    except LayerDropError as err:
        fail(str(err))
    except OSError as err:
        fail(describe_os_error(err))
    except Terminated:
        fail("terminated", code=143)
    except KeyboardInterrupt:
        fail("interrupted", code=130)
    except Exception as err:
        if type(err).__name__ == "ValidationError":  # pydantic's: a setting out of range
            from layerdrop.settings import describe_error

            with naming(as_flags=True):
                fail(describe_error(err))  # type: ignore[arg-type]
        if hasattr(err, "format_message") and hasattr(err, "exit_code"):  # click's usage errors
            message = err.format_message().strip()
            if not message:  # no arguments at all: the help was printed
                sys.exit(err.exit_code)
            fail(message.splitlines()[0], code=err.exit_code or 2)
        raise
    if code == 130:  # typer turns Ctrl-C into this return value
        fail("interrupted", code=130)
    if isinstance(code, int) and code:
        sys.exit(code)


def describe_os_error(err: OSError) -> str:
    """'cannot write /x/y: Permission denied', from an OSError raised anywhere."""
    where = f" {err.filename}" if err.filename else ""
    return f"{err.strerror or type(err).__name__}{':' if where else ''}{where}"


def fail(message: str, code: int = 2) -> NoReturn:
    """Print one `error: …` line on stderr and exit."""
    print(f"error: {message.strip().splitlines()[0] if message.strip() else 'failed'}", file=sys.stderr)
    sys.exit(code)


def _terminate(signum: int, frame: object) -> None:
    raise Terminated
