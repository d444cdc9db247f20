"""``python -m bench.sitegap --runs DIR --out DIR``: the site-gap table of runs trained on several
data sets, each scored on the sites it left out with and without each lever (docs/protocol.md,
"Closing the site gap"); the library is :mod:`bench.reporting.siteset`.

Reads run folders only (never trains). Writes ``<out>/tables/sitegap.*`` and ``site_matrix.*``,
``<out>/figures/sitegap.{png,pdf}`` and ``<out>/README.md``; ``--figures-only`` redraws the figure
from the saved table.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from bench.cli import number
from bench.core.errors import BenchError, cli_main
from bench.core.provenance import portable


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bench.sitegap", description=__doc__.split("\n\n")[0])
    p.add_argument("--runs", type=Path, required=True,
                   help="folder of finished run folders, of one or several training data sets")
    p.add_argument("--out", type=Path, default=None,
                   help="folder of the set's tables/, figures/ and README.md (default: the "
                        "folder holding --runs)")
    p.add_argument("--n-boot", type=number("--n-boot", above=True), default=2000,
                   help="bootstrap resamples (seeds x patient clusters)")
    p.add_argument("--seed", type=number("--seed"), default=0, help="bootstrap seed")
    p.add_argument("--figures-only", action="store_true",
                   help="redraw the figure from the saved table")
    return p


@cli_main
def main(argv: list[str] | None = None) -> int:
    from bench.reporting.siteset import build_site_gap_set, draw

    args = build_parser().parse_args(argv)
    out = args.out if args.out is not None else args.runs.parent
    if args.figures_only:
        tdir = out / "tables"
        if not (tdir / "sitegap.csv").is_file():
            raise BenchError(f"--out {out}: no saved tables/sitegap.csv to draw from; run "
                             "without --figures-only first")
        for path in draw(tdir, out / "figures"):
            print(f"wrote {path}")
        return 0
    built = build_site_gap_set(args.runs, out, args.n_boot, args.seed,
                               runs_label=portable(args.runs.resolve()))
    for w in built.warnings:
        print(f"warning: {w}")
    print(f"wrote {built.readme} ({len(built.table)} rows) and {len(built.figures)} figure file(s)")
    return 0
