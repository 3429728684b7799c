"""Data-parallel training: N processes under `accelerate launch` train as one does with the same global batch."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
from collections import Counter
from pathlib import Path

import pytest
from safetensors.torch import load_file
from torch.utils.data import SequentialSampler
from tiny_checkpoints import save_tiny_bert
from transformers import AutoTokenizer

import layerdrop
from layerdrop.experiment import run_experiment
from layerdrop.glue import get_task, train_and_dev
from layerdrop.experiment import RunConfig
from layerdrop.training import ShardedBatches

SRC = Path(layerdrop.__file__).resolve().parents[1]
# 69 examples in global batches of 16: four full batches and a last one of 5, split 3 + 2, which
# accelerate's default sharding would even out by repeating examples.
RUN = dict(
    task="toy-sentiment",
    strategy="top",
    strategy_options={"num_drop": 1},
    max_train_samples=69,
    max_eval_samples=40,
    training=dict(epochs=2, batch_size=16, max_length=32, learning_rate=1e-3),
)
FLAGS = [
    "--task",
    "toy-sentiment",
    "--strategy",
    "top",
    "--num-drop",
    "1",
    "--max-train-samples",
    "69",
    "--max-eval-samples",
    "40",
    "--epochs",
    "2",
    "--batch-size",
    "16",
    "--max-length",
    "32",
    "--lr",
    "1e-3",
]

# `layerdrop run` as `python -m layerdrop` runs it, with two probes: every training forward logs the
# token ids of its examples, and every staged write logs its path; each process writes its own log.
PROBED_CLI = textwrap.dedent(
    """
    import json, os
    import layerdrop.outputs as outputs
    import layerdrop.training as training

    log = open(os.path.join(os.environ["PROBE_DIR"], f"rank{os.environ.get('RANK', '0')}.jsonl"), "a", buffering=1)

    def probed_finetune(model, *args, **kwargs):
        def forward(module, args, inputs):
            if module.training:
                rows = zip(inputs["input_ids"].tolist(), inputs["attention_mask"].tolist())
                batch = [[token for token, keep in zip(ids, mask) if keep] for ids, mask in rows]
                log.write(json.dumps({"batch": batch}) + "\\n")
        handle = model.register_forward_pre_hook(forward, with_kwargs=True)
        try:
            return finetune(model, *args, **kwargs)
        finally:
            handle.remove()

    def probed_staged(path, *args, **kwargs):
        log.write(json.dumps({"write": str(path)}) + "\\n")
        return staged(path, *args, **kwargs)

    finetune, training.finetune = training.finetune, probed_finetune
    staged, outputs.staged = outputs.staged, probed_staged
    from layerdrop.cli import main
    main()
    """
)


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory: pytest.TempPathFactory, minilm_dir: Path) -> Path:
    """A 4-layer BERT with MiniLM's real tokenizer and no dropout, so processes differ only in summation order."""
    return save_tiny_bert(
        tmp_path_factory.mktemp("models") / "tiny-bert",
        tokenizer=AutoTokenizer.from_pretrained(minilm_dir),
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
    )


@pytest.mark.parametrize(
    ("examples", "batch_size", "processes"), [(69, 16, 2), (64, 16, 2), (33, 16, 2), (10, 4, 3), (9, 4, 3)]
)
def test_sharded_batches_split_each_global_batch_once(examples: int, batch_size: int, processes: int) -> None:
    shards = [
        ShardedBatches(SequentialSampler(range(examples)), batch_size, processes, index) for index in range(processes)
    ]
    globals_ = [list(range(start, min(start + batch_size, examples))) for start in range(0, examples, batch_size)]
    assert all(len(shard) == len(globals_) for shard in shards)  # the same number of steps on every process
    for step, batch in enumerate(globals_):
        shares = [list(shard)[step] for shard in shards]
        weights = [shard.weights()[step] for shard in shards]
        trained = [share for share, weight in zip(shares, weights, strict=True) if weight > 0]
        assert sorted(i for share in trained for i in share) == batch  # every example once, nothing repeated
        assert max(map(len, trained)) - min(map(len, trained)) <= 1
        # The all-reduce averages the processes' gradients of weight × (mean loss of their share): each
        # example's gradient must then count 1 / batch size, as in one process.
        assert all(
            weight / (processes * len(share)) == pytest.approx(1 / len(batch))
            for share, weight in zip(shares, weights, strict=True)
            if weight > 0
        )
        stand_ins = [share for share, weight in zip(shares, weights, strict=True) if weight == 0]
        assert all(len(share) == 1 for share in stand_ins)  # one example, weighted 0
    assert ShardedBatches(SequentialSampler(range(9)), 4, 3, 2).weights() == [1 * 3 / 4, 1 * 3 / 4, 0.0]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.slow
