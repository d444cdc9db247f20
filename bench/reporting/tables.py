"""Report tables as DataFrames built from finished runs (SPEC §4; statistics from bench.evaluation.stats).

A *configuration* is a run's settings without its seed; each table row is one configuration,
aggregated over its seeds (mean ± sd, min–max). Seeds are never treated as independent test sets:
a comparison against Fus2Net is ΔAUC on the seeds both have, paired per seed, with clustered
intervals and tests (:mod:`bench.reporting.table3`, docs/protocol.md "Metrics"); per seed, the same contrast,
DeLong (image-level, secondary) and McNemar. A configuration whose predictions are (near-)constant
or one class is flagged (:func:`bench.evaluation.metrics.degenerate_prediction`) and its tests are left blank.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from sklearn.metrics import roc_curve

from bench.core.errors import BenchError
from bench.evaluation.calibration import reliability_bins
from bench.evaluation.clustered import obuchowski_auc, obuchowski_delta
from bench.evaluation.contrasts import groups_of
from bench.evaluation.metrics import THRESHOLD, binary_metrics, degenerate_prediction
from bench.evaluation.stats import (
    bootstrap_auc_ci,
    calibration_slope_intercept,
    cluster_bootstrap_auc,
    delong_ci,
    delong_test,
    holm,
    mcnemar_exact,
    wilson_ci,
)
from bench.jobs.experiments import BASE, EXPERIMENTS, fus2net_variant_key
from bench.reporting.camtable import explanation_rows
from bench.reporting.runs import NOT_CONFIG, Run, by_configuration
from bench.reporting.table3 import model_columns, paired_to_base, per_seed_columns
from models.pretrained import RANDOM_FALLBACK

REFERENCE = "fus2net"
# SPEC §1: the paper's own result on its private 100-image test set. "95.65% / 88.89%" are PPV/NPV
# of TP=44, FN=6, TN=48, FP=2; AUC is 0.97 in the abstract and 0.96 in the discussion.
PAPER_ROW = {"model": "Fus2Net — paper (Ma et al. 2021; own private test set, not comparable)",
             "weights": "—", "n": 100, "n_seeds": 1, "accuracy": 0.92, "sensitivity": 0.88,
             "specificity": 0.96, "ppv": 44 / 46, "npv": 48 / 54, "f1": 88 / 96, "auc": 0.97,
             "tp": 44, "fn": 6, "tn": 48, "fp": 2, "paper_row": True,
             "note": "as printed: accuracy, sensitivity, specificity, AUC (0.97 in the abstract, "
                     "0.96 in the discussion); re-derived here from the printed counts TP 44, FN 6, "
                     "TN 48, FP 2: PPV, NPV, F1"}
PROPORTIONS = {"accuracy": ("tp+tn", "n"), "sensitivity": ("tp", "tp+fn"),
               "specificity": ("tn", "tn+fp"), "ppv": ("tp", "tp+fp"), "npv": ("tn", "tn+fn")}
SUMMARY = ("accuracy", "sensitivity", "specificity", "ppv", "npv", "f1", "auc")
ALPHA = 0.05


def weights_label(run: Run) -> str:
    """Where the weights came from, saying so when a transfer model fell back to random init."""
    weights = run.config.get("weights", "random")
    if weights != "random":
        return weights
    if run.config.get("model_config", {}).get("pretrained") != "imagenet":
        return "random init"
    if run.settings.get("model_kwargs", {}).get("pretrained") == "none":
        return "random init (--pretrained none; not the published method)"
    return RANDOM_FALLBACK


def _paper_recipe(r: Run) -> bool:
    if r.model == REFERENCE:
        return fus2net_variant_key(r.settings) == BASE.key()
    return r.settings.get("channels", 3) == 3 and r.settings.get("augment", True)


def _pick(configs: list[list[Run]]) -> list[Run]:
    """The configuration with the most seeds (then the latest finished)."""
    return max(configs, key=lambda rs: (len(rs), max(r.config.get("finished", "") for r in rs)))


def _flat(settings: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in settings.items():
        if isinstance(v, dict):
            out.update(_flat(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def config_difference(ref: dict, other: dict) -> str:
    """The settings in which ``other`` differs from ``ref`` (seed and code version aside), e.g.
    ``img_size 96``: what tells two rows of one model apart."""
    a, b = _flat(ref), _flat(other)
    keys = sorted(k for k in set(a) | set(b) if k.split(".")[0] not in NOT_CONFIG
                  and a.get(k) != b.get(k))
    text = ", ".join(f"{k} {str(b.get(k, 'unset'))[:12]}" for k in keys) or "another run"
    return text.replace("|", "/")


def comparison_sets(runs: list[Run]) -> list[tuple[str, list[Run]]]:
    """Per model and paper-recipe configuration, its seeds; Fus2Net first. A model's configuration
    with the most seeds is labelled by the model's name; every other configuration of it is a row
    of its own, labelled by what differs (e.g. ``resnet50 (img_size 96)``), never dropped."""
    per_model: dict[str, list[list[Run]]] = {}
    for rs in by_configuration([r for r in runs if _paper_recipe(r)]).values():
        per_model.setdefault(rs[0].model, []).append(rs)
    out = []
    for m in sorted(per_model, key=lambda m: (m != REFERENCE, m)):
        main = _pick(per_model[m])
        out.append((m, main))
        others = [(f"{m} ({config_difference(main[0].settings, rs[0].settings)})", rs)
                  for rs in per_model[m] if rs is not main]
        out += sorted(others, key=lambda x: x[0])
    return out


def set_aside(runs: list[Run]) -> list[tuple[str, str]]:
    """Runs in no table, each with the reason (the report lists them; nothing is dropped
    silently): another run of the same configuration and seed finished later; a Fus2Net variant
    that no experiment lists, or a second configuration of a variant; a baseline not trained with
    the paper recipe (3 channels, augmentation)."""
    variants = {v.key() for exp in EXPERIMENTS.values() for v in exp["variants"]}
    used = {id(r) for r in comparison_runs(runs)}
    used |= {id(r) for key, rs in _variant_configs(runs).items() if key in variants for r in rs}
    in_groups = {id(r) for rs in by_configuration(runs).values() for r in rs}
    out = []
    for r in runs:
        if id(r) in used:
            continue
        if id(r) not in in_groups:
            why = ("a later run of the same configuration and seed "
                   f"{r.settings.get('seed', 0)} is used instead")
        elif r.model == REFERENCE and fus2net_variant_key(r.settings) not in variants:
            why = "a Fus2Net variant that no experiment table lists"
        elif r.model == REFERENCE:
            why = ("the experiment tables use another configuration of the same variant (with "
                   "CV folds and the most seeds)")
        else:
            why = ("not the paper recipe (3-channel input with augmentation); only Fus2Net's "
                   "variants have tables")
        out.append((r.path.name, why))
    return out


def comparison_runs(runs: list[Run]) -> list[Run]:
    """Every run (all seeds) behind the comparison table."""
    return [r for _, rs in comparison_sets(runs) for r in rs]


def _count(expr: str, m: dict) -> int:
    return sum(m[k] for k in expr.split("+"))


def _check_same_test_set(runs: list[Run]) -> None:
    ids = [tuple(r.test.id) for r in runs if len(r.test)]
    if len(set(ids)) > 1:
        raise BenchError("runs were evaluated on different test sets; report one data set and "
                         "split at a time (use --runs on a folder of matching runs)")


def _test_row(y: np.ndarray, s: np.ndarray, n_boot: int, seed: int) -> dict:
    """Metrics of one set of test predictions with Wilson and DeLong/bootstrap 95% CIs."""
    m = binary_metrics(y, s)
    row = {k: m[k] for k in ("n", "tp", "fn", "tn", "fp", "f1", "brier")}
    for name, (num, den) in PROPORTIONS.items():
        row[name] = m[name]
        row[f"{name}_lo"], row[f"{name}_hi"] = wilson_ci(_count(num, m), _count(den, m))
    row["auc"], row["auc_lo"], row["auc_hi"] = delong_ci(y, s)
    row["auc_boot_lo"], row["auc_boot_hi"] = bootstrap_auc_ci(y, s, n_boot=n_boot, seed=seed)
    row["flag"] = degenerate_prediction(s)
    return row


def _seed_mean(rs: list[Run]) -> tuple[np.ndarray, np.ndarray]:
    """Labels and the seed-averaged P(malignant) of a configuration's test images."""
    tests = [r.test for r in rs if len(r.test)]
    return tests[0].label.to_numpy(), np.mean([t.prob_malignant.to_numpy() for t in tests], axis=0)


