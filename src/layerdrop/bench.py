"""`layerdrop bench`: how much faster a model with dropped layers really is, next to what its FLOPs promise.

Timing is done in this process with every model loaded, on the same input tensors, models
interleaved (a different one first in each round) so drift and noise on a shared machine hit
them all alike; every model is warmed up on every (batch, length) cell before it is timed.

Peak memory is measured afterwards, each model in a fresh Python process holding only that
model (`python -m layerdrop.bench SPEC`), so one model's weights, allocator leftovers or
process-wide peak never leak into another's figure:

- CPU: peak resident set size (RSS) during one forward pass. Exact on Linux, which lets a
  process reset its high-water mark (VmHWM via /proc/self/clear_refs); elsewhere psutil samples
  RSS every millisecond. `activation` is that peak minus the RSS just before the forward
  (after a warm-up forward and after freed heap is handed back to the OS).
- CUDA: torch.cuda.max_memory_allocated after reset_peak_memory_stats, and the same minus the
  memory allocated before the forward.
"""

from __future__ import annotations

import ctypes
import gc
import json
import os
import platform
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from collections.abc import Callable, Sequence

import psutil
import torch
from torch.utils.flop_counter import FlopCounterMode, sdpa_flop_count
from transformers import PretrainedConfig, PreTrainedModel

from layerdrop.architectures import num_layers, parameter_count
from layerdrop.checkpoint import load_model, load_model_config, load_tokenizer
from layerdrop.errors import LayerDropError
from layerdrop.settings import BenchSettings
from layerdrop.summary import size_on_disk

DTYPES: dict[str, torch.dtype] = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
SPECIAL_ID_KEYS = (
    "pad_token_id",
    "bos_token_id",
    "eos_token_id",
    "sep_token_id",
    "cls_token_id",
    "unk_token_id",
    "mask_token_id",
    "decoder_start_token_id",
)
POSITION_OFFSET_TYPES = ("roberta", "xlm-roberta", "camembert")  # position ids start after padding_idx
# FlopCounterMode has no formula for the fused CPU attention kernel; without one attention would count 0.
EXTRA_FLOP_FORMULAS = {
    torch.ops.aten._scaled_dot_product_flash_attention_for_cpu: lambda q, k, v, *args, out_shape=None, **kwargs: (
        sdpa_flop_count(q, k, v)
    ),
}
StepCallback = Callable[[str, int, int], None]  # (what is starting, steps done, steps in all)


@dataclass
class CellResult:
    """One model at one (batch size, sequence length)."""

    batch_size: int
    seq_len: int
    flops: int  # of one forward pass: matmuls and attention, embeddings and head included
    times_ms: list[float]  # one per timed forward, in the order run
    median_ms: float
    p90_ms: float
    throughput: float  # sequences per second, from the median
    peak_memory_bytes: int | None = None
    activation_memory_bytes: int | None = None
    speedup: float | None = None  # throughput over the first model's
    ideal_speedup: float | None = None  # the first model's FLOPs over this one's
    speedup_vs_ideal: float | None = None  # measured / ideal
    background_cpu: float | None = None  # share of all CPUs busy with other work while this cell was timed


@dataclass
class ModelResult:
    """One benchmarked model: what it is, its size, and its results cell by cell."""

    model: str
    architecture: str
    num_layers: int
    parameters: int
    size_on_disk_bytes: int | None
    max_positions: int | None
    loaded_memory_bytes: int | None = None  # CPU: RSS of a process holding only this model; CUDA: allocated
    cells: list[CellResult] = field(default_factory=list)


@dataclass
class BenchReport:
    """A whole benchmark run: the settings and machine it ran on, and every model's results."""

    settings: dict[str, Any]
    threads: int
    device_name: str
    torch_version: str
    memory_method: str | None
    notes: list[str]  # e.g. which lengths were clamped to the models' position limit
    models: list[ModelResult]

    def to_dict(self) -> dict[str, Any]:
        """The report as plain nested dicts and lists, for JSON."""
        return asdict(self)

    def rows(self) -> list[dict[str, Any]]:
        """One flat row per model and cell, for CSV."""
        return [
            {
                "model": m.model,
                "num_layers": m.num_layers,
                "parameters": m.parameters,
                "size_on_disk_bytes": m.size_on_disk_bytes,
            }
            | {k: v for k, v in asdict(cell).items() if k != "times_ms"}
            for m in self.models
            for cell in m.cells
        ]


