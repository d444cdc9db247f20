"""``python -m bench.report --runs DIR --out DIR``: every table and figure from saved runs (SPEC §4).

Reads run folders only (never trains). Tables go to ``<out>/tables/`` as CSV (raw numbers), Markdown
and LaTeX; figures are drawn from those saved CSVs into ``<out>/figures/`` (PNG + PDF), so
``--figures-only`` redraws them without the runs. ``<out>/README.md`` summarises it all. Output is
deterministic: the same runs give byte-identical files.
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from bench.core.atomic import write_csv, write_npz, write_text
from bench.core.errors import BenchError, cli_main, ensure_writable, number
from bench.core.paths import PROJECT_ROOT
from bench.core.tablefmt import fmt, fmt_p, to_latex, with_ci, write_table
from bench.evaluation import reliance
from bench.evaluation.sites import MATRIX_CAPTION, matrix_display, site_matrix
from bench.jobs.experiments import EXPERIMENTS
from bench.reporting import camtable, figures, table3
from bench.reporting.runs import Run, load_runs, provenance_warnings
from bench.reporting.tables import (
    PAPER_ROW,
    calibration_bins,
    comparison_runs,
    comparison_sets,
    comparison_table,
    cv_folds,
    experiment_table,
    explanation_examples,
    explanation_table,
    external_curves,
    external_table,
    misclassified,
    per_seed_table,
    pipeline_examples,
    roc_points,
    set_aside,
)


def select_group(runs: list[Run], profile: str | None) -> list[Run]:
    """Runs of one data set, split manifest and profile; ask the user when several are present."""
    def key(r: Run) -> tuple:
        return (r.settings.get("data_kind"), r.settings.get("manifest_sha256", "")[:12],
                r.config.get("profile", {}).get("name"))

    if profile:
        runs = [r for r in runs if key(r)[2] == profile]
        if not runs:
            raise BenchError(f"--profile {profile}: no finished runs with that profile")
    groups = sorted({key(r) for r in runs}, key=str)
    if len(groups) > 1:
        listing = "; ".join(f"data {g[0]}, split {g[1]}, profile {g[2]}" for g in groups)
        raise BenchError(f"runs from several settings ({listing}); give --profile or a --runs "
                         "folder holding one data set")
    return runs


def experiment_display(t: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for r in t.to_dict("records"):
        flagged = isinstance(r.get("flag"), str) and bool(r.get("flag"))
        row = {"Variant": r["variant"] + (" ⚠" if flagged else ""),
               "Evaluated on": r["evaluated_on"]}
        for k in ("accuracy", "sensitivity", "specificity", "auc"):
            v, sd = r.get(k), r.get(f"{k}_sd")
            row[k.capitalize() if k != "auc" else "AUC (CV)"] = (
                f"{v:.3f} ± {sd:.3f}" if v is not None and not pd.isna(v) and sd is not None
                and not pd.isna(sd) else fmt(v))
        row.update(table3.experiment_columns(r))
        row["Held-out test AUC (secondary; not used to choose)"] = fmt(r.get("test_auc_secondary"))
        row["Flag"] = r.get("flag") if flagged else ""
        rows.append(row)
    return pd.DataFrame(rows)


def misclassified_display(t: pd.DataFrame) -> pd.DataFrame:
    names = {0: "benign", 1: "malignant"}
    seeds = [c for c in t.columns if c.startswith("prob_seed_")]
    return pd.DataFrame({
        "image": t.id, "true label": [names[int(v)] for v in t.label],
        "P(malignant), seed mean": [fmt(v) for v in t.prob_malignant],
        "per seed": [", ".join(fmt(r[c]) for c in seeds) for r in t.to_dict("records")],
        "wrong in seeds": [f"{int(a)}/{int(b)}" for a, b in zip(t.seeds_wrong, t.n_seeds,
                                                                strict=True)]})


def external_display(t: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for r in t.to_dict("records"):
        flagged = isinstance(r.get("flag"), str) and bool(r.get("flag"))
        spread = r.get("external_auc_seed_sd")
        rows.append({
            "Model": r["model"] + (" ⚠" if flagged else ""), "External set": r["external_set"],
            "n (copies)": f"{int(r['n_external'])} ({int(r['training_copies'])})",
            "Seeds": str(int(r["n_seeds"])),
            "AUC internal": with_ci(r["internal_auc"], r["internal_auc_lo"], r["internal_auc_hi"]),
            "AUC external": with_ci(r["external_auc"], r["external_auc_lo"], r["external_auc_hi"])
            + ("" if pd.isna(spread) else f" (sd over seeds {spread:.3f})"),
            "AUC without copies": fmt(r["external_auc_without_copies"]),
            "ΔAUC": with_ci(r["delta_auc"], r["delta_auc_lo"], r["delta_auc_hi"]),
            **{k.upper() if len(k) == 3 else k.capitalize():
               f"{fmt(r[f'internal_{k}'])} → {fmt(r[f'external_{k}'])}"
               for k in ("accuracy", "sensitivity", "specificity", "ppv", "npv")},
            "Brier": fmt(r["external_brier"]),
            "Cal. slope / intercept": f"{fmt(r['calibration_slope'], 2)} / "
                                      f"{fmt(r['calibration_intercept'], 2)}",
            "p vs Fus2Net, clustered (Holm)": "— (degenerate)" if flagged else fmt_p(
                r.get("clustered_p_holm")),
            "Flag": r.get("flag") if flagged else "",
        })
    return pd.DataFrame(rows)


def explanation_display(t: pd.DataFrame) -> pd.DataFrame:
    return camtable.display(t)


def explanation_notes(t: pd.DataFrame) -> list[str]:
    """Models whose maps cannot be measured, are no better than chance in the lesion, or carry
    the border-energy flag."""
    return camtable.notes(t)


def _clusters(t3: pd.DataFrame) -> str:
    """``"100 images in 73 groups"``: the test set's clusters, for the captions."""
    if "n_clusters" not in t3 or t3.n_clusters.dropna().empty:
        return "no groups recorded: one image per cluster"
    return f"{int(t3.n_mean.dropna().iloc[0])} images in {int(t3.n_clusters.dropna().iloc[0])} groups"