def per_seed_table(runs: list[Run], n_boot: int = 2000, seed: int = 0) -> pd.DataFrame:
    """One row per (model, seed): test metrics with CIs, and paired tests against Fus2Net's run of
    the same seed (DeLong Holm-corrected across models within the seed; exact McNemar)."""
    sets = comparison_sets(runs)
    _check_same_test_set([r for _, rs in sets for r in rs])
    ref = {int(r.settings.get("seed", 0)): r for m, rs in sets if m == REFERENCE for r in rs
           if len(r.test)}
    rows = []
    for model, rs in sets:
        for r in rs:
            row: dict = {"model": model, "seed": int(r.settings.get("seed", 0)),
                         "weights": weights_label(r), "status": r.config.get("status"),
                         "run": r.path.name}
            t = r.test
            if len(t):
                y, s = t.label.to_numpy(), t.prob_malignant.to_numpy()
                row.update(_test_row(y, s, n_boot, seed))
                other = ref.get(row["seed"])
                paired = model != REFERENCE and other is not None and not row["flag"]
                row.update(per_seed_columns(t, other.test if paired else None, n_boot, seed))
                if paired:
                    rs_ = other.test.prob_malignant.to_numpy()
                    row["delta_auc"] = row["auc"] - delong_ci(y, rs_)[0]
                    row["delong_p"] = delong_test(y, s, rs_)[1]
                    row["mcnemar_p"] = mcnemar_exact(y, s >= THRESHOLD, rs_ >= THRESHOLD)[2]
            rows.append(row)
    df = pd.DataFrame(rows)
    for col in ("delta_auc", "delong_p", "mcnemar_p", "delta_p", "flag"):
        if col not in df:
            df[col] = np.nan if col != "flag" else ""
    df["flag"] = df["flag"].fillna("")
    df["delong_p_holm"] = np.nan
    df["delta_p_holm"] = np.nan
    for _, idx in df.groupby("seed").groups.items():
        df.loc[idx, "delong_p_holm"] = holm(df.loc[idx, "delong_p"].to_numpy())
        df.loc[idx, "delta_p_holm"] = holm(df.loc[idx, "delta_p"].to_numpy(dtype=float))
    return df


