"""Ranking layers by their weights alone: no data, no forward pass.

The rule: a layer's weight matrices (every parameter with two or more dimensions: attention and
feed-forward projections) are pooled into one set of numbers, and the layer is scored by
  - "norm": the Frobenius norm of that set divided by the square root of its size, i.e. the
    root-mean-square weight, so layers of different widths compare fairly;
  - "variance": the variance of that set.
Biases and norm gains are left out: they are few, sit near 0 and 1 by construction, and would
blur the comparison. Layers with the smallest statistic are taken to matter least.
"""

from __future__ import annotations

from typing import Literal, get_args

from typing import TYPE_CHECKING

from pydantic import Field

from layerdrop.errors import LayerDropError
from layerdrop.strategies.base import NumDropOptions, Selection, SelectionInput, Strategy, extremes, rounded

if TYPE_CHECKING:
    from transformers import PreTrainedModel

Statistic = Literal["norm", "variance"]
STATISTICS: tuple[str, ...] = get_args(Statistic)


def parameter_scores(model: PreTrainedModel, statistic: Statistic = "norm") -> list[float]:
    """The chosen statistic of each layer's weight matrices, in layer order."""
    if statistic not in STATISTICS:
        raise LayerDropError(f"unknown statistic {statistic!r}; choose one of {', '.join(STATISTICS)}")
    from layerdrop.architectures import layer_modules

    scores = []
    for layer in layer_modules(model):
        matrices = [p.detach().double() for p in layer.parameters() if p.ndim >= 2]
        count = sum(m.numel() for m in matrices)
        square_sum = sum(float(m.square().sum()) for m in matrices)
        if statistic == "norm":
            scores.append((square_sum / count) ** 0.5)
        else:
            mean = sum(float(m.sum()) for m in matrices) / count
            scores.append(square_sum / count - mean**2)
    return scores


class ParameterOptions(NumDropOptions):
    """K, and which weight statistic ranks the layers."""

    statistic: Statistic = Field("norm", description="parameter: weight statistic, norm (root-mean-square) or variance")


def _select(options: ParameterOptions, given: SelectionInput) -> Selection:
    scores = parameter_scores(given.model, options.statistic)
    layers = extremes(scores, options.num_drop, options.eligible(given.num_layers), highest=False)
    return Selection(layers, {"statistic": options.statistic, **options.protection(), "scores": rounded(scores)})


PARAMETER = Strategy(
    "parameter",
    "drop the K layers with the smallest weights (--statistic norm|variance); needs no data",
    "Sajjad et al. 2023 (journal version)",
    "weights",
    ParameterOptions,
    _select,
)
