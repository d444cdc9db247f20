"""Table 3's contrasts, calibration and prevalence columns (docs/protocol.md, "Metrics").

Per comparison model (a configuration over its seeds), on the held-out test images with their
clusters (same lesion or patient, :func:`bench.reporting.runs.attach_groups`):

* ``auc``: the mean of the per-seed AUCs, with its primary interval (``auc_cl_lo/hi``,
  Obuchowski clustered), a cluster bootstrap interval and the image-level DeLong one (secondary);
* ``delta_auc``: ΔAUC against the reference on the seeds both have (``matched_seeds``), paired per
  seed, with the clustered interval and z test (``delta_auc_p``, Holm across models in the
  report), the cluster bootstrap and the image-level DeLong ones;
* ``ensemble_auc``: the AUC of the seed-averaged probabilities, an ensemble of the seeds, only for
  two or more seeds, with its clustered interval;
* Brier, calibration slope and intercept (seed means, cluster-bootstrap intervals);
* PPV and NPV at the data set's own prevalence (the test set holds 50 % malignant images).

These are pure functions of the runs; the report's sections (:mod:`bench.reporting.sections.heldout`,
:mod:`bench.reporting.sections.experiments`) add them to their rows.
"""

from __future__ import annotations

import math

import numpy as np

from bench.evaluation.calibration import calibration, predictive_values_at
from bench.evaluation.clustered import obuchowski_auc, obuchowski_delta
from bench.evaluation.contrasts import groups_of, matched_delta, seed_mean_auc
from bench.reporting.runs import Run


def seed_of(run: Run) -> int:
    return int(run.settings.get("seed", 0))


def test_matrix(rs: list[Run]) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[int]]:
    """Labels, P(malignant) per seed (k×n, rows in seed order), the images' clusters and the seeds
    of the runs in ``rs`` that scored the test set (images in id order)."""
    done = sorted((r for r in rs if len(r.test)), key=seed_of)
    tests = [r.test for r in done]
    y = tests[0].label.to_numpy()
    return (y, np.vstack([t.prob_malignant.to_numpy() for t in tests]), groups_of(tests[0]),
            [seed_of(r) for r in done])


def per_seed_columns(test, ref_test, n_boot: int, seed: int) -> dict:
    """Clustered AUC interval of one seed's test predictions, and its paired clustered ΔAUC
    against the reference's run of the same seed (``ref_test``; ``None``: no contrast)."""
    y, s, g = test.label.to_numpy(), test.prob_malignant.to_numpy(), groups_of(test)
    a = obuchowski_auc(y, s, g)
    row = {"auc_cl_lo": a.lo, "auc_cl_hi": a.hi, "n_clusters": a.n_clusters}
    if ref_test is not None:
        d = obuchowski_delta(y, s, ref_test.prob_malignant.to_numpy(), g)
        row.update({"delta_auc_cl_lo": d.lo, "delta_auc_cl_hi": d.hi, "delta_p": d.p})
    return row


