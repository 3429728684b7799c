"""`layerdrop run`, `finetune` and `evaluate` from the command line, on a tiny BERT and the toy task."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from run_cli import assert_one_line_error, layerdrop_in_process


def test_cli_run_then_evaluate(tiny_bert_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out, result_file = tmp_path / "model", tmp_path / "result.json"
    ran = layerdrop_in_process(
        capsys,
        "run",
        tiny_bert_dir,
        "--task",
        "toy-sentiment",
        "--strategy",
        "symmetric",
        "-k",
        "2",
        "--max-train-samples",
        "32",
        "--max-eval-samples",
        "40",
        "--epochs",
        "1",
        "--lr",
        "1e-3",
        "-o",
        out,
        "--result",
        result_file,
    )
    assert ran.returncode == 0, ran.stderr
    result = json.loads(result_file.read_text())
    assert result["dropped_layers"] == [1, 2]
    evaluated = layerdrop_in_process(capsys, "evaluate", out, "--task", "toy-sentiment", "--max-eval-samples", "40")
    assert evaluated.returncode == 0, evaluated.stderr
    assert json.loads(evaluated.stdout)["metrics"] == result["metrics"]
    assert_one_line_error(layerdrop_in_process(capsys, "run", tiny_bert_dir, "--task", "nope"), "unknown task")


def test_finetune_result_agrees_with_the_record_of_a_dropped_model(
    tiny_bert_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    dropped, tuned = tmp_path / "dropped", tmp_path / "tuned"
    assert (
        layerdrop_in_process(capsys, "drop", tiny_bert_dir, "--strategy", "top", "-k", "2", "-o", dropped).returncode
        == 0
    )
    done = layerdrop_in_process(
        capsys,
        "finetune",
        dropped,
        "--task",
        "toy-sentiment",
        "--max-train-samples",
        "16",
        "--max-eval-samples",
        "16",
        "--epochs",
        "1",
        "-o",
        tuned,
        "--result",
        tmp_path / "r.json",
    )
    assert done.returncode == 0, done.stderr
    result = json.loads((tmp_path / "r.json").read_text())
    record = json.loads((tuned / "config.json").read_text())["layer_dropping"]
    assert (
        record == json.loads((dropped / "config.json").read_text())["layer_dropping"]
    )  # fine-tuning drops nothing more
    assert (
        (result["strategy"], result["strategy_params"])
        == (record["strategy"]["name"], {"num_drop": 2})
        == ("top", {"num_drop": 2})
    )
    assert result["num_drop"] == len(record["dropped_layers"]) == 2
    assert result["num_layers_original"] == record["original_num_layers"] == 4
    assert result["num_layers"] == record["num_layers"] == 2
    assert (
        (result["dropped_layers"], result["kept_layers"])
        == (record["dropped_layers"], record["kept_layers"])
        == ([2, 3], [0, 1])
    )
    assert result["dropped_earlier"] is True and result["regime"] == "pretrained"
