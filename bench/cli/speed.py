"""``python -m bench.speed``: training throughput of the common naive pipeline and of ours
(:mod:`bench.engine.speed`); writes ``speed.csv`` and ``speed.md`` into ``--out``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from bench.core.errors import cli_main, number
from bench.core.paths import RESULTS_DIR
from bench.engine.device import resolve_device
from bench.engine.speed import SpeedOptions, measure, write_speed


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bench.speed", description=__doc__.split("\n\n")[0])
    p.add_argument("--models", default="fus2net",
                   help="comma-separated registered models to time")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"],
                   help="auto = cuda when available, else cpu")
    p.add_argument("--data", type=Path, default=None, help="images to time on (default: synthetic)")
    p.add_argument("--img-size", type=number("--img-size", above=True), default=None,
                   help="default: each model's input size")
    p.add_argument("--steps", type=number("--steps", above=True), default=30,
                   help="timed training steps per pipeline (default 30)")
    p.add_argument("--warmup", type=number("--warmup"), default=5,
                   help="untimed steps first (default 5; 0: none)")
    p.add_argument("--workers", type=number("--workers"), default=None,
                   help="naive DataLoader workers")
    p.add_argument("--members", default=None,
                   help="models trained at once by the stacked engine, one row each (e.g. 4,11; "
                        "default: 11 = 10 folds + final fit on CUDA, 2 on CPU; 0 skips it)")
    p.add_argument("--out", type=Path, default=RESULTS_DIR,
                   help="folder for speed.csv and speed.md (default: results/)")
    return p


@cli_main
def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    options = SpeedOptions(device=resolve_device(args.device), models=tuple(args.models.split(",")),
                           data=args.data, img_size=args.img_size, steps=args.steps,
                           warmup=args.warmup, workers=args.workers, members=args.members)
    table, header = measure(options)
    write_speed(args.out, table, header)
    print(header)
    return 0


if __name__ == "__main__":
    sys.exit(main())
