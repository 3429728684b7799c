"""Healing a model with dropped layers: short training that wins back what the cut cost.

Both methods train LoRA adapters (peft) on every linear projection of the kept layers and merge
them into the weights at the end (`merge_and_unload`), so the result is a plain checkpoint that
loads without peft. They differ in what the adapters learn from:

- `lora`: the next-token loss on the text (as Shortened LLaMA and Gromov et al. heal).
- `distill`: the uncut model's next-token distributions (logit distillation, Hinton et al. 2015):
  T² · KL(teacher ‖ student) at temperature T, averaged over token positions. Each token then
  teaches a whole distribution over the vocabulary instead of one label.

Distillation also trains adapters rather than every weight: the two methods then differ only in
their loss, so "which heals better per token" is a fair question; on a CPU the backward pass
skips the frozen weights' gradients; and a few hundred adapter parameters per layer cannot
overfit a small healing text the way full fine-tuning of all weights can.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm
from transformers import PreTrainedModel, get_linear_schedule_with_warmup
from transformers.pytorch_utils import Conv1D

from layerdrop.architectures import architecture_for, get_submodule, require_causal_lm
from layerdrop.errors import LayerDropError
from layerdrop.settings import HealSettings


@dataclass
class HealResult:
    """What a healing run did: its budget, its speed and its loss curve."""

    method: str
    steps: int
    tokens_seen: int  # training tokens the student read (steps x batch x sequence length)
    seconds: float
    tokens_per_second: float
    trainable_parameters: int  # of the adapters, before merging
    losses: list[float] = field(default_factory=list)  # training loss of each step

    def to_dict(self) -> dict[str, Any]:
        """Plain values, for JSON."""
        return asdict(self)


def layer_projections(model: PreTrainedModel) -> list[str]:
    """Names of the linear projections inside the layer stack (attention and MLP), the LoRA targets.

    Embeddings and the LM head stay as they are: the cut changes what the layers see, not the vocabulary.
    """
    stack = get_submodule(model, architecture_for(model.config).layers)
    inside = {id(module) for module in stack.modules()}
    return [
        name
        for name, module in model.named_modules()
        if id(module) in inside and isinstance(module, (nn.Linear, Conv1D))
    ]


def distillation_loss(
    student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float = 1.0
) -> torch.Tensor:
    """T² · KL(softmax(teacher / T) ‖ softmax(student / T)), summed over the vocabulary, averaged over positions."""
    vocab = student_logits.shape[-1]
    student = F.log_softmax(student_logits.reshape(-1, vocab).float() / temperature, dim=-1)
    teacher = F.log_softmax(teacher_logits.reshape(-1, vocab).float() / temperature, dim=-1)
    return F.kl_div(student, teacher, log_target=True, reduction="batchmean") * temperature**2


def _next_token_loss(
    model: nn.Module, teacher: PreTrainedModel | None, ids: torch.Tensor, settings: HealSettings
) -> torch.Tensor:
    return model(input_ids=ids, labels=ids, use_cache=False).loss


def _teacher_loss(
    model: nn.Module, teacher: PreTrainedModel | None, ids: torch.Tensor, settings: HealSettings
) -> torch.Tensor:
    with torch.no_grad():
        target = teacher(input_ids=ids, use_cache=False).logits
    return distillation_loss(model(input_ids=ids, use_cache=False).logits, target, settings.temperature)


Loss = Callable[[nn.Module, "PreTrainedModel | None", torch.Tensor, HealSettings], torch.Tensor]
LOSSES: dict[str, Loss] = {"lora": _next_token_loss, "distill": _teacher_loss}


def heal(
    model: PreTrainedModel,
    tokens: torch.Tensor,
    settings: HealSettings | None = None,
    teacher: PreTrainedModel | None = None,
    progress: bool = True,
) -> tuple[PreTrainedModel, HealResult]:
    """Heal `model` on the 1-D token stream `tokens`; return the merged model and the training statistics.

    The merged model is `model` itself, in eval mode. `distill` needs `teacher` (the uncut model), which
    is put in eval mode without gradients.
    """
    from peft import LoraConfig, get_peft_model

    settings = settings or HealSettings()
    _check(model, tokens, settings, teacher)
    length = settings.sequence_length
    sequences = tokens[: len(tokens) // length * length].view(-1, length)
    torch.manual_seed(settings.seed)
    targets = layer_projections(model)
    adapters = LoraConfig(
        r=settings.lora_rank,
        lora_alpha=settings.lora_alpha,
        lora_dropout=settings.lora_dropout,
        target_modules=targets,
        fan_in_fan_out=any(
            isinstance(model.get_submodule(name), Conv1D) for name in targets
        ),  # GPT-2 stores weights transposed
    )
    with warnings.catch_warnings():  # peft asks transformers about gradient checkpointing by a deprecated name
        warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
        student = get_peft_model(model, adapters)
    trainable = [p for p in student.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=settings.learning_rate, weight_decay=settings.weight_decay)
    schedule = get_linear_schedule_with_warmup(
        optimizer, min(settings.warmup_steps, settings.steps - 1), settings.steps
    )
    compute_loss = LOSSES[settings.method]
    if teacher is not None:
        teacher.eval().requires_grad_(False)
    batches = _batches(sequences, settings.batch_size, settings.seed)
    losses: list[float] = []
    tokens_seen = 0
    student.train()
    start = time.perf_counter()
    bar = tqdm(range(settings.steps), desc=f"healing ({settings.method})", unit="step", disable=not progress)
    for _ in bar:
        ids = next(batches).to(model.device)
        loss = compute_loss(student, teacher, ids, settings)
        loss.backward()
        if settings.max_grad_norm > 0:
            torch.nn.utils.clip_grad_norm_(trainable, settings.max_grad_norm)
        optimizer.step()
        schedule.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(float(loss.detach()))
        tokens_seen += ids.numel()
        bar.set_postfix(loss=f"{sum(losses[-10:]) / len(losses[-10:]):.3f}")
    seconds = time.perf_counter() - start
    healed = student.merge_and_unload()
    healed.eval()
    result = HealResult(
        settings.method,
        settings.steps,
        tokens_seen,
        seconds,
        tokens_seen / seconds,
        sum(p.numel() for p in trainable),
        losses,
    )
    return healed, result


def _check(
    model: PreTrainedModel, tokens: torch.Tensor, settings: HealSettings, teacher: PreTrainedModel | None
) -> None:
    require_causal_lm(model, "healing")
    if tokens.ndim != 1 or len(tokens) < settings.sequence_length:
        raise LayerDropError(
            f"healing needs at least one sequence of {settings.sequence_length} tokens; the text has {len(tokens)}"
        )
    if settings.method == "distill":
        if teacher is None:
            raise LayerDropError("method 'distill' needs the uncut model as teacher (--teacher)")
        if teacher.config.vocab_size != model.config.vocab_size:
            sizes = f"{teacher.config.vocab_size} tokens, the model's {model.config.vocab_size}"
            raise LayerDropError(f"the teacher's vocabulary differs from the model's: the teacher's has {sizes}")


def _batches(sequences: torch.Tensor, batch_size: int, seed: int) -> Iterator[torch.Tensor]:
    """Endless full batches of sequences, reshuffled each pass (seeded).

    A pass's leftover sequences wait for the next pass, so every step reads the same number of tokens
    (all the sequences when there are fewer than a batch).
    """
    generator = torch.Generator().manual_seed(seed)
    usable = len(sequences) // batch_size * batch_size or len(sequences)
    while True:
        order = torch.randperm(len(sequences), generator=generator)[:usable]
        for begin in range(0, usable, batch_size):
            yield sequences[order[begin : begin + batch_size]]