def model_columns(rs: list[Run], ref: list[Run] | None, n_boot: int, seed: int,
                  contrast: bool) -> dict:
    """The module's columns for one configuration ``rs`` against the reference's runs ``ref``
    (``contrast`` false: no ΔAUC, e.g. for the reference itself or a degenerate model)."""
    y, s, g, seeds = test_matrix(rs)
    row: dict = {"n_clusters": len(set(g)), "seeds_scored": ",".join(map(str, seeds))}
    a = seed_mean_auc(y, s, g, n_boot=n_boot, seed=seed)
    row.update({"auc_cl_lo": a.lo, "auc_cl_hi": a.hi,
                "auc_cboot_lo": a.boot_lo, "auc_cboot_hi": a.boot_hi,
                "auc_img_lo": a.image_lo, "auc_img_hi": a.image_hi})
    if len(seeds) > 1:
        e = seed_mean_auc(y, s.mean(0)[None], g, n_boot=0)
        row.update({"ensemble_auc": e.value, "ensemble_auc_cl_lo": e.lo,
                    "ensemble_auc_cl_hi": e.hi, "ensemble_seeds": len(seeds)})
    if contrast and ref:
        ry, rsc, _, rseeds = test_matrix(ref)
        both = [k for k in seeds if k in rseeds]
        if both:
            d = matched_delta(y, s[[seeds.index(k) for k in both]],
                              rsc[[rseeds.index(k) for k in both]], g, n_boot=n_boot, seed=seed)
            row.update({"matched_seeds": ",".join(map(str, both)), "delta_auc": d.value,
                        "delta_auc_cl_lo": d.lo, "delta_auc_cl_hi": d.hi, "delta_auc_p": d.p,
                        "delta_auc_cboot_lo": d.boot_lo, "delta_auc_cboot_hi": d.boot_hi,
                        "delta_auc_img_lo": d.image_lo, "delta_auc_img_hi": d.image_hi,
                        "delta_auc_img_p": d.image_p})
    c = calibration(y, s, g, n_boot=n_boot, seed=seed)
    for name in ("brier", "slope", "intercept"):
        iv = getattr(c, name)
        key = name if name == "brier" else f"cal_{name}"
        row.update({key: iv.value, f"{key}_lo": iv.lo, f"{key}_hi": iv.hi})
    prevalence = rs[0].prevalence
    row["prevalence"] = prevalence
    if not math.isnan(prevalence):
        ppv, npv = predictive_values_at(y, s, g, prevalence, n_boot=n_boot, seed=seed)
        row.update({"ppv_at_prevalence": ppv.value, "ppv_at_prevalence_lo": ppv.lo,
                    "ppv_at_prevalence_hi": ppv.hi, "npv_at_prevalence": npv.value,
                    "npv_at_prevalence_lo": npv.lo, "npv_at_prevalence_hi": npv.hi})
    return row


# --- display (Markdown / LaTeX cells) -------------------------------------------------------


def _num(v) -> bool:
    return v is not None and not (isinstance(v, float) and math.isnan(v))


def _ci(v, lo, hi, digits: int = 3, signed: bool = False) -> str:
    if not _num(v):
        return "—"
    f = f"{{:+.{digits}f}}" if signed else f"{{:.{digits}f}}"
    if not (_num(lo) and _num(hi)):
        return f.format(v)
    return f"{f.format(v)} [{f.format(lo)}, {f.format(hi)}]"


def _flagged(r: dict) -> bool:
    return isinstance(r.get("flag"), str) and bool(r.get("flag"))


def _is_paper(r: dict) -> bool:
    return _num(r.get("paper_row")) and bool(r.get("paper_row"))


def _seeds(r: dict) -> str:
    if _is_paper(r):
        return "—"
    seeds = r.get("seeds")
    return f"{int(r.get('n_seeds', 0))} ({seeds})" if isinstance(seeds, str) and seeds else \
        str(int(r.get("n_seeds", 0)))


def _delta(r: dict, reference: str) -> str:
    if _is_paper(r):
        return "—"
    if r["model"] == reference:
        return "reference"
    if _flagged(r):
        return "— (degenerate)"
    if not _num(r.get("delta_auc")):
        return "—"
    return (_ci(r["delta_auc"], r.get("delta_auc_cl_lo"), r.get("delta_auc_cl_hi"), signed=True)
            + f" ({_seed_list(r.get('matched_seeds'))})")


def _seed_list(seeds) -> str:
    text = str(seeds)
    return f"seed {text}" if "," not in text else f"seeds {text}"


def _flag_text(r: dict) -> str:
    """The Flag cell: degenerate predictions, the settings that differ from the reference
    configuration (``not_comparable``) and failed seeds."""
    text = r.get("flag") if _flagged(r) else ""
    differs = r.get("not_comparable")
    if isinstance(differs, str) and differs:
        text = (text + "; " if text else "") + differs
    if _num(r.get("failed_seeds")) and r.get("failed_seeds"):
        text = (text + "; " if text else "") + f"{int(r['failed_seeds'])} seed(s) failed"
    return text


