"""Held-out comparison (Table 3 analogue, docs/protocol.md "Metrics"): per model, the test metrics
over seeds with the matched-seed comparison against Fus2Net; its ROC curves (Fig. 2 analogue) and
confusion matrices.

A *configuration* is a run's settings without its seed; each row is one configuration,
aggregated over its seeds (mean ± sd, min–max). Seeds are never treated as independent test sets:
a comparison against Fus2Net is ΔAUC on the seeds both have, paired per seed, with intervals and
tests over seeds × lesion clusters (:mod:`bench.reporting.table3`), stated in the README only as
:func:`bench.stats.contrasts.verdict`'s sentence; per seed, the clustered contrast, DeLong
(image-level, secondary) and McNemar. A configuration whose predictions are (near-)constant or one
class is flagged (:func:`bench.stats.metrics.degenerate_prediction`) and its tests are left
blank. A row whose settings (profile, data, manifest, epochs, image size, batch, folds) differ from
the set's reference configuration, Fus2Net's main row
(:func:`bench.reporting.tables.reference_configuration`), says which in ``not_comparable`` and in
the Flag column (:func:`bench.reporting.tables.differences_from_reference`). The ROC figure's
band is pointwise over seeds × lesion clusters (:func:`roc_band`), saved in ``roc_band.csv``.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import roc_curve

from bench.core.atomic import write_text
from bench.core.tablefmt import to_latex, write_table, write_table_csv
from bench.engine.runfolder import Run
from bench.reporting import figures, table3
from bench.reporting.figures import plt, sns
from bench.reporting.findings import write_findings
from bench.reporting.heldoutfindings import heldout_findings
from bench.reporting.sections.context import ReportContext, plain_words
from bench.reporting.table3 import model_columns, per_seed_columns
from bench.reporting.tables import (
    REFERENCE,
    check_same_test_set,
    comparability,
    comparison_runs,
    comparison_sets,
    weights_label,
)
from bench.stats.metrics import THRESHOLD, degenerate_prediction
from bench.stats.registry import Interval, View, evaluate, interval_columns, listed, names
from bench.stats.stats import (
    delong_ci,
    delong_test,
    holm,
    mcnemar_exact,
)
from bench.stats.twolevel import two_level_draws

# docs/protocol.md, The paper: the paper's own result on its private 100-image test set. "95.65% / 88.89%" are PPV/NPV
# of TP=44, FN=6, TN=48, FP=2; AUC is 0.97 in the abstract and 0.96 in the discussion.
PAPER_ROW = {"model": "Fus2Net — paper (Ma et al. 2021; own private test set, not comparable)",
             "weights": "—", "n": 100, "n_seeds": 1, "accuracy": 0.92, "sensitivity": 0.88,
             "specificity": 0.96, "ppv": 44 / 46, "npv": 48 / 54, "f1": 88 / 96, "auc": 0.97,
             "tp": 44, "fn": 6, "tn": 48, "fp": 2, "paper_row": True,
             "note": "as printed: accuracy, sensitivity, specificity, AUC (0.97 in the abstract, "
                     "0.96 in the discussion); re-derived here from the printed counts TP 44, FN 6, "
                     "TN 48, FP 2: PPV, NPV, F1"}


ALPHA = 0.05


# the per-seed table's column order: counts, point values, proportions, AUC, bootstrapped others
_ORDER = (Interval.NONE, Interval.WILSON, Interval.DELONG, Interval.BOOTSTRAP)


def _test_row(y: np.ndarray, s: np.ndarray, n_boot: int, seed: int) -> dict:
    """Every registered metric (:mod:`bench.stats.registry`) of one set of test predictions with
    its 95% CI (Wilson, DeLong with the bootstrap beside, or the percentile bootstrap)."""
    m = evaluate(y, s)
    row = {k: m[k] for k in ("n", "tp", "fn", "tn", "fp")}
    for kind in _ORDER:
        for metric in listed():
            if metric.interval == kind:
                row.update(interval_columns(metric, y, s, m, n_boot, seed))
    row["flag"] = degenerate_prediction(s)
    return row


def per_seed_table(runs: list[Run], n_boot: int = 2000, seed: int = 0) -> pd.DataFrame:
    """One row per (model, seed): test metrics with CIs, and paired tests against Fus2Net's run of
    the same seed (DeLong Holm-corrected across models within the seed; exact McNemar)."""
    sets = comparison_sets(runs)
    check_same_test_set([r for _, rs in sets for r in rs])
    ref = {r.seed: r for m, rs in sets if m == REFERENCE for r in rs
           if len(r.test)}
    rows = []
    for model, rs in sets:
        for r in rs:
            row: dict = {"model": model, "seed": r.seed,
                         "weights": weights_label(r), "status": r.record.status,
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
    df["not_comparable"] = df.model.map(comparability(sets)).fillna("")
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
                     "params_m": first.record.model_stats.get("params", math.nan) / 1e6,
                     "gflops": first.record.model_stats.get("gflops", math.nan),
                     "img_size": first.record.settings.img_size, "n_seeds": len(rs),
                     "seeds": ",".join(str(s) for s in seeds.seed),
                     "failed_seeds": int(len(seeds) - len(ok))}
        flags = [f"seed {s}: {f}" for s, f in zip(seeds.seed, seeds.flag, strict=True) if f]
        row["flag"] = "; ".join(flags)
        for k in names(View.SUMMARY, View.TABLE3):
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
    for col in ("delta_auc", "delta_auc_sd", "delta_auc_p", "delta_auc_cl_p",
                "seeds_significant"):
        if col not in df:
            df[col] = np.nan
    # Holm across models on the primary test (seeds × lesions); the models-fixed one kept apart
    df["delta_auc_p_holm"] = holm(df["delta_auc_p"].to_numpy(dtype=float))
    df["delta_auc_cl_p_holm"] = holm(df["delta_auc_cl_p"].to_numpy(dtype=float))
    df["verdict"] = [table3.contrast_verdict(r) for r in df.to_dict("records")]
    df["not_comparable"] = df.model.map(comparability(sets)).fillna("")
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
            parts.append(pd.DataFrame({"model": model, "seed": r.seed,
                                       "fpr": fpr, "tpr": tpr}))
            curves.append(np.interp(fpr_grid, fpr, tpr))
        if curves:
            mean = np.mean(curves, axis=0)
            mean[0] = 0.0
            parts.append(pd.DataFrame({"model": model, "seed": -1, "fpr": fpr_grid, "tpr": mean}))
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(
        columns=["model", "seed", "fpr", "tpr"])


ROC_BAND_BOOT = 300  # replicates of the ROC band: a drawn band, not a test


def weighted_tpr_at(y: np.ndarray, score: np.ndarray, weights: np.ndarray,
                    fpr_grid: np.ndarray) -> np.ndarray:
    """TPR at each false-positive rate of ``fpr_grid`` of the ROC curve of ``score`` under each
    row of image weights (B×n; an image counts as often as its cluster was drawn): B×grid. The
    curve's vertices are the thresholds (tied scores one vertex), interpolated linearly as
    :func:`roc_points` does (at a vertical step, its top). NaN where a row holds one class only."""
    order = np.argsort(-score, kind="mergesort")
    s = score[order]
    ends = np.r_[np.flatnonzero(s[1:] != s[:-1]), s.size - 1]  # last image of each tie block
    w = np.atleast_2d(weights)[:, order]
    pos = (y[order] == 1).astype(float)
    tp = np.cumsum(w * pos, axis=1)[:, ends]
    fp = np.cumsum(w * (1 - pos), axis=1)[:, ends]
    with np.errstate(invalid="ignore", divide="ignore"):
        tpr = np.hstack([np.zeros((w.shape[0], 1)), tp / tp[:, -1:]])
        fpr = np.hstack([np.zeros((w.shape[0], 1)), fp / fp[:, -1:]])
    bad = ~(np.isfinite(tpr).all(axis=1) & np.isfinite(fpr).all(axis=1))
    tpr[bad], fpr[bad] = 0.0, np.linspace(0, 1, fpr.shape[1])
    # one np.interp for every row: row b shifted to [2b, 2b + 1] keeps the rows apart
    shift = 2.0 * np.arange(w.shape[0])[:, None]
    out = np.interp((fpr_grid[None, :] + shift).ravel(), (fpr + shift).ravel(),
                    tpr.ravel()).reshape(w.shape[0], fpr_grid.size)
    out[bad] = np.nan
    return out


def roc_band(y: np.ndarray, scores: np.ndarray, groups: np.ndarray, fpr_grid: np.ndarray,
             n_boot: int = ROC_BAND_BOOT, seed: int = 0, level: float = 0.95
             ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The mean ROC curve over seeds (``scores`` seeds × images: TPR at ``fpr_grid``, the mean of
    the per-seed curves, as :func:`roc_points`) with its pointwise percentile band from a
    two-level bootstrap: each replicate draws the seeds with replacement and the lesion clusters
    with replacement (one cluster draw for every seed:
    :func:`bench.stats.twolevel.two_level_draws`) and takes the mean curve of the drawn
    seeds on the drawn images. At FPR 0 every curve starts at TPR 0."""
    k = scores.shape[0]
    weights, counts = two_level_draws(groups, k, n_boot, seed)
    ones = np.ones((1, y.size))
    mean = np.mean([weighted_tpr_at(y, s, ones, fpr_grid)[0] for s in scores], axis=0)
    reps = np.zeros((n_boot, fpr_grid.size))
    bad = np.zeros(n_boot, dtype=bool)
    for j, s in enumerate(scores):
        tpr = weighted_tpr_at(y, s, weights, fpr_grid)
        used = counts[:, j] > 0
        bad |= used & np.isnan(tpr).any(axis=1)
        reps += np.nan_to_num(tpr) * counts[:, j:j + 1] / k
    reps = reps[~bad]
    alpha = (1 - level) / 2
    lo, hi = np.quantile(reps, [alpha, 1 - alpha], axis=0) if len(reps) > 1 else \
        (np.full(fpr_grid.size, np.nan), np.full(fpr_grid.size, np.nan))
    mean[0] = lo[0] = hi[0] = 0.0
    return mean, lo, hi


