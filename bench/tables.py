"""Report tables as DataFrames built from finished runs (issue 4; statistics from bench.stats)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from sklearn.metrics import roc_curve

from bench.collect import Run
from bench.errors import BenchError
from bench.experiments import BASE, EXPERIMENTS, fus2net_variant_key
from bench.metrics import THRESHOLD, binary_metrics
from bench.stats import bootstrap_auc_ci, delong_ci, delong_test, holm, mcnemar_exact, wilson_ci

REFERENCE = "fus2net"
# SPEC §1: the paper's own result on its private 100-image test set. "95.65% / 88.89%" are PPV/NPV
# of TP=44, FN=6, TN=48, FP=2; AUC is 0.97 in the abstract and 0.96 in the discussion.
PAPER_ROW = {"model": "Fus2Net — paper (Ma et al. 2021; own private test set, not comparable)",
             "weights": "—", "n": 100, "accuracy": 0.92, "sensitivity": 0.88, "specificity": 0.96,
             "ppv": 44 / 46, "npv": 48 / 54, "f1": 88 / 96, "auc": 0.97,
             "tp": 44, "fn": 6, "tn": 48, "fp": 2}
PROPORTIONS = {"accuracy": ("tp+tn", "n"), "sensitivity": ("tp", "tp+fn"),
               "specificity": ("tn", "tn+fp"), "ppv": ("tp", "tp+fp"), "npv": ("tn", "tn+fn")}


def comparison_runs(runs: list[Run]) -> list[Run]:
    """One run per model with the paper-recipe settings (latest finished wins), Fus2Net first."""
    chosen: dict[str, Run] = {}
    for r in sorted(runs, key=lambda r: r.config.get("finished", "")):
        if r.model == REFERENCE and fus2net_variant_key(r.settings) != BASE.key():
            continue
        if r.model != REFERENCE and (r.settings.get("channels", 3) != 3
                                     or not r.settings.get("augment", True)):
            continue
        chosen[r.model] = r
    return sorted(chosen.values(), key=lambda r: (r.model != REFERENCE, r.model))


def _count(expr: str, m: dict) -> int:
    return sum(m[k] for k in expr.split("+"))


def _check_same_test_set(runs: list[Run]) -> None:
    ids = [tuple(r.test.id) for r in runs if len(r.test)]
    if len(set(ids)) > 1:
        raise BenchError("runs were evaluated on different test sets; report one data set and "
                         "split at a time (use --runs on a folder of matching runs)")


def comparison_table(runs: list[Run], n_boot: int = 2000, seed: int = 0) -> pd.DataFrame:
    """Table 3 analogue: metrics with 95% CIs and paired tests against Fus2Net."""
    rows = comparison_runs(runs)
    _check_same_test_set(rows)
    ref = next((r for r in rows if r.model == REFERENCE and len(r.test)), None)
    out = []
    for r in rows:
        t = r.test
        row: dict = {"model": r.model, "weights": r.config.get("weights", "random"),
                     "params_m": r.config.get("model_stats", {}).get("params", math.nan) / 1e6,
                     "gflops": r.config.get("model_stats", {}).get("gflops", math.nan),
                     "img_size": r.settings.get("img_size"), "status": r.config.get("status")}
        if len(t) == 0:
            out.append(row)
            continue
        y, s = t.label.to_numpy(), t.prob_malignant.to_numpy()
        m = binary_metrics(y, s)
        row.update({k: m[k] for k in ("n", "tp", "fn", "tn", "fp", "f1", "brier")})
        for name, (num, den) in PROPORTIONS.items():
            row[name] = m[name]
            row[f"{name}_lo"], row[f"{name}_hi"] = wilson_ci(_count(num, m), _count(den, m))
        row["auc"], row["auc_lo"], row["auc_hi"] = delong_ci(y, s)
        row["auc_boot_lo"], row["auc_boot_hi"] = bootstrap_auc_ci(y, s, n_boot=n_boot, seed=seed)
        if ref is not None and r is not ref:
            rt = ref.test
            row["delta_auc"] = row["auc"] - delong_ci(rt.label, rt.prob_malignant)[0]
            row["delong_p"] = delong_test(y, s, rt.prob_malignant.to_numpy())[1]
            row["mcnemar_p"] = mcnemar_exact(y, s >= THRESHOLD, rt.prob_malignant >= THRESHOLD)[2]
        out.append(row)
    df = pd.DataFrame(out)
    for col in ("delta_auc", "delong_p", "mcnemar_p"):
        if col not in df:
            df[col] = np.nan
    df["delong_p_holm"] = holm(df["delong_p"].to_numpy())
    return df


def roc_points(runs: list[Run]) -> pd.DataFrame:
    """ROC curve vertices of each comparison model on the test set."""
    parts = []
    for r in comparison_runs(runs):
        t = r.test
        if len(t) == 0 or t.label.nunique() < 2:
            continue
        fpr, tpr, thr = roc_curve(t.label, t.prob_malignant, drop_intermediate=False)
        parts.append(pd.DataFrame({"model": r.model, "fpr": fpr, "tpr": tpr,
                                   "threshold": np.minimum(thr, 1.0)}))
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(
        columns=["model", "fpr", "tpr", "threshold"])


def calibration_bins(runs: list[Run], bins: int = 10) -> pd.DataFrame:
    """Reliability-diagram data: per equal-width probability bin, mean prediction and observed rate."""
    rows = []
    edges = np.linspace(0, 1, bins + 1)
    for r in comparison_runs(runs):
        t = r.test
        b = np.clip(np.digitize(t.prob_malignant, edges[1:-1]), 0, bins - 1)
        for k in range(bins):
            sel = b == k
            if sel.any():
                rows.append({"model": r.model, "bin": k, "mean_pred": float(t.prob_malignant[sel].mean()),
                             "frac_pos": float(t.label[sel].mean()), "count": int(sel.sum())})
    return pd.DataFrame(rows, columns=["model", "bin", "mean_pred", "frac_pos", "count"])


def cv_folds(runs: list[Run]) -> pd.DataFrame:
    """Per-fold CV metrics of each comparison model (long format)."""
    parts = []
    for r in comparison_runs(runs):
        if len(r.cv):
            cv = r.cv.copy()
            cv.insert(0, "model", r.model)
            parts.append(cv)
    cols = ["model", "fold", "status", "accuracy", "sensitivity", "specificity", "auc"]
    return pd.concat(parts, ignore_index=True)[[c for c in cols if c in parts[0]]] if parts else \
        pd.DataFrame(columns=cols)


def experiment_table(runs: list[Run], name: str) -> pd.DataFrame:
    """One of the paper's Fus2Net experiments: CV mean ± sd when the runs have folds, else test."""
    exp = EXPERIMENTS[name]
    fus = {fus2net_variant_key(r.settings): r
           for r in sorted(runs, key=lambda r: r.config.get("finished", "")) if r.model == REFERENCE}
    rows = []
    for v in exp["variants"]:
        r = fus.get(v.key())
        row: dict = {"variant": v.label}
        if r is None:
            row["evaluated_on"] = "not run"
            rows.append(row)
            continue
        cv = r.metrics.get("cv")
        if cv and cv.get("mean"):
            row["evaluated_on"] = f"{cv['folds']}-fold CV mean"
            for k in ("accuracy", "sensitivity", "specificity", "auc"):
                row[k], row[f"{k}_sd"] = cv["mean"][k], cv["sd"][k]
            row["failed_folds"] = cv["failed_folds"]
        elif r.metrics.get("test"):
            row["evaluated_on"] = "held-out test"
            for k in ("accuracy", "sensitivity", "specificity", "auc"):
                row[k] = r.metrics["test"][k]
        else:
            row["evaluated_on"] = "failed"
        row["run"] = r.path.name
        rows.append(row)
    return pd.DataFrame(rows)
