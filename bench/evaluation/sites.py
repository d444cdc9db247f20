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

import pandas as pd

from bench.core.errors import BenchError
from bench.core.paths import PROJECT_ROOT
from bench.data.datasets import detect_kind, load_index
from bench.data.index import DataIndex
from bench.data.multisite import site_name, site_of, union_index, union_manifest
from bench.evaluation.metrics import binary_metrics

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
        raise BenchError(f"`split` {o.split}: with several sites in --data each site uses its own "
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


MATRIX_CAPTION = ("AUC [95% CI] of each model trained on the row's sites, scored on each site: "
                  "its held-out test images where the row trained on it (pooled: all of the "
                  "row's sites' test images), every image of it (unchanged model, threshold "
                  "0.5) where the row did not train on it. Seed-averaged probabilities; "
                  "intervals cluster-aware (Obuchowski) over same-lesion groups and patients.")
