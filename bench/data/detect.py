"""Layout auto-detection and the one entry point to read any supported data set (SPEC §5)."""

from __future__ import annotations

from pathlib import Path

from bench.data.busbra import looks_like_busbra, read_busbra
from bench.data.busi import looks_like_busi, read_busi
from bench.data.folders import read_csv_manifest, read_folders
from bench.data.index import DataIndex, read_class_folders
from bench.data.synthetic import MARKER, PhantomSpec, ensure_synthetic
from bench.errors import BenchError

KINDS = ("auto", "busi", "busbra", "folder", "csv", "synthetic")


def detect_kind(path: Path) -> str:
    """Guess the layout of ``path``; raise a clear error when none fits."""
    if path.is_file():
        if path.suffix.lower() == ".csv":
            return "csv"
        raise BenchError(f"--data {path}: a file must be a CSV manifest (path,label[,group])")
    if looks_like_busbra(path):
        return "busbra"
    if (path / MARKER).is_file():
        return "synthetic"
    if (path / "benign").is_dir() and (path / "malignant").is_dir():
        return "busi" if looks_like_busi(path) else "folder"
    raise BenchError(
        f"--data {path}: unknown layout; expected benign/ and malignant/ folders (BUSI or plain), "
        "bus_data.csv (BUS-BRA) or a CSV manifest (path,label[,group])"
    )


def load_index(data: Path | None, kind: str = "auto", synthetic: PhantomSpec | None = None) -> DataIndex:
    """Read the data set at ``data`` (``None``: the embedded synthetic phantom, generated once)."""
    if kind not in KINDS:
        raise BenchError(f"--dataset {kind!r} is not one of {', '.join(KINDS)}")
    if data is None:
        root = ensure_synthetic(synthetic or PhantomSpec())
        return read_class_folders(root, kind="synthetic")
    if not data.exists():
        raise BenchError(f"--data {data}: path does not exist")
    if kind == "auto":
        kind = detect_kind(data)
    elif kind != "csv" and not data.is_dir():
        raise BenchError(f"--data {data}: not a directory (--dataset {kind} expects a folder)")
    if kind == "csv":
        if not data.is_file():
            raise BenchError(f"--data {data}: --dataset csv expects a CSV file")
        return read_csv_manifest(data)
    root = data.resolve()
    readers = {"busi": read_busi, "busbra": read_busbra, "folder": read_folders,
               "synthetic": lambda r: read_class_folders(r, kind="synthetic")}
    return readers[kind](root)