def write_tables(runs: list[Run], out: Path, n_boot: int, seed: int) -> dict[str, pd.DataFrame]:
    tdir = out / "tables"
    per_seed = per_seed_table(runs, n_boot=n_boot, seed=seed)
    write_csv(tdir / "table3_per_seed.csv", per_seed)
    t3 = comparison_table(runs, n_boot=n_boot, seed=seed, per_seed=per_seed)
    both = pd.concat([t3, pd.DataFrame([PAPER_ROW])], ignore_index=True)
    write_table(both, table3.headline_display(both), tdir / "table3_comparison",
                table3.HEADLINE_CAPTION.format(clusters=_clusters(t3)))
    write_text(tdir / "table3_comparison.tex", to_latex(table3.full_display(both),
                                                        table3.FULL_CAPTION))
    write_table(t3[[c for c in table3.CALIBRATION_COLUMNS if c in t3]],
                table3.calibration_display(t3), tdir / "table3_calibration",
                table3.CALIBRATION_CAPTION.format(prevalence=table3.prevalence_text(t3)))
    write_csv(tdir / "roc_points.csv", roc_points(runs))
    write_csv(tdir / "calibration_bins.csv", calibration_bins(runs))
    write_csv(tdir / "cv_folds.csv", cv_folds(runs))
    tables = {"table3_comparison": t3}
    cams = explanation_table(runs)
    if len(cams):
        write_table(cams, explanation_display(cams), tdir / "explanations",
                    camtable.caption(runs[0].settings.get("img_size")))
        examples = explanation_examples(runs)
        write_npz(tdir / "explain_examples.npz", examples)
        tables["explanations"] = cams
    ext = external_table(runs, n_boot=n_boot, seed=seed)
    if len(ext):
        write_table(ext, external_display(ext), tdir / "external_comparison",
                    "Internal (held-out test) vs external sets at the unchanged threshold 0.5, "
                    "seed-averaged probabilities (an ensemble of each model's seeds). AUC 95% CIs "
                    "clustered (Obuchowski; the internal test's same-lesion groups, the external "
                    "set's patients where it has patient IDs, else one image each), the primary "
                    "ones; cluster-bootstrap and image-level DeLong CIs are in the CSV. ΔAUC CI "
                    "from both clustered variances (independent samples). Calibration: Brier "
                    "score, logistic recalibration slope (1 = ideal) and calibration-in-the-large "
                    "intercept (0 = ideal). p vs Fus2Net: clustered z test of ΔAUC on the same "
                    "external images, Holm-corrected across models per set. Every scored image counts; n (copies): how many external images are "
                    "copies of a training image's picture (identical, re-saved, rescaled or "
                    "cropped; look-alike lesions are not copies), with the AUC without them.")
        roc, cal = external_curves(runs)
        write_csv(tdir / "external_roc_points.csv", roc)
        write_csv(tdir / "external_calibration_bins.csv", cal)
        tables["external_comparison"] = ext
    else:  # no external set among these runs: drop an earlier report's external tables
        for name in ("external_comparison.csv", "external_comparison.md",
                     "external_comparison.tex", "external_roc_points.csv",
                     "external_calibration_bins.csv"):
            (tdir / name).unlink(missing_ok=True)
    # --- reliance on burnt-in annotations (bench/evaluation/reliance.py) ---
    rel = reliance.saved_table(runs)
    if len(rel):
        reliance.write_saved(rel, tdir)
        tables["reliance"] = rel
    else:
        reliance.drop_saved(tdir)
    # --- end reliance ---
    # sites (bench/evaluation/sites.py): held-out test per site and pooled, and the external sites
    sites = site_matrix(runs)
    if len(sites) and ((sites.how == "external") | (sites.scored_on == "pooled")).any():
        write_table(sites, matrix_display(sites), tdir / "site_matrix", MATRIX_CAPTION)
        tables["site_matrix"] = sites
    wrong, thumbs = misclassified(runs)
    write_table(wrong, misclassified_display(wrong), tdir / "fig3_misclassified",
                "Fus2Net's misclassified held-out images: seed-averaged P(malignant) at threshold "
                "0.5, most confidently wrong first, with each seed's probability.")
    write_npz(tdir / "fig3_misclassified.npz", thumbs)
    params, arrays = pipeline_examples(runs)
    for name, present in (("fig5_augmentation.csv", len(params)), ("pipeline_examples.npz", arrays)):
        if not present:  # no illustrated Fus2Net run (or no arrays): drop an earlier report's
            (tdir / name).unlink(missing_ok=True)
    if len(params):
        write_csv(tdir / "fig5_augmentation.csv", params)
    if arrays:
        write_npz(tdir / "pipeline_examples.npz", arrays)
    for name, exp in EXPERIMENTS.items():
        t = experiment_table(runs, name)
        write_table(t, experiment_display(t), tdir / name,
                    table3.EXPERIMENT_CAPTION.format(title=exp["title"]))
        tables[name] = t
    return tables


