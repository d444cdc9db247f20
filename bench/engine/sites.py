"""Sites: the real data sets found beside the project, the external sets a suite scores by
default (docs/protocol.md, External validation), and several sites in one run (docs/protocol.md,
Several sites).

``bench.suite --external auto`` (the default) scores every comparison model, unchanged, on:

* the phantom's second site (``synthetic:B``) when it trains on the built-in phantom;
* every *other* real data set found in ``../shared/data`` (:func:`real_sites`: BUSI and
  BrEaST-Lesions_USG) when it trains on real data: a BUSI-trained model is scored on BrEaST and a
  BrEaST-trained one on BUSI, so the committed results show internal vs external for every model.

A phantom at another path (the tests' small phantoms) gets no default external set: scoring it on
hundreds of real images says nothing and costs minutes.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd

from bench.core.atomic import write_json
from bench.core.errors import BenchError
from bench.core.paths import CACHE_DIR, PROJECT_ROOT
from bench.data.copies import CopyConfig, Picture, find_copies, pictures
from bench.data.datasets import INFO, detect_kind, load_index
from bench.data.index import DataIndex
from bench.data.manifest import SplitConfig, check_leakage
from bench.data.multisite import site_name, site_of, union_index, union_manifest
from bench.engine.spec import RunOptions
from bench.engine.splits import resolve_split
from bench.stats.metrics import binary_metrics

log = logging.getLogger(__name__)

SHARED_DATA = PROJECT_ROOT.parent / "shared" / "data"
PHANTOM_KINDS = ("synthetic",)


def _kind(path: Path) -> str | None:
    try:
        return detect_kind(path)
    except BenchError:
        return None


def real_sites() -> tuple[str, ...]:
    """The folder names under :data:`SHARED_DATA` of the real data sets (each data set's ``site``
    in :data:`bench.data.datasets.INFO`), sorted."""
    return tuple(sorted(info.site for info in INFO.values() if info.site))


def present_sites(shared: Path = SHARED_DATA) -> list[Path]:
    """The real data sets of :func:`real_sites` that are here and readable as a known layout."""
    return [shared / name for name in real_sites()
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


def site_split(o: RunOptions, parts: list[Path], folds: int
               ) -> tuple[DataIndex, pd.DataFrame, dict | None, str]:
    """``--data A,B``: each site's own split (:func:`bench.engine.splits.resolve_split`: the
    site's committed manifest, else one built for it alone, refused when leaky), joined, with
    every copy of a picture at another site grouped with it (:func:`group_cross_site`). Returns
    the union index, the union manifest, the per-site split reports (and ``cross_site_copies``:
    what was grouped) and the split source."""
    if o.split is not None:
        raise BenchError(f"`split` {o.split}: with several sites in `data` each site uses its own "
                         "split (committed or built); leave `split` out")
    sites, reports, sources = [], {}, []
    for path in parts:
        name = site_name(path)
        index = load_index(path, o.dataset)
        manifest, report, source = resolve_split(replace(o, data=path), index, folds)
        sites.append((name, index, manifest))
        if report is not None:
            reports[name] = report
        sources.append(f"{name}: {source}")
    union = union_index([(name, index) for name, index, _ in sites])
    joined = union_manifest(sites, union.root)
    manifest, copies = group_cross_site(
        joined, cross_site_copies(union, joined, SplitConfig().hash_threshold))
    check_leakage(manifest, "the several-site split")
    log.info(f"several sites: {copies['pairs']} cross-site copies (one picture at two sites) "
             f"grouped with their original in {copies['groups']} group(s); "
             f"{copies['moved_to_test']} image(s) moved to the held-out test, "
             f"{copies['moved_fold']} to another CV fold, {copies['excluded']} excluded "
             "(labels differ)")
    return union, manifest, {**reports, "cross_site_copies": copies}, "; ".join(sources)


# Cross-site copies: the split's same-picture rule (identical pixels, dHash within the split's
# threshold) over every pair of images of two sites, plus the external scoring's keypoint match
# (a crop or rescale, bench/data/copies.py); computed once per set of files (by their paths,
# sizes and modification times), kept in this process and in datasets/cache/copies/.
_CROSS: dict[tuple, list[tuple[int, int, str]]] = {}
CROSS_CACHE = CACHE_DIR / "copies"


def cross_site_copies(index: DataIndex, manifest: pd.DataFrame, hash_threshold: int
                      ) -> list[tuple[int, int, str]]:
    """``(i, j, evidence)`` for each pair of manifest rows (positions) of two different sites that
    show one picture (docs/protocol.md, Several sites): identical pixels or a 256-bit dHash that
    differs in at most ``hash_threshold`` bits (the rule that groups one picture within a site,
    bench/data/manifest.py), or a keypoint match of a crop or rescaled copy
    (:func:`bench.data.copies.find_copies`, as external scoring finds copies). Undecodable images
    are left to the split's own rules."""
    rows = manifest.reset_index(drop=True)
    files = [index.root / p for p in rows.path]
    key = ("cross-site copies v1", repr(CopyConfig(hash_bits=hash_threshold)), *((str(f), f.stat().st_size, f.stat().st_mtime_ns) if f.is_file()
                             else (str(f),) for f in files))
    if key in _CROSS:
        return _CROSS[key]
    cached = CROSS_CACHE / f"{hashlib.sha256(repr(key).encode()).hexdigest()[:24]}.json"
    try:
        links = [(int(i), int(j), str(why)) for i, j, why in json.loads(cached.read_text())]
    except (OSError, ValueError, TypeError):
        links = _find_cross_site_copies(files, rows, hash_threshold)
        try:
            write_json(cached, [list(link) for link in links])
        except OSError:
            pass  # a read-only checkout still works, only slower
    if len(_CROSS) >= 4:
        _CROSS.pop(next(iter(_CROSS)))
    _CROSS[key] = links
    return links


