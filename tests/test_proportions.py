"""Cluster-aware intervals of sensitivity, specificity, PPV and NPV over seeds
(bench.stats.proportions) against the plain Wilson interval and hand computations."""

import math

import numpy as np
import pytest

from bench.stats.arrays import StatsInputError
from bench.stats.calibration import cluster_weights
from bench.stats.metrics import binary_metrics
from bench.stats.proportions import (
    classification_bootstrap,
    classification_intervals,
    clustered_proportion,
    two_level_proportion,
    wilson_interval,
)
from bench.stats.stats import wilson_ci

RIGHT = np.array([1, 1, 0, 1, 1, 1, 0, 1, 1, 0, 1, 1, 1, 1, 0, 1, 0, 1, 1, 1])  # 15 of 20


def test_one_image_per_cluster_gives_the_plain_wilson_interval():
    ones = np.ones_like(RIGHT)
    r = clustered_proportion(RIGHT, ones, np.arange(20))
    assert r.estimate == 0.75 and r.deff == pytest.approx(1.0) and r.n_eff == pytest.approx(20)
    assert (r.lo, r.hi) == pytest.approx(wilson_ci(15, 20), abs=1e-12)
    same = clustered_proportion(np.vstack([RIGHT] * 3), np.vstack([ones] * 3), np.arange(20))
    assert (same.lo, same.hi) == pytest.approx(wilson_ci(15, 20), abs=1e-12)


def test_homogeneous_duplicates_widen_the_interval_to_about_one_image_per_cluster():
    x = np.repeat(RIGHT, 3)  # every image photographed three times, each copy scored alike
    r = clustered_proportion(x, np.ones_like(x), np.repeat(np.arange(20), 3))
    naive = wilson_ci(45, 60)
    assert r.hi - r.lo > 1.5 * (naive[1] - naive[0])
    assert r.deff == pytest.approx(3 * 59 / 57)  # hand: (C/(C-1)) 9 Σ(x-p)² / 60² over p(1-p)/59
    assert (r.lo, r.hi) == pytest.approx(wilson_ci(15, 20), abs=0.01)


def test_the_design_effect_matches_a_hand_computation():
    # clusters {1,1}, {0,0}, {1,0}, {1}: p = 4/7; z_c = a_c - p m_c over D = 7
    a = np.array([1, 1, 0, 0, 1, 0, 1])
    g = np.array([0, 0, 1, 1, 2, 2, 3])
    p = 4 / 7
    z = np.array([2 - 2 * p, 0 - 2 * p, 1 - 2 * p, 1 - p]) / 7
    var = 4 / 3 * (z @ z)
    deff = var / (p * (1 - p) / 6)
    r = clustered_proportion(a, np.ones(7), g)
    assert r.deff == pytest.approx(deff) and r.n_eff == pytest.approx(7 / deff)
    assert (r.lo, r.hi) == pytest.approx(wilson_interval(p, 7 / deff))


def test_seeds_that_disagree_widen_the_interval():
    rng = np.random.default_rng(0)
    same = np.vstack([RIGHT] * 3)
    differ = np.vstack([RIGHT, RIGHT * (rng.random(20) < 0.6), np.maximum(RIGHT, rng.random(20) < 0.9)])
    ones = np.ones((3, 20))
    a = clustered_proportion(same, ones, np.arange(20))
    b = clustered_proportion(differ, ones, np.arange(20))
    assert b.per_seed != a.per_seed and b.deff > 1
    assert b.hi - b.lo > a.hi - a.lo


def test_sensitivity_specificity_ppv_npv_are_the_seed_means_of_the_usual_ones():
    rng = np.random.default_rng(1)
    y = np.repeat([0, 1], 15)
    g = np.repeat(np.arange(10), 3)
    s = np.clip(rng.normal(0.3 + 0.4 * y, 0.25, (2, 30)), 0, 1)
    s[0, 0] = 0.5  # exactly at the threshold: malignant
    r = classification_intervals(y, s, g)
    per_seed = [binary_metrics(y, row) for row in s]
    for name in ("sensitivity", "specificity", "ppv", "npv"):
        assert r[name].estimate == pytest.approx(np.mean([m[name] for m in per_seed]))
        assert r[name].lo <= r[name].estimate <= r[name].hi
    assert r["sensitivity"].n == 15 and r["sensitivity"].n_clusters == 5
    boot = classification_bootstrap(y, s, g, n_boot=200)
    assert boot["specificity"].estimate == r["specificity"].estimate


def test_a_ppv_with_no_malignant_call_is_nan_naming_the_seed():
    y = np.array([0, 1, 0, 1])
    s = np.array([[0.9, 0.8, 0.1, 0.7], [0.1, 0.2, 0.3, 0.4]])
    r = classification_intervals(y, s, np.arange(4))
    assert math.isnan(r["ppv"].estimate) and "seed row 1" in r["ppv"].note
    assert r["npv"].estimate == pytest.approx((1 / 1 + 2 / 4) / 2)  # seed 0: 1 of 1; seed 1: 2 of 4


def test_every_image_right_takes_the_largest_design_effect_and_says_so():
    r = clustered_proportion(np.ones(6), np.ones(6), [0, 0, 0, 1, 1, 2])
    assert r.estimate == 1.0 and r.n_eff == pytest.approx(36 / 14)
    assert "design effect cannot be estimated" in r.note


def test_identical_seeds_bootstrap_is_the_one_level_cluster_bootstrap():
    g = np.repeat(np.arange(10), 2)
    w = cluster_weights(g, 300, 2)
    one = (w @ RIGHT) / w.sum(1)
    r = two_level_proportion(np.vstack([RIGHT] * 2), np.ones((2, 20)), g, n_boot=300, seed=2)
    assert (r.lo, r.hi) == pytest.approx(tuple(np.quantile(one, [0.025, 0.975])), abs=1e-12)


def test_bad_indicators_are_refused():
    with pytest.raises(StatsInputError, match="numer only where denom"):
        clustered_proportion([1, 1], [1, 0], [0, 1])
    with pytest.raises(StatsInputError, match="groups must give one cluster"):
        clustered_proportion([1, 1], [1, 1], [0])
