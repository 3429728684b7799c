"""The strategies that choose layers from data or weights, and the one entry point that runs them.

`select_from_data` is what `layerdrop drop`, `run` and library users call; `load_data` turns the
CLI's data options (a GLUE task split or a text file) into its input. Importing this module
registers the strategies, so it stays light: torch and transformers load only when one runs.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Sequence

from layerdrop.errors import LayerDropError
from layerdrop.strategies import Strategy, eligible_layers, get_strategy, register

if TYPE_CHECKING:
    from torch import Tensor
    from transformers import PreTrainedModel

    from layerdrop.glue.tasks import Task

for _strategy in (
    Strategy("contribution", "drop layers whose pooled input and output are most alike (cosine): --threshold T or -k K (Sajjad et al.)", "data"),
    Strategy("block-influence", "drop the K layers with the lowest block influence, 1 - mean token-wise cosine (ShortGPT)", "data"),
    Strategy("angular", "drop the block of K consecutive layers whose input and output are closest in angle (Gromov et al.)", "data"),
    Strategy("parameter", "drop the K layers with the smallest weights, --statistic norm|variance per parameter; needs no data", "data"),
    Strategy("greedy", "remove, one at a time, the layer whose removal costs the least dev score (or loss); needs labels", "data"),
):
    register(_strategy)

Batch = Mapping[str, "Tensor"]


def load_data(
    *,
    task: str | None = None,
    data: str | Path | None = None,
    split: str | None = None,
    text_file: str | Path | None = None,
    max_examples: int | None = None,
) -> tuple[Any, Task | None, dict[str, Any]]:
    """(texts or labelled dataset, task, description for the record) from the CLI's data options.

    A task split comes from `data` (a GLUE folder; the hub when None), by default the task's first
    dev split; a text file holds one text per line. Nothing given: (None, None, {}).
    """
    if text_file is not None and (task is not None or data is not None):
        raise LayerDropError("give either --text-file or --task/--data, not both")
    if max_examples is not None and max_examples < 1:
        raise LayerDropError(f"--max-examples must be at least 1, got {max_examples}")
    if text_file is not None:
        path = Path(text_file).expanduser()
        if not path.is_file():
            raise LayerDropError(f"no text file at {str(path)!r}")
        texts = [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
        if not texts:
            raise LayerDropError(f"text file {str(path)!r} holds no text")
        texts = texts[:max_examples]
        return texts, None, {"text_file": str(path), "num_examples": len(texts)}
    if task is None:
        if data is not None or split is not None:
            raise LayerDropError("--data and --split need --task")
        return None, None, {}
    from layerdrop.glue import get_task, load_split

    resolved = get_task(task)
    split = resolved.resolve_split(split or resolved.dev_splits[0])
    dataset = load_split(resolved, split, data)
    if max_examples is not None and max_examples < len(dataset):
        dataset = dataset.select(range(max_examples))
    description = {"task": resolved.name, "split": split, "num_examples": len(dataset)}
    return dataset, resolved, description | ({"data": str(data)} if data is not None else {})


def make_batches(data: Any, tokenizer: Any | None, *, task: Task | None = None, batch_size: int = 32, max_length: int = 128) -> list[Batch]:
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
    if batch_size < 1 or max_length < 2:
        raise LayerDropError(f"--batch-size must be at least 1 and --max-length at least 2, got {batch_size} and {max_length}")
    texts, labels = _texts_and_labels(data, task)
    if tokenizer.pad_token is None:  # decoders: pad with end-of-text; the attention mask hides it
        tokenizer.pad_token = tokenizer.eos_token
    encoded = tokenizer(*map(list, zip(*texts)), truncation=True, max_length=max_length)
    features = [{key: values[i] for key, values in encoded.items()} for i in range(len(texts))]
    order = sorted(range(len(texts)), key=lambda i: len(features[i]["input_ids"]))
    batches = []
    for start in range(0, len(order), batch_size):
        chunk = order[start : start + batch_size]
        batch = dict(tokenizer.pad([features[i] for i in chunk], return_tensors="pt"))
        if labels is not None:
            import torch

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
        return list(zip(*(data[c] for c in columns))), labels
    return [(text,) if isinstance(text, str) else tuple(text) for text in data], None


def above_threshold(scores: Sequence[float], threshold: float, eligible: Sequence[int]) -> list[int]:
    """The eligible layers scoring strictly above `threshold` (the paper: cosine above 0.95, 0.925, 0.9)."""
    _check_threshold(threshold)
    return [i for i in eligible if scores[i] > threshold]


def extremes(scores: Sequence[float], num: int, eligible: Sequence[int], highest: bool) -> list[int]:
    """The `num` eligible layers with the highest (or lowest) scores, sorted; ties go to the higher layer."""
    ranked = sorted(eligible, key=lambda i: (-scores[i] if highest else scores[i], -i))
    return sorted(ranked[:num])


def best_block(distances: Sequence[float], size: int, eligible: Sequence[int]) -> list[int]:
    """The block of `size` consecutive eligible layers whose start has the smallest distance (ties: higher)."""
    allowed = set(eligible)
    starts = [s for s in range(len(distances)) if all(i in allowed for i in range(s, s + size))]
    if not starts:
        raise LayerDropError(f"no block of {size} consecutive layers avoids the protected ones")
    start = min(starts, key=lambda s: (distances[s], -s))
    return list(range(start, start + size))


def _rounded(values: Sequence[float]) -> list[float]:
    return [round(float(v), 6) for v in values]


def select_from_data(
    name: str,
    model: PreTrainedModel,
    tokenizer: Any | None = None,
    data: Any = None,
    *,
    num_drop: int | None = None,
    threshold: float | None = None,
    task: Task | str | None = None,
    pooling: str | None = None,
    statistic: str | None = None,
    objective: str | None = None,
    max_drop_percent: float | None = None,
    batch_size: int = 32,
    max_length: int = 128,
    protect_first: bool = False,
    protect_last: bool = False,
    reuse: bool = True,
    progress: bool = True,
) -> tuple[list[int], dict[str, Any]]:
    """The layers (0-based, sorted) strategy `name` drops from `model`, and a record of how they were chosen.

    `data`: texts, (text, text) pairs, a labelled `datasets.Dataset` (with `task` naming its text
    columns) or already tokenized batches; not needed by "parameter". `num_drop` is K (for
    "angular" the block size); "contribution" takes `threshold` instead; "greedy" stops at K or
    when its `objective` ("score", the default, or "loss") gets more than `max_drop_percent` %
    worse than the full model's. `pooling` ("first", "last", "mean"; default "first" for encoders,
    "last" for decoders) picks the representation for "contribution" and "angular"; `statistic`
    ("norm", the default, or "variance") the weight statistic for "parameter". The record goes
    into the config's `layer_dropping` entry: parameters, per-layer scores (greedy: its trace).
    """
    from layerdrop.architectures import num_layers
    from layerdrop.strategies.similarity import default_pooling

    if get_strategy(name).kind != "data":
        raise LayerDropError(f"strategy {name!r} chooses layers by position; use `select_layers`")
    if isinstance(task, str):
        from layerdrop.glue import get_task

        task = get_task(task)
    total = num_layers(model.config)
    eligible = check_options(
        name, total, num_drop=num_drop, threshold=threshold, max_drop_percent=max_drop_percent, pooling=pooling,
        statistic=statistic, objective=objective, protect_first=protect_first, protect_last=protect_last,
    )
    protect = {"protect_first": protect_first, "protect_last": protect_last} if protect_first or protect_last else {}

    if name == "parameter":
        from layerdrop.strategies.parameters import parameter_scores

        statistic = statistic or "norm"
        scores = parameter_scores(model, statistic)
        indices = extremes(scores, num_drop, eligible, highest=False)
        return indices, {"name": name, "num_drop": len(indices), "statistic": statistic, **protect, "scores": _rounded(scores)}
    if data is None:
        raise LayerDropError(f"strategy {name!r} needs data: --task with --data, or --text-file")
    batches = make_batches(data, tokenizer, task=task, batch_size=batch_size, max_length=max_length)
    if name == "greedy":
        return _greedy(model, batches, task, eligible, num_drop, objective or "score", max_drop_percent, reuse, progress, protect)

    from layerdrop.strategies.similarity import layer_similarity

    pooling = pooling or default_pooling(model.config)
    similarity = layer_similarity(model, batches, progress=progress)
    if name == "contribution":
        scores = similarity.contribution(pooling)
        indices = above_threshold(scores, threshold, eligible) if threshold is not None else extremes(scores, num_drop, eligible, highest=True)
        if len(indices) >= total:
            raise LayerDropError(f"every layer's cosine is above --threshold {threshold}; nothing would be left")
        params = {"threshold": threshold} if threshold is not None else {}
        params["pooling"] = pooling
    elif name == "block-influence":
        scores = similarity.block_influence()
        indices = extremes(scores, num_drop, eligible, highest=False)
        params = {}
    else:  # angular: `scores` are per block start
        scores = similarity.angular_distance(pooling, num_drop)
        indices = best_block(scores, num_drop, eligible)
        params = {"block_size": num_drop, "pooling": pooling}
    record = {"name": name, "num_drop": len(indices), **params, **protect, "num_texts": similarity.num_texts, "scores": _rounded(scores)}
    return indices, record


def _check_threshold(threshold: float) -> None:
    if not -1 < threshold <= 1:
        raise LayerDropError(f"--threshold is a cosine similarity and must be in (-1, 1], got {threshold}")


def check_options(
    name: str,
    total: int,
    *,
    num_drop: int | None = None,
    threshold: float | None = None,
    max_drop_percent: float | None = None,
    pooling: str | None = None,
    statistic: str | None = None,
    objective: str | None = None,
    protect_first: bool = False,
    protect_last: bool = False,
) -> list[int]:
    """Refuse options strategy `name` cannot honour on a `total`-layer model; return the eligible layers.

    `select_from_data` calls it; the CLI calls it first too, so a typo fails before anything loads.
    """
    get_strategy(name)
    eligible = eligible_layers(total, protect_first, protect_last)
    _check_counts(name, num_drop, threshold, max_drop_percent, eligible, total)
    _check_applies(name, pooling=pooling, statistic=statistic, objective=objective)
    return eligible


def _check_counts(name: str, num_drop: int | None, threshold: float | None, max_drop_percent: float | None, eligible: list[int], total: int) -> None:
    if threshold is not None and name != "contribution":
        raise LayerDropError(f"--threshold goes with strategy 'contribution', not {name!r}")
    if threshold is not None:
        _check_threshold(threshold)
    if max_drop_percent is not None and name != "greedy":
        raise LayerDropError(f"--max-drop-percent goes with strategy 'greedy', not {name!r}")
    if max_drop_percent is not None and max_drop_percent < 0:
        raise LayerDropError(f"--max-drop-percent must be at least 0, got {max_drop_percent}")
    if name == "contribution" and (threshold is None) == (num_drop is None):
        raise LayerDropError("strategy 'contribution' needs exactly one of --threshold and --num-drop")
    if name == "greedy" and num_drop is None and max_drop_percent is None:
        raise LayerDropError("strategy 'greedy' needs --num-drop, --max-drop-percent or both")
    if name not in ("contribution", "greedy") and num_drop is None:
        raise LayerDropError(f"strategy {name!r} needs --num-drop")
    if num_drop is not None and not 0 <= num_drop < len(eligible):
        protected = " with its protected layers" if len(eligible) < total else ""
        raise LayerDropError(f"--num-drop must be between 0 and {len(eligible) - 1} for a {total}-layer model{protected}, got {num_drop}")
    if name == "angular" and num_drop == 0:
        raise LayerDropError("strategy 'angular' needs a block of at least 1 layer (--num-drop)")


def _check_applies(name: str, **options: str | None) -> None:
    """Refuse an option that the strategy would ignore, or a value it does not know."""
    from layerdrop.strategies.greedy import OBJECTIVES
    from layerdrop.strategies.parameters import STATISTICS
    from layerdrop.strategies.similarity import POOLINGS

    known = {"pooling": (POOLINGS, ("contribution", "angular")), "statistic": (STATISTICS, ("parameter",)), "objective": (OBJECTIVES, ("greedy",))}
    for option, value in options.items():
        if value is None:
            continue
        values, strategies = known[option]
        if name not in strategies:
            raise LayerDropError(f"--{option} goes with strategy {' or '.join(map(repr, strategies))}, not {name!r}")
        if value not in values:
            raise LayerDropError(f"unknown {option} {value!r}; choose one of {', '.join(values)}")


def _greedy(model: PreTrainedModel, batches: list[Batch], task: Task | None, eligible: list[int], num_drop: int | None, objective: str, max_drop_percent: float | None, reuse: bool, progress: bool, protect: dict[str, bool]) -> tuple[list[int], dict[str, Any]]:
    from layerdrop.strategies.greedy import greedy_search

    if not type(model).__name__.endswith("ForSequenceClassification"):
        raise LayerDropError("strategy 'greedy' needs a model with a sequence-classification head (--head sequence-classification)")
    if task is not None and model.config.num_labels != task.num_labels:
        raise LayerDropError(f"the model has {model.config.num_labels} labels but task {task.name} has {task.num_labels} (--num-labels)")
    steps = num_drop if num_drop is not None else len(eligible) - 1
    result = greedy_search(model, batches, eligible, max_steps=steps, objective=objective, task=task, max_drop_percent=max_drop_percent, reuse=reuse, progress=progress)
    limit = {"max_drop_percent": max_drop_percent} if max_drop_percent is not None else {}
    num_texts = sum(len(batch["input_ids"]) for batch in batches)
    record = {"name": "greedy", "num_drop": len(result.removed), "objective": objective, **limit, **protect, "num_texts": num_texts, "greedy": result.as_record()}
    return sorted(result.removed), record
