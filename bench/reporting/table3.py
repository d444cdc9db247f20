"""Table 3's contrasts, calibration and prevalence columns (docs/protocol.md, "Metrics").

Per comparison model (a configuration over its seeds), on the held-out test images with their
clusters (same lesion or patient, :func:`bench.engine.runfolder.attach_groups`). Every primary interval
counts both sources of variance, the test set's lesion clusters AND the training seeds
(:mod:`bench.stats.twolevel`):

* ``auc``: the mean of the per-seed AUCs, with its primary interval ``auc_vc_lo/hi`` (variance
  components: Obuchowski's clustered variance of the seed mean plus the between-seed variance over
  the number of seeds, t on Welch–Satterthwaite df ``auc_vc_df``), the two-level bootstrap
  (``auc_2l_lo/hi``, seeds and clusters resampled) as a secondary one, and the intervals that
  hold the trained models fixed: clustered only (``auc_cl_lo/hi``, Obuchowski), the cluster
  bootstrap (``auc_cboot_lo/hi``) and the image-level DeLong one (``auc_img_lo/hi``);
* ``delta_auc``: ΔAUC against the reference on the seeds both have (``matched_seeds``), paired per
  seed, with the same primary interval and its t test (``delta_auc_p``, Holm across models in
  ``delta_auc_p_holm``), the two-level bootstrap (``delta_auc_2l_*``), the minimum detectable
  ΔAUC at 80 % power (``delta_auc_mdd``, :mod:`bench.stats.power`) and the models-fixed
  intervals: clustered only with its z test (``delta_auc_cl_*``), cluster bootstrap, image-level
  DeLong; ``verdict``: the one sentence the contrast allows
  (:func:`bench.stats.contrasts.verdict`);
* sensitivity, specificity, PPV and NPV (mean over seeds) with design-effect Wilson intervals over
  seeds × clusters (``sensitivity_lo/hi`` …, :mod:`bench.stats.proportions`) and the
  two-level bootstrap ones (``sensitivity_2l_lo/hi`` …);
* ``ensemble_auc``: the AUC of the seed-averaged probabilities, an ensemble of the seeds, only for
  two or more seeds, with its clustered interval;
* Brier, calibration slope and intercept (seed means, cluster-bootstrap intervals);
* PPV and NPV at the data set's own prevalence (``prevalence``; the test set's own is
  ``test_prevalence``).

These are pure functions of the runs; the report's sections (:mod:`bench.reporting.sections.heldout`,
:mod:`bench.reporting.sections.experiments`) add them to their rows.
"""

from __future__ import annotations

import math

import numpy as np

from bench.engine.runfolder import Run
from bench.engine.spec import REFERENCE
from bench.stats.calibration import calibration, predictive_values_at
from bench.stats.clustered import obuchowski_auc, obuchowski_delta
from bench.stats.contrasts import groups_of, matched_delta, seed_mean_auc, verdict
from bench.stats.power import min_detectable_delta
from bench.stats.proportions import METRICS, classification_bootstrap, classification_intervals
from bench.stats.registry import Metric, View, listed
from bench.stats.twolevel import (
    auc_variance_components,
    delta_variance_components,
    two_level_auc,
    two_level_delta,
)


def seed_of(run: Run) -> int:
    return run.seed


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
    row: dict = {"n_clusters": len(set(g)), "seeds_scored": ",".join(map(str, seeds)),
                 "test_prevalence": float(y.mean())}
    a = seed_mean_auc(y, s, g, n_boot=n_boot, seed=seed)
    vc = auc_variance_components(y, s, g)
    tl = two_level_auc(y, s, g, n_boot=max(n_boot, 2), seed=seed)
    row.update({"auc_vc_lo": vc.lo, "auc_vc_hi": vc.hi, "auc_vc_se": vc.se, "auc_vc_df": vc.df,
                "auc_2l_lo": tl.lo, "auc_2l_hi": tl.hi, "auc_2l_se": tl.se,
                "auc_cl_lo": a.lo, "auc_cl_hi": a.hi,
                "auc_cboot_lo": a.boot_lo, "auc_cboot_hi": a.boot_hi,
                "auc_img_lo": a.image_lo, "auc_img_hi": a.image_hi, "seed_note": vc.note})
    props = classification_intervals(y, s, g)
    boots = classification_bootstrap(y, s, g, n_boot=max(n_boot, 2), seed=seed)
    for name in METRICS:
        row.update({f"{name}_lo": props[name].lo, f"{name}_hi": props[name].hi,
                    f"{name}_deff": props[name].deff,
                    f"{name}_2l_lo": boots[name].lo, f"{name}_2l_hi": boots[name].hi})
    if len(seeds) > 1:
        e = seed_mean_auc(y, s.mean(0)[None], g, n_boot=0)
        row.update({"ensemble_auc": e.value, "ensemble_auc_cl_lo": e.lo,
                    "ensemble_auc_cl_hi": e.hi, "ensemble_seeds": len(seeds)})
    if contrast and ref:
        row.update(contrast_columns(y, s, g, seeds, ref, n_boot, seed))
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


