"""The fault table of issue 10: every fault a user can cause, on every command that can meet it.

Each row breaks something (a checkpoint's weights, an output location, a data file, a sweep config, the
arguments), runs the command, and asserts what every command promises: exit code 2, at most 3 lines on stderr
ending in one `error: …` line naming the problem, no traceback, and nothing left behind (no output, no staging:
the row's folder is exactly as before). Then it repairs the fault and asserts the next run succeeds.

Commands run in this process (same `main()` a user's shell runs) except where only a real process will do:
read-only locations (root ignores permissions, so those rows run in one process without the capabilities that
bypass them) and signals (tests at the bottom). Models are a tiny BERT, data the toy task or a tiny GLUE folder.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import stat
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from run_cli import (
    assert_clean_failure,
    finish,
    layerdrop,
    layerdrop_in_process,
    lines,
    pause_at,
    start_layerdrop,
    unprivileged,
)
from sweep_results import write_db
from tiny_checkpoints import DAMAGE, WEIGHTS, damage_weights, save_tiny_bert

# Every command at its smallest: a few toy examples, one epoch, one tiny timing.
TINY_TRAINING = (
    "--max-train-samples",
    "8",
    "--max-eval-samples",
    "8",
    "--epochs",
    "1",
    "--batch-size",
    "8",
    "--max-length",
    "16",
)
TINY_BENCH = (
    "--batch-sizes",
    "1",
    "--seq-lens",
    "8",
    "--repeats",
    "1",
    "--warmup",
    "0",
    "--threads",
    "1",
    "--no-memory",
)
COMMANDS: dict[str, tuple[str, ...]] = {
    "drop": ("drop", "{model}", "-k", "1", "-o", "{out}"),
    "inspect": ("inspect", "{model}"),
    "analyze": ("analyze", "{model}", "--text-file", "{texts}", "-o", "{out}"),
    "run": (
        "run",
        "{model}",
        "--task",
        "toy-sentiment",
        "--strategy",
        "top",
        "-k",
        "1",
        *TINY_TRAINING,
        "-o",
        "{out}",
        "--result",
        "{result}",
    ),
    "finetune": (
        "finetune",
        "{model}",
        "--task",
        "toy-sentiment",
        *TINY_TRAINING,
        "-o",
        "{out}",
        "--result",
        "{result}",
    ),
    "evaluate": (
        "evaluate",
        "{model}",
        "--task",
        "toy-sentiment",
        "--max-eval-samples",
        "8",
        "--max-length",
        "16",
        "--result",
        "{result}",
    ),
    "bench": ("bench", "{model}", *TINY_BENCH, "--json", "{result}", "--csv", "{table}"),
    "report": ("report", "{db}", "-o", "{out}", "--formats", "md"),
    "sweep": ("sweep", "{config}", "--db", "{database}"),
}
OUTPUT_OPTIONS = ("-o", "--output", "--result", "--json", "--csv", "--db")  # what a successful run must have written
SST2_HEADER = "sentence\tlabel\n"
SST2_ROWS = "the movie was good .\t1\nthe plot was dull .\t0\nthe cast is great .\t1\nthe ending was bad .\t0\n"


def sweep_config(**changes: object) -> str:
    """A one-run sweep of the tiny model on the toy task (JSON is YAML)."""
    config = {
        "models": ["{model}"],
        "strategies": ["top"],
        "num_drop": [1],
        "tasks": ["toy-sentiment"],
        "include_full_model": False,
        "run": {
            "max_train_samples": 8,
            "max_eval_samples": 8,
            "training": {"epochs": 1, "batch_size": 8, "max_length": 16},
        },
    }
    return json.dumps({**config, **changes})


@dataclass
class Place:
    """A fresh folder per row: a copy of the tiny model (the row may damage it), data, and where outputs go."""

    root: Path
    original: Path  # the intact tiny model, to repair from
    model: Path = field(init=False)

    def __post_init__(self) -> None:
        self.model = self.root / "model"
        self.work.mkdir(parents=True)

    @property
    def work(self) -> Path:
        return self.root / "work"

    def values(self) -> dict[str, str]:
        return {
            "model": str(self.model),
            "out": str(self.work / "out"),
            "result": str(self.work / "result.json"),
            "table": str(self.work / "table.csv"),
            "texts": str(self.root / "texts.txt"),
            "data": str(self.root / "glue"),
            "db": str(self.root / "results.sqlite"),
            "config": str(self.root / "sweep.yaml"),
            "database": str(self.work / "sweep.sqlite"),
            "work": str(self.work),
            "root": str(self.root),
        }

    def fill(self, args: tuple[str, ...]) -> list[str]:
        return [arg.format(**self.values()) for arg in args]

    def snapshot(self) -> dict[str, bytes | None]:
        """Every path under the row's folder, with file contents: what a failed command must leave as it was."""
        return {
            str(p.relative_to(self.root)): (p.read_bytes() if p.is_file() else None)
            for p in sorted(self.root.rglob("*"))
        }


