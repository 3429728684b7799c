"""One run of the experiment (drop, fine-tune, evaluate) in every regime, its result, and refused settings."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import ValidationError

from layerdrop.errors import LayerDropError
from layerdrop.experiment import run_experiment
from layerdrop.experiment import RunConfig
from layerdrop.settings import TrainConfig, describe_error

FAST = dict(epochs=1, batch_size=16, max_length=32, learning_rate=1e-3)


def config(**flat) -> RunConfig:
    """A RunConfig from flat keywords: training fields go to `training`, num_drop and layers to `strategy_options`."""
    training = {k: flat.pop(k) for k in list(flat) if k in TrainConfig.model_fields}
    options = {k: flat.pop(k) for k in ("num_drop", "layers") if k in flat}
    return RunConfig(**flat, strategy_options=options, training=training)


def test_run_pretrained_regime_result(tiny_bert_dir: Path, tmp_path: Path) -> None:
    result = run_experiment(
        config(
            model=str(tiny_bert_dir),
            task="toy-sentiment",
            strategy="top",
            num_drop=2,
            max_train_samples=96,
            max_eval_samples=40,
            **FAST,
        ),
        tmp_path / "model",
    )
    assert result["dropped_layers"] == [2, 3] and result["kept_layers"] == [0, 1]
    assert result["num_layers"] == 2 and result["num_layers_original"] == 4
    per_layer = 4 * 32 * 32 + 4 * 32 + 2 * 32 * 37 + 37 + 32 + 4 * 32  # attention, FFN, two LayerNorms
    assert result["params_original"] - result["params"] == 2 * per_layer
    assert set(result["metrics"]) == {"accuracy"} and result["score"] == result["metrics"]["accuracy"]
    assert result["eval_examples"] == {"validation": 40}
    assert result["train_examples"] == 96
    assert result["data"]["train_subsample"] == {"examples": 96, "seed": 0}
    assert {"torch", "transformers", "accelerate", "datasets", "python"} <= set(result["versions"])
    assert result["strategy"] == "top" and result["seed"] == 42
    saved = json.loads((tmp_path / "model" / "config.json").read_text())
    assert saved["layer_dropping"]["dropped_layers"] == [2, 3]
    assert saved["id2label"] == {"0": "negative", "1": "positive"}


def test_run_is_reproducible(tiny_bert_dir: Path) -> None:
    spec = config(
        model=str(tiny_bert_dir),
        task="toy-sentiment",
        strategy="bottom",
        num_drop=1,
        max_train_samples=64,
        max_eval_samples=40,
        **FAST,
    )
    assert run_experiment(spec)["metrics"] == run_experiment(spec)["metrics"]


@pytest.mark.parametrize("regime", ["finetuned", "task-specific"])
def test_regimes_that_drop_after_fine_tuning(tiny_bert_dir: Path, regime: str) -> None:
    result = run_experiment(
        config(
            model=str(tiny_bert_dir),
            task="toy-sentiment",
            strategy="top",
            num_drop=1,
            regime=regime,
            max_train_samples=64,
            max_eval_samples=40,
            **FAST,
        )
    )
    assert result["dropped_layers"] == [3]
    assert set(result["stages"]["dropped_before_retraining"]["metrics"]) == {"accuracy"}
    assert ("full" in result["stages"]) == (regime == "finetuned")


def test_iterative_regime_drops_one_layer_every_n_epochs(tiny_bert_dir: Path) -> None:
    result = run_experiment(
        config(
            model=str(tiny_bert_dir),
            task="toy-sentiment",
            strategy="top",
            num_drop=2,
            regime="iterative",
            iterative_every=1,
            max_train_samples=32,
            max_eval_samples=20,
            **dict(FAST, epochs=3),
        )
    )
    assert result["dropped_layers"] == [2, 3] and result["num_layers"] == 2
    assert result["train_events"] == [
        "epoch 1: dropped layer 3 (now 3 layers: [0, 1, 2])",
        "epoch 2: dropped layer 2 (now 2 layers: [0, 1])",
    ]


def test_train_from_dev_is_recorded(tiny_bert_dir: Path, glue_dir: Path) -> None:
    result = run_experiment(
        config(
            model=str(tiny_bert_dir), task="qnli", data=str(glue_dir), train_from_dev=0.02, max_eval_samples=50, **FAST
        )
    )
    assert result["data"]["train_from_dev"] == {"fraction": 0.02, "split": "validation", "seed": 0}
    assert result["train_examples"] == round(5463 * 0.02) or abs(result["train_examples"] - 5463 * 0.02) < 1


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (dict(task="qnli", data="GLUE"), "--train-from-dev"),
        (dict(task="rte", regime="sideways"), "regime: input should be 'pretrained'"),
        (dict(task="rte", strategy="none", num_drop=2), "drops no layers"),
        (dict(task="rte", strategy="top", num_drop=2, regime="iterative", epochs=3), "at least 4 epochs"),
        (dict(task="rte", epochs=0), "training.epochs: input should be greater than or equal to 1"),
        (dict(task="rte", max_train_samples=0), "max_train_samples"),
        (dict(task="rte", bogus=1), "unknown setting 'bogus'"),
        (dict(task="rte", strategy="middle", num_drop=1), "unknown strategy 'middle'"),
        (dict(task="rte", strategy="greedy", num_drop=1), "needs a fine-tuned model"),
    ],
)
def test_bad_experiments_are_refused(
    tiny_bert_dir: Path, request: pytest.FixtureRequest, spec: dict, message: str
) -> None:
    spec = {"model": str(tiny_bert_dir), **spec}
    if spec.get("data") == "GLUE":  # only this row needs the real files
        spec["data"] = str(request.getfixturevalue("glue_dir"))
    with pytest.raises((LayerDropError, ValidationError)) as raised:
        run_experiment(config(**spec))
    shown = describe_error(raised.value) if isinstance(raised.value, ValidationError) else str(raised.value)
    assert message in shown
