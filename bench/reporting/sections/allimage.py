"""Every image scored once (docs/statistics.md, "Every image scored once"): the all-image
evaluation beside Table 3.

The runs of ``--evaluation allcv`` (:mod:`bench.engine.allimage`) score every usable image of
the data set, the held-out test images included, each by the model of the fold that held its
lesion group out. Their table is built exactly as Table 3 is
(:func:`bench.reporting.sections.heldout.comparison_table` over
:mod:`bench.reporting.table3`): per model the mean over seeds of the per-seed AUC, ΔAUC against
Fus2Net on matched seeds, every interval over seeds × lesion groups (variance components, the
primary, and the two-level bootstrap), Holm-adjusted p across models, the minimum detectable
ΔAUC at 80 % power and :func:`bench.stats.contrasts.verdict`'s sentence; sensitivity and
specificity with design-effect Wilson intervals over seeds × lesions. Its figures: the ROC
curves with their band over seeds × lesions, and a forest plot of ΔAUC on the held-out test and
on every image side by side (what the larger sample buys). The section says nothing when a set
has no all-image runs. It reports only: nothing here chooses a setting.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd

from bench.core.atomic import write_text
from bench.core.tablefmt import to_latex, write_table, write_table_csv
from bench.engine.allimage import parse_key
from bench.reporting import figures, table3
from bench.reporting.figures import plt
from bench.reporting.findings import write_findings
from bench.reporting.heldoutfindings import allimage_findings
from bench.reporting.runs import Run
from bench.reporting.sections import heldout
from bench.reporting.sections.context import ReportContext, plain_words, read_table
from bench.reporting.tables import REFERENCE
from bench.stats.metrics import THRESHOLD

NAME = "allimage_comparison"

CAPTION = (
    "Every usable image scored once ({clusters}): grouped {folds}-fold cross-validation over the "
    "whole data set, the held-out test images included, folds dealt by whole same-lesion groups "
    "(patients where the data set has them), so each image is scored by the model of the fold "
    "that never saw its lesion; a seed's AUC pools its folds' predictions. Columns as in Table "
    "3: AUC, the mean over seeds of the per-seed AUC, with its 95% CI over seeds × lesion "
    "groups (variance components, t on Welch–Satterthwaite df, cut to [0, 1]); ΔAUC vs Fus2Net "
    "on the seeds both have, with the same interval; p (Holm): its t test, Holm across models; "
    "MDD (80 %): the smallest |ΔAUC| these images and seeds detect with 80 % power at α = 0.05; "
    "sensitivity and specificity at threshold {threshold}, mean over seeds, with Wilson "
    "intervals on the design-effect sample size of seeds × lesion groups. Every other column "
    "(two-level bootstrap, models-fixed intervals, calibration) is in allimage_comparison.csv "
    "and .tex; per seed in allimage_per_seed.csv. This evaluation chose nothing: the settings "
    "are the held-out runs' own.")


def as_scored(run: Run) -> Run:
    """An all-image run whose predictions the held-out table code reads as its scored set
    (``split`` test): every image once, or none when a fold failed (the seed then counts as
    failed, as a failed final fit does in Table 3)."""
    ok = run.metrics.get("allcv_status") == "ok"
    preds = run.predictions.assign(split="test") if ok else run.predictions.iloc[:0]
    return replace(run, predictions=preds)


def _folds(runs: list[Run]) -> str:
    ks = sorted({parse_key(str(r.settings.get("evaluation")))[0] for r in runs})
    return "/".join(map(str, ks))


def write_tables(ctx: ReportContext) -> None:
    """``allimage_per_seed.csv``, ``allimage_comparison.{csv,md,tex}``, ``allimage_roc_points.csv``,
    ``allimage_roc_band.csv`` and ``allimage_findings.md`` (beside the held-out table's, which
    this section follows); nothing without all-image runs."""
    if not ctx.allcv:
        return
    runs = [as_scored(r) for r in ctx.allcv]
    per_seed = heldout.per_seed_table(runs, n_boot=ctx.n_boot, seed=ctx.seed)
    write_table_csv(ctx.tdir / "allimage_per_seed.csv", per_seed)
    t = heldout.comparison_table(runs, n_boot=ctx.n_boot, seed=ctx.seed, per_seed=per_seed)
    # the verdict's power clause names what was scored: here every image, not a test set
    t["verdict"] = t.verdict.astype(str).str.replace("this test set detects", "these images detect")
    caption = CAPTION.format(clusters=heldout._clusters(t), folds=_folds(ctx.allcv),
                             threshold=THRESHOLD)
    write_table(t, table3.headline_display(t), ctx.tdir / NAME, caption)
    write_text(ctx.tdir / f"{NAME}.tex", to_latex(table3.full_display(t), caption))
    write_table_csv(ctx.tdir / "allimage_roc_points.csv", heldout.roc_points(runs))
    write_table_csv(ctx.tdir / "allimage_roc_band.csv", heldout.roc_band_table(
        runs, n_boot=max(2, min(ctx.n_boot, heldout.ROC_BAND_BOOT)), seed=ctx.seed))
    held = ctx.tables.get("table3_comparison")
    write_findings(ctx.tdir / "allimage_findings.md",
                   allimage_findings(t, held if held is not None else t.iloc[:0]))
    ctx.tables[NAME] = t


def _contrasts(t: pd.DataFrame) -> pd.DataFrame:
    """The rows of a saved comparison table with a ΔAUC against Fus2Net (paper row aside)."""
    if not len(t) or "delta_auc" not in t:
        return t.iloc[:0]
    t = t[~t.model.astype(str).str.startswith("Fus2Net —") & (t.model != REFERENCE)]
    return t.dropna(subset=["delta_auc"])


def forest_figure(held: pd.DataFrame, every: pd.DataFrame, base: Path) -> list[Path]:
    """ΔAUC vs Fus2Net per model with its 95% CI over seeds × lesion groups, on the held-out test
    (grey) and on every image (colour), one row each; the tick marks ± the minimum detectable
    ΔAUC at 80 % power of each."""
    models = list(dict.fromkeys([*every.model, *held.model]))
    if not models:
        return []
    styles = figures.model_styles([REFERENCE, *models])
    fig, ax = plt.subplots(figsize=(7.2, max(2.2, 0.9 + 0.62 * len(models))))
    for k, model in enumerate(models):
        y = len(models) - 1 - k
        for dy, t, color, what in ((0.17, held, "grey", "held-out test"),
                                   (-0.17, every, styles[model][0], "every image")):
            row = t[t.model == model]
            if not len(row):
                continue
            r = row.iloc[0]
            ax.errorbar(r.delta_auc, y + dy, xerr=[[r.delta_auc - r.delta_auc_vc_lo],
                                                   [r.delta_auc_vc_hi - r.delta_auc]],
                        fmt="o", color=color, ms=4, capsize=3, lw=1.4,
                        label=what if k == 0 else None)
            mdd = r.get("delta_auc_mdd")
            if mdd == mdd and mdd is not None:
                ax.plot([-mdd, mdd], [y + dy, y + dy], ls="none", marker="|", ms=9,
                        color=color, alpha=0.6)
    ax.axvline(0, color="black", lw=0.8, ls=":")
    ax.set_yticks(np.arange(len(models))[::-1], models, fontsize=8)
    ax.set_ylim(-0.6, len(models) - 0.4)
    ax.set_xlabel("ΔAUC vs Fus2Net, matched seeds [95% CI, seeds × lesion groups]")
    ax.legend(loc="best", fontsize=7)
    ax.set_title("Held-out test (grey) vs every image scored once (colour); "
                 "ticks: ± minimum detectable ΔAUC (80 % power)", fontsize=8)
    fig.tight_layout()
    return figures.save(fig, base)


def draw_figures(tdir: Path, fdir: Path) -> list[Path]:
    path = tdir / f"{NAME}.csv"
    if not path.is_file():
        return []
    t = read_table(path)
    band = tdir / "allimage_roc_band.csv"
    out = heldout.roc_figure(pd.read_csv(tdir / "allimage_roc_points.csv"), t,
                             fdir / "allimage_roc", pd.read_csv(band) if band.is_file() else None,
                             where="over every image scored once")
    return out + forest_figure(_contrasts(heldout.saved_comparison(tdir)), _contrasts(t),
                               fdir / "allimage_delta_auc")


def readme(ctx: ReportContext) -> list[str]:
    t = ctx.tables.get(NAME)
    if t is None or not ctx.allcv:
        return []
    held = ctx.tables.get("table3_comparison")
    every = heldout._clusters(t)
    against = f" instead of the held-out test's {heldout._clusters(held)}" \
        if held is not None else ""
    verdicts = heldout.verdict_lines(t)
    return ["## Every image scored once (all-image evaluation)", "",
            ctx.table_md(NAME), "",
            heldout.FINDINGS_LEAD, "", ctx.table_md("allimage_findings"),
            *([heldout.VERDICTS_INTRO, "", *verdicts, ""] if verdicts else []),
            *plain_words(
                f"Here every usable image counts ({every}{against}): the data set is cut into "
                f"{_folds(ctx.allcv)} parts by whole lesions, each part is scored by a model "
                "trained on the others, and so every image is judged by a model that never saw "
                "that lesion.",
                "More images narrow the intervals, so smaller gaps between models can be shown "
                "or ruled out than on the held-out test alone; Table 3 stays the paper's "
                "comparison, and nothing here was used to choose a setting."),
            "![ROC, every image](figures/allimage_roc.png)", "",
            "![ΔAUC, held-out vs every image](figures/allimage_delta_auc.png)", ""]
