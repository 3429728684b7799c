"""The settings schemas: the paper's defaults, cross-field checks, frozen values.

Unknown keys and bad values are refused in one line that names the setting as a flag on the command line and as
a key elsewhere.
"""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from layerdrop.errors import LayerDropError
from layerdrop.experiment import RunConfig
from layerdrop.settings import (
    BenchSettings,
    CalibrationData,
    TextSource,
    TrainConfig,
    describe_error,
    flag,
    named,
    naming,
)


def error_of(schema: type, **values: object) -> str:
    """The one line a user sees (a registry lookup inside a validator raises LayerDropError as it is)."""
    with pytest.raises((ValidationError, LayerDropError)) as raised:
        schema(**values)
    return describe_error(raised.value) if isinstance(raised.value, ValidationError) else str(raised.value)


def test_training_defaults_are_the_papers() -> None:
    config = TrainConfig()
    assert (config.epochs, config.learning_rate, config.batch_size, config.max_length, config.seed) == (
        3,
        2e-5,
        32,
        128,
        42,
    )
    assert all(field.description for field in TrainConfig.model_fields.values())  # the CLI's help comes from here


def test_settings_are_frozen_and_refuse_unknown_keys() -> None:
    config = TrainConfig()
    with pytest.raises(ValidationError):
        config.epochs = 5
    assert error_of(TrainConfig, epoch=3) == "unknown setting 'epoch'"


def test_messages_name_flags_on_the_command_line_and_keys_elsewhere() -> None:
    assert flag("num_drop") == "--num-drop" and named("num_drop") == "num_drop"
    assert error_of(TrainConfig, max_length=1) == "max_length: input should be greater than or equal to 2 (got 1)"
    with naming(as_flags=True):
        assert named("num_drop") == "--num-drop"
        assert error_of(TrainConfig, max_length=1) == "--max-length: input should be greater than or equal to 2 (got 1)"
    assert (
        error_of(RunConfig, model="m", task="rte", training={"epochs": 0})
        == "training.epochs: input should be greater than or equal to 1 (got 0)"
    )
    assert error_of(RunConfig, task="rte") == "model is required"


def test_run_config_cross_checks() -> None:
    assert RunConfig(model="m", task="SST-2").task == "sst2"  # canonical task names, so equal runs look equal
    assert "unknown task 'sst-3'" in error_of(RunConfig, model="m", task="sst-3")
    assert "drops no layers" in error_of(RunConfig, model="m", task="rte", strategy_options={"num_drop": 1})
    assert "unknown strategy 'middle'" in error_of(
        RunConfig, model="m", task="rte", strategy="middle", strategy_options={"num_drop": 1}
    )
    assert "takes a positional strategy" in error_of(
        RunConfig,
        model="m",
        task="rte",
        strategy="contribution",
        regime="iterative",
        strategy_options={"num_drop": 1},
        training={"epochs": 9},
    )
    assert RunConfig(model="m", task="rte", strategy="explicit", strategy_options={"layers": "1-2"}).num_drop == 2
    assert RunConfig(model="m", task="rte").num_drop == 0


def test_calibration_data_has_one_source() -> None:
    assert (
        error_of(CalibrationData, text_file="t.txt", task="rte")
        == "give one of task, text_file, corpus, dataset, not several"
    )
    assert (
        error_of(CalibrationData, corpus="shakespeare", dataset="wikitext")
        == "give one of task, text_file, corpus, dataset, not several"
    )
    assert error_of(CalibrationData, split="train") == "data and split need task"
    assert (
        CalibrationData(task="rte").given
        and CalibrationData(corpus="shakespeare").given
        and not CalibrationData().given
    )
    assert CalibrationData(corpus="shakespeare:calibration").running_text() == TextSource(
        corpus="shakespeare:calibration"
    )
    assert CalibrationData(text_file="t.txt").running_text() is None


def test_bench_lists_parse_from_text() -> None:
    assert BenchSettings(batch_sizes="1, 8,32").batch_sizes == [1, 8, 32]
    assert error_of(BenchSettings, seq_lens="8,x") == "seq_lens: expected comma-separated integers, got '8,x'"
