"""Score outside predictions on a results set's held-out test set (docs/protocol.md, "Outside
predictions"; the command is ``python -m bench.evaluate``, :mod:`bench.cli.evaluate`).

:func:`evaluate` checks a predictions file strictly against the set's split manifest
(:mod:`bench.reporting.outside`), then writes to ``out`` (never into the set unless ``out``
points there): the model's Table 3 row computed by the report's own functions
(:func:`bench.reporting.sections.heldout.comparison_table` over the set's runs plus the outside
ones), its AUC and ΔAUC vs Fus2Net with image-level and cluster-aware intervals (same-lesion
groups of the manifest: Obuchowski and a paired cluster bootstrap), the degenerate-prediction
flag, its ROC against Fus2Net's, its calibration, and ``leaderboard.md/csv``: the set's models and
this one, marked "outside predictions (not trained by this suite)". :func:`write_template` writes
the ids to predict.

``out`` is written all or nothing and locked meanwhile (:func:`bench.core.atomic.output_folder`):
only the files of :data:`EVALUATION_FILES` are written there; a folder holding folders (a results
set, a report, runs), another command's files or the evaluation of other predictions is refused,
and so is a second evaluation into the same folder at the same time once the first is published.
"""

from __future__ import annotations

import json
import logging
import math
import unicodedata
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from bench.core.atomic import output_folder, write_csv, write_json, write_text
from bench.core.errors import BenchError, ensure_writable
from bench.core.provenance import file_sha256, git_revision, package_versions, portable
from bench.core.tablefmt import fmt, fmt_p, with_ci, write_table, write_table_csv
from bench.engine.runfolder import Run
from bench.reporting import table3
from bench.reporting.outside import (
    OUTSIDE,
    ResultsSet,
    outside_runs,
    read_predictions,
    results_set,
    template,
    training_ids,
)
from bench.reporting.report import select_group
from bench.reporting.runs import load_runs
from bench.reporting.sections import calibration, heldout
from bench.reporting.sections.calibration import calibration_bins
from bench.reporting.sections.heldout import PAPER_ROW, comparison_table, per_seed_table, roc_points
from bench.reporting.tables import REFERENCE, comparison_sets
from bench.stats.clustered import cluster_bootstrap_delta, obuchowski_auc, obuchowski_delta
from bench.stats.metrics import degenerate_prediction
from bench.stats.stats import (
    bootstrap_auc_ci,
    cluster_bootstrap_auc,
    delong_ci,
    delong_test,
)

log = logging.getLogger(__name__)

SEED_MEAN = "ensemble of the seeds"
NAME_CHARS = 100  # a name is also a folder name (the default `out`): well under NAME_MAX

# Every file evaluate() writes into ``out`` (record last): what it replaces, and all it replaces.
EVALUATION_FILES = (
    "predictions.csv", "row.csv", "row.md", "row.tex", "row_per_seed.csv", "intervals.csv",
    "intervals.md", "intervals.tex", "leaderboard.csv", "leaderboard.md", "leaderboard.tex",
    "calibration.csv", "calibration.md", "calibration.tex", "roc.png", "roc.pdf", "roc_band.csv",
    "calibration_bins.csv", "calibration.png", "calibration.pdf", "README.md", "evaluation.json")
RECORD = "evaluation.json"


def safe_name(name: str) -> str:
    """``name`` stripped, when it can name a table row and a folder of its own: one path
    component (no ``/``, ``\\``, not ``.`` or ``..``, not hidden), no ``|`` (a Markdown cell), no
    control character, at most :data:`NAME_CHARS` characters."""
    name = name.strip()
    rule = (f"give a short model name (at most {NAME_CHARS} characters, no /, \\, |, newline or "
            "control character, not starting with a dot), e.g. mymodel-outside")
    if not name or name in (".", "..") or name.startswith(".") or len(name) > NAME_CHARS or \
            any(c in "|/\\" or unicodedata.category(c).startswith("C") for c in name):
        raise BenchError(f"`name` {name!r}: {rule}")
    return name


def _normal(label: str) -> str:
    """A row label as a reader tells labels apart: Unicode-normalised, case and spacing ignored."""
    return " ".join(unicodedata.normalize("NFKC", label).casefold().split())


