"""Do the models read the burnt-in annotations? (docs/protocol.md "Burnt-in annotations"): the
table and figure of the measures ``python -m bench.reliance`` saved in each run
(``reliance/reliance.json``, :mod:`bench.evaluation.reliance`) and, where it was measured with
``--controls``, the insertion test against its controls (``reliance/insertion.json``,
:mod:`bench.evaluation.insertion`); the report never measures."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from bench.core.tablefmt import fmt, fmt_p, with_ci, write_table
from bench.engine.runfolder import Run
from bench.engine.spec import cleaned
from bench.evaluation.insertion import (
    DIRECTIONS,
    InsertionEffect,
    insertion_effects,
    mean_over_seeds,
)
from bench.evaluation.reliance import reliance_summary
from bench.reporting import figures
from bench.reporting.figures import plt
from bench.reporting.findings import INTRO as FINDINGS_INTRO
from bench.reporting.findings import write_findings
from bench.reporting.reliancefindings import reliance_findings
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
        seeds = sorted(r.seed for r, _ in measured)
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
                             _trained_on(rs[0].record.settings.annotations), name))
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


def reliance_figure(table: pd.DataFrame, base: Path, insertion: pd.DataFrame | None = None
                    ) -> list[Path]:
    """ΔAUC from cleaning and the insertion shifts, one row per run and set, with intervals; sets
    without a marked image are left out (nothing to remove or paste) and named under the plot.
    With an ``insertion`` table (:func:`insertion_table`), a panel below shows each row's
    cross-class shift towards the marks' class and its effect beyond each control (rows without
    a value left out)."""
    t, dropped = shown_rows(table)
    labels = [f"{r.model} s{r.seed} ({r.trained_on}) · {r.set}" if "run" in t else
              f"{r.model} · {r.set}" for r in t.itertuples()]
    ypos = np.arange(len(t))[::-1]
    ins = None if insertion is None else shown_insertion(insertion)
    if ins is not None and len(ins):
        top = 1.6 + 0.38 * max(1, len(t))
        bottom = 1.6 + 0.42 * len(ins)
        fig = plt.figure(figsize=(13, top + bottom))
        grid = fig.add_gridspec(2, 2, height_ratios=[top, bottom])
        first = fig.add_subplot(grid[0, 0])
        axes = [first, fig.add_subplot(grid[0, 1], sharey=first)]
        plt.setp(axes[1].get_yticklabels(), visible=False)
        _insertion_panel(fig.add_subplot(grid[1, :]), ins)
    else:
        fig, axes = plt.subplots(1, 2, figsize=(13, 1.6 + 0.38 * max(1, len(t))), sharey=True)
    ax = axes[0]
    ax.errorbar(t.delta_auc, ypos, xerr=[t.delta_auc - t.delta_lo, t.delta_hi - t.delta_auc],
                fmt="o", color="k", capsize=3)
    ax.axvline(0, color="grey", lw=0.8)
    ax.set_yticks(ypos, labels)
    ax.set_xlabel("ΔAUC = AUC as is − AUC cleaned\n(95% CI)")
    ax.xaxis.set_major_locator(plt.MaxNLocator(5))
    ax.set_title("Removing the\nannotations")  # two lines: the panels narrow beside long labels
    ax = axes[1]
    for col, colour, name, dy in (("shift_benign_targets", "tab:red", "malignant marks → benign", 0.12),
                                  ("shift_malignant_targets", "tab:blue", "benign marks → malignant", -0.12)):
        lo, hi = t[col.replace("targets", "lo")], t[col.replace("targets", "hi")]
        ax.errorbar(t[col], ypos + dy, xerr=[t[col] - lo, hi - t[col]], fmt="o", color=colour,
                    capsize=3, label=name)
    ax.axvline(0, color="grey", lw=0.8)
    ax.set_xlabel("mean change of P(malignant)\n(95% CI)")
    ax.set_title("Pasting another\nclass's annotations")
    ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize=8, frameon=False)
    if dropped:
        fig.text(0.01, 0.005, "Not shown (no marked image: nothing to remove or paste): "
                 + ", ".join(dropped), fontsize=8, ha="left", va="bottom")
    fig.tight_layout(rect=(0, 0.04 if dropped else 0, 1, 1))
    return figures.save(fig, base)


SHORT = {"malignant_marks_on_benign": "malignant marks → benign",
         "benign_marks_on_malignant": "benign marks → malignant"}
# (column prefix, what it is, colour, vertical offset in the figure)
EFFECTS = (("cross", "cross-class paste alone", "k", 0.2),
           ("same", "cross − same-class control", "tab:green", 0.0),
           ("random", "cross − random-shape control", "tab:purple", -0.2))


def shown_insertion(table: pd.DataFrame) -> pd.DataFrame:
    """The insertion rows with a value (a set or direction without marked donors has none)."""
    if not len(table):
        return table
    has = table[["cross", "same_effect", "random_effect"]].notna().any(axis=1)
    return table[has].reset_index(drop=True)


def _insertion_panel(ax, t: pd.DataFrame) -> None:
    labels = [f"{r.model}{f' s{r.seed} ({r.trained_on})' if 'run' in t else ''} · {r.set} · "
              f"{SHORT.get(r.direction, r.direction)}" for r in t.itertuples()]
    ypos = np.arange(len(t))[::-1]
    for prefix, name, colour, dy in EFFECTS:
        col = "cross" if prefix == "cross" else f"{prefix}_effect"
        v, lo, hi = (t[col].to_numpy(float), t[f"{prefix}_lo"].to_numpy(float),
                     t[f"{prefix}_hi"].to_numpy(float))
        ax.errorbar(v, ypos + dy, xerr=[v - lo, hi - v], fmt="o", color=colour, capsize=3,
                    label=name)
    ax.axvline(0, color="grey", lw=0.8)
    ax.set_yticks(ypos, labels)
    ax.set_xlabel("change of P(malignant) towards the class the marks came from\n"
                  "(95% CI, targets and donors resampled)")
    ax.set_title("Pasting another class's annotations, against same-class and random-shape pastes")
    ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize=8, frameon=False)


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
    for name in ("reliance", "reliance_per_seed", "insertion", "insertion_per_seed"):
        for ext in (".csv", ".md", ".tex"):
            (tdir / f"{name}{ext}").unlink(missing_ok=True)
    (tdir / "reliance_findings.md").unlink(missing_ok=True)


def effect_columns(effects: list[InsertionEffect] | dict) -> dict[str, dict]:
    """Direction → the table's columns of its effects (a list, or ``insertion.json``'s
    ``{direction: {control: fields}}``)."""
    by: dict[str, dict[str, dict]] = {}
    if isinstance(effects, dict):
        for direction, controls in effects.items():
            by[direction] = dict(controls)
    else:
        for e in effects:
            by.setdefault(e.direction, {})[e.control] = e.as_dict()
    out = {}
    for direction, c in by.items():
        none = c.get("none", {})
        row = {"targets": none.get("n_targets"), "target_groups": none.get("target_groups"),
               "donor_groups": none.get("donor_groups"), "cross": none.get("effect"),
               "cross_lo": none.get("lo"), "cross_hi": none.get("hi"),
               "cross_lo_targets": none.get("lo_targets"),
               "cross_hi_targets": none.get("hi_targets")}
        for prefix, control in (("same", "same_class"), ("random", "random_shape")):
            e = c.get(control, {})
            row.update({f"{prefix}_shift": e.get("control_shift"),
                        f"{prefix}_effect": e.get("effect"), f"{prefix}_lo": e.get("lo"),
                        f"{prefix}_hi": e.get("hi"), f"{prefix}_lo_targets": e.get("lo_targets"),
                        f"{prefix}_hi_targets": e.get("hi_targets")})
        out[direction] = row
    return out


def _insertion_rows(sets: dict, model: str, seed: object, trained_on: str) -> list[dict]:
    order = [d for d, _, _ in DIRECTIONS]
    return [{"model": model, "seed": seed, "trained_on": trained_on, "set": name,
             "direction": direction, **cols}
            for name, effects in sets.items()
            for direction, cols in sorted(effect_columns(effects).items(),
                                          key=lambda kv: order.index(kv[0]))]


def insertion_per_seed(runs: list) -> pd.DataFrame:
    """One row per run, image set and direction from each run's ``reliance/insertion.json``."""
    rows = []
    for run in runs:
        rec = run.folder.insertion_record()
        if rec is None:
            continue
        for row in _insertion_rows(rec["sets"], rec["model"], rec["seed"],
                                   _trained_on(rec["annotations"])):
            rows.append({**row, "run": rec["run"]})
    t = pd.DataFrame(rows)
    # rows come in the directions' order; the sort keeps it within a run and set
    return t.sort_values(["set", "model", "trained_on", "seed"],
                         kind="stable").reset_index(drop=True) if len(t) else t


