"""Per-layer analysis: every score as JSON and CSV, the layer-to-layer similarity heatmap and the contribution chart."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from scoring_inputs import IDENTITY, batches, tiny_llama

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
