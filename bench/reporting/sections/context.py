"""What every report section works from: the runs, where the report goes, the statistics'
settings, and the tables the sections before it computed (in order)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from bench.engine.runfolder import Run


@dataclass
class ReportContext:
    """One report being built. ``tables`` holds each section's main tables by name, in section
    order (the provenance header lists their flagged rows); ``skipped`` and ``notes`` are the
    runs left out and what loading them said. ``out`` is where the report is published (what
    the README says); ``build``, where its files are written until then (``out`` when unset)."""

    runs: list[Run]
    out: Path
    n_boot: int = 2000
    seed: int = 0
    skipped: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    build: Path | None = None
    # the all-image runs (every usable image scored once, bench/engine/allimage.py): their own
    # section only; ``runs`` are the held-out runs every other section reads
    allcv: list[Run] = field(default_factory=list)

    @property
    def dest(self) -> Path:
        return self.out if self.build is None else self.build

    @property
    def tdir(self) -> Path:
        return self.dest / "tables"

    @property
    def fdir(self) -> Path:
        return self.dest / "figures"

    def table_md(self, name: str) -> str:
        """The saved Markdown of table ``name``, as the README quotes it."""
        return (self.tdir / f"{name}.md").read_text()


def read_table(path: Path) -> pd.DataFrame:
    """A saved CSV table; an empty one (header-less) as an empty frame."""
    try:
        return pd.read_csv(path)
    except pd.errors.EmptyDataError:
        return pd.DataFrame()


def plain_words(what: str, reading: str) -> list[str]:
    """Two sentences under a table for a clinician: what it measures, and how to read it."""
    return [f"*In plain words:* {what} {reading}", ""]
