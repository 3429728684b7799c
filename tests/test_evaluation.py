"""Evaluation: batched, length-sorted, padded prediction equals one example at a time.

The metrics are those of those logits; MNLI's two dev splits give matched and "_mm" keys.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from datasets import Dataset
from transformers import AutoTokenizer

from layerdrop.checkpoint import load_model
from layerdrop.evaluation import evaluate
from layerdrop.glue import get_task, load_split
from layerdrop.settings import TrainConfig
from layerdrop.training import predict

CONFIG = TrainConfig(eval_batch_size=4, max_length=32)


def one_at_a_time(model, tokenizer, columns: list[list[str]]) -> np.ndarray:
    """The reference: every example alone, unpadded."""
    with torch.no_grad():
        return np.stack(
            [model(**tokenizer(*texts, return_tensors="pt")).logits[0].numpy() for texts in zip(*columns, strict=True)]
        )


def test_batched_logits_and_metrics_equal_one_example_at_a_time(tiny_bert_dir: Path) -> None:
    task = get_task("toy-sentiment")
    model = load_model(str(tiny_bert_dir)).eval()
    tokenizer = AutoTokenizer.from_pretrained(tiny_bert_dir)
    dev = load_split(task, "validation").select(range(10))
    expected = one_at_a_time(model, tokenizer, [dev["sentence"]])
    logits, labels = predict(model, tokenizer, task, dev, CONFIG)
    order = np.argsort([len(tokenizer(s)["input_ids"]) for s in dev["sentence"]], kind="stable")[::-1]  # longest first
    np.testing.assert_allclose(logits, expected[order], rtol=1e-4, atol=1e-5)
    assert labels.tolist() == [dev["label"][i] for i in order]
    result = evaluate(model, tokenizer, task, {"validation": dev}, CONFIG)
    accuracy = float(np.mean(expected.argmax(-1) == np.array(dev["label"])))
    assert result == {
        "metrics": {"accuracy": pytest.approx(accuracy)},
        "score": pytest.approx(accuracy),
        "eval_examples": {"validation": 10},
    }


def test_mnli_splits_give_matched_and_mismatched_metrics(tiny_bert_dir: Path) -> None:
    task = get_task("mnli")
    model = load_model(str(tiny_bert_dir), head="sequence-classification", num_labels=3).eval()
    tokenizer = AutoTokenizer.from_pretrained(tiny_bert_dir)
    matched = Dataset.from_dict(
        {
            "premise": ["the movie was good", "the plot was dull"],
            "hypothesis": ["it was fun", "it was not"],
            "label": [0, 2],
        }
    )
    mismatched = Dataset.from_dict({"premise": ["the cast is great"], "hypothesis": ["the cast is bad"], "label": [1]})
    result = evaluate(
        model, tokenizer, task, {"validation_matched": matched, "validation_mismatched": mismatched}, CONFIG
    )
    hits = [
        one_at_a_time(model, tokenizer, [d["premise"], d["hypothesis"]]).argmax(-1) == np.array(d["label"])
        for d in (matched, mismatched)
    ]
    assert result["metrics"] == {
        "accuracy": pytest.approx(hits[0].mean()),
        "accuracy_mm": pytest.approx(hits[1].mean()),
    }
    assert result["score"] == pytest.approx(hits[0].mean())
    assert result["eval_examples"] == {"validation_matched": 2, "validation_mismatched": 1}
