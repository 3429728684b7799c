"""Paper-style reports of a sweep (Sajjad et al. 2023, Table 1 and figures).

Rows are (model, strategy, K); columns are the tasks' headline scores ×100 and their average,
with mean ± std over seeds, Δ and % retained against the full model (strategy "none").
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from layerdrop.errors import LayerDropError
from layerdrop.experiment import FULL_MODEL
from layerdrop.outputs import staged
from layerdrop.sweep import IDENTITY, read_results

FORMATS = ("md", "csv", "tex", "png")
TASK_ORDER = ("sst2", "mnli", "qnli", "qqp", "stsb", "rte", "mrpc", "cola", "wnli")  # the paper's columns first
PLAIN = "fine-tuning"  # how a dropped model recovered when the result does not say (older results)
WITHIN = 0.01  # "droppable": score no worse than the full model's by more than 1% (relative)


def load_results(sources: Sequence[Path]) -> pd.DataFrame:
    """One row per run from sweep databases, run JSON files, or directories of them.

    Directories are searched recursively and JSON files that are not results (model configs, …)
    are ignored; a run found twice keeps its last copy.
    """
    results: list[dict] = []
    for source in sources:
        if source.is_dir():
            results += [r for path in sorted(source.rglob("*.json")) for r in _read_json(path) if _is_result(r)]
        elif source.suffix == ".json":
            results += _read_json(source, strict=True)
        else:
            results += read_results(source)
    if not results:
        raise LayerDropError(f"no results found in {', '.join(map(str, sources))}")
    runs = pd.DataFrame(
        [{**{key: r[key] for key in [*IDENTITY, "score"]}, "recovery": r.get("recovery", PLAIN)} for r in results]
    )
    return runs.drop_duplicates(subset=[*IDENTITY, "recovery"], keep="last").reset_index(drop=True)


def _read_json(path: Path, strict: bool = False) -> list[dict]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise LayerDropError(f"cannot read results from {path}: {err}") from None
    results = data if isinstance(data, list) else [data]
    if strict and not all(_is_result(r) for r in results):
        raise LayerDropError(f"{path} is not a run result (needs {', '.join(IDENTITY)}, score)")
    return results


def _is_result(item: object) -> bool:
    return isinstance(item, dict) and all(key in item for key in [*IDENTITY, "score"])


@dataclass
class Report:
    """Scores ×100 per row (model[, regime], strategy, num_drop): means, stds over seeds, seed counts."""

    mean: pd.DataFrame  # columns: tasks, "Avg", and "Δ", "% retained" when the full model ran
    std: pd.DataFrame  # columns: tasks, "Avg"; NaN with a single seed
    seeds: pd.Series
    tasks: list[str]


def build_report(runs: pd.DataFrame) -> Report:
    """Aggregate runs over seeds; Avg is the mean over seeds of each seed's average over tasks.

    Avg is "-" for rows where no seed has every task. Several regimes get a "regime" row level of their own;
    plain and distilled runs a "recovery" level, after the strategy, so their rows stand side by side.
    """
    rows = [
        "model",
        *(["regime"] if runs["regime"].nunique() > 1 else []),
        "strategy",
        *(["recovery"] if runs["recovery"].nunique() > 1 else []),
        "num_drop",
    ]
    tasks = sorted(
        runs["task"].unique(), key=lambda t: (TASK_ORDER.index(t) if t in TASK_ORDER else len(TASK_ORDER), t)
    )
    per_seed = runs.assign(score=runs["score"] * 100).pivot(index=[*rows, "seed"], columns="task", values="score")
    per_seed = per_seed.reindex(columns=tasks).sort_index(level=["model", "num_drop"])  # full model, then by K
    per_seed["Avg"] = per_seed.mean(axis=1, skipna=False)
    grouped = per_seed.groupby(level=rows, sort=False)
    mean, std = grouped.mean(), grouped.std()
    full = _full_model(mean["Avg"])
    if full is not None:
        reference = full.reindex(mean.index.get_level_values("model")).to_numpy()
        mean["Δ"] = mean["Avg"] - reference
        mean["% retained"] = 100 * mean["Avg"] / reference
    mean.columns.name = std.columns.name = None
    return Report(mean=mean, std=std, seeds=grouped.size(), tasks=tasks)


def _full_model(scores: pd.Series | pd.DataFrame) -> pd.Series | pd.DataFrame | None:
    """The full model's scores per model (pooled over regimes), or None if it never ran."""
    if FULL_MODEL not in scores.index.get_level_values("strategy"):
        return None
    return scores.xs(FULL_MODEL, level="strategy").groupby(level="model").mean()


def score_table(report: Report) -> pd.DataFrame:
    """The paper's Table 1 as strings: "mean" or "mean ± std" per cell, one decimal."""
    cells = pd.DataFrame(index=report.mean.index)
    for column in [*report.tasks, "Avg"]:
        mean, std = report.mean[column], report.std[column]
        cells[column] = [
            "-" if pd.isna(m) else f"{m:.1f}" if pd.isna(s) else f"{m:.1f} ± {s:.1f}"
            for m, s in zip(mean, std, strict=True)
        ]
    if "Δ" in report.mean:
        cells["Δ"] = report.mean["Δ"].map(lambda d: "-" if pd.isna(d) else f"{d:+.1f}")
        cells["% retained"] = report.mean["% retained"].map(lambda p: "-" if pd.isna(p) else f"{p:.1f}")
    return cells.reset_index().rename(columns={"num_drop": "K"})


