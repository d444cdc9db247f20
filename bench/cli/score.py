"""``python -m bench.score --runs DIR --external B[,C...]``: score finished runs on external sets
without retraining (docs/protocol.md, External validation); the library is
:mod:`bench.evaluation.score`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from bench.core.errors import EXIT_USAGE, BenchError, cli_main, in_flag_words
from bench.engine.device import resolve_device
from bench.evaluation.score import run_folders, score_run


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bench.score", description=__doc__.split("\n\n")[0])
    p.add_argument("--runs", type=Path, required=True, help="a run folder or a folder of runs")
    p.add_argument("--external", required=True,
                   help="comma-separated external data sets (paths, NAME=PATH or synthetic:B)")
    p.add_argument("--adapt-bn", default="none",
                   help="comma-separated BatchNorm adaptations, each scored separately: none (as "
                        "trained), target (statistics re-estimated on the unlabelled external "
                        "images), source (the control: on the training images); "
                        "docs/protocol.md, Closing the site gap")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"],
                   help="auto = cuda when available, else cpu")
    return p


@cli_main
def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    folders = run_folders(args.runs)
    device = resolve_device(args.device)
    sets = [x for x in args.external.split(",") if x]
    adapt = tuple(x for x in args.adapt_bn.split(",") if x)
    failed = 0
    for folder in folders:
        try:
            for name, m in score_run(folder, sets, device, adapt).items():
                t = m["test"]
                print(f"{folder.name} → {name}: n={t['n']}, AUC {t['auc']:.3f}, accuracy "
                      f"{t['accuracy']:.3f}, {m['training_copies']} training copies")
        except BenchError as exc:  # bad input for this run: said, and the others go on
            print(f"error: {folder.name}: {in_flag_words(str(exc))}", file=sys.stderr)
            failed += 1
    return EXIT_USAGE if failed else 0