def headline_display(t, reference: str = "fus2net"):
    """The compact Table 3 of the README: one AUC per model (the mean over its seeds of the
    per-seed AUC) with its primary, clustered interval, ΔAUC against the reference on matched
    seeds, sensitivity, specificity and flags."""
    import pandas as pd

    rows = []
    for r in t.to_dict("records"):
        paper = _is_paper(r)
        rows.append({
            "Model": r["model"] + (" ⚠" if _flagged(r) else ""),
            "Weights": r.get("weights", "—"),
            "Seeds": _seeds(r),
            "AUC, mean over seeds [clustered 95% CI]": _ci(r.get("auc"), r.get("auc_cl_lo"),
                                                           r.get("auc_cl_hi")),
            "ΔAUC vs Fus2Net, matched seeds [clustered 95% CI]": _delta(r, reference),
            "Sensitivity": _ci(r.get("sensitivity"), math.nan, math.nan),
            "Specificity": _ci(r.get("specificity"), math.nan, math.nan),
            "Flag": r.get("note", "") if paper else _flag_text(r),
        })
    return pd.DataFrame(rows)


def _spread(r: dict, k: str, digits: int = 3) -> str:
    """``mean ± sd [min–max]`` over seeds; one seed: its value alone."""
    v = r.get(k)
    if not _num(v):
        return "—"
    if int(r.get("n_seeds", 1) or 1) < 2 or not _num(r.get(f"{k}_sd")):
        return f"{v:.{digits}f}"
    return (f"{v:.{digits}f} ± {r[f'{k}_sd']:.{digits}f} "
            f"[{r[f'{k}_min']:.{digits}f}–{r[f'{k}_max']:.{digits}f}]")


def full_display(t, reference: str = "fus2net"):
    """Every Table 3 column (the LaTeX file): metrics over seeds, the AUC's three intervals,
    the ensemble, the matched contrast with its tests, calibration and prevalence."""
    import pandas as pd

    def p(v) -> str:
        return "—" if not _num(v) else ("<0.001" if v < 0.001 else f"{v:.3f}")

    rows = []
    for r in t.to_dict("records"):
        paper = _is_paper(r)
        contrast = not paper and r["model"] != reference and not _flagged(r)
        rows.append({
            "Model": r["model"] + (" ⚠" if _flagged(r) else ""), "Weights": r.get("weights", "—"),
            "Params (M)": _ci(r.get("params_m"), math.nan, math.nan, 2),
            "Input": f"{int(r['img_size'])} px" if _num(r.get("img_size")) else "—",
            "Seeds": _seeds(r),
            **{k: (_ci(r.get(c), math.nan, math.nan) if paper else _spread(r, c))
               for k, c in (("Accuracy", "accuracy"), ("Sensitivity", "sensitivity"),
                            ("Specificity", "specificity"), ("PPV (50 %)", "ppv"),
                            ("NPV (50 %)", "npv"), ("AUC", "auc"))},
            "AUC [clustered CI]": _ci(r.get("auc"), r.get("auc_cl_lo"), r.get("auc_cl_hi")),
            "AUC [cluster bootstrap CI]": _ci(r.get("auc"), r.get("auc_cboot_lo"),
                                              r.get("auc_cboot_hi")),
            "AUC [image-level DeLong CI, secondary]": _ci(r.get("auc"), r.get("auc_img_lo"),
                                                         r.get("auc_img_hi")),
            "Ensemble of seeds: AUC [clustered CI]": _ci(
                r.get("ensemble_auc"), r.get("ensemble_auc_cl_lo"), r.get("ensemble_auc_cl_hi")),
            "ΔAUC vs Fus2Net, matched seeds [clustered CI]": _delta(r, reference),
            "ΔAUC [image-level CI, secondary]": _ci(
                r.get("delta_auc"), r.get("delta_auc_img_lo"), r.get("delta_auc_img_hi"),
                signed=True) if contrast else "—",
            "p clustered (Holm)": p(r.get("delta_auc_p_holm")) if contrast else "—",
            "Seeds with clustered p < 0.05 (Holm)": r.get("seeds_significant")
            if contrast and isinstance(r.get("seeds_significant"), str) else "—",
            "Brier [CI]": _ci(r.get("brier"), r.get("brier_lo"), r.get("brier_hi")),
            "Cal. slope [CI]": _ci(r.get("cal_slope"), r.get("cal_slope_lo"),
                                   r.get("cal_slope_hi"), 2),
            "Cal. intercept [CI]": _ci(r.get("cal_intercept"), r.get("cal_intercept_lo"),
                                       r.get("cal_intercept_hi"), 2),
            "PPV / NPV at data-set prevalence": _at_prevalence(r),
            "Flag": r.get("note", "") if paper else _flag_text(r),
        })
    return pd.DataFrame(rows)


