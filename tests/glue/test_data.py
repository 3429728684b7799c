"""Loaders: GLUE TSV quirks, hub parquet layout, the hub itself, user files, the toy task, empty splits, real files."""

from pathlib import Path

import datasets
import pandas as pd
import pytest
from datasets import ClassLabel, Dataset, Features, Value

from layerdrop.errors import LayerDropError
from layerdrop.glue import (
    TOY_TASK,
    available_splits,
    custom_task,
    get_task,
    load_files,
    load_split,
    split_dev,
)
from layerdrop.glue import data as glue_data


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


RTE_HEADER = "index\tsentence1\tsentence2\tlabel\n"


# --- classic GLUE TSV quirks -------------------------------------------------------------------


def test_cola_has_no_header(tmp_path):
    write(tmp_path / "CoLA" / "dev.tsv", "gj04\t1\t\tThe sailors rode.\ngj04\t0\t*\tRode the the.\n")
    dataset = load_split(get_task("cola"), "validation", tmp_path)
    assert dataset.column_names == ["sentence", "label"]
    assert dataset["sentence"] == ["The sailors rode.", "Rode the the."]
    assert dataset["label"] == [1, 0]


def test_mrpc_header_with_byte_order_mark(tmp_path):
    header = "\ufeffQuality\t#1 ID\t#2 ID\t#1 String\t#2 String\n"
    rows = "1\t11\t12\tA cat sat.\tA cat was sitting.\n0\t13\t14\tX\tY\n"
    write(tmp_path / "MRPC" / "train.tsv", header + rows)
    dataset = load_split(get_task("mrpc"), "train", tmp_path)
    assert dataset.to_dict() == {
        "sentence1": ["A cat sat.", "X"],
        "sentence2": ["A cat was sitting.", "Y"],
        "label": [1, 0],
    }


def test_quotes_are_literal_and_last_line_needs_no_newline(tmp_path):
    rows = ['"an unclosed quote\t1', "next line\t0", 'say "hi" there\t1']
    write(tmp_path / "SST-2" / "dev.tsv", "sentence\tlabel\n" + "\n".join(rows))
    dataset = load_split(get_task("sst2"), "dev", tmp_path)
    assert dataset["sentence"] == ['"an unclosed quote', "next line", 'say "hi" there']
    assert dataset["label"] == [1, 0, 1]


def test_labels_map_to_hub_ids(tmp_path):
    write(tmp_path / "RTE" / "dev.tsv", RTE_HEADER + "0\ta\tb\tnot_entailment\n1\tc\td\tentailment\n")
    write(tmp_path / "WNLI" / "dev.tsv", RTE_HEADER + "0\ta\tb\t0\n1\tc\td\t1\n")
    write(tmp_path / "QNLI" / "dev.tsv", "index\tquestion\tsentence\tlabel\n0\tq?\ts.\tentailment\n")
    assert load_split(get_task("rte"), "validation", tmp_path)["label"] == [1, 0]
    assert load_split(get_task("wnli"), "validation", tmp_path)["label"] == [0, 1]
    qnli = load_split(get_task("qnli"), "validation", tmp_path)
    assert qnli.to_dict() == {"question": ["q?"], "sentence": ["s."], "label": [0]}


def test_mnli_tsv_columns(tmp_path):
    header = [
        "index",
        "promptID",
        "pairID",
        "genre",
        "s1_bp",
        "s2_bp",
        "s1_p",
        "s2_p",
        "sentence1",
        "sentence2",
        "label1",
        "label2",
        "label3",
        "label4",
        "label5",
        "gold_label",
    ]
    row = [
        "0",
        "1",
        "1n",
        "fiction",
        "(",
        "(",
        "(",
        "(",
        "premise.",
        "hypothesis.",
        "neutral",
        "neutral",
        "contradiction",
        "neutral",
        "neutral",
        "neutral",
    ]
    write(tmp_path / "MNLI" / "dev_mismatched.tsv", "\t".join(header) + "\n" + "\t".join(row) + "\n")
    dataset = load_split(get_task("mnli"), "validation_mismatched", tmp_path)
    assert dataset.to_dict() == {"premise": ["premise."], "hypothesis": ["hypothesis."], "label": [1]}


def test_stsb_score_is_the_float_label(tmp_path):
    header = "index\tgenre\tfilename\tyear\told_index\tsource1\tsource2\tsentence1\tsentence2\tscore\n"
    row = "0\tg\tf\t2012\t0001\tnone\tnone\tA plane.\tAn air plane.\t3.800\n"
    write(tmp_path / "STS-B" / "train.tsv", header + row)
    dataset = load_split(get_task("sts-b"), "train", tmp_path)
    assert dataset.features["label"] == Value("float32")
    assert dataset["label"] == [pytest.approx(3.8)]


def test_qqp_tsv(tmp_path):
    header = "id\tqid1\tqid2\tquestion1\tquestion2\tis_duplicate\n"
    write(tmp_path / "QQP" / "dev.tsv", header + "7\t1\t2\tWhy?\tHow come?\t1\n")
    dataset = load_split(get_task("qqp"), "validation", tmp_path)
    assert dataset.to_dict() == {"question1": ["Why?"], "question2": ["How come?"], "label": [1]}


