"""``python -m bench.illustrate --runs DIR``: save with each finished run of a model what the data
pipeline does to one benign and one malignant training image, for the report's Fig. 5 and Fig. 6
analogues (:mod:`bench.evaluation.illustrate`)."""

from __future__ import annotations

import argparse
from pathlib import Path

from bench.core.errors import BenchError, cli_main
from bench.engine.spec import REFERENCE
from bench.evaluation.illustrate import illustrate_run
from bench.reporting.runs import load_runs


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bench.illustrate",
                                description=__doc__.split("\n\n")[0])
    p.add_argument("--runs", type=Path, required=True, help="a folder of run folders")
    p.add_argument("--model", default=REFERENCE, help="illustrate the runs of this model")
    p.add_argument("--data", type=Path, default=None,
                   help="the runs' data set, when it moved since they were trained")
    return p


@cli_main
def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    runs = [r for r in load_runs(args.runs) if r.model == args.model]
    if not runs:
        raise BenchError(f"--runs {args.runs}: no finished {args.model} run")
    for run in runs:
        illustrate_run(run, args.data)
    return 0
