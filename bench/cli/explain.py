"""``python -m bench.explain --runs DIR``: Grad-CAM maps of every finished run, measured against
the lesion masks (:mod:`bench.evaluation.explain`); ``--out`` also writes these runs' explanation
table and figure (the report does so for a whole results set)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from bench.core.errors import BenchError, cli_main, in_flag_words
from bench.core.tablefmt import write_table
from bench.engine.device import resolve_device
from bench.evaluation.explain import METHODS, explain_runs
from bench.reporting import camtable
from bench.reporting.runs import load_runs
from bench.reporting.sections import explanations


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bench.explain", description=__doc__.split("\n\n")[0])
    p.add_argument("--runs", type=Path, required=True, help="a folder of run folders")
    p.add_argument("--method", default="gradcam", choices=METHODS,
                   help="explanation method (Grad-CAM at a layer of at least 7x7)")
    p.add_argument("--data", type=Path, default=None,
                   help="the runs' data set, when it moved since they were trained")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"],
                   help="auto = cuda when available, else cpu")
    p.add_argument("--out", type=Path, default=None,
                   help="also write the explanation table and figure of these runs here "
                        "(python -m bench.report does so for a whole results set)")
    return p


def write_explanations(runs_dir: Path, out: Path) -> None:
    """``<out>/explanations.{csv,md,tex,png,pdf}`` of the runs in ``runs_dir``."""
    runs = load_runs(runs_dir)
    cams = explanations.explanation_table(runs)
    write_table(cams, camtable.display(cams), out / "explanations",
                "Where the models look (Grad-CAM): see bench.explain")
    explanations.explanation_grid(explanations.explanation_examples(runs), out / "explanations")
    print(f"wrote {out / 'explanations.md'} and its figure")


@cli_main
def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    device = resolve_device(args.device)
    problems = explain_runs(load_runs(args.runs), args.method, device=device, data=args.data)
    for line in problems if len(problems) > 1 else []:  # one problem: the error line says it
        print(f"not explained: {in_flag_words(line)}", file=sys.stderr)
    if args.out is not None:
        write_explanations(args.runs, args.out)
    if len(problems) == 1:
        raise BenchError(f"1 run(s) not explained: {problems[0]}")
    if problems:
        raise BenchError(f"{len(problems)} run(s) not explained (said above); the first: "
                         f"{problems[0]}")
    return 0
