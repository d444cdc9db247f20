"""Stage files, their verification and resume (docs/protocol.md, Held-out test and cross-validation).

Each stage (``fold_0`` … ``fold_{K-1}``, ``final``) writes its predictions, metrics and (for the
final fit, or every stage with ``--save-fold-weights``) weights atomically into
``<run>/stages/<stage>/`` as soon as it ends, then a ``done.json`` holding the run's config hash and
the files' SHA-256: a rerun reuses every stage whose ``done.json`` matches. A stage that failed
(loss NaN/inf, non-finite weights or predictions) writes ``failed.json`` instead.
The files' layout and checksums are :class:`bench.engine.runfolder.StageFolder`'s.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch

from bench.core.enums import StrEnum
from bench.data.cache import ImageCache
from bench.engine.runfolder import PRED_COLUMNS, RunFolder, StageFolder
from bench.engine.spec import Execution, RunSpec
from bench.stats.metrics import binary_metrics

__all__ = ["PRED_COLUMNS", "StageContext", "StageResult", "StageStatus", "fold_number",
           "reuse_stage", "write_done", "write_failed"]  # PRED_COLUMNS: runfolder's, for protocol


class StageStatus(StrEnum):
    """How a stage ended (``config.json``'s ``timings.stages.<stage>.status``)."""

    DONE = "done"
    REUSED = "reused"
    FAILED = "failed"


@dataclass(frozen=True)
class StageContext:
    """What every stage of one run shares: its spec (``run_hash`` is its hash), how it is carried
    out, the image cache and the run folder."""

    spec: RunSpec
    ex: Execution
    cache: ImageCache
    folder: RunFolder
    run_hash: str = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "run_hash", self.spec.hash())

    def stage(self, name: str) -> StageFolder:
        return self.folder.stage(name)


@dataclass
class StageResult:
    name: str
    status: StageStatus
    predictions: pd.DataFrame | None
    metrics: dict | None
    seconds: float
    message: str = ""


def fold_number(stage: str) -> int:
    """``fold_k`` → k; the final fit → -1 (its predictions' ``fold`` value)."""
    return -1 if stage == "final" else int(stage.split("_")[1])


def reuse_stage(name: str, ctx: StageContext) -> StageResult:
    preds, metrics = ctx.stage(name).read()
    return StageResult(name, StageStatus.REUSED, preds, metrics, 0.0)


def write_failed(name: str, ctx: StageContext, message: str, epoch: int, step: int,
                 t0: float) -> StageResult:
    ctx.stage(name).write_failed({"config_hash": ctx.run_hash, "stage": name, "epoch": epoch,
                                  "step": step, "message": message})
    return StageResult(name, StageStatus.FAILED, None, None, time.perf_counter() - t0, message)


def write_done(name: str, ctx: StageContext, rows: pd.DataFrame, probs: np.ndarray,
               model: torch.nn.Module | None, info: dict, seconds: float) -> StageResult:
    """A finished stage's files, written atomically, ``done.json`` last."""
    final = name == "final"
    preds = pd.DataFrame({
        "id": rows.id.to_numpy(), "path": rows.path.to_numpy(), "label": rows.label.to_numpy(),
        "prob_malignant": probs, "split": "test" if final else "val", "fold": fold_number(name),
    })[PRED_COLUMNS]
    metrics = binary_metrics(preds.label, preds.prob_malignant)
    state = None if model is None else \
        {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    ctx.stage(name).write_done(ctx.run_hash, preds, metrics, state,
                               {**info, "seconds": round(seconds, 2)})
    return StageResult(name, StageStatus.DONE, preds, metrics, seconds)