@pytest.fixture(scope="module")
def materials(tmp_path_factory: pytest.TempPathFactory, tiny_bert_dir: Path) -> dict[str, Path]:
    """What rows copy from: the tiny model, and a results database for `report`."""
    root = tmp_path_factory.mktemp("materials")
    return {"model": tiny_bert_dir, "db": write_db(root / "results.sqlite")}


def make_place(root: Path, materials: dict[str, Path]) -> Place:
    place = Place(root, materials["model"])
    shutil.copytree(materials["model"], place.model)
    shutil.copy(materials["db"], root / "results.sqlite")
    (root / "texts.txt").write_text("the movie was good\nthe plot was dull and boring\ni liked it\n")
    (root / "glue" / "SST-2").mkdir(parents=True)
    for split in ("train", "dev"):
        (root / "glue" / "SST-2" / f"{split}.tsv").write_text(SST2_HEADER + SST2_ROWS)
    (root / "sweep.yaml").write_text(sweep_config().replace("{model}", str(place.model)))
    return place


def _nothing(place: Place) -> None:
    pass


@dataclass(frozen=True)
class Fault:
    """One row of the table: what breaks, the command, what its error says, and the repair.

    `breaks` the place, then `args` must fail with `fragment` (with `first`, before any model loads); after
    `repairs` (or with `fixed_args`) the command must succeed and write every output it names.
    """

    command: str
    what: str
    breaks: Callable[[Place], None]
    fragment: str
    repairs: Callable[[Place], None] = _nothing
    args: tuple[str, ...] | None = None  # default: COMMANDS[command]
    fixed_args: tuple[str, ...] | None = None  # default: the same args
    first: bool = False  # found before any model loads or training starts (checked by making those fail)

    @property
    def id(self) -> str:
        return f"{self.command}-{self.what}"


def _damage(how: str) -> Callable[[Place], None]:
    return lambda place: damage_weights(place.model, how)


def _restore_weights(place: Place) -> None:
    shutil.copy(place.original / WEIGHTS, place.model / WEIGHTS)


def _file_at(name: str) -> Callable[[Place], None]:
    return lambda place: (place.work / name).write_text("a file, not a folder")


def _folder_at(name: str) -> Callable[[Place], None]:
    return lambda place: (place.work / name).mkdir()


def _remove(name: str) -> Callable[[Place], None]:
    def remove(place: Place) -> None:
        path = place.work / name
        shutil.rmtree(path) if path.is_dir() else path.unlink()

    return remove


def _empty_split(split: str) -> Callable[[Place], None]:
    return lambda place: (place.root / "glue" / "SST-2" / f"{split}.tsv").write_text(SST2_HEADER)


def _refill_split(split: str) -> Callable[[Place], None]:
    return lambda place: (place.root / "glue" / "SST-2" / f"{split}.tsv").write_text(SST2_HEADER + SST2_ROWS)


def _config(**changes: object) -> Callable[[Place], None]:
    return lambda place: (place.root / "sweep.yaml").write_text(
        sweep_config(**changes).replace("{model}", str(place.model))
    )


def _untrained_head(place: Place) -> None:
    shutil.rmtree(place.model)
    save_tiny_bert(place.model, head=False)


def _trained_head(place: Place) -> None:
    shutil.rmtree(place.model)
    shutil.copytree(place.original, place.model)