def insertion_table(runs: list[Run], n_boot: int = 2000, seed: int = 0) -> pd.DataFrame:
    """One row per comparison configuration, image set and direction: the insertion effects of
    the seed-averaged per-target shifts (each run's ``reliance/insertion.csv``; runs that share
    the design, :func:`bench.evaluation.insertion.mean_over_seeds`)."""
    rows = []
    for label, rs in comparison_sets(runs):
        measured = [(r, f) for r in rs if (f := r.folder.insertion_images()) is not None]
        if not measured:
            continue
        seeds = sorted(int(r.settings.get("seed", 0)) for r, _ in measured)
        names = sorted({n for _, f in measured for n in f.set.unique()}, key=lambda n: (n != "test", n))
        sets = {}
        for name in names:
            mean = mean_over_seeds([f[f.set == name].reset_index(drop=True) for _, f in measured])
            if mean is not None and len(mean):
                sets[name] = insertion_effects(mean, n_boot, seed)
        rows += _insertion_rows(sets, label, f"{len(seeds)} ({','.join(map(str, seeds))})",
                                _trained_on(rs[0].settings.get("annotations")))
    return pd.DataFrame(rows)


def _signed(value, lo, hi) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return "—"
    return f"{value:+.3f} [{lo:+.3f}, {hi:+.3f}]"