def taken_names(rs: ResultsSet) -> dict[str, str]:
    """Every name the set's tables already use, normalised (:func:`_normal`) → as shown: each
    run's model, each Table 3 row label (a model's other configurations, e.g. ``resnet50
    (trained on cleaned images)``), Fus2Net and the paper's row."""
    names = [r.model for r in rs.runs] + [label for label, _ in comparison_sets(rs.runs)]
    names += [REFERENCE, PAPER_ROW["model"]]
    return {_normal(n): n for n in names}


def check_name(name: str, rs: ResultsSet) -> str:
    """``name`` (:func:`safe_name`) unless a row of the set already has it, or one that differs
    only in case, spacing or Unicode form: the tables would merge the two rows' seeds."""
    name = safe_name(name)
    clash = taken_names(rs).get(_normal(name))
    if clash is not None:
        same = "" if clash == name else f" ({clash!r}, which differs only in case or spacing)"
        raise BenchError(f"`name` {name!r}: the set already has a model or row of that "
                         f"name{same}; choose another name for the outside predictions (e.g. "
                         "mymodel-outside)")
    return name


def _labels_scores(runs: list[Run]) -> dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Per seed: test ids, labels and P(malignant), sorted by id."""
    return {r.seed: (r.test.id.to_numpy(), r.test.label.to_numpy(),
                                             r.test.prob_malignant.to_numpy(dtype=float))
            for r in runs if len(r.test)}


def interval_rows(outside: list[Run], reference: list[Run], groups: pd.Series, n_boot: int,
                  seed: int) -> pd.DataFrame:
    """The outside model's AUC with image-level (DeLong, stratified bootstrap) and cluster-aware
    (Obuchowski, cluster bootstrap) 95% intervals, and its paired ΔAUC against Fus2Net on the
    same images: per seed against Fus2Net's run of that seed, and on the seed-averaged
    probabilities of both. Tests are left blank for degenerate predictions (bench.stats.metrics)."""
    mine, ref = _labels_scores(outside), _labels_scores(reference)
    cases: list[tuple[str, tuple, tuple | None]] = []
    for s, v in sorted(mine.items()):
        cases.append((str(s), v, ref.get(s)))
    if len(mine) > 1 or len(ref) > 1:
        ids, y, _ = next(iter(mine.values()))
        mean = np.mean([v[2] for v in mine.values()], axis=0)
        ref_mean = (ids, y, np.mean([v[2] for v in ref.values()], axis=0)) if ref else None
        cases.append((SEED_MEAN, (ids, y, mean), ref_mean))
    rows = []
    for label, (ids, y, s), other in cases:
        g = groups.reindex(ids).astype(str).to_numpy()
        flag = degenerate_prediction(s)
        row: dict = {"seed": label, "n": len(y), "n_clusters": len(set(g)), "flag": flag}
        row["auc"], row["auc_delong_lo"], row["auc_delong_hi"] = delong_ci(y, s)
        row["auc_boot_lo"], row["auc_boot_hi"] = bootstrap_auc_ci(y, s, n_boot=n_boot, seed=seed)
        ob = obuchowski_auc(y, s, g)
        row["auc_obuchowski_lo"], row["auc_obuchowski_hi"] = ob.lo, ob.hi
        row["auc_cluster_boot_lo"], row["auc_cluster_boot_hi"], _ = cluster_bootstrap_auc(
            y, s, g, n_boot=n_boot, seed=seed)
        if other is not None:
            assert (other[0] == ids).all()  # the same test set (checked by per_seed_table)
            r_s = other[2]
            row["fus2net_auc"] = delong_ci(y, r_s)[0]
            row["delta_auc"] = row["auc"] - row["fus2net_auc"]
            if not flag:
                row["delong_p"] = delong_test(y, s, r_s)[1]
                d = obuchowski_delta(y, s, r_s, g)
                row["delta_obuchowski_lo"], row["delta_obuchowski_hi"] = d.lo, d.hi
                row["delta_obuchowski_p"] = d.p
                b = cluster_bootstrap_delta(y, s, r_s, g, n_boot=n_boot, seed=seed)
                row["delta_cluster_boot_lo"], row["delta_cluster_boot_hi"] = b.lo, b.hi
                row["delta_cluster_boot_p"] = b.p
        rows.append(row)
    cols = ["seed", "n", "n_clusters", "auc", "auc_delong_lo", "auc_delong_hi", "auc_boot_lo",
            "auc_boot_hi", "auc_obuchowski_lo", "auc_obuchowski_hi", "auc_cluster_boot_lo",
            "auc_cluster_boot_hi", "fus2net_auc", "delta_auc", "delong_p", "delta_obuchowski_lo",
            "delta_obuchowski_hi", "delta_obuchowski_p", "delta_cluster_boot_lo",
            "delta_cluster_boot_hi", "delta_cluster_boot_p", "flag"]
    return pd.DataFrame(rows).reindex(columns=cols)


def intervals_display(t: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for r in t.to_dict("records"):
        flagged = isinstance(r.get("flag"), str) and bool(r["flag"])
        blank = "— (degenerate)" if flagged else "—"
        rows.append({
            "Seed": r["seed"], "n (clusters)": f"{int(r['n'])} ({int(r['n_clusters'])})",
            "AUC [DeLong]": with_ci(r["auc"], r["auc_delong_lo"], r["auc_delong_hi"]),
            "[bootstrap]": f"[{fmt(r['auc_boot_lo'])}, {fmt(r['auc_boot_hi'])}]",
            "[Obuchowski, clustered]":
                f"[{fmt(r['auc_obuchowski_lo'])}, {fmt(r['auc_obuchowski_hi'])}]",
            "[cluster bootstrap]":
                f"[{fmt(r['auc_cluster_boot_lo'])}, {fmt(r['auc_cluster_boot_hi'])}]",
            "Fus2Net AUC": fmt(r["fus2net_auc"]),
            "ΔAUC vs Fus2Net": "—" if pd.isna(r["delta_auc"]) else f"{r['delta_auc']:+.3f}",
            "DeLong p": blank if pd.isna(r["delong_p"]) else fmt_p(r["delong_p"]),
            "ΔAUC [Obuchowski] p": blank if pd.isna(r["delta_obuchowski_p"]) else
                f"[{r['delta_obuchowski_lo']:+.3f}, {r['delta_obuchowski_hi']:+.3f}] "
                f"p {fmt_p(r['delta_obuchowski_p'])}",
            "ΔAUC [cluster bootstrap] p": blank if pd.isna(r["delta_cluster_boot_p"]) else
                f"[{r['delta_cluster_boot_lo']:+.3f}, {r['delta_cluster_boot_hi']:+.3f}] "
                f"p {fmt_p(r['delta_cluster_boot_p'])}",
            "Flag": r["flag"] if flagged else "",
        })
    return pd.DataFrame(rows)


def leaderboard(t3: pd.DataFrame, name: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The set's Table 3 rows and the outside one, ranked by mean test AUC over seeds (degenerate
    rows unranked, last); raw and display, each with its source."""
    t = t3.copy()
    t["source"] = np.where(t.model == name, OUTSIDE, "trained by this suite")
    flagged = t.flag.fillna("").astype(str).str.len() > 0
    t["_key"] = np.where(flagged | t.auc.isna(), -np.inf, t.auc.fillna(-np.inf))
    t = t.sort_values(["_key", "model"], ascending=[False, True], kind="stable").drop(columns="_key")
    ranked = ~(t.flag.fillna("").astype(str).str.len() > 0) & t.auc.notna()
    t.insert(0, "rank", [str(k + 1) if ok else "—" for k, ok in enumerate(ranked)])
    t = t.reset_index(drop=True)
    shown = table3.headline_display(t)
    shown.insert(0, "Rank", t["rank"])
    shown.insert(2, "Source", t.source)
    return t, shown