def draw_figures(out: Path) -> list[Path]:
    """All figures from the saved tables in ``<out>/tables``."""
    tdir, fdir = out / "tables", out / "figures"
    if not (tdir / "table3_comparison.csv").is_file():
        raise BenchError(f"{tdir}: no saved tables; run python -m bench.report --runs DIR first")
    t3 = pd.read_csv(tdir / "table3_comparison.csv")
    t3 = t3[~t3.model.str.startswith("Fus2Net —")]
    paths = []
    paths += figures.roc_figure(pd.read_csv(tdir / "roc_points.csv"), t3, fdir / "fig2_roc")
    paths += figures.confusion_grid(t3, fdir / "confusion_matrices")
    paths += figures.cv_strip(_read(tdir / "cv_folds.csv"), fdir / "cv_folds")
    paths += figures.calibration_figure(_read(tdir / "calibration_bins.csv"), fdir / "calibration")
    paths += figures.optimizer_bars(pd.read_csv(tdir / "fig1_optimizers.csv"), fdir / "fig1_optimizers")
    if (tdir / "explain_examples.npz").is_file():
        with np.load(tdir / "explain_examples.npz") as npz:
            examples = dict(npz)
        if examples:
            paths += figures.explanation_grid(examples, fdir / "explanations")
        else:  # no measured map to show: an earlier report's figure would mislead
            for ext in (".png", ".pdf"):
                (fdir / f"explanations{ext}").unlink(missing_ok=True)
    if (tdir / "reliance.csv").is_file():  # bench/evaluation/reliance.py
        paths += reliance.reliance_figure(pd.read_csv(tdir / "reliance.csv"), fdir / "reliance")
    if (tdir / "fig3_misclassified.csv").is_file():
        with np.load(tdir / "fig3_misclassified.npz") as npz:
            paths += figures.misclassified_grid(pd.read_csv(tdir / "fig3_misclassified.csv",
                                                            dtype={"id": str}),
                                                {k: npz[k] for k in npz.files},
                                                fdir / "fig3_misclassified")
    if (tdir / "pipeline_examples.npz").is_file():
        with np.load(tdir / "pipeline_examples.npz") as npz:
            arrays = {k: npz[k] for k in npz.files}
        paths += figures.augmentation_figure(arrays, pd.read_csv(tdir / "fig5_augmentation.csv"),
                                             fdir / "fig5_augmentation")
        paths += figures.preprocessing_figure(arrays, fdir / "fig6_preprocessing")
    if (tdir / "external_roc_points.csv").is_file():
        paths += figures.external_roc(_read(tdir / "external_roc_points.csv"), fdir / "external_roc")
        paths += figures.external_calibration(_read(tdir / "external_calibration_bins.csv"),
                                              fdir / "external_calibration")
    return paths


