"""Score finished runs on external sets without retraining (docs/protocol.md, External
validation); the library behind ``python -m bench.score`` (:mod:`bench.cli.score`).

``bench.run --external`` scores a finished run only when the run's configuration hash matches,
which includes the training-code version: after any change to that code the same command trains
a new run. This command scores the runs as they are — each run's recorded settings and final
weights, the unchanged threshold 0.5 — with :func:`bench.engine.external.score_external`, the same path
``bench.engine.runner`` takes (the training-copy check against the run's own training images included), so
runs made by an older checkout can be scored on a data set added since (e.g. BrEaST-Lesions_USG).
A run trained on cleaned images (``--annotations clean``) is scored on cleaned copies, as
``bench.run`` scored it; a set a run already scored on other images is refused, never replaced.
A run whose data or weights are not here is one line and the others go on.
"""

from __future__ import annotations

from pathlib import Path

from bench.core.errors import BenchError
from bench.core.provenance import from_portable
from bench.data.datasets import load_index
from bench.data.manifest import read_manifest
from bench.engine.external import score_external
from bench.engine.runfolder import RunFolder, RunStatus
from bench.engine.runner import (
    as_seen,
    check_adapt_bn,
    check_not_replaced,
    external_sets,
    run_model,
)
from bench.engine.spec import Execution
from models import get_model_config


def score_run(run_dir: Path, external: list[str], device: str,
              adapt_bn: tuple[str, ...] = ("none",)) -> dict[str, dict]:
    """Score one finished run folder on each external set; returns name → its metrics. The sets
    are read, checked and seen exactly as ``bench.run`` does (:func:`bench.engine.runner.external_sets`:
    a run trained on cleaned images is scored on cleaned copies), and a set the run already scored
    on other images is refused, never replaced (:func:`bench.engine.runner.check_not_replaced`).
    Each set is scored once per ``adapt_bn`` mode (:mod:`bench.engine.adaptation`); an adapted
    scoring is keyed ``<set>/adapt-bn-<mode>``."""
    check_adapt_bn(adapt_bn, external)
    folder = RunFolder(run_dir)
    run = folder.load()
    if run is None or run.record.status != RunStatus.COMPLETE:
        raise BenchError(f"{run_dir}: not a finished run")
    if run.evaluation == "allcv":
        raise BenchError(f"{run_dir}: an all-image run (every image scored once by grouped "
                         "K-fold) keeps no final model to score external sets with; score a "
                         "held-out run of the model")
    run_model(run.record, run_dir.name)  # a model from a file, module or plugin: its record
    try:
        spec = run.spec
    except BenchError as exc:
        raise BenchError(f"{run_dir.name}: {exc}") from None
    data = run.data_arg
    index = load_index(None if data is None else from_portable(data))
    manifest = read_manifest(folder.split_file)
    ex = Execution(device=device, channels_last=get_model_config(spec.model).channels_last(device),
                   progress=False)
    sets = external_sets(external, index, manifest, spec.annotations)
    for ext in sets:  # every set before any scoring
        check_not_replaced(folder, ext)
    seen = as_seen(index, list(manifest.path[manifest.split != "excluded"]), spec.annotations)
    return {(ext.name if mode == "none" else f"{ext.name}/adapt-bn-{mode}"):
            score_external(folder, spec, ex, ext, seen, manifest, mode)
            for ext in sets for mode in adapt_bn}


def run_folders(runs: Path) -> list[Path]:
    """``runs`` itself when it is a run folder, else the run folders in it."""
    if not runs.is_dir():
        raise BenchError(f"`runs`={runs}: not a folder")
    folders = [runs] if RunFolder(runs).has_config() else sorted(
        d for d in runs.iterdir() if RunFolder(d).has_config())
    if not folders:
        raise BenchError(f"`runs`={runs}: no run folders (config.json) in it")
    return folders
