"""Sentence embeddings: poolings, the checkpoint's own pooling, sentence-transformers files, STS, distillation.

Poolings are checked against hand computations, the files by sentence-transformers loading a dropped model.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from datasets import Dataset
from scipy.stats import spearmanr
from tiny_checkpoints import save_tiny_bert
from transformers import AutoTokenizer

from layerdrop.checkpoint import copy_sentence_transformers_files, load_model, load_tokenizer, save_model
from layerdrop.embeddings import (
    PoolingSpec,
    SentenceEncoder,
    distill_embeddings,
    load_encoder,
    read_pooling,
    sentences_from,
    sts_spearman,
)
from layerdrop.errors import LayerDropError
from layerdrop.glue import get_task, load_split
from layerdrop.settings import TrainConfig
from layerdrop.surgery import drop_layers

TOKENS = torch.tensor([[[1.0, -2.0], [3.0, 4.0], [50.0, 60.0]], [[-1.0, 0.0], [2.0, 2.0], [0.0, -6.0]]])
MASK = torch.tensor([[1, 1, 0], [1, 1, 1]])


@pytest.mark.parametrize(
    ("modes", "expected"),
    [
        (("pooling_mode_mean_tokens",), [[2.0, 1.0], [1 / 3, -4 / 3]]),
        (("pooling_mode_max_tokens",), [[3.0, 4.0], [2.0, 2.0]]),
        (("pooling_mode_cls_token",), [[1.0, -2.0], [-1.0, 0.0]]),
        (("pooling_mode_mean_sqrt_len_tokens",), [[4 / 2**0.5, 2 / 2**0.5], [1 / 3**0.5, -4 / 3**0.5]]),
        (("pooling_mode_lasttoken",), [[3.0, 4.0], [0.0, -6.0]]),
        (("pooling_mode_cls_token", "pooling_mode_max_tokens"), [[1.0, -2.0, 3.0, 4.0], [-1.0, 0.0, 2.0, 2.0]]),
    ],
)
def test_poolings_ignore_padding(modes: tuple[str, ...], expected: list[list[float]]) -> None:
    assert torch.allclose(PoolingSpec(modes)(TOKENS, MASK), torch.tensor(expected))
    normalized = PoolingSpec(modes, normalize=True)(TOKENS, MASK)
    assert torch.allclose(normalized, torch.nn.functional.normalize(torch.tensor(expected), dim=-1))


def test_pooling_comes_from_the_checkpoint(minilm_dir: Path, tmp_path: Path) -> None:
    assert read_pooling(minilm_dir) == PoolingSpec(("pooling_mode_mean_tokens",), normalize=True, max_length=256)
    assert read_pooling(tmp_path) == PoolingSpec(("pooling_mode_mean_tokens",), normalize=False)
    (tmp_path / "modules.json").write_text(
        json.dumps([{"idx": 1, "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"}])
    )
    (tmp_path / "1_Pooling").mkdir()
    (tmp_path / "1_Pooling" / "config.json").write_text(json.dumps({"pooling_mode_cls_token": True}))
    assert read_pooling(tmp_path) == PoolingSpec(("pooling_mode_cls_token",))
    (tmp_path / "1_Pooling" / "config.json").write_text(json.dumps({"pooling_mode_weightedmean_tokens": True}))
    with pytest.raises(LayerDropError, match="unsupported sentence-transformers pooling"):
        read_pooling(tmp_path)
    (tmp_path / "1_Pooling" / "config.json").write_text("{not json")
    with pytest.raises(LayerDropError, match="not valid JSON"):
        read_pooling(tmp_path)


def test_copy_keeps_sentence_transformers_files_not_weights(minilm_dir: Path, tmp_path: Path) -> None:
    copied = copy_sentence_transformers_files(minilm_dir, tmp_path)
    # 2_Normalize/ is listed in modules.json but not shipped (Normalize has no parameters)
    assert sorted(copied) == [
        "1_Pooling/",
        "config_sentence_transformers.json",
        "modules.json",
        "sentence_bert_config.json",
    ]
    assert (tmp_path / "1_Pooling" / "config.json").read_bytes() == (
        minilm_dir / "1_Pooling" / "config.json"
    ).read_bytes()
    assert not list(tmp_path.glob("*.safetensors"))
    assert copy_sentence_transformers_files(tmp_path / "1_Pooling", tmp_path / "elsewhere") == []


@pytest.mark.slow
def test_sentence_transformers_loads_a_dropped_minilm(minilm_dir: Path, tmp_path: Path) -> None:
    from sentence_transformers import SentenceTransformer

    model = load_model(str(minilm_dir), head="base")
    drop_layers(model, [4, 5], strategy={"name": "top", "num_drop": 2})
    out = save_model(
        model, tmp_path / "minilm-top2", tokenizer=load_tokenizer(str(minilm_dir)), extra_files_from=str(minilm_dir)
    )
    task = get_task("stsb")
    pairs = _stsb_sample(task, minilm_dir)
    sentences = list(pairs["sentence1"]) + list(pairs["sentence2"])
    ours = load_encoder(str(out)).encode(sentences, progress=False)
    st = SentenceTransformer(str(out), device="cpu")
    assert len(st[0].auto_model.encoder.layer) == 4
    theirs = torch.from_numpy(st.encode(sentences, batch_size=7))
    assert torch.allclose(ours, theirs, atol=1e-5)
    # zero-shot STS-B through layerdrop equals cosine + Spearman on sentence-transformers' embeddings
    n = len(pairs)
    cosine = torch.nn.functional.cosine_similarity(theirs[:n], theirs[n:]).numpy()
    expected = 100 * spearmanr(cosine, np.asarray(pairs["label"])).statistic
    assert sts_spearman(load_encoder(str(out)), pairs, task, progress=False) == pytest.approx(expected, abs=1e-3)


def _stsb_sample(task, minilm_dir: Path) -> Dataset:
    """30 sentence pairs of the toy task with made-up similarity scores (0-5), shaped like STS-B."""
    texts = load_split(get_task("toy-sentiment"), "validation")["sentence"][:60]
    scores = np.random.default_rng(0).uniform(0, 5, 30).astype(np.float32)
    return Dataset.from_dict({"sentence1": texts[:30], "sentence2": texts[30:], "label": scores})


@pytest.fixture(scope="module")
def tiny_encoder_dir(tmp_path_factory: pytest.TempPathFactory, minilm_dir: Path) -> Path:
    """A 4-layer BERT base model with MiniLM's tokenizer and sentence-transformers files."""
    folder = save_tiny_bert(
        tmp_path_factory.mktemp("models") / "tiny-encoder",
        head=False,
        tokenizer=AutoTokenizer.from_pretrained(minilm_dir),
        initializer_range=0.2,
    )
    copy_sentence_transformers_files(minilm_dir, folder)
    return folder


