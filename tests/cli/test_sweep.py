"""`layerdrop sweep` and `report` from the command line.

A bad config is one line and runs nothing, --dry-run lists the grid, a report is written from a sweep database.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from run_cli import layerdrop_in_process
from sweep_results import EXPECTED_TABLE, write_db


def test_cli_rejects_a_bad_config_with_one_line_and_exit_code_2(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    config = tmp_path / "grid.yaml"
    config.write_text("models: [bert-base-uncased]\nstrategies: [top]\nnum_drop: [2]\ntasks: [rte]\nsede: [1]\n")
    done = layerdrop_in_process(capsys, "sweep", config)
    assert done.returncode == 2
    assert done.stderr.splitlines() == ["error: config: unknown key 'sede' (did you mean 'seeds'?)"]
    assert not (tmp_path / "grid.sqlite").exists()  # nothing ran


def test_cli_dry_run_lists_the_grid(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    config = tmp_path / "grid.yaml"
    config.write_text("models: [bert-base-uncased]\nstrategies: [top, bottom]\nnum_drop: [2, 4]\ntasks: [rte]\n")
    done = layerdrop_in_process(capsys, "sweep", config, "--dry-run")
    assert done.returncode == 0, done.stderr
    assert "5 runs, 0 already in" in done.stdout
    assert not (tmp_path / "grid.sqlite").exists()  # a dry run creates nothing


def test_cli_report(tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # the default --output, ./report, must not meet a leftover
    sweep_db, out = write_db(tmp_path / "sweep.sqlite"), tmp_path / "out"
    done = layerdrop_in_process(capsys, "report", sweep_db, "-o", out, "--formats", "md,png")
    assert done.returncode == 0, done.stderr
    assert EXPECTED_TABLE in done.stdout
    assert sorted(p.name for p in out.iterdir()) == ["average_vs_dropped.png", "best.md", "droppable.md", "table.md"]

    missing = layerdrop_in_process(capsys, "report", tmp_path / "nope.sqlite")
    assert missing.returncode == 2
    assert missing.stderr.splitlines() == [f"error: no such results database: {tmp_path / 'nope.sqlite'}"]