def calibration_rows(t3: pd.DataFrame, name: str) -> pd.DataFrame:
    """Fus2Net's and the outside model's calibration and prevalence columns of Table 3
    (:data:`bench.reporting.table3.CALIBRATION_COLUMNS`: Brier, slope, intercept with cluster-bootstrap
    intervals; PPV/NPV at 50 % and at the data set's prevalence)."""
    rows = t3[t3.model.isin([REFERENCE, name])]
    return rows.reindex(columns=table3.CALIBRATION_COLUMNS).reset_index(drop=True)


def _record(value):
    if isinstance(value, float | np.floating):
        return None if not math.isfinite(value) else float(value)
    if isinstance(value, np.integer):
        return int(value)
    return value


def refuse_out_in_runs(out: Path, runs_dir: Path) -> None:
    """``out`` inside ``runs_dir`` would be read as a run folder."""
    if out.resolve() == runs_dir.resolve() or runs_dir.resolve() in out.resolve().parents:
        raise BenchError(f"`out`={out}: inside `runs`={runs_dir}, where it would be read as a run "
                         "folder; choose a folder outside it")


def refuse_foreign_out(out: Path, name: str, sha: str) -> None:
    """What ``out`` may hold before an evaluation is written there (checked under its lock):
    nothing of another command (no folder: a results set, report or runs; none of
    :data:`EVALUATION_FILES` without their record) and no evaluation of other predictions; files
    of the user's own (a template, the predictions) are left alone."""
    folders = sorted(p.name for p in out.iterdir() if p.is_dir() and not p.name.startswith("."))
    if folders:
        raise BenchError(f"`out`={out}: holds folders ({', '.join(folders[:3])}): a results set, "
                         "report or runs, not an evaluation; choose a new or empty `out`")
    ours = [n for n in EVALUATION_FILES if (out / n).exists()]
    record = out / RECORD
    if not record.is_file():
        if ours:
            raise BenchError(f"`out`={out}: holds {', '.join(ours[:3])} but no {RECORD} (another "
                             "command's output, or an evaluation that did not finish); choose "
                             "another `out` or remove those files")
        return
    try:
        old = json.loads(record.read_text())
        old = old if isinstance(old, dict) else {}
    except (OSError, ValueError):
        old = {}
    sha_old = old.get("predictions", {}).get("sha256") if isinstance(old.get("predictions"),
                                                                      dict) else None
    if old.get("name") != name or sha_old != sha:
        raise BenchError(f"`out`={out}: holds the evaluation of other predictions "
                         f"({old.get('name', 'unreadable record')}); choose another `out` or "
                         "remove that folder")


