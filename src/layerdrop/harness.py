"""EleutherAI's lm-evaluation-harness on any model layerdrop can load (hub name, path, bundled:NAME).

The model is loaded by layerdrop (so bundled and dropped checkpoints work alike) and handed to
the harness's own Hugging Face wrapper; tasks come from the harness, or from YAML files in
`include_path` for offline or private tasks. The harness is an optional extra: layerdrop[lm-eval].
"""

from __future__ import annotations

from typing import Any

from layerdrop.checkpoint import load_model, load_tokenizer
from layerdrop.errors import LayerDropError
from layerdrop.settings import LmEvalConfig


def run_lm_eval(model_name: str, config: LmEvalConfig) -> dict[str, Any]:
    """{"tasks": {task: {metric: value}}, "num_fewshot": …, "limit": …} for `model_name` on `config.lm_eval`."""
    try:
        import lm_eval
        from lm_eval.models.huggingface import HFLM
        from lm_eval.tasks import TaskManager
    except ImportError:
        raise LayerDropError("--lm-eval needs lm-evaluation-harness: pip install 'layerdrop[lm-eval]'") from None
    manager = TaskManager(include_path=config.include_path)
    if unknown := [task for task in config.lm_eval if task not in manager.all_tasks]:
        raise LayerDropError(
            f"unknown lm-eval task {unknown[0]!r}; `lm-eval ls tasks` lists them (or give --include-path)"
        )
    tokenizer = load_tokenizer(model_name)
    if tokenizer is None:
        raise LayerDropError(f"{model_name!r} has no tokenizer; lm-eval needs one")
    model = load_model(model_name, head="causal-lm", trained_head=True)
    harness_model = HFLM(
        pretrained=model, tokenizer=tokenizer, batch_size=config.lm_eval_batch_size, device=config.device
    )
    results = lm_eval.simple_evaluate(
        model=harness_model,
        tasks=list(config.lm_eval),
        num_fewshot=config.num_fewshot,
        limit=config.limit,
        task_manager=manager,
        log_samples=False,
    )
    scores = {
        task: {
            key.split(",")[0]: value
            for key, value in metrics.items()
            if key != "alias" and isinstance(value, (int, float))
        }
        for task, metrics in results["results"].items()
    }
    return {"tasks": scores, "num_fewshot": config.num_fewshot, "limit": config.limit}
