"""What the reliance table's intervals say (docs/protocol.md "Burnt-in annotations"), counted
from it: per image set, the range of ΔAUC when the marks are painted out and of the insertion
shifts, and in how many configurations each interval excludes 0 (each way). A pure function of
the saved table (:mod:`bench.reporting.sections.reliance`), so the words are the numbers'."""

from __future__ import annotations

import numpy as np
import pandas as pd

from bench.reporting.findings import excluding_zero, span, uncorrected

# (table columns: value, low, high; what it is; the word for each sign)
MEASURES = (
    (("delta_auc", "delta_lo", "delta_hi"), "painting the marks out changes AUC (as is − cleaned)",
     ("higher as is", "lower as is")),
    (("shift_benign_targets", "shift_benign_lo", "shift_benign_hi"),
     "malignant marks pasted on benign images move P(malignant)", ("up", "down")),
    (("shift_malignant_targets", "shift_malignant_lo", "shift_malignant_hi"),
     "benign marks pasted on malignant images move P(malignant)", ("up", "down")),
)


def _marked(value: str) -> tuple[int, int]:
    """``"32/50"`` → (32, 50); anything else (an older record without counts) → (0, 0)."""
    marked, _, total = str(value).partition("/")
    try:
        return int(marked), int(total)
    except ValueError:
        return 0, 0


def _measure(part: pd.DataFrame, columns: tuple[str, str, str], what: str,
             signs: tuple[str, str]) -> str | None:
    value, lo, hi = (part[c].to_numpy(dtype=float) for c in columns)
    have = ~np.isnan(value)
    if not have.any():
        return None
    value = value[have]
    up, down = excluding_zero(lo[have], hi[have])
    n = len(value)
    return (f"{what} by {span(value, '+.3f')}, the interval excluding 0 in "
            f"{up + down} of {n} ({up} {signs[0]}, {down} {signs[1]})")


def reliance_findings(table: pd.DataFrame, unit: str = "configuration") -> list[str]:
    """One bullet per image set of the reliance table (its order): how many images carry
    marks the detector finds, then each measure's range over the table's rows (``unit``: a
    configuration of seed-averaged runs, or a run where the table holds the runs one by one) and
    how many of their intervals exclude 0. A set without marks says so instead."""
    out, intervals = [], 0
    for name, part in table.groupby("set", sort=False):
        first = part.iloc[0]
        (mb, nb), (mm, nm) = _marked(first.marked_benign), _marked(first.marked_malignant)
        head = (f"* **{name}** ({int(first.images)} images; the detector finds marks on {mb} of "
                f"{nb} benign and {mm} of {nm} malignant; {len(part)} {unit}"
                f"{'s' if len(part) != 1 else ''})")
        if mb + mm == 0:
            out.append(f"{head}: no marks to paint out or paste, so nothing is measured here.")
            continue
        said = [s for cols, what, signs in MEASURES
                if (s := _measure(part, cols, what, signs)) is not None]
        out.append(f"{head}: " + ("; ".join(said) if said else "nothing measurable") + ".")
        intervals += sum(int(part[cols[0]].notna().sum()) for cols, _, _ in MEASURES)
    if out and intervals:
        out.append(uncorrected(intervals, "intervals", "no effect anywhere"))
    return out