def roc_band_table(runs: list[Run], grid: int = 101, n_boot: int = ROC_BAND_BOOT,
                   seed: int = 0) -> pd.DataFrame:
    """Per comparison model, its mean ROC curve over seeds at fixed false-positive rates with the
    pointwise 95% band over seeds × lesion clusters (:func:`roc_band`): what the ROC figure
    draws, saved so that ``--figures-only`` redraws it."""
    parts = []
    fpr_grid = np.linspace(0, 1, grid)
    for model, rs in comparison_sets(runs):
        done = [r for r in rs if len(r.test) and r.test.label.nunique() > 1]
        if not done:
            continue
        y, s, g, _ = table3.test_matrix(done)
        mean, lo, hi = roc_band(y, s, g, fpr_grid, n_boot=n_boot, seed=seed)
        parts.append(pd.DataFrame({"model": model, "fpr": fpr_grid, "tpr": mean,
                                   "tpr_lo": lo, "tpr_hi": hi, "n_seeds": len(done),
                                   "n_boot": n_boot}))
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(
        columns=["model", "fpr", "tpr", "tpr_lo", "tpr_hi", "n_seeds", "n_boot"])


def _clusters(t3: pd.DataFrame) -> str:
    """``"100 images in 65 groups"``: the test set's images and clusters (from the runs), for the
    captions."""
    if "n_clusters" not in t3 or t3.n_clusters.dropna().empty:
        return "no groups recorded: one image per cluster"
    return f"{int(t3.n_mean.dropna().iloc[0])} images in {int(t3.n_clusters.dropna().iloc[0])} groups"