def max_positions(config: PretrainedConfig) -> int | None:
    """The longest sequence the position embeddings allow, or None when there is no limit (XLNet)."""
    limit = getattr(config, "max_position_embeddings", None)
    if not isinstance(limit, int) or limit < 1:
        return None
    if config.model_type in POSITION_OFFSET_TYPES:
        limit -= (config.pad_token_id or 0) + 1
    return limit


def special_token_ids(names: Sequence[str]) -> list[int]:
    """Every id a config or tokenizer marks as special: random inputs avoid them, as real text does."""
    ids: set[int] = set()
    for name in names:
        config = load_model_config(name)
        for key in SPECIAL_ID_KEYS:
            value = getattr(config, key, None)
            ids.update(v for v in (value if isinstance(value, list) else [value]) if isinstance(v, int))
        tokenizer = load_tokenizer(name)
        if tokenizer is not None:
            ids.update(tokenizer.all_special_ids)
    return sorted(ids)


def make_inputs(
    batch_size: int, seq_len: int, vocab_size: int, special_ids: Sequence[int], seed: int, device: str
) -> dict[str, torch.Tensor]:
    """Random non-special token ids and a full attention mask, the same for a given seed everywhere."""
    allowed = torch.ones(vocab_size, dtype=torch.bool)
    allowed[[i for i in special_ids if 0 <= i < vocab_size]] = False
    candidates = allowed.nonzero().squeeze(1)
    generator = torch.Generator().manual_seed(seed)
    ids = candidates[torch.randint(len(candidates), (batch_size, seq_len), generator=generator)]
    return {"input_ids": ids.to(device), "attention_mask": torch.ones_like(ids).to(device)}


def count_flops(model: PreTrainedModel, inputs: dict[str, torch.Tensor]) -> int:
    """FLOPs of one forward pass (2 per multiply-add of every matmul, linear and attention product).

    Element-wise work (norms, activations, softmax) and embedding lookups count 0, as usual; for
    these models they are well under 1% of the matmul FLOPs.
    """
    with torch.inference_mode(), FlopCounterMode(display=False, custom_mapping=EXTRA_FLOP_FORMULAS) as counter:
        model(**inputs)
    return int(counter.get_total_flops())


def load_for_bench(name: str, settings: BenchSettings) -> PreTrainedModel:
    """The model in eval mode on the device and dtype asked for, without a KV cache to fill.

    No parameter requires grad: FlopCounterMode's module tracker would otherwise try to hook
    autograd for weights passed as inputs (DeBERTa's relative embeddings), which fails in inference mode.
    """
    model = (
        load_model(name, head=settings.head, dtype=DTYPES[settings.dtype])
        .to(settings.device)
        .eval()
        .requires_grad_(False)
    )
    model.config.use_cache = False
    return model


def run_bench(names: Sequence[str], settings: BenchSettings, on_step: StepCallback | None = None) -> BenchReport:
    """Time every model on every cell, count FLOPs, measure memory, and compare each to the first."""
    if not names:
        raise LayerDropError("give at least one model to benchmark")
    if settings.device == "cuda" and not torch.cuda.is_available():
        raise LayerDropError("--device cuda, but torch sees no CUDA device")
    configs = [load_model_config(name) for name in names]  # every path fails fast, before any weights load
    if settings.threads is not None:
        torch.set_num_threads(settings.threads)
    cells, notes = _cells(names, configs, settings)
    vocab_size = min(config.vocab_size for config in configs)
    special = special_token_ids(names)
    steps = len(cells) + (len(names) if settings.memory else 0)
    progress = on_step or (lambda what, done, total: None)
    models = [load_for_bench(name, settings) for name in names]
    results = [_model_result(name, model) for name, model in zip(names, models, strict=True)]
    for done, (batch_size, seq_len) in enumerate(cells):
        progress(f"timing batch {batch_size}, length {seq_len}", done, steps)
        inputs = make_inputs(batch_size, seq_len, vocab_size, special, settings.seed, settings.device)
        for result, cell in zip(results, _time_cell(models, inputs, settings), strict=True):
            result.cells.append(cell)
    del models
    gc.collect()
    memory_method = None
    if settings.memory:
        for done, result in enumerate(results, start=len(cells)):
            progress(f"peak memory of {result.model}", done, steps)
            memory_method = _add_memory(result, settings, cells, vocab_size, special)
    progress("done", steps, steps)
    _compare(results)
    return BenchReport(
        settings=settings.model_dump(),
        threads=torch.get_num_threads(),
        device_name=torch.cuda.get_device_name() if settings.device == "cuda" else _cpu_name(),
        torch_version=torch.__version__,
        memory_method=memory_method,
        notes=notes,
        models=results,
    )


