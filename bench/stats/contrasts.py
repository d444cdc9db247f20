"""AUCs and AUC contrasts over seeds, with cluster-aware intervals (docs/protocol.md, "Metrics").

The held-out test images are clustered (several images of one lesion or patient), so the
**primary** interval and test of every AUC and ΔAUC are cluster-aware: Obuchowski's clustered ROC
variance (:mod:`bench.stats.clustered`) of a linear combination of AUCs. A paired cluster bootstrap of the
same combination is a second cluster-aware interval; the image-level DeLong interval (every image
independent) is kept as a **secondary** one, labelled so.

A model trained with several seeds is summarised by the mean of its per-seed AUCs (what one trained
model achieves, on average), never by the AUC of its seed-averaged probabilities, which is an
*ensemble* and is reported as one, in its own column. A comparison with the reference model uses
the seeds both have (matched seeds): ΔAUC = mean over those seeds of AUC(model, s) − AUC(ref, s),
all on the same images, so one contrast holds in one row.

Paired cross-validation contrasts (the experiments) use the per-fold ΔAUC of a variant and the base
on the same seeds and folds, with the Nadeau & Bengio (2003, *Machine Learning* 52:239–281)
corrected resampled-t interval, which allows for the overlap of CV training sets.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from bench.stats.arrays import StatsInputError
from bench.stats.clustered import obuchowski_covariance
from bench.stats.stats import delong_covariance

LEVEL = 0.95
NO_GROUP = "image:"  # prefix of the singleton group of an image with no recorded group


@dataclass(frozen=True)
class AUCContrast:
    """A weighted sum of AUCs on the same images (one AUC, a seed mean, or a matched ΔAUC).

    ``lo``/``hi``/``se``/``p``: primary, Obuchowski's clustered variance (normal interval; ``p``
    two-sided for the value 0, meaningful for a difference). ``boot_lo``/``boot_hi``: paired
    cluster bootstrap (percentile). ``image_lo``/``image_hi``/``image_p``: secondary, DeLong with
    every image independent."""

    value: float
    se: float
    lo: float
    hi: float
    p: float
    boot_lo: float
    boot_hi: float
    image_lo: float
    image_hi: float
    image_p: float
    n_images: int
    n_clusters: int


def groups_of(frame: pd.DataFrame) -> np.ndarray:
    """Per image its cluster: the ``group`` column (same lesion or patient) where it is set, else
    the image alone (a singleton group named after its id)."""
    ids = frame["id"].astype(str).to_numpy()
    if "group" not in frame:
        return np.array([NO_GROUP + i for i in ids])
    g = frame["group"].fillna("").astype(str).to_numpy()
    return np.where(g == "", np.char.add(NO_GROUP, ids.astype(str)), g)


def _check(y, scores, weights, groups) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    y = np.asarray(y).astype(int)
    s = np.atleast_2d(np.asarray(scores, dtype=float))
    w = np.asarray(weights, dtype=float)
    g = np.asarray(groups).astype(str)
    if s.shape[0] != w.size:
        raise ValueError(f"{s.shape[0]} score rows but {w.size} weights")
    if s.shape[1] != y.size or g.size != y.size:
        raise ValueError(f"y_true ({y.size}), scores ({s.shape[1]}) and groups ({g.size}) differ "
                         "in length")
    return y, s, w, g


def weighted_aucs(y_true, y_score, weights) -> np.ndarray:
    """The AUC of ``y_score`` under each row of image weights (B×n; an integer weight is how
    often the image is repeated): ``Σ w_i w_j ψ(s_i, s_j) / (Σ w_pos Σ w_neg)`` over positive i
    and negative j, ties counting one half."""
    y = np.asarray(y_true).astype(int)
    s = np.asarray(y_score, dtype=float)
    w = np.atleast_2d(np.asarray(weights, dtype=float))
    pos, neg = y == 1, y == 0
    psi = (s[pos][:, None] > s[neg][None, :]) + 0.5 * (s[pos][:, None] == s[neg][None, :])
    wp, wn = w[:, pos], w[:, neg]
    return ((wp @ psi) * wn).sum(1) / (wp.sum(1) * wn.sum(1))


def _bootstrap(y, s, w, g, n_boot: int, seed: int, level: float) -> tuple[float, float]:
    """Percentile interval of ``w · AUC`` with whole clusters resampled (all rows on each). A
    replicate is drawn as cluster weights (an image counts as often as its cluster was drawn), so
    its AUC is ``Σ w_i w_j ψ(s_i, s_j) / (Σ w_pos Σ w_neg)`` over positive i and negative j: the
    AUC of the resampled images, for all replicates at once."""
    if n_boot < 2:
        return math.nan, math.nan
    from bench.stats.calibration import cluster_weights

    weights = cluster_weights(g, n_boot, seed)
    pos, neg = y == 1, y == 0
    wp, wn = weights[:, pos], weights[:, neg]
    den = wp.sum(1) * wn.sum(1)
    ok = den > 0
    values = np.zeros(int(ok.sum()))
    for k in range(s.shape[0]):
        values += w[k] * weighted_aucs(y, s[k], weights[ok])
    if len(values) < 2:
        return math.nan, math.nan
    alpha = (1 - level) / 2
    lo, hi = np.quantile(values, [alpha, 1 - alpha])
    return float(lo), float(hi)


def auc_contrast(y_true, scores, weights, groups, n_boot: int = 2000, seed: int = 0,
                 level: float = LEVEL, clip: bool = False) -> AUCContrast:
    """``Σ_k weights[k] · AUC(scores[k])`` on the same images with its clustered (primary),
    cluster-bootstrap and image-level (secondary) intervals; ``clip`` keeps the normal intervals
    in [0, 1] (for an AUC, not a difference)."""
    y, s, w, g = _check(y_true, scores, weights, groups)
    aucs, cov, n_cl = obuchowski_covariance(y, s, g)
    _, cov_img = delong_covariance(y, s)
    value = float(w @ aucs)
    z = stats.norm.ppf(0.5 + level / 2)

    def interval(var: float) -> tuple[float, float, float, float]:
        se = math.sqrt(max(var, 0.0))
        lo, hi = value - z * se, value + z * se
        if clip:
            lo, hi = max(0.0, lo), min(1.0, hi)
        p = (1.0 if abs(value) < 1e-15 else 0.0) if se <= 1e-12 else \
            float(2 * stats.norm.sf(abs(value) / se))
        return se, lo, hi, p

    se, lo, hi, p = interval(float(w @ cov @ w))
    _, image_lo, image_hi, image_p = interval(float(w @ cov_img @ w))
    boot_lo, boot_hi = _bootstrap(y, s, w, g, n_boot, seed, level)
    return AUCContrast(value, se, lo, hi, p, boot_lo, boot_hi, image_lo, image_hi, image_p,
                       int(y.size), int(n_cl))


def seed_mean_auc(y_true, scores, groups, **kw) -> AUCContrast:
    """The mean of k per-seed AUCs (``scores`` k×n) with its intervals (see module docstring)."""
    k = np.atleast_2d(np.asarray(scores)).shape[0]
    return auc_contrast(y_true, scores, np.full(k, 1 / k), groups, clip=True, **kw)


def matched_delta(y_true, scores_a, scores_b, groups, **kw) -> AUCContrast:
    """ΔAUC = mean over matched seeds of AUC(a, s) − AUC(b, s); row s of ``scores_a`` and
    ``scores_b`` is seed s of each model, on the same images."""
    a, b = np.atleast_2d(scores_a), np.atleast_2d(scores_b)
    if a.shape != b.shape:
        raise ValueError(f"matched seeds need one row per seed in both ({a.shape} vs {b.shape})")
    k = a.shape[0]
    return auc_contrast(y_true, np.vstack([a, b]), np.r_[np.full(k, 1 / k), np.full(k, -1 / k)],
                        groups, **kw)


@dataclass(frozen=True)
class PairedFolds:
    """Variant − base on matched (seed, fold) pairs of cross-validation."""

    delta: float
    lo: float
    hi: float
    n_pairs: int
    seeds: str


def paired_fold_delta(variant: pd.DataFrame, base: pd.DataFrame, metric: str = "auc",
                      level: float = LEVEL) -> PairedFolds:
    """Mean per-fold difference of ``metric`` between two CV tables (columns ``seed, fold,
    status, metric``) on the (seed, fold) pairs both finished, with the Nadeau–Bengio corrected
    resampled-t interval: variance ``(1/J + n_test/n_train) s²`` over the J pairs, with
    ``n_test/n_train = 1/(K-1)`` for K-fold CV, t with J−1 degrees of freedom."""
    cols = ["seed", "fold", metric]
    a = variant[variant.status == "ok"][cols]
    b = base[base.status == "ok"][cols]
    both = a.merge(b, on=["seed", "fold"], suffixes=("_v", "_b")).dropna()
    d = (both[f"{metric}_v"] - both[f"{metric}_b"]).to_numpy(dtype=float)
    seeds = ",".join(str(int(s)) for s in sorted(both.seed.unique()))
    if len(d) == 0:
        return PairedFolds(math.nan, math.nan, math.nan, 0, "")
    if len(d) < 2:
        return PairedFolds(float(d.mean()), math.nan, math.nan, 1, seeds)
    folds = max(2, int(both.groupby("seed").fold.nunique().max()))
    ratio = 1 / (folds - 1)
    se = math.sqrt((1 / len(d) + ratio) * d.var(ddof=1))
    t = stats.t.ppf(0.5 + level / 2, len(d) - 1)
    mean = float(d.mean())
    return PairedFolds(mean, mean - t * se, mean + t * se, len(d), seeds)


def reading(lo: float, hi: float, digits: int = 3) -> str:
    """What an interval of a difference says, in words: a difference shown (its sign), or no
    difference shown, with the range of differences the data allow."""
    if math.isnan(lo) or math.isnan(hi):
        return "no interval (fewer than two pairs)"
    span = f"{lo:+.{digits}f} to {hi:+.{digits}f}"
    if lo > 0:
        return f"higher ({span})"
    if hi < 0:
        return f"lower ({span})"
    return f"no difference shown; compatible with {span}"


def _p_text(p: float) -> str:
    if p < 0.001:
        return "< 0.001"
    return f"= {p:.3f}" if p < 0.1 else f"= {p:.2f}"


def verdict(delta: float, lo: float, hi: float, p_holm: float, mdd: float,
            alpha: float = 0.05, digits: int = 3) -> str:
    """The one sentence a ΔAUC contrast allows (docs/protocol.md, "Metrics": an interval that
    holds 0 shows no difference and bounds it; Holm's correction across models). The only wording
    that says "differs" or "no difference"; the report words contrasts through it.

    * differs: Holm-adjusted ``p_holm < alpha`` and the interval ``[lo, hi]`` excludes 0 (its sign
      says higher or lower);
    * no difference shown: otherwise, with the differences the interval still allows (up to its
      farther end) and the minimum detectable difference ``mdd`` at 80 % power
      (:mod:`bench.stats.power`): a smaller true difference would likely go unseen;
    * not tested: any number undefined (NaN), said so.

    E.g. "ΔAUC −0.109 [−0.203, −0.015]; Holm-adjusted p = 0.28: no difference shown; differences
    up to 0.203 cannot be excluded, and this test set detects only |ΔAUC| ≥ 0.120 (80 % power)".
    """
    if not 0 < alpha < 1:
        raise StatsInputError(f"alpha {alpha} must lie strictly between 0 and 1")
    if not (math.isnan(lo) or math.isnan(hi)) and lo > hi:
        raise StatsInputError(f"interval [{lo}, {hi}]: lo must not exceed hi")
    if not math.isnan(p_holm) and not 0 <= p_holm <= 1:
        raise StatsInputError(f"p_holm {p_holm} must lie in [0, 1]")
    if not math.isnan(mdd) and mdd < 0:
        raise StatsInputError(f"mdd {mdd} must not be negative")

    def num(x: float) -> str:
        return f"{x:+.{digits}f}".replace("-", "−")

    if math.isnan(delta):
        return "ΔAUC undefined: not tested"
    head = f"ΔAUC {num(delta)}"
    if math.isnan(lo) or math.isnan(hi) or math.isnan(p_holm):
        return f"{head} (no interval or p-value): not tested"
    head = f"{head} [{num(lo)}, {num(hi)}]; Holm-adjusted p {_p_text(p_holm)}"
    if p_holm < alpha and (lo > 0 or hi < 0):
        return f"{head}: differs ({'higher' if lo > 0 else 'lower'})"
    reach = max(abs(lo), abs(hi))
    caveat = " (the interval holds 0)" if p_holm < alpha else ""
    power = ("the minimum detectable difference is unknown" if math.isnan(mdd) else
             f"this test set detects only |ΔAUC| ≥ {mdd:.{digits}f} (80 % power)")
    return (f"{head}: no difference shown{caveat}; differences up to {reach:.{digits}f} cannot be "
            f"excluded, and {power}")