def _read(path: Path) -> pd.DataFrame:
    try:
        return pd.read_csv(path)
    except pd.errors.EmptyDataError:
        return pd.DataFrame()


def flagged_notes(tables: dict[str, pd.DataFrame]) -> list[str]:
    """One line per flagged row of any table: what the model predicts."""
    notes = []
    for name, t in tables.items():
        if "flag" not in t:
            continue
        key = "model" if "model" in t else "variant"
        for r in t.to_dict("records"):
            if isinstance(r.get("flag"), str) and r["flag"]:
                notes.append(f"* `{name}` — **{r[key]}**: {r['flag']}")
    return notes


def write_readme(runs: list[Run], out: Path, tables: dict[str, pd.DataFrame],
                 skipped: list[str] | None = None, notes: list[str] | None = None) -> Path:
    """``<out>/README.md``: provenance, the tables and the figures, and how to reproduce them."""
    used = comparison_runs(runs)
    ref = used[0] if used else runs[0]
    s, cfg = ref.settings, ref.config
    finished = max(r.config.get("finished", "") for r in runs)
    devices = sorted({f"{r.config['device'].get('gpu', r.config['device'].get('cpu', ''))} "
                      f"({r.config['device']['device']})" for r in runs})
    engines = sorted({r.settings.get("engine", "reference") for r in runs})
    seeds = sorted({int(r.settings.get("seed", 0)) for r in runs})
    data_name = cfg["data"].get("name", s["data_kind"])
    data_arg = f" --data {ref.data_arg}" if ref.data_arg else ""
    profile = cfg["profile"]["name"]
    versions = sorted({r.settings.get("code_version", "unrecorded") for r in runs})
    aside = set_aside(runs)
    aside_note = f" ({len(aside)} of them in no table, listed below)" if aside else ""
    lines = [
        "# fus2bench results", "",
        "Generated by `python -m bench.report`; do not edit by hand.", "",
        f"* **Data**: {s['data_kind']} (`{data_name}`), split `{cfg['data']['split_source']}`"
        f" (manifest SHA-256 `{s['manifest_sha256'][:16]}…`)",
        f"* **Profile**: `{profile}` — {cfg['profile']['description']}; image size "
        f"{s['img_size']} px for Fus2Net, {s['epochs']} epochs, batch {s['batch_size']}, "
        f"{s['folds']} CV folds",
        f"* **Seeds**: {', '.join(map(str, seeds))} (every table aggregates over them)",
        f"* **Device(s)**: {', '.join(devices)}; torch {cfg['versions'].get('torch')}; training "
        f"engine(s): {', '.join(engines)}",
        f"* **Runs**: {len(runs)}{aside_note}, last finished {finished}; training-code version(s) "
        f"{', '.join(f'`{v}`' for v in versions)}; git revision(s) of the checkout that made "
        f"them: {_revisions(runs)}", "",
    ]
    warnings = provenance_warnings(runs) + [f"left out (--skip-invalid-runs): {n}"
                                            for n in skipped or []] + list(notes or [])
    if warnings:
        lines += ["**Warning:** " + "; ".join(warnings) + ".", ""]
    if aside:
        lines += ["## Runs in no table", "",
                  "Every configuration of a model is a row of its own; these runs are not:", "",
                  *[f"* `{name}`: {why}" for name, why in aside], ""]
    flags = flagged_notes(tables)
    if flags:
        lines += ["## Flagged rows (⚠): degenerate predictions", "",
                  "Their metrics are shown but their tests are not evidence:", "", *flags, ""]
    random_init = sorted({r.model for r in used
                          if r.config.get("model_config", {}).get("pretrained") == "imagenet"
                          and r.config.get("weights") == "random"})
    if random_init:
        lines += [f"**Not the published methods:** {', '.join(random_init)} trained from random "
                  "initialisation because ImageNet weights were unavailable; their rows say so.", ""]
    lines += [
        "## Held-out comparison (Table 3 analogue)", "",
        (out / "tables" / "table3_comparison.md").read_text(), "",
        "![ROC curves](figures/fig2_roc.png)", "",
        "![Confusion matrices](figures/confusion_matrices.png)", "",
        "### Calibration and prevalence", "",
        (out / "tables" / "table3_calibration.md").read_text(), "",
        "![Calibration](figures/calibration.png)", "",
        "![CV folds](figures/cv_folds.png)", "",
        "## The paper's Fus2Net experiments (chosen by cross-validation)", "",
    ]
    if "explanations" in tables:
        anchor = lines.index("## The paper's Fus2Net experiments (chosen by cross-validation)")
        notes = explanation_notes(tables["explanations"]) or [
            "No model's maps are at chance level in the lesion or carry the border-energy flag."]
        figure = ["![Explanations](figures/explanations.png)", ""] \
            if (tables["explanations"].n_measured > 0).any() else []
        lines[anchor:anchor] = ["## Where the models look (Grad-CAM)", "", *notes, "",
                                (out / "tables" / "explanations.md").read_text(), "", *figure]
    if "external_comparison" in tables:
        lines[lines.index("## The paper's Fus2Net experiments (chosen by cross-validation)"):
              lines.index("## The paper's Fus2Net experiments (chosen by cross-validation)")] = [
            "## External validation: internal vs external", "",
            (out / "tables" / "external_comparison.md").read_text(), "",
            "![Internal vs external ROC](figures/external_roc.png)", "",
            "![External calibration](figures/external_calibration.png)", ""]
    if "reliance" in tables:  # bench/evaluation/reliance.py
        anchor = lines.index("## The paper's Fus2Net experiments (chosen by cross-validation)")
        lines[anchor:anchor] = ["## Do the models read the annotations?", "",
                                (out / "tables" / "reliance.md").read_text(), "",
                                "![Reliance on annotations](figures/reliance.png)", ""]
    n_wrong = len(_read(out / "tables" / "fig3_misclassified.csv"))
    lines[lines.index("## The paper's Fus2Net experiments (chosen by cross-validation)"):
          lines.index("## The paper's Fus2Net experiments (chosen by cross-validation)")] = [
        "## Fus2Net's errors (Fig. 3 analogue)", "",
        f"{n_wrong} held-out images are misclassified by the seed-averaged Fus2Net "
        "(table: `tables/fig3_misclassified.md`).", "",
        "![Misclassified](figures/fig3_misclassified.png)", ""]
    if (out / "tables" / "fig5_augmentation.csv").is_file():  # committed, unlike the arrays
        lines[lines.index("## The paper's Fus2Net experiments (chosen by cross-validation)"):
              lines.index("## The paper's Fus2Net experiments (chosen by cross-validation)")] = [
            "## Preprocessing and augmentation (Fig. 5 and Fig. 6 analogues)", "",
            "![Augmentation](figures/fig5_augmentation.png)", "",
            "![Preprocessing](figures/fig6_preprocessing.png)", ""]
    for name in EXPERIMENTS:
        lines += [(out / "tables" / f"{name}.md").read_text(), ""]
    def seeds_of(rs: list[Run]) -> str:
        return ",".join(map(str, sorted({int(r.settings.get("seed", 0)) for r in rs})))

    compared = {id(r) for r in used}
    variants = [r for r in runs if id(r) not in compared]
    exp_arg = ""
    if variants:  # the experiments ran (their variant runs are not comparison runs)
        exp_arg = f" --experiments on --experiment-seeds {seeds_of(variants)}"
    groups: dict[str, list[str]] = {}  # models by the seeds they ran with: one command per group
    for model, rs in comparison_sets(runs):
        groups.setdefault(seeds_of(rs), []).append(model)
    commands = [f"./run_all.sh{data_arg} --profile {profile} --seeds {s_}{exp_arg} --models "
                f"{','.join(ms)}" for s_, ms in groups.items()]
    lines += ["![Optimizers](figures/fig1_optimizers.png)", "",
              "## Reproduce", "",
              "Each command trains what is missing (finished runs are reused), then reports:", "",
              "```bash", *commands,
              f"python -m bench.report --runs {_rel(ref.path.parent)} --out {_rel(out)}",
              "```", ""]
    return write_text(out / "README.md", "\n".join(lines))


