"""Matched seed contrasts (bench.stats.contrasts) and calibration/prevalence (bench.stats.calibration) against
hand computations and the single-model statistics they generalise."""

import math

import numpy as np
import pandas as pd
import pytest

from bench.stats.calibration import (
    calibration,
    cluster_weights,
    predictive_values,
    predictive_values_at,
    reliability_bins,
    weighted_slope_intercept,
)
from bench.stats.clustered import obuchowski_auc, obuchowski_delta
from bench.stats.contrasts import (
    auc_contrast,
    groups_of,
    matched_delta,
    paired_fold_delta,
    reading,
    seed_mean_auc,
    verdict,
)
from bench.stats.stats import calibration_slope_intercept, delong_ci, delong_test, wilson_ci


def _data(seed=0, n=80, clusters=30):
    rng = np.random.default_rng(seed)
    g = rng.integers(0, clusters, n).astype(str)
    y = rng.integers(0, 2, n)
    return y, g, rng


def test_one_seed_contrast_is_obuchowskis_auc_and_delongs_secondary_interval():
    y, g, rng = _data()
    s = rng.normal(y, 1.0)
    got = seed_mean_auc(y, s[None], g, n_boot=50)
    ref = obuchowski_auc(y, s, g)
    assert (got.value, got.se, got.lo, got.hi) == pytest.approx((ref.auc, ref.se, ref.lo, ref.hi))
    assert (got.image_lo, got.image_hi) == pytest.approx(delong_ci(y, s)[1:])
    assert got.n_clusters == ref.n_clusters and got.n_images == 80


def test_matched_delta_on_one_seed_is_obuchowskis_paired_delta():
    y, g, rng = _data(1)
    a, b = rng.normal(y, 1.0), rng.normal(y, 2.0)
    got = matched_delta(y, a[None], b[None], g, n_boot=50)
    ref = obuchowski_delta(y, a, b, g)
    assert (got.value, got.se, got.p) == pytest.approx((ref.delta, ref.se, ref.p))
    assert got.image_p == pytest.approx(delong_test(y, a, b)[1])


def test_matched_delta_is_the_mean_of_per_seed_deltas_and_a_repeated_seed_adds_nothing():
    y, g, rng = _data(2)
    a = rng.normal(y, 1.0, (2, 80))
    b = rng.normal(y, 1.5, (2, 80))
    got = matched_delta(y, a, b, g, n_boot=0)
    per_seed = [obuchowski_delta(y, a[k], b[k], g).delta for k in range(2)]
    assert got.value == pytest.approx(np.mean(per_seed))
    twice = matched_delta(y, np.vstack([a[:1], a[:1]]), np.vstack([b[:1], b[:1]]), g, n_boot=0)
    once = obuchowski_delta(y, a[0], b[0], g)
    assert twice.se == pytest.approx(once.se) and math.isnan(twice.boot_lo)


def test_cluster_bootstrap_of_a_contrast_keeps_clusters_together():
    # every cluster holds two copies of one image: the clustered interval must not shrink
    y, g, rng = _data(3, n=60, clusters=60)
    g = np.arange(60).astype(str)
    s = rng.normal(y, 1.0)
    single = auc_contrast(y, s[None], [1.0], g, n_boot=400)
    doubled = auc_contrast(np.r_[y, y], np.r_[s, s][None], [1.0], np.r_[g, g], n_boot=400)
    assert doubled.se == pytest.approx(single.se, rel=0.05)
    assert doubled.hi - doubled.lo == pytest.approx(single.hi - single.lo, rel=0.05)
    assert doubled.boot_hi - doubled.boot_lo == pytest.approx(single.boot_hi - single.boot_lo,
                                                             rel=0.25)
    assert doubled.image_hi - doubled.image_lo < 0.8 * (doubled.hi - doubled.lo)


def test_a_weighted_replicate_auc_is_the_auc_of_the_resampled_images():
    from sklearn.metrics import roc_auc_score

    from bench.stats.contrasts import weighted_aucs
    y, g, rng = _data(7)
    s = np.round(rng.normal(y, 1.0), 1)  # ties included
    w = cluster_weights(g, 4, seed=3)
    got = weighted_aucs(y, s, w)
    for k in range(4):
        idx = np.repeat(np.arange(len(y)), w[k].astype(int))
        assert got[k] == pytest.approx(roc_auc_score(y[idx], s[idx]))


def test_groups_default_to_one_image_each():
    frame = pd.DataFrame({"id": ["a", "b", "c"], "group": ["g1", "", "g1"]})
    assert list(groups_of(frame)) == ["g1", "image:b", "g1"]
    assert list(groups_of(frame.drop(columns="group"))) == ["image:a", "image:b", "image:c"]


def test_paired_fold_delta_matches_a_hand_computed_corrected_t_interval():
    base = pd.DataFrame({"seed": [0, 0, 1, 1], "fold": [0, 1, 0, 1], "status": "ok",
                         "auc": [0.80, 0.70, 0.75, 0.85]})
    var = base.assign(auc=[0.82, 0.75, 0.74, 0.90])
    var.loc[4] = [2, 0, "ok", 0.9]  # a seed the base lacks: not paired
    got = paired_fold_delta(var, base)
    d = np.array([0.02, 0.05, -0.01, 0.05])
    se = math.sqrt((1 / 4 + 1 / (2 - 1)) * d.var(ddof=1))
    from scipy import stats
    t = stats.t.ppf(0.975, 3)
    assert got.n_pairs == 4 and got.seeds == "0,1"
    assert (got.delta, got.lo, got.hi) == pytest.approx((d.mean(), d.mean() - t * se,
                                                         d.mean() + t * se))
    assert reading(got.lo, got.hi).startswith("no difference shown; compatible with -")
    assert reading(0.01, 0.02) == "higher (+0.010 to +0.020)"


