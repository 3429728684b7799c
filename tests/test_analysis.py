"""`analyze`: per-layer scores as JSON and CSV, the layer-to-layer similarity heatmap and the contribution chart."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from cli import assert_one_line_error, layerdrop, layerdrop_in_process
from test_data_strategies import IDENTITY, batches, save_tiny_bert, tiny_llama, write_texts

from layerdrop.analysis import COLUMNS, analyze_layers, write_analysis

PNG = b"\x89PNG\r\n\x1a\n"


def test_report_files_hold_every_score_of_every_layer(tmp_path: Path) -> None:
    analysis = analyze_layers(tiny_llama(identity=IDENTITY), batches(), progress=False)
    assert analysis.pooling == "last"  # decoders default to the last token
    paths = write_analysis(analysis, tmp_path / "report", about={"model": "tiny"})
    assert [p.name for p in paths] == ["scores.json", "scores.csv", "similarity_heatmap.png", "contribution.png"]
    scores = json.loads(paths[0].read_text())
    assert scores["model"] == "tiny" and scores["num_texts"] == 24
    matrix = scores["cosine_matrix"]
    assert len(matrix) == 5 and all(len(row) == 5 for row in matrix)  # (L+1)² with the embedding output
    assert matrix[IDENTITY][IDENTITY + 1] == pytest.approx(1.0, abs=1e-6)
    with paths[1].open() as handle:
        rows = list(csv.DictReader(handle))
    assert tuple(rows[0]) == COLUMNS and [int(r["layer"]) for r in rows] == [0, 1, 2, 3]
    identity = rows[IDENTITY]
    assert float(identity["block_influence"]) == pytest.approx(0, abs=1e-6)
    assert float(identity["angular_distance"]) == min(float(r["angular_distance"]) for r in rows)
    assert all(p.read_bytes().startswith(PNG) for p in paths[2:])


def test_analyze_command_writes_the_report(tmp_path: Path) -> None:
    model = save_tiny_bert(tmp_path / "model", identity=IDENTITY)
    texts = write_texts(tmp_path / "texts.txt")
    result = layerdrop("analyze", model, "--text-file", texts, "--pooling", "mean", "-o", tmp_path / "out")
    assert result.returncode == 0, result.stderr
    assert {p.name for p in (tmp_path / "out").iterdir()} == {"scores.json", "scores.csv", "similarity_heatmap.png", "contribution.png"}
    scores = json.loads((tmp_path / "out" / "scores.json").read_text())
    assert scores["pooling"] == "mean" and scores["data"] == {"text_file": str(texts), "num_examples": 12}
    cosines = [row["cosine_mean"] for row in scores["rows"]]
    assert max(cosines) == cosines[IDENTITY]


def test_analyze_needs_data(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert_one_line_error(layerdrop_in_process(capsys, "analyze", tmp_path / "model", "-o", tmp_path / "out"), "needs data")