def comparison_table(runs: list[Run], n_boot: int = 2000, seed: int = 0,
                     per_seed: pd.DataFrame | None = None) -> pd.DataFrame:
    """Table 3 analogue: per model, metrics over seeds, the matched-seed comparison against
    Fus2Net, the ensemble of its seeds, calibration and prevalence (:func:`bench.reporting.table3.model_columns`)."""
    per_seed = per_seed_table(runs, n_boot, seed) if per_seed is None else per_seed
    sets = comparison_sets(runs)
    ref = next((rs for m, rs in sets if m == REFERENCE and any(len(r.test) for r in rs)), None)
    out = []
    for model, rs in sets:
        first = rs[0]
        seeds = per_seed[per_seed.model == model]
        ok = seeds.dropna(subset=["auc"]) if "auc" in seeds else seeds.iloc[:0]
        row: dict = {"model": model, "weights": weights_label(first),
                     "params_m": first.config.get("model_stats", {}).get("params", math.nan) / 1e6,
                     "gflops": first.config.get("model_stats", {}).get("gflops", math.nan),
                     "img_size": first.settings.get("img_size"), "n_seeds": len(rs),
                     "seeds": ",".join(str(s) for s in seeds.seed),
                     "failed_seeds": int(len(seeds) - len(ok))}
        flags = [f"seed {s}: {f}" for s, f in zip(seeds.seed, seeds.flag, strict=True) if f]
        row["flag"] = "; ".join(flags)
        for k in SUMMARY:
            if len(ok):
                v = ok[k].to_numpy(dtype=float)
                row[k], row[f"{k}_min"], row[f"{k}_max"] = v.mean(), v.min(), v.max()
                row[f"{k}_sd"] = v.std(ddof=1) if len(v) > 1 else math.nan
        if len(ok):
            row.update({f"{k}_mean": float(ok[k].mean()) for k in ("tp", "fn", "tn", "fp", "n")})
            contrast = model != REFERENCE and ref is not None and not row["flag"]
            row.update(model_columns(rs, ref, n_boot, seed, contrast))
            if contrast:
                d = ok.delta_auc.dropna().to_numpy(dtype=float)
                row["delta_auc_sd"] = d.std(ddof=1) if len(d) > 1 else math.nan
                holm_p = ok.delta_p_holm.dropna()
                if len(holm_p):
                    row["seeds_significant"] = f"{int((holm_p < ALPHA).sum())}/{len(holm_p)}"
        out.append(row)
    df = pd.DataFrame(out)
    for col in ("delta_auc", "delta_auc_sd", "delta_auc_p", "seeds_significant"):
        if col not in df:
            df[col] = np.nan
    df["delta_auc_p_holm"] = holm(df["delta_auc_p"].to_numpy(dtype=float))
    return df


