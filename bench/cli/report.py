"""``python -m bench.report --runs DIR --out DIR``: every table and figure from saved runs (docs/protocol.md, Metrics).

Reads run folders only (never trains). Tables go to ``<out>/tables/`` as CSV (raw numbers), Markdown
and LaTeX; figures are drawn from those saved CSVs into ``<out>/figures/`` (PNG + PDF), so
``--figures-only`` redraws them without the runs. ``<out>/README.md`` summarises it all. Output is
deterministic: the same runs give byte-identical files. The library call is
:func:`bench.reporting.report.build_report`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from bench.core.errors import cli_main, number
from bench.core.paths import RESULTS_DIR
from bench.reporting.report import ReportOptions, build_report


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bench.report", description=__doc__.split("\n\n")[0])
    p.add_argument("--runs", type=Path, default=RESULTS_DIR / "runs",
                   help="folder of finished run folders (read only, never trained)")
    p.add_argument("--out", type=Path, default=RESULTS_DIR,
                   help="results folder: tables/, figures/ and README.md are written here")
    p.add_argument("--profile", default=None, help="report only runs of this profile")
    p.add_argument("--n-boot", type=number("--n-boot", above=True), default=2000,
                   help="bootstrap resamples for the AUC CI")
    p.add_argument("--seed", type=number("--seed"), default=0, help="bootstrap seed")
    p.add_argument("--figures-only", action="store_true", help="redraw figures from saved tables")
    p.add_argument("--skip-invalid-runs", action="store_true",
                   help="leave out runs whose outputs fail their recorded checksums (listed in "
                        "the README) instead of stopping")
    return p


@cli_main
def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    result = build_report(args.runs, args.out, ReportOptions(
        profile=args.profile, n_boot=args.n_boot, seed=args.seed, figures_only=args.figures_only,
        skip_invalid_runs=args.skip_invalid_runs))
    for note in result.warnings:
        print(f"warning: {note}", file=sys.stderr)
    print(f"wrote tables to {args.out / 'tables'}, {len(result.figures)} figure files to "
          f"{args.out / 'figures'} and {args.out / 'README.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
