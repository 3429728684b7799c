"""Load one split of a task as a `datasets.Dataset` with the task's text columns and "label".

`load_split` reads a built-in task from the Hugging Face hub (`data=None`), from a local folder
holding the classic GLUE TSVs (download_glue_data.py) or the hub's parquet files, or, for the toy
task, from its generator. The user's own CSV/JSON files go through `load_files`. Every source
yields the same columns and label ids as `nyu-mll/glue`, so nothing downstream knows the source.
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import datasets
import pandas as pd
from datasets import Dataset, DatasetDict, Features, Value

from layerdrop.errors import LayerDropError
from layerdrop.glue.tasks import TOY_TASK, Task
from layerdrop.glue.toy import toy_splits


def features(task: Task) -> Features:
    """The columns every loader returns: text as strings, label int64 (float32 for regression)."""
    label = Value("float32") if task.is_regression else Value("int64")
    return Features({**{column: Value("string") for column in task.text_columns}, "label": label})


def load_split(task: Task, split: str, data: str | Path | None = None) -> Dataset:
    """One labelled split of a built-in task, from the hub (`data=None`) or a local GLUE folder.

    `data` may be the GLUE root (holding `SST-2/`, `MNLI/`, …) or the task's own folder; in it,
    `train.tsv`/`dev*.tsv` win over `<split>-*.parquet` when both are there. An empty split is refused.
    """
    split = task.resolve_split(split)
    dataset = _load_local(task, split, Path(data).expanduser()) if data is not None else _load_builtin(task, split)
    if len(dataset) == 0:
        raise LayerDropError(f"the {split} split of {task.name} in {data or 'the hub'} holds no examples")
    return dataset


def dev_sets(task: Task, data: str | Path | None, max_examples: int | None = None) -> dict[str, Dataset]:
    """Every dev split of `task` (MNLI: matched and mismatched), each cut to its first `max_examples`."""
    return first_examples({split: load_split(task, split, data) for split in task.dev_splits}, max_examples)


def first_examples(sets: dict[str, Dataset], max_examples: int | None) -> dict[str, Dataset]:
    """Each data set cut to its first `max_examples` (all of it when None)."""
    if max_examples is None:
        return sets
    return {split: d.select(range(min(max_examples, len(d)))) for split, d in sets.items()}


def train_and_dev(
    task: Task,
    data: str | Path | None,
    *,
    train_from_dev: float | None = None,
    max_train_samples: int | None = None,
    max_eval_samples: int | None = None,
) -> tuple[Dataset, dict[str, Dataset], dict[str, Any]]:
    """(train split, {dev split: data}, record of where they came from and how they were cut)."""
    record: dict[str, Any] = {"source": str(data) if data is not None else "hub"}
    eval_sets = dev_sets(task, data)
    if train_from_dev is not None:
        first = task.dev_splits[0]
        train, eval_sets[first] = split_dev(eval_sets[first], train_from_dev, seed=0)
        record["train_from_dev"] = {"fraction": train_from_dev, "split": first, "seed": 0}
    elif "train" not in available_splits(task, data):
        where = data or "the hub"
        raise LayerDropError(
            f"no train split of {task.name} in {where}; pass --train-from-dev FRACTION to train on part of the dev set"
        )
    else:
        train = load_split(task, "train", data)
    if max_train_samples is not None and max_train_samples < len(train):
        train = train.shuffle(seed=0).select(range(max_train_samples))
        record["train_subsample"] = {"examples": max_train_samples, "seed": 0}
    if max_eval_samples is not None:
        eval_sets = first_examples(eval_sets, max_eval_samples)  # after any train/dev split
        record["eval_subsample"] = {"examples": max_eval_samples, "first": True}
    return train, eval_sets, record


def _load_builtin(task: Task, split: str) -> Dataset:
    if task == TOY_TASK:
        return toy_splits()[split]
    if task.hub_path is None:
        raise LayerDropError(f"task {task.name} has no built-in data; load its files with load_files")
    try:
        dataset = datasets.load_dataset(task.hub_path, task.hub_config, split=split)
    except ConnectionError as err:
        raise LayerDropError(
            f"could not download {task.hub_path} {task.hub_config} ({err}); pass a local data folder"
        ) from None
    return dataset.select_columns([*task.text_columns, "label"]).cast(features(task))


def available_splits(task: Task, data: str | Path | None = None) -> tuple[str, ...]:
    """The task's splits that `load_split` can load from `data` (all of them from the hub)."""
    if data is None:
        return task.splits if task == TOY_TASK or task.hub_path else ()
    if task.glue_dir is None:
        return ()
    return tuple(s for s in task.splits if _find_files(task, s, Path(data)) is not None)


