"""The benchmark protocol (docs/protocol.md, Held-out test and cross-validation): K-fold CV on the training set, a final fit, one test evaluation.

Plans the stages (``fold_0`` … ``fold_{K-1}``, ``final``), prepares each (seeded subsetting,
flip-balancing inside the stage, model initialisation), hands the unfinished ones to an engine (one
at a time: the reference engine, :mod:`bench.engine.train`; several at once: the stacked engine,
:mod:`bench.engine.stacked`, with an out-of-memory back-off), evaluates each trained stage and summarises.
Stage files and resume live in :mod:`bench.engine.stages`. Both engines return one
:class:`~bench.engine.train.TrainOutcome` per stage; a diverged stage is recorded as failed and the other
stages go on.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from safetensors.torch import load_file
from tqdm.auto import tqdm

from bench.core.errors import BenchError
from bench.data.augment import augment_policy, flip_balance
from bench.engine.device import is_out_of_memory, release_memory
from bench.engine.spec import Execution, RunSpec
from bench.engine.stacked import Member, train_stacked
from bench.engine.stages import (
    PRED_COLUMNS,
    StageContext,
    StageResult,
    StageStatus,
    fold_number,
    reuse_stage,
    write_done,
    write_failed,
)
from bench.engine.train import (
    TrainOutcome,
    TrainSettings,
    predict,
    recalibrate_batchnorm,
    train_model,
)
from bench.stats.metrics import METRIC_NAMES
from models import create_model, get_model_config


def stage_plan(rows: pd.DataFrame, folds: int) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """``(stage, train_positions, eval_positions)`` over ``rows`` (train + test manifest rows).

    CV fold ``k`` of a K-fold run holds the manifest folds ``f`` with ``f % K == k``, so a 10-fold
    manifest also serves 2- or 5-fold runs without ever splitting a duplicate group.
    """
    train = np.nonzero((rows.split == "train").to_numpy())[0]
    test = np.nonzero((rows.split == "test").to_numpy())[0]
    plan = []
    if folds:
        fold_of = rows.fold.to_numpy()[train] % folds
        for k in range(folds):
            plan.append((f"fold_{k}", train[fold_of != k], train[fold_of == k]))
    plan.append(("final", train, test))
    return plan


def limit_stratified(positions: np.ndarray, labels: np.ndarray, limit: int | None,
                     rng: np.random.Generator) -> np.ndarray:
    """At most ``limit`` positions, keeping the class ratio (reduced profiles only)."""
    if limit is None or len(positions) <= limit:
        return positions
    keep = []
    for c in (0, 1):
        pos = positions[labels[positions] == c]
        n = max(1, round(limit * len(pos) / len(positions)))
        keep.append(rng.choice(pos, size=min(n, len(pos)), replace=False))
    return np.sort(np.concatenate(keep))


@dataclass
class StageJob:
    """A stage ready to train: its data, seed and freshly initialised model."""

    name: str
    seed: int
    train_idx: np.ndarray
    flips: np.ndarray
    eval_pos: np.ndarray
    model: torch.nn.Module
    t0: float


def prepare_stage(name: str, train_pos: np.ndarray, eval_pos: np.ndarray,
                  ctx: StageContext) -> StageJob:
    """Seeded subsetting, flip-balancing and model initialisation of one stage (both engines)."""
    t0 = time.perf_counter()
    spec = ctx.spec
    ctx.stage(name).start()
    labels = ctx.cache.labels.cpu().numpy()
    seed = spec.seed * 100 + (99 if name == "final" else fold_number(name))
    rng = np.random.default_rng(seed)
    train_pos = limit_stratified(train_pos, labels, spec.train_limit, rng)
    if name != "final":
        eval_pos = limit_stratified(eval_pos, labels, spec.val_limit, rng)
    idx, flips = flip_balance(train_pos, labels[train_pos], rng)
    torch.manual_seed(seed)
    model = create_model(spec.model, **spec.model_kwargs)
    return StageJob(name, seed, idx, flips, eval_pos, model, t0)


def train_settings(spec: RunSpec, ex: Execution) -> TrainSettings:
    return TrainSettings(epochs=spec.epochs, batch_size=spec.batch_size, optimizer=spec.optimizer,
                         lr=spec.lr, augment=augment_policy(spec.augment_policy) if spec.augment else None,
                         device=ex.device, channels_last=ex.channels_last)


def finish_stage(job: StageJob, outcome: TrainOutcome, ctx: StageContext, train_s: float,
                 trained_with: list[str] | None = None) -> StageResult:
    """Evaluate a trained stage and write its files; a diverged stage, or one whose weights or
    predictions are not finite, is recorded as failed."""
    spec, ex, cache = ctx.spec, ctx.ex, ctx.cache
    d = outcome.diverged
    if d is not None:
        return write_failed(job.name, ctx,
                            f"{job.name}: training stopped, {d} (epoch {d.epoch}, step {d.step})",
                            d.epoch, d.step, job.t0)
    t_eval = time.perf_counter()
    cfg = get_model_config(spec.model)
    bn_layers = recalibrate_batchnorm(job.model, cfg, cache, job.train_idx, job.flips, ex.device,
                                      spec.batch_size, ex.channels_last) \
        if spec.bn_recalibration else 0
    probs = predict(job.model, cfg, cache, job.eval_pos, device=ex.device,
                    channels_last=ex.channels_last)
    broken = [k for k, v in job.model.state_dict().items()
              if v.is_floating_point() and not torch.isfinite(v).all()]
    if broken or not np.isfinite(probs).all():
        what = f"weights became non-finite (e.g. {broken[0]})" if broken else \
            "predictions are not finite numbers"
        return write_failed(job.name, ctx,
                            f"{job.name}: training failed, {what} after the last step; lower "
                            "`lr` or check the data", spec.epochs, 0, job.t0)
    info = {"train_images": int(len(job.train_idx)), "flipped_copies": int((job.flips > 0).sum()),
            "eval_images": int(len(job.eval_pos)), "epoch_losses": outcome.history,
            "batchnorm_layers_recalibrated": bn_layers,
            "train_seconds": round(train_s, 2)}
    if trained_with:
        info["trained_concurrently_with"] = trained_with
    keep = job.name == "final" or ex.save_fold_weights
    return write_done(job.name, ctx, cache.rows.iloc[job.eval_pos], probs,
                      job.model if keep else None, info,
                      train_s + time.perf_counter() - t_eval)


def train_stage(job: StageJob, ctx: StageContext) -> StageResult:
    """Train one prepared stage with the reference engine, evaluate it, write its files."""
    spec = ctx.spec
    outcome = train_model(job.model, get_model_config(spec.model), ctx.cache, job.train_idx,
                          job.flips, train_settings(spec, ctx.ex), seed=job.seed,
                          desc=f"{spec.model} {job.name}", progress=ctx.ex.progress)
    return finish_stage(job, outcome, ctx, time.perf_counter() - job.t0)


class StackedOutOfMemory(Exception):
    """A group of stages did not fit in memory together; carries the first line of the error."""


def run_stages_stacked(plan: list[tuple[str, np.ndarray, np.ndarray]],
                       ctx: StageContext) -> list[StageResult]:
    """Train the given stages concurrently (:mod:`bench.engine.stacked`), then evaluate each.

    Raises :class:`StackedOutOfMemory` when they do not fit in memory together (the stages'
    models are left as initialised: nothing is written), :class:`BenchError` for other failures.
    """
    spec, ex = ctx.spec, ctx.ex
    jobs = [prepare_stage(name, tr, ev, ctx) for name, tr, ev in plan]
    t0 = time.perf_counter()
    members = [Member(j.model, j.train_idx, j.flips, j.seed) for j in jobs]
    try:
        outcomes = train_stacked(members, get_model_config(spec.model), ctx.cache,
                                 train_settings(spec, ex), progress=ex.progress,
                                 desc=f"{spec.model} {len(jobs)} stages at once")
    except (RuntimeError, NotImplementedError) as exc:  # e.g. out of memory, an op vmap lacks
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        if is_out_of_memory(exc):
            raise StackedOutOfMemory(first[:200]) from None
        raise BenchError(
            f"the stacked engine could not train {len(jobs)} {spec.model} stages at once "
            f"({type(exc).__name__}: {first[:200]}); finished stages are kept — rerun with "
            "`concurrent_folds`=1 (reference engine) or a smaller N") from None
    train_s = time.perf_counter() - t0
    names = [j.name for j in jobs]
    return [finish_stage(job, out, ctx, train_s,
                         [n for n in names if n != job.name])
            for job, out in zip(jobs, outcomes, strict=True)]


def _run_all_stacked(pending: list, width: int, ctx: StageContext) -> list[StageResult]:
    """``pending`` stages in groups of ``width``; a group that runs out of memory is retried in
    halves (11 → 6 → 3 → 2 → 1), and a lone stage that does not fit stops the run."""
    spec, ex = ctx.spec, ctx.ex
    done: list[StageResult] = []
    while pending:
        group = pending[:width]
        try:
            done += run_stages_stacked(group, ctx)
            pending = pending[len(group):]
            continue
        except StackedOutOfMemory as exc:
            message = str(exc)
        release_memory(ex.device)  # outside the except block: its frames are gone
        if len(group) == 1:
            raise BenchError(
                f"one {spec.model} stage alone does not fit in {ex.device} memory "
                f"({message}); finished stages are kept — try a smaller `batch_size` or "
                "`img_size` (a different configuration), or a device with more memory")
        width = math.ceil(len(group) / 2)
        tqdm.write(f"note: {len(group)} {spec.model} stages at once ran out of "
                   f"{ex.device} memory ({message}); training {width} at a time")
    return done


def load_weights(model: torch.nn.Module, path: Path) -> torch.nn.Module:
    """Load safetensors weights saved by a run."""
    model.load_state_dict(load_file(str(path)))
    return model


def run_protocol(ctx: StageContext) -> list[StageResult]:
    """All stages of the protocol; returns their results (reused, done or failed) in plan order."""
    return run_stages(ctx, stage_plan(ctx.cache.rows, ctx.spec.folds), "stages", "stage")


def run_stages(ctx: StageContext, plan: list[tuple[str, np.ndarray, np.ndarray]], what: str,
               unit: str) -> list[StageResult]:
    """The stages of ``plan`` (the protocol's, or the all-image evaluation's folds): each reused
    when its stage files match, else trained; returns their results in plan order.

    ``ctx.ex.concurrent`` > 1 trains up to that many unfinished stages at once (stacked engine);
    otherwise stages train one after another with the reference engine.
    """
    spec, ex = ctx.spec, ctx.ex
    results: dict[str, StageResult] = {}
    pending = []
    for name, train_pos, eval_pos in plan:
        if ctx.stage(name).valid(ctx.run_hash):
            results[name] = reuse_stage(name, ctx)
        else:
            pending.append((name, train_pos, eval_pos))
    if ex.concurrent > 1:  # a stacked run trains every stage, even a lone resumed one, stacked
        for res in _run_all_stacked(pending, ex.concurrent, ctx):
            results[res.name] = res
    else:
        bar = tqdm(pending, desc=f"{spec.model} {what}", unit=unit, disable=not ex.progress)
        for name, train_pos, eval_pos in bar:
            bar.set_postfix(stage=name)
            results[name] = train_stage(prepare_stage(name, train_pos, eval_pos, ctx), ctx)
    for res in results.values():
        if res.status == StageStatus.FAILED:
            tqdm.write(f"warning: {res.message}")
    return [results[name] for name, _, _ in plan]


def summarize(results: list[StageResult]) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """Run-level ``predictions.csv``, ``cv_metrics.csv`` and ``metrics.json`` contents."""
    frames = [r.predictions for r in results if r.predictions is not None]
    preds = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=PRED_COLUMNS)
    cv_rows = []
    for r in results:
        if r.name == "final":
            continue
        failed = r.status == StageStatus.FAILED
        row = {"fold": fold_number(r.name), "status": "failed" if failed else "ok"}
        row.update(r.metrics or {k: float("nan") for k in METRIC_NAMES})
        if failed:
            row["message"] = r.message
        cv_rows.append(row)
    cv = pd.DataFrame(cv_rows)
    final = next(r for r in results if r.name == "final")
    final_failed = final.status == StageStatus.FAILED
    metrics: dict = {"test": final.metrics, "test_status": "failed" if final_failed else "ok"}
    if final_failed:
        metrics["test_message"] = final.message
    if len(cv):
        ok = cv[cv.status == "ok"]
        metrics["cv"] = {
            "folds": int(len(cv)), "failed_folds": int((cv.status != "ok").sum()),
            "mean": {k: float(ok[k].mean()) for k in METRIC_NAMES} if len(ok) else None,
            "sd": {k: float(ok[k].std(ddof=1)) if len(ok) > 1 else float("nan")
                   for k in METRIC_NAMES} if len(ok) else None,
        }
    return preds, cv, metrics
