"""Minimum detectable ΔAUC of a paired comparison on a given test set (docs/protocol.md,
"Metrics": an interval that holds 0 shows no difference and bounds it).

A comparison that shows no difference says little unless the test set could have shown one. The
minimum detectable difference (MDD) at power ``1 − β`` of a two-sided z test at level ``α`` is
``(z_{1−α/2} + z_{1−β}) · SE`` (e.g. Chow, Shao & Wang 2008, *Sample Size Calculations in Clinical
Research*, §3.2; for ΔAUC Obuchowski & McClish 1997, *Statistics in Medicine* 16:1529–1542), with
``SE`` the standard error of the contrast, here the two-level one (test clusters and training
seeds: :mod:`bench.stats.twolevel`). It takes the SE under the alternative to be the SE
observed, as these formulas do.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from scipy import stats

from bench.stats.arrays import StatsInputError
from bench.stats.twolevel import delta_variance_components, two_level_delta

ALPHA = 0.05
POWER = 0.80


@dataclass(frozen=True)
class DetectableDelta:
    """The minimum detectable |ΔAUC|, the standard error it comes from and the degrees of
    freedom of its test (inf: z)."""

    mdd: float
    se: float
    df: float
    alpha: float
    power: float
    n_seeds: int
    n_clusters: int
    note: str = ""


def _check(alpha: float, power: float) -> None:
    if not 0 < alpha < 1:
        raise StatsInputError(f"alpha {alpha} must lie strictly between 0 and 1 (e.g. 0.05)")
    if not 0 < power < 1:
        raise StatsInputError(f"power {power} must lie strictly between 0 and 1 (e.g. 0.8)")


def min_detectable_delta(se: float, alpha: float = ALPHA, power: float = POWER,
                         df: float = math.inf) -> float:
    """``(z_{1−α/2} + z_{power}) · se``: the smallest |ΔAUC| a two-sided z test at level ``alpha``
    detects with probability ``power`` when the contrast's standard error is ``se`` (2.80 · se
    at the defaults); with finite ``df`` the t quantiles on ``df`` degrees of freedom instead (the
    t test of :func:`bench.stats.twolevel.delta_variance_components`). NaN for a NaN ``se``."""
    _check(alpha, power)
    if math.isnan(se):
        return math.nan
    if se < 0:
        raise StatsInputError(f"se {se} must not be negative")
    if not df > 0:
        raise StatsInputError(f"df {df} must be positive (math.inf for the z test)")
    if math.isinf(df):
        return float((stats.norm.ppf(1 - alpha / 2) + stats.norm.ppf(power)) * se)
    return float((stats.t.ppf(1 - alpha / 2, df) + stats.t.ppf(power, df)) * se)


def min_detectable_delta_from_data(y_true, scores_a, scores_b, groups, seeds_a=None,
                                   seeds_b=None, alpha: float = ALPHA, power: float = POWER,
                                   method: str = "components", n_boot: int = 2000,
                                   seed: int = 0,
                                   subtract_interaction: bool = False) -> DetectableDelta:
    """The MDD of the paired ΔAUC of models a and b (seeds × images each, matched seeds) on this
    test set, from its two-level SE: ``method="components"`` (Obuchowski's clustered variance plus
    the between-seed variance over the number of seeds) or ``"bootstrap"`` (the two-level
    bootstrap SE, z quantiles); ``subtract_interaction`` as there. The components' test is a t test on Welch–Satterthwaite degrees
    of freedom, so its MDD uses t quantiles on them (with three seeds, noticeably more than
    2.80 · SE). NaN with the reason where the SE is undefined."""
    _check(alpha, power)
    if method == "components":
        c = delta_variance_components(y_true, scores_a, scores_b, groups, seeds_a, seeds_b,
                                      subtract_interaction=subtract_interaction)
        se, df, n_seeds, n_cl, note = c.se, c.df, c.n_seeds, c.n_clusters, c.note
    elif method == "bootstrap":
        b = two_level_delta(y_true, scores_a, scores_b, groups, seeds_a, seeds_b, n_boot=n_boot,
                            seed=seed)
        se, df, n_seeds, n_cl, note = b.se, math.inf, b.n_seeds, b.n_clusters, b.note
    else:
        raise StatsInputError(f"`method`={method!r}: choose components or bootstrap")
    df = math.inf if math.isnan(df) else df
    return DetectableDelta(min_detectable_delta(se, alpha, power, df), se, df, alpha, power,
                           n_seeds, n_cl, note)