def _find_cross_site_copies(files: list[Path], rows: pd.DataFrame, hash_threshold: int
                            ) -> list[tuple[int, int, str]]:
    pics = pictures(files)
    site = site_of(rows.id).to_numpy()
    links: list[tuple[int, int, str]] = []
    names = list(dict.fromkeys(site))
    for a, first in enumerate(names):
        for second in names[a + 1:]:
            ref = [k for k in np.nonzero(site == first)[0] if isinstance(pics[k], Picture)]
            new = [k for k in np.nonzero(site == second)[0] if isinstance(pics[k], Picture)]
            if not ref or not new:
                continue
            found: dict[tuple[int, int], str] = {}
            ref_bits = np.packbits(np.stack([pics[k].dhash for k in ref]), axis=1)
            digests = np.array([pics[k].digest for k in ref])
            for j in new:
                bits = np.unpackbits(np.packbits(pics[j].dhash)[None] ^ ref_bits, axis=1).sum(1)
                same = digests == pics[j].digest
                for r in np.nonzero(same | (bits <= hash_threshold))[0]:
                    found[(int(ref[r]), int(j))] = ("identical pixels" if same[r] else
                                                    f"dHash differs in {int(bits[r])} of 256 bits")
            for c in find_copies([pics[k] for k in new], [pics[k] for k in ref],
                                 CopyConfig(hash_bits=hash_threshold)):
                found.setdefault((int(ref[c.ref]), int(new[c.new])), c.evidence)
            links += [(i, j, why) for (i, j), why in sorted(found.items())]
    return links


def group_cross_site(manifest: pd.DataFrame, links: list[tuple[int, int, str]]
                     ) -> tuple[pd.DataFrame, dict]:
    """The joined manifest with every cross-site copy in one group with its original, as one
    site's split groups one picture (docs/protocol.md, Several sites): the sites' groups joined by
    ``links`` (:func:`cross_site_copies`) become one group, which is held out when any of its
    images is in its site's held-out test (a site's test set only grows), else trains in the CV
    fold of its first image in ``--data`` order, and is excluded when its labels differ. Returns
    the manifest and what was grouped (for the split report)."""
    rows = manifest.reset_index(drop=True).copy()
    n = len(rows)
    parent = list(range(n))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    def join(i: int, j: int) -> None:
        a, b = root(i), root(j)
        if a != b:
            parent[max(a, b)] = min(a, b)

    first: dict[str, int] = {}
    for i, g in enumerate(rows.group):
        join(i, first.setdefault(g, i))
    for i, j, _ in links:
        join(i, j)
    linked = {root(i) for i, _, _ in links}
    members: dict[int, list[int]] = {}
    for i in range(n):
        if root(i) in linked:
            members.setdefault(root(i), []).append(i)
    moved_test = moved_fold = excluded = 0
    for r, m in members.items():
        split, fold = rows.split.iloc[m].to_numpy(), rows.fold.iloc[m].to_numpy()
        if rows.label.iloc[m].nunique() > 1 or (split == "excluded").any():
            excluded += int((split != "excluded").sum())
            want_split, want_fold = "excluded", -1
        elif (split == "test").any():
            moved_test += int((split != "test").sum())
            want_split, want_fold = "test", -1
        else:
            want_split, want_fold = "train", int(fold[0])
            moved_fold += int((fold != want_fold).sum())
        rows.loc[m, "split"] = want_split
        rows.loc[m, "fold"] = want_fold
        rows.loc[m, "group"] = rows.group.iloc[r]
    ids = rows.id.tolist()
    return rows, {
        "rule": "identical pixels; 256-bit dHash within the split's threshold; ORB + RANSAC "
                "keypoint match (bench/data/copies.py)",
        "pairs": len(links), "groups": len(members), "moved_to_test": moved_test,
        "moved_fold": moved_fold, "excluded": excluded,
        "copies": [{"a": ids[i], "b": ids[j], "evidence": why} for i, j, why in links],
    }


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
