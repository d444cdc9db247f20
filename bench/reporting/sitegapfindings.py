"""What the site-gap table's intervals say (docs/protocol.md "Closing the site gap"), counted
from it: per lever, over every model and scored site, the range of ΔAUC against the same model
without a lever, how many intervals exclude 0 (each way, naming those cells; saying which come
from one training seed), the rows chosen without looking at the scored site, and the
calibration slope. A pure function of the saved table
(:func:`bench.reporting.sections.sitegap.site_gap_table`), so the words are the numbers'."""

from __future__ import annotations

import numpy as np
import pandas as pd

from bench.reporting.findings import span, uncorrected

BASELINE = "baseline"
CHOSEN = "chosen: "


def _cell(r) -> str:
    return (f"`{r.model}` on {r.target} {r.delta_auc:+.3f} [{r.delta_lo:+.3f}, "
            f"{r.delta_hi:+.3f}]")


def _lever(lever: str, part: pd.DataFrame) -> str:
    n = len(part)
    up = part[part.delta_lo > 0]
    down = part[part.delta_hi < 0]
    models, sites = part.model.nunique(), part.target.nunique()
    words = (f"* **{lever}** ({n} cell{'s' if n != 1 else ''}: {models} model"
             f"{'s' if models != 1 else ''} × {sites} scored site{'s' if sites != 1 else ''}): "
             f"ΔAUC {span(part.delta_auc, '+.3f')}; the interval "
             f"excludes 0 in {len(up) + len(down)} of {n}")
    for label, cells in (("higher", up), ("lower", down)):
        if len(cells):
            words += f"; {label}: " + ", ".join(_cell(r) for r in cells.itertuples())
    one = int((part.n_seeds == 1).sum()) if "n_seeds" in part else 0
    if one:  # a one-seed interval resamples patients only, so it is narrower than it should be
        which = "every cell" if one == n else f"{one} of the {n} cells"
        words += (f"; {which} from one training seed (ΔAUC against the same seed without a "
                  "lever), whose interval leaves out how much another seed would move it")
    return words + "."


def sitegap_findings(table: pd.DataFrame) -> list[str]:
    """One bullet for the models without a lever (their AUC range and calibration slope), one
    per lever (the table's order), and one for the rows chosen by leave-one-site-out."""
    table = table.assign(lever=table.lever.fillna("").astype(str))
    base = table[table.lever == BASELINE]
    out = []
    if len(base):
        out.append(f"* **without a lever** ({len(base)} cells): AUC on the site never trained on "
                   f"{span(base.auc)}; calibration slope {span(base.slope, '.2f')} "
                   "(1 = calibrated).")
    levers = table[(table.lever != BASELINE) & ~table.lever.str.startswith(CHOSEN)
                   & table.delta_auc.notna()]
    for lever in dict.fromkeys(levers.lever):
        out.append(_lever(lever, levers[levers.lever == lever]))
    if len(levers):
        out.append(uncorrected(len(levers), "cells", "no lever doing anything"))
    chosen = table[table.lever.str.startswith(CHOSEN)]
    if len(chosen):
        picks = sorted({f"`{r.model}` on {r.target}: {r.lever[len(CHOSEN):]}"
                        for r in chosen.itertuples()})
        out.append("* **chosen without looking at the scored site** (leave-one-site-out over the "
                   "other sites): " + "; ".join(picks) + ".")
    slopes = table[~table.lever.str.startswith(CHOSEN)].slope.to_numpy(dtype=float)
    slopes = slopes[~np.isnan(slopes)]
    if len(slopes):
        out.append(f"* **calibration on the site never trained on**: slope below 0.6 in "
                   f"{int(np.sum(slopes < 0.6))} of {len(slopes)} rows, the chosen ones not "
                   "counted twice (1 = calibrated).")
    return out
