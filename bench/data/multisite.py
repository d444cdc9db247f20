"""Several data sets ("sites") as one (docs/protocol.md, Several sites).

``--data A,B`` reads each site with its own reader and joins them: every image keeps its site as
the first part of its ID (``busi/benign (1)``, ``breast/case001``) and of its group (a patient ID
of one site never merges with another site's), and its path is made relative to the sites'
common folder, so one root serves the image cache, the content hash and the manifests. A site is
named after its folder (lower case), as an external set is; two sites of one name are refused.

Each site keeps its own split (:func:`union_manifest`): its committed manifest where it has one,
else one built for it alone, so the held-out test and the CV folds are drawn per site (stratified
by class within the site, grouped by its patients and lesions) and the union's fold *k* is every
site's fold *k*. Nothing of a site's test images enters the union's training set.
"""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path, PurePosixPath

import pandas as pd

from bench.core.errors import BenchError
from bench.data.index import DataIndex, Sample

SEP = "/"  # between the site and the image's own ID


def site_name(path: Path) -> str:
    """The name of a site (or external set) given as ``path``: its folder (or CSV stem), lower."""
    return (path.stem if path.is_file() else path.resolve().name).lower()


def site_paths(data: Path | None) -> list[Path] | None:
    """The sites of ``--data A,B`` (``None`` for one data set: a path that exists as given, even
    with a comma in its name, is one data set)."""
    if data is None or data.exists() or "," not in str(data):
        return None
    parts = [Path(p.strip()) for p in str(data).split(",") if p.strip()]
    if len(parts) < 2:
        raise BenchError(f"`data` {data}: give two or more data sets separated by commas")
    names = [site_name(p) for p in parts]
    for p in parts:
        if not p.exists():
            raise BenchError(f"`data` {data}: {p}: path does not exist")
    dup = next((n for n in names if names.count(n) > 1), None)
    if dup is not None:
        raise BenchError(f"`data` {data}: two sites are both called {dup!r} (a site is named "
                         "after its folder); give each site its own folder name")
    if len({p.resolve() for p in parts}) < len(parts):
        raise BenchError(f"`data` {data}: one data set is given twice")
    return parts


def common_root(roots: list[Path]) -> Path:
    return Path(os.path.commonpath([str(r.resolve()) for r in roots]))


def _rebase(rel: str, root: Path, common: Path) -> str:
    return PurePosixPath(os.path.relpath(root / rel, common)).as_posix()


def union_index(sites: list[tuple[str, DataIndex]]) -> DataIndex:
    """One index of several sites (module docstring); ``kind`` joins the site names (busi+breast)."""
    common = common_root([ix.root for _, ix in sites])
    samples: list[Sample] = []
    ignored: list[tuple[str, str]] = []
    for name, ix in sites:
        samples += [replace(
            s, id=f"{name}{SEP}{s.id}", path=_rebase(s.path, ix.root, common),
            group=f"{name}:{s.group}" if s.group else "",
            masks=tuple(_rebase(m, ix.root, common) for m in s.masks),
            findings=tuple(_rebase(m, ix.root, common) for m in s.findings)) for s in ix.samples]
        ignored += [(_rebase(p, ix.root, common), why) for p, why in ix.ignored]
    return DataIndex(kind="+".join(name for name, _ in sites), root=common, samples=samples,
                     ignored=ignored)


def union_manifest(sites: list[tuple[str, DataIndex, pd.DataFrame]], common: Path) -> pd.DataFrame:
    """The sites' own split manifests as one: IDs, paths and groups as :func:`union_index` has
    them; each site's test stays test and its fold *k* becomes the union's fold *k*."""
    frames = []
    for name, ix, manifest in sites:
        m = manifest.copy()
        m["id"] = name + SEP + m.id.astype(str)
        m["path"] = [_rebase(p, ix.root, common) for p in m.path]
        m["group"] = name + ":" + m.group.astype(str)
        frames.append(m)
    union = pd.concat(frames, ignore_index=True)
    train = union[union.split == "train"]
    if (train.fold == -1).any() and (train.fold >= 0).any():
        raise BenchError("`data`: one site's split has CV folds and another's has none; build "
                         "both with CV folds (python -m bench.split --folds K)")
    return union


def site_of(ids: pd.Series) -> pd.Series:
    """The site of each image ID of a several-site run (the part before the first ``/``)."""
    return ids.astype(str).str.split(SEP, n=1).str[0]