def test_weighted_calibration_fit_equals_the_fit_on_the_resampled_images():
    y, g, rng = _data(4, n=120, clusters=40)
    p = 1 / (1 + np.exp(-rng.normal(2 * y - 1, 1.0)))
    w = cluster_weights(g, 5, seed=7)
    slope, intercept = weighted_slope_intercept(y, p, w)
    for k in range(5):
        idx = np.repeat(np.arange(len(y)), w[k].astype(int))
        want = calibration_slope_intercept(y[idx], p[idx])
        assert (slope[k], intercept[k]) == pytest.approx(want, abs=1e-6)
    # the cluster weights: each replicate draws as many clusters as there are
    _, inv = np.unique(g, return_inverse=True)
    first = {inv[i]: w[0, i] for i in range(len(y))}
    assert sum(first.values()) == len(np.unique(g))


def test_calibration_gives_the_seed_mean_and_intervals_around_it():
    y, g, rng = _data(5, n=100, clusters=50)
    p = 1 / (1 + np.exp(-rng.normal(2 * y - 1, 1.0, (2, 100))))
    c = calibration(y, p, g, n_boot=300)
    assert c.brier.value == pytest.approx(np.mean([np.mean((row - y) ** 2) for row in p]))
    fits = [calibration_slope_intercept(y, row) for row in p]
    assert c.slope.value == pytest.approx(np.mean([f[0] for f in fits]))
    for iv in (c.brier, c.slope, c.intercept):
        assert iv.lo < iv.value < iv.hi


def test_predictive_values_at_another_prevalence_follow_bayes_rule():
    # the paper's counts: sensitivity 44/50, specificity 48/50 -> PPV 44/46 and NPV 48/54 at 50 %
    assert predictive_values(0.88, 0.96, 0.5) == pytest.approx((44 / 46, 48 / 54))
    ppv, npv = predictive_values(0.88, 0.96, 0.32)
    assert ppv == pytest.approx(0.88 * 0.32 / (0.88 * 0.32 + 0.04 * 0.68))
    assert npv == pytest.approx(0.96 * 0.68 / (0.96 * 0.68 + 0.12 * 0.32))
    y = np.array([0] * 50 + [1] * 50)
    prob = np.r_[np.full(48, 0.1), np.full(2, 0.9), np.full(44, 0.9), np.full(6, 0.1)]
    at, nt = predictive_values_at(y, prob[None], np.arange(100), 0.32, n_boot=200)
    assert (at.value, nt.value) == pytest.approx((ppv, npv))
    assert at.lo < at.value < at.hi and nt.lo < nt.value <= nt.hi


def test_reliability_bins_hold_enough_images_with_wilson_intervals():
    rng = np.random.default_rng(6)
    p = rng.uniform(0, 1, 100)
    y = (rng.uniform(0, 1, 100) < p).astype(int)
    bins = reliability_bins(y, p, min_count=20)
    assert list(bins["count"]) == [20] * 5
    assert (bins.p_min.diff().dropna() > 0).all()
    first = np.sort(p)[:20]
    assert bins.mean_pred[0] == pytest.approx(first.mean())
    k = int(y[np.argsort(p)[:20]].sum())
    assert (bins.frac_lo[0], bins.frac_hi[0]) == pytest.approx(wilson_ci(k, 20))
    assert list(reliability_bins(y[:30], p[:30], min_count=20)["count"]) == [30]


# verdict: the one sentence a ΔAUC contrast allows


def test_verdict_says_differs_only_when_holm_p_is_small_and_the_interval_excludes_0():
    assert verdict(-0.109, -0.203, -0.015, 0.01, 0.12) == (
        "ΔAUC −0.109 [−0.203, −0.015]; Holm-adjusted p = 0.010: differs (lower)")
    assert verdict(0.15, 0.06, 0.24, 0.0004, 0.1).endswith("p < 0.001: differs (higher)")


def test_verdict_says_no_difference_shown_with_the_bound_and_the_mdd():
    assert verdict(-0.109, -0.203, -0.015, 0.28, 0.12) == (
        "ΔAUC −0.109 [−0.203, −0.015]; Holm-adjusted p = 0.28: no difference shown; differences "
        "up to 0.203 cannot be excluded, and this test set detects only |ΔAUC| ≥ 0.120 "
        "(80 % power)")
    text = verdict(0.05, -0.043, 0.142, 0.3, math.nan)
    assert "no difference shown; differences up to 0.142" in text
    assert text.endswith("the minimum detectable difference is unknown")


def test_verdict_does_not_say_differs_when_the_interval_holds_0_despite_a_small_p():
    text = verdict(0.05, -0.01, 0.11, 0.03, 0.1)
    assert "no difference shown (the interval holds 0)" in text and "differs" not in text


def test_verdict_of_an_undefined_contrast_says_not_tested():
    assert verdict(math.nan, math.nan, math.nan, math.nan, 0.1) == "ΔAUC undefined: not tested"
    assert verdict(0.02, math.nan, math.nan, 0.5, 0.1) == (
        "ΔAUC +0.020 (no interval or p-value): not tested")


def test_verdict_refuses_numbers_that_cannot_be_a_contrast():
    with pytest.raises(ValueError, match="lo must not exceed hi"):
        verdict(0.0, 0.1, -0.1, 0.5, 0.1)
    with pytest.raises(ValueError, match="p_holm"):
        verdict(0.0, -0.1, 0.1, 1.5, 0.1)
    with pytest.raises(ValueError, match="alpha"):
        verdict(0.0, -0.1, 0.1, 0.5, 0.1, alpha=5)