def best_by_k(report: Report) -> pd.DataFrame:
    """For each model (and regime) and K, the strategy with the highest average score."""
    dropped = report.mean.drop(index=FULL_MODEL, level="strategy", errors="ignore").dropna(subset=["Avg"])
    groups = [level for level in dropped.index.names if level != "strategy"]
    best = dropped.loc[dropped.groupby(level=groups)["Avg"].idxmax()]
    columns = [c for c in ("Avg", "Δ", "% retained") if c in best]
    return best[columns].reset_index().rename(columns={"num_drop": "K"})


def droppable(report: Report) -> pd.DataFrame | None:
    """Per task and strategy, the largest K whose score is within 1% of the full model's.

    Rows are (model[, regime], task), columns strategies; 0 means no K stayed within 1%.
    None when the full model did not run.
    """
    scores = report.mean[report.tasks]
    full = _full_model(scores)
    if full is None:
        return None
    dropped = scores.drop(index=FULL_MODEL, level="strategy")
    reference = full.reindex(dropped.index.get_level_values("model")).to_numpy()
    within = dropped.ge(reference - WITHIN * abs(reference))
    k = pd.Series(dropped.index.get_level_values("num_drop"), index=dropped.index)
    largest = within.mul(k, axis=0).where(dropped.notna()).groupby(level=dropped.index.names[:-1]).max()
    table = largest.stack().unstack("strategy").astype("Int64")
    table.index = table.index.set_names("task", level=-1)
    table.columns.name = None
    return table.reset_index()


def to_markdown(table: pd.DataFrame) -> str:
    """Markdown of a table of strings, cells kept exactly as formatted."""
    return table.to_markdown(index=False, disable_numparse=True) + "\n"


def markdown_files(report: Report) -> dict[str, str]:
    """table.md, best.md and, when the full model ran, droppable.md (see TITLES)."""
    files = {
        "table.md": to_markdown(score_table(report)),
        "best.md": best_by_k(report).to_markdown(index=False, floatfmt=".1f") + "\n",
    }
    drops = droppable(report)
    if drops is not None:
        files["droppable.md"] = to_markdown(drops.astype("string").fillna("-"))
    return files


TITLES = {
    "table.md": "Scores ×100 (mean ± std over seeds)",
    "best.md": "Best strategy per K",
    "droppable.md": "Layers droppable within 1% of the full model",
}


def plot_average(report: Report, path: Path) -> None:
    """Average score against layers dropped: one panel per model, one line per strategy."""
    from matplotlib.figure import Figure  # no pyplot: no GUI backend, no global state
    from matplotlib.ticker import MaxNLocator

    average = report.mean["Avg"].dropna()
    full = _full_model(average)
    models = list(average.index.unique("model"))
    figure = Figure(figsize=(5 * len(models), 4), layout="constrained")
    for axes, model in zip(figure.subplots(1, len(models), squeeze=False)[0], models, strict=True):
        lines = average.xs(model, level="model").drop(index=FULL_MODEL, level="strategy", errors="ignore")
        for name, line in lines.groupby(level=[n for n in lines.index.names if n != "num_drop"]):
            label = " ".join(name) if isinstance(name, tuple) else name
            axes.plot(line.index.get_level_values("num_drop"), line.to_numpy(), marker="o", label=label)
        if full is not None and model in full:
            axes.axhline(full[model], color="black", linestyle="--", label="full model")
        axes.set(title=model, xlabel="layers dropped (K)", ylabel="average score ×100")
        axes.xaxis.set_major_locator(MaxNLocator(integer=True))
        axes.legend(fontsize="small")
    figure.savefig(path, dpi=150)


def write_report(report: Report, output: Path, formats: Sequence[str] = FORMATS, overwrite: bool = False) -> list[Path]:
    """Write the requested formats into the folder `output` (staged, then renamed); returns the files written."""
    unknown = sorted(set(formats) - set(FORMATS))
    if unknown:
        raise LayerDropError(f"unknown report format {unknown[0]!r}; choose from {', '.join(FORMATS)}")
    written = markdown_files(report) if "md" in formats else {}
    if "csv" in formats:
        numeric = report.mean.join(report.std.add_suffix(" std")) if report.seeds.max() > 1 else report.mean
        written["table.csv"] = (
            numeric.assign(seeds=report.seeds)
            .reset_index()
            .rename(columns={"num_drop": "K"})
            .to_csv(index=False, float_format="%.2f")
        )
    if "tex" in formats:
        # ± is fine in UTF-8 LaTeX; Δ is not a text-mode character.
        written["table.tex"] = score_table(report).to_latex(index=False, escape=True).replace("Δ", r"$\Delta$")
    names = list(written)
    with staged(output, "dir", overwrite, what="--output") as staging:
        for name, text in written.items():
            (staging / name).write_text(text, encoding="utf-8")
        if "png" in formats and report.mean["Avg"].notna().any():
            plot_average(report, staging / "average_vs_dropped.png")
            names.append("average_vs_dropped.png")
    return [output / name for name in names]