def roc_points(runs: list[Run], grid: int = 101) -> pd.DataFrame:
    """ROC vertices of every seed of each comparison model, plus the mean curve (``seed`` -1:
    true-positive rate averaged over seeds at fixed false-positive rates)."""
    parts = []
    fpr_grid = np.linspace(0, 1, grid)
    for model, rs in comparison_sets(runs):
        curves = []
        for r in rs:
            t = r.test
            if len(t) == 0 or t.label.nunique() < 2:
                continue
            fpr, tpr, _ = roc_curve(t.label, t.prob_malignant, drop_intermediate=False)
            parts.append(pd.DataFrame({"model": model, "seed": int(r.settings.get("seed", 0)),
                                       "fpr": fpr, "tpr": tpr}))
            curves.append(np.interp(fpr_grid, fpr, tpr))
        if curves:
            mean = np.mean(curves, axis=0)
            mean[0] = 0.0
            parts.append(pd.DataFrame({"model": model, "seed": -1, "fpr": fpr_grid, "tpr": mean}))
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(
        columns=["model", "seed", "fpr", "tpr"])


def calibration_bins(runs: list[Run], min_count: int = 20) -> pd.DataFrame:
    """Reliability-diagram data per model and seed (each seed is one trained model): equal-count
    bins of at least ``min_count`` images with their counts and Wilson intervals
    (:func:`bench.evaluation.calibration.reliability_bins`)."""
    parts = []
    for model, rs in comparison_sets(runs):
        for r in rs:
            t = r.test
            if len(t):
                b = reliability_bins(t.label.to_numpy(), t.prob_malignant.to_numpy(), min_count)
                b.insert(0, "seed", int(r.settings.get("seed", 0)))
                b.insert(0, "model", model)
                parts.append(b)
    cols = ["model", "seed", "bin", "p_min", "p_max", "mean_pred", "frac_pos", "frac_lo",
            "frac_hi", "count"]
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=cols)


def cv_folds(runs: list[Run]) -> pd.DataFrame:
    """Per-fold CV metrics of every seed of each comparison model and of each Fus2Net experiment
    variant (labelled ``fus2net: <variant>``; the base recipe is the ``fus2net`` row), long
    format with ``kind`` comparison / experiment."""
    cols = ["model", "kind", "seed", "fold", "status", "accuracy", "sensitivity", "specificity",
            "auc"]
    sets = [(m, "comparison", rs) for m, rs in comparison_sets(runs)]
    used = {id(r) for _, _, rs in sets for r in rs}
    labels = {}
    for exp in EXPERIMENTS.values():
        for v in exp["variants"]:
            if v.key() != BASE.key():
                labels.setdefault(v.key(), v.label)
    for key, rs in sorted(_variant_configs(runs).items(), key=lambda kv: str(kv[0])):
        if key in labels and not any(id(r) in used for r in rs):
            sets.append((f"{REFERENCE}: {labels[key]}", "experiment", rs))
    parts = []
    for model, kind, rs in sets:
        for r in rs:
            if len(r.cv):
                cv = r.cv.copy()
                cv.insert(0, "seed", int(r.settings.get("seed", 0)))
                cv.insert(0, "kind", kind)
                cv.insert(0, "model", model)
                parts.append(cv[[c for c in cols if c in cv]])
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=cols)


