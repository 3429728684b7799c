"""benchmarks/gpu_check.sh: every part that needs no CUDA, run on the CPU (GPU_CHECK_DEVICE=cpu)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from tiny_checkpoints import save_tiny_bert
from transformers import AutoTokenizer

import layerdrop

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu_check.sh"
SRC = Path(layerdrop.__file__).resolve().parents[1]


def _check(work: Path, **env: str) -> subprocess.CompletedProcess:
    full_env = {
        **os.environ,
        "PYTHONPATH": str(SRC),
        "OMP_NUM_THREADS": "1",
        "GPU_CHECK_DEVICE": "cpu",
        "PYTHON": sys.executable,
        **env,
    }
    return subprocess.run(["bash", str(SCRIPT), str(work)], env=full_env, capture_output=True, text=True, timeout=600)


def _parts(stdout: str) -> dict[str, tuple[str, str]]:
    """Each part's (PASS/FAIL/SKIP, message), from the lines the script prints."""
    found = {}
    for line in stdout.splitlines():
        status, _, rest = line.partition(" ")
        if status in ("PASS", "FAIL", "SKIP"):
            part, _, message = rest.partition(": ")
            found[part] = (status, message)
    return found


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory: pytest.TempPathFactory, minilm_dir: Path) -> Path:
    """A 4-layer BERT with MiniLM's tokenizer and no dropout: it memorises 32 sentences in seconds."""
    return save_tiny_bert(
        tmp_path_factory.mktemp("models") / "tiny-bert",
        tokenizer=AutoTokenizer.from_pretrained(minilm_dir),
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
    )


@pytest.mark.slow
def test_cpu_parts_pass_and_write_their_outputs(tmp_path: Path, tiny_dir: Path) -> None:
    done = _check(tmp_path, GPU_CHECK_MODEL=str(tiny_dir))
    assert done.returncode == 0, done.stdout + done.stderr
    parts = _parts(done.stdout)
    assert {part: status for part, (status, _) in parts.items()} == {
        "finetune-bf16": "PASS",
        "finetune-fp16": "PASS",
        "bench": "PASS",
        "two-process": "PASS",
        "perplexity": "PASS",
        "generate": "PASS",
    }
    perplexity = json.loads((tmp_path / "perplexity.json").read_text())
    assert (
        f"perplexity {perplexity['perplexity']:.2f} on {perplexity['tokens_scored']} tokens" in parts["perplexity"][1]
    )
    generated = json.loads((tmp_path / "generate.json").read_text())
    assert [model["num_layers"] for model in generated["models"]] == [30, 24]
    for name in ("finetune-bf16", "finetune-fp16", "two-process"):
        result = json.loads((tmp_path / f"{name}.json").read_text())
        assert result["train_loss"]["final"] < result["train_loss"]["first"] / 2
        assert (tmp_path / name / "config.json").is_file()
        assert f"in {result['train_steps']} steps" in parts[name][1] or name == "two-process"
    bench = json.loads((tmp_path / "bench.json").read_text())
    speedup = bench["models"][1]["cells"][0]["speedup"]
    assert f"speed-up {speedup:.3f}" in parts["bench"][1] and "ideal 1.499" in parts["bench"][1]
    print(done.stdout)


def test_failing_parts_print_fail_and_exit_1(tmp_path: Path) -> None:
    fake = tmp_path / "python"
    fake.write_text("#!/bin/sh\necho 'error: no such model' >&2\nexit 2\n")
    fake.chmod(0o755)
    done = _check(tmp_path / "work", PYTHON=str(fake))
    assert done.returncode == 1
    parts = _parts(done.stdout)
    assert parts["finetune-bf16"] == ("FAIL", f"error: no such model (log: {tmp_path / 'work' / 'finetune-bf16.log'})")
    assert parts["finetune-fp16"][0] == parts["bench-drop"][0] == "FAIL"
    assert parts["perplexity"][0] == parts["generate"][0] == "SKIP" and parts["two-process"] == (
        "SKIP",
        "no one-GPU bf16 run to compare with",
    )
    assert len(done.stdout.splitlines()) == 1 + len(parts)  # the header, then one line per part
