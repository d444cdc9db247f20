"""Sites: the real data sets found beside the project, the external sets a suite scores by
default (docs/protocol.md, External validation), and several sites in one run (docs/protocol.md,
Several sites).

``bench.suite --external auto`` (the default) scores every comparison model, unchanged, on:

* the phantom's second site (``synthetic:B``) when it trains on the built-in phantom;
* every *other* real data set found in ``../shared/data`` (:data:`REAL_SITES`: BUSI and
  BrEaST-Lesions_USG) when it trains on real data: a BUSI-trained model is scored on BrEaST and a
  BrEaST-trained one on BUSI, so the committed results show internal vs external for every model.

A phantom at another path (the tests' small phantoms) gets no default external set: scoring it on
hundreds of real images says nothing and costs minutes.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd

from bench.core.errors import BenchError
from bench.core.paths import PROJECT_ROOT
from bench.core.provenance import from_portable
from bench.core.tablefmt import write_table
from bench.data.datasets import detect_kind, load_index
from bench.data.index import DataIndex
from bench.data.multisite import site_name, site_of, union_index, union_manifest
from bench.evaluation.clustered import obuchowski_auc
from bench.evaluation.metrics import binary_metrics
from bench.reporting.runs import Run, load_runs

SHARED_DATA = PROJECT_ROOT.parent / "shared" / "data"
REAL_SITES = ("BUSI", "BrEaST")  # folder names under SHARED_DATA
PHANTOM_KINDS = ("synthetic",)


def _kind(path: Path) -> str | None:
    try:
        return detect_kind(path)
    except BenchError:
        return None


def present_sites(shared: Path = SHARED_DATA) -> list[Path]:
    """The real data sets of :data:`REAL_SITES` that are here and readable as a known layout."""
    return [shared / name for name in REAL_SITES
            if (shared / name).is_dir() and _kind(shared / name) is not None]


def default_external(data: list[Path] | None, shared: Path = SHARED_DATA) -> list[str]:
    """The external sets ``--external auto`` scores for training data ``data`` (``None``: the
    built-in phantom). Sets of the training data's own kind and the training folders themselves
    are never among them."""
    if data is None:
        return ["synthetic:B"]
    kinds = {_kind(p) for p in data}
    if kinds & set(PHANTOM_KINDS) or None in kinds:
        return []
    trained = {p.resolve() for p in data}
    return [str(p) for p in present_sites(shared)
            if p.resolve() not in trained and _kind(p) not in kinds]


def resolve_external_option(value: str, data: list[Path] | None) -> list[str]:
    """``--external``: ``auto`` (:func:`default_external`), ``none``, or the sets as given."""
    if value == "auto":
        return default_external(data)
    if value == "none":
        return []
    return [x for x in value.split(",") if x]


# --- several sites in one run (bench/data/multisite.py) ---------------------------------------


def site_split(o, parts: list[Path], folds: int, resolve
               ) -> tuple[DataIndex, pd.DataFrame, dict | None, str]:
    """``--data A,B``: each site's own split (``resolve`` is :func:`bench.engine.runner.resolve_split`: the
    site's committed manifest, else one built for it alone, refused when leaky), joined. Returns
    the union index, the union manifest, the per-site split reports and the split source."""
    if o.split is not None:
        raise BenchError(f"--split {o.split}: with several sites in --data each site uses its own "
                         "split (committed or built); leave --split out")
    sites, reports, sources = [], {}, []
    for path in parts:
        name = site_name(path)
        index = load_index(path, o.dataset)
        manifest, report, source = resolve(replace(o, data=path), index, folds)
        sites.append((name, index, manifest))
        if report is not None:
            reports[name] = report
        sources.append(f"{name}: {source}")
    union = union_index([(name, index) for name, index, _ in sites])
    manifest = union_manifest(sites, union.root)
    return union, manifest, (reports or None), "; ".join(sources)


def per_site_metrics(preds: pd.DataFrame) -> dict:
    """Held-out test metrics of a several-site run, per site (the pooled ones are ``test``)."""
    test = preds[preds.split == "test"]
    out = {}
    for site, rows in test.groupby(site_of(test.id), sort=True):
        if rows.label.nunique() == 2:
            out[str(site)] = binary_metrics(rows.label, rows.prob_malignant)
    return out


# --- leave one site out: the matrix of trained-on × scored-on ----------------------------------


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
    from bench.reporting.tables import held_out_groups

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
    from bench.reporting.tables import comparison_sets  # the report's rows: one per configuration

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
