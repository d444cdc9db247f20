"""Sites (docs/protocol.md "Several sites"): the matrix of trained-on × scored-on, each model's
AUC on every site's held-out test images (internal) or on a whole site it never trained on
(external), from the runs' saved predictions. ``python -m bench.suite --leave-one-site-out``
writes it over its training sets; the report writes it for one run set when it holds an external
or a pooled cell. No README part (the results sets' own READMEs quote it)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from bench.core.provenance import from_portable
from bench.core.tablefmt import write_table
from bench.data.multisite import site_name, site_of
from bench.engine.runfolder import Run
from bench.reporting.runs import load_runs
from bench.reporting.sections.context import ReportContext
from bench.reporting.tables import comparison_sets, held_out_groups
from bench.stats.clustered import obuchowski_auc
from bench.stats.metrics import binary_metrics


def trained_sites(run: Run) -> list[str]:
    """The sites a run trained on, named as :func:`bench.data.multisite.site_name` names them."""
    arg = run.data_arg
    if arg is None:
        return ["synthetic"]
    return [site_name(from_portable(p)) for p in str(arg).split(",") if p.strip()]


def _clustered(y: np.ndarray, s: np.ndarray, groups: np.ndarray) -> tuple[float, float, float, str]:
    """AUC with Obuchowski's clustered 95% interval (each image its own cluster where the groups
    are unknown, which is DeLong's interval up to a finite-sample factor)."""
    if (groups == "").any():
        groups = np.arange(len(y)).astype(str)
    c = obuchowski_auc(y, s, groups)
    return c.auc, c.lo, c.hi, str(c.n_clusters)


def _held_out_groups(run: Run) -> np.ndarray:
    """Groups of the run's test images from its ``split.csv`` ('' where unknown)."""
    groups = held_out_groups(run)
    return np.full(len(run.test), "") if groups is None else groups


def _seed_averaged(frames: list[pd.DataFrame]) -> pd.DataFrame:
    """Probabilities averaged over seeds on the images every seed scored."""
    merged = frames[0][["id", "label", "group", "prob_malignant"]].rename(
        columns={"prob_malignant": "p0"})
    for k, f in enumerate(frames[1:], start=1):
        merged = merged.merge(f[["id", "prob_malignant"]].rename(
            columns={"prob_malignant": f"p{k}"}), on="id")
    cols = [f"p{k}" for k in range(len(frames))]
    return merged.assign(prob_malignant=merged[cols].mean(axis=1))[
        ["id", "label", "group", "prob_malignant"]]


def site_matrix(runs: list[Run]) -> pd.DataFrame:
    """Per model and training set (rows) and per site (columns): the AUC with a cluster-aware 95%
    interval on that site's held-out test images when the row trained on the site (``internal``),
    else on every image of the site scored as an external set (``external``). Seed-averaged
    probabilities; groups are the split's same-lesion/patient groups (internal) or the site's
    patient IDs (external)."""
    by_row: dict[tuple[str, str], list[Run]] = {}
    for label, rs in comparison_sets(runs):
        for r in rs:
            if len(r.test):
                by_row.setdefault((label, "+".join(trained_sites(r))), []).append(r)
    records = []
    for (model, trained), rs in by_row.items():
        sites = trained.split("+")
        several = len(sites) > 1
        cells: dict[str, list[pd.DataFrame]] = {}
        for r in rs:
            test = r.test.assign(group=_held_out_groups(r))
            where = site_of(test.id) if several else pd.Series(sites[0], index=test.index)
            for site in sites:
                cells.setdefault(f"internal:{site}", []).append(test[where == site])
            if several:
                cells.setdefault("internal:pooled", []).append(test)
            for name, (preds, _) in r.external.items():
                ext = preds.assign(group=preds.get("group", "")).fillna({"group": ""})
                cells.setdefault(f"external:{name}", []).append(ext)
        for key, frames in cells.items():
            how, site = key.split(":", 1)
            df = _seed_averaged(frames)
            if df.label.nunique() < 2:
                continue
            y, s = df.label.to_numpy(int), df.prob_malignant.to_numpy(float)
            auc, lo, hi, clusters = _clustered(y, s, df.group.astype(str).to_numpy())
            m = binary_metrics(y, s)
            records.append({"model": model, "trained_on": trained, "scored_on": site,
                            "how": how, "n": len(df), "clusters": int(clusters),
                            "n_seeds": len(frames), "auc": auc, "auc_lo": lo, "auc_hi": hi,
                            "sensitivity": m["sensitivity"], "specificity": m["specificity"]})
    return pd.DataFrame(records)


def matrix_display(t: pd.DataFrame) -> pd.DataFrame:
    """The matrix as a reader wants it: one row per model and training set, one column per site,
    each cell ``AUC [95% CI]`` with (held-out test) or (whole site, external)."""
    rows = []
    for (model, trained), g in t.groupby(["model", "trained_on"], sort=False):
        row = {"Model": model, "Trained on": trained}
        for r in g.itertuples():
            where = ("held-out test" if r.how == "internal" else "whole site") + \
                (", all sites" if r.scored_on == "pooled" else "")
            row[f"→ {r.scored_on}"] = f"{r.auc:.3f} [{r.auc_lo:.3f}, {r.auc_hi:.3f}] ({where}, " \
                                      f"n={r.n})"
        rows.append(row)
    return pd.DataFrame(rows).fillna("—")


def write_site_matrix(runs_dirs: list[Path], out: Path) -> pd.DataFrame:
    """``<out>/tables/site_matrix.{csv,md,tex}`` from the runs in ``runs_dirs``."""
    t = pd.concat([site_matrix(load_runs(d)) for d in runs_dirs if d.is_dir()], ignore_index=True)
    if len(t):
        write_table(t, matrix_display(t), out / "tables" / "site_matrix", MATRIX_CAPTION)
    return t


MATRIX_CAPTION = ("AUC [95% CI] of each model trained on the row's sites, scored on each site: "
                  "its held-out test images where the row trained on it (pooled: all of the "
                  "row's sites' test images), every image of it (unchanged model, threshold "
                  "0.5) where the row did not train on it. Seed-averaged probabilities; "
                  "intervals cluster-aware (Obuchowski) over same-lesion groups and patients.")


def write_tables(ctx: ReportContext) -> None:
    """``site_matrix.{csv,md,tex}`` when the runs were scored on another site or pool sites."""
    sites = site_matrix(ctx.runs)
    if len(sites) and ((sites.how == "external") | (sites.scored_on == "pooled")).any():
        write_table(sites, matrix_display(sites), ctx.tdir / "site_matrix", MATRIX_CAPTION)
        ctx.tables["site_matrix"] = sites


def draw_figures(tdir: Path, fdir: Path) -> list[Path]:
    return []


def readme(ctx: ReportContext) -> list[str]:
    return []
