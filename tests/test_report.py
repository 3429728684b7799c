"""Reports: the paper-style table from a hand-written sweep database, and the numbers behind it."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from layerdrop.errors import LayerDropError
from layerdrop.report import (
    best_by_k,
    build_report,
    droppable,
    load_results,
    markdown_files,
    score_table,
    write_report,
)
from sweep_results import EXPECTED_TABLE, MODEL, results, write_db


@pytest.fixture
def sweep_db(tmp_path: Path) -> Path:
    return write_db(tmp_path / "sweep.sqlite")


def test_table_matches_the_paper_layout(sweep_db: Path) -> None:
    assert markdown_files(build_report(load_results([sweep_db])))["table.md"] == EXPECTED_TABLE


def test_delta_retained_best_and_droppable(sweep_db: Path) -> None:
    report = build_report(load_results([sweep_db]))
    top2 = report.mean.loc[(MODEL, "top", 2)]
    assert top2["Avg"] == pytest.approx(81.0)
    assert top2["Δ"] == pytest.approx(81.0 - 81.5)
    assert top2["% retained"] == pytest.approx(100 * 81.0 / 81.5)
    assert report.std.loc[(MODEL, "none", 0), "Avg"] == pytest.approx(pd.Series([80.0, 83.0]).std())
    assert (report.seeds == 2).all()

    best = best_by_k(report)
    assert best[["K", "strategy"]].values.tolist() == [[2, "top"], [4, "top"]]

    drops = droppable(report).set_index("task")
    # Largest K within 1% of the full model: rte 71 -> 70.29, sst2 92 -> 91.08.
    assert drops.loc["rte", "top"] == 2 and drops.loc["sst2", "top"] == 4
    assert drops.loc["rte", "bottom"] == 4 and drops.loc["sst2", "bottom"] == 0


def test_single_seed_cells_have_no_std(sweep_db: Path) -> None:
    runs = load_results([sweep_db])
    table = score_table(build_report(runs[runs["seed"] == 1]))
    assert table.iloc[0, 3:].tolist() == ["90.0", "70.0", "80.0", "+0.0", "100.0"]
    assert not table.apply(lambda column: column.astype(str).str.contains("±")).any().any()


def test_without_the_full_model_there_is_no_delta_or_droppable(sweep_db: Path) -> None:
    runs = load_results([sweep_db])
    report = build_report(runs[runs["strategy"] != "none"])
    assert "Δ" not in report.mean and droppable(report) is None
    assert list(markdown_files(report)) == ["table.md", "best.md"]


def test_write_report_outputs(sweep_db: Path, tmp_path: Path) -> None:
    out = tmp_path / "report"
    written = write_report(build_report(load_results([sweep_db])), out)
    names = {"table.md", "best.md", "droppable.md", "table.csv", "table.tex", "average_vs_dropped.png"}
    assert {path.name for path in written} == names
    assert (out / "average_vs_dropped.png").read_bytes().startswith(b"\x89PNG")
    csv = pd.read_csv(out / "table.csv")
    assert csv.loc[csv["strategy"] == "top", "% retained"].round(2).tolist() == [99.39, 98.77]
    assert r"$\Delta$ & \% retained" in (out / "table.tex").read_text()
    with pytest.raises(LayerDropError, match="unknown report format 'pdf'"):
        write_report(build_report(load_results([sweep_db])), out, ["md", "pdf"])


def test_json_directory_gives_the_same_table(tmp_path: Path, sweep_db: Path) -> None:
    runs_dir = tmp_path / "runs"
    for i, result in enumerate(results()):
        (runs_dir / f"run{i}").mkdir(parents=True)
        (runs_dir / f"run{i}" / "result.json").write_text(json.dumps(result))
        (runs_dir / f"run{i}" / "config.json").write_text(json.dumps({"model_type": "bert"}))  # not a result
    from_dir = markdown_files(build_report(load_results([runs_dir])))
    assert from_dir == markdown_files(build_report(load_results([sweep_db])))
    (tmp_path / "bad.json").write_text("{}")
    with pytest.raises(LayerDropError, match="is not a run result"):
        load_results([tmp_path / "bad.json"])


def test_plain_and_distilled_rows_stand_side_by_side(tmp_path: Path) -> None:
    """Distilled runs get a "recovery" level after the strategy; older results without one count as fine-tuning."""
    plain = [r for r in results() if r["seed"] == 1]
    distilled = [
        {**r, "recovery": "distillation", "score": r["score"] + 0.01} for r in plain if r["strategy"] != "none"
    ]
    path = tmp_path / "runs.json"
    path.write_text(json.dumps(plain + distilled))
    table = score_table(build_report(load_results([path])))
    assert list(table.columns[:4]) == ["model", "strategy", "recovery", "K"]
    rows = list(zip(table["strategy"], table["recovery"], table["K"], table["Avg"], strict=True))
    assert rows[:3] == [
        ("none", "fine-tuning", 0, "80.0"),
        ("bottom", "distillation", 2, "73.5"),
        ("bottom", "fine-tuning", 2, "72.5"),
    ]
