"""Run the real console entry point as a user would, and check how a failure reads.

In-process for speed; in a subprocess where only a real process will do (signals, dropped privileges, a fresh
interpreter).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

ENTRY = "from layerdrop.cli import main; main()"


@dataclass
class Result:
    returncode: int
    stdout: str
    stderr: str


def layerdrop(
    *args: str | Path, cwd: Path | None = None, env: dict[str, str] | None = None, timeout: float = 600
) -> subprocess.CompletedProcess:
    """The CLI in a fresh process (what a user's shell does)."""
    done = subprocess.run(
        [sys.executable, "-c", ENTRY, *map(str, args)],
        capture_output=True,
        cwd=cwd,
        env=None if env is None else {**os.environ, **env},
        timeout=timeout,
    )
    return subprocess.CompletedProcess(done.args, done.returncode, _text(done.stdout), _text(done.stderr))


def _text(output: bytes | None) -> str:
    """Output as written: text mode would turn every redraw of a progress bar (a carriage return) into a line."""
    return (output or b"").decode("utf-8", errors="replace")


def finish(process: subprocess.Popen, timeout: float = 120) -> subprocess.CompletedProcess:
    """Wait for a process from `start_layerdrop` and return what it printed."""
    stdout, stderr = process.communicate(timeout=timeout)
    return subprocess.CompletedProcess(process.args, process.returncode, _text(stdout), _text(stderr))


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


def start_layerdrop(
    *args: str | Path, prelude: str = "", cwd: Path | None = None, stderr: Any = subprocess.PIPE
) -> subprocess.Popen:
    """The CLI in a fresh process left running, to be signalled, then `finish`ed.

    `prelude` is Python run before `main()`, e.g. `pause_at(...)` to hold the command at a known point of its
    work. Ctrl-C raises KeyboardInterrupt in it, as in an interactive shell, even when this process was started
    with SIGINT ignored.
    """
    code = (
        f"import signal; signal.signal(signal.SIGINT, signal.default_int_handler)\n{textwrap.dedent(prelude)}\n{ENTRY}"
    )
    return subprocess.Popen(
        [sys.executable, "-c", code, *map(str, args)], cwd=cwd, stdout=subprocess.PIPE, stderr=stderr
    )


def pause_at(target: str, marker: Path, *, call_first: bool = True) -> str:
    """Prelude code that holds a command at the first call of `module:Class.method` (or `module:function`).

    The wrapper runs the original (unless `call_first` is False), creates `marker` and sleeps, so a test can
    signal a command that is known to be in the middle of its work.
    """
    module, _, attr = target.partition(":")
    owner, _, name = attr.rpartition(".")
    return f"""
import functools, importlib, pathlib, time
_owner = importlib.import_module({module!r})
for _part in {owner!r}.split(".") if {owner!r} else []:
    _owner = getattr(_owner, _part)
_original = getattr(_owner, {name!r})

@functools.wraps(_original)
def _pausing(*args, **kwargs):
    result = _original(*args, **kwargs) if {call_first!r} else None
    pathlib.Path({str(marker)!r}).touch()
    time.sleep(120)
    return result

setattr(_owner, {name!r}, _pausing)
"""


def unprivileged() -> list[str]:
    """A command prefix under which file permissions hold; skips the test where that cannot be done.

    As root, chmod and os.access stop nothing, so the process runs without the capabilities that bypass them
    (rather than as another user: the interpreter may live under /root, which another user could not read).
    """
    if os.geteuid() != 0:
        return []
    if shutil.which("setpriv") is None:
        pytest.skip("running as root without setpriv: cannot drop the rights that ignore file permissions")
    caps = "-dac_override,-dac_read_search,-fowner"
    prefix = ["setpriv", f"--bounding-set={caps}", f"--inh-caps={caps}"]
    probe = subprocess.run([*prefix, "true"], capture_output=True)
    if probe.returncode != 0:
        pytest.skip(f"setpriv cannot drop capabilities here: {probe.stderr.decode().strip()}")
    return prefix


def lines(text: str) -> list[str]:
    """The non-empty lines of a stream as a terminal shows them (a progress bar redrawn in place is one line)."""
    return [line for line in text.split("\n") if line.strip()]


def assert_one_line_error(result: subprocess.CompletedProcess | Result, fragment: str) -> None:
    """Exit code 2, a single `error: …` line on stderr naming the problem, no traceback."""
    assert result.returncode == 2, result.stderr
    shown = lines(result.stderr)
    assert len(shown) == 1 and shown[0].startswith("error: "), result.stderr
    assert fragment in shown[0], shown[0]


def assert_clean_failure(
    result: subprocess.CompletedProcess | Result, fragment: str, code: int = 2, max_lines: int = 3
) -> None:
    """The promise every command keeps for every fault a user can cause.

    Exit `code`, at most `max_lines` lines on stderr ending in one `error: …` line that holds `fragment`, and no
    traceback.
    """
    assert result.returncode == code, result.stderr
    shown = lines(result.stderr)
    assert "Traceback" not in result.stderr, result.stderr
    assert 1 <= len(shown) <= max_lines, result.stderr
    last = shown[-1].rpartition("\r")[2]
    assert last.startswith("error: ") and fragment in last, result.stderr
    assert sum(line.count("error: ") for line in shown) == 1, result.stderr
