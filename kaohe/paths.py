"""Where the bundled inputs of a year live.

The repository keeps the office's inputs next to the code: ``indicators/<year>.yaml``
and ``inputs/<year>/`` (registry.csv, submissions/, review.csv, components.csv).
``KAOHE_HOME`` points elsewhere (an office's own data folder with the same layout).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import kaohe


def home() -> Path:
    env = os.environ.get("KAOHE_HOME")
    if env:
        return Path(env)
    repo = Path(kaohe.__file__).resolve().parent.parent
    if (repo / "indicators").is_dir():
        return repo
    return Path.cwd()


@dataclass(frozen=True)
class YearInputs:
    year: int
    root: Path

    @property
    def catalog(self) -> Path:
        return self.root / "indicators" / f"{self.year}.yaml"

    @property
    def folder(self) -> Path:
        return self.root / "inputs" / str(self.year)

    @property
    def registry(self) -> Path:
        return self.folder / "registry.csv"

    @property
    def submissions(self) -> Path:
        return self.folder / "submissions"

    @property
    def review(self) -> Path:
        return self.folder / "review.csv"

    @property
    def components(self) -> Path:
        return self.folder / "components.csv"


def bundled(year: int) -> YearInputs:
    return YearInputs(year, home())
