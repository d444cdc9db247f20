"""The paper's Fus2Net experiments (Table 1, Fig. 1, Table 2 analogues; docs/protocol.md
"Protocol"): each variant compared with the base recipe on cross-validation folds only (the
held-out test AUC is a secondary, labelled column), and the optimizer bars of Fig. 1."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from bench.core.tablefmt import fmt, write_table
from bench.engine.experiments import BASE, EXPERIMENTS
from bench.engine.runfolder import Run
from bench.reporting import figures, table3
from bench.reporting.figures import plt, sns
from bench.reporting.sections.context import ReportContext, plain_words
from bench.reporting.table3 import paired_to_base
from bench.reporting.tables import fold_metrics, variant_configs
from bench.stats.contrasts import LEVEL, verdict
from bench.stats.metrics import degenerate_prediction
from bench.stats.power import min_detectable_delta
from bench.stats.registry import View, listed, names
from bench.stats.stats import holm


def experiment_table(runs: list[Run], name: str) -> pd.DataFrame:
    """One of the paper's Fus2Net experiments, compared on CV folds only (docs/protocol.md, Held-out test and cross-validation): mean ± sd over
    every (seed, fold); the held-out test AUC is a secondary, labelled column."""
    exp = EXPERIMENTS[name]
    configs = variant_configs(runs)
    rows = []
    for v in exp["variants"]:
        rs = configs.get(v.key())
        row: dict = {"variant": v.label, "is_base": v.key() == BASE.key()}
        if rs is None:
            row["evaluated_on"] = "not run"
            rows.append(row)
            continue
        folds = [fold_metrics(r).assign(seed=r.seed) for r in rs if len(r.cv)]
        cv = pd.concat(folds, ignore_index=True) if folds else pd.DataFrame()
        ok = cv[cv.status == "ok"] if len(cv) else cv
        row["n_seeds"] = len(rs)
        if len(ok):
            row["evaluated_on"] = (f"CV: {len(ok)} folds over {len(rs)} seed(s) "
                                   f"({int(ok.groupby('seed').size().iloc[0])} per seed)")
            for k in names(View.FOLDS):
                vals = ok[k].to_numpy(dtype=float)
                row[k] = vals.mean()
                row[f"{k}_sd"] = vals.std(ddof=1) if len(vals) > 1 else math.nan
            row["failed_folds"] = int(len(cv) - len(ok))
            base = configs.get(BASE.key())
            if base is not None and v.key() != BASE.key():
                row.update(paired_to_base(cv, [r.cv.assign(seed=r.seed)
                                               for r in base if len(r.cv)]))
            oof = [r.predictions[r.predictions.split == "val"].prob_malignant for r in rs]
            row["flag"] = "; ".join(f"seed {r.seed} (CV): {f}"
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
    return with_verdicts(pd.DataFrame(rows))


def fold_test(delta: float, lo: float, hi: float, n_pairs: int,
              level: float = LEVEL) -> tuple[float, float, float]:
    """The corrected resampled-t test behind a paired-fold interval
    (:func:`bench.stats.contrasts.paired_fold_delta`): its standard error (the interval's
    half-width over the t quantile on ``n_pairs − 1`` df), the two-sided p of ΔAUC = 0 and the
    minimum detectable |ΔAUC| at 80 % power on the same t (:mod:`bench.stats.power`). NaN
    where the interval is undefined."""
    if n_pairs < 2 or any(math.isnan(x) for x in (delta, lo, hi)):
        return math.nan, math.nan, math.nan
    df = n_pairs - 1
    se = (hi - lo) / (2 * stats.t.ppf(0.5 + level / 2, df))
    if se <= 0:
        return se, (1.0 if delta == 0 else 0.0), 0.0
    p = float(2 * stats.t.sf(abs(delta) / se, df))
    return se, p, min_detectable_delta(se, df=df)


def with_verdicts(t: pd.DataFrame) -> pd.DataFrame:
    """Each variant's paired CV contrast with the base in the one sentence
    :func:`bench.stats.contrasts.verdict` allows: p of the corrected resampled-t test, Holm
    across the variants of this table, and the minimum detectable difference of these folds."""
    for col in ("delta_auc_cv", "delta_auc_cv_lo", "delta_auc_cv_hi", "paired_folds"):
        if col not in t:
            t[col] = np.nan
    tests = [fold_test(*(float(x) for x in (r.delta_auc_cv, r.delta_auc_cv_lo,
                                             r.delta_auc_cv_hi)),
                       int(r.paired_folds) if r.paired_folds == r.paired_folds else 0)
             for r in t.itertuples()]
    t["delta_auc_cv_se"] = [x[0] for x in tests]
    t["delta_auc_cv_p"] = [x[1] for x in tests]
    t["delta_auc_cv_mdd"] = [x[2] for x in tests]
    t["delta_auc_cv_p_holm"] = holm(t["delta_auc_cv_p"].to_numpy(dtype=float))
    t["reading"] = [verdict(r.delta_auc_cv, r.delta_auc_cv_lo, r.delta_auc_cv_hi,
                            r.delta_auc_cv_p_holm, r.delta_auc_cv_mdd).replace(
                                "this test set detects", "these folds detect")
                    if r.delta_auc_cv == r.delta_auc_cv else
                    (r.reading if "reading" in t and isinstance(r.reading, str) else "")
                    for r in t.itertuples()]
    return t


def experiment_display(t: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for r in t.to_dict("records"):
        flagged = isinstance(r.get("flag"), str) and bool(r.get("flag"))
        row = {"Variant": r["variant"] + (" ⚠" if flagged else ""),
               "Evaluated on": r["evaluated_on"]}
        for m in listed(View.FOLDS):  # the primary metric (AUC) is also shown on the test set
            v, sd, d = r.get(m.name), r.get(f"{m.name}_sd"), m.digits
            row[f"{m.display} (CV)" if m.primary else m.display] = (
                f"{v:.{d}f} ± {sd:.{d}f}" if v is not None and not pd.isna(v) and sd is not None
                and not pd.isna(sd) else fmt(v, d))
        row.update(table3.experiment_columns(r))
        row["Held-out test AUC (secondary; not used to choose)"] = fmt(r.get("test_auc_secondary"))
        row["Flag"] = r.get("flag") if flagged else ""
        rows.append(row)
    return pd.DataFrame(rows)


def optimizer_bars(table: pd.DataFrame, base: Path) -> list[Path]:
    """Fig. 1 analogue: CV accuracy, sensitivity, specificity and AUC per optimizer, mean ± sd
    over every fold of every seed, each variant's folds and seeds in its legend entry."""
    done = table.dropna(subset=["accuracy"]) if "accuracy" in table else table.iloc[0:0]
    shown = listed(View.FOLDS)
    metrics = [m.name for m in shown]
    fig, ax = plt.subplots(figsize=(8, 4.2))
    width = 0.8 / max(1, len(done))
    colours = sns.color_palette("colorblind", max(1, len(done)))
    for k, r in enumerate(done.to_dict("records")):
        x = np.arange(len(metrics)) + (k - (len(done) - 1) / 2) * width
        means = [r[m] for m in metrics]
        sds = [r.get(f"{m}_sd", np.nan) for m in metrics]
        where = str(r.get("evaluated_on", "")).replace("CV: ", "").split(" (")[0]
        ax.bar(x, means, width, yerr=np.nan_to_num(sds), capsize=3, color=colours[k],
               label=f"{r['variant']} ({where})")
    ax.set_xticks(range(len(metrics)), [m.label for m in shown])
    ax.set(ylim=(0, 1), ylabel="CV score (mean ± sd over folds)")
    if len(done):
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1))
    else:
        ax.text(0.5, 0.5, "not run", ha="center", va="center", transform=ax.transAxes)
    ax.set_title("Fus2Net by optimizer, cross-validation folds (the test set chose nothing)",
                 fontsize=9)
    fig.tight_layout()
    return figures.save(fig, base)


