"""Read finished run folders (the report's only input)."""

from __future__ import annotations

import json
from pathlib import Path

from bench.core.errors import BenchError
from bench.engine.runfolder import InvalidRun, Run, RunFolder, load_run


def unloaded_reason(folder: Path) -> str:
    """Why ``load_run`` gave ``None`` for ``folder`` (said by the report, never silent)."""
    return RunFolder(folder).unloaded_reason()


def load_runs(runs_dir: Path, skip_invalid: bool = False,
              skipped: list[str] | None = None, notes: list[str] | None = None,
              evaluations: tuple[str, ...] = ("heldout",)) -> list[Run]:
    """All finished runs under ``runs_dir`` of the given ``evaluations`` (``heldout``: the
    paper's protocol, what every reader but the report's all-image section uses; ``allcv``: the
    all-image runs, :mod:`bench.engine.allimage`), sorted by folder name (deterministic). A run
    whose outputs fail their checksums stops the report, or with ``skip_invalid`` is left out
    and its reason appended to ``skipped``. Folders that hold no finished run are appended to
    ``notes`` (hidden folders aside)."""
    if not runs_dir.is_dir():
        raise BenchError(f"`runs` {runs_dir}: not a folder of run results")
    runs = []
    for f in sorted(runs_dir.iterdir()):
        if not f.is_dir() or f.name.startswith("."):
            continue
        try:
            r = load_run(f)
        except InvalidRun as exc:
            if not skip_invalid:
                raise
            if skipped is not None:
                skipped.append(str(exc).split(";")[0])
            continue
        if r is not None:
            if r.evaluation in evaluations:
                runs.append(r)
        elif notes is not None:
            notes.append(unloaded_reason(f))
    if not runs:
        raise BenchError(f"`runs` {runs_dir}: no finished runs found (run python -m bench.run first)")
    return runs


# Settings that do not define *which* configuration a run belongs to: its seed (aggregated over)
# and the training-code version (a mix is warned about in the report, not split into rows).
NOT_CONFIG = ("seed", "code_version")


def config_key(run: Run) -> str:
    """The run's full configuration without its seed (runs that differ only in seed share it)."""
    settings = {k: v for k, v in run.settings.items() if k not in NOT_CONFIG}
    return json.dumps(settings, sort_keys=True, default=str)


def by_configuration(runs: list[Run]) -> dict[str, list[Run]]:
    """Runs grouped by configuration, one run per seed (the latest finished), seeds ascending."""
    groups: dict[str, dict[int, Run]] = {}
    for r in sorted(runs, key=lambda r: r.record.finished):
        groups.setdefault(config_key(r), {})[r.seed] = r
    return {k: [seeds[s] for s in sorted(seeds)] for k, seeds in groups.items()}


def provenance_warnings(runs: list[Run]) -> list[str]:
    """Mixed training-code versions or uncommitted code among ``runs`` (said in every report)."""
    notes = []
    versions = sorted({r.record.settings.code_version or "unrecorded" for r in runs})
    if len(versions) > 1:
        notes.append(f"runs come from {len(versions)} training-code versions "
                     f"({', '.join(versions)}); rerun the older ones to compare like with like")
    dirty = sorted(r.path.name for r in runs if str(r.record.git_revision or "").endswith("+dirty"))
    if dirty:
        notes.append(f"{len(dirty)} run(s) were made from a checkout with uncommitted changes "
                     f"(e.g. {dirty[0]})")
    return notes
