"""Every file and folder layerdrop writes goes through `staged`, so no output is ever half-written.

An output is checked before any work starts, written beside its final place under a hidden staging
name, and renamed into place only once complete. A failure, Ctrl-C or a kill therefore never leaves
a half-written output, and the next write to the same place removes staging left behind by a process
that no longer exists.

Staging names carry the host and process id (`.NAME.staging-HOST-PID-RANDOM`), so a writer
only ever removes leftovers of dead processes on its own host. Outputs are created with the
usual modes (0777/0666 minus the umask), never the 0700 of a temporary directory.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal

from layerdrop.errors import LayerDropError

Kind = Literal["dir", "file"]
STAGING = "staging"


def check_output(path: str | Path, kind: Kind, overwrite: bool = False, what: str = "output") -> Path:
    """Refuse, before any work, an output that could not be written or would be clobbered.

    `what` names the output in messages (e.g. "--result"). Returns the path, expanded.
    """
    path = Path(path).expanduser()
    if kind == "dir" and path.exists() and not path.is_dir():
        raise LayerDropError(f"{what} {str(path)!r} exists and is not a directory")
    if kind == "file" and path.is_dir():
        raise LayerDropError(f"{what} {str(path)!r} is a directory; give a file name")
    if not overwrite and _holds_something(path):
        raise LayerDropError(f"{what} {str(path)!r} already exists; pass --overwrite to replace it")
    ancestor = path.parent
    while not ancestor.exists():
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise LayerDropError(f"cannot write {what} {str(path)!r}: {str(ancestor)!r} is a file, not a directory")
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise LayerDropError(f"cannot write {what} {str(path)!r}: no permission to write in {str(ancestor)!r}")
    return path


def _holds_something(path: Path) -> bool:
    if path.is_dir():
        return any(path.iterdir())
    return path.exists()


@contextmanager
def staged(path: str | Path, kind: Kind, overwrite: bool = False, what: str = "output") -> Iterator[Path]:
    """Yield a staging path beside `path` that replaces `path` only when the block completes.

    The staging path is a created folder, or a file name to write; on any error or interrupt it is removed.
    """
    path = check_output(path, kind, overwrite, what)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise LayerDropError(f"cannot write {what} {str(path)!r}: {err.strerror}") from None
    remove_stale_staging(path)
    staging = path.with_name(f".{path.name}.{STAGING}-{_owner()}-{secrets.token_hex(4)}")
    if kind == "dir":
        staging.mkdir()
    try:
        yield staging
        _follow_umask(staging)
        _replace(staging, path, kind)
    finally:
        _remove(staging)


def _follow_umask(staging: Path) -> None:
    """Give everything written the usual modes: some writers (safetensors) create files 0600 whatever the umask."""
    mask = os.umask(0)
    os.umask(mask)
    for item in [staging, *staging.rglob("*")] if staging.is_dir() else [staging]:
        if not item.is_symlink():
            item.chmod((0o777 if item.is_dir() else 0o666) & ~mask)


def _replace(staging: Path, path: Path, kind: Kind) -> None:
    """Move `staging` to `path`; an existing folder is renamed aside first and removed after."""
    if kind == "file" or not path.exists():
        os.replace(staging, path)
        return
    aside = path.with_name(f".{path.name}.{STAGING}-{_owner()}-old-{secrets.token_hex(4)}")
    path.rename(aside)
    try:
        staging.rename(path)
    except BaseException:
        aside.rename(path)
        raise
    _remove(aside)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    elif path.exists() or path.is_symlink():
        path.unlink(missing_ok=True)


def _owner() -> str:
    return f"{socket.gethostname().replace('-', '_')}-{os.getpid()}"


def remove_stale_staging(path: Path) -> list[Path]:
    """Remove staging copies of `path` left by dead processes of this host (a SIGKILL, a power cut)."""
    removed = []
    host = socket.gethostname().replace("-", "_")
    for candidate in path.parent.glob(f".{path.name}.{STAGING}-*"):
        owner_host, _, rest = candidate.name[len(path.name) + len(STAGING) + 3 :].partition("-")
        pid = rest.partition("-")[0]
        if owner_host == host and pid.isdigit() and not _alive(int(pid)):
            _remove(candidate)
            removed.append(candidate)
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def write_text(path: str | Path, text: str, overwrite: bool = False, what: str = "output") -> Path:
    """Write a text file through `staged`."""
    with staged(path, "file", overwrite, what) as staging:
        staging.write_text(text, encoding="utf-8")
    return Path(path).expanduser()


def write_json(path: str | Path, data: Any, overwrite: bool = False, what: str = "output") -> Path:
    """Write indented JSON through `staged`."""
    return write_text(path, json.dumps(data, indent=2) + "\n", overwrite, what)
