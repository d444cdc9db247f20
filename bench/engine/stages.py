"""Stage files, their verification and resume (SPEC §3: the protocol's stages).

Each stage (``fold_0`` … ``fold_{K-1}``, ``final``) writes its predictions, metrics and (for the
final fit, or every stage with ``--save-fold-weights``) weights atomically into
``<run>/stages/<stage>/`` as soon as it ends, then a ``done.json`` holding the run's config hash and
the files' SHA-256: a rerun reuses every stage whose ``done.json`` matches. A stage that failed
(loss NaN/inf, non-finite weights or predictions) writes ``failed.json`` instead.
:func:`run_problem` is the one check of a finished run's files, used before a run is reused.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from safetensors.torch import save_file

from bench.core.atomic import write_atomic, write_csv, write_json
from bench.core.provenance import file_sha256
from bench.evaluation.metrics import binary_metrics

PRED_COLUMNS = ["id", "path", "label", "prob_malignant", "split", "fold"]


@dataclass
class StageResult:
    name: str
    status: str  # "done" | "reused" | "failed"
    predictions: pd.DataFrame | None
    metrics: dict | None
    seconds: float
    message: str = ""


def fold_number(stage: str) -> int:
    """``fold_k`` → k; the final fit → -1 (its predictions' ``fold`` value)."""
    return -1 if stage == "final" else int(stage.split("_")[1])


def stage_valid(folder: Path, run_hash: str) -> bool:
    """A stage folder whose ``done.json`` matches the run and every file its checksum."""
    done = folder / "done.json"
    if not done.is_file():
        return False
    try:
        info = json.loads(done.read_text())
        return info.get("config_hash") == run_hash and all(
            (folder / name).is_file() and file_sha256(folder / name) == sha
            for name, sha in info["files"].items())
    except (OSError, ValueError, KeyError):
        return False


def run_problem(run_dir: Path, cfg: dict, run_hash: str) -> str | None:
    """What is wrong with a finished run's files (``None``: every recorded checksum matches)."""
    for name, sha in cfg.get("outputs", {}).items():
        path = run_dir / name
        if not path.is_file():
            return f"{name} is missing"
        if file_sha256(path) != sha:
            return f"{name} does not match its recorded checksum"
    for stage in cfg.get("timings", {}).get("stages", {}):
        if not stage_valid(run_dir / "stages" / stage, run_hash):
            return f"stage {stage}'s files are missing or do not match their checksums"
    return None


def reuse_stage(name: str, stage_dir: Path) -> StageResult:
    preds = pd.read_csv(stage_dir / "predictions.csv", dtype={"id": str, "path": str})
    metrics = json.loads((stage_dir / "metrics.json").read_text())
    return StageResult(name, "reused", preds, metrics, 0.0)


def write_failed(name: str, folder: Path, run_hash: str, message: str, epoch: int, step: int,
                 t0: float) -> StageResult:
    write_json(folder / "failed.json", {"config_hash": run_hash, "stage": name, "epoch": epoch,
                                        "step": step, "message": message})
    return StageResult(name, "failed", None, None, time.perf_counter() - t0, message)


def write_done(name: str, folder: Path, run_hash: str, rows: pd.DataFrame, probs: np.ndarray,
               model: torch.nn.Module | None, info: dict, seconds: float) -> StageResult:
    """A finished stage's files, written atomically, ``done.json`` last."""
    final = name == "final"
    preds = pd.DataFrame({
        "id": rows.id.to_numpy(), "path": rows.path.to_numpy(), "label": rows.label.to_numpy(),
        "prob_malignant": probs, "split": "test" if final else "val", "fold": fold_number(name),
    })[PRED_COLUMNS]
    metrics = binary_metrics(preds.label, preds.prob_malignant)
    write_csv(folder / "predictions.csv", preds)
    write_json(folder / "metrics.json", metrics)
    files = ["predictions.csv", "metrics.json"]
    if model is not None:
        state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
        write_atomic(folder / "model.safetensors", lambda p: save_file(state, str(p)))
        files.append("model.safetensors")
    (folder / "failed.json").unlink(missing_ok=True)
    write_json(folder / "done.json", {"config_hash": run_hash, "stage": name, **info,
                                      "seconds": round(seconds, 2),
                                      "files": {n: file_sha256(folder / n) for n in files}})
    return StageResult(name, "done", preds, metrics, seconds)
