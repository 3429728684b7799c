"""Greedy layer removal (SLEB-style), the search behind the `greedy` strategy.

Each step removes the layer whose removal costs least on dev data. A removed layer is replaced by
a stand-in that passes its input on, so the model's own forward still builds the embeddings, masks
and rotary tables, and the config is never touched.

Reuse: removing layer j leaves everything below j unchanged, so the hidden states entering each
layer are cached per batch; to try "remove j", layers below j become pass-throughs and layer j
replays the cached input of j, so only the layers above j (and the head) run. The run that wins
a step has just computed the inputs of every layer above it, which become the next step's cache:
after the first full pass no forward is spent on caching. `reuse=False` re-runs the whole model
per candidate; both give bit-identical scores and choices. The price is memory: the cache holds
every layer's input for the whole dev set (what `output_hidden_states` would return for it), and
up to twice that during a step.
"""

from __future__ import annotations

import math
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from typing import Any, get_args
from collections.abc import Iterator, Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from tqdm.auto import tqdm
from transformers import PreTrainedModel

from layerdrop.architectures import architecture_for, get_submodule, layer_modules
from layerdrop.errors import LayerDropError
from layerdrop.strategies.greedy import Objective
from layerdrop.strategies.similarity import forward_kwargs, model_inputs

OBJECTIVES = get_args(Objective)


@dataclass
class Evaluation:
    """The model on the dev set: mean loss, and the task's headline score and metrics when a task is given."""

    loss: float
    score: float | None = None
    metrics: dict[str, float] | None = None


@dataclass
class GreedyResult:
    """What a greedy search removed, in order, with the model's evaluation before and after each removal."""

    num_layers: int  # before any removal
    baseline: Evaluation
    removed: list[int]  # original layer indices, in the order they were removed
    trace: list[Evaluation]  # the model after each removal
    stop_reason: str

    def as_record(self) -> dict[str, Any]:
        """JSON-ready: the baseline, then one entry per step (layer removed, layers left, score, loss)."""
        steps = [
            {"layer": layer, "num_layers": self.num_layers - step, **asdict(e)}
            for step, (layer, e) in enumerate(zip(self.removed, self.trace, strict=True), 1)
        ]
        return {"baseline": asdict(self.baseline), "steps": steps, "stop_reason": self.stop_reason}


def _shaped_like(hidden: Tensor, rest: tuple | None) -> Any:
    """`hidden` in the form the replaced layer returns (a tensor, or a tuple with it first)."""
    return hidden if rest is None else (hidden, *rest)


class _Skip(nn.Module):
    """Stands in for a removed layer (or an unchanged one below the replay): passes its input on."""

    def __init__(self, rest: tuple | None) -> None:
        super().__init__()
        self.rest = rest

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        return _shaped_like(args[0] if args else kwargs["hidden_states"], self.rest)


class _Replay(nn.Module):
    """Stands in for a module whose output is known, returning the current batch's entry.

    The module is the candidate layer j (whose output, as j is skipped, is the cached input of j)
    or an embedding module.
    """

    def __init__(self, cached: list[Any], rest: tuple | None = None) -> None:
        super().__init__()
        self.cached = cached
        self.rest = rest
        self.batch = 0

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        return _shaped_like(self.cached[self.batch], self.rest)


Slot = tuple[nn.Module, str]  # (parent module, attribute name): where a stand-in goes


@contextmanager
def _replaced(replacements: Mapping[Slot, nn.Module]) -> Iterator[None]:
    originals = {slot: getattr(*slot) for slot in replacements}
    for (parent, name), module in replacements.items():
        setattr(parent, name, module)
    try:
        yield
    finally:
        for (parent, name), module in originals.items():
            setattr(parent, name, module)


