"""The one error boundary, `main()` in cli/__init__.py.

What a user can cause is one line and exit 2, an interrupt exit 130 or 143, a usage error click's one line;
anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import errno

import pytest
from pydantic import BaseModel

from layerdrop.errors import LayerDropError
from run_cli import assert_clean_failure, layerdrop_in_process


class Strict(BaseModel):
    size: int


def failing_with(error: BaseException):
    def model_summary(*args: object, **kwargs: object) -> None:
        raise error

    return model_summary


def validation_error() -> Exception:
    try:
        Strict(size="big")
    except Exception as err:  # pydantic's ValidationError
        return err
    raise AssertionError


@pytest.mark.parametrize(
    ("error", "code", "message"),
    [
        (LayerDropError("no model at 'x'"), 2, "error: no model at 'x'"),
        (OSError(errno.ENOSPC, "No space left on device", "/data/out"), 2, "error: No space left on device: /data/out"),
        (PermissionError(errno.EACCES, "Permission denied", "/data"), 2, "error: Permission denied: /data"),
        (
            validation_error(),
            2,
            "error: --size: input should be a valid integer, unable to parse string as an integer (got 'big')",
        ),
        (KeyboardInterrupt(), 130, "error: interrupted"),
    ],
)
def test_user_errors_and_interrupts_are_one_line(
    error: BaseException, code: int, message: str, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("layerdrop.summary.model_summary", failing_with(error))
    result = layerdrop_in_process(capsys, "inspect", "some-model")
    assert_clean_failure(result, message, code=code, max_lines=1)


def test_a_bug_keeps_its_traceback(capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("layerdrop.summary.model_summary", failing_with(ZeroDivisionError("a bug")))
    with pytest.raises(ZeroDivisionError):
        layerdrop_in_process(capsys, "inspect", "some-model")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["inspect"], "Missing argument 'model'"),
        (["nope"], "No such command 'nope'"),
        (["drop", "m", "-o", "x", "--bogus"], "No such option: --bogus"),
    ],
)
def test_usage_errors_are_one_line(args: list[str], message: str, capsys: pytest.CaptureFixture) -> None:
    assert_clean_failure(layerdrop_in_process(capsys, *args), message, max_lines=1)


def test_no_arguments_prints_the_help(capsys: pytest.CaptureFixture) -> None:
    result = layerdrop_in_process(capsys)
    assert "Usage" in result.stdout + result.stderr and "drop" in result.stdout + result.stderr