def split_dev(dataset: Dataset, fraction: float, seed: int) -> tuple[Dataset, Dataset]:
    """Split dev data into (train, eval) parts, for tasks whose train split is not available.

    `fraction` of the rows, chosen by a seeded shuffle, go to the train part.
    """
    if not 0 < fraction < 1:
        raise LayerDropError(f"train fraction must be between 0 and 1 (exclusive), not {fraction}")
    try:
        parts = dataset.train_test_split(train_size=fraction, seed=seed)
    except ValueError as err:
        raise LayerDropError(f"cannot split {len(dataset)} rows at fraction {fraction}: {err}") from None
    return parts["train"], parts["test"]


def load_files(task: Task, files: Mapping[str, str | Path], label_column: str = "label") -> DatasetDict:
    """The user's CSV/TSV/JSON/JSONL files (one per split) for a `custom_task`.

    The files need the task's text columns and `label_column`; labels may be ids or label names.
    """
    return DatasetDict({split: _load_table(task, Path(path), label_column) for split, path in files.items()})


def _candidate_dirs(task: Task, data: Path) -> list[Path]:
    """Where a task's files may be: its GLUE or hub folder under `data`, or `data` itself."""
    names = dict.fromkeys(n for n in (task.glue_dir, task.hub_config) if n)
    return [data / name for name in names] + [data]


def _tsv_name(split: str) -> str:
    """GLUE's file name for a split: train.tsv, dev.tsv, dev_matched.tsv, dev_mismatched.tsv."""
    return split.replace("validation", "dev") + ".tsv"


def _find_files(task: Task, split: str, data: Path) -> Path | list[Path] | None:
    """The split's TSV file, else its parquet shards, in the first folder that has either."""
    for folder in _candidate_dirs(task, data):
        if (folder / _tsv_name(split)).is_file():
            return folder / _tsv_name(split)
        shards = sorted(folder.glob(f"{split}-*.parquet"))
        if shards:
            return shards
    return None


def _load_local(task: Task, split: str, data: Path) -> Dataset:
    if not data.is_dir():
        raise LayerDropError(f"data folder {data} does not exist")
    if task.glue_dir is None:
        raise LayerDropError(f"task {task.name} has no GLUE files; load its files with load_files")
    found = _find_files(task, split, data)
    if found is None:
        folders = ", ".join(str(d) for d in _candidate_dirs(task, data))
        raise LayerDropError(
            f"no {split} data for {task.name}: looked for {_tsv_name(split)} or {split}-*.parquet in {folders}"
        )
    if isinstance(found, Path):
        return _read_glue_tsv(task, found)
    return _read_parquet(task, found)


