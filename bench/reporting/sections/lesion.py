"""Lesion-level metrics beside the image-level ones (docs/protocol.md, "Metrics": Clusters): per
configuration of the held-out comparison (the rows of Table 3), each lesion (same-lesion group of
the split manifest) counts once, with the mean of its images' P(malignant) per seed as its score
(:func:`bench.stats.lesion.lesion_metrics`): the seed-mean AUC with its variance-components
interval (test lesions and training seeds; the two-level bootstrap interval in the CSV), and
sensitivity and specificity at 0.5 with their intervals."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from bench.core.errors import BenchError
from bench.core.tablefmt import fmt, with_ci, write_table
from bench.engine.runfolder import Run
from bench.reporting.sections.context import ReportContext, plain_words
from bench.reporting.tables import comparison_sets
from bench.stats.arrays import StatsInputError
from bench.stats.contrasts import NO_GROUP, groups_of
from bench.stats.lesion import lesion_metrics
from bench.stats.metrics import THRESHOLD

NAME = "lesion_metrics"
COLUMNS = ["model", "n_seeds", "n_images", "n_lesions", "n_malignant", "image_auc", "auc",
           "auc_lo", "auc_hi", "auc_boot_lo", "auc_boot_hi", "sensitivity", "sensitivity_lo",
           "sensitivity_hi", "specificity", "specificity_lo", "specificity_hi", "grouped",
           "note"]


def lesion_row(model: str, rs: list[Run], n_boot: int = 2000, seed: int = 0) -> dict:
    """One configuration's lesion-level metrics over its seeds' test predictions (seeds ×
    images, the same images in the same order); a note says why a value is missing."""
    tests = [r.test for r in rs if len(r.test)]
    row: dict = {"model": model, "n_seeds": len(tests)}
    if not tests:
        return {**row, "note": "no test predictions"}
    ids = tests[0].id.astype(str).to_numpy()
    if any(not np.array_equal(t.id.astype(str).to_numpy(), ids) for t in tests[1:]):
        raise BenchError(f"{model}: its seeds were scored on different test images; report one "
                         "data set and split at a time (give `runs` a folder of matching runs)")
    y = tests[0].label.to_numpy().astype(int)
    scores = np.vstack([t.prob_malignant.to_numpy(dtype=float) for t in tests])
    groups = groups_of(tests[0])
    row["grouped"] = not all(g.startswith(NO_GROUP) for g in groups)
    try:
        m = lesion_metrics(y, scores, groups, threshold=THRESHOLD, n_boot=n_boot, seed=seed)
    except StatsInputError as err:
        return {**row, "n_images": len(y), "note": str(err)}
    comp = m.auc_components
    row.update({"n_images": m.n_images, "n_lesions": m.n_lesions, "n_malignant": m.n_malignant,
                "auc": comp.estimate, "auc_lo": comp.lo, "auc_hi": comp.hi,
                "auc_boot_lo": m.auc.lo, "auc_boot_hi": m.auc.hi})
    for name in ("sensitivity", "specificity"):
        p = m.proportions[name]
        row[name], row[f"{name}_lo"], row[f"{name}_hi"] = p.estimate, p.lo, p.hi
    notes = [n for n in (comp.note, m.auc.note) if n]
    row["note"] = "; ".join(dict.fromkeys(notes))
    return row


def lesion_table(runs: list[Run], n_boot: int = 2000, seed: int = 0,
                 image_level: pd.DataFrame | None = None) -> pd.DataFrame:
    """Per row of the held-out comparison (:func:`bench.reporting.tables.comparison_sets`), its
    lesion-level metrics, with Table 3's image-level seed-mean AUC beside them when given."""
    rows = [lesion_row(model, rs, n_boot, seed) for model, rs in comparison_sets(runs)]
    df = pd.DataFrame(rows).reindex(columns=COLUMNS)
    if image_level is not None and {"model", "auc"} <= set(image_level):
        df["image_auc"] = df.model.map(dict(zip(image_level.model, image_level.auc, strict=True)))
    df["note"] = df["note"].fillna("")
    return df


