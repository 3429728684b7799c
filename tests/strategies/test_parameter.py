"""Parameter statistics: the layers with the smallest weights (no data needed)."""

from __future__ import annotations

import pytest
import torch

from layerdrop.architectures import layer_modules
from layerdrop.strategies.parameter import parameter_scores
from scoring_inputs import select, tiny_bert


def test_parameter_scores_are_the_rms_weight_of_each_layers_matrices() -> None:
    model = tiny_bert()
    with torch.no_grad():
        for p in layer_modules(model)[1].parameters():
            p.mul_(0.1)
    layer = layer_modules(model)[0]
    matrices = torch.cat([p.detach().flatten() for p in layer.parameters() if p.ndim == 2]).double()
    assert parameter_scores(model, "norm")[0] == pytest.approx(float(matrices.square().mean().sqrt()))
    assert parameter_scores(model, "variance")[0] == pytest.approx(float(matrices.var(unbiased=False)))
    assert select("parameter", model, num_drop=1)[0] == [1]
