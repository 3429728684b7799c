"""`layerdrop distill`, `run --distill` and `evaluate --embeddings` from the command line, on tiny models."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from run_cli import assert_one_line_error, layerdrop_in_process
from tiny_checkpoints import save_tiny_bert

FAST = [
    "--epochs",
    "1",
    "--batch-size",
    "16",
    "--max-length",
    "32",
    "--lr",
    "1e-3",
    "--max-train-samples",
    "48",
    "--max-eval-samples",
    "32",
]


@pytest.fixture(scope="module")
def teacher_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny BERT fine-tuned on the toy task, saved as the teacher."""
    from layerdrop.experiment import RunConfig, run_experiment

    folder = tmp_path_factory.mktemp("distill")
    base = save_tiny_bert(folder / "base", head=False)
    training = {"epochs": 1, "batch_size": 16, "max_length": 32, "learning_rate": 1e-3}
    run_experiment(
        RunConfig(model=str(base), task="toy-sentiment", max_train_samples=48, max_eval_samples=32, training=training),
        folder / "teacher",
    )
    return folder / "teacher"


def test_distill_a_dropped_teacher_back(teacher_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert layerdrop_in_process(capsys, "drop", teacher_dir, "-k", "2", "-o", tmp_path / "student").returncode == 0
    ran = layerdrop_in_process(
        capsys,
        "distill",
        tmp_path / "student",
        "--teacher",
        teacher_dir,
        "--task",
        "toy-sentiment",
        "--hidden-weight",
        "1",
        *FAST,
        "-o",
        tmp_path / "out",
        "--result",
        tmp_path / "r.json",
    )
    assert ran.returncode == 0, ran.stderr
    record = json.loads((tmp_path / "r.json").read_text())
    assert record["retained"] == pytest.approx(record["score"] / record["teacher_score"])
    assert record["distillation"] == {"alpha": 0.5, "temperature": 2.0, "hidden_weight": 1.0}
    assert record["train"]["train_examples"] == 48 and "% retained" in ran.stdout
    saved = json.loads((tmp_path / "out" / "config.json").read_text())
    assert saved["layer_dropping"]["kept_layers"] == [0, 1] and saved["num_hidden_layers"] == 2
    evaluated = layerdrop_in_process(
        capsys,
        "evaluate",
        tmp_path / "out",
        "--task",
        "toy-sentiment",
        "--max-eval-samples",
        "32",
        "--max-length",
        "32",
    )
    assert json.loads(evaluated.stdout)["score"] == pytest.approx(record["score"])


def test_run_distill_reports_the_teacher_and_what_is_retained(teacher_dir: Path, capsys: pytest.CaptureFixture) -> None:
    ran = layerdrop_in_process(
        capsys,
        "run",
        teacher_dir,
        "--task",
        "toy-sentiment",
        "--strategy",
        "top",
        "-k",
        "1",
        "--regime",
        "finetuned",
        "--model-is-finetuned",
        "--distill",
        *FAST,
    )
    assert ran.returncode == 0, ran.stderr
    result = json.loads(ran.stdout)
    assert result["recovery"] == "distillation" and result["teacher"]["model"] == str(teacher_dir)
    assert result["teacher"]["score"] == pytest.approx(
        result["stages"]["full"]["score"]
    )  # the teacher is the model before dropping
    assert result["retained"] == pytest.approx(result["score"] / result["teacher"]["score"])


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (
            ["run", "{teacher}", "--task", "toy-sentiment", "--teacher", "{teacher}"],
            "teacher and the distillation settings go with --distill",
        ),
        (["run", "{teacher}", "--task", "toy-sentiment", "--distill"], "distillation recovers a dropped model"),
        (
            [
                "distill",
                "{teacher}",
                "--teacher",
                "{teacher}",
                "--embeddings",
                "--alpha",
                "0.1",
                "--text-file",
                "x",
                "-o",
                "{out}",
            ],
            "--alpha, --temperature and --hidden-weight go with task distillation",
        ),
        (
            [
                "distill",
                "{teacher}",
                "--teacher",
                "{teacher}",
                "--task",
                "toy-sentiment",
                "--text-file",
                "x",
                "-o",
                "{out}",
            ],
            "--text-file goes with --embeddings",
        ),
        (["distill", "{teacher}", "--teacher", "{teacher}", "-o", "{out}"], "give --task"),
        (
            ["evaluate", "{teacher}", "--task", "toy-sentiment", "--embeddings"],
            "--embeddings scores sentence-pair similarity",
        ),
    ],
)
def test_distillation_misuse_is_one_line(
    teacher_dir: Path, tmp_path: Path, args: list[str], fragment: str, capsys: pytest.CaptureFixture
) -> None:
    ran = layerdrop_in_process(capsys, *(a.format(teacher=teacher_dir, out=tmp_path / "out") for a in args))
    assert_one_line_error(ran, fragment)
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_embeddings_zero_shot_and_distillation_on_minilm(
    minilm_dir: Path, glue_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """Zero-shot STS-B through the CLI equals the library's, and embedding distillation moves the student up."""
    from layerdrop.embeddings import load_encoder, sts_spearman
    from layerdrop.glue import dev_sets, get_task, load_split

    assert layerdrop_in_process(capsys, "drop", minilm_dir, "-k", "2", "-o", tmp_path / "top2").returncode == 0
    ran = layerdrop_in_process(
        capsys,
        "evaluate",
        tmp_path / "top2",
        "--task",
        "stsb",
        "--data",
        glue_dir,
        "--embeddings",
        "--max-eval-samples",
        "200",
    )
    task = get_task("stsb")
    expected = sts_spearman(
        load_encoder(str(tmp_path / "top2")), dev_sets(task, glue_dir, 200)["validation"], task, progress=False
    )
    assert json.loads(ran.stdout)["score"] == pytest.approx(expected)
    sentences = tmp_path / "sentences.txt"
    sentences.write_text("\n".join(load_split(task, "train", glue_dir)["sentence1"][:400]))  # never the dev text
    distilled = layerdrop_in_process(
        capsys,
        "distill",
        tmp_path / "top2",
        "--teacher",
        minilm_dir,
        "--embeddings",
        "--text-file",
        sentences,
        "--epochs",
        "1",
        "-o",
        tmp_path / "distilled",
    )
    assert distilled.returncode == 0, distilled.stderr
    after = sts_spearman(
        load_encoder(str(tmp_path / "distilled")), dev_sets(task, glue_dir, 200)["validation"], task, progress=False
    )
    assert after > expected + 2