def with_output(command: str, flag: str, value: str) -> tuple[str, ...]:
    """The command's arguments with the value after `flag` replaced."""
    args = list(COMMANDS[command])
    args[args.index(flag) + 1] = value
    return tuple(args)


LOADS_A_MODEL = ("drop", "inspect", "analyze", "run", "finetune", "evaluate", "bench")
# (command, flag, what the flag names): every output location of every command.
OUTPUT_FLAGS = [
    ("drop", "-o", "dir"),
    ("analyze", "-o", "dir"),
    ("run", "-o", "dir"),
    ("run", "--result", "file"),
    ("finetune", "-o", "dir"),
    ("finetune", "--result", "file"),
    ("evaluate", "--result", "file"),
    ("bench", "--json", "file"),
    ("bench", "--csv", "file"),
    ("report", "-o", "dir"),
    ("sweep", "--db", "file"),
]
ON_GLUE = ("--task", "sst2", "--data", "{data}")

FAULTS: list[Fault] = [
    # A damaged or missing model.safetensors, on every command that loads a model (inspect included).
    *(
        Fault(
            command,
            f"{how}-weights",
            _damage(how),
            "no weights in" if how == "missing" else "is not a readable safetensors file",
            repairs=_restore_weights,
        )
        for command in LOADS_A_MODEL
        for how in DAMAGE
    ),
    # An output location whose parent is a file.
    *(
        Fault(
            command,
            f"{flag.strip('-')}-parent-is-a-file",
            _file_at("blocker"),
            "'{work}/blocker' is a file, not a directory",
            repairs=_remove("blocker"),
            args=with_output(command, flag, "{work}/blocker/inside"),
            first=True,
        )
        for command, flag, _ in OUTPUT_FLAGS
    ),
    # A file name that names a folder, and a folder name that names a file.
    *(
        Fault(
            command,
            f"{flag.strip('-')}-names-a-folder",
            _folder_at("taken"),
            "is a directory; give a file name",
            repairs=_remove("taken"),
            args=with_output(command, flag, "{work}/taken"),
            first=True,
        )
        for command, flag, kind in OUTPUT_FLAGS
        if kind == "file"
    ),
    *(
        Fault(
            command,
            f"{flag.strip('-')}-names-a-file",
            _file_at("taken"),
            "exists and is not a directory",
            repairs=_remove("taken"),
            args=with_output(command, flag, "{work}/taken"),
            first=True,
        )
        for command, flag, kind in OUTPUT_FLAGS
        if kind == "dir"
    ),
    # An empty train or dev split.
    Fault(
        "run",
        "empty-train-tsv",
        _empty_split("train"),
        "the train split of sst2 in",
        repairs=_refill_split("train"),
        args=(
            "run",
            "{model}",
            *ON_GLUE,
            "--strategy",
            "top",
            "-k",
            "1",
            *TINY_TRAINING,
            "-o",
            "{out}",
            "--result",
            "{result}",
        ),
    ),
    Fault(
        "run",
        "empty-dev-tsv",
        _empty_split("dev"),
        "the validation split of sst2 in",
        repairs=_refill_split("dev"),
        args=("run", "{model}", *ON_GLUE, *TINY_TRAINING, "-o", "{out}", "--result", "{result}"),
    ),
    Fault(
        "finetune",
        "empty-train-tsv",
        _empty_split("train"),
        "the train split of sst2 in",
        repairs=_refill_split("train"),
        args=("finetune", "{model}", *ON_GLUE, *TINY_TRAINING, "-o", "{out}", "--result", "{result}"),
    ),
    Fault(
        "evaluate",
        "empty-dev-tsv",
        _empty_split("dev"),
        "the validation split of sst2 in",
        repairs=_refill_split("dev"),
        args=("evaluate", "{model}", *ON_GLUE, "--result", "{result}"),
    ),
    Fault(
        "analyze",
        "empty-dev-tsv",
        _empty_split("dev"),
        "the validation split of sst2 in",
        repairs=_refill_split("dev"),
        args=("analyze", "{model}", *ON_GLUE, "-o", "{out}"),
    ),
    Fault(
        "drop",
        "empty-dev-tsv",
        _empty_split("dev"),
        "the validation split of sst2 in",
        repairs=_refill_split("dev"),
        args=("drop", "{model}", "--strategy", "contribution", "-k", "1", *ON_GLUE, "-o", "{out}"),
    ),
    # Sweep configs that are checked before anything runs.
    Fault(
        "sweep",
        "unknown-strategy",
        _config(strategies=["topp"]),
        "strategies[0]: unknown strategy 'topp' (did you mean 'top'?)",
        repairs=_config(),
        first=True,
    ),
    Fault(
        "sweep",
        "strategy-option-typo",
        _config(strategy_options={"top": {"treshold": 0.9}}),
        "treshold does not go with strategy 'top'",
        repairs=_config(strategy_options={"top": {"protect_last": True}}),
        first=True,
    ),
    Fault(
        "sweep",
        "iterative-too-few-epochs",
        _config(regimes=["iterative"]),
        "needs at least 2 epochs, got 1",
        repairs=_config(
            regimes=["iterative"],
            run={
                "max_train_samples": 8,
                "max_eval_samples": 8,
                "training": {"epochs": 2, "batch_size": 8, "max_length": 16},
            },
        ),
        first=True,
    ),
    Fault(
        "sweep",
        "unknown-key",
        _config(sede=[1]),
        "config: unknown key 'sede' (did you mean 'seeds'?)",
        repairs=_config(seeds=[1]),
        first=True,
    ),
    # Arguments that make no sense together, refused before any loading.
    Fault(
        "drop",
        "no-k-or-layers",
        _nothing,
        "strategy 'top': --num-drop is required",
        args=("drop", "{model}", "-o", "{out}"),
        fixed_args=("drop", "{model}", "-k", "1", "-o", "{out}"),
        first=True,
    ),
    Fault(
        "drop",
        "layers-with-k",
        _nothing,
        "--layers already says which layers to drop; leave out --num-drop",
        args=("drop", "{model}", "--layers", "1", "-k", "2", "-o", "{out}"),
        fixed_args=("drop", "{model}", "--layers", "1", "-o", "{out}"),
        first=True,
    ),
    Fault(
        "run",
        "unknown-strategy-before-loading",
        _nothing,
        "unknown strategy 'middle'",  # model and data do not even exist
        args=(
            "run",
            "{work}/no-model",
            "--task",
            "sst2",
            "--data",
            "{work}/no-data",
            "--strategy",
            "middle",
            "-k",
            "1",
            "-o",
            "{out}",
        ),
        fixed_args=COMMANDS["run"],
        first=True,
    ),
    Fault("evaluate", "never-fine-tuned-head", _untrained_head, "has no trained", repairs=_trained_head),
]


