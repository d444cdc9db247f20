"""External validation (docs/protocol.md "External validation"): internal (held-out test) vs each
external set at the unchanged threshold 0.5, per comparison model, with ΔAUC, calibration on the
external set and the contrast against Fus2Net on the same external images; its ROC and
reliability figures."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import roc_curve

from bench.core.tablefmt import fmt, fmt_p, with_ci, write_table, write_table_csv
from bench.engine.runfolder import Run
from bench.reporting import figures
from bench.reporting.externalsummary import CAPTION as SUMMARY_CAPTION
from bench.reporting.externalsummary import COLUMNS as SUMMARY_COLUMNS
from bench.reporting.externalsummary import external_findings, external_summary
from bench.reporting.figures import plt, sns
from bench.reporting.findings import INTRO as FINDINGS_INTRO
from bench.reporting.findings import flagged, write_findings
from bench.reporting.sections.context import ReportContext, plain_words, read_table
from bench.reporting.tables import (
    REFERENCE,
    comparison_runs,
    comparison_sets,
    seed_mean,
    weights_label,
)
from bench.stats.calibration import reliability_bins
from bench.stats.clustered import ClusteredAUC, obuchowski_auc, obuchowski_delta
from bench.stats.contrasts import groups_of
from bench.stats.metrics import binary_metrics, degenerate_prediction
from bench.stats.registry import View, evaluate, interval_columns, listed
from bench.stats.stats import (
    calibration_slope_intercept,
    cluster_bootstrap_auc,
    delong_ci,
    delong_test,
    holm,
)

TABLES = ("external_comparison.csv", "external_comparison.md", "external_comparison.tex",
          "external_summary.csv", "external_summary.md", "external_summary.tex",
          "external_findings.md", "external_roc_points.csv", "external_calibration_bins.csv")


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
    """Which external images copy a training image's picture (bench.engine.external)."""
    if "training_copy" not in ext:
        return np.zeros(len(ext), dtype=bool)
    return ext.training_copy.fillna("").astype(str).str.len().to_numpy() > 0


def _threshold_columns(internal: dict, external: dict, y: np.ndarray, s: np.ndarray,
                       n_boot: int, seed: int) -> dict:
    """The registered metrics of the external view (:mod:`bench.stats.registry`: accuracy,
    sensitivity, specificity, PPV, NPV) internal → external, the external ones with their 95%
    intervals (Wilson for a proportion)."""
    row = {}
    for m in listed(View.EXTERNAL):
        row[f"internal_{m.name}"] = internal[m.name]
        row.update(interval_columns(m, y, s, external, n_boot, seed, prefix="external_"))
    return row


def _auc_columns(internal: tuple[np.ndarray, np.ndarray, np.ndarray], ext: pd.DataFrame,
                 external_auc: float, n_boot: int, seed: int) -> tuple[dict, ClusteredAUC,
                                                                       ClusteredAUC]:
    """Internal and external AUC with their primary cluster-aware intervals (Obuchowski; groups:
    same lesion / patient, else one image each) and the secondary image-level and
    cluster-bootstrap ones; returns the columns and both clustered results."""
    yi, si, gi = internal
    y, s = ext.label.to_numpy(), ext.prob_malignant.to_numpy()
    internal_cl = obuchowski_auc(yi, si, gi)
    row = {"internal_auc": internal_cl.auc, "internal_auc_lo": internal_cl.lo,
           "internal_auc_hi": internal_cl.hi,
           "internal_auc_ci": f"clustered (Obuchowski), {internal_cl.n_clusters} clusters"}
    row["internal_auc_img_lo"], row["internal_auc_img_hi"] = delong_ci(yi, si)[1:]
    groups = groups_of(ext)
    external_cl = obuchowski_auc(y, s, groups)
    row["external_auc_ci"] = ("clustered (Obuchowski), patients as clusters"
                              if len(set(groups)) < len(groups) else
                              "clustered (Obuchowski), one image per cluster")
    row["external_n_clusters"] = external_cl.n_clusters
    row["external_auc_cboot_lo"], row["external_auc_cboot_hi"] = \
        cluster_bootstrap_auc(y, s, groups, n_boot=n_boot, seed=seed)[:2]
    row["external_auc_img_lo"], row["external_auc_img_hi"] = delong_ci(y, s)[1:]
    row["external_auc"], row["external_auc_lo"], row["external_auc_hi"] = \
        external_auc, external_cl.lo, external_cl.hi
    return row, internal_cl, external_cl


