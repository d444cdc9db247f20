"""Cluster-aware ROC statistics (bench.stats.clustered) against hand computations and DeLong."""

import numpy as np
import pytest

from bench.stats.clustered import (
    cluster_bootstrap_delta,
    cluster_resamples,
    mann_whitney_auc,
    midranks,
    obuchowski_auc,
    obuchowski_covariance,
    obuchowski_delta,
)
from bench.stats.stats import delong_covariance


def test_obuchowski_matches_a_hand_computation_on_three_clusters():
    # clusters: A = {pos 0.9, neg 0.2}, B = {pos 0.4}, C = {neg 0.6}
    y = np.array([1, 0, 1, 0])
    s = np.array([0.9, 0.2, 0.4, 0.6])
    g = np.array(["A", "A", "B", "C"])
    # psi(pos, neg): 0.9>0.2, 0.9>0.6, 0.4>0.2, 0.4<0.6  -> AUC 3/4
    # V10: 0.9 -> 1, 0.4 -> 1/2; V01: 0.2 -> 1, 0.6 -> 1/2
    # per cluster: V10 = (1, 1/2, 0), V01 = (1, 0, 1/2); m_i = (1,1,0), n_i = (1,0,1)
    # d10 = V10 - AUC*m_i = (1/4, -1/4, 0); d01 = V01 - AUC*n_i = (1/4, 0, -1/4)
    d10 = np.array([0.25, -0.25, 0.0])
    d01 = np.array([0.25, 0.0, -0.25])
    f = 3 / 2
    s10, s01, s11 = f * d10 @ d10 / 2, f * d01 @ d01 / 2, f * d10 @ d01
    want = s10 / 2 + s01 / 2 + 2 * s11 / 4
    aucs, cov, n_cl = obuchowski_covariance(y, s, g)
    assert aucs[0] == pytest.approx(0.75)
    assert cov[0, 0] == pytest.approx(want)
    assert n_cl == 3


def test_one_image_per_cluster_gives_delongs_variance_up_to_the_small_sample_factor():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 80)
    s = rng.normal(y, 1.0)
    _, cov_o, n_cl = obuchowski_covariance(y, s, np.arange(80))
    _, cov_d = delong_covariance(y, s)
    m, n = y.sum(), (1 - y).sum()
    # DeLong divides by m-1 and n-1, Obuchowski by m and n times I/(I-1)
    assert cov_o[0, 0] == pytest.approx(cov_d[0, 0], rel=0.08)
    assert n_cl == 80 and m > 0 and n > 0


def test_copies_of_the_same_image_do_not_shrink_the_clustered_interval():
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 60)
    s = rng.normal(y, 1.0)
    once = obuchowski_auc(y, s, np.arange(60))
    y3, s3, g3 = np.repeat(y, 3), np.repeat(s, 3), np.repeat(np.arange(60), 3)
    thrice = obuchowski_auc(y3, s3, g3)
    naive = obuchowski_auc(y3, s3, np.arange(180))
    assert thrice.auc == pytest.approx(once.auc)
    assert thrice.se == pytest.approx(once.se, rel=0.05)
    assert naive.se < 0.7 * thrice.se  # images as if independent: too certain


def test_paired_delta_of_a_model_with_itself_is_zero_with_p_one():
    rng = np.random.default_rng(2)
    y = rng.integers(0, 2, 50)
    s = rng.normal(y, 1.0)
    d = obuchowski_delta(y, s, s, np.arange(50) // 2)
    assert d.delta == 0 and d.p == 1.0


def test_cluster_bootstrap_delta_agrees_with_obuchowski_on_a_clustered_sample():
    rng = np.random.default_rng(3)
    lesion = rng.integers(0, 2, 60)
    y = np.repeat(lesion, 2)
    g = np.repeat(np.arange(60), 2)
    base = np.repeat(rng.normal(lesion, 1.0), 2)
    a = base + rng.normal(0, 0.3, y.size) + 0.6 * y
    b = base + rng.normal(0, 0.3, y.size)
    ob = obuchowski_delta(y, a, b, g)
    bs = cluster_bootstrap_delta(y, a, b, g, n_boot=1000, seed=0)
    assert bs.delta == pytest.approx(ob.delta)
    assert bs.se == pytest.approx(ob.se, rel=0.3)
    assert ob.lo > 0 and bs.lo > 0 and ob.p < 0.05


def test_one_class_only_is_refused_with_a_message():
    with pytest.raises(ValueError, match="positive and one negative"):
        obuchowski_auc([1, 1, 1], [0.2, 0.5, 0.9], [0, 1, 2])


def test_the_bootstrap_s_rank_auc_is_sklearn_s_auc_on_tied_and_resampled_scores():
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(4)
    y = rng.integers(0, 2, 300)
    s = np.round(rng.random(300), 1)  # many ties
    for take in cluster_resamples(rng.integers(0, 120, 300), 50, seed=1):
        if 0 < y[take].sum() < take.size:
            assert mann_whitney_auc(y[take], s[take]) == pytest.approx(
                roc_auc_score(y[take], s[take]), abs=1e-12)


def test_midranks_are_scipy_s_rankdata_bit_for_bit_with_ties_and_nan():
    from scipy.stats import rankdata

    rng = np.random.default_rng(5)
    for n in (1, 2, 7, 300):
        s = np.round(rng.random(n), 1)  # many ties
        assert np.array_equal(midranks(s), rankdata(s))
    s = np.array([0.3, np.nan, 0.1])
    assert np.isnan(midranks(s)).all() and np.isnan(rankdata(s)).all()
    assert midranks(np.array([])).size == 0


def test_a_cluster_resample_is_the_drawn_clusters_images_in_the_order_drawn():
    groups = np.array(["b", "a", "c", "a", "b", "b", "d"])
    ids = np.unique(groups)
    members = [np.nonzero(groups == g)[0] for g in ids]
    rng = np.random.default_rng(3)  # the generator the resamples use, with the same seed
    for take in cluster_resamples(groups, 20, seed=3):
        drawn = rng.integers(0, len(ids), len(ids))
        assert np.array_equal(take, np.concatenate([members[k] for k in drawn]))
