"""AUC and ΔAUC over training seeds AND test clusters (docs/protocol.md, "Metrics": Clusters, Seeds).

A model's AUC is the mean over its training seeds of the per-seed AUC, all on the same test
images; ΔAUC of two models is the mean over matched seeds of the per-seed difference. Its
uncertainty has two sources: the test images (clustered: several images of one lesion or patient)
and the training seed (another seed gives another model). An interval that resamples the clusters
only treats the trained models as fixed and is too narrow for "what this recipe achieves".

Two ways to count both, as pure functions of ``(y_true, y_score per seed, groups)``:

* **Two-level bootstrap.** Each replicate draws the training seeds with replacement (outer) and
  the test clusters with replacement (inner; the same cluster draw for every seed, and for both
  models of a pair), and takes the mean over the drawn seeds of the AUC (or ΔAUC) on the drawn
  clusters; percentile interval and bootstrap SE. Seeds and clusters are crossed (every seed scores
  every cluster), so both are resampled independently as in the bootstrap of a two-way array
  (McCullagh 2000, *Bernoulli* 6:285–301; Davison & Hinkley 1997, *Bootstrap Methods*, §3.8 for
  multi-level data), which is conservative: the seed × image interaction is counted at both levels.
  The cluster draw is that of the one-level cluster bootstrap
  (:func:`bench.stats.contrasts.auc_contrast`, same ``seed``) and the seed draw comes from a
  separate stream, so with identical seeds the interval is the one-level one.
* **Variance components.** ``SE² = Var_clustered(mean over seeds) + s²_seeds / K``: Obuchowski's
  clustered variance of the seed mean (Obuchowski 1997, *Biometrics* 53:567–578), the test-set
  part with the models fixed, plus the sample variance (``ddof=1``) of the K per-seed values over K,
  the training-seed part (as for any random effect; Bouthillier et al. 2021, "Accounting for
  variance in machine learning benchmarks", *MLSys*). Its interval and test use t with the
  Welch–Satterthwaite degrees of freedom, since K − 1 (2 for three seeds) df estimate the seed
  part. The bootstrap estimates the seed part with ``ddof=0`` (the plug-in variance) and has no
  such allowance, so with few seeds its interval is the narrower; the formula is the primary.
  The between-seed variance of per-seed values measured on one finite test set holds, besides the
  training-seed effect, the seed × image interaction, which the clustered part already counts (over
  K): so the formula, like the bootstrap, is conservative. ``subtract_interaction=True`` takes
  the interaction (estimated from Obuchowski's covariances of the per-seed values) out of the seed
  part, the method-of-moments estimator of a crossed random-effects design (Searle, Casella &
  McCulloch 1992, *Variance Components*, ch. 4), truncated at 0.

Undefined values are NaN with the reason in ``note`` (one class in the test set, fewer than two
clusters, no seed in common); one seed gives the test-set part only and says so.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats

from bench.stats.arrays import (
    StatsInputError,
    check,
    check_level,
    check_n_boot,
    check_scores,
    match_seeds,
    seed_labels,
)
from bench.stats.calibration import cluster_weights
from bench.stats.clustered import mann_whitney_auc, obuchowski_covariance

ONE_SEED = ("one seed: training-seed variance cannot be estimated; the interval covers "
            "test-set sampling only")


@dataclass(frozen=True)
class TwoLevelInterval:
    """A seed-mean statistic with its two-level bootstrap interval.

    ``estimate``: the mean over seeds of the per-seed value on all test images; ``lo``/``hi``:
    percentile interval; ``se``: SD of the replicates; ``n_boot``: replicates used (a cluster draw
    without both classes is skipped); ``note``: why a value is NaN or what the interval omits."""

    estimate: float
    lo: float
    hi: float
    se: float
    per_seed: tuple[float, ...]
    n_seeds: int
    n_clusters: int
    n_boot: int
    note: str = ""


@dataclass(frozen=True)
class VarianceComponents:
    """``se = sqrt(clustered_var + seed_var / n_seeds)`` of a seed mean, with a normal interval.

    ``clustered_var``: Obuchowski's clustered variance of the seed mean (models fixed);
    ``seed_var``: sample variance of the per-seed values (NaN for one seed, then ``se`` is the
    test-set part only and ``note`` says so); ``df``: Welch–Satterthwaite degrees of freedom of
    ``se`` (:func:`satterthwaite_df`); ``lo``/``hi``: t interval and ``p``: two-sided t test of
    the value 0 (for a difference), both on ``df``; ``interaction_var``: the part of
    ``seed_var`` that is test-set noise particular to each seed (seed × image interaction:
    the mean clustered variance of a per-seed value less the mean clustered covariance of two),
    which the seed part leaves out with ``subtract_interaction``."""

    estimate: float
    se: float
    lo: float
    hi: float
    p: float
    df: float
    clustered_var: float
    seed_var: float
    interaction_var: float
    per_seed: tuple[float, ...]
    n_seeds: int
    n_clusters: int
    note: str = ""


def two_level_draws(groups, n_seeds: int, n_boot: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """The draws of a two-level bootstrap: ``n_boot``×n image weights (an image weighs as often as
    its cluster was drawn: :func:`bench.stats.calibration.cluster_weights`, the one-level
    stream) and ``n_boot``×``n_seeds`` seed counts (how often each seed was drawn; a separate
    stream, so the cluster draw does not depend on the number of seeds)."""
    weights = cluster_weights(groups, n_boot, seed)
    rng = np.random.default_rng([seed, 1])
    counts = rng.multinomial(n_seeds, np.full(n_seeds, 1 / n_seeds), size=n_boot)
    return weights, counts.astype(float)


def weighted_auc_matrix(y: np.ndarray, scores: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """AUC of each score row (K×n) under each row of image weights (B×n): B×K, the AUC of the
    resampled images ``Σ w_i w_j ψ(s_i, s_j) / (Σ w_pos Σ w_neg)`` (ties ½), in O(B·n) per row
    from one sort (tie blocks, cumulative negative weight below each block). With whole-number
    weights the numerator is exact, so this is the value of
    :func:`bench.stats.contrasts.weighted_aucs` to the last bit. NaN where a row of weights
    holds one class only."""
    pos = (y == 1).astype(float)
    neg = 1.0 - pos
    w = np.atleast_2d(weights)
    out = np.empty((w.shape[0], scores.shape[0]))
    for k, s in enumerate(scores):
        order = np.argsort(s, kind="mergesort")
        ordered = s[order]
        starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]])
        wo = w[:, order]
        p = np.add.reduceat(wo * pos[order], starts, axis=1)
        n = np.add.reduceat(wo * neg[order], starts, axis=1)
        below = np.cumsum(n, axis=1) - n
        out[:, k] = (p * (below + 0.5 * n)).sum(axis=1)
    den = (w @ pos) * (w @ neg)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = out / den[:, None]
    out[den == 0] = np.nan
    return out


def seed_mean_replicates(values: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Replicate b's statistic: the mean over its drawn seeds (``counts[b]``) of ``values[b]``
    (the per-seed value on its cluster draw); NaN where a drawn seed's value is NaN."""
    k = counts.shape[1]
    used = counts > 0
    bad = (np.isnan(values) & used).any(axis=1)
    out = (np.where(used, values, 0.0) * counts).sum(axis=1) / k
    out[bad] = np.nan
    return out


