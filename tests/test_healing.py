"""Healing: a merged plain checkpoint, the distillation loss by hand, and a loss that goes down.

The LoRA-merged model reloads without peft with the same logits; the KL is written out by hand.
"""

from __future__ import annotations

import copy
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from tiny_models import tiny_model

from layerdrop.checkpoint import save_model
from layerdrop.errors import LayerDropError
from layerdrop.healing import distillation_loss, heal, layer_projections
from layerdrop.settings import HealSettings
from layerdrop.surgery import drop_layers

QUICK = dict(steps=25, batch_size=4, sequence_length=16, learning_rate=1e-2, warmup_steps=0)
RELOAD = """
import sys, torch
from transformers import AutoModelForCausalLM
model = AutoModelForCausalLM.from_pretrained(sys.argv[1]).eval()
with torch.no_grad():
    logits = model(input_ids=torch.load(sys.argv[2])).logits
assert not any(name == "peft" or name.startswith("peft.") for name in sys.modules), "peft was imported"
torch.save(logits, sys.argv[3])
"""


def stream(length: int = 600, seed: int = 0) -> torch.Tensor:
    """A learnable text: a repeating pattern of 12 token ids."""
    pattern = torch.randint(5, 99, (12,), generator=torch.Generator().manual_seed(seed))
    return pattern.repeat(length // 12 + 1)[:length]


def dropped(model_type: str = "llama") -> tuple[torch.nn.Module, torch.nn.Module]:
    teacher = tiny_model(model_type)
    return drop_layers(copy.deepcopy(teacher), [1]), teacher


def next_token_loss(model: torch.nn.Module, ids: torch.Tensor) -> float:
    with torch.no_grad():
        return float(model(input_ids=ids.view(-1, 16), labels=ids.view(-1, 16)).loss)


@pytest.mark.slow
def test_lora_healed_model_reloads_with_plain_transformers_without_peft(tmp_path: Path) -> None:
    student, _ = dropped()
    before = copy.deepcopy(student)
    healed, result = heal(student, stream(), HealSettings(**QUICK), progress=False)
    save_model(healed, tmp_path / "healed")
    ids = stream(20, seed=1).unsqueeze(0)
    torch.save(ids, tmp_path / "ids.pt")
    ran = subprocess.run(
        [sys.executable, "-c", RELOAD, tmp_path / "healed", tmp_path / "ids.pt", tmp_path / "logits.pt"],
        capture_output=True,
        text=True,
    )
    assert ran.returncode == 0, ran.stderr
    with torch.no_grad():
        expected, unhealed = healed(input_ids=ids).logits, before(input_ids=ids).logits
    reloaded = torch.load(tmp_path / "logits.pt")
    torch.testing.assert_close(reloaded, expected, rtol=1e-5, atol=1e-5)
    assert (reloaded - unhealed).abs().max() > 1e-3  # the merged adapters changed the weights
    assert result.trainable_parameters > 0 and result.tokens_seen == QUICK["steps"] * 4 * 16


def test_distillation_loss_equals_the_kl_by_hand() -> None:
    generator = torch.Generator().manual_seed(0)
    student, teacher = torch.randn(2, 3, 5, generator=generator), torch.randn(2, 3, 5, generator=generator)
    temperature = 2.0
    total = 0.0
    for b in range(2):
        for t in range(3):
            p_teacher = torch.exp(teacher[b, t] / temperature) / torch.exp(teacher[b, t] / temperature).sum()
            p_student = torch.exp(student[b, t] / temperature) / torch.exp(student[b, t] / temperature).sum()
            total += float((p_teacher * (p_teacher.log() - p_student.log())).sum())
    expected = temperature**2 * total / 6
    assert float(distillation_loss(student, teacher, temperature)) == pytest.approx(expected, rel=1e-5)
    assert float(distillation_loss(teacher, teacher, temperature)) == pytest.approx(0.0, abs=1e-6)


def test_lora_healing_lowers_the_next_token_loss() -> None:
    student, _ = dropped()
    text = stream()
    before = next_token_loss(student, text[:480])
    healed, result = heal(student, text, HealSettings(**QUICK), progress=False)
    assert next_token_loss(healed, text[:480]) < 0.8 * before
    assert sum(result.losses[-5:]) < 0.8 * sum(result.losses[:5])


def test_distillation_brings_the_student_towards_the_teacher() -> None:
    student, teacher = dropped("qwen2")
    ids = stream()[:480].view(-1, 16)

    def gap(model: torch.nn.Module) -> float:
        with torch.no_grad():
            return float(distillation_loss(model(input_ids=ids).logits, teacher(input_ids=ids).logits))

    before = gap(student)
    healed, result = heal(student, stream(), HealSettings(method="distill", **QUICK), teacher=teacher, progress=False)
    assert gap(healed) < 0.7 * before
    assert sum(result.losses[-5:]) < sum(result.losses[:5])


def test_adapters_go_on_every_projection_of_the_kept_layers_only() -> None:
    student, _ = dropped()
    names = layer_projections(student)
    assert len(names) == 3 * 7 and all(name.startswith("model.layers.") for name in names)
    gpt2 = tiny_model("gpt2")
    assert {name.rsplit(".", 1)[1] for name in layer_projections(gpt2)} == {"c_attn", "c_proj", "c_fc"}
    healed, _ = heal(
        gpt2, stream(), HealSettings(**QUICK | {"steps": 2}), progress=False
    )  # Conv1D weights: fan_in_fan_out
    assert type(healed).__name__ == "GPT2LMHeadModel"


def test_bad_input_is_refused() -> None:
    student, _ = dropped()
    with pytest.raises(LayerDropError, match="teacher"):
        heal(student, stream(), HealSettings(method="distill", **QUICK), progress=False)
    with pytest.raises(LayerDropError, match="at least one sequence of 16 tokens"):
        heal(student, stream(10), HealSettings(**QUICK), progress=False)
    with pytest.raises(LayerDropError, match="causal language model"):
        heal(tiny_model("bert"), stream(), HealSettings(**QUICK), progress=False)
