"""``python -m bench.evaluate``: score outside predictions on a results set's held-out test set.

``--predictions FILE.csv --name NAME [--runs RUNS_DIR] [--out DIR]`` checks the file strictly
against the set's split manifest, then writes to ``--out`` (default ``results/outside/NAME``, a
folder of its own: NAME must be one plain folder name; never into a results set, a report or runs)
the model's Table 3 row, its intervals, the leaderboard, its calibration, ROC and calibration
figures, ``evaluation.json`` and a README (:func:`bench.reporting.evaluate.evaluate`; all or
nothing, and a folder holding an evaluation of other predictions is never overwritten).
``--template`` writes the ids to predict. See docs/protocol.md, "Outside predictions".
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from bench.cli import number
from bench.core.errors import BenchError, cli_main
from bench.core.paths import RESULTS_DIR
from bench.core.provenance import portable
from bench.reporting.evaluate import evaluate, safe_name, summary, write_template

OUTSIDE_DIR = RESULTS_DIR / "outside"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bench.evaluate", description=__doc__.split("\n\n")[0])
    p.add_argument("--predictions", type=Path, help="CSV of id,prob_malignant (optional label, "
                   "seed, split, fold, path)")
    p.add_argument("--name", help="the outside model's name in the tables")
    p.add_argument("--runs", type=Path, default=RESULTS_DIR / "runs",
                   help="run folders of the results set to compare against")
    p.add_argument("--out", type=Path, default=None,
                   help="output folder (default: results/outside/NAME; --template: results/outside)")
    p.add_argument("--template", action="store_true",
                   help="write predictions_template.csv with the ids to predict and "
                        "training_ids.csv with the ids to train and tune on, then stop")
    p.add_argument("--profile", default=None, help="only runs of this profile")
    p.add_argument("--n-boot", type=number("--n-boot", above=True), default=2000,
                   help="bootstrap resamples for the intervals")
    p.add_argument("--seed", type=number("--seed"), default=0, help="bootstrap seed")
    return p


def _template(args: argparse.Namespace) -> int:
    path, ids, rs = write_template(args.runs, args.out or OUTSIDE_DIR, args.profile)
    train = int((rs.manifest.split == "train").sum())
    print(f"wrote {path}: the {len(rs.test_ids)} held-out test ids of {args.runs} (split manifest "
          f"SHA-256 {rs.manifest_sha256[:16]}…). Fill prob_malignant with P(malignant) in [0, 1] "
          "for every row; add a seed column for several training seeds (rows repeated per seed). "
          f"Train and tune only on the {train} ids that {ids} marks train (with their CV fold and "
          "group), never on the held-out ones")
    return 0


@cli_main
def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.template:
        return _template(args)
    for opt, value in (("--predictions", args.predictions), ("--name", args.name)):
        if value is None:
            raise BenchError(f"{opt} is required (or --template to get the ids to predict)")
    out = args.out or OUTSIDE_DIR / safe_name(args.name)
    given = argv if argv is not None else sys.argv[1:]
    command = " ".join(["python -m bench.evaluate", shlex.join(map(portable, given))])
    record = evaluate(args.predictions, args.name, args.runs, out, args.n_boot, args.seed,
                      args.profile, command)
    print(summary(record))
    print(f"wrote {out}: README.md, row, intervals, leaderboard, calibration (.csv/.md/.tex), "
          "roc.png, calibration.png, evaluation.json")
    return 0