def contrast_columns(y: np.ndarray, s: np.ndarray, g: np.ndarray, seeds: list[int],
                     ref: list[Run], n_boot: int, seed: int) -> dict:
    """ΔAUC of the scores ``s`` (rows: ``seeds``) against the reference's runs on the seeds both
    have: the primary variance-components interval and t test, the minimum detectable ΔAUC at
    80 % power from the same SE and df, the two-level bootstrap, and the models-fixed intervals
    (clustered with its z test, cluster bootstrap, image-level DeLong). Empty without a seed in
    common."""
    _, rsc, _, rseeds = test_matrix(ref)
    both = [k for k in seeds if k in rseeds]
    if not both:
        return {}
    a, b = s[[seeds.index(k) for k in both]], rsc[[rseeds.index(k) for k in both]]
    d = matched_delta(y, a, b, g, n_boot=n_boot, seed=seed)
    vc = delta_variance_components(y, a, b, g)
    tl = two_level_delta(y, a, b, g, n_boot=max(n_boot, 2), seed=seed)
    df = math.inf if math.isnan(vc.df) else vc.df
    return {"matched_seeds": ",".join(map(str, both)), "delta_auc": d.value,
            "delta_auc_vc_lo": vc.lo, "delta_auc_vc_hi": vc.hi, "delta_auc_vc_se": vc.se,
            "delta_auc_vc_df": vc.df, "delta_auc_p": vc.p,
            "delta_auc_mdd": min_detectable_delta(vc.se, df=df),
            "delta_auc_2l_lo": tl.lo, "delta_auc_2l_hi": tl.hi, "delta_auc_2l_se": tl.se,
            "delta_auc_2l_mdd": min_detectable_delta(tl.se),
            "delta_auc_cl_lo": d.lo, "delta_auc_cl_hi": d.hi, "delta_auc_cl_p": d.p,
            "delta_auc_cboot_lo": d.boot_lo, "delta_auc_cboot_hi": d.boot_hi,
            "delta_auc_img_lo": d.image_lo, "delta_auc_img_hi": d.image_hi,
            "delta_auc_img_p": d.image_p, "delta_note": vc.note}


def contrast_verdict(r: dict) -> str:
    """The row's sentence (:func:`bench.stats.contrasts.verdict`) from its ΔAUC, primary
    interval, Holm-adjusted p and minimum detectable ΔAUC; empty for a row without a contrast."""
    if not _num(r.get("delta_auc")):
        return ""

    def f(k: str) -> float:
        v = r.get(k)
        return float(v) if _num(v) else math.nan

    return verdict(f("delta_auc"), f("delta_auc_vc_lo"), f("delta_auc_vc_hi"),
                   f("delta_auc_p_holm"), f("delta_auc_mdd"))


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


def _delta(r: dict, reference: str, kind: str = "vc") -> str:
    """The ΔAUC cell with the interval ``delta_auc_{kind}_lo/hi`` (``vc``: seeds × lesions, the
    primary; ``cl``: clustered only, the models fixed) and the matched seeds."""
    if _is_paper(r):
        return "—"
    if r["model"] == reference:
        return "reference"
    if _flagged(r):
        return "— (degenerate)"
    if not _num(r.get("delta_auc")):
        return "—"
    return (_ci(r["delta_auc"], r.get(f"delta_auc_{kind}_lo"), r.get(f"delta_auc_{kind}_hi"),
                signed=True) + f" ({_seed_list(r.get('matched_seeds'))})")