def _against_fus2net(ext: pd.DataFrame, ref: pd.DataFrame, external_auc: float) -> dict:
    """ΔAUC against Fus2Net's seed-averaged scores of the same external images: clustered
    interval and p (primary), DeLong's p (secondary)."""
    both = ext.merge(ref[["id", "prob_malignant"]], on="id", suffixes=("", "_ref"))
    y, s, r = (both.label.to_numpy(), both.prob_malignant.to_numpy(),
               both.prob_malignant_ref.to_numpy())
    d = obuchowski_delta(y, s, r, groups_of(both))
    return {"delta_vs_fus2net": external_auc - binary_metrics(both.label,
                                                              both.prob_malignant_ref)["auc"],
            "delta_vs_fus2net_lo": d.lo, "delta_vs_fus2net_hi": d.hi, "clustered_p": d.p,
            "delong_p": delong_test(y, s, r)[1]}


def external_row(model: str, name: str, rs: list[Run], got: tuple[pd.DataFrame, list[float]],
                 ref: tuple[pd.DataFrame, list[float]] | None, n_boot: int, seed: int) -> dict:
    """One model's row for external set ``name`` (see :func:`external_table`)."""
    ext, aucs = got
    tests = [r for r in rs if len(r.test)]
    y, s = ext.label.to_numpy(), ext.prob_malignant.to_numpy()
    yi, si = seed_mean(tests)
    copies = _copies(ext)
    row: dict = {"model": model, "external_set": name, "n_seeds": len(aucs),
                 "weights": weights_label(rs[0]), "n_internal": len(yi), "n_external": len(y),
                 "training_copies": int(copies.sum()), "flag": degenerate_prediction(s)}
    internal, external = evaluate(yi, si), evaluate(y, s)
    row.update(_threshold_columns(internal, external, y, s, n_boot, seed))
    aucs_row, internal_cl, external_cl = _auc_columns(
        (yi, si, groups_of(tests[0].test)), ext, external["auc"], n_boot, seed)
    row.update(aucs_row)
    row["external_auc_seed_sd"] = float(np.std(aucs, ddof=1)) if len(aucs) > 1 else math.nan
    originals = ext[~copies]
    row["external_auc_without_copies"] = (
        binary_metrics(originals.label, originals.prob_malignant)["auc"]
        if row["training_copies"] and originals.label.nunique() == 2 else math.nan)
    delta = external["auc"] - internal["auc"]
    half = 1.959964 * math.sqrt(external_cl.se ** 2 + internal_cl.se ** 2)
    row["delta_auc"], row["delta_auc_lo"], row["delta_auc_hi"] = delta, delta - half, delta + half
    row["external_brier"] = external["brier"]
    row["calibration_slope"], row["calibration_intercept"] = calibration_slope_intercept(y, s)
    if model != REFERENCE and ref is not None and not row["flag"]:
        row.update(_against_fus2net(ext, ref[0], external["auc"]))
    return row


def external_table(runs: list[Run], n_boot: int = 2000, seed: int = 0) -> pd.DataFrame:
    """Internal vs external (docs/protocol.md, Held-out test and cross-validation): per model and external set, the held-out test and the
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
            if got is not None and any(len(r.test) for r in rs):
                rows.append(external_row(model, name, rs, got, ref, n_boot, seed))
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
    Wilson intervals, :func:`bench.stats.calibration.reliability_bins`), per comparison model."""
    roc, cal = [], []
    for model, rs in comparison_sets(runs):
        tests = [r for r in rs if len(r.test)]
        if not tests:
            continue
        curves = {"internal test": seed_mean(tests)}
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


