"""``python -m bench.report --runs DIR --out DIR``: every table and figure from saved runs (docs/protocol.md, Metrics).

Reads run folders only (never trains). Tables go to ``<out>/tables/`` as CSV (raw numbers), Markdown
and LaTeX; figures are drawn from those saved CSVs into ``<out>/figures/`` (PNG + PDF), so
``--figures-only`` redraws them without the runs. ``<out>/README.md`` summarises it all. Output is
deterministic: the same runs give byte-identical files. The library call is
:func:`bench.reporting.report.build_report`.

``--out`` defaults to the folder beside the runs (``--runs X/runs``: ``X``; another name
``--runs X/NAME``: ``X/NAME-report``), and a default that would replace files git tracks is
refused: a committed report is rewritten only when ``--out`` names it.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from bench.cli import number
from bench.core.atomic import git_tracked
from bench.core.errors import BenchError, cli_main, in_flag_words
from bench.core.paths import RESULTS_DIR
from bench.reporting.report import REPORT_PARTS, ReportOptions, build_report


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bench.report", description=__doc__.split("\n\n")[0])
    p.add_argument("--runs", type=Path, default=RESULTS_DIR / "runs",
                   help="folder of finished run folders (read only, never trained)")
    p.add_argument("--out", type=Path, default=None,
                   help="report folder: tables/, figures/ and README.md are written here "
                        "(default: beside the runs: X for --runs X/runs, else X/NAME-report for "
                        "--runs X/NAME; a default never replaces files git tracks)")
    p.add_argument("--profile", default=None, help="report only runs of this profile")
    p.add_argument("--n-boot", type=number("--n-boot", above=True), default=2000,
                   help="bootstrap resamples for the AUC CI")
    p.add_argument("--seed", type=number("--seed"), default=0, help="bootstrap seed")
    p.add_argument("--figures-only", action="store_true", help="redraw figures from saved tables")
    p.add_argument("--skip-invalid-runs", action="store_true",
                   help="leave out runs whose outputs fail their recorded checksums (listed in "
                        "the README) instead of stopping")
    return p


def default_out(runs: Path) -> Path:
    """The report beside its runs: ``X`` for ``X/runs``, ``X/NAME-report`` for ``X/NAME``."""
    runs = Path(runs)
    if runs.name == "runs":
        return runs.parent
    return runs.parent / f"{runs.resolve().name}-report"


def refuse_tracked_default(out: Path, runs: Path) -> None:
    """A default ``out`` never replaces files git tracks (a committed report or index)."""
    tracked = git_tracked([out / part for part in REPORT_PARTS])
    if tracked:
        names = ", ".join(p.name for p in tracked)
        raise BenchError(f"`out`={out} (the default for `runs`={runs}): would replace {names}, "
                         "which git tracks; pass `out` naming that folder to rewrite them on "
                         "purpose, or another folder")


@cli_main
def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.out is None:
        args.out = default_out(args.runs)
        refuse_tracked_default(args.out, args.runs)
    result = build_report(args.runs, args.out, ReportOptions(
        profile=args.profile, n_boot=args.n_boot, seed=args.seed, figures_only=args.figures_only,
        skip_invalid_runs=args.skip_invalid_runs))
    for note in result.warnings:
        print(f"warning: {in_flag_words(note)}", file=sys.stderr)
    print(f"wrote tables to {args.out / 'tables'}, {len(result.figures)} figure files to "
          f"{args.out / 'figures'} and {args.out / 'README.md'}")
    return 0
