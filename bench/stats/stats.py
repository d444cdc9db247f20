"""Confidence intervals and paired tests as pure functions (docs/protocol.md, Metrics).

* Wilson score interval for proportions.
* ROC AUC: DeLong variance (DeLong, DeLong & Clarke-Pearson 1988, the fast algorithm of Sun & Xu
  2014) with a normal interval clipped to [0, 1], as R's ``pROC::ci.auc(method="delong")``; and a
  stratified percentile bootstrap (resampling positives and negatives separately, seeded).
* Paired comparisons on the same images: DeLong's test for two correlated AUCs (as
  ``pROC::roc.test(method="delong", paired=TRUE)``), the exact McNemar test on discordant
  predictions, and Holm's step-down correction.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import stats

from bench.stats.clustered import cluster_resamples, mann_whitney_auc

Z95 = stats.norm.ppf(0.975)


def wilson_ci(successes: int, n: int, level: float = 0.95) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion; ``(nan, nan)`` when ``n == 0``."""
    if n == 0:
        return math.nan, math.nan
    z = stats.norm.ppf(0.5 + level / 2)
    p = successes / n
    den = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / den
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / den
    return max(0.0, centre - half), min(1.0, centre + half)


def _midranks(x: np.ndarray) -> np.ndarray:
    return stats.rankdata(x, method="average")


def _delong_components(y_true, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """AUCs and DeLong structural components (V10 over positives, V01 over negatives).

    ``scores`` is k×n (k classifiers). Returns ``(auc[k], v10[k, m], v01[k, n_neg])``.
    """
    y = np.asarray(y_true).astype(int)
    scores = np.atleast_2d(np.asarray(scores, dtype=float))
    pos, neg = scores[:, y == 1], scores[:, y == 0]
    m, n = pos.shape[1], neg.shape[1]
    if m == 0 or n == 0:
        raise ValueError("DeLong needs at least one positive and one negative case")
    aucs, v10s, v01s = [], [], []
    for k in range(scores.shape[0]):
        tx, ty = _midranks(pos[k]), _midranks(neg[k])
        tz = _midranks(np.concatenate([pos[k], neg[k]]))
        aucs.append((tz[:m].sum() - m * (m + 1) / 2) / (m * n))
        v10s.append((tz[:m] - tx) / n)
        v01s.append(1.0 - (tz[m:] - ty) / m)
    return np.array(aucs), np.array(v10s), np.array(v01s)


def delong_covariance(y_true, scores) -> tuple[np.ndarray, np.ndarray]:
    """AUCs and their DeLong covariance matrix for k classifiers scored on the same cases."""
    aucs, v10, v01 = _delong_components(y_true, scores)
    s10 = np.atleast_2d(np.cov(v10)) if v10.shape[1] > 1 else np.zeros((len(aucs), len(aucs)))
    s01 = np.atleast_2d(np.cov(v01)) if v01.shape[1] > 1 else np.zeros((len(aucs), len(aucs)))
    return aucs, s10 / v10.shape[1] + s01 / v01.shape[1]


def delong_ci(y_true, y_score, level: float = 0.95) -> tuple[float, float, float]:
    """``(auc, lo, hi)``: DeLong standard error, normal interval clipped to [0, 1]."""
    aucs, cov = delong_covariance(y_true, y_score)
    z = stats.norm.ppf(0.5 + level / 2)
    se = math.sqrt(max(cov[0, 0], 0.0))
    return float(aucs[0]), max(0.0, aucs[0] - z * se), min(1.0, aucs[0] + z * se)


def delong_test(y_true, score_a, score_b) -> tuple[float, float]:
    """Paired DeLong test of AUC(a) = AUC(b): ``(z, two-sided p)``; ``(0, 1)`` if identical."""
    aucs, cov = delong_covariance(y_true, np.vstack([score_a, score_b]))
    var = cov[0, 0] + cov[1, 1] - 2 * cov[0, 1]
    diff = aucs[0] - aucs[1]
    if var <= 1e-15:
        return (0.0, 1.0) if abs(diff) < 1e-15 else (math.copysign(math.inf, diff), 0.0)
    z = diff / math.sqrt(var)
    return float(z), float(2 * stats.norm.sf(abs(z)))


def bootstrap_auc_ci(y_true, y_score, n_boot: int = 2000, seed: int = 0,
                     level: float = 0.95) -> tuple[float, float]:
    """Stratified percentile bootstrap interval of the ROC AUC (positives and negatives resampled
    separately so every replicate has both classes)."""
    y = np.asarray(y_true).astype(int)
    s = np.asarray(y_score, dtype=float)
    pos, neg = s[y == 1], s[y == 0]
    rng = np.random.default_rng(seed)
    bp = pos[rng.integers(0, len(pos), (n_boot, len(pos)))]
    bn = neg[rng.integers(0, len(neg), (n_boot, len(neg)))]
    # AUC = P(pos > neg) + 0.5 P(pos == neg), via sorted negatives per replicate
    bn.sort(axis=1)
    less = np.stack([np.searchsorted(bn[i], bp[i], side="left") for i in range(n_boot)])
    leq = np.stack([np.searchsorted(bn[i], bp[i], side="right") for i in range(n_boot)])
    aucs = (less + 0.5 * (leq - less)).sum(axis=1) / (len(pos) * len(neg))
    alpha = (1 - level) / 2
    lo, hi = np.quantile(aucs, [alpha, 1 - alpha])
    return float(lo), float(hi)


def mcnemar_exact(y_true, pred_a, pred_b) -> tuple[int, int, float]:
    """Exact McNemar test on discordant correctness: ``(b, c, two-sided p)``.

    ``b``: cases model a gets right and b wrong; ``c``: the reverse.
    """
    y = np.asarray(y_true).astype(int)
    ra = np.asarray(pred_a).astype(int) == y
    rb = np.asarray(pred_b).astype(int) == y
    b, c = int((ra & ~rb).sum()), int((~ra & rb).sum())
    if b + c == 0:
        return b, c, 1.0
    return b, c, float(min(1.0, 2 * stats.binom.cdf(min(b, c), b + c, 0.5)))


def holm(pvalues) -> np.ndarray:
    """Holm's step-down adjusted p-values (NaNs are kept and ignored)."""
    p = np.asarray(pvalues, dtype=float)
    out = np.full_like(p, np.nan)
    ok = np.nonzero(~np.isnan(p))[0]
    order = ok[np.argsort(p[ok], kind="stable")]
    m = len(order)
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p[i]))
        out[i] = running
    return out