def _read_glue_tsv(task: Task, path: Path) -> Dataset:
    """A classic GLUE TSV: tab-separated, quotes are literal text, every row as wide as the first."""
    rows: list[list[str]] = []
    try:
        with path.open(encoding="utf-8-sig", newline="") as f:  # utf-8-sig: MRPC starts with a BOM
            reader = csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
            if task.tsv_header:
                next(reader, None)
            first_line = reader.line_num + 1
            for row in reader:
                if rows and len(row) != len(rows[0]):
                    raise LayerDropError(
                        f"{path}:{reader.line_num}: {len(row)} fields, expected {len(rows[0])} like line {first_line}"
                    )
                rows.append(row)
    except UnicodeDecodeError as err:
        raise LayerDropError(f"{path} is not UTF-8 text: {err}") from None
    needed = max(*task.tsv_text_indices, task.tsv_label_index) + 1
    if rows and len(rows[0]) < needed:
        raise LayerDropError(f"{path}:{first_line}: {len(rows[0])} fields, a {task.name} file has at least {needed}")
    table = pd.DataFrame(
        {column: [row[i] for row in rows] for column, i in zip(task.text_columns, task.tsv_text_indices, strict=True)}
    )
    labels = pd.Series([row[task.tsv_label_index] for row in rows], dtype=object)
    table["label"] = _encode_labels(task, labels, lambda i: f"{path}:{first_line + i}")
    return Dataset.from_pandas(table, features=features(task), preserve_index=False)


def _read_parquet(task: Task, shards: list[Path]) -> Dataset:
    """Hub parquet shards, keeping the text columns and label (dropping e.g. `idx`)."""
    columns = [*task.text_columns, "label"]
    tables = []
    for shard in shards:
        table = pd.read_parquet(shard)
        _require_columns(table, columns, shard)
        table["label"] = _encode_labels(task, table["label"], lambda i, s=shard: f"{s}, row {i + 1}")
        tables.append(table[columns])
    return Dataset.from_pandas(pd.concat(tables), features=features(task), preserve_index=False)


def _load_table(task: Task, path: Path, label_column: str) -> Dataset:
    """A user's CSV/TSV/JSON(L) file, text kept verbatim (no "NA" → missing)."""
    if not path.is_file():
        raise LayerDropError(f"data file {path} does not exist")
    suffix = path.suffix.lower()
    try:
        if suffix in (".csv", ".tsv"):
            sep = "\t" if suffix == ".tsv" else ","
            table = pd.read_csv(path, sep=sep, dtype=str, keep_default_na=False)
        elif suffix in (".json", ".jsonl"):
            with path.open(encoding="utf-8") as f:
                is_array = f.read(1024).lstrip().startswith("[")
            table = pd.read_json(path, lines=not is_array, dtype=False)
        else:
            raise LayerDropError(f"{path}: expected a .csv, .tsv, .json or .jsonl file")
    except ValueError as err:  # pandas' ParserError, bad JSON and bad UTF-8 are all ValueErrors
        raise LayerDropError(f"{path} is malformed: {err}") from None
    _require_columns(table, [*task.text_columns, label_column], path)
    missing_text = table[list(task.text_columns)].isna().any(axis=1).to_numpy()
    if missing_text.any():
        raise LayerDropError(f"{path}, row {int(missing_text.argmax()) + 1}: missing text")
    table = table[list(task.text_columns)].assign(
        label=_encode_labels(task, table[label_column], lambda i: f"{path}, row {i + 1}")
    )
    return Dataset.from_pandas(table, features=features(task), preserve_index=False)


def _require_columns(table: pd.DataFrame, columns: list[str], path: Path) -> None:
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise LayerDropError(
            f"{path} lacks column(s) {', '.join(missing)}; it has {', '.join(map(str, table.columns))}"
        )


def _encode_labels(task: Task, labels: pd.Series, where: Callable[[int], str]) -> pd.Series:
    """Labels → floats (regression) or ids; a label name or an id in range (as text or not) both count.

    `where(i)` names the place of row i for the error message.
    """
    text = labels.astype(str)
    if task.is_regression:
        encoded = pd.to_numeric(text, errors="coerce")
        expected = "a number"
    else:
        ids = {name: i for i, name in enumerate(task.label_names)}
        ids.update({str(i): i for i in range(task.num_labels)})
        encoded = text.map(ids)
        expected = "one of " + ", ".join(ids)
    bad = encoded.isna().to_numpy()
    if bad.any():
        i = int(bad.argmax())
        raise LayerDropError(f"{where(i)}: unknown label {text.iloc[i]!r}, expected {expected}")
    return encoded