def _roc_curves(ax, pts: pd.DataFrame, color, ls: str, lw: float, label: str,
                band: pd.DataFrame | None = None, shade: float = 0.15) -> None:
    if band is not None and len(band):
        ax.fill_between(band.fpr, band.tpr_lo, band.tpr_hi, color=color, alpha=shade, lw=0)
    for _, seed in pts[pts.seed >= 0].groupby("seed"):
        ax.step(seed.fpr, seed.tpr, where="post", color=color, lw=0.6, alpha=0.25)
    mean = pts[pts.seed == -1]
    ax.plot(mean.fpr, mean.tpr, color=color, lw=lw, ls=ls, label=label)


def roc_figure(points: pd.DataFrame, table: pd.DataFrame, base: Path,
               band: pd.DataFrame | None = None,
               where: str = "on the held-out test set") -> list[Path]:
    """Fig. 2 analogue as small multiples: one panel per model, each against Fus2Net (black, first
    panel alone); faint lines are single seeds, bold the mean over seeds, the shaded band its
    pointwise 95% interval over seeds × lesion clusters (``band``, :func:`roc_band_table`; none
    when not given); the legend gives the mean test AUC ± sd over seeds. Every model keeps one
    distinct colour and line style."""
    models = list(dict.fromkeys(points.model))
    ref = REFERENCE if REFERENCE in models else None
    styles = figures.model_styles(models)
    fig, axes = figures.model_panels(len(models), 3.3)

    def label(model: str) -> str:
        row = table[table.model == model].iloc[0]
        sd = row.get("auc_sd")
        spread = f" ± {sd:.3f}" if sd == sd and sd is not None else ""
        k = int(row["n_seeds"])
        return f"{figures.model_label(row)}\nAUC {row['auc']:.3f}{spread} ({k} seed{'s' if k > 1 else ''})"

    def of(model: str) -> pd.DataFrame | None:
        return None if band is None else band[band.model == model]

    order = ([ref] if ref else []) + [m for m in models if m != ref]
    for ax, model in zip(axes.flat, order, strict=False):
        ax.axis("on")
        if ref and model != ref:
            _roc_curves(ax, points[points.model == ref], figures.REFERENCE_COLOR, "-", 1.2,
                        label(ref), of(ref), shade=0.08)
        color, ls = styles[model]
        _roc_curves(ax, points[points.model == model], color, ls, 2.0, label(model), of(model))
        ax.plot([0, 1], [0, 1], ls=":", color="grey", lw=0.8)
        ax.set(xlim=(-0.01, 1.01), ylim=(-0.01, 1.01), title=model)
        ax.title.set_fontsize(9)
        ax.legend(loc="lower right", fontsize=6)
    for ax in axes[-1]:
        ax.set_xlabel("1 − specificity")
    for ax in axes[:, 0]:
        ax.set_ylabel("sensitivity")
    shaded = ("; shaded: pointwise 95% band over seeds × lesion groups (two-level bootstrap)"
              if band is not None and len(band) else "")
    fig.suptitle(f"ROC {where}, each model against Fus2Net (black); faint: "
                 f"single seeds, bold: mean over seeds{shaded}", fontsize=9)
    fig.tight_layout()
    return figures.save(fig, base)


