"""Classification metrics as pure functions of ``(y_true, y_score)`` (docs/protocol.md, Metrics).

Malignant (1) is the positive class; predictions use the threshold 0.5 on P(malignant).
"""

from __future__ import annotations

import math

import numpy as np
from sklearn.metrics import roc_auc_score

THRESHOLD = 0.5
METRIC_NAMES = ("accuracy", "sensitivity", "specificity", "ppv", "npv", "f1", "auc", "brier")


def _ratio(num: int, den: int) -> float:
    return num / den if den else math.nan


def confusion_counts(y_true, y_pred) -> dict[str, int]:
    """``tp, fp, tn, fn`` for binary labels (1 = malignant)."""
    t = np.asarray(y_true).astype(int)
    p = np.asarray(y_pred).astype(int)
    return {"tp": int(((t == 1) & (p == 1)).sum()), "fp": int(((t == 0) & (p == 1)).sum()),
            "tn": int(((t == 0) & (p == 0)).sum()), "fn": int(((t == 1) & (p == 0)).sum())}


def roc_auc(y_true, y_score) -> float:
    """ROC AUC (``sklearn.metrics.roc_auc_score``); NaN when only one class is present."""
    t = np.asarray(y_true)
    if len(np.unique(t)) < 2:
        return math.nan
    return float(roc_auc_score(t, np.asarray(y_score, dtype=float)))


def brier_score(y_true, y_score) -> float:
    """Mean squared error of P(malignant)."""
    t = np.asarray(y_true, dtype=float)
    return float(np.mean((np.asarray(y_score, dtype=float) - t) ** 2)) if len(t) else math.nan


def binary_metrics(y_true, y_score, threshold: float = THRESHOLD) -> dict[str, float | int]:
    """Accuracy, sensitivity, specificity, PPV, NPV, F1, AUC, Brier and confusion counts."""
    score = np.asarray(y_score, dtype=float)
    c = confusion_counts(y_true, score >= threshold)
    tp, fp, tn, fn = c["tp"], c["fp"], c["tn"], c["fn"]
    n = tp + fp + tn + fn
    return {
        "accuracy": _ratio(tp + tn, n),
        "sensitivity": _ratio(tp, tp + fn),
        "specificity": _ratio(tn, tn + fp),
        "ppv": _ratio(tp, tp + fp),
        "npv": _ratio(tn, tn + fn),
        "f1": _ratio(2 * tp, 2 * tp + fp + fn),
        "auc": roc_auc(y_true, score),
        "brier": brier_score(y_true, score),
        **c,
        "n": n,
    }


def degenerate_prediction(y_score, threshold: float = THRESHOLD, share: float = 0.95) -> str:
    """What a (near-)constant or one-class prediction predicts; ``""`` for a usable one.

    Constant: all probabilities within 1e-3 of each other. One class: at least ``share`` of the
    images on one side of ``threshold``. The tests of such a model are not evidence (docs/protocol.md, Metrics).
    """
    s = np.asarray(y_score, dtype=float)
    if len(s) == 0:
        return ""
    if s.max() - s.min() < 1e-3:
        return f"constant output (P(malignant) = {s.mean():.3f} for every image)"
    malignant = float((s >= threshold).mean())
    if malignant >= share:
        return f"predicts malignant for {malignant:.0%} of images"
    if 1 - malignant >= share:
        return f"predicts benign for {1 - malignant:.0%} of images"
    return ""