def _contrast(r: dict, reference: str) -> bool:
    return not _is_paper(r) and r["model"] != reference and not _flagged(r) and \
        _num(r.get("delta_auc"))


def _p(v) -> str:
    return "—" if not _num(v) else ("<0.001" if v < 0.001 else f"{v:.3f}")


def _mdd(r: dict, reference: str, key: str = "delta_auc_mdd") -> str:
    return f"{r[key]:.3f}" if _contrast(r, reference) and _num(r.get(key)) else "—"


def _unit_ci(v, lo, hi) -> str:
    """An AUC with its interval cut to [0, 1] (the t interval itself is not)."""
    if not (_num(lo) and _num(hi)):
        return _ci(v, lo, hi)
    return _ci(v, max(0.0, lo), min(1.0, hi))


def _proportion(r: dict, name: str, kind: str = "") -> str:
    """``0.780 [0.65, 0.87]``: a proportion (mean over seeds) with its interval over seeds ×
    lesions (``kind`` ``""``: design-effect Wilson; ``"_2l"``: two-level bootstrap)."""
    v, lo, hi = r.get(name), r.get(f"{name}{kind}_lo"), r.get(f"{name}{kind}_hi")
    if not _num(v):
        return "—"
    if not (_num(lo) and _num(hi)):
        return f"{v:.3f}"
    return f"{v:.3f} [{lo:.2f}, {hi:.2f}]"


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