def write_tables(ctx: ReportContext) -> None:
    """One table per experiment (``table1_channels``, ``fig1_optimizers``, ...)."""
    for name, exp in EXPERIMENTS.items():
        t = experiment_table(ctx.runs, name)
        write_table(t, experiment_display(t), ctx.tdir / name,
                    table3.EXPERIMENT_CAPTION.format(title=exp["title"]))
        ctx.tables[name] = t


def draw_figures(tdir: Path, fdir: Path) -> list[Path]:
    return optimizer_bars(pd.read_csv(tdir / "fig1_optimizers.csv"), fdir / "fig1_optimizers")


def readme(ctx: ReportContext) -> list[str]:
    lines = ["## The paper's Fus2Net experiments (chosen by cross-validation)", ""]
    for name in EXPERIMENTS:
        lines += [ctx.table_md(name), ""]
    lines += plain_words(
        "Each table repeats one of the paper's design choices for Fus2Net (input channels, "
        "optimiser, augmentation and regularisation) and compares the options by "
        "cross-validation on the training images alone, so the held-out test set plays no part "
        "in the choice.",
        "Each variant's sentence says whether its difference from the base recipe was shown, "
        "which differences its interval still allows, and the smallest difference these few "
        "folds could detect: where that is large, 'no difference shown' is not evidence of no "
        "difference. The held-out AUC is shown for reference only.")
    return lines + ["![Optimizers](figures/fig1_optimizers.png)", ""]
