"""Closing the site gap (docs/protocol.md, "Closing the site gap"): each lever against the scanner
shift, measured on the sites a model never trained on.

A row is a model and a *lever setting*: the augmentation policy (``--augment``), the BatchNorm
adaptation of the scoring (``--adapt-bn``: none, target, or source, its control), the input size
(``--img-size``) and the training sites (several: leave-one-site-out). Its *baseline* is the same
model with no lever: the paper's augmentation, BatchNorm as trained, its smallest input size and
one training site. Per target site (an external set) it gives the seed-mean AUC with its two-level
interval (seeds × patient clusters, :func:`bench.stats.twolevel.two_level_auc`), the matched
ΔAUC vs the baseline on the same images and seeds (:func:`~bench.stats.twolevel.two_level_delta`)
and the calibration slope on the target (:func:`bench.stats.calibration.calibration`).

"Chosen by" says how a row came to be: the baseline; a lever measured (every setting is shown,
none picked on the target); or the lever chosen for the target by leave-one-site-out on the
*other* sites (:func:`bench.evaluation.levers.choose_lever`), never by the target's numbers.

The section is silent (no table, no README part) unless a run set holds one of its levers: a run
with another augmentation policy than the paper's, or an external set scored with BatchNorm
adapted.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from bench.core.tablefmt import write_table
from bench.evaluation.levers import BASELINE, choose_lever
from bench.reporting.runs import Run, by_configuration
from bench.reporting.sections.context import ReportContext
from bench.reporting.sections.sites import trained_sites
from bench.stats.calibration import calibration
from bench.stats.twolevel import two_level_auc, two_level_delta

TABLE = "sitegap"
CAPTION = ("Closing the site gap: each model and lever scored on a site it never trained on. AUC "
           "[95% CI] seed mean with a two-level interval (training seeds × patient clusters); "
           "ΔAUC vs the same model without a lever (paper augmentation, BatchNorm as trained, its "
           "smallest input size, one training site) on the same images and seeds; calibration "
           "slope on the target (1 = calibrated); 'chosen by' says how the row was chosen.")
CONTROL = "(control)"
ADAPT_WORDS = {"target": "BN adapted on the target (unlabelled)",
               "source": f"BN re-estimated on the source {CONTROL}"}


def has_levers(runs: list[Run]) -> bool:
    """A run with another augmentation policy than the paper's, or an adapted scoring."""
    return any(r.settings.get("augment_policy", "paper") != "paper" or r.adapted for r in runs)


def _usable(r: Run) -> bool:
    return bool(r.settings.get("augment", True)) and r.config.get("status") == "complete"


def _lever_parts(r: Run) -> tuple[str, int, str]:
    return (str(r.settings.get("augment_policy", "paper")), int(r.settings.get("img_size", 0)),
            "+".join(trained_sites(r)))


def lever_label(policy: str, adapt: str, size: int, trained: str, base_size: int) -> str:
    """The lever setting in words; ``baseline`` when there is none."""
    parts = []
    if policy != "paper":
        parts.append(f"{policy} augmentation")
    if adapt != "none":
        parts.append(ADAPT_WORDS.get(adapt, f"BN {adapt}"))
    if size != base_size:
        parts.append(f"{size} px")
    if "+" in trained:
        parts.append(f"trained on {trained}")
    return ", ".join(parts) or BASELINE


def _frames(rs: list[Run], target: str, adapt: str) -> dict[int, pd.DataFrame]:
    """Per seed, the predictions of ``target`` scored with ``adapt``."""
    out = {}
    for r in rs:
        got = r.external.get(target) if adapt == "none" else r.adapted.get((target, adapt))
        if got is not None:
            preds = got[0]
            out[int(r.settings.get("seed", 0))] = preds.assign(
                group=preds["group"] if "group" in preds else "").fillna({"group": ""})
    return out


def _matrix(frames: dict[int, pd.DataFrame], ids: list[str] | None = None
            ) -> tuple[pd.DataFrame, np.ndarray, list[int]]:
    """Images every seed scored (or ``ids``), their labels and groups, and seeds × images scores."""
    seeds = sorted(frames)
    common = set.intersection(*(set(f.id) for f in frames.values()))
    if ids is not None:
        common &= set(ids)
    base = frames[seeds[0]].set_index("id").loc[sorted(common), ["label", "group"]]
    scores = np.vstack([frames[s].set_index("id").loc[base.index, "prob_malignant"].to_numpy(float)
                        for s in seeds])
    groups = base.group.astype(str).to_numpy()
    if (groups == "").any():  # patients unknown: each image its own cluster
        groups = np.array([f"image:{i}" for i in base.index])
    return base.assign(group=groups), scores, seeds


