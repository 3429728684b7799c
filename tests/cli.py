"""Run the real console entry point as a user would: in a subprocess, or in-process for speed."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest


def layerdrop(*args: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """The CLI in a fresh process (what a user's shell does)."""
    return subprocess.run(
        [sys.executable, "-c", "from layerdrop.cli import main; main()", *map(str, args)],
        capture_output=True,
        text=True,
        cwd=cwd,
    )


@dataclass
class Result:
    returncode: int
    stdout: str
    stderr: str


def layerdrop_in_process(capsys: pytest.CaptureFixture, *args: str | Path) -> Result:
    """The same entry point, `main()`, called in this process: same code path, no start-up cost."""
    from layerdrop.cli import main

    capsys.readouterr()
    argv, sys.argv = sys.argv, ["layerdrop", *map(str, args)]
    try:
        main()
        code = 0
    except SystemExit as exit_:
        code = exit_.code if isinstance(exit_.code, int) else 1
    finally:
        sys.argv = argv
    captured = capsys.readouterr()
    return Result(code, captured.out, captured.err)


def assert_one_line_error(result: subprocess.CompletedProcess | Result, fragment: str) -> None:
    """Exit code 2, a single `error: …` line on stderr naming the problem, no traceback."""
    assert result.returncode == 2, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert fragment in lines[0], lines[0]