def _revisions(runs: list[Run]) -> str:
    """Each git revision the runs were made from, with its number of runs (most first)."""
    counts: dict[str, int] = {}
    for r in runs:
        rev = str(r.config.get("git_revision", "unknown"))
        counts[rev] = counts.get(rev, 0) + 1
    return ", ".join(f"`{rev}` ({n} run{'s' if n > 1 else ''})"
                     for rev, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))


def _rel(p: Path) -> str:
    """``p`` relative to the project root when that is shorter (e.g. ``../shared/data/BUSI``)."""
    rel = os.path.relpath(p.resolve(), PROJECT_ROOT)
    return rel if len(rel) < len(str(p)) else str(p)


@cli_main
def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.report", description=__doc__.split("\n\n")[0])
    p.add_argument("--runs", type=Path, default=PROJECT_ROOT / "results" / "runs")
    p.add_argument("--out", type=Path, default=PROJECT_ROOT / "results")
    p.add_argument("--profile", default=None, help="report only runs of this profile")
    p.add_argument("--n-boot", type=number("--n-boot", above=True), default=2000,
                   help="bootstrap resamples for the AUC CI")
    p.add_argument("--seed", type=number("--seed"), default=0, help="bootstrap seed")
    p.add_argument("--figures-only", action="store_true", help="redraw figures from saved tables")
    p.add_argument("--skip-invalid-runs", action="store_true",
                   help="leave out runs whose outputs fail their recorded checksums (listed in "
                        "the README) instead of stopping")
    args = p.parse_args(argv)
    result = build_report(args.runs, args.out, ReportOptions(
        profile=args.profile, n_boot=args.n_boot, seed=args.seed, figures_only=args.figures_only,
        skip_invalid_runs=args.skip_invalid_runs))
    for note in result.warnings:
        print(f"warning: {note}", file=sys.stderr)
    print(f"wrote tables to {args.out / 'tables'}, {len(result.figures)} figure files to "
          f"{args.out / 'figures'} and {args.out / 'README.md'}")
    return 0


