"""Calibration data: texts, pairs or a task's split, tokenized shortest first for the hooked forward pass."""

from __future__ import annotations

from pathlib import Path

import pytest
from transformers import BertTokenizer

from layerdrop.calibration import load_calibration, make_batches
from layerdrop.errors import LayerDropError
from layerdrop.settings import CalibrationData
from scoring_inputs import save_scored_bert, write_texts


def test_texts_and_pairs_are_tokenized_shortest_first(tmp_path: Path) -> None:
    tokenizer = BertTokenizer.from_pretrained(save_scored_bert(tmp_path / "m"))
    texts = ["the movie was good", "i liked it", "a very very dull boring plot"]
    result = make_batches(texts, tokenizer, batch_size=2)
    assert [b["input_ids"].shape[0] for b in result] == [2, 1]
    assert result[0]["attention_mask"].sum(1).tolist() == [5, 6]
    pairs = make_batches([("the movie", "was good")], tokenizer)
    assert pairs[0]["token_type_ids"].tolist() == [[0, 0, 0, 0, 1, 1, 1]]


def test_a_task_split_keeps_its_labels_beside_the_texts(tmp_path: Path) -> None:
    tokenizer = BertTokenizer.from_pretrained(save_scored_bert(tmp_path / "m"))
    dataset, task, record = load_calibration(CalibrationData(task="toy-sentiment", max_examples=5))
    assert (task.name, len(dataset), record) == (
        "toy-sentiment",
        5,
        {"task": "toy-sentiment", "split": "validation", "num_examples": 5},
    )
    (batch,) = make_batches(dataset, tokenizer, task=task)
    lengths = [len(tokenizer(text)["input_ids"]) for text in dataset["sentence"]]
    order = sorted(range(5), key=lambda i: lengths[i])  # shortest first, labels travelling with their texts
    assert batch["labels"].tolist() == [dataset["label"][i] for i in order]
    assert batch["attention_mask"].sum(1).tolist() == sorted(lengths)


def test_a_text_file_skips_blank_lines_and_is_cut_to_max_examples(tmp_path: Path) -> None:
    path = write_texts(tmp_path / "texts.txt", count=4)
    path.write_text(path.read_text().replace("\n", "\n\n", 1))
    texts, task, record = load_calibration(CalibrationData(text_file=str(path), max_examples=3))
    assert texts == [line for line in path.read_text().splitlines() if line][:3] and task is None
    assert record == {"text_file": str(path), "num_examples": 3}
    assert load_calibration(CalibrationData()) == (None, None, {})


@pytest.mark.parametrize(
    ("content", "message"), [(None, "no text file at"), ("\n \n", "holds no text"), (b"\xff\xfe", "is not UTF-8 text")]
)
def test_unusable_text_files(tmp_path: Path, content: str | bytes | None, message: str) -> None:
    path = tmp_path / "texts.txt"
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        path.write_text(content)
    with pytest.raises(LayerDropError, match=message):
        load_calibration(CalibrationData(text_file=str(path)))


def test_nothing_to_score() -> None:
    with pytest.raises(LayerDropError, match="no data to score the layers on"):
        make_batches([], None)
    with pytest.raises(LayerDropError, match="no tokenizer"):
        make_batches(["a text"], None)
