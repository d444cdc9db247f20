"""BrEaST-Lesions_USG (Pawłowska et al., Scientific Data 2024) reader (docs/protocol.md, Data sets).

The official distribution, file for file::

    <root>/BrEaST-Lesions_USG-images_and_masks/caseNNN.png         images (8-bit RGBA)
    <root>/BrEaST-Lesions_USG-images_and_masks/caseNNN_tumor.png   lesion masks
    <root>/BrEaST-Lesions_USG-images_and_masks/caseNNN_otherK.png  masks of other findings
    <root>/BrEaST-Lesions-USG-clinical-data-<date>.xlsx            one row per case (first sheet)

The spreadsheet names each case's files (``Image_filename``, ``Mask_tumor_filename``,
``Mask_other_filename``: several joined by ``&``) and its class (``Classification``: benign,
malignant or normal). ``CaseID`` is the patient and the group (one image per patient). Normal cases
are not part of the task and are listed as ignored. The tumour mask is the lesion (``masks``); the
other masks are other findings in the image (``findings``), never the lesion. The images are RGBA
with a transparent frame around the scan area; :func:`bench.data.images.read_image` composites
them over black and converts them to grey (their colour channels are not always identical).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from bench.core.errors import BenchError, plain
from bench.data.index import DataIndex, Sample, check_unique_ids

IMAGES = "BrEaST-Lesions_USG-images_and_masks"
SHEET_GLOB = "BrEaST-Lesions-USG-clinical-data*.xlsx"
REQUIRED = ("CaseID", "Image_filename", "Mask_tumor_filename", "Mask_other_filename",
            "Classification")
CLASSES = {"benign": 0, "malignant": 1}


def looks_like_breast(root: Path) -> bool:
    """True when ``root`` holds the official images-and-masks folder."""
    return (root / IMAGES).is_dir()


def spreadsheet(root: Path) -> Path:
    """The one clinical-data spreadsheet of the distribution (a clear error when it is missing or
    ambiguous)."""
    found = sorted(root.glob(SHEET_GLOB))
    if not found:
        raise BenchError(f"{root}: the BrEaST clinical-data spreadsheet ({SHEET_GLOB}) is "
                         "missing; restore it from the official distribution")
    if len(found) > 1:
        raise BenchError(f"{root}: several BrEaST clinical-data spreadsheets "
                         f"({', '.join(f.name for f in found)}); keep one")
    return found[0]


def read_sheet(path: Path) -> pd.DataFrame:
    """The spreadsheet's first sheet as text; unreadable or incomplete is one clear error."""
    try:
        df = pd.read_excel(path, sheet_name=0, dtype=str, engine="openpyxl")
    except ImportError:
        raise BenchError(f"{path}: reading .xlsx needs openpyxl; pip install openpyxl "
                         "(a dependency of fus2bench)") from None
    except (OSError, ValueError, KeyError) as exc:
        raise BenchError(f"{path}: cannot read the spreadsheet ({exc})") from None
    except Exception as exc:  # openpyxl raises zipfile/XML errors for a damaged file
        raise BenchError(f"{path}: cannot read the spreadsheet ({type(exc).__name__}: "
                         f"{exc}); restore it from the official distribution") from None
    missing = [c for c in REQUIRED if c not in df.columns]
    if missing:
        raise BenchError(f"{path}: missing column(s) {', '.join(missing)} in its first sheet; "
                         f"BrEaST's clinical data has {', '.join(REQUIRED)}")
    return df.fillna("")


def _files(cell: str) -> list[str]:
    return [f.strip() for f in str(cell).split("&") if f.strip()]


def read_breast(root: Path) -> DataIndex:
    """Index a BrEaST-Lesions_USG tree from its spreadsheet; a listed file that is missing or a
    class other than benign/malignant/normal is an error naming the row."""
    sheet = spreadsheet(root)
    df = read_sheet(sheet)
    folder = root / IMAGES
    samples: list[Sample] = []
    ignored: list[tuple[str, str]] = []
    listed: set[str] = set()
    for row_no, row in enumerate(df.to_dict("records"), start=2):
        where = f"{sheet.name} row {row_no}"
        case = str(row["CaseID"]).strip().removesuffix(".0")
        image = str(row["Image_filename"]).strip()
        if not case or not image:
            raise BenchError(f"{sheet}: row {row_no} has no CaseID or Image_filename; restore the "
                             "spreadsheet from the official distribution")
        files = [image, *_files(row["Mask_tumor_filename"]), *_files(row["Mask_other_filename"])]
        for name in files:
            if not (folder / name).is_file():
                raise BenchError(f"{folder / name}: listed in {where} but missing; restore it "
                                 "from the official distribution")
        listed.update(files)
        rel = f"{IMAGES}/{image}"
        cls = str(row["Classification"]).strip().lower()
        if cls == "normal":
            ignored.append((rel, "normal tissue (not part of the benign/malignant task)"))
            continue
        if cls not in CLASSES:
            raise BenchError(f"{sheet}: {where}: unknown Classification "
                             f"{plain(row['Classification'])!r}; expected benign, malignant or "
                             "normal")
        samples.append(Sample(
            id=Path(image).stem, path=rel, label=CLASSES[cls], group=f"case:{case}",
            masks=tuple(f"{IMAGES}/{m}" for m in _files(row["Mask_tumor_filename"])),
            findings=tuple(f"{IMAGES}/{m}" for m in _files(row["Mask_other_filename"]))))
    if not samples:
        raise BenchError(f"{sheet}: no benign or malignant cases listed")
    for f in sorted(folder.iterdir()):
        if f.name not in listed and not f.name.startswith("."):
            ignored.append((f"{IMAGES}/{f.name}", "not listed in the clinical-data spreadsheet"))
    check_unique_ids(samples, sheet)
    return DataIndex(kind="breast", root=root, samples=samples, ignored=ignored)
