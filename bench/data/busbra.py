"""BUS-BRA (Gómez-Flores et al. 2024) reader (docs/protocol.md, Data sets).

``<root>/bus_data.csv`` (``ID,Case,Histology,Pathology,BIRADS,Device,Width,Height,Side,BBOX``),
images ``Images/<ID>.png``, masks ``Masks/mask_<ID without 'bus_'>.png``. The patient (``Case``)
is the duplicate group, so one patient never straddles train/test or two folds (docs/protocol.md, Images that belong together).
"""

from __future__ import annotations

from pathlib import Path

from bench.core.errors import BenchError
from bench.data.index import DataIndex, Sample, check_unique_ids, parse_label, read_table

REQUIRED = ("ID", "Case", "Pathology")


def looks_like_busbra(root: Path) -> bool:
    return (root / "bus_data.csv").is_file()


def read_busbra(root: Path) -> DataIndex:
    """Index a BUS-BRA tree; a row whose image is missing is an error naming the file."""
    csv = root / "bus_data.csv"
    df = read_table(csv, REQUIRED, f"BUS-BRA needs {', '.join(REQUIRED)}", dtype=str)
    samples = []
    for row_no, row in enumerate(df.itertuples(index=False), start=2):
        image_id = str(row.ID).strip()
        rel = f"Images/{image_id}.png"
        if not (root / rel).is_file():
            raise BenchError(f"{root / rel}: image listed in {csv.name} (line {row_no}) is missing")
        mask = f"Masks/mask_{image_id.removeprefix('bus_')}.png"
        samples.append(Sample(
            id=image_id, path=rel, label=parse_label(row.Pathology, f"{csv} line {row_no}"),
            group=f"case:{str(row.Case).strip()}",
            masks=(mask,) if (root / mask).is_file() else (),
        ))
    check_unique_ids(samples, csv)
    return DataIndex(kind="busbra", root=root, samples=samples)