@pytest.mark.parametrize("content", ["", RTE_HEADER], ids=["no-bytes", "header-only"])
def test_an_empty_split_is_refused(tmp_path, content):
    write(tmp_path / "RTE" / "train.tsv", content)
    with pytest.raises(LayerDropError, match="the train split of rte in .* holds no examples"):
        load_split(get_task("rte"), "train", tmp_path)


def test_wrong_field_count_names_file_and_line(tmp_path):
    path = write(tmp_path / "RTE" / "dev.tsv", RTE_HEADER + "0\ta\tb\tentailment\n1\ta\tentailment\n")
    with pytest.raises(LayerDropError, match=f"{path}:3: 3 fields, expected 4"):
        load_split(get_task("rte"), "validation", tmp_path)


def test_unknown_label_names_file_and_line(tmp_path):
    path = write(tmp_path / "RTE" / "dev.tsv", RTE_HEADER + "0\ta\tb\tentailment\n1\tc\td\tmaybe\n")
    with pytest.raises(LayerDropError, match=f"{path}:3: unknown label 'maybe'"):
        load_split(get_task("rte"), "validation", tmp_path)


def test_too_few_columns_for_the_task(tmp_path):
    write(tmp_path / "SST-2" / "train.tsv", "sentence\nhello\n")
    with pytest.raises(LayerDropError, match="train.tsv:2: 1 fields, a sst2 file has at least 2"):
        load_split(get_task("sst2"), "train", tmp_path)


def test_missing_file_says_what_was_looked_for(tmp_path):
    write(tmp_path / "RTE" / "dev.tsv", RTE_HEADER)
    looked = r"no train data for rte: looked for train\.tsv or train-\*\.parquet in .*RTE"
    with pytest.raises(LayerDropError, match=looked):
        load_split(get_task("rte"), "train", tmp_path)
    with pytest.raises(LayerDropError, match="does not exist"):
        load_split(get_task("rte"), "train", tmp_path / "nowhere")


def test_data_may_point_at_the_task_folder(tmp_path):
    write(tmp_path / "RTE" / "dev.tsv", RTE_HEADER + "0\ta\tb\tentailment\n")
    assert len(load_split(get_task("rte"), "dev", tmp_path / "RTE")) == 1


def test_available_splits(tmp_path):
    write(tmp_path / "RTE" / "dev.tsv", RTE_HEADER)
    assert available_splits(get_task("rte"), tmp_path) == ("validation",)
    assert available_splits(get_task("rte")) == ("train", "validation")
    assert available_splits(TOY_TASK) == ("train", "validation")


# --- Hugging Face parquet layout ---------------------------------------------------------------


def test_hub_parquet_layout(tmp_path):
    (tmp_path / "MNLI").mkdir()
    frame = pd.DataFrame({"premise": ["p1", "p2"], "hypothesis": ["h1", "h2"], "label": [2, 0], "idx": [0, 1]})
    frame.to_parquet(tmp_path / "MNLI" / "validation_matched-00000-of-00001.parquet")
    dataset = load_split(get_task("mnli"), "dev_matched", tmp_path)
    assert dataset.to_dict() == {"premise": ["p1", "p2"], "hypothesis": ["h1", "h2"], "label": [2, 0]}
    assert dataset.features["label"] == Value("int64")


def test_hub_config_folder_and_bad_parquet_label(tmp_path):
    (tmp_path / "qqp").mkdir()
    frame = pd.DataFrame({"question1": ["a"], "question2": ["b"], "label": [-1], "idx": [0]})
    frame.to_parquet(tmp_path / "qqp" / "validation-00000-of-00001.parquet")
    with pytest.raises(LayerDropError, match="row 1: unknown label '-1'"):
        load_split(get_task("qqp"), "validation", tmp_path)


def test_tsv_wins_over_parquet(tmp_path):
    write(tmp_path / "RTE" / "dev.tsv", RTE_HEADER + "0\tfrom tsv\tb\tentailment\n")
    pd.DataFrame({"sentence1": ["from parquet"], "sentence2": ["b"], "label": [0], "idx": [0]}).to_parquet(
        tmp_path / "RTE" / "validation-00000-of-00001.parquet"
    )
    assert load_split(get_task("rte"), "validation", tmp_path)["sentence1"] == ["from tsv"]


# --- the hub -----------------------------------------------------------------------------------


def test_hub_loading(monkeypatch):
    calls = []

    def fake_load_dataset(path, name, split):
        calls.append((path, name, split))
        label = ClassLabel(names=["negative", "positive"])
        features = Features({"sentence": Value("string"), "label": label, "idx": Value("int32")})
        return Dataset.from_dict({"sentence": ["fine ."], "label": [1], "idx": [0]}, features=features)

    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    dataset = load_split(get_task("SST-2"), "dev")
    assert calls == [("nyu-mll/glue", "sst2", "validation")]
    assert dataset.to_dict() == {"sentence": ["fine ."], "label": [1]}
    assert dataset.features == glue_data.features(get_task("sst2"))