@dataclass(frozen=True)
class Scored:
    """The outside model's numbers among the set's: every run, the per-seed and Table 3 rows,
    Fus2Net's runs and the manifest's groups, the intervals, leaderboard and calibration rows."""
    runs: list[Run]
    per_seed: pd.DataFrame
    t3: pd.DataFrame
    reference: list[Run]
    groups: pd.Series
    intervals: pd.DataFrame
    board: pd.DataFrame
    shown: pd.DataFrame
    cal: pd.DataFrame

    def row(self, name: str) -> pd.DataFrame:
        return self.t3[self.t3.model == name]


def score(rs: ResultsSet, mine: list[Run], name: str, n_boot: int, seed: int) -> Scored:
    """Table 3 over the set's runs and the outside ones (the report's own functions), with the
    outside model's intervals, the leaderboard and the calibration rows."""
    runs = rs.runs + mine
    per_seed = per_seed_table(runs, n_boot=n_boot, seed=seed)
    t3 = comparison_table(runs, n_boot=n_boot, seed=seed, per_seed=per_seed)
    reference = dict(comparison_sets(runs)).get(REFERENCE, [])
    groups = rs.manifest.set_index("id").group
    intervals = interval_rows(mine, reference, groups, n_boot, seed)
    board, shown = leaderboard(t3, name)
    return Scored(runs, per_seed, t3, reference, groups, intervals, board, shown,
                  calibration_rows(t3, name))


