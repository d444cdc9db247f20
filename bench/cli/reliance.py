"""``python -m bench.reliance --runs DIR [--out DIR] [--device cpu]``: how much each finished
model relies on burnt-in annotations (:mod:`bench.evaluation.reliance`; docs/protocol.md,
"Burnt-in annotations").

Measures every finished run with weights (``reliance/`` in each run folder, reused while the
weights and the detector are unchanged), then writes ``reliance.csv``/``.md``/``.tex`` and
``reliance.png`` into ``--out`` (default: the runs folder's parent's ``tables``/``figures``).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from bench.core.errors import BenchError, cli_main
from bench.evaluation.reliance import reliance_run
from bench.reporting.runs import load_runs
from bench.reporting.sections.reliance import reliance_figure, saved_table, write_saved


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m bench.reliance", description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=Path, required=True, help="folder of run folders")
    ap.add_argument("--out", type=Path, default=None,
                    help="where the table and figure go (default: next to --runs: tables/, figures/)")
    ap.add_argument("--data", type=Path, default=None, help="the runs' data set, if moved")
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"],
                    help="device that scores the cleaned and pasted images")
    return ap


def write_reliance(runs_dir: Path, out: Path | None = None, device: str = "cpu",
                   data: Path | None = None) -> pd.DataFrame:
    """Measure every finished run in ``runs_dir`` and write the table and figure."""
    runs = load_runs(runs_dir, skip_invalid=True)
    for run in runs:
        reliance_run(run, device, data)
    table = saved_table(runs)
    if table.empty:
        print("reliance: no run with weights to measure")
        return table
    write_saved(table, out or runs_dir.parent / "tables")
    reliance_figure(table, (out or runs_dir.parent / "figures") / "reliance")
    return table


@cli_main
def main(argv: list[str] | None = None) -> int:
    a = build_parser().parse_args(argv)
    if not a.runs.is_dir():
        raise BenchError(f"--runs {a.runs}: not a folder of run folders")
    write_reliance(a.runs, a.out, a.device, a.data)
    return 0
