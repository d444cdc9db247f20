"""Do the models read the burnt-in annotations? (docs/protocol.md "Burnt-in annotations"): the
table and figure of the measures ``python -m bench.reliance`` saved in each run
(``reliance/reliance.json``, :mod:`bench.evaluation.reliance`); the report never measures."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from bench.core.tablefmt import fmt, fmt_p, with_ci, write_table
from bench.engine.runfolder import Run
from bench.engine.spec import cleaned
from bench.evaluation.reliance import reliance_summary
from bench.reporting import figures
from bench.reporting.figures import plt
from bench.reporting.sections.context import ReportContext, plain_words
from bench.reporting.tables import comparison_runs, comparison_sets


def reliance_table(results: list[dict]) -> pd.DataFrame:
    """One row per run and image set."""
    rows = [{**_row(s, r["model"], r["seed"], _trained_on(r["annotations"]), name), "run": r["run"]}
            for r in results for name, s in r["sets"].items()]
    return pd.DataFrame(rows)


def ensemble_table(runs: list[Run]) -> pd.DataFrame:
    """One row per comparison configuration (the held-out table's rows) and image set: the
    measures of its seed-averaged per-image probabilities and insertion shifts (each run's
    ``reliance/images.csv``), as the external table averages seeds."""
    rows = []
    for label, rs in comparison_sets(runs):
        measured = [(r, f) for r in rs if (f := r.folder.reliance_images()) is not None]
        if not measured:
            continue
        seeds = sorted(int(r.settings.get("seed", 0)) for r, _ in measured)
        names = sorted({n for _, f in measured for n in f.set.unique()}, key=lambda n: (n != "test", n))
        for name in names:
            parts = [f[f.set == name].set_index("id") for _, f in measured]
            ids = [i for i in parts[0].index if all(i in q.index for q in parts[1:])]
            first = parts[0].loc[ids]
            mean = {col: np.mean([q.loc[ids, col].to_numpy(float) for q in parts], axis=0)
                    for col in ("prob_original", "prob_cleaned")}
            shifts = np.vstack([q.loc[ids, "insertion_shift"].to_numpy(float) for q in parts])
            shift = np.full(len(ids), np.nan)
            has = ~np.isnan(shifts).all(axis=0)
            shift[has] = np.nanmean(shifts[:, has], axis=0)
            summary = reliance_summary(first.label.to_numpy(int), mean["prob_original"],
                                       mean["prob_cleaned"], shift, first.marked.to_numpy(bool),
                                       first.group.to_numpy(str))
            rows.append(_row(summary, label, f"{len(seeds)} ({','.join(map(str, seeds))})",
                             _trained_on(rs[0].settings.get("annotations")), name))
    return pd.DataFrame(rows)


def _trained_on(annotations: object) -> str:
    return "cleaned" if cleaned(annotations) else "original"


def _row(s: dict, model: str, seed: object, trained_on: str, name: str) -> dict:
    a, b = s["malignant_marks_on_benign"], s["benign_marks_on_malignant"]
    return {"model": model, "seed": seed, "trained_on": trained_on, "set": name,
            "images": s["images"], "marked_benign": f"{s['marked_benign']}/{s['benign']}",
            "marked_malignant": f"{s['marked_malignant']}/{s['malignant']}",
            "auc_original": s.get("auc_original"), "auc_cleaned": s.get("auc_cleaned"),
            "delta_auc": s.get("delta_auc"), "delta_lo": s.get("delta_lo"),
            "delta_hi": s.get("delta_hi"), "delta_p": s.get("delta_p"),
            "shift_benign_targets": a["mean_shift"], "shift_benign_lo": a["lo"],
            "shift_benign_hi": a["hi"], "shift_malignant_targets": b["mean_shift"],
            "shift_malignant_lo": b["lo"], "shift_malignant_hi": b["hi"]}


def display_table(table: pd.DataFrame) -> pd.DataFrame:
    """The table as the report shows it."""
    return pd.DataFrame({
        "model": table.model, "seed(s)": table.seed, "trained on": table.trained_on, "set": table.set,
        "marked (benign, malignant)": table.marked_benign + ", " + table.marked_malignant,
        "AUC as is": table.auc_original.map(fmt), "AUC cleaned": table.auc_cleaned.map(fmt),
        "ΔAUC (95% CI, clustered)": [with_ci(d, lo, hi) for d, lo, hi in
                                     zip(table.delta_auc, table.delta_lo, table.delta_hi, strict=True)],
        "p": table.delta_p.map(fmt_p),
        "malignant marks on benign: ΔP (95% CI)": [
            with_ci(d, lo, hi) for d, lo, hi in zip(table.shift_benign_targets, table.shift_benign_lo,
                                                    table.shift_benign_hi, strict=True)],
        "benign marks on malignant: ΔP (95% CI)": [
            with_ci(d, lo, hi) for d, lo, hi in zip(table.shift_malignant_targets,
                                                    table.shift_malignant_lo,
                                                    table.shift_malignant_hi, strict=True)]})


def _marked(cell: object) -> int:
    """The marked count of a ``"32/50"`` cell (0 when unknown)."""
    try:
        return int(str(cell).split("/")[0])
    except ValueError:
        return 0


def shown_rows(table: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    """The rows with something to show and the sets left out: a set in which the detector
    found no marked image has nothing to remove or paste (ΔAUC 0 by construction, no shift)."""
    if not {"marked_benign", "marked_malignant"} <= set(table):
        return table.reset_index(drop=True), []
    empty = table.apply(lambda r: _marked(r.marked_benign) + _marked(r.marked_malignant) == 0,
                        axis=1) if len(table) else pd.Series(dtype=bool)
    dropped = list(dict.fromkeys(table[empty].set.astype(str))) if len(table) else []
    return table[~empty].reset_index(drop=True) if len(table) else table, dropped


def reliance_figure(table: pd.DataFrame, base: Path) -> list[Path]:
    """ΔAUC from cleaning and the insertion shifts, one row per run and set, with intervals; sets
    without a marked image are left out (nothing to remove or paste) and named under the plot."""
    t, dropped = shown_rows(table)
    labels = [f"{r.model} s{r.seed} ({r.trained_on}) · {r.set}" if "run" in t else
              f"{r.model} · {r.set}" for r in t.itertuples()]
    ypos = np.arange(len(t))[::-1]
    fig, axes = plt.subplots(1, 2, figsize=(13, 1.6 + 0.38 * max(1, len(t))), sharey=True)
    ax = axes[0]
    ax.errorbar(t.delta_auc, ypos, xerr=[t.delta_auc - t.delta_lo, t.delta_hi - t.delta_auc],
                fmt="o", color="k", capsize=3)
    ax.axvline(0, color="grey", lw=0.8)
    ax.set_yticks(ypos, labels)
    ax.set_xlabel("ΔAUC = AUC as is − AUC cleaned\n(95% CI)")
    ax.xaxis.set_major_locator(plt.MaxNLocator(5))
    ax.set_title("Removing the annotations")
    ax = axes[1]
    for col, colour, name, dy in (("shift_benign_targets", "tab:red", "malignant marks → benign", 0.12),
                                  ("shift_malignant_targets", "tab:blue", "benign marks → malignant", -0.12)):
        lo, hi = t[col.replace("targets", "lo")], t[col.replace("targets", "hi")]
        ax.errorbar(t[col], ypos + dy, xerr=[t[col] - lo, hi - t[col]], fmt="o", color=colour,
                    capsize=3, label=name)
    ax.axvline(0, color="grey", lw=0.8)
    ax.set_xlabel("mean change of P(malignant)\n(95% CI)")
    ax.set_title("Pasting another class's annotations")
    ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize=8, frameon=False)
    if dropped:
        fig.text(0.01, 0.005, "Not shown (no marked image: nothing to remove or paste): "
                 + ", ".join(dropped), fontsize=8, ha="left", va="bottom")
    fig.tight_layout(rect=(0, 0.04 if dropped else 0, 1, 1))
    return figures.save(fig, base)


CAPTION = ("Reliance on burnt-in annotations (bench.reliance). ΔAUC = AUC on the images as they "
           "are − AUC with their detected annotations inpainted, on the same images, with "
           "Obuchowski's clustered 95% CI (same-lesion groups; patient IDs on external sets). "
           "Insertion: the annotation pixels of a random annotated image of the other class "
           "pasted onto each cleaned image; mean change of P(malignant) against the cleaned "
           "image, cluster-bootstrap 95% CI. Marked: images in which the detector found marks. "
           "A model that reads the marks loses AUC when they are removed and moves towards the "
           "class the pasted marks came from.")


def saved_table(runs: list) -> pd.DataFrame:
    """The table of the runs' saved measures (``reliance/reliance.json``; the report never
    measures)."""
    results = [rec for run in runs if (rec := run.folder.reliance_record()) is not None]
    t = reliance_table(results)
    return t.sort_values(["set", "model", "trained_on", "seed"]).reset_index(drop=True) if len(t) else t


def write_saved(table: pd.DataFrame, tdir: Path) -> list[Path]:
    return write_table(table, display_table(table), tdir / "reliance", CAPTION)


def drop_saved(tdir: Path) -> None:
    for name in ("reliance", "reliance_per_seed"):
        for ext in (".csv", ".md", ".tex"):
            (tdir / f"{name}{ext}").unlink(missing_ok=True)


ENSEMBLE_CAPTION = ("One row per configuration of the held-out table and image set, from its "
                    "seed-averaged P(malignant) per image (as is, cleaned) and its seed-averaged "
                    "insertion shifts; every run and seed apart in reliance_per_seed.csv. ")


def write_tables(ctx: ReportContext) -> None:
    """``reliance.{csv,md,tex}`` (one row per configuration and set) and ``reliance_per_seed``
    when any run was measured; else an earlier report's are dropped."""
    per_seed = saved_table(comparison_runs(ctx.runs))
    if len(per_seed):
        write_table(per_seed, display_table(per_seed), ctx.tdir / "reliance_per_seed", CAPTION)
        rel = ensemble_table(ctx.runs)
        if len(rel):
            write_table(rel, display_table(rel), ctx.tdir / "reliance", ENSEMBLE_CAPTION + CAPTION)
        else:  # records without their per-image tables: the runs one by one
            rel = per_seed
            write_saved(rel, ctx.tdir)
        ctx.tables["reliance"] = rel
    else:
        drop_saved(ctx.tdir)


def draw_figures(tdir: Path, fdir: Path) -> list[Path]:
    if not (tdir / "reliance.csv").is_file():
        return []
    return reliance_figure(pd.read_csv(tdir / "reliance.csv"), fdir / "reliance")


def readme(ctx: ReportContext) -> list[str]:
    if "reliance" not in ctx.tables:
        return []
    return ["## Do the models read the annotations?", "", ctx.table_md("reliance"), "",
            *plain_words(
                "Many breast ultrasound images carry marks burnt in by the sonographer (calipers, "
                "arrows, text), which can be more common on suspicious lesions, so a model may "
                "learn to read the marks instead of the tissue; here the same images are scored "
                "as they are and with the marks painted out, and marks taken from the other "
                "class are pasted on.",
                "A model that relies on the marks loses AUC when they are removed and moves "
                "towards the class the pasted marks came from; intervals that contain 0 show no "
                "reliance at this sample size, and rows trained on cleaned images show what the "
                "models learn without the marks."),
            "![Reliance on annotations](figures/reliance.png)", ""]
