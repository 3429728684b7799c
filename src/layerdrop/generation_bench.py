"""Generation speed of decoders: how much faster a model with dropped layers writes text.

The speed-up is reported next to what the FLOPs promise.

Each model generates greedily from the same random prompt of P tokens, exactly N new tokens (the
end-of-text token is suppressed: min_new_tokens = max_new_tokens), with the KV cache, at each
batch size. Time to first token is a separate generation of one token (prefill and one step of
the LM head). As in `layerdrop.bench`, every model is loaded in this process, warmed up, and timed
interleaved (a different model first in each round) so noise on a shared machine hits them all.

The ideal speed-up is the ratio of FLOPs counted (torch.utils.flop_counter) over the whole
generation, prefill and every decoding step, embeddings and LM head included; per-token work that
is not a matrix product (sampling, cache updates, Python overhead) is what keeps a real speed-up
below it, most at batch 1.
"""

from __future__ import annotations

import gc
import statistics
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch.utils.flop_counter import FlopCounterMode
from tqdm.auto import tqdm
from transformers import GenerationConfig, PreTrainedModel

from layerdrop.architectures import num_layers, parameter_count, require_causal_lm
from layerdrop.bench import (
    DTYPES,
    EXTRA_FLOP_FORMULAS,
    SPECIAL_ID_KEYS,
    _BackgroundCpu,
    _cpu_name,
    _rotated,
    make_inputs,
)
from layerdrop.checkpoint import load_model
from layerdrop.errors import LayerDropError
from layerdrop.settings import GenerationBenchSettings


@dataclass
class GenerationCell:
    """One model at one batch size."""

    batch_size: int
    prompt_tokens: int
    new_tokens: int
    flops: int  # of the whole generation: prefill and every decoding step
    first_token_ms: float  # median time to first token
    total_ms: float  # median time of the whole generation
    tokens_per_second: float  # new tokens (all sequences) per second of the whole generation
    decode_tokens_per_second: float  # new tokens after the first, per second after the first
    times_ms: list[float] = field(default_factory=list)
    first_token_times_ms: list[float] = field(default_factory=list)
    speedup: float | None = None  # tokens/s over the first model's
    ideal_speedup: float | None = None  # the first model's FLOPs over this one's
    speedup_vs_ideal: float | None = None
    background_cpu: float | None = None  # share of all CPUs busy with other work while timing


@dataclass
class GenerationModelResult:
    """One model's figures, one cell per batch size."""

    model: str
    num_layers: int
    parameters: int
    cells: list[GenerationCell] = field(default_factory=list)


@dataclass
class GenerationReport:
    """Every model's figures and the conditions they were measured in."""

    settings: dict[str, Any]
    threads: int
    device_name: str
    torch_version: str
    models: list[GenerationModelResult]

    def to_dict(self) -> dict[str, Any]:
        """Plain values, for JSON."""
        return asdict(self)

    def rows(self) -> list[dict[str, Any]]:
        """One flat row per model and batch size, for a table or CSV."""
        drop = ("times_ms", "first_token_times_ms")
        return [
            {"model": m.model, "num_layers": m.num_layers, "parameters": m.parameters}
            | {k: v for k, v in asdict(c).items() if k not in drop}
            for m in self.models
            for c in m.cells
        ]


def generation_config(model: PreTrainedModel, new_tokens: int) -> GenerationConfig:
    """Greedy decoding of exactly `new_tokens` tokens with the KV cache, whatever the model's own defaults."""
    own = model.generation_config
    eos = own.eos_token_id if own.eos_token_id is not None else model.config.eos_token_id
    pad = own.pad_token_id if own.pad_token_id is not None else (eos[0] if isinstance(eos, list) else eos)
    return GenerationConfig(
        max_new_tokens=new_tokens,
        min_new_tokens=new_tokens,
        do_sample=False,
        num_beams=1,
        use_cache=True,
        eos_token_id=eos,
        pad_token_id=pad,
        bos_token_id=own.bos_token_id,
    )


def generate(model: PreTrainedModel, inputs: Mapping[str, torch.Tensor], new_tokens: int) -> torch.Tensor:
    """The generated ids (prompt included), checked to be exactly `new_tokens` longer than the prompt."""
    output = model.generate(**inputs, generation_config=generation_config(model, new_tokens))
    if output.shape[1] != inputs["input_ids"].shape[1] + new_tokens:
        raise RuntimeError(f"generated {output.shape[1] - inputs['input_ids'].shape[1]} tokens, expected {new_tokens}")
    return output


def generation_flops(model: PreTrainedModel, inputs: Mapping[str, torch.Tensor], new_tokens: int) -> int:
    """FLOPs of one whole generation (2 per multiply-add of every matmul and attention product)."""
    with torch.inference_mode(), FlopCounterMode(display=False, custom_mapping=EXTRA_FLOP_FORMULAS) as counter:
        generate(model, inputs, new_tokens)
    return int(counter.get_total_flops())


