"""The data layers are scored on (calibration data): a task's split or plain texts, as tokenized batches.

`settings.CalibrationData` is the schema of the options `drop`, `analyze` and the Python API share;
`load_calibration` reads what it names and `make_batches` tokenizes it for the hooked forward pass.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from layerdrop.errors import LayerDropError
from layerdrop.settings import CalibrationData, TextSource, named

if TYPE_CHECKING:
    from layerdrop.glue.tasks import Task
    from layerdrop.strategies.base import Batch


def load_calibration(
    settings: CalibrationData, tokenizer: Any | None = None
) -> tuple[Any, Task | None, dict[str, Any]]:
    """(examples, task, where they came from) for `settings`; (None, None, {}) when none is named.

    Examples are texts (a file: one per line), a labelled dataset (a task's split) or, for running
    text (a corpus or a hub dataset), tokenized batches of `max_length`-token pieces, which need the
    model's `tokenizer`.
    """
    if (source := settings.running_text()) is not None:
        return _running_text(settings, source, tokenizer)
    if settings.text_file is not None:
        path = Path(settings.text_file).expanduser()
        if not path.is_file():
            raise LayerDropError(f"no text file at {str(path)!r}")
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except UnicodeDecodeError:
            raise LayerDropError(f"text file {str(path)!r} is not UTF-8 text") from None
        texts = [line.strip() for line in lines if line.strip()][: settings.max_examples]
        if not texts:
            raise LayerDropError(f"text file {str(path)!r} holds no text")
        return texts, None, {"text_file": str(path), "num_examples": len(texts)}
    if settings.task is None:
        return None, None, {}
    from layerdrop.glue import get_task, load_split

    task = get_task(settings.task)
    split = task.resolve_split(settings.split or task.dev_splits[0])
    dataset = load_split(task, split, settings.data)
    if settings.max_examples is not None and settings.max_examples < len(dataset):
        dataset = dataset.select(range(settings.max_examples))
    record = {"task": task.name, "split": split, "num_examples": len(dataset)}
    return dataset, task, record | ({"data": str(settings.data)} if settings.data is not None else {})


def _running_text(
    settings: CalibrationData, source: TextSource, tokenizer: Any | None
) -> tuple[list[Batch], None, dict[str, Any]]:
    """A corpus or dataset cut into full pieces of `max_length` tokens, batched (no padding needed)."""
    import torch

    from layerdrop.corpora import load_tokens, parse_corpus

    if source.corpus is not None:
        parse_corpus(source.corpus)
    if tokenizer is None:
        raise LayerDropError("the model has no tokenizer to read the text with")
    length = settings.max_length
    budget = settings.max_examples * length if settings.max_examples is not None else None
    tokens = load_tokens(source.model_copy(update={"max_tokens": budget}), tokenizer)
    pieces = tokens[: len(tokens) // length * length].view(-1, length)
    if len(pieces) == 0:
        raise LayerDropError(
            f"the text holds fewer than {length} tokens, too few for one piece of {named('max_length')}"
        )
    batches = [
        {"input_ids": chunk, "attention_mask": torch.ones_like(chunk)} for chunk in pieces.split(settings.batch_size)
    ]
    record = {
        "text": source.model_dump(exclude_defaults=True),
        "num_examples": len(pieces),
        "tokens_per_example": length,
    }
    return batches, None, record


def make_batches(
    data: Any, tokenizer: Any | None, *, task: Task | None = None, batch_size: int = 32, max_length: int = 128
) -> list[Batch]:
    """Tokenized batches from texts, (text, text) pairs, a labelled `datasets.Dataset`, or batches as they are.

    Texts are sorted by length before batching so little compute goes to padding; a dataset's
    labels travel with their texts as "labels".
    """
    if len(data) == 0:
        raise LayerDropError("no data to score the layers on")
    if isinstance(data[0], Mapping) and getattr(data[0].get("input_ids"), "ndim", 0) == 2:  # tokenized batches
        return list(data)
    if tokenizer is None:
        raise LayerDropError("the model has no tokenizer to read the texts with")
    import torch

    texts, labels = _texts_and_labels(data, task)
    if tokenizer.pad_token is None:  # decoders: pad with end-of-text; the attention mask hides it
        tokenizer.pad_token = tokenizer.eos_token
    encoded = tokenizer(*map(list, zip(*texts, strict=True)), truncation=True, max_length=max_length)
    features = [{key: values[i] for key, values in encoded.items()} for i in range(len(texts))]
    order = sorted(range(len(texts)), key=lambda i: len(features[i]["input_ids"]))
    batches = []
    for start in range(0, len(order), batch_size):
        chunk = order[start : start + batch_size]
        batch = dict(tokenizer.pad([features[i] for i in chunk], return_tensors="pt"))
        if labels is not None:
            batch["labels"] = torch.tensor([labels[i] for i in chunk])
        batches.append(batch)
    return batches


def _texts_and_labels(data: Any, task: Task | None) -> tuple[list[tuple[str, ...]], list[Any] | None]:
    """Each example as a tuple of its text columns (one, or a pair), and the labels if there are any."""
    from datasets import Dataset

    if isinstance(data, Dataset):
        columns = list(task.text_columns) if task else [c for c in data.column_names if c not in ("label", "idx")]
        if missing := [c for c in columns if c not in data.column_names]:
            raise LayerDropError(f"the data has no column {missing[0]!r}; it has {', '.join(data.column_names)}")
        labels = data["label"] if "label" in data.column_names else None
        return list(zip(*(data[c] for c in columns), strict=True)), labels
    return [(text,) if isinstance(text, str) else tuple(text) for text in data], None