def _effect_cell(value, lo, hi, lo_t, hi_t) -> str:
    cell = _signed(value, lo, hi)
    if cell == "—" or lo_t is None or (isinstance(lo_t, float) and np.isnan(lo_t)):
        return cell
    return f"{cell}; targets only [{lo_t:+.3f}, {hi_t:+.3f}]"


def insertion_display(table: pd.DataFrame) -> pd.DataFrame:
    """The insertion table as the report shows it."""
    t = table

    def cells(prefix: str, col: str) -> list[str]:
        return [_effect_cell(*v) for v in zip(t[col], t[f"{prefix}_lo"], t[f"{prefix}_hi"],
                                              t[f"{prefix}_lo_targets"], t[f"{prefix}_hi_targets"],
                                              strict=True)]
    return pd.DataFrame({
        "model": t.model, "seed(s)": t.seed, "trained on": t.trained_on, "set": t.set,
        "pasted": t.direction.map(lambda d: SHORT.get(d, d)),
        "targets (groups; donor groups)": [f"{fmt(n)} ({fmt(g)}; {fmt(d)})" for n, g, d in
                                           zip(t.targets, t.target_groups, t.donor_groups,
                                               strict=True)],
        "cross-class shift (95% CI)": cells("cross", "cross"),
        "same-class control": t.same_shift.map(lambda v: fmt(v) if pd.isna(v) else f"{v:+.3f}"),
        "cross − same-class (95% CI)": cells("same", "same_effect"),
        "random-shape control": t.random_shift.map(lambda v: fmt(v) if pd.isna(v) else f"{v:+.3f}"),
        "cross − random-shape (95% CI)": cells("random", "random_effect")})


INSERTION_CAPTION = (
    "Insertion test with controls (bench.reliance --controls). Each target image (cleaned) gets "
    "the marks of a marked image of the other class (cross-class), of its own class from another "
    "same-lesion group (same-class control), and random strokes of the cross-class marks' pixel "
    "count and mean intensity at their positions (random-shape control), all placed by the same "
    "rule. Shifts are mean changes of P(malignant) towards the class the pasted marks came from; "
    "effect = cross-class shift − control shift. 95% percentile intervals resample the targets' "
    "and the donors' same-lesion groups (two-way cluster bootstrap); the targets-only interval "
    "(the earlier test's) beside it. ")


def _excludes(lo: float, hi: float) -> int:
    """+1 when the interval lies above 0, −1 below, 0 when it holds 0 (or is missing)."""
    if lo is None or hi is None or np.isnan(lo) or np.isnan(hi):
        return 0
    return 1 if lo > 0 else -1 if hi < 0 else 0


