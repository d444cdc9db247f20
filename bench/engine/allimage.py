"""The all-image evaluation (docs/statistics.md, "Every image scored once"): grouped K-fold over
every usable image of a data set, the held-out test images included.

The paper's protocol scores one held-out test set (on BUSI 100 images in 65 lesion groups), whose
intervals are wide. This run kind scores every usable image once instead: the images are dealt
into K folds by whole same-lesion groups (patients where a data set has them; the manifest's
``group`` column, docs/protocol.md "Images that belong together"), stratified by class, with a
fixed seed; each fold is a training stage (``fold_0`` … ``fold_{K-1}``) that trains on the other
K-1 folds and scores its own, so every image is scored by a model that never saw its lesion.
Each stage writes its own stage files (a rerun resumes per fold, :mod:`bench.engine.stages`);
the run writes ``allcv_predictions.csv`` (:class:`bench.engine.runfolder.RunFolder`) and no
final model. Nothing here is fed back into choosing settings: the settings are the profile's,
as for the held-out runs.

The fold assignment (:func:`allcv_folds`) is a function of the manifest, K and the fold seed;
the spec's ``evaluation`` value names all three and :data:`PLAN_VERSION` (this module is not
training code: a change of the plan changes that version, and so the runs' hash).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.model_selection import StratifiedGroupKFold

from bench.core.errors import BenchError
from bench.engine.protocol import run_stages
from bench.engine.stages import (
    PRED_COLUMNS,
    StageContext,
    StageResult,
    StageStatus,
    fold_number,
)
from bench.stats.metrics import METRIC_NAMES, binary_metrics

HELDOUT, ALLCV = "heldout", "allcv"
EVALUATIONS = (HELDOUT, ALLCV)
FOLD_SEED = 2021  # the split manifest's seed (bench.data.manifest.SplitConfig)
PLAN_VERSION = 1  # raise when allcv_folds or allcv_plan change what a run trains on
SPLIT = "allcv"  # the ``split`` value of the all-image predictions


def check_evaluation(value: str, name: str = "evaluation") -> str:
    """``value`` as a run's evaluation (:data:`EVALUATIONS`), else one line naming ``name``."""
    if value not in EVALUATIONS:
        raise BenchError(f"`{name}`={value!r}: give heldout (the held-out test, Table 3) or "
                         "allcv (every image scored once by grouped K-fold)")
    return value


def evaluation_key(folds: int, seed: int = FOLD_SEED) -> str:
    """The spec's ``evaluation`` value of an all-image run with ``folds`` folds."""
    return f"{ALLCV}:{folds}:{seed}:{PLAN_VERSION}"


def is_allcv(evaluation: object) -> bool:
    """A run's recorded ``evaluation`` setting says it is an all-image run."""
    return str(evaluation or HELDOUT).startswith(ALLCV)


def parse_key(evaluation: str) -> tuple[int, int]:
    """``(folds, fold seed)`` of an all-image run's ``evaluation`` value."""
    _, k, seed, _ = (evaluation.split(":") + ["", "", ""])[:4]
    return int(k), int(seed)


def usable(manifest: pd.DataFrame) -> pd.DataFrame:
    """The images the all-image evaluation scores: every manifest row not excluded (images of a
    group whose members carry different labels are excluded from every split)."""
    return manifest[manifest.split != "excluded"]


def allcv_folds(rows: pd.DataFrame, folds: int, seed: int = FOLD_SEED) -> np.ndarray:
    """The fold of each of ``rows`` (manifest rows: ``label``, ``group``): whole groups per
    fold, stratified by class, shuffled with ``seed`` — the manifest's own group-aware fold rule
    (scikit-learn's ``StratifiedGroupKFold``, as :func:`bench.data.manifest.make_split` deals its
    CV folds), applied to every row, test images included. A row without a group is its own."""
    if folds < 2:
        raise BenchError(f"`allcv_folds`={folds}: the all-image evaluation needs at least 2 folds")
    labels = rows.label.to_numpy(dtype=int)
    raw = rows.group.astype(str).to_numpy() if "group" in rows else np.full(len(rows), "")
    groups = np.where(raw == "", [f"_row{k}" for k in range(len(rows))], raw)
    n_groups = [len(set(groups[labels == c])) for c in (0, 1)]
    if min(n_groups) < folds:
        raise BenchError(f"`allcv_folds`={folds}: the data set has {n_groups[0]} benign and "
                         f"{n_groups[1]} malignant groups (same picture, patient or lesion); "
                         "each fold needs one of each — lower `allcv_folds` or add data")
    fold = np.full(len(rows), -1)
    sgkf = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed)
    for k, (_, held) in enumerate(sgkf.split(np.zeros(len(rows)), labels, groups)):
        fold[held] = k
    return fold


def allcv_plan(rows: pd.DataFrame, folds: int, seed: int = FOLD_SEED
               ) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """``(stage, train_positions, eval_positions)`` over ``rows`` (the run's image cache rows,
    every usable image): stage ``fold_k`` trains on the other folds and scores fold ``k``."""
    fold = allcv_folds(rows, folds, seed)
    every = np.arange(len(rows))
    return [(f"fold_{k}", every[fold != k], every[fold == k]) for k in range(folds)]


def run_allcv(ctx: StageContext) -> list[StageResult]:
    """Every fold of the all-image evaluation (reused when its stage files match, else trained:
    one after another with the reference engine, or ``ctx.ex.concurrent`` at once stacked), in
    fold order. The stages are :func:`bench.engine.protocol.prepare_stage`'s, so a fold is seeded,
    subset (``train_limit``) and flip-balanced as every training stage is."""
    folds, seed = parse_key(ctx.spec.evaluation)
    return run_stages(ctx, allcv_plan(ctx.cache.rows, folds, seed), "all-image folds", "fold")


def summarize_allcv(results: list[StageResult]) -> tuple[pd.DataFrame, dict]:
    """The run's all-image predictions (every image once, ``split`` :data:`SPLIT`, ``fold`` the
    fold that scored it) and ``metrics.json``: the pooled metrics over every image
    (``allcv``; ``None`` when a fold failed, since then some images were never scored), each
    fold's, and how many failed."""
    frames = [r.predictions for r in results if r.predictions is not None]
    preds = pd.concat(frames, ignore_index=True).assign(split=SPLIT)[PRED_COLUMNS] if frames \
        else pd.DataFrame(columns=PRED_COLUMNS)
    per_fold = []
    for r in results:
        failed = r.status == StageStatus.FAILED
        row = {"fold": fold_number(r.name), "status": "failed" if failed else "ok",
               **(r.metrics or dict.fromkeys(METRIC_NAMES))}
        if failed:
            row["message"] = r.message
        per_fold.append(row)
    failed = [r for r in results if r.status == StageStatus.FAILED]
    metrics: dict = {
        "allcv": None if failed or not len(preds) else
        binary_metrics(preds.label, preds.prob_malignant),
        "allcv_status": "failed" if failed else "ok",
        "allcv_folds": {"folds": len(results), "failed_folds": len(failed), "images": len(preds),
                        "per_fold": per_fold},
    }
    if failed:
        metrics["allcv_message"] = "; ".join(r.message for r in failed)
    return preds, metrics
