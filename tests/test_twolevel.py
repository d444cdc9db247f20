"""Two-level (training seeds × test clusters) AUC and ΔAUC (bench.stats.twolevel) against a
slow loop on the same draws, the exact bootstrap distribution of a tiny case, the one-level
cluster bootstrap and the variance-components formula."""

import itertools
import math

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from bench.core.errors import BenchError
from bench.stats.arrays import StatsInputError
from bench.stats.calibration import cluster_weights
from bench.stats.clustered import obuchowski_covariance
from bench.stats.contrasts import matched_delta, seed_mean_auc, weighted_aucs
from bench.stats.twolevel import (
    auc_variance_components,
    delta_variance_components,
    satterthwaite_df,
    two_level_auc,
    two_level_delta,
    two_level_draws,
    weighted_auc_matrix,
)


def clustered_case(n_clusters=40, seeds=3, seed_sd=0.0, image_sd=0.8, seed=0):
    """Lesions of 1-3 images (one label each) scored by ``seeds`` seeds: a lesion effect shared by
    all seeds, a per-seed shift of the class separation (``seed_sd``) and per-image noise."""
    rng = np.random.default_rng(seed)
    sizes = rng.integers(1, 4, n_clusters)
    label = np.arange(n_clusters) % 2
    y = np.repeat(label, sizes)
    g = np.repeat([f"L{i}" for i in range(n_clusters)], sizes)
    lesion = np.repeat(rng.normal(0, 0.7, n_clusters), sizes)
    shift = 1.0 + rng.normal(0, seed_sd, (seeds, 1))
    s = shift * y + lesion + rng.normal(0, image_sd, (seeds, y.size))
    return y, np.round(s, 1), g  # rounded: ties


def pair_auc(y, s):
    """AUC by brute force: the share of (malignant, benign) pairs ranked right, ties half."""
    p, n = s[y == 1][:, None], s[y == 0][None, :]
    return float(((p > n) + 0.5 * (p == n)).mean())


def slow_replicates(y, scores, weights, counts):
    """Replicate statistics by brute force: images repeated as often as drawn, each drawn seed's
    AUC over all pairs, their mean; NaN for a one-class replicate."""
    out = []
    for w, c in zip(weights, counts, strict=True):
        take = np.repeat(np.arange(y.size), w.astype(int))
        if len(set(y[take])) < 2:
            out.append(math.nan)
            continue
        drawn = np.repeat(np.arange(len(c)), c.astype(int))
        out.append(np.mean([pair_auc(y[take], scores[k][take]) for k in drawn]))
    return np.array(out)


def test_weighted_auc_matrix_equals_the_pairwise_sum_to_the_last_bit():
    y, s, g = clustered_case(seeds=2)
    w = cluster_weights(g, 50, 3)
    got = weighted_auc_matrix(y, s, w)
    for k in range(2):
        assert np.array_equal(got[:, k], weighted_aucs(y, s[k], w))


def test_two_level_auc_matches_a_slow_loop_on_the_same_draws():
    y, s, g = clustered_case(n_clusters=10, seeds=3, seed_sd=0.3)
    n_boot = 200
    weights, counts = two_level_draws(g, 3, n_boot, seed=5)
    reps = slow_replicates(y, s, weights, counts)
    ok = reps[~np.isnan(reps)]
    r = two_level_auc(y, s, g, n_boot=n_boot, seed=5)
    lo, hi = np.quantile(ok, [0.025, 0.975])
    assert (r.lo, r.hi, r.se) == pytest.approx((lo, hi, ok.std(ddof=1)), abs=1e-12)
    assert r.n_boot == ok.size
    assert r.estimate == pytest.approx(np.mean([roc_auc_score(y, row) for row in s]))


def test_two_level_delta_matches_a_slow_loop_with_one_draw_for_both_models():
    y, a, g = clustered_case(n_clusters=10, seeds=2, seed_sd=0.3, seed=1)
    b = a + np.random.default_rng(2).normal(0, 0.5, a.shape)
    weights, counts = two_level_draws(g, 2, 150, seed=7)
    reps = slow_replicates(y, a, weights, counts) - slow_replicates(y, b, weights, counts)
    ok = reps[~np.isnan(reps)]
    r = two_level_delta(y, a, b, g, n_boot=150, seed=7)
    lo, hi = np.quantile(ok, [0.025, 0.975])
    assert (r.lo, r.hi, r.se) == pytest.approx((lo, hi, ok.std(ddof=1)), abs=1e-12)
    per_seed = [roc_auc_score(y, a[k]) - roc_auc_score(y, b[k]) for k in range(2)]
    assert r.per_seed == pytest.approx(per_seed)
    assert r.estimate == pytest.approx(np.mean(per_seed))


