"""Checkpoints: a dropped model of every architecture reloads with plain transformers.

Damaged or missing weights, a head that was never trained, and paths that hold no model are one-line errors.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from layerdrop.checkpoint import check_weights, load_model, load_tokenizer, model_card, resolve_source, save_model
from layerdrop.errors import LayerDropError
from layerdrop.surgery import drop_layers
from tiny_checkpoints import DAMAGE, damage_weights, save_tiny_bert
from tiny_models import TINY, tiny_inputs, tiny_model

DROP = [1, 2]


def logits(model: nn.Module, inputs: dict) -> torch.Tensor:
    with torch.no_grad():
        return model(**inputs).logits


RELOAD_SCRIPT = """
import json, sys, torch, transformers
for folder, head in json.loads(sys.argv[1]):
    model = getattr(transformers, head).from_pretrained(folder).eval()
    inputs = torch.load(folder + "/inputs.pt")
    with torch.no_grad():
        torch.save(model(**inputs).logits, folder + "/reloaded.pt")
assert not any(name.startswith("layerdrop") for name in sys.modules), "layerdrop was imported"
"""


@pytest.mark.slow
def test_save_and_reload_without_layerdrop(tmp_path: Path) -> None:
    """Every architecture reloads with plain transformers in a fresh process, with the same logits."""
    inputs = tiny_inputs()
    jobs, expected = [], {}
    for model_type, (head, _) in TINY.items():
        model = tiny_model(model_type)
        drop_layers(model, DROP, strategy={"name": "explicit"})
        folder = save_model(model, tmp_path / model_type)
        torch.save(inputs, folder / "inputs.pt")
        expected[model_type] = logits(model, inputs)
        jobs.append((str(folder), head))
    subprocess.run([sys.executable, "-c", RELOAD_SCRIPT, json.dumps(jobs)], check=True, cwd=tmp_path)
    for model_type in TINY:
        folder = tmp_path / model_type
        torch.testing.assert_close(torch.load(folder / "reloaded.pt"), expected[model_type], rtol=0, atol=0)
        config = json.loads((folder / "config.json").read_text())
        assert config["layer_dropping"]["dropped_layers"] == DROP
        assert config["layer_dropping"]["kept_layers"] == [0, 3]
        assert config["layer_dropping"]["original_num_layers"] == 4
        assert "layerdrop_version" in config["layer_dropping"]
        assert list(folder.glob("*.safetensors"))
        assert "dropped layers (0-based, original numbering): [1, 2]" in (folder / "README.md").read_text()


@pytest.mark.parametrize("how", DAMAGE)
def test_damaged_weights_are_refused_before_loading(tmp_path: Path, how: str) -> None:
    folder = save_tiny_bert(tmp_path / "model")
    damage_weights(folder, how)
    expected = "no weights in" if how == "missing" else "is not a readable safetensors file"
    for call in (check_weights, load_model):
        with pytest.raises(LayerDropError, match=expected) as raised:
            call(str(folder))
        assert "\n" not in str(raised.value)


def test_intact_weights_are_listed(tmp_path: Path) -> None:
    folder = save_tiny_bert(tmp_path / "model")
    assert check_weights(str(folder)) == [folder / "model.safetensors"]
    assert check_weights("bert-base-uncased") == []  # a hub name: the hub checks its own files


def test_a_head_that_was_never_trained_is_refused_only_when_asked(tmp_path: Path) -> None:
    base = save_tiny_bert(tmp_path / "base", head=False)
    with pytest.raises(
        LayerDropError,
        match=r"has no trained .* head \(classifier.bias, classifier.weight would be random\); fine-tune it first",
    ):
        load_model(str(base), head="sequence-classification", trained_head=True)
    model = load_model(str(base), head="sequence-classification", num_labels=3)  # a new head, as fine-tuning wants
    assert model.config.num_labels == 3 and model.name_or_path == str(base)
    trained = save_tiny_bert(tmp_path / "trained")
    assert type(load_model(str(trained), trained_head=True)).__name__ == "BertForSequenceClassification"


@pytest.mark.parametrize(
    ("name", "message"), [("./nowhere", "no model at './nowhere'"), ("a/b/c", "no model at 'a/b/c'")]
)
def test_paths_that_hold_no_model(name: str, message: str) -> None:
    with pytest.raises(LayerDropError, match=message):
        resolve_source(name)


def test_unknown_head_and_config_only_folder(tmp_path: Path) -> None:
    folder = save_tiny_bert(tmp_path / "model")
    with pytest.raises(LayerDropError, match="unknown head 'nope'; known: base, sequence-classification"):
        load_model(str(folder), head="nope")
    (folder / "model.safetensors").unlink()
    assert load_tokenizer(str(folder)) is not None  # the tokenizer does not need the weights
    with pytest.raises(LayerDropError, match="no weights in"):
        load_model(str(folder))


def test_save_model_writes_a_card_and_refuses_to_clobber(tmp_path: Path) -> None:
    model = tiny_model("bert")
    model.name_or_path = "bert-base-uncased"
    drop_layers(model, [3], strategy={"name": "top", "num_drop": 1})
    out = save_model(model, tmp_path / "out")
    card = (out / "README.md").read_text()
    assert card == model_card(model) and "base_model: bert-base-uncased" in card
    assert (
        "`bert-base-uncased` with 1 of its 4 transformer layers removed" in card
        and "- strategy: `top` (num_drop=1)" in card
    )
    with pytest.raises(LayerDropError, match="already exists; pass --overwrite"):
        save_model(model, tmp_path / "out")
    save_model(model, tmp_path / "out", overwrite=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]
