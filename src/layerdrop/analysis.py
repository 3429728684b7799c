"""Per-layer analysis: every data-driven score of every layer from one forward pass, as files and plots.

`layerdrop analyze` writes scores.json, scores.csv, similarity_heatmap.png and contribution.png,
so a user can see which layers change the representation least before choosing what to drop.
"""

from __future__ import annotations

import csv
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any
from collections.abc import Mapping, Sequence

from torch import Tensor
from transformers import PreTrainedModel

from layerdrop.outputs import staged
from layerdrop.strategies.parameter import parameter_scores
from layerdrop.strategies.similarity import check_pooling, default_pooling, layer_similarity

COLUMNS = (
    "layer",
    "cosine_first_token",
    "cosine_last_token",
    "cosine_mean",
    "block_influence",
    "angular_distance",
    "parameter_norm",
    "parameter_variance",
)


@dataclass
class LayerAnalysis:
    """Per-layer scores of a model and the cosine similarity between its layers' representations.

    `rows` has one row per layer (`COLUMNS`; angular distance for a block of one layer, with `pooling`);
    `cosine_matrix` is the (L+1)×(L+1) cosine similarity between the representations after 0..L layers.
    """

    rows: list[dict[str, float]]
    cosine_matrix: list[list[float]]
    pooling: str
    num_texts: int


def analyze_layers(
    model: PreTrainedModel, batches: Sequence[Mapping[str, Tensor]], pooling: str | None = None, progress: bool = True
) -> LayerAnalysis:
    """Score every layer of `model` on tokenized `batches`; `pooling` as in `similarity.POOLINGS`."""
    pooling = check_pooling(pooling or default_pooling(model.config))
    similarity = layer_similarity(model, batches, progress=progress)
    columns = {
        "cosine_first_token": similarity.contribution("first"),
        "cosine_last_token": similarity.contribution("last"),
        "cosine_mean": similarity.contribution("mean"),
        "block_influence": similarity.block_influence(),
        "angular_distance": similarity.angular_distance(pooling, 1),
        "parameter_norm": parameter_scores(model, "norm"),
        "parameter_variance": parameter_scores(model, "variance"),
    }
    rows = [
        {"layer": i, **{name: round(values[i], 6) for name, values in columns.items()}}
        for i in range(similarity.num_layers)
    ]
    matrix = [[round(v, 6) for v in row] for row in similarity.cosine[pooling].tolist()]
    return LayerAnalysis(rows, matrix, pooling, similarity.num_texts)


def write_analysis(
    analysis: LayerAnalysis, output: str | Path, about: Mapping[str, Any] | None = None, overwrite: bool = False
) -> list[Path]:
    """Write the scores (JSON with `about`, CSV) and both plots into the folder `output`; return the paths."""
    names = ("scores.json", "scores.csv", "similarity_heatmap.png", "contribution.png")
    with staged(output, "dir", overwrite, what="--output") as staging:
        (staging / names[0]).write_text(json.dumps({**(about or {}), **asdict(analysis)}, indent=2) + "\n")
        with (staging / names[1]).open("w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=COLUMNS)
            writer.writeheader()
            writer.writerows(analysis.rows)
        _plot_heatmap(analysis, staging / names[2])
        _plot_contribution(analysis, staging / names[3])
    return [Path(output) / name for name in names]


def _plot_heatmap(analysis: LayerAnalysis, path: Path) -> None:
    from matplotlib.figure import Figure  # Agg canvas, no pyplot state: safe headless and in threads

    size = len(analysis.cosine_matrix)
    labels = ["emb", *map(str, range(1, size))]
    figure = Figure(figsize=(2 + 0.45 * size, 1.5 + 0.45 * size), layout="constrained")
    axes = figure.subplots()
    image = axes.imshow(
        analysis.cosine_matrix, cmap="viridis", vmin=min(0.0, min(map(min, analysis.cosine_matrix))), vmax=1.0
    )
    axes.set_xticks(range(size), labels, fontsize=8)
    axes.set_yticks(range(size), labels, fontsize=8)
    axes.set_xlabel("after layer")
    axes.set_ylabel("after layer")
    pooled = "mean pooled" if analysis.pooling == "mean" else f"{analysis.pooling} token"
    axes.set_title(f"cosine similarity of representations ({pooled})")
    figure.colorbar(image, ax=axes, shrink=0.8)
    figure.savefig(path, dpi=120)


def _plot_contribution(analysis: LayerAnalysis, path: Path) -> None:
    from matplotlib.figure import Figure

    layers = [row["layer"] for row in analysis.rows]
    pooled = "cosine_mean" if analysis.pooling == "mean" else f"cosine_{analysis.pooling}_token"
    figure = Figure(figsize=(3 + 0.5 * len(layers), 3.5), layout="constrained")
    axes = figure.subplots()
    width = 0.4
    axes.bar(
        [i - width / 2 for i in layers],
        [1 - row[pooled] for row in analysis.rows],
        width,
        label=f"1 - cosine ({analysis.pooling})",
    )
    axes.bar(
        [i + width / 2 for i in layers],
        [row["block_influence"] for row in analysis.rows],
        width,
        label="block influence",
    )
    axes.set_xticks(layers, [str(i) for i in layers])
    axes.set_xlabel("layer (0-based)")
    axes.set_ylabel("contribution (higher = changes more)")
    axes.legend(fontsize=8)
    figure.savefig(path, dpi=120)
