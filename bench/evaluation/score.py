"""``python -m bench.score --runs DIR --external B[,C...]``: score finished runs on external sets
without retraining (docs/protocol.md, External validation).

``bench.run --external`` scores a finished run only when the run's configuration hash matches,
which includes the training-code version: after any change to that code the same command trains
a new run. This command scores the runs as they are — each run's recorded settings and final
weights, the unchanged threshold 0.5 — with :func:`bench.evaluation.external.score_external`, the same path
``bench.engine.runner`` takes (the training-copy check against the run's own training images included), so
runs made by an older checkout can be scored on a data set added since (e.g. BrEaST-Lesions_USG).
A run whose data or weights are not here is one line and the others go on.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

from bench.core.errors import BenchError, cli_main
from bench.core.provenance import from_portable
from bench.data.datasets import load_index
from bench.data.manifest import read_manifest
from bench.engine.device import resolve_device
from bench.engine.spec import Execution, RunSpec
from bench.evaluation.external import resolve_external, score_external
from bench.reporting.runs import load_run
from models import get_model_config


def run_spec(settings: dict) -> RunSpec:
    """A run's :class:`RunSpec` from its recorded ``settings`` (``config.json``)."""
    fields = dataclasses.fields(RunSpec)
    names = [f.name for f in fields]
    # a field with a default is left out of the record while it has its default (RunSpec.to_dict)
    optional = {f.name for f in fields if f.default is not dataclasses.MISSING}
    missing = [n for n in names if n not in settings and n not in optional]
    if missing:
        raise BenchError(f"settings lack {', '.join(missing)} (a run of an older format)")
    values = {n: settings[n] for n in names if n in settings}
    values["stacked"] = settings.get("engine") == "stacked"
    return RunSpec(**values)


def score_run(run_dir: Path, external: list[str], device: str) -> dict[str, dict]:
    """Score one finished run folder on each external set; returns name → its metrics."""
    run = load_run(run_dir)
    if run is None or run.config.get("status") != "complete":
        raise BenchError(f"{run_dir}: not a finished run")
    spec = run_spec(run.settings)
    data = run.data_arg
    index = load_index(None if data is None else from_portable(data))
    manifest = read_manifest(run_dir / "split.csv")
    ex = Execution(device=device, channels_last=get_model_config(spec.model).channels_last(device),
                   progress=False)
    from bench.engine.runner import (
        check_not_own_images,  # the run module imports this one's neighbours
    )

    out = {}
    for ext in resolve_external(external):
        check_not_own_images(ext, index, manifest)
        out[ext.name] = score_external(run_dir, spec, ex, ext, index, manifest)
    return out


@cli_main
def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.score", description=__doc__.split("\n\n")[0])
    p.add_argument("--runs", type=Path, required=True, help="a run folder or a folder of runs")
    p.add_argument("--external", required=True,
                   help="comma-separated external data sets (paths, NAME=PATH or synthetic:B)")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    args = p.parse_args(argv)
    if not args.runs.is_dir():
        raise BenchError(f"--runs {args.runs}: not a folder")
    folders = [args.runs] if (args.runs / "config.json").is_file() else sorted(
        d for d in args.runs.iterdir() if (d / "config.json").is_file())
    if not folders:
        raise BenchError(f"--runs {args.runs}: no run folders (config.json) in it")
    device = resolve_device(args.device)
    sets = [x for x in args.external.split(",") if x]
    failed = 0
    for folder in folders:
        try:
            for name, m in score_run(folder, sets, device).items():
                t = m["test"]
                print(f"{folder.name} → {name}: n={t['n']}, AUC {t['auc']:.3f}, accuracy "
                      f"{t['accuracy']:.3f}, {m['training_copies']} training copies")
        except BenchError as exc:
            print(f"error: {folder.name}: {exc}", file=sys.stderr)
            failed += 1
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
