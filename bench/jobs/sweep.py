"""``python -m bench.sweep``: learning curves on CV folds, the evidence behind a reduced profile's
epochs (docs/protocol.md, Held-out test and cross-validation: settings are compared on cross-validation folds, never on the held-out test set).

For each model and each chosen CV fold, one stage is prepared exactly as ``bench.engine.runner`` prepares it
(same split, seeded subsetting, flip-balancing and initialisation) and trained for ``--epochs``;
after every epoch the model scores its validation fold. The learning rate is constant (Keras
defaults), so the model after epoch *e* is the model an *e*-epoch run would train: one run gives
the whole curve. The test rows of the manifest are never read.

Writes ``curves.csv`` (one row per model, fold and epoch), ``curves_pooled.csv`` (per model and
epoch, the AUC of the folds' validation predictions pooled, and their mean), ``plateau.csv`` (the
first epoch whose running mean over ``--window`` epochs (default 5) of the pooled AUC is within ``--tolerance`` of its best) and
``learning_curves.png``. A finished (model, fold) curve is reused when its settings match.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from bench.core.atomic import write_csv, write_json
from bench.core.errors import BenchError, SettingError
from bench.core.provenance import portable
from bench.data.cache import ImageCache, build_cache
from bench.engine.protocol import prepare_stage, stage_plan, train_settings
from bench.engine.runfolder import RunFolder
from bench.engine.runner import Prepared, prepare
from bench.engine.spec import RunOptions
from bench.engine.stages import StageContext
from bench.engine.train import predict, recalibrate_batchnorm, train_model
from bench.stats.metrics import roc_auc
from models import get_model_config

log = logging.getLogger(__name__)


def plateau_epoch(auc: pd.Series, tolerance: float, window: int = 5) -> int:
    """First epoch whose running mean (``window`` epochs, trailing) of ``auc`` is within
    ``tolerance`` of the running mean's maximum; ``auc`` is indexed by epoch (1, 2, ...)."""
    smooth = auc.rolling(window, min_periods=1).mean()
    return int(smooth.index[np.argmax(smooth.to_numpy() >= smooth.max() - tolerance)])


def pooled_curves(curves: pd.DataFrame, preds: pd.DataFrame) -> pd.DataFrame:
    """Per model and epoch: AUC of all folds' validation predictions pooled, mean and sd of the
    per-fold AUCs, and the mean training loss."""
    rows = []
    for (model, epoch), grp in preds.groupby(["model", "epoch"], sort=True):
        folds = curves[(curves.model == model) & (curves.epoch == epoch)]
        rows.append({"model": model, "epoch": int(epoch), "folds": int(len(folds)),
                     "val_images": int(len(grp)),
                     "pooled_auc": roc_auc(grp.label.to_numpy(), grp.prob.to_numpy()),
                     "mean_fold_auc": float(folds.val_auc.mean()),
                     "sd_fold_auc": float(folds.val_auc.std(ddof=1)) if len(folds) > 1 else np.nan,
                     "train_loss": float(folds.train_loss.mean())})
    return pd.DataFrame(rows)


def plateau_table(pooled: pd.DataFrame, tolerance: float, window: int) -> pd.DataFrame:
    rows = []
    for model, grp in pooled.groupby("model", sort=False):
        auc = grp.set_index("epoch").pooled_auc
        best = int(auc.idxmax())
        smooth = auc.rolling(window, min_periods=1).mean()
        plateau = plateau_epoch(auc, tolerance, window)
        rows.append({"model": model, "epochs_run": int(auc.index.max()),
                     "folds": int(grp.folds.max()), "plateau_epoch": plateau,
                     "window": window, "tolerance": tolerance,
                     "running_mean_at_plateau": float(smooth[plateau]),
                     "best_running_mean": float(smooth.max()),
                     "best_epoch": best, "best_pooled_auc": float(auc.max()),
                     "pooled_auc_last": float(auc.iloc[-1])})
    return pd.DataFrame(rows)


def curve_figure(pooled: pd.DataFrame, plateau: pd.DataFrame, base: Path) -> None:
    from bench.reporting.figures import plt, save, sns
    models = list(dict.fromkeys(pooled.model))
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    palette = sns.color_palette("colorblind", max(1, len(models)))
    for k, model in enumerate(models):
        grp = pooled[pooled.model == model]
        p = plateau[plateau.model == model].iloc[0]
        axes[0].plot(grp.epoch, grp.pooled_auc, color=palette[k], lw=1.8,
                     label=f"{model} (plateau at epoch {int(p.plateau_epoch)})")
        axes[0].fill_between(grp.epoch, grp.mean_fold_auc - grp.sd_fold_auc.fillna(0),
                             grp.mean_fold_auc + grp.sd_fold_auc.fillna(0), color=palette[k],
                             alpha=0.12, lw=0)
        axes[0].axvline(p.plateau_epoch, color=palette[k], ls=":", lw=1)
        axes[1].plot(grp.epoch, grp.train_loss, color=palette[k], lw=1.8, label=model)
    axes[0].set(xlabel="epoch", ylabel="validation AUC (CV folds pooled; band: fold sd)",
                title="Validation AUC on CV folds")
    axes[1].set(xlabel="epoch", ylabel="training loss (recipe loss, mean over folds)",
                title="Training loss")
    for ax in axes:
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    save(fig, base)


