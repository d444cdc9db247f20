"""``python -m bench.sweep``: learning curves on CV folds, the evidence behind a reduced profile's
epochs (the library is :mod:`bench.jobs.sweep`, whose docstring says what it writes).

This module is the command line only: flags it does not know are ``python -m bench.run`` flags,
read once into the options every model's curves share.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from dataclasses import replace
from pathlib import Path

from bench.cli.run import options_from_argv, passed_on_help
from bench.core.errors import BenchError, cli_main
from bench.core.paths import RESULTS_DIR
from bench.core.provenance import portable
from bench.core.tablefmt import to_markdown
from bench.jobs.sweep import sweep
from models.plugins import resolve_model

# the library's settings by the flag that sets them
# the library's `folds` (a run's K-fold CV) is this command's --cv-folds
FLAGS = {"folds": "--cv-folds"}


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m bench.sweep",
                                 description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default="fus2net,resnet50",
                    help="comma-separated registered models, one set of curves each")
    ap.add_argument("--epochs", type=int, default=40, help="longest curve (epochs)")
    ap.add_argument("--cv-folds", type=int, default=5, help="K of the K-fold CV (default 5)")
    ap.add_argument("--use-folds", default="0,1", help="which CV folds to train (default 0,1)")
    ap.add_argument("--tolerance", type=float, default=0.02,
                    help="plateau: within this much of the best running-mean AUC (default 0.02, "
                         "about the epoch-to-epoch noise of a 100-image validation fold)")
    ap.add_argument("--window", type=int, default=5, help="running-mean window in epochs")
    ap.add_argument("--out", type=Path, default=RESULTS_DIR / "sweep",
                    help="folder for curves.csv, curves_pooled.csv, plateau.csv and "
                         "learning_curves.png (default: results/sweep)")
    ap.epilog = passed_on_help(ap, replaced=("--model", "--folds"))  # --models, --cv-folds
    return ap


def parse_folds(text: str) -> list[int]:
    try:
        return [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise BenchError(f"--use-folds {text!r}: give fold numbers, e.g. 0,1") from None


@cli_main(flags=FLAGS)
def main(argv: list[str] | None = None) -> int:
    args, passthrough = build_parser().parse_known_args(argv)
    if args.epochs < 1 or args.window < 1:
        raise BenchError("--epochs and --window must be >= 1")
    folds = parse_folds(args.use_folds)
    given = argv if argv is not None else sys.argv[1:]
    command = " ".join(["python -m bench.sweep", shlex.join(map(portable, given))]).strip()
    base = replace(options_from_argv(passthrough), folds=args.cv_folds, epochs=args.epochs,
                   out=args.out, command=command)
    runs = [replace(base, model=resolve_model(m)) for m in args.models.split(",") if m]
    plateau = sweep(runs, folds, args.out, args.tolerance, args.window)
    print(to_markdown(plateau))
    return 0