def _at_prevalence(r: dict) -> str:
    if not _num(r.get("ppv_at_prevalence")):
        return "—"
    return (f"{r['prevalence']:.0%}: " + _ci(r["ppv_at_prevalence"], r.get("ppv_at_prevalence_lo"),
                                               r.get("ppv_at_prevalence_hi"))
            + " / " + _ci(r["npv_at_prevalence"], r.get("npv_at_prevalence_lo"),
                          r.get("npv_at_prevalence_hi")))


def calibration_display(t):
    """Calibration and prevalence per model (README): Brier, slope and intercept with cluster
    bootstrap intervals; PPV and NPV at the test set's 50 % and at the data set's prevalence."""
    import pandas as pd

    rows = []
    for r in t.to_dict("records"):
        if _is_paper(r) or not _num(r.get("brier")):
            continue
        rows.append({
            "Model": r["model"] + (" ⚠" if _flagged(r) else ""), "Seeds": _seeds(r),
            "Brier [95% CI]": _ci(r["brier"], r.get("brier_lo"), r.get("brier_hi")),
            "Calibration slope [95% CI] (1 = ideal)": _ci(
                r.get("cal_slope"), r.get("cal_slope_lo"), r.get("cal_slope_hi"), 2),
            "Intercept [95% CI] (0 = ideal)": _ci(
                r.get("cal_intercept"), r.get("cal_intercept_lo"), r.get("cal_intercept_hi"), 2),
            "PPV / NPV at the test set's 50 %": f"{_ci(r.get('ppv'), math.nan, math.nan)} / "
                                                 f"{_ci(r.get('npv'), math.nan, math.nan)}",
            "PPV / NPV at the data set's prevalence [95% CI]": _at_prevalence(r),
        })
    return pd.DataFrame(rows)


HEADLINE_CAPTION = (
    "Held-out test set. AUC: the mean over a model's training seeds of its per-seed AUC (one "
    "trained model on average; one AUC per model); 95% CI clustered (Obuchowski's method over "
    "the test set's same-lesion groups, {clusters}), the primary interval. ΔAUC vs Fus2Net: on the "
    "seeds both models have (listed), paired per seed on the same images, with its clustered 95% "
    "CI; an interval that holds 0 shows no difference and bounds it. Sensitivity and specificity "
    "at threshold 0.5, mean over seeds. ⚠ = degenerate predictions: the row's tests are not "
    "evidence. Every other column (image-level DeLong and cluster-bootstrap intervals as "
    "secondary ones, the ensemble of the seeds in its own column, p-values with Holm's "
    "correction, calibration, PPV/NPV) is in table3_comparison.csv and .tex; per seed in "
    "table3_per_seed.csv. The last row is the paper's own result on different data.")

FULL_CAPTION = (
    "Held-out test set, per model over its training seeds: mean ± sd [min–max] (one seed: its "
    "value). AUC intervals: clustered (Obuchowski, primary), cluster bootstrap, image-level "
    "DeLong (secondary: treats images of one lesion as independent). Ensemble: the AUC of the "
    "seed-averaged probabilities (an ensemble of the seeds; only for two or more). ΔAUC vs "
    "Fus2Net on matched seeds with clustered (primary) and image-level (secondary) CIs; p: "
    "clustered z test, Holm across models; seeds significant: per matched seed, clustered p with "
    "Holm across models. Brier, calibration slope and intercept: seed means with cluster-bootstrap "
    "CIs. PPV/NPV (50 %) hold at the test set's 50 % prevalence; at the data set's own prevalence "
    "they are recomputed from sensitivity and specificity.")

