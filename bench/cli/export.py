"""``python -m bench.export mlflow --runs DIR [--tracking-uri URI]``: finished runs into an MLflow
tracking store (the library call is :func:`bench.reporting.tracking.export_runs`).

Each run becomes one MLflow run: its settings as params, its test, CV, external and report numbers
as metrics, model/seed/code version/configuration as tags, its predictions, config, metrics and
the report's rows for it as artefacts. Exporting again skips unchanged runs and replaces changed
ones. The default store is SQLite in ``mlflow/`` beside ``--runs`` (or ``$MLFLOW_TRACKING_URI``);
the run folders are only read. Needs ``pip install -e ".[mlflow]"``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from bench.core.errors import cli_main
from bench.core.paths import RESULTS_DIR


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bench.export", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="tracker", required=True,
                           help="the run tracker to write to")
    m = sub.add_parser("mlflow", help="export to an MLflow tracking store",
                       description=__doc__.split("\n\n")[1])
    m.add_argument("--runs", type=Path, default=RESULTS_DIR / "runs",
                   help="the folder of run folders to export (read only)")
    m.add_argument("--tracking-uri", default=None,
                   help="MLflow store: sqlite:///FILE.db or a server's http(s) address (default: "
                        "$MLFLOW_TRACKING_URI, else sqlite in mlflow/ beside --runs)")
    m.add_argument("--experiment", default=None,
                   help="MLflow experiment (default: fus2bench/<the folder above runs/>)")
    m.add_argument("--skip-invalid-runs", action="store_true",
                   help="leave out runs whose outputs fail their recorded checksums")
    m.add_argument("--quiet", action="store_true", help="no line per run")
    return p


@cli_main
def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from bench.reporting.tracking import export_runs  # after argparse: --help stays fast

    def progress(k: int, n: int, name: str, outcome: str) -> None:
        if not args.quiet:
            print(f"[{k}/{n}] {name}: {outcome}", file=sys.stderr)

    r = export_runs(args.runs, args.tracking_uri, experiment=args.experiment,
                    skip_invalid=args.skip_invalid_runs, progress=progress)
    print(f"exported {r.total} runs to {r.tracking_uri} (experiment {r.experiment!r}, id "
          f"{r.experiment_id}): {len(r.created)} new, {len(r.updated)} updated, "
          f"{len(r.skipped)} unchanged, in {r.seconds:.0f} s")
    return 0
