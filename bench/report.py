"""``python -m bench.report --runs DIR --out DIR``: every table and figure from saved runs (issue 4).

Reads run folders only (never trains). Tables go to ``<out>/tables/`` as CSV (raw numbers), Markdown
and LaTeX; figures are drawn from those saved CSVs into ``<out>/figures/`` (PNG + PDF), so
``--figures-only`` redraws them without the runs. ``<out>/README.md`` summarises it all. Output is
deterministic: the same runs give byte-identical files.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import pandas as pd

from bench import figures
from bench.atomic import write_csv, write_text
from bench.collect import Run, load_runs
from bench.errors import BenchError, cli_main
from bench.experiments import EXPERIMENTS
from bench.tablefmt import fmt, fmt_p, with_ci, write_table
from bench.tables import (
    PAPER_ROW,
    calibration_bins,
    comparison_runs,
    comparison_table,
    cv_folds,
    experiment_table,
    roc_points,
)

PROJECT_ROOT = Path(__file__).resolve().parents[1]


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


def table3_display(t: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for r in t.to_dict("records"):
        ok = not pd.isna(r.get("auc"))
        weights = r.get("weights", "—")
        auc_digits = 2 if r["model"] == PAPER_ROW["model"] else 3  # the paper reports 2 decimals
        rows.append({
            "Model": r["model"], "Weights": "random init" if weights == "random" else weights,
            "Params (M)": fmt(r.get("params_m"), 2), "GFLOPs": fmt(r.get("gflops"), 2),
            "Input": "—" if pd.isna(r.get("img_size")) else f"{int(r['img_size'])} px",
            **({k: with_ci(r.get(c), r.get(f"{c}_lo"), r.get(f"{c}_hi")) if ok and f"{c}_lo" in r
                and not pd.isna(r.get(f"{c}_lo")) else fmt(r.get(c))
                for k, c in (("Accuracy", "accuracy"), ("Sensitivity", "sensitivity"),
                             ("Specificity", "specificity"), ("PPV", "ppv"), ("NPV", "npv"))}),
            "F1": fmt(r.get("f1")),
            "AUC [DeLong 95% CI]": with_ci(r.get("auc"), r.get("auc_lo"), r.get("auc_hi"))
            if ok and not pd.isna(r.get("auc_lo")) else fmt(r.get("auc"), auc_digits),
            "AUC bootstrap CI": f"[{r['auc_boot_lo']:.3f}, {r['auc_boot_hi']:.3f}]"
            if ok and not pd.isna(r.get("auc_boot_lo")) else "—",
            "ΔAUC vs Fus2Net": fmt(r.get("delta_auc")),
            "DeLong p (Holm)": fmt_p(r.get("delong_p_holm")),
            "McNemar p": fmt_p(r.get("mcnemar_p")),
        })
        if not ok and r.get("status") == "failed":
            rows[-1]["Accuracy"] = "failed"
    return pd.DataFrame(rows)


def experiment_display(t: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for r in t.to_dict("records"):
        row = {"Variant": r["variant"], "Evaluated on": r["evaluated_on"]}
        for k in ("accuracy", "sensitivity", "specificity", "auc"):
            v, sd = r.get(k), r.get(f"{k}_sd")
            row[k.capitalize() if k != "auc" else "AUC"] = (
                f"{v:.3f} ± {sd:.3f}" if v is not None and not pd.isna(v) and sd is not None
                and not pd.isna(sd) else fmt(v))
        rows.append(row)
    return pd.DataFrame(rows)


def write_tables(runs: list[Run], out: Path, n_boot: int, seed: int) -> dict[str, pd.DataFrame]:
    tdir = out / "tables"
    t3 = comparison_table(runs, n_boot=n_boot, seed=seed)
    paper = pd.DataFrame([PAPER_ROW])
    write_table(pd.concat([t3, paper], ignore_index=True),
                table3_display(pd.concat([t3, paper], ignore_index=True)), tdir / "table3_comparison",
                "Held-out test set: metrics with 95% CIs (Wilson; AUC DeLong and stratified bootstrap), "
                "paired DeLong (Holm-corrected) and exact McNemar tests against Fus2Net. The last row is "
                "the paper's own result on different data.")
    write_csv(tdir / "roc_points.csv", roc_points(runs))
    write_csv(tdir / "calibration_bins.csv", calibration_bins(runs))
    write_csv(tdir / "cv_folds.csv", cv_folds(runs))
    tables = {"table3_comparison": t3}
    for name, exp in EXPERIMENTS.items():
        t = experiment_table(runs, name)
        write_table(t, experiment_display(t), tdir / name, exp["title"])
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
    return paths


def _read(path: Path) -> pd.DataFrame:
    try:
        return pd.read_csv(path)
    except pd.errors.EmptyDataError:
        return pd.DataFrame()


def write_readme(runs: list[Run], out: Path) -> Path:
    """``<out>/README.md``: provenance, the tables and the figures, and how to reproduce them."""
    ref = comparison_runs(runs)[0] if comparison_runs(runs) else runs[0]
    s, cfg = ref.settings, ref.config
    finished = max(r.config.get("finished", "") for r in runs)
    devices = sorted({f"{r.config['device'].get('gpu', r.config['device'].get('cpu', ''))} "
                      f"({r.config['device']['device']})" for r in runs})
    engines = sorted({r.settings.get("engine", "reference") for r in runs})
    data_arg = "" if s["data_kind"] == "synthetic" else f" --data {_rel(Path(cfg['data']['root']))}"
    profile = cfg["profile"]["name"]
    lines = [
        "# fus2bench results", "",
        "Generated by `python -m bench.report`; do not edit by hand.", "",
        f"* **Data**: {s['data_kind']} (`{cfg['data']['root']}`), split `{cfg['data']['split_source']}`"
        f" (manifest SHA-256 `{s['manifest_sha256'][:16]}…`)",
        f"* **Profile**: `{profile}` — {cfg['profile']['description']}; image size "
        f"{s['img_size']} px for Fus2Net, {s['epochs']} epochs, batch {s['batch_size']}, "
        f"{s['folds']} CV folds",
        f"* **Device(s)**: {', '.join(devices)}; torch {cfg['versions'].get('torch')}; training "
        f"engine(s): {', '.join(engines)}",
        f"* **Runs**: {len(runs)}, last finished {finished}; git revision of the reference run "
        f"`{cfg.get('git_revision', 'unknown')}`", "",
        "## Held-out comparison (Table 3 analogue)", "",
        (out / "tables" / "table3_comparison.md").read_text(), "",
        "![ROC curves](figures/fig2_roc.png)", "",
        "![Confusion matrices](figures/confusion_matrices.png)", "",
        "![Calibration](figures/calibration.png)", "",
        "![CV folds](figures/cv_folds.png)", "",
        "## The paper's Fus2Net experiments", "",
    ]
    for name in EXPERIMENTS:
        lines += [(out / "tables" / f"{name}.md").read_text(), ""]
    lines += ["![Optimizers](figures/fig1_optimizers.png)", "",
              "## Reproduce", "", "```bash",
              f"./run_all.sh{data_arg} --profile {profile}   # trains what is missing, then reports",
              f"python -m bench.report --runs {_rel(ref.path.parent)} --out {_rel(out)}",
              "```", ""]
    return write_text(out / "README.md", "\n".join(lines))


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
    p.add_argument("--n-boot", type=int, default=2000, help="bootstrap resamples for the AUC CI")
    p.add_argument("--seed", type=int, default=0, help="bootstrap seed")
    p.add_argument("--figures-only", action="store_true", help="redraw figures from saved tables")
    args = p.parse_args(argv)
    if not args.figures_only:
        runs = select_group(load_runs(args.runs), args.profile)
        write_tables(runs, args.out, args.n_boot, args.seed)
    paths = draw_figures(args.out)
    if not args.figures_only:
        write_readme(runs, args.out)
    print(f"wrote tables to {args.out / 'tables'}, {len(paths)} figure files to "
          f"{args.out / 'figures'} and {args.out / 'README.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