def bench_generation(
    models: Mapping[str, PreTrainedModel], settings: GenerationBenchSettings, progress: bool = True
) -> GenerationReport:
    """Time every model (name -> loaded causal LM) at every batch size and compare each to the first.

    The models are put in eval mode without gradients (FlopCounterMode needs that in inference mode).
    """
    if not models:
        raise LayerDropError("give at least one model to benchmark")
    if settings.threads is not None:
        torch.set_num_threads(settings.threads)
    loaded = list(models.values())
    for model in loaded:
        require_causal_lm(model, "generation")
        model.eval().requires_grad_(False)
    limit = min((getattr(m.config, "max_position_embeddings", None) or 10**9) for m in loaded)
    if settings.prompt_tokens + settings.new_tokens > limit:
        raise LayerDropError(
            f"prompt and new tokens ({settings.prompt_tokens + settings.new_tokens}) exceed the position limit {limit}"
        )
    vocab_size = min(m.config.vocab_size for m in loaded)
    special = sorted({v for m in loaded for key in SPECIAL_ID_KEYS for v in _ids(getattr(m.config, key, None))})
    results = [GenerationModelResult(name, num_layers(m.config), parameter_count(m)) for name, m in models.items()]
    for batch_size in tqdm(settings.batch_sizes, desc="generation", unit="batch size", disable=not progress):
        inputs = make_inputs(batch_size, settings.prompt_tokens, vocab_size, special, settings.seed, settings.device)
        for result, cell in zip(results, _time_batch(loaded, inputs, settings), strict=True):
            result.cells.append(cell)
    for result in results:
        for cell, first in zip(result.cells, results[0].cells, strict=True):
            cell.speedup = cell.tokens_per_second / first.tokens_per_second
            cell.ideal_speedup = first.flops / cell.flops
            cell.speedup_vs_ideal = cell.speedup / cell.ideal_speedup
    return GenerationReport(
        settings=settings.model_dump(),
        threads=torch.get_num_threads(),
        device_name=torch.cuda.get_device_name() if settings.device == "cuda" else _cpu_name(),
        torch_version=torch.__version__,
        models=results,
    )


def run_generation_bench(
    names: Sequence[str], settings: GenerationBenchSettings, progress: bool = True
) -> GenerationReport:
    """Load every model (hub name, path or bundled:NAME) as a causal LM and benchmark its generation."""
    if settings.device == "cuda" and not torch.cuda.is_available():
        raise LayerDropError("--device cuda, but torch sees no CUDA device")
    models = {
        name: load_model(name, head="causal-lm", trained_head=True, dtype=DTYPES[settings.dtype]).to(settings.device)
        for name in names
    }
    return bench_generation(models, settings, progress)


def _ids(value: Any) -> list[int]:
    return [v for v in (value if isinstance(value, list) else [value]) if isinstance(v, int)]


def _time_batch(
    models: Sequence[PreTrainedModel], inputs: dict[str, torch.Tensor], settings: GenerationBenchSettings
) -> list[GenerationCell]:
    """FLOPs (an uncounted first generation), warm-up, then `repeats` timed rounds.

    Each round runs, per model, one first-token generation and one whole generation, a different model first.
    """
    sync = torch.cuda.synchronize if settings.device == "cuda" else (lambda: None)
    new = settings.new_tokens
    flops = [generation_flops(model, inputs, new) for model in models]
    first: list[list[float]] = [[] for _ in models]
    whole: list[list[float]] = [[] for _ in models]

    def timed(model: PreTrainedModel, tokens: int) -> float:
        sync()
        start = time.perf_counter()
        generate(model, inputs, tokens)
        sync()
        return (time.perf_counter() - start) * 1e3

    with torch.inference_mode():
        for _ in range(settings.warmup):
            for model in models:
                generate(model, inputs, new)
        gc.collect()
        gc.disable()  # a collection inside a timed generation would be charged to whichever model ran
        background = _BackgroundCpu()
        try:
            for round_ in range(settings.repeats):
                for i in _rotated(len(models), round_):
                    first[i].append(timed(models[i], 1))
                    whole[i].append(timed(models[i], new))
        finally:
            gc.enable()
    busy_elsewhere = background.share()
    batch_size, prompt = inputs["input_ids"].shape
    cells = []
    for model_flops, first_ms, whole_ms in zip(flops, first, whole, strict=True):
        ttft, total = statistics.median(first_ms), statistics.median(whole_ms)
        decode = batch_size * (new - 1) / ((total - ttft) / 1e3) if new > 1 and total > ttft else float("nan")
        cells.append(
            GenerationCell(
                batch_size,
                prompt,
                new,
                model_flops,
                ttft,
                total,
                batch_size * new / (total / 1e3),
                decode,
                whole_ms,
                first_ms,
                background_cpu=busy_elsewhere,
            )
        )
    return cells
