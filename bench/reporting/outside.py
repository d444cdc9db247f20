"""Outside predictions: the file a model not trained by this suite is scored from, checked against
a results set (docs/protocol.md, "Outside predictions").

The file is a CSV with one row per image: ``id`` and ``prob_malignant`` (P(malignant) in [0, 1]),
optionally ``label`` (must agree with the manifest), ``seed`` (several training seeds in one file;
without it the file is one seed, numbered 0), ``split``/``fold`` (``test``, or ``val`` with the CV
fold for out-of-fold predictions of training images) and ``path`` (ignored; the template has it).
A run's own ``predictions.csv`` is such a file. Every check that fails is one line naming the file;
nothing is scored from a file that fails one.

:func:`outside_runs` turns a checked file into one in-memory :class:`bench.engine.runfolder.Run` per seed, so
the report's own table functions compute its row exactly as they do for a trained model.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from bench.core.errors import BenchError, plain
from bench.core.provenance import file_sha256
from bench.data.manifest import read_manifest
from bench.engine.runfolder import Run, attach_groups
from bench.reporting.tables import comparison_runs
from bench.stats.metrics import binary_metrics

OUTSIDE = "outside predictions (not trained by this suite)"
REQUIRED = ("id", "prob_malignant")
OPTIONAL = ("label", "seed", "split", "fold", "path")
SPLITS = ("test", "val")
SHOWN = 3  # ids listed in a message


@dataclass(frozen=True)
class ResultsSet:
    """What outside predictions are checked against: a set's runs and the manifest they share."""

    runs: list[Run]
    manifest: pd.DataFrame
    manifest_sha256: str
    manifest_file: Path
    test_ids: tuple[str, ...]  # the held-out ids the set's models were scored on, sorted

    @property
    def data_kind(self) -> str:
        return str(self.runs[0].record.settings.data_kind or "")

    @property
    def profile(self) -> dict:
        return self.runs[0].record.profile


def results_set(runs: list[Run], runs_dir: Path) -> ResultsSet:
    """The manifest of ``runs`` (one data set, split and profile: :func:`bench.reporting.report.select_group`),
    read from a run's ``split.csv`` whose SHA-256 is the one the runs recorded."""
    shas = {r.record.settings.manifest_sha256 for r in runs}
    if len(shas) != 1:
        raise BenchError(f"`runs`={runs_dir}: the runs were made on {len(shas)} split manifests; "
                         "give `runs` a folder of one results set")
    sha = shas.pop()
    for r in runs:
        path = r.folder.split_file
        if path.is_file() and file_sha256(path) == sha:
            manifest = read_manifest(path)
            break
    else:
        raise BenchError(f"`runs`={runs_dir}: no run holds the split manifest its config.json "
                         f"records (split.csv with SHA-256 {str(sha)[:16]}…); the ids to predict "
                         "are unknown — rerun one of its runs")
    compared = [r for r in comparison_runs(runs) if len(r.test)] or [r for r in runs if len(r.test)]
    if not compared:
        raise BenchError(f"`runs`={runs_dir}: no run has held-out test predictions")
    return ResultsSet(runs, manifest, str(sha), path, tuple(sorted(compared[0].test.id)))


def template(rs: ResultsSet) -> pd.DataFrame:
    """The rows a predictions file must have: every held-out test id, P(malignant) to fill in."""
    m = rs.manifest.set_index("id")
    ids = list(rs.test_ids)
    return pd.DataFrame({"id": ids, "path": [m.path[i] for i in ids], "prob_malignant": ""})


# what an outside model may do with each id of the manifest (training_ids.csv's ``use``)
USES = {"train": "train", "test": "held out: never train or tune on it",
        "excluded": "excluded: not in the benchmark"}


