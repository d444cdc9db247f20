"""Statistics (docs/protocol.md, Metrics): DeLong against R's pROC, Wilson and bootstrap on known cases, McNemar, Holm."""

import math

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from bench.stats.stats import (
    bootstrap_auc_ci,
    delong_ci,
    delong_covariance,
    delong_test,
    holm,
    mcnemar_exact,
    wilson_ci,
)

# Fixed data; reference values from R 4.x, pROC 1.18.0 (Debian package r-cran-proc):
#   ra <- roc(y, a, levels=c(0,1), direction="<"); rb <- roc(y, b, levels=c(0,1), direction="<")
#   ci.auc(ra, method="delong"); var(ra, method="delong"); ci.auc(rb, method="delong")
#   roc.test(ra, rb, method="delong", paired=TRUE)   # statistic Z and p.value
Y = [0] * 15 + [1] * 15
A = [0.46, 0.26, 0.52, 0.42, 0.06, 0.59, 0.46, 0.47, 0.08, 0.27, 0.22, 0.56, 0.39, 0.49, 0.27,
     0.49, 0.68, 0.39, 0.85, 0.73, 0.8, 0.56, 0.93, 0.89, 0.82, 0.47, 0.63, 0.38, 0.44, 0.76]
B = [0.6, 0.8, 0.3, 0.3, 0.4, 0.2, 0.1, 0.4, 0.2, 0.5, 0.3, 0.7, 0.6, 0.2, 0.7,
     0.8, 0.5, 0.4, 0.7, 0.3, 0.4, 0.2, 0.8, 0.7, 0.8, 0.8, 0.6, 0.7, 0.3, 0.3]
PROC_CI_A = (0.848888888888889, 0.711886606972936, 0.985891170804841)
PROC_VAR_A = 0.00488606701940035
PROC_CI_B = (0.677777777777778, 0.484987795590894, 0.870567759964662)
PROC_TEST = (1.349750052867149, 0.177096171107764)


def test_delong_matches_proc_reference_values():
    assert delong_ci(Y, A) == pytest.approx(PROC_CI_A, abs=1e-12)
    assert delong_ci(Y, B) == pytest.approx(PROC_CI_B, abs=1e-12)
    _, cov = delong_covariance(Y, A)
    assert cov[0, 0] == pytest.approx(PROC_VAR_A, abs=1e-14)
    assert delong_test(Y, A, B) == pytest.approx(PROC_TEST, abs=1e-12)


def test_delong_auc_equals_sklearn_and_identical_models_give_p_one():
    assert delong_ci(Y, A)[0] == pytest.approx(roc_auc_score(Y, A))
    assert delong_test(Y, A, A) == (0.0, 1.0)


def test_wilson_interval_known_cases():
    # 92/100 → 0.850–0.959 (the example); 0/10 → 0–0.278 (Wilson 1927)
    assert wilson_ci(92, 100) == pytest.approx((0.8500189, 0.9589065), abs=1e-6)
    lo, hi = wilson_ci(0, 10)
    assert lo == 0.0 and hi == pytest.approx(0.2775328, abs=1e-6)
    assert all(math.isnan(v) for v in wilson_ci(0, 0))


def test_bootstrap_interval_covers_auc_is_seeded_and_degenerates_for_perfect_separation():
    lo, hi = bootstrap_auc_ci(Y, A, n_boot=2000, seed=0)
    assert lo < roc_auc_score(Y, A) < hi
    assert (lo, hi) == bootstrap_auc_ci(Y, A, n_boot=2000, seed=0)
    assert bootstrap_auc_ci([0, 0, 1, 1], [0.1, 0.2, 0.8, 0.9], n_boot=200) == (1.0, 1.0)
    # width close to DeLong's on the same data
    _, dlo, dhi = delong_ci(Y, A)
    assert abs((hi - lo) - (dhi - dlo)) < 0.06


def test_mcnemar_exact_counts_discordant_pairs():
    y = np.array([1, 1, 1, 1, 0, 0, 0, 0])
    a = np.array([1, 1, 1, 1, 0, 0, 0, 1])  # 7 right
    b = np.array([0, 0, 0, 1, 0, 0, 0, 1])  # 4 right
    b_, c_, p = mcnemar_exact(y, a, b)
    assert (b_, c_) == (3, 0) and p == pytest.approx(0.25)
    assert mcnemar_exact(y, a, a)[2] == 1.0


def test_holm_adjustment():
    adj = holm([0.01, 0.04, 0.03, float("nan")])
    assert adj[:3] == pytest.approx([0.03, 0.06, 0.06]) and math.isnan(adj[3])


def test_calibration_slope_and_intercept_recover_a_known_miscalibration():
    from bench.stats.stats import calibration_slope_intercept
    rng = np.random.default_rng(0)
    p = rng.uniform(0.02, 0.98, 20000)
    y = (rng.uniform(size=p.size) < p).astype(int)
    slope, intercept = calibration_slope_intercept(y, p)
    assert abs(slope - 1) < 0.05 and abs(intercept) < 0.05
    logit = np.log(p / (1 - p))
    overconfident = 1 / (1 + np.exp(-2 * logit))  # twice the log-odds: slope 1/2
    assert abs(calibration_slope_intercept(y, overconfident)[0] - 0.5) < 0.03
    too_high = 1 / (1 + np.exp(-(logit + 1)))  # every log-odds +1: intercept -1
    assert abs(calibration_slope_intercept(y, too_high)[1] + 1) < 0.05


@pytest.mark.slow
def test_patient_bootstrap_is_wider_when_images_of_a_patient_agree():
    from bench.stats.stats import cluster_bootstrap_auc
    rng = np.random.default_rng(1)
    patient = rng.integers(0, 2, 40)  # 40 patients, 5 images each, one label per patient
    y = np.repeat(patient, 5)
    s = np.repeat(rng.normal(patient, 1.0), 5) + rng.normal(0, 0.05, y.size)
    lo_p, hi_p, _ = cluster_bootstrap_auc(y, s, np.repeat(np.arange(40), 5), n_boot=400)
    lo_i, hi_i, _ = cluster_bootstrap_auc(y, s, np.arange(y.size), n_boot=400)
    assert hi_p - lo_p > 1.5 * (hi_i - lo_i)  # images treated as independent look too certain


def test_calibration_fit_without_a_finite_maximum_is_undefined_not_a_runaway_number():
    from bench.stats.stats import calibration_slope_intercept
    y = np.array([0] * 40 + [1] * 40)
    slope, intercept = calibration_slope_intercept(y, np.where(y == 1, 0.9, 0.1))  # separates
    assert math.isnan(slope) and abs(intercept) < 10
    slope, _ = calibration_slope_intercept(y, np.where(y == 1, 1e-7, 1 - 1e-7))  # inverted, at 0/1
    assert math.isnan(slope)
    rng = np.random.default_rng(0)
    p = np.clip(0.5 + 0.3 * (y - 0.5) + rng.normal(0, 0.2, 80), 0.01, 0.99)
    slope, intercept = calibration_slope_intercept(y, p)
    assert 0.5 < slope < 3 and abs(intercept) < 2  # an ordinary fit is unchanged
