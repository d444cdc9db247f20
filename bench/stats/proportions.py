"""Cluster-aware intervals for sensitivity, specificity, PPV and NPV over seeds
(docs/protocol.md, "Metrics": Clusters, Seeds).

A proportion such as sensitivity is a ratio of image counts, and the images of one lesion or
patient tend to be right or wrong together, so the plain Wilson interval (every image independent)
is too narrow. Pure functions of per-seed 0/1 arrays and ``groups``:

* :func:`clustered_proportion`: the Wilson score interval (Wilson 1927, *JASA* 22:209–212) with the
  sample size divided by the design effect (Rao & Scott 1992, *Biometrics* 48:577–585; Donner &
  Klar 2000, *Design and Analysis of Cluster Randomization Trials*, ch. 5). The variance of the
  ratio estimator is the linearised (Taylor) one over clusters, ``C/(C−1) Σ_c z_c²`` with ``z_c``
  the cluster total of ``(a_i − p d_i)/D``; with several seeds, the mean over seeds of the per-seed
  proportion, its clustered variance plus the sample variance of the per-seed proportions over the
  number of seeds (as :mod:`bench.stats.twolevel`). The design effect is that variance over
  the same formula with every image its own cluster, never taken below 1; so one image per cluster
  (and one seed) gives the plain Wilson interval. Where every image has the same outcome the design
  effect cannot be estimated and is taken at its largest (clusters wholly alike: Kish's effective
  number ``(Σ d_c)² / Σ d_c²``), and ``note`` says so.
* :func:`two_level_proportion`: the two-level bootstrap (seeds and clusters resampled together,
  the draws of :func:`bench.stats.twolevel.two_level_draws`).

A proportion whose denominator is empty in some seed (PPV of a seed that calls no image malignant)
is NaN, and ``note`` names the seed row.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats

from bench.stats.arrays import (
    StatsInputError,
    check,
    check_groups,
    check_level,
    check_n_boot,
)
from bench.stats.metrics import THRESHOLD
from bench.stats.twolevel import (
    ONE_SEED,
    TwoLevelInterval,
    _interval,
    seed_mean_replicates,
    two_level_draws,
)

METRICS = ("sensitivity", "specificity", "ppv", "npv")


@dataclass(frozen=True)
class ProportionInterval:
    """A seed-mean proportion with its cluster-aware (design-effect) Wilson interval.

    ``n``: mean denominator over seeds (images); ``n_eff = n / deff``: the number of independent
    images the clustered data are worth; ``note``: why a value is NaN or how it was taken."""

    estimate: float
    lo: float
    hi: float
    n: float
    n_clusters: int
    deff: float
    n_eff: float
    per_seed: tuple[float, ...]
    note: str = ""


def wilson_interval(p: float, n: float, level: float = 0.95) -> tuple[float, float]:
    """Wilson score interval of a proportion ``p`` out of ``n`` (``n`` may be an effective,
    non-whole number); ``(nan, nan)`` when ``n`` is 0."""
    if not n > 0:
        return math.nan, math.nan
    z = float(stats.norm.ppf(0.5 + level / 2))
    den = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / den
    half = z * math.sqrt(max(p * (1 - p), 0.0) / n + z * z / (4 * n * n)) / den
    return max(0.0, centre - half), min(1.0, centre + half)


def _indicators(numer, denom, n_groups: int) -> tuple[np.ndarray, np.ndarray]:
    a = np.atleast_2d(np.asarray(numer, dtype=float))
    d = np.atleast_2d(np.asarray(denom, dtype=float))
    if a.shape != d.shape or a.shape[1] != n_groups:
        raise StatsInputError(f"numer {a.shape} and denom {d.shape} must both be seeds × images "
                              f"with one group per image ({n_groups})")
    if not (np.isin(a, [0, 1]).all() and np.isin(d, [0, 1]).all()) or (a > d).any():
        raise StatsInputError("numer and denom must be 0/1 with numer only where denom is 1")
    return a, d


def _empty_seed(d: np.ndarray) -> str:
    empty = np.flatnonzero(d.sum(axis=1) == 0)
    if empty.size:
        return (f"seed row {int(empty[0])} has no image in the denominator: the proportion is "
                "undefined")
    return ""


def clustered_proportion(numer, denom, groups, level: float = 0.95) -> ProportionInterval:
    """Mean over seeds of ``Σ numer / Σ denom`` (rows: seeds; 0/1 per image) with the Wilson
    interval on the design-effect sample size (module docstring)."""
    ids, inv = check_groups(groups, np.asarray(numer).shape[-1])
    a, d = _indicators(numer, denom, inv.size)
    level = check_level(level)
    k = a.shape[0]
    nan = math.nan
    dk = d.sum(axis=1)
    units = d.any(axis=0)
    n_cl = len(np.unique(inv[units]))
    note = _empty_seed(d)
    if note:
        return ProportionInterval(nan, nan, nan, float(dk.mean()), n_cl, nan, nan, (nan,) * k, note)
    pk = a.sum(axis=1) / dk
    p = float(pk.mean())
    if n_cl < 2:
        return ProportionInterval(p, nan, nan, float(dk.mean()), n_cl, nan, nan, tuple(pk),
                                  "one cluster: a clustered interval needs at least two")
    u = ((a - pk[:, None] * d) / dk[:, None]).mean(axis=0)  # linearised, per image
    z = np.bincount(inv, weights=u, minlength=len(ids))[np.unique(inv[units])]
    var_cl = n_cl / (n_cl - 1) * float(z @ z)
    note = ""
    if k > 1:
        var = var_cl + float(np.var(pk, ddof=1)) / k
    else:
        var, note = var_cl, ONE_SEED
    n = float(dk.mean())
    var_ref = p * (1 - p) / (n - 1) if n > 1 else 0.0  # var_cl of one seed, one image per cluster
    if var_ref > 0:
        deff = max(var / var_ref, 1.0)
        n_eff = n / deff
    else:
        dc = np.bincount(inv, weights=d.mean(axis=0), minlength=len(ids))
        n_eff = float(dc.sum() ** 2 / (dc @ dc))
        deff = n / n_eff
        note = "; ".join(filter(None, [
            note, "every image has the same outcome: the design effect cannot be estimated and "
                  "is taken at its largest (clusters wholly alike)"]))
    lo, hi = wilson_interval(p, n_eff, level)
    return ProportionInterval(p, lo, hi, n, n_cl, float(deff), float(n_eff),
                              tuple(float(v) for v in pk), note)


def two_level_proportion(numer, denom, groups, n_boot: int = 2000, seed: int = 0,
                         level: float = 0.95) -> TwoLevelInterval:
    """Mean over seeds of ``Σ numer / Σ denom`` with the two-level bootstrap interval (seeds and
    clusters resampled together; a replicate where a drawn seed's denominator is empty is
    skipped)."""
    ids, inv = check_groups(groups, np.asarray(numer).shape[-1])
    a, d = _indicators(numer, denom, inv.size)
    level, n_boot = check_level(level), check_n_boot(n_boot)
    k = a.shape[0]
    note = _empty_seed(d)
    if note:
        nan = math.nan
        n_cl = len(np.unique(inv[d.any(axis=0)]))
        return TwoLevelInterval(nan, nan, nan, nan, (nan,) * k, k, n_cl, 0, note)
    pk = a.sum(axis=1) / d.sum(axis=1)
    n_cl = len(np.unique(inv[d.any(axis=0)]))
    weights, counts = two_level_draws(ids[inv], k, n_boot, seed)
    with np.errstate(invalid="ignore", divide="ignore"):
        values = (weights @ a.T) / (weights @ d.T)
    reps = seed_mean_replicates(values, counts)
    return _interval(float(pk.mean()), pk, reps, n_cl, level, "")


def confusion_indicators(y_true, y_score, groups, threshold: float = THRESHOLD
                         ) -> tuple[dict[str, tuple[np.ndarray, np.ndarray]], np.ndarray]:
    """Per metric (sensitivity, specificity, PPV, NPV) its 0/1 ``(numer, denom)`` per seed ×
    image, the prediction being malignant where the score is at least ``threshold``; and the
    checked groups."""
    c = check(y_true, y_score, groups)
    pos = np.broadcast_to(c.y == 1, c.s.shape)
    pred = c.s >= threshold
    tp, tn = pred & pos, ~pred & ~pos
    out = {"sensitivity": (tp, pos), "specificity": (tn, ~pos), "ppv": (tp, pred),
           "npv": (tn, ~pred)}
    return out, c.ids[c.inv]


def classification_intervals(y_true, y_score, groups, threshold: float = THRESHOLD,
                             level: float = 0.95) -> dict[str, ProportionInterval]:
    """Sensitivity, specificity, PPV and NPV at ``threshold`` (mean over seeds; ``y_score``
    seeds × images) with their design-effect Wilson intervals. PPV and NPV hold at the test set's
    own prevalence only (docs/protocol.md, "Metrics": Calibration and prevalence)."""
    parts, g = confusion_indicators(y_true, y_score, groups, threshold)
    return {name: clustered_proportion(a, d, g, level) for name, (a, d) in parts.items()}


def classification_bootstrap(y_true, y_score, groups, threshold: float = THRESHOLD,
                             n_boot: int = 2000, seed: int = 0,
                             level: float = 0.95) -> dict[str, TwoLevelInterval]:
    """The same four proportions with two-level bootstrap intervals (one draw for all four)."""
    parts, g = confusion_indicators(y_true, y_score, groups, threshold)
    return {name: two_level_proportion(a, d, g, n_boot, seed, level)
            for name, (a, d) in parts.items()}
