"""Read finished run folders (the report's only input)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from bench.errors import BenchError
from bench.provenance import file_sha256


@dataclass
class Run:
    """One finished run folder."""

    path: Path
    config: dict
    metrics: dict
    predictions: pd.DataFrame
    cv: pd.DataFrame
    # external set name → (its predictions, its metrics.json), see bench.external
    external: dict[str, tuple[pd.DataFrame, dict]] = field(default_factory=dict)

    @property
    def model(self) -> str:
        return self.config["settings"]["model"]

    @property
    def settings(self) -> dict:
        return self.config["settings"]

    @property
    def data_arg(self) -> str | None:
        """The ``--data`` the run was started with, as recorded (portable); ``None``: the phantom."""
        command = str(self.config.get("command", "")).split()
        return command[command.index("--data") + 1] if "--data" in command[:-1] else None

    @property
    def test(self) -> pd.DataFrame:
        return self.predictions[self.predictions.split == "test"].sort_values("id").reset_index(drop=True)


def load_run(folder: Path) -> Run | None:
    """A run folder with a finished ``config.json`` (complete or failed); ``None`` otherwise."""
    cfg_path = folder / "config.json"
    if not cfg_path.is_file():
        return None
    try:
        config = json.loads(cfg_path.read_text())
    except ValueError:
        raise BenchError(f"{cfg_path}: not valid JSON; delete the run folder or rerun it") from None
    if config.get("status") not in ("complete", "failed"):
        return None
    verify_outputs(folder, config)
    try:
        metrics = json.loads((folder / "metrics.json").read_text())
        preds = pd.read_csv(folder / "predictions.csv", dtype={"id": str, "path": str})
        cv_path = folder / "cv_metrics.csv"
        cv = pd.read_csv(cv_path) if cv_path.is_file() and cv_path.stat().st_size > 1 \
            else pd.DataFrame()
    except (OSError, ValueError) as exc:
        name = getattr(exc, "filename", None) or "a result file"
        raise InvalidRun(f"{folder.name}: cannot read {Path(name).name} ({type(exc).__name__}); "
                         "rerun that run, or pass --skip-invalid-runs to leave it out of the "
                         "report") from None
    test = preds[preds.split == "test"]
    if len(test) and test.label.nunique() < 2:
        raise InvalidRun(f"{folder.name}: its test set has only "
                         f"{'malignant' if test.label.iloc[0] == 1 else 'benign'} images, so AUC, "
                         "sensitivity and specificity are undefined; rerun it on a split with "
                         "both classes, or pass --skip-invalid-runs to leave it out")
    external = {}
    for ext in sorted((folder / "external").glob("*/metrics.json")):
        try:
            external[ext.parent.name] = (
                pd.read_csv(ext.parent / "predictions.csv", dtype={"id": str, "path": str,
                                                                    "group": str},
                            keep_default_na=False), json.loads(ext.read_text()))
        except (OSError, ValueError) as exc:
            raise InvalidRun(f"{folder.name}: cannot read external/{ext.parent.name} "
                             f"({type(exc).__name__}); score it again with --external") from None
    return Run(folder, config, metrics, preds, cv, external)


WEIGHTS = "model.safetensors"


def verify_outputs(folder: Path, config: dict) -> None:
    """Every output whose SHA-256 the run recorded must still have it (not edited or truncated).
    The weights may be absent (committed results sets leave them out of git; the report never
    reads them), but weights that are present must match."""
    for name, sha in config.get("outputs", {}).items():
        path = folder / name
        if name == WEIGHTS and not path.exists():
            continue
        if not path.is_file() or file_sha256(path) != sha:
            state = "is missing" if not path.is_file() else "does not match its checksum"
            raise InvalidRun(f"{folder.name}/{name} {state} in config.json (changed, truncated "
                             "or deleted after the run); rerun that run, or pass "
                             "--skip-invalid-runs to leave it out of the report")


class InvalidRun(BenchError):
    """A run folder whose recorded outputs were changed after the run."""


def load_runs(runs_dir: Path, skip_invalid: bool = False,
              skipped: list[str] | None = None) -> list[Run]:
    """All finished runs under ``runs_dir``, sorted by folder name (deterministic). A run whose
    outputs fail their checksums stops the report, or with ``skip_invalid`` is left out and its
    reason appended to ``skipped``."""
    if not runs_dir.is_dir():
        raise BenchError(f"--runs {runs_dir}: not a folder of run results")
    runs = []
    for f in sorted(runs_dir.iterdir()):
        if not f.is_dir():
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
            runs.append(r)
    if not runs:
        raise BenchError(f"--runs {runs_dir}: no finished runs found (run python -m bench.run first)")
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
    for r in sorted(runs, key=lambda r: r.config.get("finished", "")):
        groups.setdefault(config_key(r), {})[int(r.settings.get("seed", 0))] = r
    return {k: [seeds[s] for s in sorted(seeds)] for k, seeds in groups.items()}


def provenance_warnings(runs: list[Run]) -> list[str]:
    """Mixed training-code versions or uncommitted code among ``runs`` (said in every report)."""
    notes = []
    versions = sorted({r.settings.get("code_version", "unrecorded") for r in runs})
    if len(versions) > 1:
        notes.append(f"runs come from {len(versions)} training-code versions "
                     f"({', '.join(versions)}); rerun the older ones to compare like with like")
    dirty = sorted(r.path.name for r in runs if str(r.config.get("git_revision", "")).endswith("+dirty"))
    if dirty:
        notes.append(f"{len(dirty)} run(s) were made from a checkout with uncommitted changes "
                     f"(e.g. {dirty[0]})")
    return notes