def confusion_grid(table: pd.DataFrame, base: Path) -> list[Path]:
    """One 2×2 confusion matrix per model at threshold 0.5: the mean count over its seeds (the
    counts behind Table 3's sensitivity and specificity), one colour scale for every panel (0 to
    the largest class size)."""
    rows = table.dropna(subset=["tp_mean"]) if "tp_mean" in table else table.iloc[0:0]
    n = max(1, len(rows))
    cols = min(4, n)
    grid_rows = int(np.ceil(n / cols))
    fig, axes = plt.subplots(grid_rows, cols, figsize=(3.1 * cols, 2.9 * grid_rows),
                             squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    vmax = float(max([1.0] + [max(r.tn_mean + r.fp_mean, r.fn_mean + r.tp_mean)
                              for r in rows.itertuples()]))
    for ax, (_, row) in zip(axes.flat, rows.iterrows(), strict=False):
        ax.axis("on")
        m = np.array([[row.tn_mean, row.fp_mean], [row.fn_mean, row.tp_mean]], dtype=float)
        whole = np.allclose(m, np.round(m))
        sns.heatmap(m, annot=True, fmt=".0f" if whole else ".1f", cbar=False, cmap="Blues",
                    vmin=0, vmax=vmax, ax=ax, xticklabels=["benign", "malignant"],
                    yticklabels=["benign", "malignant"])
        seeds = int(row.n_seeds)
        ax.set(xlabel="predicted", ylabel="true")
        what = "1 seed" if seeds == 1 else f"mean of {seeds} seeds"
        ax.set_title(f"{figures.wrapped(figures.model_label(row))}\n{what}", fontsize=8)
    fig.suptitle("Held-out test set, P(malignant) ≥ 0.5: images per cell (mean over seeds; one "
                 f"colour scale, 0–{vmax:.0f})", fontsize=9)
    fig.tight_layout()
    return figures.save(fig, base)


def write_tables(ctx: ReportContext) -> None:
    """``table3_per_seed.csv``, ``table3_comparison.{csv,md,tex}`` (with the paper's row) and
    ``roc_points.csv``."""
    per_seed = per_seed_table(ctx.runs, n_boot=ctx.n_boot, seed=ctx.seed)
    write_table_csv(ctx.tdir / "table3_per_seed.csv", per_seed)
    t3 = comparison_table(ctx.runs, n_boot=ctx.n_boot, seed=ctx.seed, per_seed=per_seed)
    both = pd.concat([t3, pd.DataFrame([PAPER_ROW])], ignore_index=True)
    write_table(both, table3.headline_display(both), ctx.tdir / "table3_comparison",
                table3.HEADLINE_CAPTION.format(clusters=_clusters(t3), threshold=THRESHOLD))
    write_text(ctx.tdir / "table3_comparison.tex", to_latex(table3.full_display(both),
                                                            table3.FULL_CAPTION))
    write_table_csv(ctx.tdir / "roc_points.csv", roc_points(ctx.runs))
    write_table_csv(ctx.tdir / "roc_band.csv", roc_band_table(
        ctx.runs, n_boot=max(2, min(ctx.n_boot, ROC_BAND_BOOT)), seed=ctx.seed))
    write_findings(ctx.tdir / "table3_findings.md", heldout_findings(t3))
    ctx.tables["table3_comparison"] = t3


def saved_comparison(tdir: Path) -> pd.DataFrame:
    """The saved Table 3 rows without the paper's."""
    t3 = pd.read_csv(tdir / "table3_comparison.csv")
    return t3[~t3.model.str.startswith("Fus2Net —")]


def draw_figures(tdir: Path, fdir: Path) -> list[Path]:
    t3 = saved_comparison(tdir)
    band = tdir / "roc_band.csv"
    return (roc_figure(pd.read_csv(tdir / "roc_points.csv"), t3, fdir / "fig2_roc",
                       pd.read_csv(band) if band.is_file() else None)
            + confusion_grid(t3, fdir / "confusion_matrices"))


# the line before a comparison table's findings (this section's and the all-image one's)
FINDINGS_LEAD = "What the table can tell, counted from it:"
VERDICTS_INTRO = (
    "**Each model against Fus2Net**, one sentence per contrast, worded by "
    "`bench.stats.contrasts.verdict` from the table's numbers (ΔAUC on matched seeds, its 95% "
    "CI over seeds × lesion groups, the Holm-adjusted p of its t test, the minimum detectable "
    "ΔAUC at 80 % power):")


def verdict_lines(t3: pd.DataFrame) -> list[str]:
    """One bullet per row other than the reference: the row's verdict (the ``verdict`` column,
    :func:`bench.reporting.table3.contrast_verdict`), or why it was not tested."""
    lines = []
    for r in t3.to_dict("records"):
        if r["model"] == REFERENCE:
            continue
        differs = r.get("not_comparable")
        name = f"**{r['model']}**" + (f" ({differs})" if isinstance(differs, str) and differs
                                      else "")
        said = r.get("verdict") if isinstance(r.get("verdict"), str) else ""
        if isinstance(r.get("flag"), str) and r["flag"]:
            said = "not tested: degenerate predictions"
        elif not said:
            said = "not tested: no seed in common with Fus2Net, or no Fus2Net row"
        lines.append(f"* {name}: {said}")
    return lines


def readme(ctx: ReportContext) -> list[str]:
    runs = comparison_runs(ctx.runs)
    test = runs[0].test if runs else None
    n, n_mal = (len(test), int(test.label.sum())) if test is not None else (0, 0)
    t3 = ctx.tables.get("table3_comparison")
    verdicts = verdict_lines(t3) if t3 is not None else []
    return ["## Held-out comparison (Table 3 analogue)", "",
            ctx.table_md("table3_comparison"), "",
            FINDINGS_LEAD, "", ctx.table_md("table3_findings"),
            *([VERDICTS_INTRO, "", *verdicts, ""] if verdicts else []),
            *plain_words(
                f"Every model is scored on the same {n} held-out images ({n_mal} malignant) that "
                "played no part in training or tuning; AUC is the chance that a model rates a "
                "randomly chosen cancer as more suspicious than a randomly chosen benign lesion "
                "(0.5 is a coin toss, 1 is perfect), and sensitivity and specificity are the "
                "shares of cancers flagged and of benign lesions cleared at a "
                f"{THRESHOLD:.0%} cut-off.",
                "Each comparison with Fus2Net is said in one sentence under the table; where the "
                "interval of the gap holds 0, the sentence also says how large a gap this test set "
                "could have detected, because a gap not shown is not a gap ruled out. The "
                "intervals count both the test images (several images of one lesion count as one "
                "piece of evidence) and the training seed (another seed trains another model), so "
                "they are wider than the image count suggests."),
            "![ROC curves](figures/fig2_roc.png)", "",
            "![Confusion matrices](figures/confusion_matrices.png)", ""]
