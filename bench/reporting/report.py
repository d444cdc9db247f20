"""Every table and figure from saved runs, and the README over them (docs/protocol.md, Metrics).

Reads run folders only (never trains). Each part of the report is one section module
(:mod:`bench.reporting.sections`): tables go to ``<out>/tables/`` as CSV (raw numbers), Markdown
and LaTeX; figures are drawn from those saved CSVs into ``<out>/figures/`` (PNG + PDF), so
``figures_only`` redraws them without the runs; ``<out>/README.md`` is the sections' parts in
order. Output is deterministic: the same runs give byte-identical files. The command is
``python -m bench.report`` (:mod:`bench.cli.report`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from bench.core.atomic import write_text
from bench.core.errors import BenchError, ensure_writable
from bench.reporting.runs import Run, load_runs, provenance_warnings
from bench.reporting.sections import SECTIONS, ReportContext
from bench.reporting.tables import set_aside


def select_group(runs: list[Run], profile: str | None) -> list[Run]:
    """Runs of one data set, split manifest and profile; ask the user when several are present."""
    def key(r: Run) -> tuple:
        return (r.settings.get("data_kind"), r.settings.get("manifest_sha256", "")[:12],
                r.config.get("profile", {}).get("name"))

    if profile:
        runs = [r for r in runs if key(r)[2] == profile]
        if not runs:
            raise BenchError(f"`profile`={profile}: no finished runs with that profile")
    groups = sorted({key(r) for r in runs}, key=str)
    if len(groups) > 1:
        listing = "; ".join(f"data {g[0]}, split {g[1]}, profile {g[2]}" for g in groups)
        raise BenchError(f"runs from several settings ({listing}); give `profile` or a `runs` "
                         "folder holding one data set")
    return runs


def write_tables(ctx: ReportContext) -> dict[str, pd.DataFrame]:
    """Every section's tables, in order; returns the main ones by name."""
    for section in SECTIONS:
        section.write_tables(ctx)
    return ctx.tables


def draw_figures(out: Path) -> list[Path]:
    """All figures from the saved tables in ``<out>/tables``."""
    tdir, fdir = out / "tables", out / "figures"
    if not (tdir / "table3_comparison.csv").is_file():
        raise BenchError(f"`out`={out}: no saved tables to draw from; build the report from the "
                         "runs first")
    return [path for section in SECTIONS for path in section.draw_figures(tdir, fdir)]


def write_readme(ctx: ReportContext) -> Path:
    """``<out>/README.md``: the sections' parts, concatenated in order."""
    lines = [line for section in SECTIONS for line in section.readme(ctx)]
    return write_text(ctx.out / "README.md", "\n".join(lines))


@dataclass(frozen=True)
class ReportOptions:
    """How a report is built: which runs (one profile), bootstrap size and seed, figures only."""
    profile: str | None = None
    n_boot: int = 2000
    seed: int = 0
    figures_only: bool = False
    skip_invalid_runs: bool = False


@dataclass(frozen=True)
class ReportResult:
    readme: Path | None
    figures: list[Path]
    warnings: list[str] = field(default_factory=list)


def build_report(runs_dir: Path, out: Path, options: ReportOptions = ReportOptions()) -> ReportResult:
    """Tables, figures and README of the finished runs in ``runs_dir``, written to ``out`` (the
    library call behind ``python -m bench.report``; the suite calls it after its runs)."""
    ensure_writable(out, "`out`")
    if options.figures_only:
        return ReportResult(None, draw_figures(out))
    skipped: list[str] = []
    notes: list[str] = []
    runs = select_group(load_runs(runs_dir, options.skip_invalid_runs, skipped, notes),
                        options.profile)
    warnings = [f"left out: {n}" for n in skipped] + list(notes)
    warnings += [f"{name} is in no table: {why}" for name, why in set_aside(runs)]
    ctx = ReportContext(runs, out, options.n_boot, options.seed, skipped, notes)
    write_tables(ctx)
    warnings += provenance_warnings(runs)
    figures = draw_figures(out)
    return ReportResult(write_readme(ctx), figures, warnings)