def training_ids(rs: ResultsSet) -> pd.DataFrame:
    """Every id of the set's split manifest and what a model trained elsewhere may do with it, so
    that it follows the same split (docs/protocol.md, "Held-out test and cross-validation"):
    ``train`` rows, with their label, CV fold (the manifest's; a K-fold run uses fold mod K) and
    same-lesion group, to train and tune on; the held-out test rows never (their labels left
    out); excluded rows (label conflicts, unreadable images) not at all. Train rows first, then
    the held-out ones, then the excluded, each by id."""
    m = rs.manifest
    order = {part: k for k, part in enumerate(USES)}
    out = pd.DataFrame({"id": m.id.astype(str), "path": m.path,
                        "label": [int(lab) if part == "train" else "" for lab, part in
                                  zip(m.label, m.split, strict=True)],
                        "fold": [int(f) if part == "train" else "" for f, part in
                                 zip(m.fold, m.split, strict=True)],
                        "group": m.group if "group" in m else "",
                        "use": [USES.get(part, part) for part in m.split],
                        "_order": [order.get(part, len(order)) for part in m.split]})
    return out.sort_values(["_order", "id"], kind="stable").drop(columns="_order"
                                                                  ).reset_index(drop=True)


def _ids(values, total: int | None = None) -> str:
    shown = ", ".join(repr(v) for v in list(values)[:SHOWN])
    n = len(values) if total is None else total
    return shown + (f" and {n - SHOWN} more" if n > SHOWN else "")


def _read(path: Path) -> pd.DataFrame:
    where = f"`predictions`={path}"
    if not path.is_file():
        raise BenchError(f"{where}: file does not exist")
    try:
        df = pd.read_csv(path, dtype=str, keep_default_na=False)
    except pd.errors.EmptyDataError:
        raise BenchError(f"{where}: the file is empty; start from the template (written "
                         "with `template`)") from None
    except (OSError, ValueError) as exc:  # ParserError, UnicodeDecodeError
        raise BenchError(f"{where}: cannot read it as CSV ({type(exc).__name__}: "
                         f"{str(exc).strip().splitlines()[0]})") from None
    cols = [str(c).strip() for c in df.columns]
    unknown = [c for c in cols if c not in REQUIRED + OPTIONAL]
    if unknown:
        close = [c for c in REQUIRED + OPTIONAL if c.startswith(unknown[0].lower())] or \
            difflib.get_close_matches(unknown[0].lower(), REQUIRED + OPTIONAL, n=1)
        hint = f" (did you mean {close[0]}?)" if close else ""
        raise BenchError(f"{where}: unknown column(s) {', '.join(map(repr, unknown))}{hint}; the "
                         f"columns are {', '.join(REQUIRED)} and optionally {', '.join(OPTIONAL)}")
    missing = [c for c in REQUIRED if c not in cols]
    if missing:
        raise BenchError(f"{where}: no column {', '.join(missing)}; a predictions file has "
                         "id,prob_malignant (one row per held-out test image)")
    df.columns = cols
    if not len(df):
        raise BenchError(f"{where}: no rows; predict every id of the template (written "
                         "with `template`)")
    return df


def _integers(df: pd.DataFrame, col: str, where: str, rule: str, ok=lambda v: True,
              blank: int | None = None) -> np.ndarray:
    text = df[col].str.strip()
    values = pd.to_numeric(text.where(text != "", None), errors="coerce")
    if blank is not None:
        values = values.where(text != "", blank)
    bad = values.isna() | (values != values.round()) | ~values.apply(lambda v: v == v and ok(v))
    if bad.any():
        k = int(np.flatnonzero(bad.to_numpy())[0])
        raise BenchError(f"{where} line {k + 2}: {col} {df[col].iloc[k]!r} is not {rule} "
                         f"({int(bad.sum())} such row(s))")
    return values.to_numpy(dtype=int)