def site_gap_table(runs: list[Run], n_boot: int = 2000, seed: int = 0) -> pd.DataFrame:
    """One row per model, lever setting and target site (see the module docstring), the chosen
    rows included."""
    configs: dict[tuple[str, str, int, str], list[Run]] = {}
    for rs in by_configuration([r for r in runs if _usable(r)]).values():
        key = (rs[0].model, *_lever_parts(rs[0]))
        if key not in configs or len(rs) > len(configs[key]):
            configs[key] = rs
    records = []
    for model in sorted({k[0] for k in configs}):
        mine = {k[1:]: rs for k, rs in configs.items() if k[0] == model}
        base_size = min(size for _, size, _ in mine)
        targets = sorted({t for rs in mine.values() for r in rs
                          for t in [*r.external, *(name for name, _ in r.adapted)]})
        for target in targets:
            records += _target_rows(model, target, mine, base_size, n_boot, seed)
    table = pd.DataFrame(records)
    if table.empty:
        return table
    return pd.concat([table, pd.DataFrame(_chosen_rows(table))], ignore_index=True)


def _target_rows(model: str, target: str, mine: dict, base_size: int, n_boot: int,
                 seed: int) -> list[dict]:
    cells = []
    for (policy, size, trained), rs in sorted(mine.items()):
        for adapt in ("none", "target", "source"):
            frames = _frames(rs, target, adapt)
            if frames:
                cells.append((lever_label(policy, adapt, size, trained, base_size), trained,
                              frames))
    single = [c for c in cells if c[0] == BASELINE]
    base = single[0] if single else None
    rows = []
    for label, trained, frames in cells:
        info, scores, seeds = _matrix(frames)
        y, groups = info.label.to_numpy(int), info.group.to_numpy()
        if len(np.unique(y)) < 2:
            continue
        auc = two_level_auc(y, scores, groups, n_boot=n_boot, seed=seed)
        cal = calibration(y, scores, groups, n_boot=n_boot, seed=seed)
        row = {"model": model, "lever": label, "trained_on": trained, "target": target,
               "n": len(y), "clusters": auc.n_clusters, "n_seeds": len(seeds),
               "auc": auc.estimate, "auc_lo": auc.lo, "auc_hi": auc.hi,
               "delta_auc": math.nan, "delta_lo": math.nan, "delta_hi": math.nan,
               "slope": cal.slope.value, "slope_lo": cal.slope.lo, "slope_hi": cal.slope.hi,
               "chosen_by": "baseline (no lever)" if label == BASELINE else
               "measured (every setting shown; none picked on the target)"}
        if base is not None and label != BASELINE:
            b_info, b_scores, b_seeds = _matrix(base[2], list(info.index))
            a_info, a_scores, _ = _matrix(frames, list(b_info.index))
            if len(b_info) and len(np.unique(b_info.label)) == 2:
                d = two_level_delta(b_info.label.to_numpy(int), a_scores, b_scores,
                                    b_info.group.to_numpy(), seeds_a=seeds, seeds_b=b_seeds,
                                    n_boot=n_boot, seed=seed)
                row.update(delta_auc=d.estimate, delta_lo=d.lo, delta_hi=d.hi)
        rows.append(row)
    return rows


def _chosen_rows(table: pd.DataFrame) -> list[dict]:
    """Per model and target, the lever chosen on the other targets (leave-one-site-out), with its
    numbers on the target. A control (BatchNorm re-estimated on the source) is shown, never
    chosen: it measures what re-estimation does by itself."""
    out = []
    measured = table[(table.lever != BASELINE) & ~table.lever.str.contains(CONTROL, regex=False)]
    for (model, target), g in table.groupby(["model", "target"], sort=True):
        pool = measured[measured.model == model].rename(columns={"target": "site"})
        choice = choose_lever(pool.dropna(subset=["delta_auc"]), target)
        pick = g[g.lever == choice.lever]
        if pick.empty:
            continue
        out.append({**pick.iloc[0].to_dict(), "lever": f"chosen: {choice.lever}",
                    "chosen_by": choice.reason})
    return out


