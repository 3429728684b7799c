"""Options made from the settings schemas (cli/options.py).

One flag per field with the field's default and help; the values reach the command as one dict that the
schema then validates.
"""

from __future__ import annotations

import pytest

from layerdrop.settings import TrainConfig
from run_cli import assert_clean_failure, layerdrop_in_process


def test_run_has_a_flag_per_training_field_with_its_default_and_help(
    capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "250")  # one option per line in the help
    text = layerdrop_in_process(capsys, "run", "--help").stdout
    for name, field in TrainConfig.model_fields.items():
        flag = "--" + name.replace("_", "-")
        line = next((line for line in text.splitlines() if flag in line), None)
        assert line is not None, f"{flag} missing from run --help"
        assert field.description.split()[0] in line, line
    assert "--lr" in text and "[default: 2e-05]" in text  # an extra short flag, and a default from the schema


def test_values_are_validated_by_the_schema(capsys: pytest.CaptureFixture) -> None:
    result = layerdrop_in_process(capsys, "run", "some-model", "--task", "toy-sentiment", "--warmup-ratio", "1.5")
    assert_clean_failure(result, "--warmup-ratio: input should be less than 1 (got 1.5)", max_lines=1)
