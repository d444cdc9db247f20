"""What every findings file shares (the sentences a report counts from a table's intervals,
written beside the table for pages to quote; docs/protocol.md "Metrics"): the degenerate flag,
the count of intervals that exclude 0, the note that those intervals are uncorrected, and the
writing of the file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from numpy.typing import ArrayLike

from bench.core.atomic import write_text

INTRO = "What the table's intervals say, counted from it:"


def flagged(value) -> bool:
    """A table's ``flag`` cell says the row's predictions are degenerate (a non-empty string)."""
    return isinstance(value, str) and bool(value)


def excluding_zero(lo, hi) -> tuple[int, int]:
    """How many intervals ``[lo, hi]`` lie above 0 and how many below (NaN counts in neither)."""
    lo, hi = np.asarray(lo, dtype=float), np.asarray(hi, dtype=float)
    return int(np.sum(lo > 0)), int(np.sum(hi < 0))


def uncorrected(n: int, unit: str, null: str) -> str:
    """The bullet that says ``n`` counted 95 % intervals are not corrected for their number."""
    return (f"* Each interval is a 95 % interval on its own, not corrected for the {n} {unit} "
            f"above: with {null}, about one in 20 would exclude 0 by chance.")


def span(values: ArrayLike, fmt: str = ".3f") -> str:
    """``low to high`` of ``values`` as shown (``fmt``), or the one value when both ends show
    alike (one row, or ties); NaN is left out."""
    values = np.asarray(values, dtype=float)
    values = values[~np.isnan(values)]  # as pandas' min and max: NaN left out
    if not len(values):
        return format(np.nan, fmt)
    low, high = format(values.min(), fmt), format(values.max(), fmt)
    return low if low == high else f"{low} to {high}"


def write_findings(path: Path, lines: list[str]) -> Path:
    """The findings file: one bullet per line (atomic, as every report file)."""
    return write_text(path, "\n".join(lines) + "\n")