def read_predictions(path: Path, rs: ResultsSet) -> pd.DataFrame:
    """``path`` checked against ``rs`` (each failure one line): ``id, label, prob_malignant, seed,
    split, fold`` with the manifest's labels, sorted by seed, split and id."""
    where = f"`predictions`={path}"
    df = _read(path)
    df["id"] = df["id"].str.strip()
    text = df.prob_malignant.str.strip()
    prob = pd.to_numeric(text, errors="coerce").to_numpy(dtype=float)
    bad = ~np.isfinite(prob) | (prob < 0) | (prob > 1)
    if bad.any():
        k = int(np.flatnonzero(bad)[0])
        what = "empty" if text.iloc[k] == "" else f"{text.iloc[k]!r}, not a probability in [0, 1]"
        raise BenchError(f"{where} line {k + 2}: prob_malignant is {what} ({int(bad.sum())} such "
                         "row(s)); give P(malignant) between 0 and 1 — not a logit, a percentage "
                         "or a class")
    seed = _integers(df, "seed", where, "a seed (an integer >= 0)", lambda v: v >= 0) \
        if "seed" in df else np.zeros(len(df), dtype=int)
    split = df.split.str.strip().to_numpy(dtype=object) if "split" in df \
        else np.full(len(df), "test", dtype=object)
    wrong = ~np.isin(split, SPLITS)
    if wrong.any():
        k = int(np.flatnonzero(wrong)[0])
        raise BenchError(f"{where} line {k + 2}: split {split[k]!r} is not test or val (val: "
                         "out-of-fold CV predictions of training images, with their fold)")
    fold = _integers(df, "fold", where, "a CV fold (an integer >= -1)", lambda v: v >= -1,
                     blank=-1) if "fold" in df else np.full(len(df), -1)
    out = pd.DataFrame({"id": df["id"], "prob_malignant": prob, "seed": seed, "split": split,
                        "fold": fold})
    man = rs.manifest.set_index("id")
    known = out.id.isin(man.index).to_numpy()
    if not known.all():
        unknown = sorted(set(out.id[~known]))
        raise BenchError(f"{where}: {len(unknown)} unknown id(s), in no split of the manifest "
                         f"({_ids(unknown)}); use the ids of the template (written "
                         "with `template`)")
    out["label"] = man.label.reindex(out.id).to_numpy(dtype=int)
    if "label" in df:
        given = _integers(df, "label", where, "0 (benign) or 1 (malignant)", lambda v: v in (0, 1))
        differ = given != out.label.to_numpy()
        if differ.any():
            k = int(np.flatnonzero(differ)[0])
            raise BenchError(f"{where}: the label column disagrees with the manifest for "
                             f"{int(differ.sum())} id(s), e.g. {out.id.iloc[k]!r} (line {k + 2}: "
                             f"{given[k]}, manifest: {out.label.iloc[k]}); these predictions were "
                             "made for another split or labelling")
    _check_test_rows(out[out.split == "test"], rs, where)
    _check_seeds(out, where)
    _check_val_rows(out[out.split == "val"], man, where)
    return out.sort_values(["seed", "split", "id"], ignore_index=True)[
        ["id", "label", "prob_malignant", "seed", "split", "fold"]]


def _check_test_rows(test: pd.DataFrame, rs: ResultsSet, where: str) -> None:
    """Per seed, exactly the set's held-out test ids, each once."""
    if not len(test):
        raise BenchError(f"{where}: no held-out test rows (split test); predict every id of the "
                         "template (written with `template`)")
    expected = set(rs.test_ids)
    bad_fold = test[test.fold != -1]
    if len(bad_fold):
        raise BenchError(f"{where}: a held-out test row has fold {plain(bad_fold.fold.iloc[0])} "
                         f"(id {bad_fold.id.iloc[0]!r}); test rows have fold -1 or none")
    for s, rows in test.groupby("seed"):
        seeds = f" (seed {s})" if test.seed.nunique() > 1 or s != 0 else ""
        dup = rows.id[rows.id.duplicated()].unique()
        problems = []
        if len(dup):
            problems.append(f"{len(dup)} duplicate id(s) ({_ids(sorted(dup))})")
        extra = sorted(set(rows.id) - expected)
        if extra:
            problems.append(f"{len(extra)} extra id(s) that are not held-out test images of this "
                            f"set ({_ids(extra)})")
        missing = sorted(expected - set(rows.id))
        if missing:
            problems.append(f"{len(missing)} missing held-out test id(s) ({_ids(missing)})")
        if problems:
            raise BenchError(f"{where}{seeds}: " + "; ".join(problems) + f" — the {len(expected)} "
                             "ids are in the template (written with `template`)")