def _cells(
    names: Sequence[str], configs: Sequence[PretrainedConfig], settings: BenchSettings
) -> tuple[list[tuple[int, int]], list[str]]:
    """(batch, length) pairs, lengths clamped to the shortest position limit so every model gets the same input."""
    limits = [
        (max_positions(config), name)
        for config, name in zip(configs, names, strict=True)
        if max_positions(config) is not None
    ]
    limit, limited_by = min(limits) if limits else (None, None)
    notes, lengths = [], []
    for length in settings.seq_lens:
        if limit is not None and length > limit:
            notes.append(f"sequence length {length} clamped to {limit}, the position limit of {limited_by}")
            length = limit
        if length not in lengths:
            lengths.append(length)
    return [(b, n) for b in settings.batch_sizes for n in lengths], notes


def _model_result(name: str, model: PreTrainedModel) -> ModelResult:
    return ModelResult(
        model=name,
        architecture=type(model).__name__,
        num_layers=num_layers(model.config),
        parameters=parameter_count(model),
        size_on_disk_bytes=size_on_disk(name),
        max_positions=max_positions(model.config),
    )


def _time_cell(
    models: Sequence[PreTrainedModel], inputs: dict[str, torch.Tensor], settings: BenchSettings
) -> list[CellResult]:
    """Count FLOPs and time one forward of every model on `inputs`, rotating which model goes first.

    Counting FLOPs is the first, uncounted warm-up; then more warm-up, then `repeats` rounds of one timed
    forward per model, a different model first each round.
    """
    sync = torch.cuda.synchronize if settings.device == "cuda" else (lambda: None)
    flops = [count_flops(model, inputs) for model in models]
    times: list[list[float]] = [[] for _ in models]
    with torch.inference_mode():
        for _ in range(settings.warmup):
            for model in models:
                model(**inputs)
        gc.collect()
        gc.disable()  # a collection inside a timed forward would be charged to whichever model ran
        background = _BackgroundCpu()
        try:
            for round_ in range(settings.repeats):
                for i in _rotated(len(models), round_):
                    sync()
                    start = time.perf_counter()
                    models[i](**inputs)
                    sync()
                    times[i].append((time.perf_counter() - start) * 1e3)
        finally:
            gc.enable()
    busy_elsewhere = background.share()
    batch_size, seq_len = inputs["input_ids"].shape
    cells = []
    for model_flops, model_times in zip(flops, times, strict=True):
        median = statistics.median(model_times)
        p90 = statistics.quantiles(model_times, n=10, method="inclusive")[-1] if len(model_times) > 1 else median
        cells.append(
            CellResult(
                batch_size,
                seq_len,
                model_flops,
                model_times,
                median,
                p90,
                batch_size / (median / 1e3),
                background_cpu=busy_elsewhere,
            )
        )
    return cells


class _BackgroundCpu:
    """How busy the machine was with anything but this process (other jobs, hypervisor steal).

    Timings taken beside a busy neighbour are noisy, and the report says so.
    """

    def __init__(self) -> None:
        self.process = psutil.Process()
        self.start = self._now()

    def _now(self) -> tuple[float, float, float]:
        system = psutil.cpu_times()
        total = sum(system) - getattr(system, "guest", 0) - getattr(system, "guest_nice", 0)  # guest is inside user
        busy = total - system.idle - getattr(system, "iowait", 0)
        own = sum(self.process.cpu_times()[:2])
        return time.monotonic(), busy, own

    def share(self) -> float:
        (wall0, busy0, own0), (wall1, busy1, own1) = self.start, self._now()
        return max(0.0, (busy1 - busy0) - (own1 - own0)) / max((wall1 - wall0) * psutil.cpu_count(), 1e-9)


def _rotated(count: int, round_: int) -> list[int]:
    start = round_ % count
    return [*range(start, count), *range(start)]


