"""The benchmark protocol (SPEC §3): K-fold CV on the training set, a final fit, one test evaluation.

Each stage (``fold_0`` … ``fold_{K-1}``, ``final``) writes its predictions, metrics and (for the
final fit, or every stage with ``--save-fold-weights``) weights atomically into
``<run>/stages/<stage>/`` as soon as it ends, then a ``done.json`` holding the run's config hash and
the files' SHA-256. Rerunning the same command reuses every stage whose ``done.json`` matches
(resume); others are trained again. A stage whose loss becomes NaN/inf is
recorded as failed (``failed.json``) and the other stages go on. Stages train one after another
(reference engine, :mod:`bench.train`) or several at once (stacked engine, :mod:`bench.stacked`).
"""

from __future__ import annotations

import gc
import json
import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from safetensors.torch import load_file, save_file
from tqdm.auto import tqdm

from bench.atomic import write_atomic, write_csv, write_json
from bench.data.augment import AugmentConfig, flip_balance
from bench.data.loader import ImageCache
from bench.errors import BenchError
from bench.metrics import METRIC_NAMES, binary_metrics
from bench.records import file_sha256
from bench.stacked import Member, train_stacked
from bench.train import TrainingDiverged, TrainSettings, predict, train_model
from models import create_model, get_model_config

PRED_COLUMNS = ["id", "path", "label", "prob_malignant", "split", "fold"]


@dataclass
class StageResult:
    name: str
    status: str  # "done" | "reused" | "failed"
    predictions: pd.DataFrame | None
    metrics: dict | None
    seconds: float
    message: str = ""


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
    """At most ``limit`` positions, keeping the class ratio (smoke runs only)."""
    if limit is None or len(positions) <= limit:
        return positions
    keep = []
    for c in (0, 1):
        pos = positions[labels[positions] == c]
        n = max(1, round(limit * len(pos) / len(positions)))
        keep.append(rng.choice(pos, size=min(n, len(pos)), replace=False))
    return np.sort(np.concatenate(keep))


def _stage_valid(folder: Path, run_hash: str) -> bool:
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
        if not _stage_valid(run_dir / "stages" / stage, run_hash):
            return f"stage {stage}'s files are missing or do not match their checksums"
    return None


@dataclass
class StageJob:
    """A stage ready to train: its data, seed and freshly initialised model."""

    name: str
    stage_dir: Path
    seed: int
    train_idx: np.ndarray
    flips: np.ndarray
    eval_pos: np.ndarray
    model: torch.nn.Module
    t0: float


def fold_number(stage: str) -> int:
    """``fold_k`` → k; the final fit → -1 (its predictions' ``fold`` value)."""
    return -1 if stage == "final" else int(stage.split("_")[1])


def _reuse(name: str, stage_dir: Path) -> StageResult:
    preds = pd.read_csv(stage_dir / "predictions.csv", dtype={"id": str, "path": str})
    metrics = json.loads((stage_dir / "metrics.json").read_text())
    return StageResult(name, "reused", preds, metrics, 0.0)


def prepare_stage(name: str, train_pos: np.ndarray, eval_pos: np.ndarray, cache: ImageCache,
                  spec: dict, stage_dir: Path) -> StageJob:
    """Seeded subsetting, flip-balancing and model initialisation of one stage (both engines)."""
    t0 = time.perf_counter()
    (stage_dir / "done.json").unlink(missing_ok=True)
    labels = cache.labels.cpu().numpy()
    seed = spec["seed"] * 100 + (99 if name == "final" else fold_number(name))
    rng = np.random.default_rng(seed)
    train_pos = limit_stratified(train_pos, labels, spec["train_limit"], rng)
    if name != "final":
        eval_pos = limit_stratified(eval_pos, labels, spec.get("val_limit"), rng)
    idx, flips = flip_balance(train_pos, labels[train_pos], rng)
    torch.manual_seed(seed)
    model = create_model(spec["model"], **spec["model_kwargs"])
    return StageJob(name, stage_dir, seed, idx, flips, eval_pos, model, t0)


def train_settings(spec: dict) -> TrainSettings:
    return TrainSettings(
        epochs=spec["epochs"], batch_size=spec["batch_size"], optimizer=spec["optimizer"],
        lr=spec["lr"], augment=AugmentConfig() if spec["augment"] else None,
        device=spec["device"], channels_last=spec["channels_last"])


