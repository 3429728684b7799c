"""lm-evaluation-harness through `layerdrop evaluate --lm-eval`, offline, on a task file the test writes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from run_cli import layerdrop_in_process
from tiny_checkpoints import save_tiny_llama
from transformers import LlamaForCausalLM, PreTrainedTokenizerFast

DOCS = [
    {"context": "the cat sat on the", "choices": ["mat", "sky"], "gold": 0},
    {"context": "the dog ran on a", "choices": ["log", "sea", "mat"], "gold": 2},
    {"context": "a red sky is", "choices": ["blue", "red"], "gold": 1},
]
TASK_YAML = """\
task: tiny_choice
dataset_path: json
dataset_kwargs:
  data_files:
    test: {data}
test_split: test
output_type: multiple_choice
doc_to_text: "{{{{context}}}}"
doc_to_choice: "{{{{choices}}}}"
doc_to_target: gold
metric_list:
  - metric: acc
"""


@pytest.fixture(scope="module")
def tiny_lm(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny_llama(tmp_path_factory.mktemp("lm") / "tiny-llama", layers=2)


@pytest.mark.slow
def test_lm_eval_scores_a_local_multiple_choice_task(
    tiny_lm: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    data = tmp_path / "tiny_choice.jsonl"
    data.write_text("".join(json.dumps(doc) + "\n" for doc in DOCS))
    (tmp_path / "tiny_choice.yaml").write_text(TASK_YAML.format(data=data))
    ran = layerdrop_in_process(
        capsys, "evaluate", tiny_lm, "--lm-eval", "tiny_choice", "--include-path", tmp_path, "--num-fewshot", "0"
    )
    assert ran.returncode == 0, ran.stderr
    scores = json.loads(ran.stdout)["lm_eval"]["tasks"]["tiny_choice"]
    assert scores["acc"] == pytest.approx(_expected_accuracy(tiny_lm))


def _expected_accuracy(folder: Path) -> float:
    """The harness's rule by hand: the choice whose tokens (after a space) have the highest summed log-likelihood."""
    model = LlamaForCausalLM.from_pretrained(folder).eval()
    tokenizer = PreTrainedTokenizerFast.from_pretrained(folder)
    correct = 0
    for doc in DOCS:
        context = tokenizer(doc["context"], add_special_tokens=False)["input_ids"]
        scores = []
        for choice in doc["choices"]:
            continuation = tokenizer(" " + choice, add_special_tokens=False)["input_ids"]
            ids = torch.tensor([context + continuation])
            with torch.no_grad():
                log_probs = torch.log_softmax(model(ids).logits[0].double(), dim=-1)
            scores.append(sum(float(log_probs[len(context) - 1 + i, token]) for i, token in enumerate(continuation)))
        correct += int(max(range(len(scores)), key=scores.__getitem__) == doc["gold"])
    return correct / len(DOCS)


@pytest.mark.slow
def test_unknown_lm_eval_task_is_one_line(tiny_lm: Path, capsys: pytest.CaptureFixture) -> None:
    ran = layerdrop_in_process(capsys, "evaluate", tiny_lm, "--lm-eval", "no_such_task_xyz")
    assert (
        ran.returncode == 2
        and ran.stderr.strip().splitlines() == [ran.stderr.strip()]
        and "unknown lm-eval task 'no_such_task_xyz'" in ran.stderr
    )