def fold_curve(p: Prepared, cache: ImageCache, positions: tuple[np.ndarray, np.ndarray],
               name: str, stage_dir: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Train one CV stage of ``p`` and score its validation fold after every epoch: the curve
    (epoch, val AUC, val accuracy, seconds, training loss) and the validation predictions."""
    spec, ex = p.spec, p.execution
    job = prepare_stage(name, *positions, StageContext(spec, ex, cache, RunFolder(stage_dir)))
    y = cache.labels.numpy()[job.eval_pos]
    ids = cache.rows.id.to_numpy(str)[job.eval_pos]
    cfg = get_model_config(spec.model)
    rows, scores, t0 = [], [], time.perf_counter()

    def score(epoch: int, model: torch.nn.Module) -> None:
        if spec.bn_recalibration:  # as the protocol does after the last epoch; it changes no
            # weight and no random draw, so training goes on exactly as without it
            recalibrate_batchnorm(model, cfg, cache, job.train_idx, job.flips, ex.device,
                                  spec.batch_size, ex.channels_last)
        prob = predict(model, cfg, cache, job.eval_pos, device=ex.device,
                       channels_last=ex.channels_last)
        rows.append({"epoch": epoch, "val_auc": roc_auc(y, prob),
                     "val_accuracy": float(((prob >= 0.5) == y).mean()),
                     "seconds": round(time.perf_counter() - t0, 1)})
        scores.append(pd.DataFrame({"epoch": epoch, "id": ids, "label": y, "prob": prob}))
        log.info(f"  {spec.model} {name} epoch {epoch}: val AUC {rows[-1]['val_auc']:.3f}")

    outcome = train_model(job.model, cfg, cache, job.train_idx, job.flips,
                          train_settings(spec, ex), job.seed, desc=f"{spec.model} {name}",
                          progress=ex.progress, on_epoch=score)
    if outcome.diverged is not None:
        raise BenchError(f"{spec.model} {name}: {outcome.diverged}")
    curve = pd.DataFrame(rows).assign(train_loss=outcome.history, train_images=len(job.train_idx),
                                      val_images=len(job.eval_pos))
    return curve, pd.concat(scores, ignore_index=True)


def sweep_model(options: RunOptions, folds: list[int], out: Path) -> None:
    """Learning curves of one model (``options``: one run's, whose ``folds`` is the K of the
    K-fold CV) on the CV ``folds``; each curve is written under ``out/curves``."""
    p = prepare(options)
    spec = p.spec
    if spec.folds < 2:
        raise SettingError("folds", "must be >= 2: the curves are measured on CV folds")
    used = p.manifest[p.manifest.split != "excluded"].reset_index(drop=True)
    plan = {name: (tr, ev) for name, tr, ev in stage_plan(used, spec.folds) if name != "final"}
    cache = None
    for k in folds:
        name = f"fold_{k}"
        if name not in plan:
            raise SettingError("use_folds", f"fold {k} does not exist in {spec.folds}-fold CV")
        tag = f"{spec.model}-{spec.hash()}-{name}"
        meta_path, curve_path, pred_path = (out / "curves" / f"{tag}{ext}"
                                            for ext in (".json", ".csv", "_pred.csv"))
        meta = {"settings": spec.to_dict(), "fold": k, "command": options.command}
        if meta_path.is_file() and json.loads(meta_path.read_text()).get("settings") == meta[
                "settings"] and curve_path.is_file() and pred_path.is_file():
            log.info(f"{spec.model} {name}: reusing {portable(curve_path)}")
            continue
        if cache is None:
            cache = build_cache(p.index.root, used, spec.img_size, spec.channels)[0]
            if p.execution.device == "cuda":  # resident on the GPU, as a run keeps it
                cache = cache.to(p.execution.device)
        curve, scores = fold_curve(p, cache, plan[name], name, out / "curves" / tag)
        write_csv(pred_path, scores)
        write_csv(curve_path, curve)
        write_json(meta_path, meta)  # last: it marks the curve finished


def collect(out: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Every finished curve in ``out/curves`` (earlier invocations included: one model may be
    swept longer or on more folds than another), one settings hash per model."""
    curves, preds, seen = [], [], {}
    for meta_path in sorted((out / "curves").glob("*.json")):
        meta = json.loads(meta_path.read_text())
        model = meta["settings"]["model"]
        tag = meta_path.stem
        key = tag.rsplit("-", 1)[0]
        if seen.setdefault(model, key) != key:
            raise BenchError(f"{out}: {model} has curves of two settings ({seen[model]}, {key}); "
                             "use one output folder per setting")
        curves.append(pd.read_csv(meta_path.with_suffix(".csv")).assign(model=model,
                                                                        fold=meta["fold"]))
        preds.append(pd.read_csv(meta_path.with_name(f"{tag}_pred.csv")).assign(
            model=model, fold=meta["fold"]))
    if not curves:
        raise BenchError(f"{out}: no finished curves")
    return pd.concat(curves, ignore_index=True), pd.concat(preds, ignore_index=True)


def sweep(runs: list[RunOptions], folds: list[int], out: Path, tolerance: float = 0.02,
          window: int = 5) -> pd.DataFrame:
    """Learning curves of every run of ``runs`` (one per model) on the CV ``folds``, then, over
    every finished curve in ``out``, the pooled curves, the plateau table and the figure; returns
    the plateau table."""
    for options in runs:
        sweep_model(options, folds, out)
    curves_df, preds_df = collect(out)
    pooled = pooled_curves(curves_df, preds_df)
    plateau = plateau_table(pooled, tolerance, window)
    write_csv(out / "curves.csv", curves_df)
    write_csv(out / "curves_pooled.csv", pooled)
    write_csv(out / "plateau.csv", plateau)
    curve_figure(pooled, plateau, out / "learning_curves")
    return plateau