def test_hub_offline_is_a_user_error(monkeypatch):
    def offline(*args, **kwargs):
        raise ConnectionError("Couldn't reach the Hub")

    monkeypatch.setattr(datasets, "load_dataset", offline)
    with pytest.raises(LayerDropError, match="could not download nyu-mll/glue rte"):
        load_split(get_task("rte"), "train")


# --- toy task ----------------------------------------------------------------------------------


def test_toy_task_needs_no_hub(monkeypatch):
    monkeypatch.setattr(datasets, "load_dataset", None)
    dataset = load_split(get_task("toy-sentiment"), "validation")
    assert dataset.column_names == ["sentence", "label"] and len(dataset) == 400


# --- split_dev ----------------------------------------------------------------------------


def test_split_dev_is_deterministic():
    dev = Dataset.from_dict({"sentence": [str(i) for i in range(100)], "label": [i % 2 for i in range(100)]})
    train, held_out = split_dev(dev, 0.8, seed=1)
    again, _ = split_dev(dev, 0.8, seed=1)
    other, _ = split_dev(dev, 0.8, seed=2)
    assert (len(train), len(held_out)) == (80, 20)
    assert train["sentence"] == again["sentence"] != other["sentence"]
    assert set(train["sentence"]).isdisjoint(held_out["sentence"])


@pytest.mark.parametrize("fraction", [0, 1, 1.5, -0.2])
def test_split_dev_rejects_bad_fractions(fraction):
    dev = Dataset.from_dict({"sentence": ["a", "b"], "label": [0, 1]})
    with pytest.raises(LayerDropError, match="between 0 and 1"):
        split_dev(dev, fraction, seed=0)


# --- user files --------------------------------------------------------------------------------


def test_load_files_csv_and_jsonl(tmp_path):
    task = custom_task("reviews", ("text",), label_names=("neg", "pos"))
    csv_path = write(tmp_path / "train.csv", 'text,stars,label\n"NA, but fine",3,pos\nbad,1,0\n')
    jsonl = '{"text": "ok", "label": 1}\n{"text": "meh", "label": "neg"}\n'
    jsonl_path = write(tmp_path / "dev.jsonl", jsonl)
    loaded = load_files(task, {"train": csv_path, "validation": jsonl_path})
    assert loaded["train"].to_dict() == {"text": ["NA, but fine", "bad"], "label": [1, 0]}
    assert loaded["validation"].to_dict() == {"text": ["ok", "meh"], "label": [1, 0]}


def test_load_files_regression_json_array_with_label_column(tmp_path):
    task = custom_task("similarity", ("a", "b"), regression=True)
    path = write(tmp_path / "train.json", '[{"a": "x", "b": "y", "score": 4.5}]')
    dataset = load_files(task, {"train": path}, label_column="score")["train"]
    assert dataset.to_dict() == {"a": ["x"], "b": ["y"], "label": [4.5]}


def test_load_files_errors(tmp_path):
    task = custom_task("reviews", ("text",))
    with pytest.raises(LayerDropError, match="lacks column.*text"):
        load_files(task, {"train": write(tmp_path / "a.csv", "review,label\nx,1\n")})
    with pytest.raises(LayerDropError, match="b.csv, row 2: unknown label '7'"):
        load_files(task, {"train": write(tmp_path / "b.csv", "text,label\nx,1\ny,7\n")})
    with pytest.raises(LayerDropError, match="does not exist"):
        load_files(task, {"train": tmp_path / "missing.csv"})
    with pytest.raises(LayerDropError, match="custom task|no built-in data"):
        load_split(task, "train")


# --- the real GLUE files -----------------------------------------------------------------------

REAL_COUNTS = [
    ("cola", "train", 8551),
    ("cola", "validation", 1043),
    ("sst2", "train", 67349),
    ("sst2", "validation", 872),
    ("stsb", "train", 5749),
    ("stsb", "validation", 1500),
    ("rte", "train", 2490),
    ("rte", "validation", 277),
    ("wnli", "train", 635),
    ("wnli", "validation", 71),
    ("qnli", "validation", 5463),
    ("mnli", "validation_matched", 9815),
    ("mnli", "validation_mismatched", 9832),
    ("qqp", "validation", 40430),
]


@pytest.mark.parametrize(("name", "split", "rows"), REAL_COUNTS)
def test_real_glue_files(glue_dir, name, split, rows):
    task = get_task(name)
    if split not in available_splits(task, glue_dir):
        pytest.skip(f"{name} {split} not in {glue_dir}")
    dataset = load_split(task, split, glue_dir)
    assert len(dataset) == rows
    assert dataset.column_names == [*task.text_columns, "label"]
    labels = dataset.with_format("pandas")["label"]
    if task.is_regression:
        assert 0 <= labels.min() and labels.max() <= 5
    else:
        assert set(labels) == set(range(task.num_labels))
