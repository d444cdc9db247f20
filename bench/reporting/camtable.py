"""The explanation table: where each model looks, per image and then over images
(docs/protocol.md, "Where the models look").

Each run's ``cam_metrics.csv`` (bench.evaluation.explain) has one row per image with its status. Per model,
an image is *measured in all seeds* when every seed's map of it was measured, *in some seeds* when
at least one but not every seed's was; the measures are averaged over the images measured in all
seeds only (seeds averaged per image first, so three seeds of 100 images are 100 images, not 300),
so every image in a mean counts every seed. Intervals are over images with the images' clusters
(same lesion or patient) as the units: a cluster-robust standard error of the mean. Files written
before the status existed say so: their maps' resolution was never checked, so nothing in them is
measured.

The border-energy flag is calibrated on a set without burnt-in marks (:data:`UNMARKED`, the
synthetic phantom: calipers and labels never drawn), where the same model's frame energy ratio is
what its maps put in the frame band for reasons other than marks (image edges, shadows, padding).
A set is flagged when its frame energy ratio's interval lies above 1 (more energy in the band, the
outer ``BAND`` of each side, than its share of the image) and the ratio exceeds that model's ratio
on the unmarked set by more than the difference's 95% interval (the two means' cluster-robust
errors combined, the sets being independent images): more frame energy than chance and than the
model gives images without marks. Where the model has no unmarked set, the first condition alone,
said so (uncalibrated).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from bench.evaluation.camlayer import EMPTY, MEASURED, NOT_MEASURABLE
from bench.stats.contrasts import groups_of
from bench.stats.localization import BAND, frame_band
from bench.stats.metrics import THRESHOLD

UNRECORDED = "not measurable (resolution unrecorded)"
UNMARKED = "synthetic-"  # prefix of the phantom's sets: images without burnt-in marks
MEASURES = (("pointing_hit", True), ("lesion_energy_ratio", False), ("frame_energy_ratio", False))


def clustered_mean_se(values, groups) -> tuple[float, float]:
    """Mean of ``values`` (NaNs left out) and its cluster-robust standard error
    ``sqrt(G/(G-1) · Σ_g (Σ_{i∈g} (x_i − x̄))²) / n`` over the G clusters of ``groups`` (NaN
    with fewer than two clusters)."""
    v = np.asarray(values, dtype=float)
    g = np.asarray(groups).astype(str)
    keep = ~np.isnan(v)
    v, g = v[keep], g[keep]
    if len(v) == 0:
        return math.nan, math.nan
    mean = float(v.mean())
    _, inv = np.unique(g, return_inverse=True)
    n_cl = int(inv.max()) + 1
    if n_cl < 2:
        return mean, math.nan
    sums = np.bincount(inv, weights=v - mean)
    return mean, math.sqrt(n_cl / (n_cl - 1) * float((sums ** 2).sum())) / len(v)


def clustered_mean_ci(values, groups, level: float = 0.95, bounds: tuple | None = None
                      ) -> tuple[float, float, float]:
    """Mean of ``values`` (NaNs left out) and its normal interval with the cluster-robust
    standard error (:func:`clustered_mean_se`); ``bounds`` clips the interval (e.g. (0, 1) for
    a rate)."""
    from scipy import stats

    mean, se = clustered_mean_se(values, groups)
    if math.isnan(se):
        return mean, math.nan, math.nan
    z = stats.norm.ppf(0.5 + level / 2)
    lo, hi = mean - z * se, mean + z * se
    if bounds is not None:
        lo, hi = max(bounds[0], lo), min(bounds[1], hi)
    return mean, lo, hi


def _status(frame: pd.DataFrame) -> pd.Series:
    if "status" in frame:
        return frame["status"].fillna(UNRECORDED).astype(str)
    return pd.Series(UNRECORDED, index=frame.index)


def per_image(frames: list[pd.DataFrame], groups: dict[str, dict[str, str]]) -> pd.DataFrame:
    """One row per (set, image) over the seeds' ``frames``: label, seed-mean P(malignant), status
    (measured when any seed's map was; else empty map when any was; else not measurable), the
    number of seeds that scored it and whose map was measured (``n_seeds``,
    ``n_seeds_measured``), the measures averaged over the measured seeds, map size(s), layer(s)
    and the image's cluster."""
    cam = pd.concat([f.assign(status=_status(f)) for f in frames], ignore_index=True)
    for col, _ in MEASURES:
        if col not in cam:
            cam[col] = np.nan
        cam.loc[cam.status != MEASURED, col] = np.nan
    for col in ("map_size", "layer"):
        if col not in cam:
            cam[col] = "unrecorded"
    cam["has_mask"] = cam.has_mask.astype(bool)
    rank = {MEASURED: 0, EMPTY: 1, NOT_MEASURABLE: 2, UNRECORDED: 3}
    cam["rank"] = cam.status.map(rank).fillna(3)
    cam["is_measured"] = (cam.status == MEASURED).astype(int)
    out = cam.groupby(["set", "id"], sort=False).agg(
        label=("label", "first"), prob_malignant=("prob_malignant", "mean"),
        has_mask=("has_mask", "max"), rank=("rank", "min"),
        n_seeds=("status", "size"), n_seeds_measured=("is_measured", "sum"),
        map_size=("map_size", lambda s: ",".join(sorted(set(map(str, s))))),
        layer=("layer", lambda s: ",".join(sorted(set(map(str, s))))),
        **{col: (col, "mean") for col, _ in MEASURES}).reset_index()
    out["status"] = out["rank"].map({v: k for k, v in rank.items()})
    out["correct"] = (out.prob_malignant >= THRESHOLD).astype(int) == out.label
    out["group"] = [groups.get(s, {}).get(str(i), "") for s, i in zip(out.set, out.id,
                                                                        strict=True)]
    out["group"] = groups_of(out)
    return out.drop(columns="rank")


def explanation_rows(sets: list[tuple[str, list]], read) -> pd.DataFrame:
    """Per model of ``sets`` (``(label, runs)``), image set and subgroup (all, correct, wrong by
    the seed-mean prediction, benign, malignant): n images, n measured, n empty, n not measurable,
    map size and layer, and the mean [clustered 95% CI] over measured images of the pointing-game
    hit rate and the lesion and frame energy ratios, with the border-energy flag. ``read(run)``
    gives a run's ``cam_metrics.csv`` frame or ``None``."""
    rows = []
    for model, rs in sets:
        frames, groups = [], {}
        for r in rs:
            f = read(r)
            if f is None:
                continue
            frames.append(f)
            groups.setdefault("test", {}).update(
                dict(zip(r.test.id.astype(str), r.test.group.astype(str), strict=True))
                if "group" in r.test else {})
            for name, (ext, _) in r.external.items():
                if "group" in ext:
                    groups.setdefault(name, {}).update(
                        dict(zip(ext.id.astype(str), ext.group.astype(str), strict=True)))
        if not frames:
            continue
        images = per_image(frames, groups)
        for name, part in images.groupby("set", sort=False):
            subsets = {"all": part, "correct": part[part.correct], "wrong": part[~part.correct],
                       "benign": part[part.label == 0], "malignant": part[part.label == 1]}
            if not (part.status == MEASURED).any():  # nothing measured: one row says so
                subsets = {"all": part}
            for subset, g in subsets.items():
                any_seed = g[g.status == MEASURED]
                measured = any_seed[any_seed.n_seeds_measured >= len(frames)]
                row: dict = {"model": model, "set": name, "images": subset, "n": len(g),
                             "n_measured": len(measured),
                             "n_measured_some": len(any_seed) - len(measured),
                             "n_empty": int((g.status == EMPTY).sum()),
                             "n_not_measurable": int(g.status.isin(
                                 [NOT_MEASURABLE, UNRECORDED]).sum()),
                             "unrecorded": bool((g.status == UNRECORDED).any()),
                             "n_seeds": len(frames),
                             "with_mask": int(measured.has_mask.sum()),
                             "map_size": ",".join(sorted(set(",".join(g.map_size).split(","))))
                             if len(g) else "",
                             "layer": ",".join(sorted(set(",".join(g.layer).split(","))))
                             if len(g) else ""}
                for col, binary in MEASURES:
                    row[col], row[f"{col}_lo"], row[f"{col}_hi"] = clustered_mean_ci(
                        measured[col], measured.group, bounds=(0, 1) if binary else None)
                row["frame_energy_ratio_se"] = clustered_mean_se(measured.frame_energy_ratio,
                                                                 measured.group)[1]
                rows.append(row)
    return calibrate_border_flag(pd.DataFrame(rows))


def calibrate_border_flag(t: pd.DataFrame, level: float = 0.95) -> pd.DataFrame:
    """The border-energy flag of each row (module docstring): against the same model's unmarked
    set (same image subset) where it has one: ``frame_excess`` (this set's frame energy ratio
    minus the unmarked set's) and its interval, flagged when the interval lies above 0, with
    ``flag_basis`` naming the reference, flagged when that interval and the ratio's interval
    minus 1 both lie above 0; else uncalibrated (the ratio's interval above 1 alone). The unmarked
    set itself is the reference, never flagged."""
    from scipy import stats

    if not len(t):
        return t
    z = stats.norm.ppf(0.5 + level / 2)
    ref = t[t.set.astype(str).str.startswith(UNMARKED)]
    ref = {(r.model, r.images): r for r in ref.itertuples() if r.n_measured}
    excess, lo, hi, basis, flag = [], [], [], [], []
    for r in t.itertuples():
        base = ref.get((r.model, r.images))
        e = e_lo = e_hi = math.nan
        above = bool(r.frame_energy_ratio_lo > 1) if r.frame_energy_ratio_lo == r.frame_energy_ratio_lo \
            else False
        if str(r.set).startswith(UNMARKED):
            b, f = "reference (no marks)", False
        elif base is not None and not math.isnan(r.frame_energy_ratio):
            e = r.frame_energy_ratio - base.frame_energy_ratio
            se = math.sqrt(r.frame_energy_ratio_se ** 2 + base.frame_energy_ratio_se ** 2)
            e_lo, e_hi = e - z * se, e + z * se
            b, f = f"vs {base.set}", above and bool(e_lo > 0) if not math.isnan(e_lo) else False
        else:
            b, f = "uncalibrated (no unmarked set)", above
        excess.append(e)
        lo.append(e_lo)
        hi.append(e_hi)
        basis.append(b)
        flag.append(f)
    return t.assign(frame_excess=excess, frame_excess_lo=lo, frame_excess_hi=hi,
                    flag_basis=basis, border_flag=flag)


def band_text(img_size: int | None) -> str:
    """What the frame band is, for captions: the outer share of each side and of the area."""
    if not img_size:
        return f"the outer {BAND:.0%} of the image side on each edge"
    k = max(1, round(img_size * BAND))
    return (f"the outer {BAND:.0%} of the image side on each edge ({k} px at {img_size} px input, "
            f"{frame_band(img_size).mean():.0%} of the image area)")


def _cell(r: dict, col: str) -> str:
    v = r.get(col)
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "—"
    lo, hi = r.get(f"{col}_lo"), r.get(f"{col}_hi")
    if lo is None or (isinstance(lo, float) and math.isnan(lo)):
        return f"{v:.3f}"
    return f"{v:.3f} [{lo:.3f}, {hi:.3f}]"


def _excess(r: dict) -> str:
    basis = str(r.get("flag_basis") or "")
    if basis.startswith("reference"):
        return "reference (no marks)"
    v = r.get("frame_excess")
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "— (no unmarked set)" if basis.startswith("uncalibrated") else "—"
    lo, hi = r.get("frame_excess_lo"), r.get("frame_excess_hi")
    ci = "" if lo is None or lo != lo else f" [{lo:+.3f}, {hi:+.3f}]"
    return f"{v:+.3f}{ci} {basis}"


def measured_text(r: dict) -> str:
    """``"11 in all 3 seeds, 359 in some, of 400 (30 empty)"``: the images whose maps every seed
    measured (the measures' images), those only some seeds measured, and the rest."""
    k = int(r.get("n_seeds") or 1)
    some = int(r.get("n_measured_some") or 0)
    others = [f"{int(r['n_empty'])} empty" if r["n_empty"] else "",
              f"{int(r['n_not_measurable'])} not measurable" if r["n_not_measurable"] else ""]
    others = ", ".join(x for x in others if x)
    head = (f"{int(r['n_measured'])} of {int(r['n'])}" if k == 1 else
            f"{int(r['n_measured'])} in all {k} seeds, {some} in some, of {int(r['n'])}")
    return head + (f" ({others})" if others else "")


def display(t: pd.DataFrame) -> pd.DataFrame:
    """Markdown/LaTeX cells: images measured in all seeds / in some seeds of n with the other
    statuses, map size and layer, the measures over the images measured in all seeds (no mask: no
    lesion measures) and the frame energy over the unmarked set's; ⚑ marks the border flag."""
    rows = []
    for r in t.to_dict("records"):
        none = ("not measurable" if not r["n_measured"] and not r.get("n_measured_some")
                else "none measured in all seeds" if not r["n_measured"] else None)
        rows.append({
            "Model": r["model"], "Images": f"{r['set']}: {r['images']}",
            "Measured (maps of every seed / of some seeds), of n": measured_text(r),
            "Map (layer)": ("unrecorded" if r.get("unrecorded") and not r["n_measured"] else
                            f"{r['map_size']} ({r['layer']})"),
            "Pointing hit": none or ("no mask" if not r["with_mask"] else _cell(r, "pointing_hit")),
            "Lesion energy ratio": none or ("no mask" if not r["with_mask"]
                                            else _cell(r, "lesion_energy_ratio")),
            "Frame energy ratio": none or (_cell(r, "frame_energy_ratio")
                                           + (" ⚑" if r.get("border_flag") else "")),
            "Frame energy over the unmarked set [95% CI]": none or _excess(r),
        })
    return pd.DataFrame(rows)


def notes(t: pd.DataFrame) -> list[str]:
    """README lines: models whose maps cannot be measured, sit no better than chance in the
    lesion, or carry the border-energy flag (all images of a set)."""
    out = []
    for r in t[t.images == "all"].to_dict("records"):
        where = "held-out test" if r["set"] == "test" else f"external set {r['set']}"
        k = int(r.get("n_seeds") or 1)
        if not r["n_measured"]:
            if r.get("n_measured_some"):
                why = (f"no image's map was measured in all {k} seeds "
                       f"({int(r['n_measured_some'])} of {int(r['n'])} in some)")
            elif r.get("unrecorded"):
                why = "its explanations predate the resolution check (rerun python -m bench.explain)"
            else:
                why = f"its map is {r['map_size']} at this input size"
            out.append(f"* **{r['model']}** ({where}): not measured: {why}.")
            continue
        measured = (f"{int(r['n_measured'])} of {int(r['n'])} images measured"
                    + (f" in all {k} seeds" if k > 1 else ""))
        if r["with_mask"] and r["lesion_energy_ratio_hi"] <= 1:
            out.append(f"* **{r['model']}** ({where}): its maps sit no better than chance in the "
                       f"lesion (lesion energy ratio {r['lesion_energy_ratio']:.2f}, CI upper "
                       f"bound ≤ 1; {measured}).")
        if r.get("border_flag"):
            basis = str(r.get("flag_basis") or "")
            if basis.startswith("vs "):
                what = (f"more map energy in the frame band than its share of the image and than "
                        f"the same model gives images without marks (frame energy ratio "
                        f"{r['frame_energy_ratio']:.2f} [{r['frame_energy_ratio_lo']:.2f}, "
                        f"{r['frame_energy_ratio_hi']:.2f}], "
                        f"{r['frame_excess']:+.2f} [{r['frame_excess_lo']:+.2f}, "
                        f"{r['frame_excess_hi']:+.2f}] over {basis[3:]})")
            else:
                what = (f"more map energy in the frame band than its share of the image (frame "
                        f"energy ratio {r['frame_energy_ratio']:.2f} "
                        f"[{r['frame_energy_ratio_lo']:.2f}, {r['frame_energy_ratio_hi']:.2f}]; "
                        "uncalibrated: no set without marks to compare with)")
            out.append(f"* **{r['model']}** ({where}) ⚑: {what}, {measured}: a border-energy "
                       "shortcut suspect (calipers, labels or the image edge).")
    return out


def caption(img_size: int | None) -> str:
    return ("Where the models look (Grad-CAM at the deepest layer whose map is at least 7×7 at the "
            "run's input size; map size and layer given). Every image has a status per seed: "
            "measured, empty map (no evidence for malignancy anywhere) or not measurable (too "
            "coarse a map); an image counts as measured in all seeds only when every seed's map "
            "of it was measured, and the measures are the mean [95% CI] over those images only "
            "(seeds averaged per image first), with a cluster-robust interval over same-lesion "
            "groups. Pointing-game hit rate (the map's peak in the lesion, 3% tolerance), lesion "
            "energy ratio (share of the map's energy in the lesion / the lesion's share of the "
            "image; 1 = chance) and frame energy ratio (the same for the frame band: "
            f"{band_text(img_size)}, where calipers and labels sit). ⚑ = border-energy shortcut "
            "suspect, calibrated on a set without burnt-in marks (the synthetic phantom's, where "
            "the model was scored on it): the frame energy ratio's interval lies above 1 and the "
            "ratio exceeds the same model's on the unmarked set (same image subset) by more than "
            "the difference's 95% CI (last column); where a model has no unmarked set, "
            "uncalibrated: the ratio's interval above 1 alone. "
            "Correct/wrong: by the seed-mean prediction.")
