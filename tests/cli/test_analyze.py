"""`layerdrop analyze`: writes the report folder from a text file, and needs data."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from run_cli import assert_one_line_error, layerdrop_in_process
from scoring_inputs import IDENTITY, save_scored_bert, write_texts


def test_analyze_command_writes_the_report(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    model = save_scored_bert(tmp_path / "model", identity=IDENTITY)
    texts = write_texts(tmp_path / "texts.txt")
    result = layerdrop_in_process(
        capsys, "analyze", model, "--text-file", texts, "--pooling", "mean", "-o", tmp_path / "out"
    )
    assert result.returncode == 0, result.stderr
    assert {p.name for p in (tmp_path / "out").iterdir()} == {
        "scores.json",
        "scores.csv",
        "similarity_heatmap.png",
        "contribution.png",
    }
    scores = json.loads((tmp_path / "out" / "scores.json").read_text())
    assert scores["pooling"] == "mean" and scores["data"] == {"text_file": str(texts), "num_examples": 12}
    cosines = [row["cosine_mean"] for row in scores["rows"]]
    assert max(cosines) == cosines[IDENTITY]


def test_analyze_needs_data(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert_one_line_error(
        layerdrop_in_process(capsys, "analyze", tmp_path / "model", "-o", tmp_path / "out"), "needs data"
    )
