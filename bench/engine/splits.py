"""The split manifest a run uses (docs/protocol.md, Held-out test and cross-validation): the one
given, the data set's committed one, or one built now; refused when leaky. The same-lesion
evidence a built split needs is computed by one process at a time (:func:`evidence_lock`)."""

from __future__ import annotations

import hashlib
from contextlib import contextmanager

import pandas as pd

from bench.core.atomic import exclusive
from bench.core.paths import CACHE_DIR
from bench.core.provenance import portable
from bench.data.datasets import default_split
from bench.data.index import DataIndex
from bench.data.manifest import (
    SplitConfig,
    check_leakage,
    make_split,
    match_manifest,
    read_manifest,
)
from bench.engine.spec import RunOptions


@contextmanager
def evidence_lock(index: DataIndex):
    """One process at a time groups a data set's images (its same-lesion evidence is cached in
    ``datasets/cache/lesion/`` after, docs/protocol.md, Images that belong together): the jobs of
    a suite that ask at once wait for the first and read its cache instead of computing it
    again each. Where the cache folder cannot be written, nothing is locked (nor cached)."""
    key = hashlib.sha256(str(index.root.resolve()).encode()).hexdigest()[:16]
    lock = CACHE_DIR / "lesion" / f".{index.kind}-{key}.lock"
    try:
        lock.parent.mkdir(parents=True, exist_ok=True)
        lock.touch()
    except OSError:
        lock = None
    if lock is None:
        yield
        return
    with exclusive(lock, f"waiting: another process is grouping the images of {index.root} "
                         "(same-lesion evidence, cached after)"):
        yield


def resolve_split(o: RunOptions, index: DataIndex, folds: int
                  ) -> tuple[pd.DataFrame, dict | None, str]:
    """The manifest to use: given, committed default for the data set, or built now."""
    path = o.split if o.split is not None else default_split(index.kind)
    if path is not None and (o.split is not None or path.is_file()):
        manifest = read_manifest(path)
        match_manifest(manifest, index, f"`split`={path}")
        with evidence_lock(index):
            check_leakage(manifest, f"`split`={path}", index)
        return manifest, None, portable(path)
    # 10 manifest folds serve every K-fold run with K dividing 10 (stage_plan takes fold % K), so
    # the runs of one suite share one manifest; other K get a manifest of their own
    split_folds = folds if folds > 10 or (folds >= 2 and 10 % folds) else 10
    cfg = SplitConfig(test_per_class=o.test_per_class, folds=split_folds)
    with evidence_lock(index):
        manifest, report = make_split(index, cfg, skip_bad=o.skip_bad_images)
    check_leakage(manifest, "generated split")
    return manifest, report, "generated"