def _variant_configs(runs: list[Run]) -> dict[tuple, list[Run]]:
    """Per Fus2Net variant, its configuration with CV folds and the most seeds."""
    per_variant: dict[tuple, list[list[Run]]] = {}
    for rs in by_configuration([r for r in runs if r.model == REFERENCE]).values():
        per_variant.setdefault(fus2net_variant_key(rs[0].settings), []).append(rs)
    return {k: _pick([rs for rs in v if rs[0].metrics.get("cv")] or v)
            for k, v in per_variant.items()}


def experiment_table(runs: list[Run], name: str) -> pd.DataFrame:
    """One of the paper's Fus2Net experiments, compared on CV folds only (SPEC §3): mean ± sd over
    every (seed, fold); the held-out test AUC is a secondary, labelled column."""
    exp = EXPERIMENTS[name]
    configs = _variant_configs(runs)
    rows = []
    for v in exp["variants"]:
        rs = configs.get(v.key())
        row: dict = {"variant": v.label, "is_base": v.key() == BASE.key()}
        if rs is None:
            row["evaluated_on"] = "not run"
            rows.append(row)
            continue
        folds = [r.cv.assign(seed=r.settings.get("seed", 0)) for r in rs if len(r.cv)]
        cv = pd.concat(folds, ignore_index=True) if folds else pd.DataFrame()
        ok = cv[cv.status == "ok"] if len(cv) else cv
        row["n_seeds"] = len(rs)
        if len(ok):
            row["evaluated_on"] = (f"CV: {len(ok)} folds over {len(rs)} seed(s) "
                                   f"({int(ok.groupby('seed').size().iloc[0])} per seed)")
            for k in ("accuracy", "sensitivity", "specificity", "auc"):
                vals = ok[k].to_numpy(dtype=float)
                row[k] = vals.mean()
                row[f"{k}_sd"] = vals.std(ddof=1) if len(vals) > 1 else math.nan
            row["failed_folds"] = int(len(cv) - len(ok))
            base = configs.get(BASE.key())
            if base is not None and v.key() != BASE.key():
                row.update(paired_to_base(cv, [r.cv.assign(seed=r.settings.get("seed", 0))
                                               for r in base if len(r.cv)]))
            oof = [r.predictions[r.predictions.split == "val"].prob_malignant for r in rs]
            row["flag"] = "; ".join(f"seed {r.settings.get('seed', 0)} (CV): {f}"
                                    for r, p in zip(rs, oof, strict=True)
                                    if (f := degenerate_prediction(p)))
        else:
            row["evaluated_on"] = "no CV folds: not compared (settings are chosen by CV only)"
        tests = [r.metrics["test"]["auc"] for r in rs
                 if r.metrics.get("test") and r.metrics["test"].get("auc") is not None]
        if tests:
            row["test_auc_secondary"] = float(np.mean(tests))
        row["runs"] = ",".join(r.path.name for r in rs)
        rows.append(row)
    return pd.DataFrame(rows)


def external_sets(runs: list[Run]) -> list[str]:
    """Names of the external sets scored by any comparison run, sorted."""
    return sorted({name for r in comparison_runs(runs) for name in r.external})


def _external_seed_mean(rs: list[Run], name: str) -> tuple[pd.DataFrame, list[float]] | None:
    """Seed-averaged external predictions of a configuration (images every seed scored) and each
    seed's external AUC; ``None`` when no seed scored the set."""
    frames = [r.external[name][0] for r in rs if name in r.external]
    if not frames:
        return None
    common = set.intersection(*(set(f.id) for f in frames))
    aligned = [f[f.id.isin(common)].sort_values("id").reset_index(drop=True) for f in frames]
    mean = aligned[0].copy()
    mean["prob_malignant"] = np.mean([f.prob_malignant.to_numpy() for f in aligned], axis=0)
    aucs = [binary_metrics(f.label, f.prob_malignant)["auc"] for f in aligned]
    return mean, aucs


def _copies(ext: pd.DataFrame) -> np.ndarray:
    """Which external images copy a training image's picture (bench.evaluation.external)."""
    if "training_copy" not in ext:
        return np.zeros(len(ext), dtype=bool)
    return ext.training_copy.fillna("").astype(str).str.len().to_numpy() > 0


