"""External validation at a glance (docs/protocol.md "External validation"): one row per
configuration with the held-out test and each external set side by side, and the sentences that
count what the intervals of the full external table say. Pure functions of that table
(:func:`bench.reporting.sections.external.external_table`), so the words are computed from the
numbers they sit beside, never written by hand."""

from __future__ import annotations

import numpy as np
import pandas as pd

from bench.core.tablefmt import fmt, with_ci
from bench.reporting.findings import excluding_zero, flagged, span

# the summary's numbers, from the full table (its CSV; the display is external_summary's)
COLUMNS = ["model", "weights", "external_set", "n_external", "flag", "internal_auc",
           "internal_auc_lo", "internal_auc_hi", "external_auc", "external_auc_lo",
           "external_auc_hi", "delta_auc", "delta_auc_lo", "delta_auc_hi",
           "external_sensitivity", "external_specificity"]
CAPTION = ("External validation at a glance: AUC [95% CI] of the seed-averaged probabilities "
           "(the ensemble of each configuration's seeds), intervals clustered over the held-out "
           "test's same-lesion groups and the external set's patients (one image each where it "
           "has no patient IDs); ΔAUC = external − held-out test with its CI; sensitivity / "
           "specificity on the external set at the unchanged threshold 0.5. ⚠: degenerate "
           "predictions on that set (one class for nearly every image). Every other column is in "
           "external_comparison.csv.")


def external_summary(table: pd.DataFrame) -> pd.DataFrame:
    """The display frame: one row per configuration (the full table's order), the held-out
    test's AUC once, then per external set its AUC, ΔAUC and sensitivity / specificity."""
    if table.empty:
        return pd.DataFrame(columns=["Model", "Weights", "Held-out test AUC"])
    sets = list(dict.fromkeys(table.external_set))
    sizes = table.groupby("external_set").n_external.max().astype(int).to_dict()
    rows: dict[str, dict] = {}
    for r in table.to_dict("records"):
        row = rows.setdefault(r["model"], {
            "Model": r["model"], "Weights": r["weights"],
            "Held-out test AUC": with_ci(r["internal_auc"], r["internal_auc_lo"],
                                         r["internal_auc_hi"])})
        name, mark = r["external_set"], " ⚠" if flagged(r.get("flag")) else ""
        row[f"{name} (n = {sizes[name]}): AUC"] = with_ci(
            r["external_auc"], r["external_auc_lo"], r["external_auc_hi"]) + mark
        row[f"{name}: ΔAUC"] = with_ci(r["delta_auc"], r["delta_auc_lo"], r["delta_auc_hi"])
        row[f"{name}: sensitivity / specificity"] = (
            f"{fmt(r['external_sensitivity'], 2)} / {fmt(r['external_specificity'], 2)}")
    frame = pd.DataFrame(list(rows.values()))
    ordered = ["Model", "Weights", "Held-out test AUC"] + [
        c for name in sets for c in frame.columns if c.startswith(f"{name} (") or
        c.startswith(f"{name}:")]
    return frame[ordered].fillna("—")


def _signed(x: float) -> str:
    return f"{x:+.3f}"


def _extremes(part: pd.DataFrame, column: str) -> str:
    """``low (models) to high (models)`` of one column, at the two digits shown: every
    configuration that ties at an end is named; one value when both ends show alike."""
    shown = part[column].astype(float).round(2)

    def end(value: float) -> str:
        names = ", ".join(f"`{m}`" for m in part.model[shown == value])
        return f"{value:.2f} ({names})"

    if shown.min() == shown.max():
        return end(shown.min())
    return f"{end(shown.min())} to {end(shown.max())}"


def external_findings(table: pd.DataFrame) -> list[str]:
    """One bullet per external set, counted from the table: its images and how many copy a
    training image (the copy test); over every configuration with a defined ΔAUC (AUC ranks the
    scores, so degenerate rows count here too), how many have a lower AUC point estimate than on
    their held-out test, the median and range of ΔAUC and in how many ΔAUC's interval excludes
    0 (each way); then the range of sensitivity and specificity at the carried-over threshold,
    over the rows whose predictions are not degenerate (at that threshold they say nothing)."""
    out = []
    flags = table.get("flag", pd.Series([""] * len(table), index=table.index))
    for name, part in table.assign(flag=flags).groupby("external_set", sort=False):
        low, high = int(part.training_copies.min()), int(part.training_copies.max())
        copies = f"{low}" if low == high else f"{low} to {high} (by configuration)"
        head = (f"* **{name}** ({int(part.n_external.max())} images, {copies} of them "
                f"{'a copy' if high == 1 else 'copies'} of a training image's picture")
        undefined = int(part.delta_auc.isna().sum())
        if undefined:
            head += f"; {undefined} configuration{'s' if undefined != 1 else ''} with an " \
                    "undefined ΔAUC (one class only) left out"
        rated = part[part.delta_auc.notna()]
        if rated.empty:
            out.append(f"{head}): no configuration to count.")
            continue
        n = len(rated)
        delta = rated.delta_auc.to_numpy(dtype=float)
        above, below = excluding_zero(rated.delta_auc_lo, rated.delta_auc_hi)
        words = (f"{head}): {int(np.sum(delta < 0))} of {n} configurations have a lower AUC point "
                 f"estimate than on the held-out test (both from seed-averaged probabilities; "
                 f"median ΔAUC {_signed(float(np.median(delta)))}, from "
                 f"{span(delta, '+.3f')}); ΔAUC's "
                 f"interval excludes 0 in {below + above} of {n} ({below} lower, {above} higher).")
        clear = rated[[not flagged(f) for f in rated.flag]]
        degenerate = n - len(clear)
        if len(clear):
            words += (" At the threshold carried over from training, sensitivity runs from "
                      f"{_extremes(clear, 'external_sensitivity')} and specificity from "
                      f"{_extremes(clear, 'external_specificity')}")
            plural = "s" if degenerate != 1 else ""
            words += (f" ({degenerate} configuration{plural} with degenerate predictions (⚠) left "
                      "out of these two ranges)." if degenerate else ".")
        else:
            words += " Every configuration's predictions are degenerate at the threshold (⚠)."
        out.append(words)
    return out