def fail_stage(job: StageJob, exc: TrainingDiverged, run_hash: str,
               message: str | None = None) -> StageResult:
    msg = message or f"{job.name}: training stopped, {exc} (epoch {exc.epoch}, step {exc.step})"
    write_json(job.stage_dir / "failed.json", {"config_hash": run_hash, "stage": job.name,
                                                "epoch": exc.epoch, "step": exc.step,
                                                "message": msg})
    return StageResult(job.name, "failed", None, None, time.perf_counter() - job.t0, msg)


def finish_stage(job: StageJob, history: list[float], cache: ImageCache, spec: dict,
                 run_hash: str, train_s: float, trained_with: list[str] | None = None) -> StageResult:
    """Evaluate a trained stage and write its files atomically, ``done.json`` last."""
    cfg = get_model_config(spec["model"])
    t_eval = time.perf_counter()
    probs = predict(job.model, cfg, cache, job.eval_pos, device=spec["device"],
                    channels_last=spec["channels_last"])
    broken = [k for k, v in job.model.state_dict().items()
              if v.is_floating_point() and not torch.isfinite(v).all()]
    if broken or not np.isfinite(probs).all():
        what = f"weights became non-finite (e.g. {broken[0]})" if broken else \
            "predictions are not finite numbers"
        return fail_stage(job, TrainingDiverged(spec["epochs"], 0, math.nan), run_hash,
                          f"{job.name}: training failed, {what} after the last step; lower --lr "
                          "or check the data")
    rows = cache.rows.iloc[job.eval_pos]
    final = job.name == "final"
    preds = pd.DataFrame({
        "id": rows.id.to_numpy(), "path": rows.path.to_numpy(), "label": rows.label.to_numpy(),
        "prob_malignant": probs, "split": "test" if final else "val",
        "fold": fold_number(job.name),
    })[PRED_COLUMNS]
    metrics = binary_metrics(preds.label, preds.prob_malignant)
    folder = job.stage_dir
    write_csv(folder / "predictions.csv", preds)
    write_json(folder / "metrics.json", metrics)
    files = ["predictions.csv", "metrics.json"]
    if final or spec.get("save_fold_weights"):
        state = {k: v.detach().cpu().contiguous() for k, v in job.model.state_dict().items()}
        write_atomic(folder / "model.safetensors", lambda p: save_file(state, str(p)))
        files.append("model.safetensors")
    (folder / "failed.json").unlink(missing_ok=True)
    seconds = train_s + time.perf_counter() - t_eval
    done = {
        "config_hash": run_hash, "stage": job.name, "train_images": int(len(job.train_idx)),
        "flipped_copies": int((job.flips > 0).sum()), "eval_images": int(len(job.eval_pos)),
        "epoch_losses": history, "train_seconds": round(train_s, 2), "seconds": round(seconds, 2),
        "files": {n: file_sha256(folder / n) for n in files},
    }
    if trained_with:
        done["trained_concurrently_with"] = trained_with
    write_json(folder / "done.json", done)
    return StageResult(job.name, "done", preds, metrics, seconds)


def train_stage(job: StageJob, cache: ImageCache, spec: dict, run_hash: str,
                progress: bool) -> StageResult:
    """Train one prepared stage with the reference engine, evaluate it, write its files."""
    cfg = get_model_config(spec["model"])
    try:
        history = train_model(job.model, cfg, cache, job.train_idx, job.flips, train_settings(spec),
                              seed=job.seed, desc=f"{spec['model']} {job.name}", progress=progress)
    except TrainingDiverged as exc:
        return fail_stage(job, exc, run_hash)
    return finish_stage(job, history, cache, spec, run_hash, time.perf_counter() - job.t0)


class StackedOutOfMemory(Exception):
    """A group of stages did not fit in memory together; carries the first line of the error."""


def _is_out_of_memory(exc: BaseException) -> bool:
    text = str(exc).lower()
    return isinstance(exc, torch.cuda.OutOfMemoryError) or "out of memory" in text \
        or "can't allocate memory" in text


def _release_memory(device: str) -> None:
    gc.collect()
    if torch.device(device).type == "cuda":
        torch.cuda.empty_cache()