def held_out_groups(run: Run) -> np.ndarray | None:
    """The same-lesion (or patient) group of each held-out test image of ``run``, in the order of
    its test predictions, from the run's ``split.csv``; ``None`` when unknown."""
    try:
        split = pd.read_csv(run.path / "split.csv", dtype={"id": str, "group": str},
                            keep_default_na=False)
    except (OSError, ValueError):
        return None
    by_id = dict(zip(split.id, split.group, strict=True)) if {"id", "group"} <= set(split) else {}
    groups = run.test.id.astype(str).map(by_id)
    return None if groups.isna().any() or (groups == "").any() else groups.to_numpy(str)


def external_table(runs: list[Run], n_boot: int = 2000, seed: int = 0) -> pd.DataFrame:
    """Internal vs external (SPEC §3, §4): per model and external set, the held-out test and the
    external set side by side at the unchanged threshold 0.5, ΔAUC with its CI (independent
    samples: the two variances add), calibration on the external set, and DeLong against Fus2Net
    on the same external images (Holm across models, per set). Seed-averaged probabilities; the
    external AUC's spread over seeds alongside. Every scored image counts; copies of training
    images are counted, and the AUC without them is given beside."""
    rows = []
    sets = comparison_sets(runs)
    for name in external_sets(runs):
        ref = next((_external_seed_mean(rs, name) for m, rs in sets if m == REFERENCE), None)
        for model, rs in sets:
            got = _external_seed_mean(rs, name)
            tests = [r for r in rs if len(r.test)]
            if got is None or not tests:
                continue
            ext, aucs = got
            y, s = ext.label.to_numpy(), ext.prob_malignant.to_numpy()
            yi, si = _seed_mean(tests)
            row: dict = {"model": model, "external_set": name, "n_seeds": len(aucs),
                         "weights": weights_label(rs[0]), "n_internal": len(yi), "n_external": len(y),
                         "training_copies": int(_copies(ext).sum()),
                         "flag": degenerate_prediction(s)}
            internal, external = binary_metrics(yi, si), binary_metrics(y, s)
            for k in ("accuracy", "sensitivity", "specificity", "ppv", "npv"):
                num, den = PROPORTIONS[k]
                row[f"internal_{k}"] = internal[k]
                row[f"external_{k}"] = external[k]
                row[f"external_{k}_lo"], row[f"external_{k}_hi"] = wilson_ci(
                    _count(num, external), _count(den, external))
            # primary intervals cluster-aware (Obuchowski; groups: same lesion / patient, else
            # one image each), image-level DeLong kept as secondary columns
            gi = groups_of(tests[0].test)
            internal_cl = obuchowski_auc(yi, si, gi)
            row["internal_auc"], row["internal_auc_lo"], row["internal_auc_hi"] = \
                internal_cl.auc, internal_cl.lo, internal_cl.hi
            row["internal_auc_ci"] = f"clustered (Obuchowski), {internal_cl.n_clusters} clusters"
            row["internal_auc_img_lo"], row["internal_auc_img_hi"] = delong_ci(yi, si)[1:]
            groups = groups_of(ext)
            external_cl = obuchowski_auc(y, s, groups)
            lo, hi, se = external_cl.lo, external_cl.hi, external_cl.se
            row["external_auc_ci"] = ("clustered (Obuchowski), patients as clusters"
                                      if len(set(groups)) < len(groups) else
                                      "clustered (Obuchowski), one image per cluster")
            row["external_n_clusters"] = external_cl.n_clusters
            row["external_auc_cboot_lo"], row["external_auc_cboot_hi"] = \
                cluster_bootstrap_auc(y, s, groups, n_boot=n_boot, seed=seed)[:2]
            row["external_auc_img_lo"], row["external_auc_img_hi"] = delong_ci(y, s)[1:]
            row["external_auc"], row["external_auc_lo"], row["external_auc_hi"] = \
                external["auc"], lo, hi
            row["external_auc_seed_sd"] = float(np.std(aucs, ddof=1)) if len(aucs) > 1 else math.nan
            originals = ext[~_copies(ext)]
            row["external_auc_without_copies"] = (
                binary_metrics(originals.label, originals.prob_malignant)["auc"]
                if row["training_copies"] and originals.label.nunique() == 2 else math.nan)
            delta = external["auc"] - internal["auc"]
            half = 1.959964 * math.sqrt(se ** 2 + internal_cl.se ** 2)
            row["delta_auc"], row["delta_auc_lo"], row["delta_auc_hi"] = delta, delta - half, \
                delta + half
            row["external_brier"] = external["brier"]
            row["calibration_slope"], row["calibration_intercept"] = \
                calibration_slope_intercept(y, s)
            if model != REFERENCE and ref is not None and not row["flag"]:
                both = ext.merge(ref[0][["id", "prob_malignant"]], on="id", suffixes=("", "_ref"))
                row["delta_vs_fus2net"] = external["auc"] - binary_metrics(
                    both.label, both.prob_malignant_ref)["auc"]
                d = obuchowski_delta(both.label.to_numpy(), both.prob_malignant.to_numpy(),
                                     both.prob_malignant_ref.to_numpy(), groups_of(both))
                row["delta_vs_fus2net_lo"], row["delta_vs_fus2net_hi"] = d.lo, d.hi
                row["clustered_p"] = d.p
                row["delong_p"] = delong_test(both.label.to_numpy(), both.prob_malignant.to_numpy(),
                                              both.prob_malignant_ref.to_numpy())[1]
            rows.append(row)
    df = pd.DataFrame(rows)
    if len(df):
        for col in ("delong_p", "clustered_p"):
            if col not in df:
                df[col] = np.nan
            df[f"{col}_holm"] = np.nan
            for _, idx in df.groupby("external_set").groups.items():
                df.loc[idx, f"{col}_holm"] = holm(df.loc[idx, col].to_numpy(dtype=float))
    return df


