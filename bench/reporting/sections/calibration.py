"""Calibration and prevalence (docs/protocol.md "Metrics"): Table 3's calibration columns
(Brier, recalibration slope and intercept, PPV/NPV at the data set's prevalence) and the
reliability diagram of each model on the held-out test set."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from bench.core.tablefmt import write_table, write_table_csv
from bench.engine.runfolder import Run
from bench.reporting import figures, table3
from bench.reporting.sections.context import ReportContext, plain_words, read_table
from bench.reporting.tables import REFERENCE, comparison_sets
from bench.stats.calibration import reliability_bins


def calibration_bins(runs: list[Run], min_count: int = 20) -> pd.DataFrame:
    """Reliability-diagram data per model and seed (each seed is one trained model): equal-count
    bins of at least ``min_count`` images with their counts and Wilson intervals
    (:func:`bench.stats.calibration.reliability_bins`)."""
    parts = []
    for model, rs in comparison_sets(runs):
        for r in rs:
            t = r.test
            if len(t):
                b = reliability_bins(t.label.to_numpy(), t.prob_malignant.to_numpy(), min_count)
                b.insert(0, "seed", r.seed)
                b.insert(0, "model", model)
                parts.append(b)
    cols = ["model", "seed", "bin", "p_min", "p_max", "mean_pred", "frac_pos", "frac_lo",
            "frac_hi", "count"]
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=cols)


def calibration_figure(bins: pd.DataFrame, base: Path) -> list[Path]:
    """Reliability diagram, one panel per model (Fus2Net first) with every seed (each seed one
    trained model, one line each, as the calibration table averages them): equal-count bins (each
    holds enough images to estimate a rate), the observed malignant share with its Wilson 95%
    interval; the diagonal is perfect calibration."""
    models = list(dict.fromkeys(bins.model)) if len(bins) else []
    models = sorted(models, key=lambda m: m != REFERENCE)
    styles = figures.model_styles(models)
    fig, axes = figures.model_panels(len(models), 3.2)
    markers = ("o", "s", "^", "D", "v", "P", "X")
    for ax, model in zip(axes.flat, models, strict=False):
        ax.axis("on")
        d_all = bins[bins.model == model]
        seeds = sorted(int(s) for s in d_all.seed.unique())
        color = styles[model][0]
        ax.plot([0, 1], [0, 1], ls=":", color="grey", lw=0.8)
        for k, seed in enumerate(seeds):
            d = d_all[d_all.seed == seed]
            ax.errorbar(d.mean_pred, d.frac_pos,
                        yerr=[d.frac_pos - d.frac_lo, d.frac_hi - d.frac_pos], color=color,
                        marker=markers[k % len(markers)], ms=3.5, lw=1.0, capsize=1.5,
                        alpha=0.85, elinewidth=0.6, label=f"seed {seed}")
        counts = sorted(set(d_all["count"].astype(int)))
        size = f"{counts[0]}" if len(counts) == 1 else f"{counts[0]}–{counts[-1]}"
        per_seed = sorted(set(d_all.groupby("seed").size()))
        n_bins = f"{per_seed[0]}" if len(per_seed) == 1 else f"{per_seed[0]}–{per_seed[-1]}"
        ax.set(xlim=(-0.02, 1.02), ylim=(-0.02, 1.05),
               title=f"{model}\nall {len(seeds)} seed{'s' if len(seeds) > 1 else ''}; "
                     f"{n_bins} bins of {size} images each")
        ax.tick_params(labelbottom=True)
        ax.title.set_fontsize(8)
        ax.legend(fontsize=6, loc="upper left")
    for ax in axes[-1]:
        ax.set_xlabel("mean predicted P(malignant) in bin")
    for ax in axes[:, 0]:
        ax.set_ylabel("observed share malignant")
    fig.suptitle("Reliability on the held-out test set, every seed (one line each, as the table "
                 "averages them): equal-count bins, observed share with its Wilson 95% CI; "
                 "dotted: perfect calibration", fontsize=9)
    fig.tight_layout()
    return figures.save(fig, base)


def write_tables(ctx: ReportContext) -> None:
    """``table3_calibration.{csv,md,tex}`` (from the held-out section's Table 3) and
    ``calibration_bins.csv``."""
    t3 = ctx.tables["table3_comparison"]
    write_table(t3[[c for c in table3.CALIBRATION_COLUMNS if c in t3]],
                table3.calibration_display(t3), ctx.tdir / "table3_calibration",
                table3.CALIBRATION_CAPTION.format(prevalence=table3.prevalence_text(t3)))
    write_table_csv(ctx.tdir / "calibration_bins.csv", calibration_bins(ctx.runs))


def draw_figures(tdir: Path, fdir: Path) -> list[Path]:
    return calibration_figure(read_table(tdir / "calibration_bins.csv"), fdir / "calibration")


def readme(ctx: ReportContext) -> list[str]:
    return ["### Calibration and prevalence", "",
            ctx.table_md("table3_calibration"), "",
            *plain_words(
                "Calibration asks whether a model's stated risk can be taken at face value: of "
                "the lesions it gives a 70% chance of cancer, about 70% should be cancers (slope 1 "
                "and intercept 0 are ideal; a slope below 1 means the stated risks are too "
                "extreme).",
                "The predictive values say what a positive or negative call means for a patient "
                "and depend on how common cancer is among the patients scanned, so the last "
                "column recomputes them at this data set's own share of cancers rather than the "
                "test set's."),
            "![Calibration](figures/calibration.png)", ""]