def test_two_processes_train_like_one_with_the_same_global_batch(tiny_dir: Path, tmp_path: Path) -> None:
    reference = run_experiment(RunConfig(model=str(tiny_dir), **RUN), tmp_path / "one")

    probes = tmp_path / "probes"
    probes.mkdir()
    (tmp_path / "probed_cli.py").write_text(PROBED_CLI)
    # accelerate's --cpu starts one process; --multi_gpu with ACCELERATE_USE_CPU=1 starts two that train on CPUs (gloo).
    launch = [
        sys.executable,
        "-m",
        "accelerate.commands.launch",
        "--multi_gpu",
        "--num_processes",
        "2",
        "--num_machines",
        "1",
        "--mixed_precision",
        "no",
        "--dynamo_backend",
        "no",
        "--main_process_port",
        str(_free_port()),
        str(tmp_path / "probed_cli.py"),
        "run",
        str(tiny_dir),
        *FLAGS,
        "--result",
        str(tmp_path / "two.json"),
        "--output",
        str(tmp_path / "two"),
    ]
    env = {
        **os.environ,
        "PYTHONPATH": str(SRC),
        "PROBE_DIR": str(probes),
        "OMP_NUM_THREADS": "1",
        "ACCELERATE_USE_CPU": "1",
    }
    done = subprocess.run(launch, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads((tmp_path / "two.json").read_text())

    # The same optimizer steps, on the same number of examples, to the same numbers.
    assert result["train_steps"] == reference["train_steps"] == 2 * 5
    assert result["train_examples"] == reference["train_examples"] == 69
    assert result["metrics"] == pytest.approx(reference["metrics"], abs=1e-9)
    assert result["train_loss"]["final"] == pytest.approx(reference["train_loss"]["final"], abs=1e-5)
    one, two = load_file(tmp_path / "one" / "model.safetensors"), load_file(tmp_path / "two" / "model.safetensors")
    assert one.keys() == two.keys()
    drift = max((one[name] - two[name]).abs().max().item() for name in one)
    assert drift < 1e-5, drift  # float32 summation order only (measured: 1.7e-7)
    print(
        f"2 processes vs 1: max weight difference {drift:.2e}, final loss {result['train_loss']['final']:.6f} "
        f"vs {reference['train_loss']['final']:.6f}, metrics {result['metrics']} vs {reference['metrics']}"
    )

    # Each epoch, the two processes together trained on every example exactly once.
    logs = {
        rank: [json.loads(line) for line in (probes / f"rank{rank}.jsonl").read_text().splitlines()] for rank in (0, 1)
    }
    batches = {rank: [entry["batch"] for entry in log if "batch" in entry] for rank, log in logs.items()}
    assert len(batches[0]) == len(batches[1]) == 2 * 5
    tokenizer = AutoTokenizer.from_pretrained(tiny_dir)
    train, _, _ = train_and_dev(get_task("toy-sentiment"), None, max_train_samples=69)
    expected = Counter(
        tuple(ids) for ids in tokenizer(list(train["sentence"]), truncation=True, max_length=32)["input_ids"]
    )
    for epoch in range(2):
        seen = Counter(
            tuple(ids) for rank in (0, 1) for batch in batches[rank][epoch * 5 : (epoch + 1) * 5] for ids in batch
        )
        assert seen == expected

    # The result and the model were written once, by the main process.
    writes = {rank: [entry["write"] for entry in log if "write" in entry] for rank, log in logs.items()}
    assert writes == {0: [str(tmp_path / "two"), str(tmp_path / "two.json")], 1: []}
    assert done.stdout.count("toy-sentiment: score") == 1