CALIBRATION_CAPTION = (
    "Calibration and prevalence on the held-out test set (means over seeds; 95% CIs from a "
    "cluster bootstrap over same-lesion groups, every seed on each replicate). Slope < 1: "
    "over-confident; intercept < 0: predicts malignancy too often. PPV and NPV depend on "
    "prevalence: the test set holds 50 % malignant images, the data set {prevalence}; the last "
    "column recomputes them there from sensitivity and specificity (Bayes' rule).")

def prevalence_text(t3) -> str:
    """The data set's prevalence as the calibration caption states it."""
    prevalence = t3["prevalence"].dropna() if "prevalence" in t3 else []
    if not len(prevalence):
        return "unknown (the runs record no manifest)"
    return f"{prevalence.iloc[0]:.0%} malignant (its manifest, excluded images aside)"


CALIBRATION_COLUMNS = ["model", "n_seeds", "seeds", "brier", "brier_lo", "brier_hi", "cal_slope",
                       "cal_slope_lo", "cal_slope_hi", "cal_intercept", "cal_intercept_lo",
                       "cal_intercept_hi", "ppv", "npv", "prevalence", "ppv_at_prevalence",
                       "ppv_at_prevalence_lo", "ppv_at_prevalence_hi", "npv_at_prevalence",
                       "npv_at_prevalence_lo", "npv_at_prevalence_hi", "n_clusters", "flag"]


def paired_to_base(cv, base_folds: list) -> dict:
    """A Fus2Net variant against the base recipe on the (seed, fold) pairs both ran: per-fold
    ΔAUC (CV), its corrected resampled-t interval and what the interval says
    (:func:`bench.evaluation.contrasts.paired_fold_delta`)."""
    import pandas as pd

    from bench.evaluation.contrasts import paired_fold_delta, reading

    if not base_folds:
        return {}
    pf = paired_fold_delta(cv, pd.concat(base_folds, ignore_index=True))
    if not pf.n_pairs:
        return {"paired_folds": 0}
    return {"delta_auc_cv": pf.delta, "delta_auc_cv_lo": pf.lo, "delta_auc_cv_hi": pf.hi,
            "paired_folds": pf.n_pairs, "paired_seeds": pf.seeds,
            "reading": reading(pf.lo, pf.hi)}


def experiment_columns(r: dict) -> dict:
    """The paired contrast's display cells of one experiment row."""
    if not _num(r.get("delta_auc_cv")):
        if r.get("is_base") is True:
            return {"ΔAUC vs base (CV, paired per fold) [95% CI]": "base (the paper recipe)",
                    "What the interval says": ""}
        return {"ΔAUC vs base (CV, paired per fold) [95% CI]": "—",
                "What the interval says": "not compared: no (seed, fold) pair with the base"}
    return {"ΔAUC vs base (CV, paired per fold) [95% CI]":
            _ci(r["delta_auc_cv"], r.get("delta_auc_cv_lo"), r.get("delta_auc_cv_hi"), signed=True)
            + f" ({int(r['paired_folds'])} folds, {_seed_list(r.get('paired_seeds'))})",
            "What the interval says": r.get("reading", "")}


EXPERIMENT_CAPTION = (
    "{title}. Compared on cross-validation folds only (mean ± sd over every fold of every seed). "
    "ΔAUC vs base: the variant's CV AUC minus the paper recipe's on the same seed and fold, "
    "averaged over the pairs both ran, with the Nadeau–Bengio corrected resampled-t 95% CI (CV "
    "training sets overlap, so a plain t interval would be too narrow); an interval that holds 0 "
    "shows no difference and bounds the difference the data allow. The held-out test AUC is "
    "shown for reference and chose nothing.")
