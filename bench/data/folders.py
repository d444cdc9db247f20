"""Plain class folders and CSV manifests (docs/protocol.md, Data sets)."""

from __future__ import annotations

from pathlib import Path, PurePosixPath

from bench.core.errors import BenchError
from bench.data.images import is_image_name
from bench.data.index import (
    DataIndex,
    Sample,
    check_unique_ids,
    parse_label,
    read_class_folders,
    read_table,
)


def read_folders(root: Path) -> DataIndex:
    """``<root>/benign/*`` and ``<root>/malignant/*``, any PIL-readable type; IDs are ``cls/stem``."""
    return read_class_folders(root, kind="folder")


def read_csv_manifest(csv: Path) -> DataIndex:
    """A CSV with columns ``path,label[,group]``; paths are relative to the CSV's folder."""
    root = csv.parent.resolve()
    df = read_table(csv, ("path", "label"), "a manifest needs path,label[,group]", dtype=str,
                    keep_default_na=False)
    samples = []
    for row_no, row in enumerate(df.to_dict("records"), start=2):
        where = f"{csv} line {row_no}"
        raw = str(row["path"]).strip()
        full = (root / raw).resolve()
        if not full.is_relative_to(root):
            raise BenchError(f"{where}: path {raw!r} points outside the data root {root}; "
                             "keep images under the manifest's folder")
        if not full.is_file():
            raise BenchError(f"{where}: image {full} does not exist")
        if not is_image_name(full):
            raise BenchError(f"{where}: {raw!r} is not an image file name")
        rel = full.relative_to(root).as_posix()
        samples.append(Sample(id=str(PurePosixPath(rel).with_suffix("")), path=rel,
                              label=parse_label(row["label"], where),
                              group=str(row.get("group", "")).strip()))
    if not samples:
        raise BenchError(f"{csv}: the manifest lists no images")
    check_unique_ids(samples, csv)
    for label, name in enumerate(("benign", "malignant")):
        if not any(s.label == label for s in samples):
            raise BenchError(f"{csv}: class '{name}' has no images")
    return DataIndex(kind="csv", root=root, samples=samples)