def test_embedding_distillation_moves_the_student_to_the_teacher(tiny_encoder_dir: Path) -> None:
    teacher = load_encoder(str(tiny_encoder_dir))
    student = load_encoder(str(tiny_encoder_dir))
    drop_layers(student.model, [1, 2])
    teacher_state = copy.deepcopy(teacher.model.state_dict())
    texts = list(load_split(get_task("toy-sentiment"), "train")["sentence"][:64])
    target = teacher.encode(texts, progress=False)

    def gap() -> float:
        return torch.nn.functional.mse_loss(student.encode(texts, progress=False), target).item()

    before = gap()
    config = TrainConfig(epochs=3, batch_size=16, max_length=32, learning_rate=3e-3)
    stats = distill_embeddings(student, teacher, sentences_from(texts + ["", "  "] + texts[:3]), config, progress=False)
    assert stats.train_examples == 64 and stats.steps == 12
    assert gap() < 0.5 * before
    assert all(torch.equal(v, teacher.model.state_dict()[k]) for k, v in teacher_state.items()), "the teacher is frozen"


def test_teacher_embeddings_are_cached_exactly(tiny_encoder_dir: Path) -> None:
    from layerdrop.embeddings import SENTENCES, EmbeddingMSE
    from layerdrop.training import tokenize

    teacher = load_encoder(str(tiny_encoder_dir))
    texts = list(load_split(get_task("toy-sentiment"), "train")["sentence"][:20])
    objective = EmbeddingMSE(teacher, teacher, batch_size=6, progress=False)
    objective.prepare(tokenize(sentences_from(texts), teacher.tokenizer, SENTENCES, max_length=128))
    one_by_one = torch.cat([teacher.encode([t], progress=False) for t in texts])
    assert torch.allclose(objective.targets, one_by_one, atol=1e-6)


def test_sts_needs_pairs_and_sentences_need_text(tiny_encoder_dir: Path) -> None:
    encoder = load_encoder(str(tiny_encoder_dir))
    sst2 = get_task("sst2")
    with pytest.raises(LayerDropError, match="sentence-pair"):
        sts_spearman(encoder, load_split(get_task("toy-sentiment"), "validation"), sst2)
    with pytest.raises(LayerDropError, match="no sentences"):
        sentences_from(["", "  "])
    assert isinstance(encoder, SentenceEncoder)