def _compare(results: Sequence[ModelResult]) -> None:
    """Speed-up of every model over the first, cell by cell, beside the FLOPs ratio."""
    for result in results:
        for cell, first in zip(result.cells, results[0].cells, strict=True):
            cell.speedup = cell.throughput / first.throughput
            cell.ideal_speedup = first.flops / cell.flops
            cell.speedup_vs_ideal = cell.speedup / cell.ideal_speedup


def _cpu_name() -> str:
    cpuinfo = Path("/proc/cpuinfo")
    names = (
        [line.split(":", 1)[1].strip() for line in cpuinfo.read_text().splitlines() if line.startswith("model name")]
        if cpuinfo.is_file()
        else []
    )
    return f"{names[0] if names else platform.processor() or 'CPU'} ({os.cpu_count()} logical CPUs)"


# --- peak memory, each model in a fresh process ----------------------------------------------------


def _add_memory(
    result: ModelResult, settings: BenchSettings, cells: list[tuple[int, int]], vocab_size: int, special: list[int]
) -> str:
    """Run the memory probe for one model in a fresh interpreter and copy its figures into `result`."""
    spec = {
        "model": result.model,
        "settings": settings.model_dump(),
        "cells": cells,
        "vocab_size": vocab_size,
        "special": special,
    }
    probe = subprocess.run([sys.executable, "-m", "layerdrop.bench", json.dumps(spec)], capture_output=True, text=True)
    if probe.returncode != 0:
        raise RuntimeError(f"memory probe for {result.model} failed:\n{probe.stderr[-3000:]}")
    measured = json.loads(probe.stdout.strip().splitlines()[-1])
    result.loaded_memory_bytes = measured["loaded"]
    for cell, (peak, activation) in zip(result.cells, measured["cells"], strict=True):
        cell.peak_memory_bytes, cell.activation_memory_bytes = peak, activation
    return measured["method"]


def probe_memory(spec: dict[str, Any]) -> dict[str, Any]:
    """In a fresh process: memory after loading the one model, then peak and activation memory per cell."""
    settings = BenchSettings(**spec["settings"])
    if settings.threads is not None:
        torch.set_num_threads(settings.threads)
    model = load_for_bench(spec["model"], settings)
    cuda = settings.device == "cuda"
    measure = _peak_cuda if cuda else _peak_rss
    method = (
        "torch.cuda.max_memory_allocated"
        if cuda
        else ("RSS high-water mark (VmHWM)" if _reset_high_water_mark() else "RSS sampled by psutil every 1 ms")
    )
    _release_freed_memory()
    loaded = torch.cuda.memory_allocated() if cuda else psutil.Process().memory_info().rss
    cells = []
    with torch.inference_mode():
        for batch_size, seq_len in spec["cells"]:
            inputs = make_inputs(
                batch_size, seq_len, spec["vocab_size"], spec["special"], settings.seed, settings.device
            )
            model(**inputs)  # lazy one-off allocations (thread pools, kernel caches) are not activations
            _release_freed_memory()
            before, peak = measure(lambda inputs=inputs: model(**inputs))
            cells.append((peak, peak - before))
    return {"loaded": loaded, "cells": cells, "method": method}


def _release_freed_memory() -> None:
    """Collect garbage and hand freed heap back to the OS, so RSS before a forward is what is in use."""
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    try:
        ctypes.CDLL(None).malloc_trim(0)  # glibc only
    except (OSError, AttributeError):
        pass


def _peak_cuda(forward: Callable[[], object]) -> tuple[int, int]:
    torch.cuda.synchronize()
    before = torch.cuda.memory_allocated()
    torch.cuda.reset_peak_memory_stats()
    forward()
    torch.cuda.synchronize()
    return before, torch.cuda.max_memory_allocated()


def _peak_rss(forward: Callable[[], object]) -> tuple[int, int]:
    """RSS before `forward` and its peak while `forward` runs, in bytes."""
    process = psutil.Process()
    before = process.memory_info().rss
    if _reset_high_water_mark():
        forward()
        return before, _high_water_mark()
    peak, done = before, threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.wait(0.001):
            peak = max(peak, process.memory_info().rss)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        forward()
    finally:
        done.set()
        sampler.join()
    return before, max(peak, process.memory_info().rss)


def _reset_high_water_mark() -> bool:
    """Reset VmHWM to the current RSS (Linux >= 4.0); False where the kernel does not allow it."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def _high_water_mark() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


if __name__ == "__main__":
    print(json.dumps(probe_memory(json.loads(sys.argv[1]))))
