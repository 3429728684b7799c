"""Stage then rename (outputs.py), down its failure paths.

A failure or interrupt inside `staged` leaves neither output nor staging, an existing output survives a failed
rewrite, stale staging of dead processes is cleared by the next write, and modes follow the umask.
"""

from __future__ import annotations

import json
import os
import socket
import stat
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from layerdrop.errors import LayerDropError
from layerdrop.outputs import STAGING, check_output, remove_stale_staging, staged, write_json, write_text


class Boom(Exception):
    pass


def entries(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def fill(staging: Path, kind: str) -> None:
    if kind == "dir":
        (staging / "weights.bin").write_bytes(b"new" * 1000)
    else:
        staging.write_text("new")


@contextmanager
def umask(mask: int) -> Iterator[None]:
    old = os.umask(mask)
    try:
        yield
    finally:
        os.umask(old)


def dead_pid() -> int:
    """The id of a process that has exited (and been reaped)."""
    done = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True, check=True
    )
    return int(done.stdout)


@pytest.mark.parametrize("kind", ["dir", "file"])
@pytest.mark.parametrize("error", [Boom, KeyboardInterrupt])
def test_a_failure_inside_leaves_no_output_and_no_staging(
    tmp_path: Path, kind: str, error: type[BaseException]
) -> None:
    with pytest.raises(error):
        with staged(tmp_path / "out", kind) as staging:
            fill(staging, kind)
            assert staging.parent == tmp_path and staging.name.startswith(f".out.{STAGING}-")
            assert not (tmp_path / "out").exists()  # nothing at the final place until the block completes
            raise error
    assert entries(tmp_path) == []


@pytest.mark.parametrize("kind", ["dir", "file"])
def test_an_existing_output_survives_a_failed_rewrite(tmp_path: Path, kind: str) -> None:
    out = tmp_path / "out"
    if kind == "dir":
        out.mkdir()
        (out / "weights.bin").write_bytes(b"old")
    else:
        out.write_text("old")
    with pytest.raises(Boom):
        with staged(out, kind, overwrite=True) as staging:
            fill(staging, kind)
            raise Boom
    assert entries(tmp_path) == ["out"]
    assert ((out / "weights.bin").read_bytes() if kind == "dir" else out.read_bytes()) == b"old"
    with staged(out, kind, overwrite=True) as staging:  # the next write replaces it whole
        fill(staging, kind)
    assert entries(tmp_path) == ["out"]
    assert ((out / "weights.bin").read_bytes() if kind == "dir" else out.read_bytes()) == b"new" * (
        1000 if kind == "dir" else 1
    )


def test_stale_staging_of_dead_processes_is_removed_by_the_next_write(tmp_path: Path) -> None:
    host = socket.gethostname().replace("-", "_")
    dead = tmp_path / f".out.{STAGING}-{host}-{dead_pid()}-0badf00d"
    alive = tmp_path / f".out.{STAGING}-{host}-{os.getpid()}-0badf00d"  # a write in progress in a live process
    elsewhere = tmp_path / f".out.{STAGING}-otherhost-{dead_pid()}-0badf00d"  # another machine's, on a shared disk
    other_output = tmp_path / f".other.{STAGING}-{host}-{dead_pid()}-0badf00d"  # staging of another output
    for folder in (dead, alive, elsewhere, other_output):
        folder.mkdir()
        (folder / "weights.bin").write_bytes(b"half")
    with staged(tmp_path / "out", "dir") as staging:
        fill(staging, "dir")
    assert not dead.exists()
    assert alive.exists() and elsewhere.exists() and other_output.exists()
    assert remove_stale_staging(tmp_path / "other") == [other_output]


@pytest.mark.parametrize(("mask", "dir_mode", "file_mode"), [(0o002, 0o775, 0o664), (0o027, 0o750, 0o640)])
def test_modes_follow_the_umask(tmp_path: Path, mask: int, dir_mode: int, file_mode: int) -> None:
    with umask(mask):
        with staged(tmp_path / "model", "dir") as staging:
            (staging / "config.json").write_text("{}")
            (staging / "sub").mkdir()
        write_json(tmp_path / "result.json", {"score": 1})
        write_text(tmp_path / "nested" / "table.md", "|a|")
    mode = lambda path: stat.S_IMODE(path.stat().st_mode)  # noqa: E731
    assert mode(tmp_path / "model") == mode(tmp_path / "model" / "sub") == mode(tmp_path / "nested") == dir_mode
    assert (
        mode(tmp_path / "model" / "config.json")
        == mode(tmp_path / "result.json")
        == mode(tmp_path / "nested" / "table.md")
        == file_mode
    )


def test_write_json_and_text(tmp_path: Path) -> None:
    assert write_json(tmp_path / "r.json", {"a": [1, 2]}) == tmp_path / "r.json"
    assert (tmp_path / "r.json").read_text() == json.dumps({"a": [1, 2]}, indent=2) + "\n"
    with pytest.raises(LayerDropError, match="--result '.*r.json' already exists; pass --overwrite to replace it"):
        write_json(tmp_path / "r.json", {}, what="--result")
    write_text(tmp_path / "r.json", "x", overwrite=True)
    assert (tmp_path / "r.json").read_text() == "x" and entries(tmp_path) == ["r.json"]


def test_check_output_refuses_before_any_work(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep").write_text("x")
    (tmp_path / "empty").mkdir()
    cases = [
        ("file", "dir", "--output '.*file' exists and is not a directory"),
        ("full", "file", "--output '.*full' is a directory; give a file name"),
        ("full", "dir", "--output '.*full' already exists; pass --overwrite"),
        ("file/sub/out", "dir", "cannot write --output '.*file/sub/out': '.*file' is a file, not a directory"),
    ]
    for name, kind, message in cases:
        with pytest.raises(LayerDropError, match=message):
            check_output(tmp_path / name, kind, what="--output")
    assert check_output(tmp_path / "empty", "dir") == tmp_path / "empty"  # an empty folder holds nothing to lose
    assert check_output(tmp_path / "full", "dir", overwrite=True) == tmp_path / "full"
    assert check_output(tmp_path / "new" / "deeper", "dir") == tmp_path / "new" / "deeper"
    assert entries(tmp_path) == ["empty", "file", "full"]  # checking creates nothing
