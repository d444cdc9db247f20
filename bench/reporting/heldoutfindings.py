"""What the held-out comparison can tell (docs/protocol.md "Metrics"), counted from Table 3: the
range of the seed-mean AUC, how many contrasts with Fus2Net differ (each way) and how many show
no difference, and the smallest differences this test set detects. A pure function of the table
(:func:`bench.reporting.sections.heldout.comparison_table`, without the paper's row), whose
``verdict`` column is the one wording of a contrast (:func:`bench.stats.contrasts.verdict`)."""

from __future__ import annotations

import pandas as pd

from bench.engine.spec import REFERENCE
from bench.reporting.findings import flagged, span


def _named(part: pd.DataFrame, value: float, column: str = "auc") -> str:
    names = ", ".join(f"`{m}`" for m in part.model[part[column].round(3) == round(value, 3)])
    return f"{value:.3f} ({names})"


def heldout_findings(t3: pd.DataFrame, detects: str = "this test set detects") -> list[str]:
    """Two bullets: the AUC range over the configurations without degenerate predictions, then
    the contrasts against Fus2Net counted by their verdicts (quoting the verdicts' own words),
    with what the contrasts that show no difference cannot exclude and the minimum detectable
    ΔAUC (80 % power), as each verdict says it (``detects`` names what was scored). No contrast
    bullet without a Fus2Net row."""
    rows = t3[[not flagged(f) for f in t3.flag]] if "flag" in t3 else t3
    if rows.empty:
        return []
    out = [f"* **AUC, seed mean** over {len(rows)} configuration{'s' if len(rows) != 1 else ''}: "
           f"from {_named(rows, rows.auc.min())} to {_named(rows, rows.auc.max())}"
           + "".join(f"; Fus2Net {r.auc:.3f}" for r in rows[rows.model == REFERENCE].itertuples())
           + ("" if len(t3) == len(rows) else
              f"; {len(t3) - len(rows)} with degenerate predictions left out") + "."]
    if REFERENCE not in set(t3.model):
        return out
    contrasts = t3[t3.model != REFERENCE]
    said = pd.Series([v if isinstance(v, str) else "" for v in contrasts.get(
        "verdict", pd.Series([""] * len(contrasts)))], dtype=str, index=contrasts.index)
    higher = int(said.str.contains(": differs (higher)", regex=False).sum())
    lower = int(said.str.contains(": differs (lower)", regex=False).sum())
    shown_none = said.str.contains(": no difference shown", regex=False)
    untested = len(contrasts) - higher - lower - int(shown_none.sum())
    words = (f"* **Against Fus2Net** ({len(contrasts)} contrast{'s' if len(contrasts) != 1 else ''}"
             f", ΔAUC over matched seeds, Holm-adjusted; each worded under the table): "
             f"\"differs\" {higher + lower} ({higher} higher, {lower} lower), "
             f"\"no difference shown\" {int(shown_none.sum())}")
    if untested:
        words += f", not tested {untested} (degenerate predictions or no common seed)"
    quiet = contrasts[shown_none]
    if len(quiet) and {"delta_auc_vc_lo", "delta_auc_vc_hi"} <= set(quiet.columns):
        reach = quiet[["delta_auc_vc_lo", "delta_auc_vc_hi"]].abs().max(axis=1)
        words += (f"; where no difference is shown, differences up to {span(reach)} (by model) "
                  "cannot be excluded")
        mdd = quiet.get("delta_auc_mdd", pd.Series(dtype=float)).dropna()
        if len(mdd):
            words += f", and {detects} only |ΔAUC| ≥ {span(mdd)} (80 % power)"
    differ = contrasts.get("not_comparable", pd.Series(dtype=object))
    odd = [f"`{m}`" for m, d in zip(contrasts.model, differ, strict=False)
           if isinstance(d, str) and d]
    if odd:
        verb = "compares" if len(odd) == 1 else "compare"
        words += (f"; {len(odd)} of the contrasts {verb} a configuration that differs from the "
                  f"reference ({', '.join(odd)}; the table's Flag column says how)")
    return out + [words + "."]


def allimage_findings(every: pd.DataFrame, held: pd.DataFrame) -> list[str]:
    """The all-image table's bullets (docs/statistics.md, "Every image scored once"): those of
    :func:`heldout_findings` for every image, then, for the models contrasted with Fus2Net in
    both tables, what scoring every image bought: the width of the ΔAUC interval and the
    minimum detectable ΔAUC on every image beside the held-out test's, model by model."""
    out = heldout_findings(every, detects="these images detect")
    cols = ["model", "delta_auc_vc_lo", "delta_auc_vc_hi", "delta_auc_mdd"]
    if len(out) < 2 or not set(cols) <= set(every.columns) & set(held.columns):
        return out
    both = every[cols].merge(held[cols], on="model", suffixes=("", "_held")).dropna()
    both = both[both.model != REFERENCE]
    if both.empty:
        return out
    width = both.delta_auc_vc_hi - both.delta_auc_vc_lo
    held_width = both.delta_auc_vc_hi_held - both.delta_auc_vc_lo_held
    ratio = (width / held_width).median()
    n = len(both)
    return out + [
        f"* **Every image against the held-out test** ({n} contrast{'s' if n != 1 else ''} in "
        f"both tables): the ΔAUC interval is {span(width)} wide on every image and "
        f"{span(held_width)} on the held-out test (median ratio {ratio:.2f}); the minimum "
        f"detectable ΔAUC (80 % power) is {span(both.delta_auc_mdd)} on every image and "
        f"{span(both.delta_auc_mdd_held)} on the held-out test."]
