"""Calibration and prevalence, with cluster-aware intervals (docs/protocol.md, "Metrics").

* Brier score, calibration slope and calibration-in-the-large intercept
  (:func:`bench.stats.stats.calibration_slope_intercept`) of a model over its seeds: the mean of the
  per-seed values, with a cluster bootstrap interval (whole groups resampled; every seed on the
  same replicate). The replicates are drawn as cluster weights, so all of them are fitted at once.
* PPV and NPV at another prevalence than the test set's (Bayes' rule from sensitivity and
  specificity), with the same bootstrap.
* Reliability-diagram bins of equal count (at least ``min_count`` images each), with each bin's
  count and the Wilson interval of its observed malignant share.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from bench.stats.metrics import THRESHOLD
from bench.stats.stats import calibration_slope_intercept, wilson_ci

LEVEL = 0.95
EPS = 1e-6


@dataclass(frozen=True)
class Interval:
    value: float
    lo: float
    hi: float


@dataclass(frozen=True)
class Calibration:
    """Seed-mean Brier, slope and intercept with cluster-bootstrap intervals."""

    brier: Interval
    slope: Interval
    intercept: Interval
    n_clusters: int


def cluster_weights(groups, n_boot: int, seed: int = 0) -> np.ndarray:
    """``n_boot``×n image weights of a cluster bootstrap: each replicate draws the clusters with
    replacement, and an image weighs as often as its cluster was drawn."""
    _, inv = np.unique(np.asarray(groups).astype(str), return_inverse=True)
    n_cl = int(inv.max()) + 1
    rng = np.random.default_rng(seed)
    counts = rng.multinomial(n_cl, np.full(n_cl, 1 / n_cl), size=n_boot)
    return counts[:, inv].astype(float)


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, EPS, 1 - EPS)
    return np.log(p / (1 - p))


def weighted_slope_intercept(y: np.ndarray, p: np.ndarray, w: np.ndarray,
                             iters: int = 50) -> tuple[np.ndarray, np.ndarray]:
    """Calibration slope and intercept (as :func:`bench.stats.stats.calibration_slope_intercept`) for
    each row of weights ``w`` (B×n), by batched Newton steps; NaN where a fit does not converge
    (a replicate whose classes separate)."""
    with np.errstate(over="ignore", invalid="ignore"):  # a separating replicate diverges: NaN
        return _weighted_fit(y, _logit(p), w, iters)


def _weighted_fit(y, o, w, iters):
    b = np.zeros((w.shape[0], 2))
    x = np.stack([np.ones_like(o), o], axis=1)  # n×2
    for _ in range(iters):
        mu = 1 / (1 + np.exp(-(b @ x.T)))
        grad = (w * (y - mu)) @ x
        h = np.einsum("bn,ni,nj->bij", w * mu * (1 - mu), x, x) + 1e-9 * np.eye(2)
        step = np.linalg.solve(h, grad[..., None])[..., 0]
        b += step
        if np.abs(step).max() < 1e-10:
            break
    slope = np.where(np.abs(step[:, 1]) < 1e-6, b[:, 1], np.nan)
    a = np.zeros(w.shape[0])
    for _ in range(iters):
        mu = 1 / (1 + np.exp(-(a[:, None] + o)))
        step = (w * (y - mu)).sum(1) / np.maximum((w * mu * (1 - mu)).sum(1), 1e-12)
        a += step
        if np.abs(step).max() < 1e-10:
            break
    intercept = np.where(np.abs(step) < 1e-6, a, np.nan)
    return slope, intercept


def _percentile(values: np.ndarray, level: float) -> tuple[float, float]:
    v = values[np.isfinite(values)]
    if len(v) < 2:
        return math.nan, math.nan
    alpha = (1 - level) / 2
    lo, hi = np.quantile(v, [alpha, 1 - alpha])
    return float(lo), float(hi)


def calibration(y_true, probs, groups, n_boot: int = 2000, seed: int = 0,
                level: float = LEVEL) -> Calibration:
    """Brier, slope and intercept of ``probs`` (k seeds × n images), each the mean over seeds,
    with cluster-bootstrap percentile intervals (replicates with one class are skipped)."""
    y = np.asarray(y_true, dtype=float)
    p = np.atleast_2d(np.asarray(probs, dtype=float))
    fits = [calibration_slope_intercept(y, row) for row in p]
    point = {"brier": float(np.mean([np.mean((row - y) ** 2) for row in p])),
             "slope": float(np.mean([f[0] for f in fits])),
             "intercept": float(np.mean([f[1] for f in fits]))}
    w = cluster_weights(groups, n_boot, seed)
    pos = w @ y
    ok = (pos > 0) & (pos < w.sum(1))
    w = w[ok]
    reps = {"brier": np.mean([(w @ (row - y) ** 2) / w.sum(1) for row in p], axis=0)}
    fitted = [weighted_slope_intercept(y, row, w) for row in p]
    reps["slope"] = np.mean([f[0] for f in fitted], axis=0)
    reps["intercept"] = np.mean([f[1] for f in fitted], axis=0)
    out = {k: Interval(point[k], *_percentile(reps[k], level)) for k in point}
    return Calibration(out["brier"], out["slope"], out["intercept"],
                       len(np.unique(np.asarray(groups).astype(str))))


def predictive_values(sensitivity, specificity, prevalence: float):
    """PPV and NPV at ``prevalence`` (Bayes' rule); NaN where undefined. Floats or arrays."""
    sens, spec = np.asarray(sensitivity, dtype=float), np.asarray(specificity, dtype=float)
    tp, fp = sens * prevalence, (1 - spec) * (1 - prevalence)
    tn, fn = spec * (1 - prevalence), (1 - sens) * prevalence
    with np.errstate(invalid="ignore", divide="ignore"):
        ppv = np.where(tp + fp > 0, tp / (tp + fp), np.nan)
        npv = np.where(tn + fn > 0, tn / (tn + fn), np.nan)
    if ppv.ndim == 0:
        return float(ppv), float(npv)
    return ppv, npv


def predictive_values_at(y_true, probs, groups, prevalence: float, n_boot: int = 2000,
                         seed: int = 0, level: float = LEVEL) -> tuple[Interval, Interval]:
    """PPV and NPV at ``prevalence`` of ``probs`` (k seeds × n) at threshold 0.5: the mean over
    seeds, with cluster-bootstrap intervals."""
    y = np.asarray(y_true, dtype=float)
    pred = np.atleast_2d(np.asarray(probs, dtype=float)) >= THRESHOLD
    w = np.vstack([np.ones(len(y)), cluster_weights(groups, n_boot, seed)])
    pos, neg = w @ y, w @ (1 - y)
    w = w[(pos > 0) & (neg > 0)]
    ppv, npv = [], []
    for row in pred:
        sens = (w @ (y * row)) / (w @ y)
        spec = (w @ ((1 - y) * ~row)) / (w @ (1 - y))
        a, b = predictive_values(sens, spec, prevalence)
        ppv.append(a)
        npv.append(b)
    ppv, npv = np.mean(ppv, axis=0), np.mean(npv, axis=0)
    return (Interval(float(ppv[0]), *_percentile(ppv[1:], level)),
            Interval(float(npv[0]), *_percentile(npv[1:], level)))


def reliability_bins(y_true, prob, min_count: int = 20, max_bins: int = 10) -> pd.DataFrame:
    """Equal-count bins of ``prob`` (sorted; ties kept in input order), as many as hold at least
    ``min_count`` images (at most ``max_bins``): per bin its probability range, mean predicted
    probability, observed malignant share with its Wilson 95% interval, and count."""
    y = np.asarray(y_true).astype(int)
    p = np.asarray(prob, dtype=float)
    order = np.argsort(p, kind="stable")
    n_bins = max(1, min(max_bins, len(p) // max(1, min_count)))
    rows = []
    for k, idx in enumerate(np.array_split(order, n_bins)):
        if not len(idx):
            continue
        lo, hi = wilson_ci(int(y[idx].sum()), len(idx))
        rows.append({"bin": k, "p_min": float(p[idx].min()), "p_max": float(p[idx].max()),
                     "mean_pred": float(p[idx].mean()), "frac_pos": float(y[idx].mean()),
                     "frac_lo": lo, "frac_hi": hi, "count": int(len(idx))})
    return pd.DataFrame(rows, columns=["bin", "p_min", "p_max", "mean_pred", "frac_pos", "frac_lo",
                                       "frac_hi", "count"])