def write_outputs(out: Path, name: str, preds: pd.DataFrame, sc: Scored) -> None:
    """The predictions, the row, the intervals, the leaderboard, the calibration (tables) and the
    ROC and calibration figures against Fus2Net."""
    row = sc.row(name)
    write_csv(out / "predictions.csv", preds)
    write_table(row, table3.full_display(row), out / "row",
                f"{name}: {OUTSIDE}. Table 3 row computed by the report's functions over the set's "
                "runs and these predictions (ΔAUC, DeLong and McNemar against Fus2Net paired by "
                "seed; Holm's correction across every model of the leaderboard).")
    write_table_csv(out / "row_per_seed.csv", sc.per_seed[sc.per_seed.model == name])
    write_table(sc.intervals, intervals_display(sc.intervals), out / "intervals",
                f"{name}: test AUC with image-level (DeLong, stratified bootstrap) and "
                "cluster-aware 95% intervals (Obuchowski's clustered variance and a cluster "
                "bootstrap over the manifest's groups: same picture, patient or lesion), and ΔAUC "
                "against Fus2Net on the same images, per seed (against Fus2Net's run of that "
                "seed) and on the seed-averaged probabilities (an ensemble of the seeds, labelled so).")
    write_table(sc.board, sc.shown, out / "leaderboard",
                "Held-out test set of the results set, ranked by mean test AUC over seeds "
                "(degenerate rows unranked). Source says which models this suite trained and which "
                f"are {OUTSIDE}. Holm's correction runs across every model listed, so the set's "
                "own p-values can differ from its committed table. The paper's row (other data) "
                "is left out.")
    write_table(sc.cal, table3.calibration_display(sc.cal), out / "calibration",
                table3.CALIBRATION_CAPTION.format(prevalence=table3.prevalence_text(sc.t3)))
    # the figures' runs and their table rows are selected by one key: the Table 3 row label
    # (a model's other configurations, e.g. Fus2Net on cleaned images, are rows of their own)
    pair = [r for label, rs in comparison_sets(sc.runs) if label in (REFERENCE, name) for r in rs]
    band = heldout.roc_band_table(pair)
    write_table_csv(out / "roc_band.csv", band)
    heldout.roc_figure(roc_points(pair), sc.t3[sc.t3.model.isin([REFERENCE, name])], out / "roc",
                       band)
    bins = calibration_bins(pair)
    write_table_csv(out / "calibration_bins.csv", bins)
    calibration.calibration_figure(bins, out / "calibration")


def _records(t: pd.DataFrame) -> list[dict]:
    return [{k: _record(v) for k, v in r.items()} for r in t.to_dict("records")]


