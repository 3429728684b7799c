"""Task distillation: the loss against hand computations, the layer map, the teacher cache, and a full run."""

from __future__ import annotations

import copy
import math
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer, BertConfig, BertForSequenceClassification

from layerdrop.checkpoint import save_model
from layerdrop.distillation import (
    DistillationObjective,
    distill,
    distillation_loss,
    layer_map,
    teacher_outputs,
)
from layerdrop.errors import LayerDropError
from layerdrop.glue import get_task, load_split
from layerdrop.settings import DistillConfig, TrainConfig
from layerdrop.surgery import drop_layers
from layerdrop.training import _loader, tokenize

TOY = get_task("toy-sentiment")


@pytest.fixture(scope="module")
def tokenizer(minilm_dir: Path):
    return AutoTokenizer.from_pretrained(minilm_dir)


def tiny_classifier(tokenizer, num_labels: int = 2, layers: int = 4, seed: int = 0) -> BertForSequenceClassification:
    config = BertConfig(
        vocab_size=tokenizer.vocab_size,
        hidden_size=32,
        num_hidden_layers=layers,
        num_attention_heads=2,
        intermediate_size=37,
        num_labels=num_labels,
        initializer_range=0.2,
    )
    torch.manual_seed(seed)
    return BertForSequenceClassification(config).eval()


def toy_data(tokenizer, n: int = 12):
    return tokenize(load_split(TOY, "train").select(range(n)), tokenizer, TOY, max_length=32)


def test_classification_loss_matches_hand_computation() -> None:
    student = torch.tensor([[1.0, 2.0, 0.5], [0.0, -1.0, 3.0]])
    teacher = torch.tensor([[2.0, 1.0, 0.0], [1.0, 1.0, 1.0]])
    labels = torch.tensor([1, 2])
    alpha, t = 0.3, 2.0

    def softmax(row, temp):
        exps = [math.exp(x / temp) for x in row]
        return [e / sum(exps) for e in exps]

    kl = (
        sum(
            sum(p * math.log(p / q) for p, q in zip(softmax(tr, t), softmax(sr, t), strict=True))
            for sr, tr in zip(student.tolist(), teacher.tolist(), strict=True)
        )
        / 2
    )
    ce = sum(-math.log(softmax(row, 1)[y]) for row, y in zip(student.tolist(), labels.tolist(), strict=True)) / 2
    expected = alpha * ce + (1 - alpha) * t**2 * kl
    got = distillation_loss(student, teacher, labels, alpha=alpha, temperature=t)
    assert got.item() == pytest.approx(expected, rel=1e-6)
    assert distillation_loss(teacher, teacher, None, alpha=0.0, temperature=t).item() == pytest.approx(0.0, abs=1e-7)


def test_regression_loss_is_mse_to_gold_and_to_teacher() -> None:
    student, teacher, gold = torch.tensor([[1.0], [3.0]]), torch.tensor([[2.0], [2.5]]), torch.tensor([0.0, 4.0])
    # to the teacher: ((1-2)^2 + (3-2.5)^2) / 2 = 0.625; to the gold: (1 + 1) / 2 = 1; temperature plays no part
    got = distillation_loss(student, teacher, gold, alpha=0.25, temperature=7.0)
    assert got.item() == pytest.approx(0.25 * 1.0 + 0.75 * 0.625)


def test_hidden_state_loss_averages_real_tokens_only() -> None:
    s1, t1 = torch.zeros(2, 3, 2), torch.ones(2, 3, 2)
    s2, t2 = torch.zeros(2, 3, 2), torch.zeros(2, 3, 2)
    t2[0, 0] = torch.tensor([2.0, 0.0])
    t1[1, 2] = 100.0  # a padding position: ignored
    mask = torch.tensor([[1, 1, 1], [1, 1, 0]])
    logits = torch.zeros(2, 2)
    got = distillation_loss(
        logits,
        logits,
        None,
        alpha=0.0,
        temperature=1.0,
        student_hidden=[s1, s2],
        teacher_hidden=[t1, t2],
        attention_mask=mask,
        hidden_weight=0.5,
    )
    # 5 real tokens x 2 units x 2 layers = 20 terms: layer 1 contributes 10 x 1, layer 2 one 2^2
    assert got.item() == pytest.approx(0.5 * (10 + 4) / 20)


def test_layer_map_follows_kept_layers() -> None:
    teacher = BertConfig(num_hidden_layers=6)
    student = copy.deepcopy(teacher)
    student.num_hidden_layers = 5
    student.layer_dropping = {"original_num_layers": 6, "kept_layers": [0, 1, 3, 4, 5]}
    assert layer_map(student, teacher) == [0, 1, 3, 4, 5]
    # a teacher that was itself dropped: map through its own record
    dropped_teacher = copy.deepcopy(teacher)
    dropped_teacher.num_hidden_layers = 5
    dropped_teacher.layer_dropping = {"original_num_layers": 6, "kept_layers": [0, 1, 3, 4, 5]}
    student.num_hidden_layers = 3
    student.layer_dropping = {"original_num_layers": 6, "kept_layers": [0, 3, 5]}
    assert layer_map(student, dropped_teacher) == [0, 2, 4]
    # without a record: the uniform map, top layers aligned
    assert layer_map(BertConfig(num_hidden_layers=4), teacher) == [0, 2, 3, 5]
    assert layer_map(BertConfig(num_hidden_layers=6), teacher) == list(range(6))
    with pytest.raises(LayerDropError, match="no longer has"):
        student.layer_dropping = {"original_num_layers": 6, "kept_layers": [0, 2, 5]}
        layer_map(student, dropped_teacher)
    with pytest.raises(LayerDropError, match="12-layer model"):
        student.layer_dropping = {"original_num_layers": 12, "kept_layers": [0, 2, 5]}
        layer_map(student, teacher)


