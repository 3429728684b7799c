"""Reports: the paper-style table from a hand-written sweep database, and the numbers behind it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from layerdrop.errors import LayerDropError
from layerdrop.report import (
    best_by_k, build_report, droppable, load_results, markdown_files, score_table, write_report,
)
from layerdrop.sweep import open_db, record

MODEL = "bert-base-uncased"
# (strategy, K) -> task -> headline score ×100 for seeds 1 and 2.
SCORES = {
    ("none", 0): {"rte": (70, 72), "sst2": (90, 94)},
    ("top", 2): {"rte": (70, 71), "sst2": (91, 92)},
    ("top", 4): {"rte": (68, 70), "sst2": (92, 92)},
    ("bottom", 2): {"rte": (60, 62), "sst2": (85, 87)},
    ("bottom", 4): {"rte": (71, 71), "sst2": (80, 80)},  # rte within 1% at K=4 though not at K=2
}

EXPECTED_TABLE = """\
| model             | strategy   | K   | sst2       | rte        | Avg        | Δ    | % retained   |
|:------------------|:-----------|:----|:-----------|:-----------|:-----------|:-----|:-------------|
| bert-base-uncased | none       | 0   | 92.0 ± 2.8 | 71.0 ± 1.4 | 81.5 ± 2.1 | +0.0 | 100.0        |
| bert-base-uncased | bottom     | 2   | 86.0 ± 1.4 | 61.0 ± 1.4 | 73.5 ± 1.4 | -8.0 | 90.2         |
| bert-base-uncased | top        | 2   | 91.5 ± 0.7 | 70.5 ± 0.7 | 81.0 ± 0.7 | -0.5 | 99.4         |
| bert-base-uncased | bottom     | 4   | 80.0 ± 0.0 | 71.0 ± 0.0 | 75.5 ± 0.0 | -6.0 | 92.6         |
| bert-base-uncased | top        | 4   | 92.0 ± 0.0 | 69.0 ± 1.4 | 80.5 ± 0.7 | -1.0 | 98.8         |
"""


def _results() -> list[dict]:
    return [
        {"model": MODEL, "task": task, "strategy": strategy, "num_drop": k, "seed": seed, "regime": "pretrained",
         "metrics": {"accuracy": score / 100}, "score": score / 100, "dropped_layers": list(range(12 - k, 12))}
        for (strategy, k), by_task in SCORES.items()
        for task, scores in by_task.items()
        for seed, score in zip((1, 2), scores)
    ]


@pytest.fixture
def sweep_db(tmp_path: Path) -> Path:
    path = tmp_path / "sweep.sqlite"
    conn = open_db(path)
    for result in _results():
        spec = {key: result[key] for key in ("model", "task", "strategy", "num_drop", "seed", "regime")}
        record(conn, spec, result)
    conn.close()
    return path


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
    for i, result in enumerate(_results()):
        (runs_dir / f"run{i}").mkdir(parents=True)
        (runs_dir / f"run{i}" / "result.json").write_text(json.dumps(result))
        (runs_dir / f"run{i}" / "config.json").write_text(json.dumps({"model_type": "bert"}))  # not a result
    from_dir = markdown_files(build_report(load_results([runs_dir])))
    assert from_dir == markdown_files(build_report(load_results([sweep_db])))
    (tmp_path / "bad.json").write_text("{}")
    with pytest.raises(LayerDropError, match="is not a run result"):
        load_results([tmp_path / "bad.json"])


def test_cli_report(sweep_db: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    done = subprocess.run(
        [sys.executable, "-c", "from layerdrop.cli import main; main()", "report", str(sweep_db), "-o", str(out),
         "--formats", "md,png"],
        capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert EXPECTED_TABLE in done.stdout
    assert sorted(p.name for p in out.iterdir()) == ["average_vs_dropped.png", "best.md", "droppable.md", "table.md"]

    missing = subprocess.run(
        [sys.executable, "-c", "from layerdrop.cli import main; main()", "report", str(tmp_path / "nope.sqlite")],
        capture_output=True, text=True, timeout=120,
    )
    assert missing.returncode == 2
    assert missing.stderr.splitlines() == [f"error: no such results database: {tmp_path / 'nope.sqlite'}"]
