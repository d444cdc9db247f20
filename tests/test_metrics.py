"""Metrics equal scikit-learn's and handle the paper's confusion matrix (docs/protocol.md, The paper; Metrics)."""

import math

import numpy as np
import pytest
from sklearn import metrics as skm

from bench.stats.metrics import binary_metrics


def test_metrics_equal_scikit_learn():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 200)
    s = np.clip(y * 0.3 + rng.random(200) * 0.7, 0, 1)
    m = binary_metrics(y, s)
    pred = (s >= 0.5).astype(int)
    assert m["accuracy"] == pytest.approx(skm.accuracy_score(y, pred))
    assert m["sensitivity"] == pytest.approx(skm.recall_score(y, pred))
    assert m["specificity"] == pytest.approx(skm.recall_score(1 - y, 1 - pred))
    assert m["ppv"] == pytest.approx(skm.precision_score(y, pred))
    assert m["npv"] == pytest.approx(skm.precision_score(1 - y, 1 - pred))
    assert m["f1"] == pytest.approx(skm.f1_score(y, pred))
    assert m["auc"] == pytest.approx(skm.roc_auc_score(y, s))
    assert m["brier"] == pytest.approx(skm.brier_score_loss(y, s))


def test_paper_confusion_matrix_gives_reported_ppv_and_npv():
    # docs/protocol.md, The paper: TP=44, FN=6, TN=48, FP=2 → accuracy 0.92, PPV 95.65%, NPV 88.89%
    y = np.array([1] * 50 + [0] * 50)
    s = np.array([0.9] * 44 + [0.1] * 6 + [0.1] * 48 + [0.9] * 2)
    m = binary_metrics(y, s)
    assert (m["tp"], m["fn"], m["tn"], m["fp"]) == (44, 6, 48, 2)
    assert m["accuracy"] == pytest.approx(0.92)
    assert m["ppv"] == pytest.approx(0.9565, abs=1e-4) and m["npv"] == pytest.approx(0.8889, abs=1e-4)
    assert m["sensitivity"] == pytest.approx(0.88) and m["specificity"] == pytest.approx(0.96)


def test_single_class_auc_is_nan_not_an_error():
    assert math.isnan(binary_metrics([1, 1, 1], [0.2, 0.7, 0.9])["auc"])