def external_curves(runs: list[Run], bins: int = 10) -> tuple[pd.DataFrame, pd.DataFrame]:
    """ROC vertices (internal test and each external set; seed-averaged probabilities) and the
    reliability-diagram bins of each external set (equal-count bins of at least 20 images with
    Wilson intervals, :func:`bench.evaluation.calibration.reliability_bins`), per comparison model."""
    roc, cal = [], []
    for model, rs in comparison_sets(runs):
        tests = [r for r in rs if len(r.test)]
        if not tests:
            continue
        curves = {"internal test": _seed_mean(tests)}
        for name in external_sets(runs):
            got = _external_seed_mean(rs, name)
            if got is not None:
                curves[name] = (got[0].label.to_numpy(), got[0].prob_malignant.to_numpy())
        for name, (y, s) in curves.items():
            if len(set(y)) < 2:
                continue
            fpr, tpr, _ = roc_curve(y, s, drop_intermediate=False)
            roc.append(pd.DataFrame({"model": model, "set": name, "fpr": fpr, "tpr": tpr}))
            if name == "internal test":
                continue
            for r in reliability_bins(y, s, min_count=20, max_bins=bins).to_dict("records"):
                cal.append({"model": model, "set": name, **r})
    roc_df = pd.concat(roc, ignore_index=True) if roc else pd.DataFrame(
        columns=["model", "set", "fpr", "tpr"])
    return roc_df, pd.DataFrame(cal, columns=["model", "set", "bin", "p_min", "p_max", "mean_pred",
                                              "frac_pos", "frac_lo", "frac_hi", "count"])


def _explained(run: Run, method: str = "gradcam") -> pd.DataFrame | None:
    path = run.path / "explain" / method / "cam_metrics.csv"
    return pd.read_csv(path, dtype={"id": str}) if path.is_file() else None


def explanation_table(runs: list[Run]) -> pd.DataFrame:
    """Where each comparison model looks (bench.evaluation.explain): per model, image set and subgroup, n
    measured of n and the measures over images, seeds averaged per image first
    (:func:`bench.reporting.camtable.explanation_rows`)."""
    return explanation_rows(comparison_sets(runs), _explained)


