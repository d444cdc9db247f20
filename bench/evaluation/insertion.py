"""The annotation-insertion test with its controls (docs/protocol.md, "Burnt-in annotations").

Pasting the marks of one class onto the cleaned images of the other and watching P(malignant)
move cannot, alone, tell "the model reads these marks as their class" from "any bright overlay
moves P(malignant)". So each target image gets three pastes, all by the same placement rule (the
donor's mark pixels at their own position, brought to the target's size, :func:`paste`):

* **cross-class** (the test): the marks of a marked image of the other class;
* **same-class control**: the marks of a marked image of the target's own class (from another
  same-lesion group);
* **random-shape control**: the cross-class donor's marks replaced by random strokes of the same
  pixel count per mark, at the same positions, painted at the marks' mean intensity
  (:func:`bench.data.annotations.random_marks`).

Each shift is P(malignant) of the pasted image minus that of the cleaned target. Shifts are
reported **towards the marks' class** (the change of P(malignant) for malignant marks, its
negative for benign marks), so a positive effect is a move towards the class the marks came from.
The statistic is ``effect = mean shift(cross) − mean shift(control)``.

**Interval.** Targets and donors are both samples: another draw of donors gives other marks. A
replicate resamples the targets' same-lesion groups and, independently, the donors' groups (the
bootstrap of a crossed two-way design: McCullagh 2000, *Bernoulli* 6:285–301); a pair (target,
donor) weighs the product of its two groups' counts, and each mean is the weighted mean over its
pairs. Percentile interval. The targets-only interval (donor counts all 1, the same target draw)
is kept for comparison: with every donor in one group the two are identical.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from bench.data.annotations import fitted_mask, mark_intensity, paint, paste, random_marks
from bench.stats.calibration import cluster_weights

N_BOOT = 2000
# (name, target class, donor class): the reliance summary's insertion names
DIRECTIONS = (("malignant_marks_on_benign", 0, 1), ("benign_marks_on_malignant", 1, 0))
CONTROLS = ("same_class", "random_shape")
SHIFTS = {"none": "shift_cross", "same_class": "shift_same", "random_shape": "shift_random"}

Scorer = Callable[[list[np.ndarray]], np.ndarray]


@dataclass(frozen=True)
class Pairing:
    """One target of the design (row indices into the image set): its cross-class donor and its
    same-class donor (``-1`` when the target's class has no marked image outside its group)."""

    direction: str
    target: int
    cross: int
    same: int


def insertion_design(labels: Sequence[int], groups: Sequence[str], marked: Sequence[bool],
                     seed: int = 0) -> list[Pairing]:
    """Who gives marks to whom: every image of each direction's target class gets a random marked
    image of the other class (the draw of the insertion test without controls, same ``seed``:
    the same donors) and a random marked image of its own class outside its same-lesion group
    (a separate stream). Deterministic given ``seed``; a direction without a marked donor is
    left out."""
    y = np.asarray(labels, int)
    g = np.asarray(groups).astype(str)
    m = np.asarray(marked, bool)
    rng = np.random.default_rng(seed)
    same_rng = np.random.default_rng([seed, 1])
    out: list[Pairing] = []
    for name, target, donor in DIRECTIONS:
        donors = np.nonzero((y == donor) & m)[0]
        targets = np.nonzero(y == target)[0]
        if donors.size == 0:
            continue
        picks = donors[rng.integers(0, donors.size, targets.size)]
        own = np.nonzero((y == target) & m)[0]
        for t, d in zip(targets, picks, strict=True):
            pool = own[g[own] != g[t]]
            same = int(pool[same_rng.integers(0, pool.size)]) if pool.size else -1
            out.append(Pairing(name, int(t), int(d), same))
    return out


def control_image(donor: np.ndarray, donor_mask: np.ndarray, target: np.ndarray,
                  rng: np.random.Generator) -> np.ndarray:
    """The random-shape control: ``target`` with random strokes of the donor marks' pixel count,
    position and mean intensity (:func:`bench.data.annotations.random_marks`)."""
    fitted = fitted_mask(donor_mask, target.shape)
    return paint(target, random_marks(fitted, rng), mark_intensity(donor, donor_mask, target))


def insertion_shifts(score: Scorer, ids: Sequence[str], labels: Sequence[int],
                     groups: Sequence[str], originals: list[np.ndarray], masks: list[np.ndarray],
                     cleaned: list[np.ndarray], seed: int = 0) -> pd.DataFrame:
    """Per target image of :func:`insertion_design`: P(malignant) of the cleaned image and the
    change of P(malignant) with the cross-class paste, the same-class paste and the random-shape
    control (NaN where the target has no same-class donor). ``score`` maps image arrays to
    P(malignant). Columns: ``direction, id, group, label, donor, donor_group, same_donor,
    same_group, mark_pixels, prob_cleaned, shift_cross, shift_same, shift_random`` (shifts as
    changes of P(malignant); :func:`insertion_effects` orients them)."""
    ids = [str(i) for i in ids]
    g = np.asarray(groups).astype(str)
    marked = [bool(np.asarray(m).any()) for m in masks]
    design = insertion_design(labels, g, marked, seed)
    if not design:
        return pd.DataFrame(columns=["direction", "id", "group", "label", "donor", "donor_group",
                                     "same_donor", "same_group", "mark_pixels", "prob_cleaned",
                                     "shift_cross", "shift_same", "shift_random"])
    targets = sorted({p.target for p in design})
    p_clean = dict(zip(targets, score([cleaned[t] for t in targets]), strict=True))
    cross = [paste(originals[p.cross], masks[p.cross], cleaned[p.target]) for p in design]
    shaped = [control_image(originals[p.cross], masks[p.cross], cleaned[p.target],
                            np.random.default_rng([seed, 2, p.target])) for p in design]
    with_same = [p for p in design if p.same >= 0]
    same = [paste(originals[p.same], masks[p.same], cleaned[p.target]) for p in with_same]
    p_cross, p_shape = score(cross), score(shaped)
    p_same = dict(zip([p.target for p in with_same], score(same), strict=True)) if same else {}
    base = np.array([p_clean[p.target] for p in design])
    return pd.DataFrame({
        "direction": [p.direction for p in design],
        "id": [ids[p.target] for p in design],
        "group": [g[p.target] for p in design],
        "label": [int(labels[p.target]) for p in design],
        "donor": [ids[p.cross] for p in design],
        "donor_group": [g[p.cross] for p in design],
        "same_donor": [ids[p.same] if p.same >= 0 else "" for p in design],
        "same_group": [g[p.same] if p.same >= 0 else "" for p in design],
        "mark_pixels": [int(fitted_mask(masks[p.cross], cleaned[p.target].shape).sum())
                        for p in design],
        "prob_cleaned": base,
        "shift_cross": np.asarray(p_cross, float) - base,
        "shift_same": np.array([p_same.get(p.target, np.nan) for p in design]) - base,
        "shift_random": np.asarray(p_shape, float) - base})


@dataclass(frozen=True)
class InsertionEffect:
    """One direction's insertion effect against one control (``none``: the cross-class shift
    alone), towards the marks' class. ``cross``/``control_shift``: the mean shifts (``control_shift``
    NaN for ``none``); ``effect``: ``cross − control_shift`` (``cross`` for ``none``); ``lo``/``hi``:
    percentile interval with targets and donors resampled; ``lo_targets``/``hi_targets``: with
    the targets only; counts of targets, their groups and the donors' groups; ``note`` why a
    value is NaN."""

    direction: str
    control: str
    n_targets: int
    target_groups: int
    donor_groups: int
    cross: float
    control_shift: float
    effect: float
    lo: float
    hi: float
    lo_targets: float
    hi_targets: float
    n_boot: int
    note: str = ""

    def as_dict(self) -> dict:
        return asdict(self)


def donor_weights(groups: Sequence[str], n_boot: int, seed: int, stream: int = 3) -> np.ndarray:
    """``n_boot``×n weights of donors: each replicate draws the donors' groups with replacement
    (``stream``: a random stream apart from the targets'), and a donor weighs as often as its
    group was drawn."""
    _, inv = np.unique(np.asarray(groups).astype(str), return_inverse=True)
    n_cl = int(inv.max()) + 1 if inv.size else 0
    if n_cl == 0:
        return np.ones((n_boot, 0))
    rng = np.random.default_rng([seed, stream])
    counts = rng.multinomial(n_cl, np.full(n_cl, 1 / n_cl), size=n_boot)
    return counts[:, inv].astype(float)


def weighted_means(values: np.ndarray, target_w: np.ndarray, donor_w: np.ndarray) -> np.ndarray:
    """Per replicate, the mean of ``values`` (one per pair) with pair weights
    ``target_w × donor_w`` (both B×n); NaN where every weight is 0."""
    w = target_w * donor_w
    tot = w.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(tot > 0, (w * values).sum(axis=1) / np.where(tot > 0, tot, 1), np.nan)


def _interval(reps: np.ndarray, level: float) -> tuple[float, float]:
    reps = reps[np.isfinite(reps)]
    if reps.size < 2:
        return float("nan"), float("nan")
    a = (1 - level) / 2
    lo, hi = np.quantile(reps, [a, 1 - a])
    return float(lo), float(hi)


def _sign(direction: str) -> float:
    donor = {name: d for name, _, d in DIRECTIONS}[direction]
    return 1.0 if donor == 1 else -1.0


def insertion_effects(table: pd.DataFrame, n_boot: int = N_BOOT, seed: int = 0,
                      level: float = 0.95) -> list[InsertionEffect]:
    """The effects of :func:`insertion_shifts`'s table: per direction, the cross-class shift
    (control ``none``) and the cross-class shift minus each control's, towards the marks' class,
    with the two-way (targets and donors) and the targets-only percentile intervals. Every
    control of a direction shares one target draw and the cross-class donors' draw; the
    same-class donors' groups have a draw of their own. A control is compared on the targets it
    has (same-class: those with a same-class donor)."""
    if n_boot < 1:
        raise ValueError(f"`n_boot` {n_boot}: must be at least 1")
    out: list[InsertionEffect] = []
    for name, _, _ in DIRECTIONS:
        part = table[table.direction == name]
        if part.empty:
            continue
        sign = _sign(name)
        groups = part.group.astype(str).to_numpy()
        tw = cluster_weights(groups, n_boot, seed)
        cw = donor_weights(part.donor_group.astype(str).to_numpy(), n_boot, seed)
        cross = sign * part.shift_cross.to_numpy(float)
        ones = np.ones_like(tw)
        cross_reps = weighted_means(cross, tw, cw)
        cross_tonly = weighted_means(cross, tw, ones)
        n_dg = int(part.donor_group.nunique())
        lo, hi = _interval(cross_reps, level)
        lt, ht = _interval(cross_tonly, level)
        out.append(InsertionEffect(name, "none", len(part), len(np.unique(groups)), n_dg,
                                   float(cross.mean()), float("nan"), float(cross.mean()),
                                   lo, hi, lt, ht, n_boot))
        for control in CONTROLS:
            ctrl = sign * part[SHIFTS[control]].to_numpy(float)
            has = np.isfinite(ctrl)
            if not has.any():
                out.append(InsertionEffect(name, control, 0, 0, 0, float(cross.mean()),
                                           float("nan"), float("nan"), float("nan"),
                                           float("nan"), float("nan"), float("nan"), n_boot,
                                           "no target has a donor for this control"))
                continue
            if control == "same_class":  # other donors: a draw of their groups of its own
                donors = part.same_group[has]
                dw = donor_weights(donors.astype(str).to_numpy(), n_boot, seed, stream=4)
            else:  # the cross-class donor's marks reshaped: its draw
                donors = part.donor_group[has]
                dw = cw[:, has]
            c, x = ctrl[has], cross[has]
            reps = (weighted_means(x, tw[:, has], cw[:, has])
                    - weighted_means(c, tw[:, has], dw))
            tonly = (weighted_means(x, tw[:, has], ones[:, has])
                     - weighted_means(c, tw[:, has], ones[:, has]))
            lo, hi = _interval(reps, level)
            lt, ht = _interval(tonly, level)
            n_dg = len(set(part.donor_group[has].astype(str)) | set(donors.astype(str)))
            out.append(InsertionEffect(name, control, int(has.sum()), len(np.unique(groups[has])),
                                       n_dg, float(x.mean()), float(c.mean()),
                                       float(x.mean() - c.mean()), lo, hi, lt, ht, n_boot))
    return out


def effects_record(effects: list[InsertionEffect]) -> dict:
    """``{direction: {control: effect fields}}``, as ``reliance/insertion.json`` keeps them."""
    rec: dict = {}
    for e in effects:
        rec.setdefault(e.direction, {})[e.control] = e.as_dict()
    return rec


def mean_over_seeds(tables: list[pd.DataFrame]) -> pd.DataFrame | None:
    """The per-target shifts of several runs (seeds) of one configuration averaged, where the
    runs share the design (same targets and donors); ``None`` when they do not."""
    key = ["direction", "id", "donor", "same_donor"]
    first = tables[0].reset_index(drop=True)
    for t in tables[1:]:
        if len(t) != len(first) or not (t[key].astype(str).reset_index(drop=True)
                                        == first[key].astype(str)).all().all():
            return None
    out = first.copy()
    for col in ("prob_cleaned", *SHIFTS.values()):
        out[col] = np.mean([t[col].to_numpy(float) for t in tables], axis=0)
    return out