def _check_seeds(preds: pd.DataFrame, where: str) -> None:
    """Every seed has held-out test rows: a seed is one model, scored on the test set (Table 3);
    out-of-fold CV rows alone score nothing there."""
    tested = set(preds.seed[preds.split == "test"])
    only_val = sorted(int(s) for s in set(preds.seed) - tested)
    if only_val:
        n = int(preds.seed.isin(only_val).sum())
        raise BenchError(f"{where}: seed {_ids(only_val)} has val rows but no held-out test rows "
                         f"({n} row(s)); give every seed the test ids of the template (written "
                         "with `template`), or leave its CV rows out")


def _check_val_rows(val: pd.DataFrame, man: pd.DataFrame, where: str) -> None:
    """Out-of-fold rows: training images of the manifest, each once per seed, in the CV fold the
    manifest gives them (manifest fold f is fold f % K of a K-fold run)."""
    if not len(val):
        return
    split = man.split.reindex(val.id).to_numpy()
    if (split != "train").any():
        ids = sorted(set(val.id[split != "train"]))
        raise BenchError(f"{where}: {len(ids)} val row(s) of images that are not training images "
                         f"of the manifest ({_ids(ids)}); val rows are out-of-fold CV predictions")
    if (val.fold < 0).any():
        raise BenchError(f"{where}: val row {val.id[val.fold < 0].iloc[0]!r} has no CV fold; "
                         "give the fold of every val row")
    for s, rows in val.groupby("seed"):
        dup = rows.id[rows.id.duplicated()].unique()
        if len(dup):
            raise BenchError(f"{where} (seed {s}): {len(dup)} duplicate val id(s) "
                             f"({_ids(sorted(dup))})")
        k = int(rows.fold.max()) + 1
        expected = man.fold.reindex(rows.id).to_numpy(dtype=int) % k
        wrong = rows.fold.to_numpy() != expected
        if wrong.any():
            i = int(np.flatnonzero(wrong)[0])
            raise BenchError(f"{where} (seed {s}): {int(wrong.sum())} val row(s) in another CV "
                             f"fold than the manifest's, e.g. {rows.id.iloc[i]!r} in fold "
                             f"{rows.fold.iloc[i]} (manifest: fold {expected[i]} of {k}); CV "
                             "predictions must come from the set's folds")


def outside_runs(preds: pd.DataFrame, name: str, rs: ResultsSet) -> list[Run]:
    """One in-memory run per seed of checked outside predictions, labelled :data:`OUTSIDE`, that
    the report's table functions treat like a trained model's runs."""
    man = rs.manifest.set_index("id")
    runs = []
    for s, rows in preds.groupby("seed"):
        p = rows.assign(path=man.path.reindex(rows.id).to_numpy())[
            ["id", "path", "label", "prob_malignant", "split", "fold"]].reset_index(drop=True)
        p = attach_groups(p, rs.manifest)  # the same clusters as the set's own runs
        val = p[p.split == "val"]
        cv = pd.DataFrame([{"fold": int(k), "status": "ok",
                            **binary_metrics(f.label.to_numpy(), f.prob_malignant.to_numpy())}
                           for k, f in val.groupby("fold")])
        settings = {"model": name, "seed": int(s), "channels": 3, "augment": True,
                    "data_kind": rs.data_kind, "manifest_sha256": rs.manifest_sha256,
                    "outside": True}
        config = {"settings": settings, "status": "complete", "weights": OUTSIDE,
                  "model_stats": {}, "profile": rs.profile}
        runs.append(Run(Path(f"outside/{name}/seed-{int(s)}"), config, {}, p, cv,
                        split=rs.manifest))
    return runs