@contextmanager
def no_loading(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Within the block, loading a model or fine-tuning fails the test: a fault must be found before any work."""

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("work started before the fault was found")

    with monkeypatch.context() as patch:
        patch.setattr("layerdrop.checkpoint.load_model", refuse)
        patch.setattr("layerdrop.training.finetune", refuse)
        yield


@pytest.mark.parametrize("fault", FAULTS, ids=[f.id for f in FAULTS])
def test_fault(
    fault: Fault,
    tmp_path: Path,
    materials: dict[str, Path],
    capsys: pytest.CaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    place = make_place(tmp_path, materials)
    fault.breaks(place)
    before = place.snapshot()
    args = place.fill(fault.args or COMMANDS[fault.command])
    with no_loading(monkeypatch) if fault.first else nullcontext():
        result = layerdrop_in_process(capsys, *args)
    assert_clean_failure(result, fault.fragment.format(**place.values()))
    assert place.snapshot() == before, "the failed command changed or left something"

    fault.repairs(place)
    fixed = place.fill(fault.fixed_args or fault.args or COMMANDS[fault.command])
    again = layerdrop_in_process(capsys, *fixed)
    assert again.returncode == 0, again.stderr
    for flag, value in zip(fixed, fixed[1:], strict=False):
        if flag in OUTPUT_OPTIONS:
            assert Path(value).exists(), f"{flag} {value} was not written"
    assert not [p for p in place.root.rglob("*") if ".staging-" in p.name]


# --- read-only output locations: one unprivileged process runs every row --------------------------------------

LOCKED_ROWS = [
    (command, flag, f"{{root}}/locked/{'out' if kind == 'dir' else 'result.json'}")
    for command, flag, kind in OUTPUT_FLAGS
]
LOCKED_IDS = [f"{command}-{flag.strip('-')}" for command, flag, _ in LOCKED_ROWS]

# Runs each command of argv[1] (a JSON list of argument lists) through main(), as `layerdrop` would, and prints
# their exit codes and output as JSON. Loading a model or training fails loudly: a location must be checked first.
LOCKED_RUNNER = r"""
import contextlib, io, json, sys, traceback
import layerdrop.checkpoint, layerdrop.training

def refuse(*args, **kwargs):
    raise AssertionError("work started before the output location was checked")

layerdrop.checkpoint.load_model = layerdrop.training.finetune = refuse
from layerdrop.cli import main

results = []
for args in json.loads(sys.argv[1]):
    out, err = io.StringIO(), io.StringIO()
    sys.argv = ["layerdrop", *args]
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            main()
            code = 0
        except SystemExit as exit_:
            code = exit_.code if isinstance(exit_.code, int) else 1
        except BaseException:
            err.write(traceback.format_exc())
            code = -1
    results.append({"returncode": code, "stdout": out.getvalue(), "stderr": err.getvalue()})
print(json.dumps(results))
"""


@pytest.fixture(scope="module")
def locked(
    tmp_path_factory: pytest.TempPathFactory, materials: dict[str, Path]
) -> dict[str, tuple[Place, list[str], subprocess.CompletedProcess, dict]]:
    """Every read-only row, run at once in one process without the rights that ignore file permissions."""
    prefix = unprivileged()
    rows = {}
    for row_id, (command, flag, location) in [
        *zip(LOCKED_IDS, LOCKED_ROWS, strict=True),
        ("demo-o", ("demo", "-o", "{root}/locked/demo")),
    ]:
        place = make_place(tmp_path_factory.mktemp(row_id), materials)
        (place.root / "locked").mkdir()
        (place.root / "locked").chmod(0o555)
        args = place.fill(with_output(command, flag, location) if command in COMMANDS else ("demo", "-o", location))
        rows[row_id] = (place, args, place.snapshot())
    done = subprocess.run(
        [*prefix, sys.executable, "-c", LOCKED_RUNNER, json.dumps([args for _, args, _ in rows.values()])],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    results = json.loads(done.stdout.strip().splitlines()[-1])
    return {
        row_id: (place, args, subprocess.CompletedProcess(args, **result), before)
        for (row_id, (place, args, before)), result in zip(rows.items(), results, strict=True)
    }


@pytest.mark.slow  # the unprivileged process that runs every row takes ~10 s
@pytest.mark.parametrize("row_id", LOCKED_IDS)
def test_read_only_output_location(row_id: str, locked: dict, capsys: pytest.CaptureFixture) -> None:
    place, args, result, before = locked[row_id]
    assert_clean_failure(result, f"no permission to write in '{place.root}/locked'")
    assert place.snapshot() == before
    (place.root / "locked").chmod(0o755)
    again = layerdrop_in_process(capsys, *args)
    assert again.returncode == 0, again.stderr
    assert not [p for p in place.root.rglob("*") if ".staging-" in p.name]


@pytest.mark.parametrize("where", ["parent-is-a-file", pytest.param("read-only", marks=pytest.mark.slow)])
def test_demo_refuses_a_bad_output_before_any_work(
    where: str,
    tmp_path: Path,
    request: pytest.FixtureRequest,
    capsys: pytest.CaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Whatever `demo` trains (it is to be rewritten), a bad --output fails before it starts.

    The corrected demo trains a real model for minutes, so it is not run here; `make demo` runs it.
    """
    if where == "read-only":
        place, _, result, before = request.getfixturevalue("locked")["demo-o"]
        assert_clean_failure(result, f"no permission to write in '{place.root}/locked'")
        assert place.snapshot() == before
        return
    (tmp_path / "blocker").write_text("a file")
    with no_loading(monkeypatch):
        result = layerdrop_in_process(capsys, "demo", "-o", tmp_path / "blocker" / "demo")
    assert_clean_failure(result, f"'{tmp_path}/blocker' is a file, not a directory")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["blocker"]


# --- outputs follow the umask ----------------------------------------------------------------------------------


@contextmanager
def umask(mask: int) -> Iterator[None]:
    old = os.umask(mask)
    try:
        yield
    finally:
        os.umask(old)


@pytest.mark.parametrize("command", ["drop", "analyze", "run", "finetune", "evaluate", "bench", "report"])
def test_outputs_follow_the_umask(
    command: str, tmp_path: Path, materials: dict[str, Path], capsys: pytest.CaptureFixture
) -> None:
    place = make_place(tmp_path, materials)
    with umask(0o002):  # neither the 0700/0600 of temporary files nor the usual 0755/0644
        result = layerdrop_in_process(capsys, *place.fill(COMMANDS[command]))
    assert result.returncode == 0, result.stderr
    written = list(place.work.rglob("*"))
    assert written
    modes = {str(p.relative_to(place.work)): oct(stat.S_IMODE(p.stat().st_mode)) for p in written}
    assert modes == {name: oct(0o775 if (place.work / name).is_dir() else 0o664) for name in modes}


# --- noise ---------------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_loading_training_evaluating_and_saving_print_no_library_chatter(tmp_path: Path) -> None:
    """In a real process, as a user sees it: only our own progress bars.

    A base checkpoint gets a new head (transformers would print its load report); the run trains, evaluates
    (pyarrow would warn about sorting) and saves (transformers would show a bar per file written).
    """
    base = save_tiny_bert(tmp_path / "base", head=False)
    done = layerdrop(
        "run", base, "--task", "toy-sentiment", *TINY_TRAINING, "-o", tmp_path / "out", "--result", tmp_path / "r.json"
    )
    assert done.returncode == 0, done.stderr
    for noise in (
        "LOAD REPORT",
        "MISSING",
        "Some weights",
        "\x1b[",
        "FutureWarning",
        "Warning",
        "Loading weights",
        "Writing model shards",
    ):
        assert noise not in done.stderr, done.stderr
    assert [
        line for line in lines(done.stderr) if not line.lstrip("\r").startswith(("training on", "evaluating"))
    ] == [], done.stderr


def test_analyze_table_keeps_its_bracketed_headers(
    tmp_path: Path, materials: dict[str, Path], capsys: pytest.CaptureFixture
) -> None:
    place = make_place(tmp_path, materials)
    result = layerdrop_in_process(capsys, *place.fill(COMMANDS["analyze"]))
    assert result.returncode == 0, result.stderr
    for pooled in ("(first)", "(last)", "(mean)"):
        assert pooled in result.stdout, result.stdout


@pytest.mark.parametrize("command", ["sweep", "bench"])
def test_progress_is_printed_line_by_line_when_not_on_a_terminal(
    command: str, tmp_path: Path, materials: dict[str, Path], capsys: pytest.CaptureFixture
) -> None:
    place = make_place(tmp_path, materials)
    result = layerdrop_in_process(capsys, *place.fill(COMMANDS[command]))
    assert result.returncode == 0, result.stderr
    expected = "[1/1] " if command == "sweep" else "[0/1] timing batch 1, length 8"
    assert expected in result.stderr, result.stderr


# --- signals: Ctrl-C, SIGTERM and SIGKILL in the middle of the work -----------------------------------------------

SAVING, TRAINING = (
    "layerdrop.checkpoint:model_card",
    "torch.optim:AdamW.step",
)  # inside save_model's staging; a training step
SIGNALLED = [
    # (command, where it is held when the signal comes, signal, exit code, message)
    ("drop", SAVING, signal.SIGINT, 130, "interrupted"),
    ("run", SAVING, signal.SIGTERM, 143, "terminated"),
    ("run", TRAINING, signal.SIGINT, 130, "interrupted"),
    ("sweep", TRAINING, signal.SIGINT, 130, "interrupted"),
]  # each row costs a fresh process; every command saves through the same staged(), so one of each signal per path


def wait_for(condition: Callable[[], bool], process: subprocess.Popen, timeout: float = 180) -> None:
    """Wait until `condition()` holds; fail with the process's output if it ends or takes too long first."""
    deadline = time.monotonic() + timeout
    while not condition():
        if process.poll() is not None:
            pytest.fail(f"the command ended (exit {process.returncode}) before it got there:\n{finish(process).stderr}")
        if time.monotonic() > deadline:
            process.kill()
            pytest.fail("the command never got there")
        time.sleep(0.05)


def staging_in(place: Place) -> list[Path]:
    return [p for p in place.root.rglob("*") if ".staging-" in p.name]


@pytest.mark.slow
@pytest.mark.parametrize(
    ("command", "held", "signum", "code", "message"),
    SIGNALLED,
    ids=[
        f"{c}-{signal.Signals(s).name}-while-{'saving' if h == SAVING else 'training'}" for c, h, s, _, _ in SIGNALLED
    ],
)
def test_a_signal_stops_the_command_promptly_and_leaves_nothing(
    command: str,
    held: str,
    signum: int,
    code: int,
    message: str,
    tmp_path: Path,
    materials: dict[str, Path],
    capsys: pytest.CaptureFixture,
) -> None:
    place, marker = make_place(tmp_path / "place", materials), tmp_path / "held"
    before = place.snapshot()
    args = place.fill(COMMANDS[command])
    process = start_layerdrop(*args, prelude=pause_at(held, marker))
    wait_for(marker.exists, process)
    if held == SAVING:
        assert staging_in(place), "the signal should come while the output is being staged"
    sent = time.monotonic()
    process.send_signal(signum)
    result = finish(process)
    assert time.monotonic() - sent < 20, "the command did not stop promptly"
    assert_clean_failure(result, f"error: {message}", code=code)
    assert lines(result.stderr)[-1].rpartition("\r")[2] == f"error: {message}"
    after = place.snapshot()
    if command == "sweep":  # the results database is opened first and holds no half-run: it is empty
        database = place.work / "sweep.sqlite"
        assert sqlite3.connect(database).execute("SELECT COUNT(*) FROM runs").fetchone() == (0,)
        after = {name: content for name, content in after.items() if not name.startswith("work/sweep.sqlite")}
    assert after == before, "the interrupted command left something behind"

    again = layerdrop_in_process(capsys, *args)
    assert again.returncode == 0, again.stderr
    assert not staging_in(place)


@pytest.mark.slow
def test_staging_left_by_a_killed_save_is_removed_by_the_next_run(
    tmp_path: Path, materials: dict[str, Path], capsys: pytest.CaptureFixture
) -> None:
    place, marker = make_place(tmp_path / "place", materials), tmp_path / "held"
    args = place.fill(COMMANDS["drop"])
    process = start_layerdrop(*args, prelude=pause_at(SAVING, marker))
    wait_for(marker.exists, process)
    process.kill()  # SIGKILL: no handler runs, the staging folder stays
    finish(process)
    left = staging_in(place)
    assert left and not (place.work / "out").exists()
    again = layerdrop_in_process(capsys, *args)
    assert again.returncode == 0, again.stderr
    assert (place.work / "out" / "model.safetensors").exists()
    assert not staging_in(place), "the next run into the same place should have removed the dead process's staging"


@pytest.mark.slow
def test_ctrl_c_during_demo(tmp_path: Path) -> None:
    """Held at no particular point, so it survives a rewrite of `demo`: interrupted once it has started working."""
    out, log = tmp_path / "demo", tmp_path / "stderr.log"
    with log.open("w") as stderr:
        process = start_layerdrop("demo", "-o", out, stderr=stderr)
        wait_for(lambda: log.stat().st_size > 0, process)  # it says what it is doing
        time.sleep(2)
        sent = time.monotonic()
        process.send_signal(signal.SIGINT)
        finish(process)
    assert time.monotonic() - sent < 20, "demo did not stop promptly"
    text = log.read_text()
    assert process.returncode == 130, text
    assert "Traceback" not in text and lines(text)[-1].rpartition("\r")[2] == "error: interrupted", text
    assert sum("error:" in line for line in lines(text)) == 1
    assert not out.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["stderr.log"]