def explanation_examples(runs: list[Run]) -> dict[str, np.ndarray]:
    """Per comparison model, the most confident true positive, false negative and false positive
    test image of its first seed: grey thumbnail, map and lesion mask, keyed by model, kind, image,
    P(malignant), seed, status and map size with layer (for the report's figure)."""
    out: dict[str, np.ndarray] = {}
    for model, rs in comparison_sets(runs):
        run = rs[0]
        cam = _explained(run)
        if cam is not None and "status" not in cam:
            continue  # made before maps were checked for resolution: nothing to show
        npz = run.path / "explain" / "gradcam" / "maps.npz"
        if cam is None or not npz.is_file():
            continue
        arrays = np.load(npz)
        ids = list(arrays["test/ids"])
        test = cam[cam.set == "test"]
        picks = {"true positive": test[(test.label == 1) & test.correct].sort_values(
                     "prob_malignant", ascending=False),
                 "false negative": test[(test.label == 1) & ~test.correct].sort_values(
                     "prob_malignant"),
                 "false positive": test[(test.label == 0) & ~test.correct].sort_values(
                     "prob_malignant", ascending=False)}
        for kind, chosen in picks.items():
            if len(chosen):
                k = ids.index(chosen.id.iloc[0])
                key = (f"{model}|{kind}|{chosen.id.iloc[0]}|{chosen.prob_malignant.iloc[0]:.2f}|"
                       f"{int(run.settings.get('seed', 0))}|{chosen.status.iloc[0]}|"
                       f"{chosen.map_size.iloc[0]} {chosen.layer.iloc[0]}")
                out[f"{key}|image"] = arrays["test/images"][k]
                out[f"{key}|map"] = arrays["test/maps"][k].astype(np.float32)
                out[f"{key}|mask"] = arrays["test/masks"][k]
    return out


def misclassified(runs: list[Run], model: str = REFERENCE) -> tuple[pd.DataFrame, dict]:
    """Fig. 3 analogue: the held-out images ``model`` gets wrong at threshold 0.5 on its
    seed-averaged probability, most confidently wrong first, with each seed's probability; and
    their thumbnails as the model saw them (from the first seed's explanation, when present)."""
    sets = dict(comparison_sets(runs))
    cols = ["id", "label", "prob_malignant", "predicted", "seeds_wrong", "n_seeds"]
    if model not in sets:
        return pd.DataFrame(columns=cols), {}
    rs = sets[model]
    tests = [r.test.sort_values("id").reset_index(drop=True) for r in rs]
    probs = np.stack([t.prob_malignant.to_numpy() for t in tests])
    y = tests[0].label.to_numpy()
    mean = probs.mean(0)
    df = pd.DataFrame({"id": tests[0].id.astype(str), "label": y, "prob_malignant": mean,
                       "predicted": (mean >= THRESHOLD).astype(int),
                       "seeds_wrong": ((probs >= THRESHOLD).astype(int) != y).sum(0),
                       "n_seeds": len(rs)})
    for r, p in zip(rs, probs, strict=True):
        df[f"prob_seed_{int(r.settings.get('seed', 0))}"] = p
    wrong = df[df.predicted != df.label].copy()
    wrong["confidence"] = (wrong.prob_malignant - THRESHOLD).abs()
    wrong = wrong.sort_values(["confidence", "id"], ascending=[False, True]).drop(
        columns="confidence").reset_index(drop=True)
    images: dict[str, np.ndarray] = {}
    npz = rs[0].path / "explain" / "gradcam" / "maps.npz"
    if npz.is_file():
        with np.load(npz) as arrays:
            ids = list(arrays["test/ids"])
            for i in wrong.id:
                if i in ids:
                    images[str(i)] = arrays["test/images"][ids.index(i)]
    return wrong, images


def pipeline_examples(runs: list[Run], model: str = REFERENCE
                      ) -> tuple[pd.DataFrame, dict[str, np.ndarray]]:
    """Fig. 5/6 analogues: the augmentation parameters of the first illustrated ``model``
    comparison run (``illustrations.csv``, :mod:`bench.evaluation.illustrate`) and its arrays
    (``illustrations.npz``) when present (results sets commit the table, not the arrays)."""
    for r in dict(comparison_sets(runs)).get(model, []):
        if (r.path / "illustrations.csv").is_file():
            params = pd.read_csv(r.path / "illustrations.csv", dtype={"id": str})
            params["hflip"] = params.hflip.astype(bool)
            arrays: dict[str, np.ndarray] = {}
            if (r.path / "illustrations.npz").is_file():
                with np.load(r.path / "illustrations.npz") as z:
                    arrays = {k: z[k] for k in z.files}
            return params.drop(columns="id"), arrays
    return pd.DataFrame(), {}