def _interval(v: float, lo: float, hi: float, sign: bool = False) -> str:
    if math.isnan(v):
        return "—"
    f = "{:+.3f}" if sign else "{:.3f}"
    if math.isnan(lo) or math.isnan(hi):
        return f.format(v)
    return f"{f.format(v)} [{f.format(lo)}, {f.format(hi)}]"


def display(t: pd.DataFrame) -> pd.DataFrame:
    """One row per model and lever, one column per trained-on → target (AUC, ΔAUC, slope)."""
    rows: dict[tuple[str, str], dict] = {}
    for r in t.itertuples():
        row = rows.setdefault((r.model, r.lever), {"Model": r.model, "Lever": r.lever})
        row[f"{r.trained_on} → {r.target}"] = (
            f"AUC {_interval(r.auc, r.auc_lo, r.auc_hi)}; Δ "
            f"{_interval(r.delta_auc, r.delta_lo, r.delta_hi, True)}; slope "
            f"{_interval(r.slope, r.slope_lo, r.slope_hi)} (n={r.n}, seeds={r.n_seeds})")
        row["Chosen by"] = r.chosen_by
    frame = pd.DataFrame(list(rows.values())).fillna("—")
    cols = [c for c in frame.columns if c != "Chosen by"] + ["Chosen by"]
    return frame[cols]


def _delta_words(d: float, lo: float, hi: float) -> str:
    """What a ΔAUC interval says (the rule of :func:`bench.stats.contrasts.reading`)."""
    if math.isnan(lo) or math.isnan(hi):
        return f"ΔAUC {d:+.3f} (no interval)"
    shown = f"ΔAUC {d:+.3f} [{lo:+.3f}, {hi:+.3f}]"
    if lo > 0:
        return f"the AUC is higher than without it ({shown})"
    if hi < 0:
        return f"the AUC is lower than without it ({shown})"
    return (f"no difference from the baseline is shown ({shown}; any difference in this range "
            "is compatible with the data)")


def paragraph(t: pd.DataFrame) -> str:
    """Plain words generated from the table's intervals (never a hand-written verdict)."""
    sentences = []
    for (model, target), g in t.groupby(["model", "target"], sort=True):
        base = g[g.lever == BASELINE]
        if len(base):
            b = base.iloc[0]
            sentences.append(f"Scored on {target}, a site it never trained on, {model} without a "
                             f"lever reaches AUC {_interval(b.auc, b.auc_lo, b.auc_hi)}.")
        for r in g[(g.lever != BASELINE) & ~g.lever.str.startswith("chosen")].itertuples():
            if math.isnan(r.delta_auc):
                continue
            sentences.append(f"With {r.lever}, {_delta_words(r.delta_auc, r.delta_lo, r.delta_hi)}.")
        for r in g[g.lever.str.startswith("chosen")].itertuples():
            sentences.append(f"Chosen without looking at {target}: {r.lever.split(': ', 1)[1]}; "
                             f"{r.chosen_by}.")
    if (t.n_seeds == 1).any():
        sentences.append("Rows from one training seed have intervals that cover the test images "
                         "only, not another training run.")
    return " ".join(sentences)


def write_tables(ctx: ReportContext) -> None:
    """``sitegap.{csv,md,tex}`` when the runs hold a lever; none otherwise (and no stale one)."""
    table = site_gap_table(ctx.runs, ctx.n_boot, ctx.seed) if has_levers(ctx.runs) \
        else pd.DataFrame()
    if table.empty:
        for ext in (".csv", ".md", ".tex"):
            (ctx.tdir / f"{TABLE}{ext}").unlink(missing_ok=True)
        return
    write_table(table, display(table), ctx.tdir / TABLE, CAPTION)
    ctx.tables[TABLE] = table


def draw_figures(tdir: Path, fdir: Path) -> list[Path]:
    return []


def readme(ctx: ReportContext) -> list[str]:
    if TABLE not in ctx.tables:
        return []
    return ["## Closing the site gap", "", ctx.table_md(TABLE).rstrip("\n"), "",
            f"*In plain words:* {paragraph(ctx.tables[TABLE])}", ""]