def _interval(estimate: float, per_seed, reps: np.ndarray, n_clusters: int, level: float,
              note: str) -> TwoLevelInterval:
    ok = reps[~np.isnan(reps)]
    k = len(per_seed)
    if k == 1 and not note:
        note = ONE_SEED
    if ok.size < 2:
        return TwoLevelInterval(estimate, math.nan, math.nan, math.nan, tuple(per_seed), k,
                                n_clusters, int(ok.size),
                                note or "fewer than two bootstrap replicates hold both classes")
    alpha = (1 - level) / 2
    lo, hi = np.quantile(ok, [alpha, 1 - alpha])
    return TwoLevelInterval(estimate, float(lo), float(hi), float(ok.std(ddof=1)),
                            tuple(float(v) for v in per_seed), k, n_clusters, int(ok.size), note)


def _undefined(k: int, n_clusters: int, note: str) -> TwoLevelInterval:
    nan = math.nan
    return TwoLevelInterval(nan, nan, nan, nan, (nan,) * k, k, n_clusters, 0, note)


def _classes_note(y: np.ndarray, n_clusters: int) -> str:
    if y.size == 0:
        return "no test image: AUC undefined"
    if y.min() == y.max():
        return "the test images hold one class only: AUC undefined"
    if n_clusters < 2:
        return "one cluster: its resampling (and a clustered variance) needs at least two"
    return ""


