"""The task registry: names, aliases, label conventions of nyu-mll/glue, custom tasks."""

import pytest

from layerdrop.errors import LayerDropError
from layerdrop.glue import GLUE_TASKS, TASKS, TOY_TASK, custom_task, get_task


def test_all_nine_glue_tasks_and_the_toy_task_are_registered():
    glue = {"cola", "sst2", "mrpc", "stsb", "qqp", "mnli", "qnli", "rte", "wnli"}
    assert {task.name for task in GLUE_TASKS} == glue
    assert set(TASKS) == glue | {TOY_TASK.name}
    assert all(task.hub_path == "nyu-mll/glue" and task.hub_config == task.name for task in GLUE_TASKS)


@pytest.mark.parametrize(
    ("alias", "name"),
    [
        ("SST-2", "sst2"),
        ("sst2", "sst2"),
        ("sts-b", "stsb"),
        ("STS-B", "stsb"),
        ("stsb", "stsb"),
        ("MNLI", "mnli"),
        ("CoLA", "cola"),
        ("Toy-Sentiment", "toy-sentiment"),
        ("toy_sentiment", "toy-sentiment"),
    ],
)
def test_get_task_ignores_case_and_punctuation(alias, name):
    assert get_task(alias).name == name


def test_unknown_task_lists_the_known_ones():
    with pytest.raises(LayerDropError, match="unknown task 'squad'.*cola.*wnli"):
        get_task("squad")


@pytest.mark.parametrize(
    ("name", "labels"),
    [
        ("mnli", ("entailment", "neutral", "contradiction")),
        ("rte", ("entailment", "not_entailment")),
        ("qnli", ("entailment", "not_entailment")),
        ("wnli", ("not_entailment", "entailment")),
        ("mrpc", ("not_equivalent", "equivalent")),
        ("qqp", ("not_duplicate", "duplicate")),
        ("sst2", ("negative", "positive")),
        ("cola", ("unacceptable", "acceptable")),
    ],
)
def test_label_ids_match_the_hub(name, labels):
    task = get_task(name)
    assert task.label_names == labels
    assert task.num_labels == len(labels) and not task.is_regression


def test_stsb_is_regression():
    task = get_task("stsb")
    assert task.is_regression and task.num_labels == 1
    assert task.metric_names == ("pearson", "spearmanr")


def test_text_columns():
    assert get_task("rte").text_columns == ("sentence1", "sentence2")
    assert get_task("mnli").text_columns == ("premise", "hypothesis")
    assert get_task("qnli").text_columns == ("question", "sentence")
    assert get_task("qqp").text_columns == ("question1", "question2")
    assert get_task("cola").text_columns == ("sentence",)


def test_splits_and_aliases():
    mnli, rte = get_task("mnli"), get_task("rte")
    assert mnli.splits == ("train", "validation_matched", "validation_mismatched")
    assert mnli.resolve_split("dev_mismatched") == "validation_mismatched"
    assert rte.resolve_split("dev") == rte.resolve_split("Validation") == "validation"
    with pytest.raises(LayerDropError, match="mnli has no split 'validation'"):
        mnli.resolve_split("validation")
    with pytest.raises(LayerDropError, match="test"):
        rte.resolve_split("test")


def test_custom_tasks():
    task = custom_task("reviews", ["text"], label_names=["neg", "pos", "mixed"])
    assert (task.text_columns, task.num_labels, task.metric_names) == (("text",), 3, ("accuracy",))
    assert custom_task("pairs", ("a", "b")).label_names == ("0", "1")
    score = custom_task("score", ("a", "b"), regression=True)
    assert score.is_regression and score.metric_names == ("pearson", "spearmanr")
    with pytest.raises(LayerDropError, match="one or two text columns"):
        custom_task("bad", ("a", "b", "c"))
    with pytest.raises(LayerDropError, match="at least 2 labels"):
        custom_task("bad", ("a",), num_labels=1)