def run_stages_stacked(plan: list[tuple[str, np.ndarray, np.ndarray]], cache: ImageCache,
                       spec: dict, run_hash: str, run_dir: Path, progress: bool) -> list[StageResult]:
    """Train the given stages concurrently (:mod:`bench.stacked`), then evaluate each.

    Raises :class:`StackedOutOfMemory` when they do not fit in memory together (the stages'
    models are left as initialised: nothing is written), :class:`BenchError` for other failures.
    """
    jobs = [prepare_stage(name, tr, ev, cache, spec, run_dir / "stages" / name)
            for name, tr, ev in plan]
    t0 = time.perf_counter()
    members = [Member(j.model, j.train_idx, j.flips, j.seed) for j in jobs]
    try:
        outcomes = train_stacked(members, get_model_config(spec["model"]), cache,
                                 train_settings(spec), progress=progress,
                                 desc=f"{spec['model']} {len(jobs)} stages at once")
    except (RuntimeError, NotImplementedError) as exc:  # e.g. out of memory, an op vmap lacks
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        if _is_out_of_memory(exc):
            raise StackedOutOfMemory(first[:200]) from None
        raise BenchError(
            f"the stacked engine could not train {len(jobs)} {spec['model']} stages at once "
            f"({type(exc).__name__}: {first[:200]}); finished stages are kept — rerun with "
            "--concurrent-folds 1 (reference engine) or a smaller N") from None
    train_s = time.perf_counter() - t0
    names = [j.name for j in jobs]
    return [fail_stage(job, out.diverged, run_hash) if out.diverged is not None else
            finish_stage(job, out.history, cache, spec, run_hash, train_s,
                         [n for n in names if n != job.name])
            for job, out in zip(jobs, outcomes, strict=True)]


def _run_all_stacked(pending: list, width: int, cache: ImageCache, spec: dict, run_hash: str,
                     run_dir: Path, progress: bool) -> list[StageResult]:
    """``pending`` stages in groups of ``width``; a group that runs out of memory is retried in
    halves (11 → 6 → 3 → 2 → 1), and a lone stage that does not fit stops the run."""
    done: list[StageResult] = []
    while pending:
        group = pending[:width]
        try:
            done += run_stages_stacked(group, cache, spec, run_hash, run_dir, progress)
            pending = pending[len(group):]
            continue
        except StackedOutOfMemory as exc:
            message = str(exc)
        _release_memory(spec["device"])  # outside the except block: its frames are gone
        if len(group) == 1:
            raise BenchError(
                f"one {spec['model']} stage alone does not fit in {spec['device']} memory "
                f"({message}); finished stages are kept — try a smaller --batch-size or "
                "--img-size (a different configuration), or a device with more memory")
        width = math.ceil(len(group) / 2)
        tqdm.write(f"note: {len(group)} {spec['model']} stages at once ran out of "
                   f"{spec['device']} memory ({message}); training {width} at a time")
    return done


def load_weights(model: torch.nn.Module, path: Path) -> torch.nn.Module:
    """Load safetensors weights saved by a run."""
    model.load_state_dict(load_file(str(path)))
    return model


def run_protocol(spec: dict, cache: ImageCache, run_dir: Path, run_hash: str,
                 progress: bool = True) -> list[StageResult]:
    """All stages of the protocol; returns their results (reused, done or failed) in plan order.

    ``spec["concurrent"]`` > 1 trains up to that many unfinished stages at once (stacked engine);
    otherwise stages train one after another with the reference engine.
    """
    plan = stage_plan(cache.rows, spec["folds"])
    results: dict[str, StageResult] = {}
    pending = []
    for name, train_pos, eval_pos in plan:
        if _stage_valid(run_dir / "stages" / name, run_hash):
            results[name] = _reuse(name, run_dir / "stages" / name)
        else:
            pending.append((name, train_pos, eval_pos))
    width = max(1, int(spec.get("concurrent", 1)))
    if width > 1:  # a stacked run trains every stage, even a lone resumed one, stacked
        for res in _run_all_stacked(pending, width, cache, spec, run_hash, run_dir, progress):
            results[res.name] = res
    else:
        bar = tqdm(pending, desc=f"{spec['model']} stages", unit="stage", disable=not progress)
        for name, train_pos, eval_pos in bar:
            bar.set_postfix(stage=name)
            job = prepare_stage(name, train_pos, eval_pos, cache, spec, run_dir / "stages" / name)
            results[name] = train_stage(job, cache, spec, run_hash, progress)
    for res in results.values():
        if res.status == "failed":
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
        row = {"fold": fold_number(r.name), "status": "failed" if r.status == "failed" else "ok"}
        row.update(r.metrics or {k: float("nan") for k in METRIC_NAMES})
        if r.status == "failed":
            row["message"] = r.message
        cv_rows.append(row)
    cv = pd.DataFrame(cv_rows)
    final = next(r for r in results if r.name == "final")
    metrics: dict = {"test": final.metrics, "test_status": "failed" if final.status == "failed" else "ok"}
    if final.status == "failed":
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
