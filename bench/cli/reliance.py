"""``python -m bench.reliance --runs DIR [--out DIR] [--device cpu] [--controls]``: how much
each finished model relies on burnt-in annotations (:mod:`bench.evaluation.reliance`;
docs/protocol.md, "Burnt-in annotations").

Measures every finished run with weights (``reliance/`` in each run folder, reused while the
weights and the detector are unchanged), then writes ``reliance.csv``/``.md``/``.tex`` and
``reliance.png`` into ``--out`` (default: the runs folder's parent's ``tables``/``figures``).
``--controls`` adds the insertion test's same-class and random-shape controls
(:mod:`bench.evaluation.insertion`; ``reliance/insertion.*`` in each run folder,
``insertion.csv``/``.md``/``.tex`` and a third panel of ``reliance.png``).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from bench.cli import number
from bench.core.errors import BenchError, cli_main
from bench.core.tablefmt import write_table
from bench.evaluation.reliance import N_BOOT, reliance_run
from bench.reporting.runs import load_runs
from bench.reporting.sections.reliance import (
    INSERTION_CAPTION,
    insertion_display,
    insertion_per_seed,
    reliance_figure,
    saved_table,
    write_saved,
)


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m bench.reliance", description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=Path, required=True, help="folder of run folders")
    ap.add_argument("--out", type=Path, default=None,
                    help="where the table and figure go (default: next to --runs: tables/, figures/)")
    ap.add_argument("--data", type=Path, default=None, help="the runs' data set, if moved")
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"],
                    help="device that scores the cleaned and pasted images")
    ap.add_argument("--controls", action="store_true",
                    help="also paste same-class marks and random shapes of the marks' area and "
                         "intensity at their positions, and report the insertion effect beyond "
                         "each (docs/annotations.md)")
    ap.add_argument("--n-boot", type=number("--n-boot", int, 1), default=N_BOOT,
                    help="bootstrap replicates of the insertion intervals (with --controls)")
    return ap


def write_reliance(runs_dir: Path, out: Path | None = None, device: str = "cpu",
                   data: Path | None = None, controls: bool = False,
                   n_boot: int = N_BOOT) -> pd.DataFrame:
    """Measure every finished run in ``runs_dir`` (with ``controls``: the insertion controls too)
    and write the table and figure (one row per run)."""
    runs = load_runs(runs_dir, skip_invalid=True)
    for run in runs:
        reliance_run(run, device, data, controls=controls, n_boot=n_boot)
    table = saved_table(runs)
    if table.empty:
        print("reliance: no run with weights to measure")
        return table
    tdir = out or runs_dir.parent / "tables"
    write_saved(table, tdir)
    insertion = insertion_per_seed(runs) if controls else pd.DataFrame()
    if len(insertion):
        write_table(insertion, insertion_display(insertion), tdir / "insertion", INSERTION_CAPTION)
    reliance_figure(table, (out or runs_dir.parent / "figures") / "reliance",
                    insertion if len(insertion) else None)
    return table


@cli_main
def main(argv: list[str] | None = None) -> int:
    a = build_parser().parse_args(argv)
    if not a.runs.is_dir():
        raise BenchError(f"--runs {a.runs}: not a folder of run folders")
    if a.n_boot != N_BOOT and not a.controls:
        raise BenchError("--n-boot: sets the insertion controls' bootstrap; add --controls")
    write_reliance(a.runs, a.out, a.device, a.data, a.controls, a.n_boot)
    return 0