def two_level_auc(y_true, y_score, groups, n_boot: int = 2000, seed: int = 0,
                  level: float = 0.95) -> TwoLevelInterval:
    """A model's AUC (mean over seeds of the per-seed AUC; ``y_score`` seeds × images) with the
    two-level bootstrap interval: seeds and clusters resampled together (module docstring)."""
    c = check(y_true, y_score, groups)
    level, n_boot = check_level(level), check_n_boot(n_boot)
    k = c.s.shape[0]
    note = _classes_note(c.y, c.n_clusters)
    if note:
        return _undefined(k, c.n_clusters, note)
    per_seed = [mann_whitney_auc(c.y, row) for row in c.s]
    weights, counts = two_level_draws(c.ids[c.inv], k, n_boot, seed)
    reps = seed_mean_replicates(weighted_auc_matrix(c.y, c.s, weights), counts)
    return _interval(float(np.mean(per_seed)), per_seed, reps, c.n_clusters, level, "")


def paired_rows(scores_a, scores_b, n: int, seeds_a=None, seeds_b=None
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Score rows of a and b for the seeds both have (by seed number when ``seeds_a`` and
    ``seeds_b`` are given, else row by row, which needs as many rows in both); and those seeds."""
    a = check_scores(scores_a, n, "scores_a")
    b = check_scores(scores_b, n, "scores_b")
    if (seeds_a is None) != (seeds_b is None):
        raise StatsInputError("give seeds_a and seeds_b together (or neither, for rows already "
                              "matched seed by seed)")
    if seeds_a is None:
        if a.shape != b.shape:
            raise StatsInputError(f"matched seeds need as many rows in scores_a ({a.shape[0]}) as in "
                                  f"scores_b ({b.shape[0]}); or name the seeds (seeds_a, seeds_b)")
        return a, b, np.arange(a.shape[0])
    ia, ib, common = match_seeds(seed_labels(seeds_a, a.shape[0], "seeds_a"),
                                 seed_labels(seeds_b, b.shape[0], "seeds_b"))
    return a[ia], b[ib], common


def _matched(y_true, scores_a, scores_b, groups, seeds_a, seeds_b):
    """The checked labels and groups, the two models' rows on their matched seeds, and why the
    matched ΔAUC is undefined ("" when it is defined)."""
    y = check(y_true, np.zeros(np.asarray(y_true).size), groups)
    a, b, common = paired_rows(scores_a, scores_b, y.y.size, seeds_a, seeds_b)
    if len(common) == 0:
        return y, a[:0], b[:0], "no seed in common: no matched ΔAUC"
    return y, a, b, (_classes_note(y.y, y.n_clusters) or "").replace("AUC", "ΔAUC")


def _per_seed_delta(y: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.array([mann_whitney_auc(y, ra) - mann_whitney_auc(y, rb)
                     for ra, rb in zip(a, b, strict=True)])


def two_level_delta(y_true, scores_a, scores_b, groups, seeds_a=None, seeds_b=None,
                    n_boot: int = 2000, seed: int = 0, level: float = 0.95) -> TwoLevelInterval:
    """Paired ΔAUC = mean over matched seeds of AUC(a, s) − AUC(b, s) on the same images, with the
    two-level bootstrap interval: one seed draw (of the matched seeds) and one cluster draw per
    replicate, shared by both models. Seeds are matched by number (``seeds_a``, ``seeds_b``) or
    row by row; none in common gives NaN with the reason."""
    y, a, b, reason = _matched(y_true, scores_a, scores_b, groups, seeds_a, seeds_b)
    level, n_boot = check_level(level), check_n_boot(n_boot)
    k = len(a)
    if reason:
        return _undefined(k, y.n_clusters, reason)
    per_seed = _per_seed_delta(y.y, a, b)
    weights, counts = two_level_draws(y.ids[y.inv], k, n_boot, seed)
    values = weighted_auc_matrix(y.y, a, weights) - weighted_auc_matrix(y.y, b, weights)
    reps = seed_mean_replicates(values, counts)
    return _interval(float(np.mean(per_seed)), per_seed, reps, y.n_clusters, level, "")


def _components(y, inv, n_cl, rows: np.ndarray, contrast: np.ndarray, per_seed: np.ndarray,
                level: float, ddof: int, subtract_interaction: bool) -> VarianceComponents:
    """``contrast`` (K × rows) maps the AUCs of ``rows`` to the K per-seed values."""
    k = per_seed.size
    _, cov, _ = obuchowski_covariance(y, rows, inv)
    per_cov = contrast @ cov @ contrast.T  # clustered covariance of the per-seed values
    clustered = max(float(per_cov.mean()), 0.0)  # of their mean
    note = ""
    if k > max(ddof, 1):
        seed_var = float(np.var(per_seed, ddof=ddof))
        off = (per_cov.sum() - np.trace(per_cov)) / (k * (k - 1))
        interaction = max(float(np.trace(per_cov) / k - off), 0.0)
        seed_part = max(seed_var - interaction, 0.0) / k if subtract_interaction else seed_var / k
    else:
        seed_var = interaction = math.nan
        seed_part, note = 0.0, ONE_SEED
    se = math.sqrt(clustered + seed_part)
    df = satterthwaite_df(clustered, n_cl, seed_part, k)
    q = float(stats.t.ppf(0.5 + level / 2, df))
    est = float(per_seed.mean())
    if se > 1e-12:
        p = float(2 * stats.t.sf(abs(est) / se, df))
    else:
        p = 1.0 if abs(est) < 1e-15 else 0.0
    return VarianceComponents(est, se, est - q * se, est + q * se, p, df, clustered, seed_var,
                              interaction, tuple(float(v) for v in per_seed), k, n_cl, note)


def _undefined_components(k: int, n_cl: int, note: str) -> VarianceComponents:
    nan = math.nan
    return VarianceComponents(nan, nan, nan, nan, nan, nan, nan, nan, nan, (nan,) * k, k, n_cl,
                              note)


def auc_variance_components(y_true, y_score, groups, level: float = 0.95, ddof: int = 1,
                            subtract_interaction: bool = False) -> VarianceComponents:
    """A model's seed-mean AUC with ``SE² = Obuchowski variance of the seed mean + s²_seeds / K``
    and a t interval on Welch–Satterthwaite df (not clipped to [0, 1]: it is compared with the
    bootstrap). ``subtract_interaction``: the seed part without the seed × image interaction
    (module docstring)."""
    c = check(y_true, y_score, groups)
    level = check_level(level)
    k = c.s.shape[0]
    note = _classes_note(c.y, c.n_clusters)
    if note:
        return _undefined_components(k, c.n_clusters, note)
    per_seed = np.array([mann_whitney_auc(c.y, row) for row in c.s])
    return _components(c.y, c.inv, c.n_clusters, c.s, np.eye(k), per_seed, level, ddof,
                       subtract_interaction)


def delta_variance_components(y_true, scores_a, scores_b, groups, seeds_a=None, seeds_b=None,
                              level: float = 0.95, ddof: int = 1,
                              subtract_interaction: bool = False) -> VarianceComponents:
    """Matched ΔAUC with ``SE² = Obuchowski variance of the mean per-seed difference +
    s²(per-seed ΔAUC) / K``, a t interval and t test on Welch–Satterthwaite df."""
    y, a, b, reason = _matched(y_true, scores_a, scores_b, groups, seeds_a, seeds_b)
    level = check_level(level)
    k = len(a)
    if reason:
        return _undefined_components(k, y.n_clusters, reason)
    per_seed = _per_seed_delta(y.y, a, b)
    return _components(y.y, y.inv, y.n_clusters, np.vstack([a, b]), np.hstack([np.eye(k), -np.eye(k)]),
                       per_seed, level, ddof, subtract_interaction)


def satterthwaite_df(clustered_var: float, n_clusters: int, seed_part: float,
                     n_seeds: int) -> float:
    """Welch–Satterthwaite degrees of freedom of ``clustered_var + seed_part`` (Satterthwaite
    1946, *Biometrics Bulletin* 2:110–114): the clustered part estimated from ``n_clusters``
    clusters (``C − 1`` df), the seed part ``s²/K`` from ``n_seeds`` seeds (``K − 1`` df). With few
    seeds the seed part is poorly known and a normal reference would reject too often; inf when
    the variance is 0."""
    var = clustered_var + seed_part
    den = 0.0
    if clustered_var > 0:
        den += clustered_var ** 2 / max(n_clusters - 1, 1)
    if seed_part > 0 and n_seeds > 1:
        den += seed_part ** 2 / (n_seeds - 1)
    return float(var * var / den) if den > 0 else math.inf
