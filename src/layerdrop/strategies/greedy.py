"""SLEB-style greedy layer removal (Song et al. 2024) as a strategy.

Each step removes the layer whose removal costs least on labelled data. The search itself, with
activation reuse, is in greedy_search.py.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from layerdrop.errors import LayerDropError
from layerdrop.settings import named
from layerdrop.strategies.base import Selection, SelectionInput, Strategy, StrategyOptions

Objective = Literal["score", "loss", "perplexity"]


class GreedyOptions(StrategyOptions):
    """What a removal may cost, and when to stop: after K layers, past a score drop, or whichever comes first."""

    objective: Objective | None = Field(
        None,
        description="greedy: what a removal may cost: the task's score or loss (classifiers), or perplexity on text "
        "(language models); default: score, or perplexity for a language model",
    )
    max_drop_percent: float | None = Field(
        None,
        ge=0,
        description=(
            "greedy: stop before the score falls (or the perplexity rises) more than this % from the full model's"
        ),
    )

    @model_validator(mode="after")
    def _has_a_limit(self) -> GreedyOptions:
        if self.num_drop is None and self.max_drop_percent is None:
            raise ValueError(f"give {named('num_drop')}, {named('max_drop_percent')} or both")
        return self


def _select(options: GreedyOptions, given: SelectionInput) -> Selection:
    from layerdrop.strategies.greedy_search import greedy_search

    model, task = given.model, given.task
    language_model = type(model).__name__.endswith(("ForCausalLM", "LMHeadModel"))
    objective = options.objective or ("perplexity" if language_model else "score")
    if not language_model and not type(model).__name__.endswith("ForSequenceClassification"):
        raise LayerDropError(
            "strategy 'greedy' needs a classification head (--head sequence-classification) "
            "or a causal LM (--head causal-lm)"
        )
    if task is not None and not language_model and model.config.num_labels != task.num_labels:
        raise LayerDropError(
            f"the model has {model.config.num_labels} labels but task {task.name} has {task.num_labels} (--num-labels)"
        )
    eligible = options.eligible(given.num_layers)
    steps = options.num_drop if options.num_drop is not None else len(eligible) - 1
    result = greedy_search(
        model,
        given.batches,
        eligible,
        max_steps=steps,
        objective=objective,
        task=task,
        max_drop_percent=options.max_drop_percent,
        progress=given.progress,
    )
    limit = {"max_drop_percent": options.max_drop_percent} if options.max_drop_percent is not None else {}
    num_texts = sum(len(batch["input_ids"]) for batch in given.batches)
    record = {
        "objective": objective,
        **limit,
        **options.protection(),
        "num_texts": num_texts,
        "greedy": result.as_record(),
    }
    return Selection(result.removed, record)


GREEDY = Strategy(
    "greedy",
    "remove, one at a time, the layer whose removal costs the least: dev score or loss (labels), or perplexity (text)",
    "Song et al. 2024 (SLEB)",
    "texts",
    GreedyOptions,
    _select,
    judges_outputs=True,
)