@dataclass(frozen=True)
class ReportOptions:
    """How a report is built: which runs (one profile), bootstrap size and seed, figures only."""
    profile: str | None = None
    n_boot: int = 2000
    seed: int = 0
    figures_only: bool = False
    skip_invalid_runs: bool = False


@dataclass(frozen=True)
class ReportResult:
    readme: Path | None
    figures: list[Path]
    warnings: list[str] = field(default_factory=list)


def build_report(runs_dir: Path, out: Path, options: ReportOptions = ReportOptions()) -> ReportResult:
    """Tables, figures and README of the finished runs in ``runs_dir``, written to ``out`` (the
    library call behind ``python -m bench.report``; the suite calls it after its runs)."""
    ensure_writable(out)
    if options.figures_only:
        return ReportResult(None, draw_figures(out))
    skipped: list[str] = []
    notes: list[str] = []
    runs = select_group(load_runs(runs_dir, options.skip_invalid_runs, skipped, notes),
                        options.profile)
    warnings = [f"left out: {n}" for n in skipped] + list(notes)
    warnings += [f"{name} is in no table: {why}" for name, why in set_aside(runs)]
    tables = write_tables(runs, out, options.n_boot, options.seed)
    warnings += provenance_warnings(runs)
    figures = draw_figures(out)
    return ReportResult(write_readme(runs, out, tables, skipped, notes), figures, warnings)

if __name__ == "__main__":
    sys.exit(main())