def headline_display(t, reference: str = REFERENCE):
    """The compact Table 3 of the README: one AUC per model (the mean over its seeds of the
    per-seed AUC) and ΔAUC against the reference on matched seeds, each with its interval over
    seeds × lesions; the contrast's Holm-adjusted p and minimum detectable ΔAUC; sensitivity
    and specificity with their clustered intervals over seeds × lesions; flags."""
    import pandas as pd

    rows = []
    for r in t.to_dict("records"):
        paper = _is_paper(r)
        rows.append({
            "Model": r["model"] + (" ⚠" if _flagged(r) else ""),
            "Weights": r.get("weights", "—"),
            "Seeds": _seeds(r),
            "AUC, mean over seeds [95% CI, seeds × lesions]": _unit_ci(
                r.get("auc"), r.get("auc_vc_lo"), r.get("auc_vc_hi")),
            "ΔAUC vs Fus2Net, matched seeds [95% CI, seeds × lesions]": _delta(r, reference),
            "p (Holm)": _p(r.get("delta_auc_p_holm")) if _contrast(r, reference) else "—",
            "MDD (80 %)": _mdd(r, reference),
            "Sensitivity [95% CI]": _proportion(r, "sensitivity"),
            "Specificity [95% CI]": _proportion(r, "specificity"),
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


def _full_label(m: Metric) -> str:
    """A metric's column in the full Table 3: its display name, ``(test set)`` after one that
    depends on the test set's prevalence (PPV, NPV)."""
    return f"{m.display} (test set)" if m.prevalence_dependent else m.display


def full_display(t, reference: str = REFERENCE):
    """Every Table 3 column (the LaTeX file): metrics over seeds, the AUC's intervals (over seeds ×
    lesions: variance components, the primary, and the two-level bootstrap; with the models
    fixed: clustered, cluster bootstrap, image-level DeLong), the ensemble, the matched contrast
    with the same intervals, its tests, minimum detectable ΔAUC and verdict, calibration and
    prevalence."""
    import pandas as pd

    rows = []
    for r in t.to_dict("records"):
        paper = _is_paper(r)
        contrast = _contrast(r, reference)
        rows.append({
            "Model": r["model"] + (" ⚠" if _flagged(r) else ""), "Weights": r.get("weights", "—"),
            "Params (M)": _ci(r.get("params_m"), math.nan, math.nan, 2),
            "Input": f"{int(r['img_size'])} px" if _num(r.get("img_size")) else "—",
            "Seeds": _seeds(r),
            **{_full_label(m): (_ci(r.get(m.name), math.nan, math.nan, m.digits) if paper
                                else _spread(r, m.name, m.digits))
               for m in listed(View.TABLE3)},
            "Sensitivity [CI, seeds × lesions]": _proportion(r, "sensitivity"),
            "Specificity [CI, seeds × lesions]": _proportion(r, "specificity"),
            "AUC [CI, seeds × lesions; primary]": _unit_ci(r.get("auc"), r.get("auc_vc_lo"),
                                                          r.get("auc_vc_hi")),
            "AUC [two-level bootstrap CI]": _ci(r.get("auc"), r.get("auc_2l_lo"),
                                                r.get("auc_2l_hi")),
            "AUC [clustered CI, models fixed]": _ci(r.get("auc"), r.get("auc_cl_lo"),
                                                    r.get("auc_cl_hi")),
            "AUC [cluster bootstrap CI, models fixed]": _ci(r.get("auc"), r.get("auc_cboot_lo"),
                                                            r.get("auc_cboot_hi")),
            "AUC [image-level DeLong CI, secondary]": _ci(r.get("auc"), r.get("auc_img_lo"),
                                                         r.get("auc_img_hi")),
            "Ensemble of seeds: AUC [clustered CI]": _ci(
                r.get("ensemble_auc"), r.get("ensemble_auc_cl_lo"), r.get("ensemble_auc_cl_hi")),
            "ΔAUC vs Fus2Net, matched seeds [CI, seeds × lesions; primary]": _delta(r, reference),
            "ΔAUC [two-level bootstrap CI]": _ci(
                r.get("delta_auc"), r.get("delta_auc_2l_lo"), r.get("delta_auc_2l_hi"),
                signed=True) if contrast else "—",
            "ΔAUC [clustered CI, models fixed]": _delta(r, reference, "cl"),
            "ΔAUC [image-level CI, secondary]": _ci(
                r.get("delta_auc"), r.get("delta_auc_img_lo"), r.get("delta_auc_img_hi"),
                signed=True) if contrast else "—",
            "p (Holm)": _p(r.get("delta_auc_p_holm")) if contrast else "—",
            "p clustered, models fixed (Holm)": _p(r.get("delta_auc_cl_p_holm"))
            if contrast else "—",
            "MDD (80 %)": _mdd(r, reference),
            "Seeds with clustered p < 0.05 (Holm)": r.get("seeds_significant")
            if contrast and isinstance(r.get("seeds_significant"), str) else "—",
            "Verdict": r.get("verdict") if contrast and isinstance(r.get("verdict"), str)
            else "—",
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


def _test_share(t) -> str:
    """``50%``: the malignant share of the held-out test images, from the rows' ``test_prevalence``."""
    shares = t["test_prevalence"].dropna() if "test_prevalence" in t else []
    return f"{shares.iloc[0]:.0%}" if len(shares) else "own prevalence"


def calibration_display(t):
    """Calibration and prevalence per model (README): Brier, slope and intercept with cluster
    bootstrap intervals; PPV and NPV at the test set's own prevalence and at the data set's."""
    import pandas as pd

    rows = []
    at_test = f"PPV / NPV at the test set's {_test_share(t)}"
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
            at_test: f"{_ci(r.get('ppv'), math.nan, math.nan)} / "
                     f"{_ci(r.get('npv'), math.nan, math.nan)}",
            "PPV / NPV at the data set's prevalence [95% CI]": _at_prevalence(r),
        })
    return pd.DataFrame(rows)


HEADLINE_CAPTION = (
    "Held-out test set ({clusters}). AUC: the mean over a model's training seeds of its per-seed "
    "AUC (one trained model on average; one AUC per model). Its 95% CI, the primary one, counts "
    "both sources of variance: the test set's same-lesion groups (Obuchowski's clustered "
    "variance of the seed mean) and the training seeds (the variance of the per-seed AUCs over "
    "the number of seeds); a t interval on Welch–Satterthwaite degrees of freedom, cut to "
    "[0, 1]. ΔAUC vs Fus2Net: the mean over the seeds both models have (listed) of the per-seed "
    "difference on the same images, with the same kind of interval; p (Holm): its t test, "
    "Holm's correction across models. MDD (80 %): the smallest |ΔAUC| that this test set and "
    "these seeds detect with 80 % power at α = 0.05 (from the same standard error and degrees "
    "of freedom); where the interval holds 0, differences up to its farther end cannot be "
    "excluded. Each contrast's reading is the sentence under the table. Sensitivity and "
    "specificity at threshold {threshold}, mean over seeds, with 95% Wilson intervals on the "
    "sample size divided by the design effect of seeds × lesion groups. ⚠ = degenerate "
    "predictions: the row's tests are not evidence. Every other column (two-level bootstrap "
    "intervals, resampling seeds and lesion groups together; the intervals that hold the "
    "trained models fixed: clustered only (Obuchowski, with its z test), cluster bootstrap and "
    "image-level DeLong; the ensemble of the seeds; calibration; PPV/NPV) is in "
    "table3_comparison.csv and .tex; per seed in table3_per_seed.csv. The last row is the "
    "paper's own result on different data.")

FULL_CAPTION = (
    "Held-out test set, per model over its training seeds: mean ± sd [min–max] (one seed: its "
    "value). Intervals over seeds × lesions (both sources of variance): variance components "
    "(Obuchowski's clustered variance of the seed mean plus the between-seed variance over the "
    "number of seeds; t on Welch–Satterthwaite df), the primary one, and the two-level "
    "bootstrap (seeds and lesion groups resampled together); intervals with the trained models "
    "fixed (lesion groups only): clustered (Obuchowski), cluster bootstrap, and image-level "
    "DeLong (secondary: treats images of one lesion as independent). Sensitivity and "
    "specificity CIs: Wilson on the design-effect sample size over seeds × lesions. Ensemble: "
    "the AUC of the seed-averaged probabilities (an ensemble of the seeds; only for two or "
    "more). ΔAUC vs Fus2Net on matched seeds; p (Holm): the variance-components t test, Holm "
    "across models; p clustered, models fixed: the clustered z test, Holm across models; MDD: "
    "the minimum detectable |ΔAUC| at 80 % power (α = 0.05); Verdict: the sentence the "
    "contrast allows. Seeds significant: per matched seed, clustered p with Holm across models. "
    "Brier, calibration slope and intercept: seed means with cluster-bootstrap CIs. PPV/NPV "
    "(test set) hold at the test set's own prevalence; at the data set's own prevalence they "
    "are recomputed from sensitivity and specificity.")

CALIBRATION_CAPTION = (
    "Calibration and prevalence on the held-out test set (means over seeds; 95% CIs from a "
    "cluster bootstrap over same-lesion groups, every seed on each replicate). Slope < 1: "
    "over-confident; intercept < 0: predicts malignancy too often. PPV and NPV depend on "
    "prevalence: {prevalence}; the last column recomputes them there from sensitivity and "
    "specificity (Bayes' rule).")


def prevalence_text(t3) -> str:
    """The test set's and the data set's prevalence as the calibration caption states them."""
    prevalence = t3["prevalence"].dropna() if "prevalence" in t3 else []
    share = _test_share(t3)
    test = (f"the test set holds {share} malignant images" if share != "own prevalence"
            else "the test set's share of malignant images is unknown")
    if not len(prevalence):
        return f"{test}, the data set's is unknown (the runs record no manifest)"
    return (f"{test}, the data set {prevalence.iloc[0]:.0%} malignant (its manifest, excluded "
            "images aside)")


CALIBRATION_COLUMNS = ["model", "n_seeds", "seeds", "test_prevalence", "brier", "brier_lo", "brier_hi", "cal_slope",
                       "cal_slope_lo", "cal_slope_hi", "cal_intercept", "cal_intercept_lo",
                       "cal_intercept_hi", "ppv", "npv", "prevalence", "ppv_at_prevalence",
                       "ppv_at_prevalence_lo", "ppv_at_prevalence_hi", "npv_at_prevalence",
                       "npv_at_prevalence_lo", "npv_at_prevalence_hi", "n_clusters", "flag"]


def paired_to_base(cv, base_folds: list) -> dict:
    """A Fus2Net variant against the base recipe on the (seed, fold) pairs both ran: per-fold
    ΔAUC (CV), its corrected resampled-t interval and what the interval says
    (:func:`bench.stats.contrasts.paired_fold_delta`)."""
    import pandas as pd

    from bench.stats.contrasts import paired_fold_delta, reading

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
