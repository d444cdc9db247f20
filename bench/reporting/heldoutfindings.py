"""What the held-out comparison can tell (docs/protocol.md "Metrics"), counted from Table 3: the
range of the seed-mean AUC, how many contrasts with Fus2Net differ (each way) and how many show
no difference, and the smallest differences this test set detects. A pure function of the table
(:func:`bench.reporting.sections.heldout.comparison_table`, without the paper's row), whose
``verdict`` column is the one wording of a contrast (:func:`bench.stats.contrasts.verdict`)."""

from __future__ import annotations

import pandas as pd

from bench.engine.spec import REFERENCE


def _flagged(value) -> bool:
    return isinstance(value, str) and bool(value)


def _named(part: pd.DataFrame, value: float, column: str = "auc") -> str:
    names = ", ".join(f"`{m}`" for m in part.model[part[column].round(3) == round(value, 3)])
    return f"{value:.3f} ({names})"


def heldout_findings(t3: pd.DataFrame) -> list[str]:
    """Two bullets: the AUC range over the configurations without degenerate predictions, then
    the contrasts against Fus2Net counted by their verdicts, with the range of the minimum
    detectable ΔAUC (80 % power)."""
    rows = t3[[not _flagged(f) for f in t3.flag]] if "flag" in t3 else t3
    if rows.empty:
        return []
    out = [f"* **AUC, seed mean** over {len(rows)} configuration{'s' if len(rows) != 1 else ''}: "
           f"from {_named(rows, rows.auc.min())} to {_named(rows, rows.auc.max())}"
           + "".join(f"; Fus2Net {r.auc:.3f}" for r in rows[rows.model == REFERENCE].itertuples())
           + ("" if len(t3) == len(rows) else
              f"; {len(t3) - len(rows)} with degenerate predictions left out") + "."]
    contrasts = t3[t3.model != REFERENCE]
    said = pd.Series([v if isinstance(v, str) else "" for v in contrasts.get(
        "verdict", pd.Series([""] * len(contrasts)))], dtype=str)
    higher = int(said.str.contains(": differs (higher)", regex=False).sum())
    lower = int(said.str.contains(": differs (lower)", regex=False).sum())
    none = int(said.str.contains(": no difference shown", regex=False).sum())
    untested = len(contrasts) - higher - lower - none
    words = (f"* **Against Fus2Net** ({len(contrasts)} contrast{'s' if len(contrasts) != 1 else ''}"
             f", ΔAUC over matched seeds with Holm's correction): {higher + lower} differ "
             f"({higher} higher, {lower} lower), {none} show no difference")
    if untested:
        words += f", {untested} not tested (degenerate predictions or no common seed)"
    mdd = contrasts.delta_auc_mdd.dropna() if "delta_auc_mdd" in contrasts else pd.Series([])
    if len(mdd):
        words += (f"; the smallest |ΔAUC| this test set detects with 80 % power is "
                  f"{mdd.min():.3f} to {mdd.max():.3f}, depending on the model, so a smaller "
                  "true difference would likely go unseen")
    return out + [words + "."]
