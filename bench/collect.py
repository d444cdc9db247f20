"""Read finished run folders (the report's only input)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from bench.errors import BenchError


@dataclass
class Run:
    """One finished run folder."""

    path: Path
    config: dict
    metrics: dict
    predictions: pd.DataFrame
    cv: pd.DataFrame

    @property
    def model(self) -> str:
        return self.config["settings"]["model"]

    @property
    def settings(self) -> dict:
        return self.config["settings"]

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
    metrics = json.loads((folder / "metrics.json").read_text())
    preds = pd.read_csv(folder / "predictions.csv", dtype={"id": str, "path": str})
    cv_path = folder / "cv_metrics.csv"
    cv = pd.read_csv(cv_path) if cv_path.is_file() and cv_path.stat().st_size > 1 else pd.DataFrame()
    return Run(folder, config, metrics, preds, cv)


def load_runs(runs_dir: Path) -> list[Run]:
    """All finished runs under ``runs_dir``, sorted by folder name (deterministic)."""
    if not runs_dir.is_dir():
        raise BenchError(f"--runs {runs_dir}: not a folder of run results")
    runs = [r for f in sorted(runs_dir.iterdir()) if f.is_dir() and (r := load_run(f))]
    if not runs:
        raise BenchError(f"--runs {runs_dir}: no finished runs found (run python -m bench.run first)")
    return runs