class _Search:
    """Runs the model on fixed labelled batches with some modules stood in for."""

    def __init__(self, model: PreTrainedModel, batches: Sequence[Mapping[str, Tensor]], task: Any | None) -> None:
        arch = architecture_for(model.config)
        if arch.shared_layers:
            raise LayerDropError(
                "greedy search needs distinct layers; "
                "ALBERT repeats one shared layer, so every choice gives the same model"
            )
        self.language_model = type(model).__name__.endswith(("ForCausalLM", "LMHeadModel"))
        if not self.language_model and any("labels" not in batch for batch in batches):
            raise LayerDropError("greedy search needs labelled data: give a task with --task and --data")
        self.model, self.task = model, task
        self.stack: nn.ModuleList = get_submodule(model, arch.layers)
        self.embeddings: list[Slot] = [
            (get_submodule(model, p.rpartition(".")[0]) if "." in p else model.base_model, p.rpartition(".")[2])
            for p in arch.embeddings
        ]
        self.embedded: list[list[Any]] = [[] for _ in self.embeddings]  # each embedding module's output per batch
        self.inputs = [model_inputs(batch) for batch in batches]
        self.labels = (
            None if self.language_model else torch.cat([torch.as_tensor(batch["labels"]) for batch in batches])
        )
        self.rest: list[tuple | None] = [None] * len(self.stack)
        self.skips: list[_Skip] = []

    def slot(self, position: int) -> Slot:
        return (self.stack, str(position))

    def first_pass(self, capture: bool) -> tuple[Evaluation, list[list[Tensor]]]:
        """The full model's evaluation and each layer's output form; with `capture`, the inputs to cache.

        The cache holds each layer's inputs and each embedding module's outputs (which no removal changes).
        """

        def form(module: nn.Module, args: tuple, output: Any) -> None:
            self.rest[positions[id(module)]] = tuple(output[1:]) if isinstance(output, tuple) else None

        positions = {id(m): p for p, m in enumerate(self.stack)}
        handles = [m.register_forward_hook(form) for m in self.stack]
        if capture:
            handles += [
                getattr(*slot).register_forward_hook(lambda m, a, out, kept=kept: kept.append(out))
                for slot, kept in zip(self.embeddings, self.embedded, strict=True)
            ]
        try:
            evaluation, cache = self.run({}, capture_from=0 if capture else len(self.stack))
        finally:
            for handle in handles:
                handle.remove()
        self.skips = [_Skip(rest) for rest in self.rest]
        return evaluation, cache

    def run(self, replacements: Mapping[Slot, nn.Module], capture_from: int) -> tuple[Evaluation, list[list[Tensor]]]:
        """Evaluate with `replacements`; also return, per layer from `capture_from` up, its input in every batch."""
        captured: list[list[Tensor]] = [[] for _ in range(capture_from, len(self.stack))]
        replays = [module for module in replacements.values() if isinstance(module, _Replay)]

        def keep(slot: list[Tensor]) -> Any:
            return lambda module, args, kwargs: slot.append(args[0] if args else kwargs["hidden_states"])

        with _replaced(replacements):
            handles = [
                self.stack[capture_from + i].register_forward_pre_hook(keep(slot), with_kwargs=True)
                for i, slot in enumerate(captured)
            ]
            try:
                outputs = []  # classifiers: every batch's logits; language models: (summed NLL, tokens) per batch
                for index, inputs in enumerate(self.inputs):
                    for replay in replays:
                        replay.batch = index
                    logits = self.model(**inputs, **forward_kwargs(self.model)).logits.float()
                    outputs.append(next_token_nll(logits, inputs) if self.language_model else logits)
            finally:
                for handle in handles:
                    handle.remove()
        if self.language_model:
            return Evaluation(sum(nll for nll, _ in outputs) / sum(count for _, count in outputs)), captured
        return self.evaluate(torch.cat(outputs)), captured

    def evaluate(self, logits: Tensor) -> Evaluation:
        if logits.shape[-1] == 1:
            loss = F.mse_loss(logits.squeeze(-1), self.labels.float())
        else:
            loss = F.cross_entropy(logits, self.labels.long())
        if self.task is None:
            return Evaluation(float(loss))
        from layerdrop.glue.metrics import compute_metrics, headline_score, logits_to_predictions

        metrics = compute_metrics(self.task, logits_to_predictions(self.task, logits.numpy()), self.labels.numpy())
        return Evaluation(float(loss), headline_score(self.task, metrics), metrics)


def next_token_nll(logits: Tensor, inputs: Mapping[str, Tensor]) -> tuple[float, int]:
    """(summed negative log-likelihood, tokens scored) of each next token, padding left out."""
    labels = inputs["input_ids"][:, 1:]
    mask = inputs.get("attention_mask", torch.ones_like(inputs["input_ids"]))[:, 1:].bool()
    nll = F.cross_entropy(logits[:, :-1].transpose(1, 2), labels, reduction="none")
    return float(nll[mask].double().sum()), int(mask.sum())


def _rank(evaluation: Evaluation, objective: str) -> tuple[float, ...]:
    """Higher is better; with the score objective, ties (common with accuracy) go to the lower loss.

    Perplexity is exp(loss), so it ranks as the loss does.
    """
    return (evaluation.score, -evaluation.loss) if objective == "score" else (-evaluation.loss,)


def _too_far(evaluation: Evaluation, baseline: Evaluation, objective: str, max_drop_percent: float | None) -> bool:
    """Whether the score fell (or the loss or perplexity rose) by more than `max_drop_percent` of the full model's."""
    if max_drop_percent is None:
        return False
    if objective == "score":
        return evaluation.score < baseline.score - abs(baseline.score) * max_drop_percent / 100
    if objective == "perplexity":
        return math.exp(evaluation.loss) > math.exp(baseline.loss) * (1 + max_drop_percent / 100)
    return evaluation.loss > baseline.loss + abs(baseline.loss) * max_drop_percent / 100