def test_two_seeds_three_clusters_match_the_exact_bootstrap_distribution():
    # clusters A = {pos .9, neg .3}, B = {pos .6}, C = {neg .5}; seed 2 swaps B's and C's order
    y = np.array([1, 0, 1, 0])
    g = np.array(["A", "A", "B", "C"])
    s = np.array([[0.9, 0.3, 0.6, 0.5], [0.9, 0.3, 0.4, 0.5]])
    # by hand: seed 1 pairs (.9>.3, .9>.5, .6>.3, .6>.5) AUC 1; seed 2 (.4<.5) AUC 3/4
    r = two_level_auc(y, s, g, n_boot=20000, seed=1)
    assert r.per_seed == (1.0, 0.75) and r.estimate == 0.875
    # exact: 27 equally likely ordered cluster draws (those with both classes kept) × 4 seed draws
    values = []
    for draw in itertools.product(range(3), repeat=3):
        take = np.concatenate([np.flatnonzero(g == "ABC"[c]) for c in draw])
        if len(set(y[take])) < 2:
            continue
        aucs = [roc_auc_score(y[take], row[take]) for row in s]
        values += [(aucs[i] + aucs[j]) / 2 for i in range(2) for j in range(2)]
    values = np.array(values)
    assert r.se == pytest.approx(values.std(), rel=0.03)
    kept = 1 - 2 / 27  # only the draws of B alone and of C alone hold one class
    assert r.n_boot == pytest.approx(20000 * kept, rel=0.02)


def test_identical_seeds_give_exactly_the_one_level_cluster_bootstrap_interval():
    y, s, g = clustered_case(seeds=1)
    three = np.vstack([s, s, s])
    r = two_level_auc(y, three, g, n_boot=300, seed=4)
    one = seed_mean_auc(y, three, g, n_boot=300, seed=4)
    assert (r.lo, r.hi) == pytest.approx((one.boot_lo, one.boot_hi), abs=1e-12)
    other = three + np.random.default_rng(1).normal(0, 0.5, y.size)  # same in every seed
    d = two_level_delta(y, three, other, g, n_boot=300, seed=4)
    one = matched_delta(y, three, other, g, n_boot=300, seed=4)
    assert (d.lo, d.hi) == pytest.approx((one.boot_lo, one.boot_hi), abs=1e-12)


def test_seeds_that_differ_widen_the_interval_beyond_the_one_level_one():
    y, s, g = clustered_case(seeds=3, seed_sd=0.6, seed=3)
    r = two_level_auc(y, s, g, n_boot=400, seed=2)
    one = seed_mean_auc(y, s, g, n_boot=400, seed=2)
    assert r.hi - r.lo > 1.15 * (one.boot_hi - one.boot_lo)
    ref = s[:1].repeat(3, axis=0)
    d = two_level_delta(y, s, ref, g, n_boot=400, seed=2)
    one = matched_delta(y, s, ref, g, n_boot=400, seed=2)
    assert d.hi - d.lo > 1.15 * (one.boot_hi - one.boot_lo)


def test_variance_components_are_the_clustered_variance_plus_seed_variance_over_k():
    y, a, g = clustered_case(seeds=3, seed_sd=0.4, seed=4)
    b = a + np.random.default_rng(5).normal(0, [[0.3], [0.6], [0.9]], a.shape)
    c = delta_variance_components(y, a, b, g)
    _, cov, _ = obuchowski_covariance(y, np.vstack([a, b]), g)
    w = np.r_[np.full(3, 1 / 3), np.full(3, -1 / 3)]
    per_seed = [roc_auc_score(y, a[k]) - roc_auc_score(y, b[k]) for k in range(3)]
    assert c.clustered_var == pytest.approx(w @ cov @ w)
    assert c.seed_var == pytest.approx(np.var(per_seed, ddof=1))
    assert c.se == pytest.approx(math.sqrt(w @ cov @ w + np.var(per_seed, ddof=1) / 3))
    assert c.df == pytest.approx(satterthwaite_df(c.clustered_var, c.n_clusters,
                                                  c.seed_var / 3, 3))