def cluster_bootstrap_auc(y_true, y_score, groups, n_boot: int = 2000, seed: int = 0,
                          level: float = 0.95) -> tuple[float, float, float]:
    """Patient-level bootstrap of the ROC AUC: whole patients (``groups``) are resampled, so the
    images of one patient stay together. ``(lo, hi, se)``; the rare replicate that holds one
    class only is skipped."""
    y = np.asarray(y_true).astype(int)
    s = np.asarray(y_score, dtype=float)
    aucs = []
    for take in cluster_resamples(groups, n_boot, seed):
        yt = y[take]
        if 0 < yt.sum() < len(yt):
            aucs.append(mann_whitney_auc(yt, s[take]))
    if len(aucs) < 2:
        return math.nan, math.nan, math.nan
    alpha = (1 - level) / 2
    lo, hi = np.quantile(aucs, [alpha, 1 - alpha])
    return float(lo), float(hi), float(np.std(aucs, ddof=1))


def calibration_slope_intercept(y_true, y_prob, eps: float = 1e-6) -> tuple[float, float]:
    """Logistic recalibration (Cox 1958): slope of ``logit P(y=1) = a + b·logit(p)``, and
    calibration-in-the-large, the intercept ``a`` with the slope fixed at 1 (``logit(p)`` as an
    offset). Perfect calibration: slope 1, intercept 0. Fitted by Newton's method with step
    halving; a fit that does not converge (no finite maximum, e.g. predictions that separate the
    classes or all sit at 0 or 1) is NaN: undefined, never a runaway number."""
    y = np.asarray(y_true, dtype=float)
    p = np.clip(np.asarray(y_prob, dtype=float), eps, 1 - eps)
    o = np.log(p / (1 - p))

    def loglik(design: np.ndarray, offset: np.ndarray, beta: np.ndarray) -> float:
        eta = design @ beta + offset
        return float(np.sum(y * eta - np.logaddexp(0.0, eta)))

    def newton(design: np.ndarray, offset: np.ndarray) -> np.ndarray:
        beta = np.zeros(design.shape[1])
        if np.ptp(design, axis=0)[1:].min(initial=1.0) < 1e-12:  # a constant predictor: no slope
            return np.full(len(beta), math.nan)
        for _ in range(50):  # a regular fit converges (quadratically) in far fewer
            mu = 1 / (1 + np.exp(-np.clip(design @ beta + offset, -500, 500)))
            grad = design.T @ (y - mu)
            hess = (design * (mu * (1 - mu))[:, None]).T @ design
            try:
                step = np.linalg.solve(hess + 1e-9 * np.eye(len(beta)), grad)
            except np.linalg.LinAlgError:
                break
            now, t = loglik(design, offset, beta), 1.0
            while t > 1e-4 and loglik(design, offset, beta + t * step) < now - 1e-12:
                t /= 2
            beta = beta + t * step
            if np.abs(t * step).max() < 1e-10:
                return beta if np.abs(beta).max() < 1e3 else np.full(len(beta), math.nan)
        return np.full(len(beta), math.nan)

    ones = np.ones((len(y), 1))
    slope = newton(np.hstack([ones, o[:, None]]), np.zeros(len(y)))[1]
    intercept = newton(ones, o)[0]
    return float(slope), float(intercept)
