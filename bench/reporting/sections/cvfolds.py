"""Cross-validation folds (docs/protocol.md, "Held-out test and cross-validation"): every fold of every seed of each
comparison model and of each Fus2Net experiment variant, and the strip plot of them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from bench.core.tablefmt import write_table_csv
from bench.engine.experiments import BASE, EXPERIMENTS
from bench.engine.runfolder import Run
from bench.reporting import figures
from bench.reporting.figures import plt, sns
from bench.reporting.sections.context import ReportContext, read_table
from bench.reporting.tables import REFERENCE, comparison_sets, fold_metrics, variant_configs
from bench.stats.registry import View, names


def cv_folds(runs: list[Run]) -> pd.DataFrame:
    """Per-fold CV metrics of every seed of each comparison model and of each Fus2Net experiment
    variant (labelled ``fus2net: <variant>``; the base recipe is the ``fus2net`` row), long
    format with ``kind`` comparison / experiment."""
    cols = ["model", "kind", "seed", "fold", "status", *names(View.FOLDS)]
    sets = [(m, "comparison", rs) for m, rs in comparison_sets(runs)]
    used = {id(r) for _, _, rs in sets for r in rs}
    labels = {}
    for exp in EXPERIMENTS.values():
        for v in exp["variants"]:
            if v.key() != BASE.key():
                labels.setdefault(v.key(), v.label)
    for key, rs in sorted(variant_configs(runs).items(), key=lambda kv: str(kv[0])):
        if key in labels and not any(id(r) in used for r in rs):
            sets.append((f"{REFERENCE}: {labels[key]}", "experiment", rs))
    parts = []
    for model, kind, rs in sets:
        for r in rs:
            if len(r.cv):
                cv = fold_metrics(r).copy()
                cv.insert(0, "seed", r.seed)
                cv.insert(0, "kind", kind)
                cv.insert(0, "model", model)
                parts.append(cv[[c for c in cols if c in cv]])
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=cols)


def cv_strip(folds: pd.DataFrame, base: Path) -> list[Path]:
    """Per-fold CV AUC and accuracy of every configuration with CV folds (comparison models and
    Fus2Net's experiment variants): one row each, one point per (seed, fold) coloured by seed, the
    fold mean as a bar."""
    ok = folds[folds.status == "ok"] if "status" in folds else folds
    order = list(dict.fromkeys(ok.model)) if len(ok) else []
    seeds = sorted(ok.seed.unique()) if len(ok) else []
    palette = dict(zip(seeds, sns.color_palette("colorblind", max(1, len(seeds))), strict=False))
    if not order:  # no configuration was trained with CV folds: say so instead of empty axes
        fig, ax = plt.subplots(figsize=(7, 1.6))
        ax.axis("off")
        ax.text(0.5, 0.5, "No configuration of these runs was trained with cross-validation "
                "folds\n(a final fit alone has none), so there is nothing to show here.",
                ha="center", va="center", fontsize=9, transform=ax.transAxes)
        return figures.save(fig, base)
    height = max(3.0, 1.2 + 0.42 * len(order))
    fig, axes = plt.subplots(1, 2, figsize=(10, height), squeeze=False, sharey=True)
    for ax, metric in zip(axes.flat, ("auc", "accuracy"), strict=True):
        for y, model in enumerate(order):
            d = ok[ok.model == model]
            jitter = np.linspace(-0.18, 0.18, len(d)) if len(d) > 1 else np.zeros(len(d))
            ax.scatter(d[metric], y + jitter, s=28, c=[palette[s] for s in d.seed],
                       edgecolors="black", linewidths=0.4, zorder=3)
            ax.plot([d[metric].mean()] * 2, [y - 0.3, y + 0.3], color="black", lw=1.5, zorder=2)
        ax.set_yticks(range(len(order)), [f"{m} ({len(ok[ok.model == m])} folds)"
                                          for m in order], fontsize=8)
        ax.set_ylim(len(order) - 0.5, -0.5)
        ax.set_xlabel(f"validation {metric.upper() if metric == 'auc' else metric} per fold")
        ax.grid(axis="x", lw=0.3)
    handles = [plt.Line2D([], [], marker="o", ls="", color=palette[s], markeredgecolor="black",
                          label=f"seed {s}") for s in seeds]
    handles.append(plt.Line2D([], [], color="black", lw=1.5, label="mean over folds"))
    axes[0, 1].legend(handles=handles, fontsize=7, loc="lower left", bbox_to_anchor=(1.01, 0))
    fig.suptitle("Cross-validation folds (configurations trained with CV; a final fit alone has "
                 "no folds)", fontsize=9)
    fig.tight_layout()
    return figures.save(fig, base)


def cv_test_gap(folds: pd.DataFrame, t3: pd.DataFrame | None) -> pd.DataFrame:
    """Per comparison model with both: its mean validation AUC over every CV fold of every seed,
    its held-out test AUC (Table 3: seed mean with the clustered 95% CI), the gap (CV − test) and
    whether the CV mean lies inside the test AUC's interval."""
    cols = ["model", "n_folds", "cv_auc", "test_auc", "test_auc_lo", "test_auc_hi", "gap",
            "cv_in_test_ci"]
    if t3 is None or not len(folds) or "auc" not in t3:
        return pd.DataFrame(columns=cols)
    lo_col, hi_col = next(((a, b) for a, b in (("auc_cl_lo", "auc_cl_hi"), ("auc_lo", "auc_hi"))
                           if a in t3 and b in t3), (None, None))
    ok = folds[(folds.status == "ok") & (folds.kind == "comparison")].dropna(subset=["auc"])
    rows = []
    for model, d in ok.groupby("model", sort=False):
        test = t3[t3.model == model]
        if not len(test) or pd.isna(test.auc.iloc[0]):
            continue
        r = test.iloc[0]
        lo = float(r[lo_col]) if lo_col else np.nan
        hi = float(r[hi_col]) if hi_col else np.nan
        cv = float(d.auc.mean())
        rows.append({"model": model, "n_folds": len(d), "cv_auc": cv, "test_auc": float(r.auc),
                     "test_auc_lo": lo, "test_auc_hi": hi, "gap": cv - float(r.auc),
                     "cv_in_test_ci": bool(lo <= cv <= hi) if lo == lo and hi == hi else None})
    return pd.DataFrame(rows, columns=cols)


def gap_lines(gap: pd.DataFrame) -> list[str]:
    """The README's paragraph on the CV-vs-test gap, every number from ``gap``."""
    if not len(gap):
        return []
    lines = ["### Cross-validation vs held-out test", "",
             "The CV folds are validation folds of the training images (split by the same "
             "same-lesion groups, so no lesion is in both a fold's training and validation part); "
             "the held-out test set is other lesions. Per model trained with both, its mean "
             "validation AUC over every fold of every seed, its held-out test AUC (seed mean "
             "[clustered 95% CI]) and the gap:", ""]
    for r in gap.itertuples():
        where = ("the test AUC has no interval" if r.cv_in_test_ci is None
                 or r.cv_in_test_ci != r.cv_in_test_ci
                 else "the CV mean lies within the test AUC's interval" if r.cv_in_test_ci
                 else "the CV mean lies outside the test AUC's interval")
        ci = (f" [{r.test_auc_lo:.3f}, {r.test_auc_hi:.3f}]"
              if r.test_auc_lo == r.test_auc_lo else "")
        lines.append(f"* **{r.model}**: CV AUC {r.cv_auc:.3f} ({int(r.n_folds)} folds), test "
                     f"AUC {r.test_auc:.3f}{ci}, gap {r.gap:+.3f}: {where}.")
    if len(gap) > 1:
        n_out = int((gap.cv_in_test_ci == False).sum())  # noqa: E712 (None is neither)
        lines += ["", f"{n_out} of {len(gap)} CV means lie outside the test AUC's interval."]
    lines.append("")
    return lines


def write_tables(ctx: ReportContext) -> None:
    folds = cv_folds(ctx.runs)
    write_table_csv(ctx.tdir / "cv_folds.csv", folds)
    gap = cv_test_gap(folds, ctx.tables.get("table3_comparison"))
    write_table_csv(ctx.tdir / "cv_test_gap.csv", gap)
    ctx.tables["cv_test_gap"] = gap


def draw_figures(tdir: Path, fdir: Path) -> list[Path]:
    return cv_strip(read_table(tdir / "cv_folds.csv"), fdir / "cv_folds")


def readme(ctx: ReportContext) -> list[str]:
    gap = ctx.tables.get("cv_test_gap")
    return ["![CV folds](figures/cv_folds.png)", "",
            *(gap_lines(gap) if gap is not None else [])]