def test_teacher_cache_returns_exactly_what_the_teacher_computes(tokenizer) -> None:
    teacher = tiny_classifier(tokenizer)
    data = toy_data(tokenizer)
    cache = teacher_outputs(teacher, data, tokenizer, layers=[0, 2], batch_size=5, progress=False)
    # batches as training draws them: shuffled, padded to their longest, row numbers passed through
    loader = _loader(data, tokenizer, batch_size=4, sampler=torch.randperm(len(data)).tolist())
    seen = 0
    for batch in loader:
        logits, hidden = cache.lookup(batch["idx"], batch["attention_mask"])
        for row, index in enumerate(batch["idx"].tolist()):
            alone = {k: torch.tensor([data[index][k]]) for k in ("input_ids", "attention_mask", "token_type_ids")}
            with torch.no_grad():
                reference = teacher(**alone, output_hidden_states=True)  # one example, no padding at all
            n = data[index]["length"]
            assert torch.allclose(logits[row], reference.logits[0], atol=1e-5)
            for k, layer in enumerate([0, 2]):
                expected = reference.hidden_states[layer + 1][0]
                assert torch.allclose(hidden[k][row, :n], expected, rtol=1e-3, atol=1e-4)  # stored as float16
                assert not hidden[k][row, n:].any(), "padding positions stay zero"
            seen += 1
    assert seen == len(data)


def test_hidden_pairs_follow_kept_layers_in_training(tokenizer) -> None:
    teacher = tiny_classifier(tokenizer)
    student = drop_layers(copy.deepcopy(teacher), [3])  # the teacher's first three layers, unchanged
    assert layer_map(student.config, teacher.config) == [0, 1, 2]
    data = toy_data(tokenizer, n=8)
    batch = next(iter(_loader(data, tokenizer, batch_size=8)))
    config = DistillConfig(alpha=0.0, hidden_weight=1.0)

    def hidden_loss(layers: list[int]) -> float:
        objective = DistillationObjective(teacher, tokenizer, config, layers=layers, progress=False)
        objective.prepare(data)
        inputs = {k: v for k, v in batch.items() if k not in ("idx", "labels")}
        with torch.no_grad():
            outputs = student(**inputs, output_hidden_states=True)
        kl_only = DistillationObjective(teacher, tokenizer, DistillConfig(alpha=0.0), progress=False)
        kl_only.prepare(data)
        return objective(outputs, batch).item() - kl_only(outputs, batch).item()

    assert hidden_loss(layer_map(student.config, teacher.config)) == pytest.approx(0.0, abs=1e-5)  # fp16 storage
    assert hidden_loss([0, 1, 3]) > 0.1  # the uniform map of a record-less 3-of-4 student pairs the wrong layers


@pytest.mark.parametrize("hidden_weight", [0.0, 1.0])
def test_distilled_student_learns_saves_and_reloads(tokenizer, tmp_path: Path, hidden_weight: float) -> None:
    teacher = tiny_classifier(tokenizer, seed=1)
    teacher_state = {k: v.clone() for k, v in teacher.state_dict().items()}
    student = drop_layers(tiny_classifier(tokenizer, seed=2), [1, 2])
    train = load_split(TOY, "train").select(range(64))
    config = TrainConfig(epochs=2, batch_size=16, max_length=32, learning_rate=3e-3)
    data = tokenize(train, tokenizer, TOY, 32)
    target = teacher_outputs(teacher, data, tokenizer, progress=False).logits

    def gap() -> float:
        return (teacher_outputs(student, data, tokenizer, progress=False).logits - target).abs().mean().item()

    before = gap()
    stats = distill(
        student,
        teacher,
        tokenizer,
        TOY,
        train,
        config,
        DistillConfig(alpha=0.0, hidden_weight=hidden_weight),
        progress=False,
    )
    assert stats.steps == 8 and stats.train_examples == 64
    assert gap() < 0.7 * before, "the student's logits moved towards the teacher's"
    assert all(torch.equal(v, teacher.state_dict()[k]) for k, v in teacher_state.items()), "the teacher is frozen"
    save_model(student, tmp_path / "student", tokenizer=tokenizer)
    reloaded = AutoModelForSequenceClassification.from_pretrained(tmp_path / "student").eval()
    batch = tokenizer(
        ["a fine film .", "the plot was dull , but the cast was great ."], padding=True, return_tensors="pt"
    )
    with torch.no_grad():
        assert torch.allclose(reloaded(**batch).logits, student.eval()(**batch).logits, atol=1e-6)


def test_distill_refuses_unlabelled_data_with_a_task_loss(tokenizer) -> None:
    teacher = tiny_classifier(tokenizer)
    train = load_split(TOY, "train").select(range(8)).remove_columns("label")
    with pytest.raises(LayerDropError, match="labelled"):
        distill(copy.deepcopy(teacher), teacher, tokenizer, TOY, train, TrainConfig(), DistillConfig(alpha=0.5))


def test_distill_refuses_a_layer_map_that_does_not_fit(tokenizer) -> None:
    teacher = tiny_classifier(tokenizer)
    student = drop_layers(copy.deepcopy(teacher), [0, 1])
    train = load_split(TOY, "train").select(range(8))
    for layers in ([0], [0, 4]):
        with pytest.raises(LayerDropError, match="layer map"):
            distill(
                student, teacher, tokenizer, TOY, train, TrainConfig(), DistillConfig(hidden_weight=1.0), layers=layers
            )
