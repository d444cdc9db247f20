"""Choosing a lever against the site gap without the site it is scored on (docs/protocol.md,
"Closing the site gap"): leave-one-site-out over the *other* sites.

A lever (an augmentation policy, a BatchNorm adaptation, an input size, training sites) is
measured as its ΔAUC against the no-lever baseline of the same model on each target site. The
lever reported for target ``T`` is the one with the largest mean ΔAUC over the sites other than
``T`` (each other site counted once, a lever only when it was measured on all of them); the
numbers measured on ``T`` are removed before anything is compared, so they cannot change the
choice. Without another site the choice is the baseline, said so. A tie keeps the baseline, then
the first lever in name order.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import pandas as pd

BASELINE = "baseline"


@dataclass(frozen=True)
class Choice:
    """The lever chosen for ``target``, the sites it was chosen on and why, in words."""

    target: str
    lever: str
    sites: tuple[str, ...]
    score: float  # the chosen lever's mean ΔAUC over ``sites`` (NaN: no other site)
    reason: str


def choose_lever(results: pd.DataFrame, target: str, *, lever: str = "lever",
                 site: str = "site", value: str = "delta_auc",
                 baseline: str = BASELINE) -> Choice:
    """The lever for ``target`` chosen by leave-one-site-out on the other sites of ``results``
    (one row per lever and site with its ``value``, e.g. ΔAUC vs the baseline; the baseline's
    own rows, if any, count as 0). Rows of ``target`` are dropped first: the choice never reads
    them."""
    others = results.loc[results[site].astype(str) != str(target), [lever, site, value]]
    others = others[others[lever].astype(str) != baseline]
    sites = tuple(sorted(others[site].astype(str).unique()))
    if not sites:
        return Choice(target, baseline, (), math.nan,
                      f"no site other than {target} measured a lever, so the no-lever baseline "
                      f"(never chosen on {target})")
    table = others.assign(**{site: others[site].astype(str)}).groupby(
        [lever, site])[value].mean().unstack(site).reindex(columns=list(sites))
    complete = table.dropna()
    if complete.empty:
        return Choice(target, baseline, sites, math.nan,
                      f"no lever was measured on every other site ({', '.join(sites)}), so the "
                      f"no-lever baseline (never chosen on {target})")
    means = complete.mean(axis=1).sort_index(key=lambda ix: ix.astype(str))
    best = str(means.idxmax())
    score = float(means.max())
    where = ", ".join(sites)
    if not score > 0:
        return Choice(target, baseline, sites, 0.0,
                      f"leave-one-site-out on {where}: no lever raised the mean ΔAUC there "
                      f"(best {best}, {score:+.3f}), so the no-lever baseline (never chosen on "
                      f"{target})")
    return Choice(target, best, sites, score,
                  f"leave-one-site-out on {where}: the largest mean ΔAUC there ({score:+.3f}); "
                  f"never chosen on {target}")
