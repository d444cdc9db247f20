"""Minimum detectable ΔAUC (bench.stats.power): the formula, its data version, and a
simulation in which a true ΔAUC equal to the computed MDD is detected about 80 % of the time."""

import math

import numpy as np
import pytest
from scipy import stats

from bench.stats.arrays import StatsInputError
from bench.stats.power import min_detectable_delta, min_detectable_delta_from_data
from bench.stats.twolevel import delta_variance_components, two_level_delta


def test_mdd_is_z975_plus_z80_times_the_se():
    assert min_detectable_delta(0.05) == pytest.approx((1.959964 + 0.841621) * 0.05, rel=1e-6)
    assert min_detectable_delta(0.05, df=5) == pytest.approx(
        (stats.t.ppf(0.975, 5) + stats.t.ppf(0.8, 5)) * 0.05)
    assert math.isnan(min_detectable_delta(math.nan))
    with pytest.raises(StatsInputError, match="power"):
        min_detectable_delta(0.05, power=80)
    with pytest.raises(StatsInputError, match="se"):
        min_detectable_delta(-0.1)


class Design:
    """Lesions of 1-3 images scored by two models over K seeds: binormal with a lesion effect
    shared by both models, one per model, a per-seed shift of the separation and per-image
    noise; the expected per-seed AUC of a model with separation mu is Φ(mu / sqrt(S²)) with S² the
    variance of a malignant-minus-benign latent difference (seed shift included)."""

    lesion_sd, model_sd, image_sd, seed_sd = 0.6, 0.4, 0.2, 0.2

    def __init__(self, rng, lesions=100, seeds=5):
        sizes = rng.integers(1, 4, lesions)
        self.y = np.repeat(np.arange(lesions) % 2, sizes)
        self.g = np.repeat(np.arange(lesions), sizes)
        self.lesions, self.seeds, self.rng = lesions, seeds, rng
        self.s2 = 2 * (self.lesion_sd**2 + self.model_sd**2 + self.image_sd**2) + self.seed_sd**2

    def simulate(self, auc_a, auc_b, reps):
        r, n_l, k = self.rng, self.lesions, self.seeds
        shared = r.normal(0, self.lesion_sd, (reps, n_l))
        out = []
        for auc in (auc_a, auc_b):
            mu = math.sqrt(self.s2) * stats.norm.ppf(auc)
            own = r.normal(0, self.model_sd, (reps, n_l))
            shift = r.normal(0, self.seed_sd, (reps, k, 1))
            noise = r.normal(0, self.image_sd, (reps, k, self.y.size))
            out.append((mu + shift) * self.y + (shared + own)[:, None, self.g] + noise)
        return out


def test_a_true_delta_equal_to_the_mdd_is_detected_about_80_percent_of_the_time():
    d = Design(np.random.default_rng(1))
    a, b = d.simulate(0.72, 0.72, 60)  # the MDD this design gives, from data without a difference
    mdd = np.mean([min_detectable_delta_from_data(d.y, a[i], b[i], d.g).mdd for i in range(60)])
    assert 0.1 < mdd < 0.25
    a, b = d.simulate(0.72 + mdd / 2, 0.72 - mdd / 2, 300)
    found = [delta_variance_components(d.y, a[i], b[i], d.g).p < 0.05 for i in range(300)]
    assert np.mean(found) == pytest.approx(0.8, abs=0.1)


def test_the_data_version_uses_the_two_level_se():
    d = Design(np.random.default_rng(2), lesions=30, seeds=3)
    a, b = (x[0] for x in d.simulate(0.75, 0.7, 1))
    c = delta_variance_components(d.y, a, b, d.g)
    r = min_detectable_delta_from_data(d.y, a, b, d.g)
    assert r.se == c.se and r.df == c.df
    assert r.mdd == pytest.approx(min_detectable_delta(c.se, df=c.df))
    boot = min_detectable_delta_from_data(d.y, a, b, d.g, method="bootstrap", n_boot=200)
    assert boot.mdd == pytest.approx(min_detectable_delta(
        two_level_delta(d.y, a, b, d.g, n_boot=200).se))
    none = min_detectable_delta_from_data(d.y, a, b, d.g, seeds_a=[0, 1, 2], seeds_b=[3, 4, 5])
    assert math.isnan(none.mdd) and "no seed in common" in none.note
    with pytest.raises(StatsInputError, match="method"):
        min_detectable_delta_from_data(d.y, a, b, d.g, method="delong")