def test_the_statisticians_googlenet_numbers_follow_from_the_formula():
    # clustered interval [-0.027, 0.126] and per-seed ΔAUC +0.102, +0.026, +0.020 give, with the
    # seed variance, [-0.043, 0.142] (normal reference, as quoted)
    per_seed = np.array([0.102, 0.026, 0.020])
    se_cl = (0.126 + 0.027) / (2 * 1.959964)
    se = math.sqrt(se_cl**2 + per_seed.var(ddof=1) / 3)
    mean = per_seed.mean()
    assert (mean - 1.959964 * se, mean + 1.959964 * se) == pytest.approx((-0.043, 0.142), abs=1e-3)


def test_bootstrap_se_agrees_with_the_variance_components_formula():
    y, s, g = clustered_case(n_clusters=60, seeds=6, seed_sd=0.4, seed=6)
    boot = two_level_auc(y, s, g, n_boot=3000, seed=1)
    comp = auc_variance_components(y, s, g, ddof=0)  # the bootstrap's plug-in seed variance
    assert boot.se == pytest.approx(comp.se, rel=0.12)
    assert comp.estimate == boot.estimate


def test_subtracting_the_interaction_never_raises_the_se():
    y, s, g = clustered_case(seeds=4, seed_sd=0.1, image_sd=1.2, seed=7)
    plain = auc_variance_components(y, s, g)
    net = auc_variance_components(y, s, g, subtract_interaction=True)
    assert 0 < net.interaction_var and net.se <= plain.se
    assert net.clustered_var == plain.clustered_var


def test_seeds_are_matched_by_number():
    y, a, g = clustered_case(seeds=3, seed=8)
    b = a[::-1] + 0.1
    r = two_level_delta(y, a, b, g, seeds_a=[1, 2, 3], seeds_b=[7, 3, 2], n_boot=50)
    # seeds 2 and 3: rows 1, 2 of a against rows 2, 1 of b
    want = [roc_auc_score(y, a[1]) - roc_auc_score(y, b[2]),
            roc_auc_score(y, a[2]) - roc_auc_score(y, b[1])]
    assert r.n_seeds == 2 and r.per_seed == pytest.approx(want)
    none = two_level_delta(y, a, b, g, seeds_a=[1, 2, 3], seeds_b=[4, 5, 6], n_boot=50)
    assert math.isnan(none.estimate) and "no seed in common" in none.note


def test_undefined_results_are_nan_with_the_reason():
    y, s, g = clustered_case(seeds=2)
    one_class = two_level_auc(np.ones_like(y), s, g, n_boot=20)
    assert math.isnan(one_class.lo) and "one class" in one_class.note
    comp = auc_variance_components(np.zeros_like(y), s, g)
    assert math.isnan(comp.se) and "one class" in comp.note
    single = two_level_auc(y, s[:1], g, n_boot=20)
    assert not math.isnan(single.lo) and single.note.startswith("one seed")
    single = auc_variance_components(y, s[:1], g)
    assert math.isnan(single.seed_var) and single.note.startswith("one seed")
    lone = two_level_auc(y, s, np.zeros(y.size), n_boot=20)
    assert math.isnan(lone.estimate) and "one cluster" in lone.note


@pytest.mark.parametrize("change, says", [
    (lambda y, s, g: (y[:-1], s, g), "y_score must be one row"),
    (lambda y, s, g: (y + 1, s, g), "y_true must hold 0"),
    (lambda y, s, g: (y, np.where(s > 0, np.nan, s), g), "finite"),
    (lambda y, s, g: (y, s, g[:-1]), "groups must give one cluster per image"),
])
def test_bad_arrays_raise_one_line_that_names_the_argument(change, says):
    y, s, g = clustered_case(seeds=2)
    with pytest.raises(StatsInputError, match=says) as err:
        two_level_auc(*change(y, s, g), n_boot=10)
    assert isinstance(err.value, ValueError) and isinstance(err.value, BenchError)
    assert "\n" not in str(err.value)
    with pytest.raises(StatsInputError, match="n_boot"):
        two_level_auc(y, s, g, n_boot=1)
    with pytest.raises(StatsInputError, match="level"):
        two_level_auc(y, s, g, n_boot=10, level=95)
    with pytest.raises(StatsInputError, match="as many rows"):
        two_level_delta(y, s, s[:1], g)
