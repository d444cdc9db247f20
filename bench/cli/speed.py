"""``python -m bench.speed``: training throughput of the common naive pipeline and of ours
(:mod:`bench.engine.speed`); writes ``speed.csv`` and ``speed.md`` into ``--out``."""

from __future__ import annotations

import argparse
from pathlib import Path

from bench.cli import number
from bench.core.atomic import write_csv, write_text
from bench.core.errors import BenchError, cli_main, ensure_writable
from bench.core.paths import RESULTS_DIR
from bench.core.tablefmt import to_markdown
from bench.engine.contention import ContentionOptions, contention_header, measure_contention
from bench.engine.device import resolve_device
from bench.engine.spec import REFERENCE
from bench.engine.speed import SpeedOptions, measure, parse_members, write_speed
from bench.engine.threads import affinity_cpus


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bench.speed", description=__doc__.split("\n\n")[0])
    p.add_argument("--models", default=REFERENCE,
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
    p.add_argument("--contention", action="store_true",
                   help="instead: time training steps alone and beside busy processes of the same "
                        "priority, under each OpenMP waiting rule and at 1 thread (writes "
                        "speed_contention.csv and .md; docs/engines.md)")
    p.add_argument("--busy", default="0,1,2",
                   help="with --contention: the numbers of busy processes to time beside")
    p.add_argument("--repeats", type=number("--repeats", above=True), default=3,
                   help="with --contention: fresh processes per cell (the median is reported)")
    p.add_argument("--out", type=Path, default=RESULTS_DIR,
                   help="folder for speed.csv and speed.md (default: results/)")
    return p


@cli_main
def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.contention:
        return contention(args)
    options = SpeedOptions(device=resolve_device(args.device), models=tuple(args.models.split(",")),
                           data=args.data, img_size=args.img_size, steps=args.steps,
                           warmup=args.warmup, workers=args.workers, members=args.members)
    table, header = measure(options)
    write_speed(args.out, table, header)
    print(header)
    return 0


def contention(args: argparse.Namespace) -> int:
    """``--contention``: the table of :mod:`bench.engine.contention` into ``--out``."""
    try:
        busy = tuple(sorted({int(b) for b in args.busy.split(",")}))
    except ValueError:
        busy = (-1,)
    if any(b < 0 or b > 8 for b in busy):
        raise BenchError(f"--busy {args.busy!r}: give numbers of busy processes from 0 to 8, "
                         "e.g. 0,1,2")
    model = args.models.split(",")[0]
    members = parse_members(args.members, "cpu")  # [] with --members 0: no stacked engine
    o = ContentionOptions(model=model, img_size=args.img_size or 64, steps=args.steps,
                          warmup=args.warmup, busy=busy, repeats=args.repeats,
                          members=members[0] if members else 0,
                          engines=("reference", "stacked") if members else ("reference",))
    cpus = affinity_cpus()
    header = contention_header(o, cpus)
    ensure_writable(args.out)
    table = measure_contention(o, cpus)
    write_csv(args.out / "speed_contention.csv", table)
    write_text(args.out / "speed_contention.md", f"# Training speed beside busy processes\n\n"
               f"{header}\n\n{to_markdown(table)}")
    print(header)
    return 0
