"""The in-memory index every reader returns: samples with labels, groups and masks (docs/protocol.md, Data sets)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from bench.core.errors import BenchError, plain
from bench.data.images import is_image_name

CLASSES = ("benign", "malignant")  # label 0, 1 (malignant is the positive class, docs/protocol.md, Task)
_MASK = re.compile(r"^(?P<stem>.+)_mask(_\d+)?$")


@dataclass(frozen=True)
class Sample:
    """One image: ``path`` is relative to the data root (POSIX); ``group`` is a patient ID if known;
    ``masks`` outline the lesion, ``findings`` other findings in the image (never the lesion)."""

    id: str
    path: str
    label: int
    group: str = ""
    masks: tuple[str, ...] = ()
    findings: tuple[str, ...] = ()


@dataclass
class DataIndex:
    """A data set: its kind, absolute root, samples, and files that were ignored (with reasons)."""

    kind: str
    root: Path
    samples: list[Sample]
    ignored: list[tuple[str, str]] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        return {c: sum(s.label == i for s in self.samples) for i, c in enumerate(CLASSES)}

    def abspath(self, sample: Sample) -> Path:
        return self.root / sample.path


def read_table(path: Path, required: tuple[str, ...], needs: str, prefix: str = "",
               **read_kw) -> pd.DataFrame:
    """A CSV that must have ``required`` columns; an unreadable or incomplete file is one clear
    error (``prefix`` names the option it came from, e.g. `` `split` ``)."""
    where = f"{prefix} {path}" if prefix else str(path)
    try:
        df = pd.read_csv(path, **read_kw)
    except (OSError, ValueError) as exc:
        raise BenchError(f"{where}: cannot read CSV ({exc})") from None
    missing = [c for c in required if c not in df.columns]
    if missing:
        raise BenchError(f"{where}: missing column(s) {', '.join(missing)}; {needs}")
    return df


def parse_label(value: object, where: str) -> int:
    """'benign'/'malignant' (any case) or 0/1 → 0/1; anything else is a clear error."""
    text = str(value).strip().lower()
    if text in ("benign", "0"):
        return 0
    if text in ("malignant", "1"):
        return 1
    raise BenchError(f"{where}: unknown label {plain(value)!r}; use benign/malignant (or 0/1)")


def read_class_folders(root: Path, kind: str) -> DataIndex:
    """``<root>/{benign,malignant}/*``; ``<name>_mask[_k].*`` files are masks, never samples."""
    samples: list[Sample] = []
    ignored: list[tuple[str, str]] = []
    for label, cls in enumerate(CLASSES):
        folder = root / cls
        if not folder.is_dir():
            raise BenchError(f"{root}: class folder '{cls}/' is missing; expected {root}/benign and "
                             f"{root}/malignant (see the README's data sets for the supported layouts)")
        images: dict[str, str] = {}
        masks: dict[str, list[str]] = {}
        for f in sorted(folder.iterdir()):
            rel = f"{cls}/{f.name}"
            if f.name.startswith("."):
                continue
            check_file_name(f)
            if not f.is_file():
                if f.is_symlink():
                    ignored.append((rel, "link that leads to no file (broken, or a link loop)"))
                elif f.is_dir():
                    ignored.append((rel, "folder (class folders are not searched recursively)"))
                continue
            if not is_image_name(f):
                ignored.append((rel, "not an image file"))
                continue
            m = _MASK.match(f.stem)
            if m:
                masks.setdefault(m.group("stem"), []).append(rel)
            elif f.stem in images:
                raise BenchError(f"{folder}: {images[f.stem]!r} and {rel!r} share the name "
                                 f"{f.stem!r}; rename one (IDs and masks are matched by name)")
            else:
                images[f.stem] = rel
        for stem, rels in masks.items():
            if stem not in images:
                ignored.extend((r, "mask without image") for r in rels)
        if not images:
            raise BenchError(f"{folder}: class '{cls}' has no images; add images or check `data`")
        for stem, rel in images.items():
            samples.append(Sample(id=f"{cls}/{stem}" if kind == "folder" else stem, path=rel,
                                  label=label, masks=tuple(sorted(masks.get(stem, [])))))
    check_unique_ids(samples, root)
    return DataIndex(kind=kind, root=root, samples=samples, ignored=ignored)


def check_file_name(path: Path) -> None:
    """File names must be valid UTF-8: they become IDs in manifests and result files."""
    try:
        path.name.encode("utf-8")
    except UnicodeEncodeError:
        raise BenchError(f"{path.parent}: a file name is not valid UTF-8 "
                         f"({path.name.encode('utf-8', 'surrogateescape')!r}); rename the "
                         "file") from None


def check_unique_ids(samples: list[Sample], where: Path) -> None:
    """Raise a clear error if two samples share an ID."""
    seen: dict[str, str] = {}
    for s in samples:
        if s.id in seen:
            raise BenchError(f"{where}: duplicate image ID {s.id!r} ({seen[s.id]} and {s.path}); "
                             "IDs must be unique")
        seen[s.id] = s.path

