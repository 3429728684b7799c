"""What a layer-selection strategy is: one registered entry that the CLI, sweeps and Python API share.

An entry has a name, a one-line description, its paper, what it needs to look at, an options schema
and a `select` function.

Every entry's options derive from `StrategyOptions`, so the CLI, sweeps and the Python API
validate the same way: an option the strategy does not take, or a value out of range, is refused
before any weights or data load. `select` gets what the entry `needs` in a `SelectionInput` and
returns a `Selection`: the layers to drop and the record stored in the model's config.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any, Literal, get_args

from pydantic import Field, ValidationError

from layerdrop.errors import LayerDropError
from layerdrop.settings import Settings, describe_error, named

if TYPE_CHECKING:
    from torch import Tensor
    from transformers import PreTrainedModel

    from layerdrop.glue.tasks import Task
    from layerdrop.strategies.similarity import SimilarityScores

# How a text's token vectors are summed up for comparing layers: the first token ([CLS]), the last, or the mean.
Pooling = Literal["first", "last", "mean"]
POOLINGS: tuple[str, ...] = get_args(Pooling)
# What `select` looks at: the layer count only, the weights, or data run through the model.
Needs = Literal["position", "weights", "texts"]
Batch = Mapping[str, "Tensor"]


class StrategyOptions(Settings):
    """Options every strategy takes."""

    num_drop: int | None = Field(
        None, ge=1, description="number of layers to drop (K)", json_schema_extra={"flags": ["-k"]}
    )
    protect_first: bool = Field(False, description="never drop the layer next to the embeddings")
    protect_last: bool = Field(False, description="never drop the top layer")

    def eligible(self, num_layers: int) -> list[int]:
        """The layers the strategy may choose from once the protected ends are set aside."""
        return [
            i
            for i in range(num_layers)
            if not (self.protect_first and i == 0) and not (self.protect_last and i == num_layers - 1)
        ]

    def check_count(self, num_layers: int, limit: int | None = None) -> list[int]:
        """The eligible layers, after refusing a K that would leave no layer (or pass a strategy's `limit`)."""
        eligible = self.eligible(num_layers)
        if self.num_drop is not None and self.num_drop >= len(eligible):
            protected = " with its protected layers" if len(eligible) < num_layers else ""
            raise LayerDropError(
                f"{named('num_drop')} must be between 1 and {len(eligible) - 1} "
                f"for a {num_layers}-layer model{protected}, got {self.num_drop}"
            )
        if limit is not None and self.num_drop is not None and self.num_drop > limit:
            raise LayerDropError(f"this strategy can drop at most {limit} of {num_layers} layers, got {self.num_drop}")
        return eligible

    def protection(self) -> dict[str, bool]:
        """The protect flags for the record, only when one is set."""
        return (
            {"protect_first": self.protect_first, "protect_last": self.protect_last}
            if self.protect_first or self.protect_last
            else {}
        )


class NumDropOptions(StrategyOptions):
    """Options of strategies that always need K."""

    num_drop: int = Field(..., ge=1, description="number of layers to drop (K)", json_schema_extra={"flags": ["-k"]})


@dataclass
class SelectionInput:
    """What a strategy may look at. Scores from one hooked forward pass are computed once, on demand."""

    num_layers: int
    model: PreTrainedModel | None = None
    batches: Sequence[Batch] | None = None
    task: Task | None = None
    progress: bool = True
    data_record: dict[str, Any] = field(default_factory=dict)  # where the data came from, for the record

    @cached_property
    def similarity(self) -> SimilarityScores:
        """Per-layer similarity scores of `model` on `batches`, from one hooked forward pass on first use."""
        from layerdrop.strategies.similarity import layer_similarity

        return layer_similarity(self.model, self.batches, progress=self.progress)


@dataclass(frozen=True)
class Selection:
    """The layers to drop (0-based, sorted) and how they were chosen, for the `layer_dropping` record."""

    layers: list[int]
    record: dict[str, Any]


@dataclass(frozen=True)
class Strategy:
    """One registered strategy."""

    name: str
    description: str  # one line, shown by `layerdrop strategies`
    reference: str  # the paper (or "baseline")
    needs: Needs
    options: type[StrategyOptions]
    select: Callable[[Any, SelectionInput], Selection]
    check: Callable[[Any, int], None] | None = (
        None  # refuses options impossible for an L-layer model, before any loading
    )
    judges_outputs: bool = False  # ranks layers by the model's predictions, so its head must be trained

    def parse(self, values: Mapping[str, Any] | StrategyOptions) -> StrategyOptions:
        """Validate options for this strategy; an option it does not take is named in a one-line error."""
        if isinstance(values, self.options):
            return values
        if isinstance(values, StrategyOptions):
            values = values.model_dump(exclude_unset=True)
        given = {key: value for key, value in values.items() if value is not None}
        if unknown := [key for key in given if key not in self.options.model_fields]:
            raise LayerDropError(
                f"{named(unknown[0])} does not go with strategy {self.name!r}; see `layerdrop strategies`"
            )
        try:
            return self.options.model_validate(given)
        except ValidationError as err:
            raise LayerDropError(f"strategy {self.name!r}: {describe_error(err)}") from None

    def prepare(self, values: Mapping[str, Any] | StrategyOptions, num_layers: int) -> StrategyOptions:
        """Parse the options and check them against the layer count: everything that needs no weights."""
        options = self.parse(values)
        options.check_count(num_layers)
        if self.check is not None:
            self.check(options, num_layers)
        return options

    @property
    def uses_data(self) -> bool:
        """Whether the strategy scores layers on data, so it needs batches and records where they came from."""
        return self.needs == "texts"

    def run(self, values: Mapping[str, Any] | StrategyOptions, given: SelectionInput) -> Selection:
        """Check the options, then select; the record always holds the name and the number dropped."""
        options = self.prepare(values, given.num_layers)
        if self.needs != "position" and given.model is None:
            raise LayerDropError(f"strategy {self.name!r} needs the model's weights")
        if self.uses_data and not given.batches:
            raise LayerDropError(
                f"strategy {self.name!r} needs data: a task ({named('task')}), texts ({named('text_file')}) "
                f"or running text ({named('corpus')})"
            )
        selection = self.select(options, given)
        if len(selection.layers) >= given.num_layers:
            raise LayerDropError(f"strategy {self.name!r} would drop all {given.num_layers} layers")
        record = {"name": self.name, "num_drop": len(selection.layers), **selection.record}
        if given.data_record and self.uses_data:
            record["data"] = given.data_record
        return Selection(sorted(selection.layers), record)


def extremes(scores: Sequence[float], num: int, eligible: Sequence[int], highest: bool) -> list[int]:
    """The `num` eligible layers with the highest (or lowest) scores, sorted; ties go to the higher layer."""
    ranked = sorted(eligible, key=lambda i: (-scores[i] if highest else scores[i], -i))
    return sorted(ranked[:num])


def rounded(values: Sequence[float]) -> list[float]:
    """Scores as stored in a record: six decimals are plenty and keep config.json readable."""
    return [round(float(v), 6) for v in values]
