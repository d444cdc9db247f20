"""Lesion-level metrics: one score per lesion (docs/protocol.md, "Metrics": Clusters).

The test images are clustered: several can show one lesion, and an image-level AUC counts a lesion
as often as it was photographed. At the lesion level each lesion (group) counts once: its score is
the mean of its images' scores (per seed) and its label is its images' label, so a group that holds
both benign and malignant images is refused (it is not one lesion; Obuchowski 1997, *Biometrics*
53:567–578, treats such a cluster as a patient instead, which the image-level clustered statistics
do). Then the usual metrics: AUC (mean over seeds, two-level bootstrap and variance-components
intervals, each lesion its own cluster) and sensitivity, specificity, PPV, NPV at the threshold,
where every lesion is one independent unit (plain Wilson interval for one seed;
:mod:`bench.stats.proportions` with seeds).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bench.stats.arrays import StatsInputError, check, check_level, check_n_boot
from bench.stats.metrics import THRESHOLD
from bench.stats.proportions import ProportionInterval, classification_intervals
from bench.stats.twolevel import (
    TwoLevelInterval,
    VarianceComponents,
    auc_variance_components,
    two_level_auc,
)


@dataclass(frozen=True)
class LesionScores:
    """Per lesion (``ids``, sorted): its label ``y``, its score per seed ``scores`` (seeds ×
    lesions: the mean over its images) and its number of images ``n_images``."""

    ids: np.ndarray
    y: np.ndarray
    scores: np.ndarray
    n_images: np.ndarray


@dataclass(frozen=True)
class LesionMetrics:
    """Lesion-level AUC (two intervals) and the four proportions at the threshold."""

    n_lesions: int
    n_malignant: int
    n_images: int
    auc: TwoLevelInterval
    auc_components: VarianceComponents
    proportions: dict[str, ProportionInterval]


def lesion_scores(y_true, y_score, groups) -> LesionScores:
    """One score per lesion and seed (the mean of its images' scores) and its label; a group with
    both labels is refused, naming it."""
    c = check(y_true, y_score, groups)
    n_l = c.n_clusters
    size = np.bincount(c.inv, minlength=n_l)
    malignant = np.bincount(c.inv, weights=c.y, minlength=n_l)
    mixed = np.flatnonzero((malignant > 0) & (malignant < size))
    if mixed.size:
        shown = ", ".join(f"'{c.ids[i]}' ({int(malignant[i])} malignant, "
                          f"{int(size[i] - malignant[i])} benign)" for i in mixed[:3])
        more = f" and {mixed.size - 3} more" if mixed.size > 3 else ""
        which = f"group {shown} holds" if mixed.size == 1 else f"groups {shown}{more} hold"
        raise StatsInputError(f"{which} both labels: a lesion has one label; "
                              "fix the group (or the label) in the split manifest, or use the "
                              "image-level clustered statistics")
    sums = np.stack([np.bincount(c.inv, weights=row, minlength=n_l) for row in c.s])
    return LesionScores(c.ids, (malignant > 0).astype(int), sums / size, size)


def lesion_metrics(y_true, y_score, groups, threshold: float = THRESHOLD, n_boot: int = 2000,
                   seed: int = 0, level: float = 0.95) -> LesionMetrics:
    """Lesion-level AUC (mean over seeds; two-level bootstrap and variance components) and
    sensitivity, specificity, PPV, NPV of the lesion scores at ``threshold``."""
    level, n_boot = check_level(level), check_n_boot(n_boot)
    les = lesion_scores(y_true, y_score, groups)
    auc = two_level_auc(les.y, les.scores, les.ids, n_boot=n_boot, seed=seed, level=level)
    comp = auc_variance_components(les.y, les.scores, les.ids, level=level)
    props = classification_intervals(les.y, les.scores, les.ids, threshold, level)
    return LesionMetrics(len(les.ids), int(les.y.sum()), int(les.n_images.sum()), auc, comp, props)