def insertion_sentences(table: pd.DataFrame) -> list[str]:
    """What the insertion table's intervals say, per direction, counted from the table."""
    out = []
    t = shown_insertion(table)
    for direction, _, _ in DIRECTIONS:
        part = t[t.direction == direction]
        if part.empty:
            continue
        n = len(part)

        def count(prefix: str, targets_only: bool = False, part=part) -> tuple[int, int]:
            suffix = "_targets" if targets_only else ""
            signs = [_excludes(lo, hi) for lo, hi in zip(part[f"{prefix}_lo{suffix}"],
                                                          part[f"{prefix}_hi{suffix}"], strict=True)]
            return sum(s > 0 for s in signs), sum(s < 0 for s in signs)

        up, down = count("cross")
        up_t, down_t = count("cross", True)
        parts = [f"* **{SHORT[direction].capitalize()}** ({n} row{'s' if n != 1 else ''}): the "
                 f"cross-class shift alone excludes 0 in {up + down} of {n} with targets and "
                 f"donors resampled ({up} towards the marks' class, {down} away), in "
                 f"{up_t + down_t} of {n} with the targets only"]
        for prefix, name in (("same", "same-class"), ("random", "random-shape")):
            u, d = count(prefix)
            have = int(part[f"{prefix}_effect"].notna().sum())
            parts.append(f"beyond the {name} control it excludes 0 in {u + d} of {have} "
                         f"({u} towards the marks' class, {d} away)")
        out.append("; ".join(parts) + ".")
    return out


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
        write_findings(ctx.tdir / "reliance_findings.md",
                       reliance_findings(rel, "configuration" if rel is not per_seed else "run"))
        write_insertion_tables(ctx)
    else:
        drop_saved(ctx.tdir)


def write_insertion_tables(ctx: ReportContext) -> None:
    """``insertion.{csv,md,tex}`` (one row per configuration, set and direction) and
    ``insertion_per_seed`` where runs were measured with controls; else none (an earlier
    report's are dropped)."""
    per_seed = insertion_per_seed(comparison_runs(ctx.runs))
    if not len(per_seed):
        for name in ("insertion", "insertion_per_seed"):
            for ext in (".csv", ".md", ".tex"):
                (ctx.tdir / f"{name}{ext}").unlink(missing_ok=True)
        return
    write_table(per_seed, insertion_display(per_seed), ctx.tdir / "insertion_per_seed",
                INSERTION_CAPTION)
    ins = insertion_table(ctx.runs, ctx.n_boot, ctx.seed)
    if not len(ins):
        ins = per_seed
    write_table(ins, insertion_display(ins), ctx.tdir / "insertion",
                INSERTION_CAPTION + ("Seed-averaged shifts per configuration; every run apart in "
                                     "insertion_per_seed.csv." if "run" not in ins else ""))
    ctx.tables["insertion"] = ins


def draw_figures(tdir: Path, fdir: Path) -> list[Path]:
    if not (tdir / "reliance.csv").is_file():
        return []
    insertion = pd.read_csv(tdir / "insertion.csv") if (tdir / "insertion.csv").is_file() else None
    return reliance_figure(pd.read_csv(tdir / "reliance.csv"), fdir / "reliance", insertion)


def readme(ctx: ReportContext) -> list[str]:
    if "reliance" not in ctx.tables:
        return []
    return ["## Do the models read the annotations?", "", ctx.table_md("reliance"), "",
            FINDINGS_INTRO, "", ctx.table_md("reliance_findings"),
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
            "![Reliance on annotations](figures/reliance.png)", "", *insertion_readme(ctx)]


def insertion_readme(ctx: ReportContext) -> list[str]:
    """The insertion test against its controls, where measured: the table and what its
    intervals say (counted from the table)."""
    if "insertion" not in ctx.tables:
        return []
    return ["### Is it the marks, or any overlay?", "", ctx.table_md("insertion"), "",
            *insertion_sentences(ctx.tables["insertion"]), "",
            *plain_words(
                "Any mark pasted on an image may move a model a little, whatever it means, so the "
                "marks of the other class are compared with marks of the image's own class and "
                "with random scribbles of the same size and brightness in the same places.",
                "Only a move towards the marks' class that is larger than both controls (an "
                "interval above 0) says that the model reads these marks as their class; an "
                "interval that holds 0 cannot tell that from a reaction to any overlay.")]