def greedy_search(
    model: PreTrainedModel,
    batches: Sequence[Mapping[str, Tensor]],
    candidates: Sequence[int],
    *,
    max_steps: int,
    objective: str = "score",
    task: Any | None = None,
    max_drop_percent: float | None = None,
    reuse: bool = True,
    progress: bool = True,
) -> GreedyResult:
    """Remove up to `max_steps` layers among `candidates`, one at a time, best first.

    Each step tries every remaining candidate and keeps the removal with the best objective
    ("score": the task's headline score, ties to the lower loss; "loss": the mean loss). It stops
    early when that removal would cost more than `max_drop_percent` of the full model's value.
    Ties go to the higher layer. A classifier needs batches with "labels"; a causal language model
    is scored by its next-token loss on the batches' text ("perplexity" is exp of that loss).
    """
    if objective not in OBJECTIVES:
        raise LayerDropError(f"unknown objective {objective!r}; choose one of {', '.join(OBJECTIVES)}")
    if objective == "score" and task is None:
        raise LayerDropError("greedy search by score needs a task (--task); or use --objective loss")
    is_language_model = type(model).__name__.endswith(("ForCausalLM", "LMHeadModel"))
    if (objective == "perplexity") != is_language_model and objective != "loss":
        wanted = "a causal language model (--head causal-lm)" if objective == "perplexity" else "a classification head"
        raise LayerDropError(f"greedy search by {objective} needs {wanted}")
    limit = min(len(candidates), len(layer_modules(model)) - 1)
    if not 0 <= max_steps <= limit:
        raise LayerDropError(f"greedy search can remove between 0 and {limit} layers here, not {max_steps}")
    search = _Search(model, batches, task)
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            return _search(search, list(candidates), max_steps, objective, max_drop_percent, reuse, progress)
    finally:
        model.train(was_training)


def _search(
    search: _Search,
    candidates: list[int],
    max_steps: int,
    objective: str,
    max_drop_percent: float | None,
    reuse: bool,
    progress: bool,
) -> GreedyResult:
    baseline, cache = search.first_pass(capture=reuse)
    result = GreedyResult(len(search.stack), baseline, [], [], f"reached the limit of {max_steps} removals")
    for step in range(max_steps):
        best: tuple[tuple[float, ...], int, Evaluation, list[list[Tensor]]] | None = None
        for layer in tqdm(
            candidates, desc=f"greedy step {step + 1}", unit="candidate", leave=False, disable=not progress
        ):
            evaluation, above = _without(
                search, layer, result.removed, cache if reuse else None, capture=step < max_steps - 1
            )
            key = _rank(evaluation, objective)
            if best is None or key >= best[0]:
                best = (key, layer, evaluation, above)
        _, layer, evaluation, above = best
        if _too_far(evaluation, baseline, objective, max_drop_percent):
            result.stop_reason = (
                f"removing layer {layer} next would cost more than {max_drop_percent:g}% "
                f"({objective} {_value(evaluation, objective):.4g} vs {_value(baseline, objective):.4g})"
            )
            break
        result.removed.append(layer)
        result.trace.append(evaluation)
        candidates.remove(layer)
        if reuse:
            cache = cache[: layer + 1] + above  # inputs below and at `layer` are unchanged
    return result


def _without(
    search: _Search, layer: int, removed: list[int], cache: list[list[Tensor]] | None, capture: bool
) -> tuple[Evaluation, list[list[Tensor]]]:
    """Evaluate without `removed` and `layer`.

    With a cache, only the layers above `layer` run (the embeddings are replayed too), and with
    `capture` their inputs come back for the next step.
    """
    if cache is None:
        return search.run({search.slot(p): search.skips[p] for p in [*removed, layer]}, capture_from=len(search.stack))
    stand_ins: dict[Slot, nn.Module] = {search.slot(p): search.skips[p] for p in [*range(layer), *removed]}
    stand_ins[search.slot(layer)] = _Replay(cache[layer], search.rest[layer])
    stand_ins.update({slot: _Replay(outputs) for slot, outputs in zip(search.embeddings, search.embedded, strict=True)})
    return search.run(stand_ins, capture_from=layer + 1 if capture else len(search.stack))


def _value(evaluation: Evaluation, objective: str) -> float:
    if objective == "perplexity":
        return math.exp(evaluation.loss)
    return evaluation.score if objective == "score" else evaluation.loss
