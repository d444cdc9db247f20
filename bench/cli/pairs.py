"""``python -m bench.pairs sample|fit``: the reviewed pairs behind the same-lesion rule
(:mod:`bench.data.pairs`)."""

from __future__ import annotations

import argparse
from pathlib import Path

from bench.cli import number
from bench.core.errors import cli_main
from bench.data.datasets import KINDS
from bench.data.lesion import RULE_FILE
from bench.data.pairs import (
    FitSettings,
    add_verdicts,
    fit_reviewed,
    sample_for_review,
    sample_recheck,
)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bench.pairs",
                                description="the reviewed pairs behind the same-lesion rule")
    sub = p.add_subparsers(dest="command", required=True,
                         help="sample: draw pairs and contact sheets to judge by eye; recheck: "
                              "the second look (near file numbers, pairs just below the rule's "
                              "threshold); fit: fit and measure the rule on the judged pairs")
    add = sub.add_parser("add", help="add judges' verdicts on drawn pairs to the reviewed CSV")
    add.add_argument("--reviewed", type=Path, required=True,
                     help="the reviewed CSV to extend (pairs already there are refused)")
    add.add_argument("--key", type=Path, required=True,
                     help="the drawn pairs (the CSV bench.pairs sample or recheck wrote)")
    add.add_argument("--verdicts", type=_judges, required=True,
                     help="NAME=CSV[,NAME=CSV...]: each judge's verdicts (pair, verdict, "
                          "confidence, reason)")
    add.add_argument("--adjudication", type=Path, default=None,
                     help="CSV (pair, verdict, note) settling pairs the judges disagree on "
                          "(others: unsure)")
    add.add_argument("--round", default="2", help="label of this review round")
    for name in ("sample", "recheck", "fit"):
        q = sub.add_parser(name, help={"sample": "draw candidate pairs and their contact sheets "
                                             "to judge by eye",
                                   "recheck": "draw every unjudged pair of one class with file "
                                              "numbers at most --max-gap apart and every "
                                              "candidate with rule p in --band, on blind sheets",
                                   "fit": "fit the same-lesion rule on the judged pairs and "
                                          "measure it by cross-validation"}[name])
        q.add_argument("--data", type=Path, default=None, help="data root (default: phantom)")
        q.add_argument("--dataset", default="auto", choices=KINDS,
                       help="data layout (auto-detected by default)")
        q.add_argument("--neighbours", type=number("--neighbours", above=True), default=10,
                       help="candidate pairs: each image's N nearest by either contrast score")
        q.add_argument("--force", action="store_true",
                       help="replace an existing output file")
    s, f, r = sub.choices["sample"], sub.choices["fit"], sub.choices["recheck"]
    r.add_argument("--out", type=Path, required=True,
                   help="folder of blind sheets; the key CSV (why each pair was drawn) beside it")
    r.add_argument("--reviewed", type=Path, required=True,
                   help="CSV of the pairs judged so far (left out of the draw)")
    r.add_argument("--max-gap", type=number("--max-gap"), default=3,
                   help="pairs of one class whose file numbers are at most this far apart")
    r.add_argument("--band", type=_band, default=(0.1, 0.3),
                   help="LO,HI: candidate pairs with the committed rule's p in [LO, HI)")
    r.add_argument("--seed", type=number("--seed"), default=11, help="seed of the shuffle")
    s.add_argument("--out", type=Path, required=True, help="folder of sheets; CSV beside it")
    s.add_argument("--per-bin", type=number("--per-bin"), default=5,
                   help="pairs drawn from each quantile bin of every measure")
    s.add_argument("--random", type=number("--random"), default=20,
                   help="random pairs beside the candidates (fewer when fewer exist)")
    s.add_argument("--seed", type=number("--seed"), default=7, help="seed of the draw")
    f.add_argument("--reviewed", type=Path, required=True,
                   help="CSV of judged pairs (verdict: same, different or unsure)")
    f.add_argument("--out", type=Path, default=RULE_FILE,
                   help="the fitted rule (JSON) with its cross-validated precision and recall")
    f.add_argument("--embed-side", type=number("--embed-side", above=True), default=128,
                   help="image side in pixels for the EfficientNet-Lite0 embedding")
    f.add_argument("--threshold", type=number("--threshold", float, above=True, below=1),
                   default=0.5,
                   help="p(same lesion) at which pairs link and average-linkage groups are cut")
    return p


def _judges(text: str) -> dict[str, Path]:
    out = {}
    for part in text.split(","):
        name, sep, path = part.partition("=")
        if not sep or not name.strip() or not path.strip():
            raise argparse.ArgumentTypeError(f"--verdicts {part!r}: give NAME=CSV, e.g. J1=j1.csv")
        out[name.strip()] = Path(path.strip())
    return out


def _band(text: str) -> tuple[float, float]:
    try:
        lo, hi = (float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--band {text!r}: give LO,HI, e.g. 0.1,0.3") from None
    if not 0 <= lo < hi <= 1:
        raise argparse.ArgumentTypeError(f"--band {text!r}: give 0 <= LO < HI <= 1")
    return lo, hi


@cli_main
def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "fit":
        settings = FitSettings(args.data, args.dataset, args.neighbours, args.embed_side,
                               args.threshold)
        v = fit_reviewed(args.reviewed, args.out, settings, args.force)
        p, g = v["pairs"][f"threshold {v['threshold']:g}"], v["groups_average_linkage"]
        print(f"wrote {args.out}: pairs precision {p['precision']} recall {p['recall']}; groups "
              f"(average linkage) precision {g['precision']} recall {g['recall']}, largest group "
              f"{g['largest_group_over_folds']}")
        return 0
    if args.command == "add":
        n, counts = add_verdicts(args.reviewed, args.key, args.verdicts, args.adjudication,
                                 args.round)
        counted = ", ".join(f"{v} {k}" for k, v in sorted(counts.items()))
        print(f"added {n} judged pairs to {args.reviewed} ({counted}); refit with "
              "python -m bench.pairs fit")
        return 0
    if args.command == "recheck":
        csv, n_pairs, n_sheets = sample_recheck(
            args.out, FitSettings(args.data, args.dataset, args.neighbours), args.reviewed,
            args.max_gap, args.band, args.seed, force=args.force)
        print(f"wrote {csv} ({n_pairs} pairs: the key) and {n_sheets} blind contact sheets in "
              f"{args.out}/; judge the sheets, then add the verdicts to the reviewed CSV")
        return 0
    csv, n_pairs, n_sheets = sample_for_review(
        args.out, FitSettings(args.data, args.dataset, args.neighbours), args.per_bin,
        args.random, args.seed, args.force)
    print(f"wrote {csv} ({n_pairs} pairs) and {n_sheets} contact sheets in {args.out}/; "
          "fill in the verdict column, then run python -m bench.pairs fit")
    return 0
