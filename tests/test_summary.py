"""`inspect`'s summary, counted on the meta device.

Parameters by part against a hand count, the size on disk, the dropping record; damaged weights are not reported
as fine.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from layerdrop.architectures import parameter_count
from layerdrop.checkpoint import load_model, save_model
from layerdrop.errors import LayerDropError
from layerdrop.summary import model_summary
from layerdrop.surgery import drop_layers
from tiny_checkpoints import DAMAGE, damage_weights, save_tiny_bert, tiny_tokenizer

HIDDEN, FFN = 32, 37
PER_LAYER = (
    4 * HIDDEN * HIDDEN + 4 * HIDDEN + 2 * HIDDEN * FFN + FFN + HIDDEN + 4 * HIDDEN
)  # attention, FFN, two LayerNorms


def test_parameters_by_part_equal_a_hand_count(tiny_bert_dir: Path) -> None:
    summary = model_summary(str(tiny_bert_dir))
    vocab = len(tiny_tokenizer())
    params = summary["parameters"]
    assert (summary["architecture"], summary["model_type"], summary["num_layers"]) == (
        "BertForSequenceClassification",
        "bert",
        4,
    )
    assert params["per_layer"] == [PER_LAYER] * 4 and params["layers"] == 4 * PER_LAYER
    assert params["embeddings"] == vocab * HIDDEN + 512 * HIDDEN + 2 * HIDDEN + 2 * HIDDEN
    assert params["other"] == HIDDEN * HIDDEN + HIDDEN + 2 * HIDDEN + 2  # pooler and the 2-label classifier
    assert params["total"] == parameter_count(load_model(str(tiny_bert_dir)))
    assert summary["size_on_disk_bytes"] == (tiny_bert_dir / "model.safetensors").stat().st_size
    assert summary["layer_dropping"] is None and "removed" not in params


def test_a_dropped_model_reports_what_was_removed(tiny_bert_dir: Path, tmp_path: Path) -> None:
    model = drop_layers(load_model(str(tiny_bert_dir)), [0, 3], strategy={"name": "explicit"})
    summary = model_summary(str(save_model(model, tmp_path / "dropped")))
    assert summary["num_layers"] == 2
    assert summary["parameters"]["removed"] == 2 * PER_LAYER
    assert summary["parameters"]["original_total"] == model_summary(str(tiny_bert_dir))["parameters"]["total"]
    assert summary["layer_dropping"]["kept_layers"] == [1, 2]


@pytest.mark.parametrize("how", DAMAGE)
def test_damaged_weights_are_not_reported_as_fine(tmp_path: Path, how: str) -> None:
    folder = save_tiny_bert(tmp_path / "model")
    damage_weights(folder, how)
    with pytest.raises(
        LayerDropError, match="no weights in" if how == "missing" else "not a readable safetensors file"
    ):
        model_summary(str(folder))
