"""Loading any Hugging Face model (hub name or local path) and saving a clean, plain checkpoint."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import transformers
from transformers import AutoConfig, AutoTokenizer, PretrainedConfig, PreTrainedModel

from layerdrop.bundled import bundled_path, hub_name
from layerdrop.errors import LayerDropError
from layerdrop.outputs import staged
from layerdrop.surgery import dropping_record

WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth")

HEADS: dict[str, str] = {
    "base": "AutoModel",
    "sequence-classification": "AutoModelForSequenceClassification",
    "token-classification": "AutoModelForTokenClassification",
    "question-answering": "AutoModelForQuestionAnswering",
    "multiple-choice": "AutoModelForMultipleChoice",
    "masked-lm": "AutoModelForMaskedLM",
    "causal-lm": "AutoModelForCausalLM",
}


def resolve_source(name: str) -> str:
    """What transformers should load for `name`: a local directory, or a hub name left as it is.

    Bundled names resolve to their checkpoint folder (see layerdrop.bundled); a name that can only mean a path
    must hold a config.json, so a typo fails at once with a clear message instead of a hub lookup.
    """
    if (bundled := bundled_path(name)) is not None:
        return str(bundled)
    path = Path(name).expanduser()
    if name.startswith((".", "/", "~")) or name.count("/") > 1 or path.exists():
        if not (path / "config.json").is_file():
            raise LayerDropError(f"no model at {name!r}: expected a directory holding config.json")
        return str(path)
    return name


def _first_line(err: BaseException) -> str:
    return str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__


def load_model_config(name: str, **overrides: Any) -> PretrainedConfig:
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


def check_weights(name: str) -> list[Path]:
    """The weight files of a local checkpoint, each opened to check its header.

    Raises a one-line error when there are none, or one is empty, truncated or not a weights file.
    Hub names are left to the hub.
    """
    folder = Path(resolve_source(name))
    if not folder.is_dir():
        return []
    files = sorted(f for f in folder.iterdir() if f.name.endswith(WEIGHT_SUFFIXES) and f.is_file())
    if not files:
        raise LayerDropError(
            f"no weights in {name!r}: expected model.safetensors (or pytorch_model.bin) beside config.json"
        )
    from safetensors import SafetensorError, safe_open

    for file in files:
        if file.suffix != ".safetensors":
            continue
        try:
            with safe_open(str(file), framework="pt") as opened:
                opened.keys()
        except (SafetensorError, OSError) as err:
            raise LayerDropError(
                f"{file} is not a readable safetensors file ({_first_line(err)}); is it corrupted or truncated?"
            ) from None
    return files


def load_model(
    name: str, head: str | None = None, num_labels: int | None = None, *, trained_head: bool = False, **kwargs: Any
) -> PreTrainedModel:
    """Load a pre-trained model from the hub or a local path with the requested head.

    `num_labels` sizes a new classification head (a head whose size changes is re-initialised).
    With `trained_head`, a checkpoint whose head weights are missing (so would be random) is refused.
    """
    from safetensors import SafetensorError

    from layerdrop.architectures import architecture_for

    overrides = {"num_labels": num_labels} if num_labels is not None else {}
    config = load_model_config(name, **overrides)
    architecture_for(config)  # unsupported architectures fail before the weights load
    check_weights(name)
    cls = model_class(config, head)
    try:
        with _no_progress_bars():
            model, info = cls.from_pretrained(
                resolve_source(name),
                config=config,
                ignore_mismatched_sizes=num_labels is not None,
                output_loading_info=True,
                **kwargs,
            )
    except (OSError, ValueError, SafetensorError) as err:
        raise LayerDropError(
            f"cannot load model {name!r} with head {head or cls.__name__}: {_first_line(err)}"
        ) from None
    if trained_head and (
        missing := [key for key in info["missing_keys"] if not key.startswith(model.base_model_prefix)]
    ):
        raise LayerDropError(
            f"{name!r} has no trained {cls.__name__} head ({', '.join(sorted(missing)[:2])} would be random); "
            "fine-tune it first"
        )
    model.name_or_path = name
    return model


@contextmanager
def _no_progress_bars() -> Iterator[None]:
    """Hide transformers' bar per weights file loaded or written: noise for a local checkpoint."""
    was_shown = transformers.utils.logging.is_progress_bar_enabled()
    transformers.utils.logging.disable_progress_bar()
    try:
        yield
    finally:
        if was_shown:
            transformers.utils.logging.enable_progress_bar()


def load_tokenizer(name: str) -> Any | None:
    """The checkpoint's tokenizer, or None when it has none (e.g. a config-only test model)."""
    try:
        return AutoTokenizer.from_pretrained(resolve_source(name))
    except (OSError, ValueError, TypeError, KeyError):
        return None


def save_model(
    model: PreTrainedModel,
    output: str | Path,
    tokenizer: Any | None = None,
    overwrite: bool = False,
    extra_files_from: str | None = None,
) -> Path:
    """Save as safetensors with the tokenizer and a model card, staged and renamed into place.

    The result loads with `AutoModel….from_pretrained(output)` without layerdrop installed.
    `extra_files_from` (the model it was made from) passes on that checkpoint's sentence-transformers
    files, so `SentenceTransformer(output)` loads the result too.
    """
    with staged(output, "dir", overwrite, what="--output") as staging, _no_progress_bars():
        model.save_pretrained(staging, safe_serialization=True)
        if tokenizer is not None:
            tokenizer.save_pretrained(staging)
        if extra_files_from is not None:
            copy_sentence_transformers_files(resolve_source(extra_files_from), staging)
        (staging / "README.md").write_text(model_card(model))
    return Path(output)


ST_MODULES_FILE = "modules.json"
# Top-level files of a sentence-transformers checkpoint; its module folders are listed in modules.json.
SENTENCE_TRANSFORMERS_FILES = (ST_MODULES_FILE, "sentence_bert_config.json", "config_sentence_transformers.json")


def read_st_json(path: Path) -> Any:
    """A sentence-transformers JSON file, with a one-line error when it is missing or malformed."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise LayerDropError(f"missing sentence-transformers file {path}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise LayerDropError(f"{path} is not valid JSON: {err}") from None


def copy_sentence_transformers_files(source: str | Path, target: str | Path) -> list[str]:
    """Copy a checkpoint's sentence-transformers files from folder `source` into `target`.

    That is modules.json, the module folders it lists, sentence_bert_config.json and
    config_sentence_transformers.json; returns what was copied. Never the weights (the Transformer
    module lives at the top level, path ""), so a dropped or distilled model keeps its own. Folders
    listed but absent (all-MiniLM-L6-v2 ships no 2_Normalize/: Normalize has no parameters) are
    skipped, as sentence-transformers does. A hub name (no local folder) has nothing to copy here.
    """
    source, target = Path(source), Path(target)
    if not (source / ST_MODULES_FILE).is_file():
        return []
    copied = []
    for name in SENTENCE_TRANSFORMERS_FILES:
        if (source / name).is_file():
            shutil.copy2(source / name, target / name)
            copied.append(name)
    for module in read_st_json(source / ST_MODULES_FILE):
        path = module.get("path", "")
        if path and (source / path).is_dir():
            shutil.copytree(source / path, target / path, dirs_exist_ok=True)
            copied.append(path + "/")
    return copied


def model_card(model: PreTrainedModel) -> str:
    """A short README saying what was dropped, how, and how to load the result."""
    record = dropping_record(model.config)
    base = str(getattr(model, "name_or_path", "") or "unknown")
    base = hub_name(base) or base
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