def external_display(t: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for r in t.to_dict("records"):
        flagged = isinstance(r.get("flag"), str) and bool(r.get("flag"))
        spread = r.get("external_auc_seed_sd")
        rows.append({
            "Model": r["model"] + (" ⚠" if flagged else ""), "External set": r["external_set"],
            "n (copies)": f"{int(r['n_external'])} ({int(r['training_copies'])})",
            "Seeds": str(int(r["n_seeds"])),
            "AUC internal": with_ci(r["internal_auc"], r["internal_auc_lo"], r["internal_auc_hi"]),
            "AUC external": with_ci(r["external_auc"], r["external_auc_lo"], r["external_auc_hi"])
            + ("" if pd.isna(spread) else f" (sd over seeds {spread:.3f})"),
            "AUC without copies": fmt(r["external_auc_without_copies"]),
            "ΔAUC": with_ci(r["delta_auc"], r["delta_auc_lo"], r["delta_auc_hi"]),
            **{m.display: f"{fmt(r[f'internal_{m.name}'], m.digits)} → "
                          f"{fmt(r[f'external_{m.name}'], m.digits)}"
               for m in listed(View.EXTERNAL)},
            "Brier": fmt(r["external_brier"]),
            "Cal. slope / intercept": f"{fmt(r['calibration_slope'], 2)} / "
                                      f"{fmt(r['calibration_intercept'], 2)}",
            "p vs Fus2Net, clustered (Holm)": "— (degenerate)" if flagged else fmt_p(
                r.get("clustered_p_holm")),
            "Flag": r.get("flag") if flagged else "",
        })
    return pd.DataFrame(rows)


def set_colours(external_sets: list[str]) -> dict[str, tuple]:
    """One colour per image set, the same in every external figure: the internal test set first,
    then the external sets in the order given."""
    sets = ["internal test", *[s for s in external_sets if s != "internal test"]]
    return dict(zip(sets, sns.color_palette("tab10", len(sets)), strict=False))


def external_roc(points: pd.DataFrame, base: Path) -> list[Path]:
    """One panel per model: ROC on the internal test set (solid) and on each external set
    (dashed), seed-averaged probabilities; Fus2Net's panel first."""
    models = list(dict.fromkeys(points.model))
    cols = min(4, max(1, len(models)))
    rows = int(np.ceil(len(models) / cols)) if models else 1
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 3.2 * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    palette = set_colours(list(dict.fromkeys(points.set)))
    for ax, model in zip(axes.flat, models, strict=False):
        ax.axis("on")
        for name, pts in points[points.model == model].groupby("set", sort=False):
            ax.step(pts.fpr, pts.tpr, where="post", color=palette[name], lw=1.6,
                    ls="-" if name == "internal test" else "--", label=name)
        ax.plot([0, 1], [0, 1], ls=":", color="grey", lw=0.8)
        ax.set(title=figures.wrapped(model), xlim=(-0.01, 1.01), ylim=(-0.01, 1.01), xlabel="1 − specificity",
               ylabel="sensitivity")
        ax.legend(fontsize=6, loc="lower right")
    fig.suptitle("Internal test (solid) vs external sets (dashed)", fontsize=10)
    fig.tight_layout()
    return figures.save(fig, base)


def degenerate_pairs(table: pd.DataFrame) -> set[tuple[str, str]]:
    """The (model, external set) rows of the saved external table flagged degenerate
    (near-constant or one-class predictions)."""
    if not len(table) or "flag" not in table:
        return set()
    marked = table[[flagged(f) for f in table.flag]]
    return set(zip(marked.model.astype(str), marked.external_set.astype(str), strict=True))


def external_calibration(bins: pd.DataFrame, base: Path,
                         degenerate: set[tuple[str, str]] | None = None) -> list[Path]:
    """Reliability diagrams, one panel per model (as :func:`external_roc`, Fus2Net's first), one
    colour per external set: observed malignant share (Wilson 95% CI) against the mean predicted
    probability in equal-count bins of at least 20 images; the diagonal is perfect calibration.
    A curve of a ``degenerate`` (model, set) is dashed and labelled "(degenerate)": its
    predictions are (near-)constant, so its bins say little."""
    degenerate = degenerate or set()
    models = list(dict.fromkeys(bins.model))
    palette = set_colours(list(dict.fromkeys(bins.set)))
    fig, axes = figures.model_panels(len(models), 3.2)
    for ax, model in zip(axes.flat, models, strict=False):
        ax.axis("on")
        ax.plot([0, 1], [0, 1], ls=":", color="grey", lw=0.8)
        for name, d in bins[bins.model == model].groupby("set", sort=False):
            err = [d.frac_pos - d.frac_lo, d.frac_hi - d.frac_pos] \
                if {"frac_lo", "frac_hi"} <= set(d) else None
            bad = (str(model), str(name)) in degenerate
            line = ax.errorbar(d.mean_pred, d.frac_pos, yerr=err, color=palette[name], marker="o",
                               ms=3.5, lw=1.2, capsize=2, ls="--" if bad else "-",
                               mfc="white" if bad else palette[name],
                               label=f"{name} (degenerate)" if bad else name)
            if bad:
                line[0].set_dashes((4, 2))
        ax.set(title=figures.wrapped(model), xlim=(-0.02, 1.02), ylim=(-0.02, 1.02))
        ax.title.set_fontsize(9)
        ax.tick_params(labelbottom=True)
        ax.legend(fontsize=6, loc="lower right")
    for ax in axes[-1]:
        ax.set_xlabel("mean predicted P(malignant)")
    for ax in axes[:, 0]:
        ax.set_ylabel("observed share malignant")
    fig.suptitle("Calibration on the external sets at their own prevalence: equal-count bins of "
                 "≥ 20 images, observed share with its Wilson 95% CI; dotted: perfect calibration"
                 + ("\ndashed, open markers: degenerate predictions (near-constant or one class)"
                    if degenerate else ""), fontsize=9)
    fig.tight_layout()
    return figures.save(fig, base)


CAPTION = ("Internal (held-out test) vs external sets at the unchanged threshold 0.5, "
           "seed-averaged probabilities (an ensemble of each model's seeds). AUC 95% CIs "
           "clustered (Obuchowski; the internal test's same-lesion groups, the external "
           "set's patients where it has patient IDs, else one image each), the primary "
           "ones; cluster-bootstrap and image-level DeLong CIs are in the CSV. ΔAUC CI "
           "from both clustered variances (independent samples). Calibration: Brier "
           "score, logistic recalibration slope (1 = ideal) and calibration-in-the-large "
           "intercept (0 = ideal). p vs Fus2Net: clustered z test of ΔAUC on the same "
           "external images, Holm-corrected across models per set. Every scored image counts; n (copies): how many external images are "
           "copies of a training image's picture (identical, re-saved, rescaled or "
           "cropped; look-alike lesions are not copies), with the AUC without them.")


def write_tables(ctx: ReportContext) -> None:
    """``external_comparison.{csv,md,tex}`` and the curves' points; with no external set among
    the runs, an earlier report's external tables are dropped."""
    ext = external_table(ctx.runs, n_boot=ctx.n_boot, seed=ctx.seed)
    if not len(ext):
        for name in TABLES:
            (ctx.tdir / name).unlink(missing_ok=True)
        return
    write_table(ext, external_display(ext), ctx.tdir / "external_comparison", CAPTION)
    write_table(ext[SUMMARY_COLUMNS], external_summary(ext), ctx.tdir / "external_summary",
                SUMMARY_CAPTION)
    write_findings(ctx.tdir / "external_findings.md", external_findings(ext))
    roc, cal = external_curves(ctx.runs)
    write_table_csv(ctx.tdir / "external_roc_points.csv", roc)
    write_table_csv(ctx.tdir / "external_calibration_bins.csv", cal)
    ctx.tables["external_comparison"] = ext


def draw_figures(tdir: Path, fdir: Path) -> list[Path]:
    if not (tdir / "external_roc_points.csv").is_file():
        return []
    return (external_roc(read_table(tdir / "external_roc_points.csv"), fdir / "external_roc")
            + external_calibration(read_table(tdir / "external_calibration_bins.csv"),
                                   fdir / "external_calibration",
                                   degenerate_pairs(read_table(tdir / "external_comparison.csv"))))


def readme(ctx: ReportContext) -> list[str]:
    if "external_comparison" not in ctx.tables:
        return []
    return ["## External validation: internal vs external", "",
            ctx.table_md("external_summary"), "",
            FINDINGS_INTRO, "", ctx.table_md("external_findings"),
            "Every measure, with the cluster-bootstrap and image-level intervals, calibration "
            "and the test against Fus2Net on the same external images:", "",
            ctx.table_md("external_comparison"), "",
            *plain_words(
                "Each model is scored once on its own site's held-out images and once on images "
                "from another site (another hospital, scanner and patient group, or the "
                "synthetic phantom's second site) that played no part in training, with the same "
                "50% cut-off.",
                "A fall from the internal to the external columns is the usual sign that a model "
                "learned cues of its own site rather than of the lesions; external images that "
                "copy training images are counted and flagged."),
            "![Internal vs external ROC](figures/external_roc.png)", "",
            "![External calibration](figures/external_calibration.png)", ""]