def evaluation_record(name: str, command: str, predictions: Path, preds: pd.DataFrame, sha: str,
                      rs: ResultsSet, runs_dir: Path, sc: Scored, mine: list[Run],
                      statistics: dict, notes: list[str]) -> dict:
    """What ``evaluation.json`` records: the file, the results set, the row, the intervals, the
    calibration, the CV folds, the statistics' settings and the versions."""
    raw = {k: _record(v) for k, v in sc.row(name).iloc[0].to_dict().items()}
    val = preds[preds.split == "val"]
    return {
        "name": name, "source": OUTSIDE, "command": command,
        "predictions": {"file": portable(predictions.resolve()), "sha256": sha,
                        "rows": len(preds), "seeds": sorted(int(s) for s in preds.seed.unique()),
                        "test_rows_per_seed": int((preds.split == "test").sum()
                                                  // preds.seed.nunique()),
                        "val_rows": len(val)},
        "results_set": {"runs": portable(runs_dir.resolve()), "data_kind": rs.data_kind,
                        "profile": rs.profile.get("name"), "manifest_sha256": rs.manifest_sha256,
                        "manifest_file": portable(rs.manifest_file.resolve()),
                        "test_images": len(rs.test_ids),
                        "test_groups": int(sc.groups.reindex(list(rs.test_ids)).nunique()),
                        "reference_seeds": sorted(r.seed
                                                  for r in sc.reference)},
        "row": raw, "degenerate": raw.get("flag") or "",
        "intervals": _records(sc.intervals), "calibration": _records(sc.cal),
        "cv": None if not len(val) else {
            "folds": int(val.fold.nunique()),
            "auc_per_fold": [_record(x) for x in mine[0].cv.auc]},
        "statistics": statistics,
        "versions": package_versions(), "git_revision": git_revision(), "notes": notes,
    }


def evaluate(predictions: Path, name: str, runs_dir: Path, out: Path, n_boot: int = 2000,
             seed: int = 0, profile: str | None = None, command: str = "") -> dict:
    """Check ``predictions`` against the set in ``runs_dir`` and write every output to ``out``;
    returns the record written as ``evaluation.json``."""
    notes: list[str] = []
    rs = results_set(select_group(load_runs(runs_dir, notes=notes), profile), runs_dir)
    for note in notes:
        log.warning(f"warning: {note}")
    name = check_name(name, rs)
    preds = read_predictions(predictions, rs)
    sha = file_sha256(predictions)
    refuse_out_in_runs(out, runs_dir)
    with output_folder(out, overwrite=True, parts=EVALUATION_FILES,
                       check=lambda path: refuse_foreign_out(path, name, sha),
                       remedy="choose another `out` or remove that folder") as build:
        mine = outside_runs(preds, name, rs)
        sc = score(rs, mine, name, n_boot, seed)
        write_outputs(build, name, preds, sc)
        record = evaluation_record(name, command, predictions, preds, sha, rs, runs_dir, sc,
                                   mine, {"n_boot": n_boot, "bootstrap_seed": seed}, notes)
        write_readme(build, name, record)
        write_json(build / RECORD, record)
    return record


def write_readme(out: Path, name: str, record: dict) -> Path:
    rs, p = record["results_set"], record["predictions"]
    lines = [f"# {name}: {OUTSIDE}", "",
             "Generated by `python -m bench.evaluate`; do not edit by hand.", "",
             f"* **Predictions**: `{p['file']}` (SHA-256 `{p['sha256'][:16]}…`), seeds "
             f"{', '.join(map(str, p['seeds']))}, {p['test_rows_per_seed']} held-out test images "
             f"per seed" + (f", {p['val_rows']} out-of-fold CV rows" if p["val_rows"] else ""),
             f"* **Results set**: `{rs['runs']}` ({rs['data_kind']}, profile `{rs['profile']}`), "
             f"split manifest SHA-256 `{rs['manifest_sha256'][:16]}…`, {rs['test_images']} test "
             f"images in {rs['test_groups']} groups of the manifest (same picture, patient or lesion)",
             f"* **Command**: `{record['command']}`", ""]
    if record["degenerate"]:
        lines += [f"**⚠ Degenerate predictions**: {record['degenerate']}; the tests below are not "
                  "evidence.", ""]
    for part in ("row", "intervals", "leaderboard", "calibration"):
        lines += [(out / f"{part}.md").read_text(), ""]
    lines += ["![ROC against Fus2Net](roc.png)", "", "![Calibration](calibration.png)", ""]
    return write_text(out / "README.md", "\n".join(lines))


def write_template(runs_dir: Path, out: Path, profile: str | None
                   ) -> tuple[Path, Path, ResultsSet]:
    """``<out>/predictions_template.csv``: the set's held-out test ids to predict; and beside it
    ``<out>/training_ids.csv``: every id of the set's split manifest with what a model trained
    elsewhere may do with it (train and tune on the ``train`` rows, by their CV fold and group;
    never on the held-out ones: :func:`bench.reporting.outside.training_ids`)."""
    rs = results_set(select_group(load_runs(runs_dir), profile), runs_dir)
    ensure_writable(out, "`out`")
    return (write_csv(out / "predictions_template.csv", template(rs)),
            write_csv(out / "training_ids.csv", training_ids(rs)), rs)


def summary(record: dict) -> str:
    r, name = record["row"], record["name"]
    mean = next((i for i in reversed(record["intervals"])), {})
    text = (f"{name} ({OUTSIDE}; {record['predictions']['test_rows_per_seed']} test images, "
            f"seeds {','.join(map(str, record['predictions']['seeds']))}): AUC "
            f"{fmt(r.get('auc'))}, accuracy {fmt(r.get('accuracy'))}, sensitivity "
            f"{fmt(r.get('sensitivity'))}, specificity {fmt(r.get('specificity'))}")
    if mean.get("auc_obuchowski_lo") is not None:
        text += (f"; AUC [{mean['seed'] if mean['seed'] == SEED_MEAN else 'seed ' + mean['seed']}]"
                 f" DeLong [{fmt(mean['auc_delong_lo'])}, {fmt(mean['auc_delong_hi'])}], "
                 f"clustered [{fmt(mean['auc_obuchowski_lo'])}, {fmt(mean['auc_obuchowski_hi'])}]")
    if r.get("verdict"):
        text += f"; ΔAUC vs Fus2Net on matched seeds — {r['verdict']}"
    elif r.get("delta_auc") is not None:
        text += f"; ΔAUC vs Fus2Net {r['delta_auc']:+.3f}"
    if record["degenerate"]:
        text += f"; ⚠ degenerate: {record['degenerate']}"
    return text
