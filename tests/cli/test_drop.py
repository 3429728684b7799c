"""`layerdrop drop`, `inspect` and `strategies` from the command line, on tiny and real models."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from drop_check import layers_skipped
from run_cli import assert_one_line_error, layerdrop, layerdrop_in_process
from scoring_inputs import IDENTITY, save_scored_bert, write_texts
from tiny_models import tiny_model

RELOAD = """
import sys, json, torch
from transformers import AutoModel, AutoTokenizer
model = AutoModel.from_pretrained(sys.argv[1]).eval()
tokenizer = AutoTokenizer.from_pretrained(sys.argv[1])
batch = tokenizer(["layers can be dropped", "a smaller model"], padding=True, return_tensors="pt")
with torch.no_grad():
    print(json.dumps(model(**batch).last_hidden_state[:, 0].tolist()))
assert "layerdrop" not in sys.modules
"""


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("tiny") / "bert"
    tiny_model("bert").save_pretrained(folder)
    return folder


@pytest.mark.slow
def test_minilm_top2_reloads_and_inspect_shows_the_drop(
    minilm_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    out = tmp_path / "minilm-top2"
    result = layerdrop_in_process(capsys, "drop", minilm_dir, "--strategy", "top", "--num-drop", "2", "--output", out)
    assert result.returncode == 0, result.stderr
    assert "dropped layers [4, 5] of 6" in result.stdout

    reloaded = subprocess.run([sys.executable, "-c", RELOAD, str(out)], capture_output=True, text=True, check=True)
    import torch
    from transformers import AutoModel, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(minilm_dir)
    with torch.no_grad(), layers_skipped(AutoModel.from_pretrained(minilm_dir).eval(), [4, 5]) as reference:
        expected = reference(
            **tokenizer(["layers can be dropped", "a smaller model"], padding=True, return_tensors="pt")
        ).last_hidden_state[:, 0]
    torch.testing.assert_close(torch.tensor(json.loads(reloaded.stdout)), expected, rtol=0, atol=1e-6)

    summary = json.loads(layerdrop_in_process(capsys, "inspect", out, "--json").stdout)
    assert summary["num_layers"] == 4
    assert summary["parameters"]["total"] == 22_713_216 - 2 * 1_774_464
    assert summary["parameters"]["removed"] == 2 * 1_774_464
    assert summary["parameters"]["original_total"] == 22_713_216
    assert summary["layer_dropping"]["dropped_layers"] == [4, 5]
    assert summary["layer_dropping"]["strategy"] == {"name": "top", "num_drop": 2}
    table = layerdrop_in_process(capsys, "inspect", out).stdout
    assert "parameters removed" in table and "3,548,928" in table


def test_explicit_layers_and_strategies_listing(tiny_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    result = layerdrop_in_process(capsys, "drop", tiny_dir, "--layers", "1-2", "-o", tmp_path / "out")
    assert result.returncode == 0, result.stderr
    record = json.loads((tmp_path / "out" / "config.json").read_text())["layer_dropping"]
    assert record["dropped_layers"] == [1, 2] and record["strategy"]["name"] == "explicit"
    listing = layerdrop_in_process(capsys, "strategies").stdout
    for name in ["top", "bottom", "even-alternate", "odd-alternate", "symmetric", "random", "explicit"]:
        assert f"\n{name} " in "\n" + listing


def test_existing_output_needs_overwrite(tiny_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("precious")
    assert_one_line_error(layerdrop_in_process(capsys, "drop", tiny_dir, "-k", "1", "-o", out), "--overwrite")
    assert (out / "keep.txt").read_text() == "precious"
    result = layerdrop_in_process(capsys, "drop", tiny_dir, "-k", "1", "-o", out, "--overwrite")
    assert result.returncode == 0, result.stderr
    assert not (out / "keep.txt").exists() and (out / "config.json").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["out"]  # no staging leftovers


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["drop", "./no/such/model", "-k", "1", "-o", "{out}"], "no model at './no/such/model'"),
        (["drop", "{tiny}", "-k", "4", "-o", "{out}"], "--num-drop must be between 1 and 3"),
        (["drop", "{tiny}", "-o", "{out}"], "strategy 'top': --num-drop is required"),
        (
            ["drop", "{tiny}", "--layers", "1", "-k", "2", "-o", "{out}"],
            "--layers already says which layers to drop; leave out --num-drop",
        ),
        (["drop", "{tiny}", "--layers", "0-3", "-o", "{out}"], "would leave none"),
        (["drop", "{tiny}", "--layers", "7", "-o", "{out}"], "out of range"),
        (["drop", "{tiny}", "--layers", "x", "-o", "{out}"], "not an index"),
        (["drop", "{tiny}", "--strategy", "middle", "-k", "1", "-o", "{out}"], "unknown strategy 'middle'"),
        (["drop", "{tiny}", "-k", "1", "-o", "{out}", "--head", "nope"], "unknown head 'nope'"),
        (["drop", "{tiny}", "-k", "abc", "-o", "{out}"], "--num-drop"),
        (["drop", "{tiny}", "-k", "1"], "--output"),
        (["drop", "{tiny}", "-k", "1", "-o", "{out}", "--bogus"], "--bogus"),
        (["drop", "{t5}", "-k", "1", "-o", "{out}"], "unsupported architecture 't5'"),
        (["inspect", "{t5}"], "unsupported architecture 't5'"),
        (["inspect", "/no/such/dir"], "no model at"),
    ],
)
def test_bad_input_is_one_line_exit_2(
    args: list[str], fragment: str, tiny_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    from transformers import T5Config, T5Model

    t5 = tmp_path / "t5"
    if "{t5}" in args:
        T5Model(T5Config(d_model=16, d_ff=32, num_layers=2, num_heads=2, d_kv=8, vocab_size=50)).save_pretrained(t5)
    out = tmp_path / "out"
    result = layerdrop_in_process(capsys, *(a.format(tiny=tiny_dir, out=out, t5=t5) for a in args))
    assert_one_line_error(result, fragment)
    assert not out.exists()


@pytest.mark.slow
def test_bad_input_in_a_real_process(tmp_path: Path) -> None:
    assert_one_line_error(layerdrop("drop", "./missing", "-k", "1", "-o", tmp_path / "out"), "no model at './missing'")


def test_drop_by_contribution_from_a_text_file(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    model = save_scored_bert(tmp_path / "model", identity=IDENTITY)
    texts = write_texts(tmp_path / "texts.txt")
    result = layerdrop_in_process(
        capsys,
        "drop",
        model,
        "--strategy",
        "contribution",
        "--threshold",
        "0.999",
        "--text-file",
        texts,
        "-o",
        tmp_path / "out",
    )
    assert result.returncode == 0, result.stderr
    record = json.loads((tmp_path / "out" / "config.json").read_text())["layer_dropping"]
    assert record["dropped_layers"] == [IDENTITY]
    assert record["strategy"]["name"] == "contribution" and record["strategy"]["data"]["num_examples"] == 12


def test_drop_with_a_bad_threshold_fails_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    model = save_scored_bert(tmp_path / "model")
    texts = write_texts(tmp_path / "texts.txt")
    result = layerdrop_in_process(
        capsys,
        "drop",
        model,
        "--strategy",
        "contribution",
        "--threshold",
        "1.5",
        "--text-file",
        texts,
        "-o",
        tmp_path / "out",
    )
    assert_one_line_error(result, "--threshold: input should be less than or equal to 1")
    assert not (tmp_path / "out").exists()