def _num(v) -> bool:
    return v is not None and not (isinstance(v, float) and math.isnan(v))


def _ci(r: dict, name: str) -> str:
    v, lo, hi = r.get(name), r.get(f"{name}_lo"), r.get(f"{name}_hi")
    if not _num(v):
        return "—"
    return with_ci(v, lo, hi) if _num(lo) and _num(hi) else fmt(v)


def display(t: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for r in t.to_dict("records"):
        n_seeds = int(r["n_seeds"]) if _num(r.get("n_seeds")) else 0
        rows.append({
            "Model": r["model"],
            "Seeds": str(n_seeds),
            "Lesions (malignant) / images": (
                f"{int(r['n_lesions'])} ({int(r['n_malignant'])}) / {int(r['n_images'])}"
                if _num(r.get("n_lesions")) else "—"),
            "Image-level AUC (Table 3)": fmt(r.get("image_auc")),
            "Lesion-level AUC [95% CI]": _ci(r, "auc"),
            "Sensitivity [95% CI]": _ci(r, "sensitivity"),
            "Specificity [95% CI]": _ci(r, "specificity"),
            "Note": r.get("note") or "",
        })
    out = pd.DataFrame(rows)
    return out.drop(columns="Note") if len(out) and not out.Note.astype(bool).any() else out


CAPTION = (
    "Lesion level: each same-lesion group of the held-out test set (from the split manifest) "
    "counts once, its score the mean P(malignant) of its images, per seed. AUC: mean over seeds "
    "with the variance-components 95% CI (test lesions plus training seeds, t on "
    "Welch–Satterthwaite df; the two-level bootstrap interval is in the CSV). Sensitivity and "
    "specificity: lesion score ≥ 0.5, mean over seeds, with design-effect Wilson 95% CIs. The "
    "image-level AUC is Table 3's (every image counted).")


def write_tables(ctx: ReportContext) -> None:
    """``lesion_metrics.{csv,md,tex}``."""
    t = lesion_table(ctx.runs, ctx.n_boot, ctx.seed, ctx.tables.get("table3_comparison"))
    if not len(t):
        return
    write_table(t, display(t), ctx.tdir / NAME, CAPTION)
    ctx.tables[NAME] = t


def draw_figures(tdir: Path, fdir: Path) -> list[Path]:
    return []


def readme_summary(t: pd.DataFrame) -> str:
    """What the table is, with its numbers only: the lesions and images it counts, and the
    rows whose lesion-level AUC is the lowest and highest."""
    ok = t.dropna(subset=["auc"])
    if not len(ok):
        return ("No configuration has a lesion-level AUC: "
                + "; ".join(f"{r.model}: {r.note}" for r in t.itertuples() if r.note) + ".")
    first = ok.iloc[0]
    grouped = bool(first.grouped) if _num(first.grouped) else False
    counted = (f"{int(first.n_images)} test images show {int(first.n_lesions)} lesions "
               f"({int(first.n_malignant)} malignant)")
    if not grouped:
        counted += ": no same-lesion groups were recorded, so every image is its own lesion"
    lo, hi = ok.loc[ok.auc.idxmin()], ok.loc[ok.auc.idxmax()]
    span = (f"lesion-level AUC ranges from {lo.auc:.3f} ({lo.model}) to {hi.auc:.3f} "
            f"({hi.model})" if len(ok) > 1 else f"lesion-level AUC {hi.auc:.3f} ({hi.model})")
    return (f"Each lesion counts once here, however often it was imaged: {counted}; {span}, "
            "each with an interval that counts both the test lesions and the training seeds.")


def readme(ctx: ReportContext) -> list[str]:
    if NAME not in ctx.tables:
        return []
    t = ctx.tables[NAME]
    return ["### Lesion-level metrics", "",
            readme_summary(t), "",
            ctx.table_md(NAME), "",
            *plain_words(
                "A lesion photographed three times counts three times at the image level; here "
                "each lesion is one case, scored by the average of its images, as a radiologist "
                "would judge the lesion rather than each picture.",
                "Where the lesion-level numbers sit far from the image-level ones, a few "
                "often-imaged lesions drive the image-level result.")]
