"""Argument checks of the statistics functions (docs/protocol.md, "Metrics"), kept apart from the
maths: labels, per-seed scores and clusters as scikit-learn style arrays.

``y_true`` holds 0/1 per image (1 = malignant), ``y_score`` one row per training seed (a single
row may be given as a 1-D array), ``groups`` the cluster of each image (same lesion or patient; an
image alone where there is none). A bad argument raises :class:`StatsInputError`, which is both a
``ValueError`` (as scikit-learn raises) and a ``BenchError`` (one line, exit code 2, at a command).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bench.core.errors import BenchError


class StatsInputError(BenchError, ValueError):
    """Arrays that a statistic cannot take (lengths differ, labels not 0/1, scores not finite)."""


@dataclass(frozen=True)
class Checked:
    """Checked arrays: labels ``y`` (n,), scores ``s`` (seeds × n), cluster code per image
    ``inv`` (n,) indexing ``ids``."""

    y: np.ndarray
    s: np.ndarray
    inv: np.ndarray
    ids: np.ndarray

    @property
    def n_clusters(self) -> int:
        return len(self.ids)


def check_labels(y_true) -> np.ndarray:
    """``y_true`` as a 1-D int array of 0 and 1."""
    y = np.asarray(y_true)
    if y.ndim != 1:
        raise StatsInputError(f"y_true must be 1-D (one label per image), not of shape {y.shape}")
    if y.size and not np.isin(y, [0, 1]).all():
        raise StatsInputError("y_true must hold 0 (benign) and 1 (malignant) only")
    return y.astype(int)


def check_scores(y_score, n: int, name: str = "y_score") -> np.ndarray:
    """``y_score`` as a seeds × n float array of finite values."""
    s = np.asarray(y_score, dtype=float)
    if s.ndim == 1:
        s = s[None, :]
    if s.ndim != 2 or s.shape[1] != n or s.shape[0] == 0:
        raise StatsInputError(f"{name} must be one row of {n} scores per seed, not of shape "
                              f"{np.asarray(y_score).shape}")
    if not np.isfinite(s).all():
        raise StatsInputError(f"{name} must be finite (a NaN or inf score is a failed prediction)")
    return s


def check_groups(groups, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Cluster ids (sorted, as strings) and each image's index into them."""
    g = np.asarray(groups)
    if g.ndim != 1 or g.size != n:
        raise StatsInputError(f"groups must give one cluster per image ({n}), not of shape {g.shape}")
    ids, inv = np.unique(g.astype(str), return_inverse=True)
    return ids, inv.reshape(-1)


def check(y_true, y_score, groups, name: str = "y_score") -> Checked:
    """All three arrays checked against each other."""
    y = check_labels(y_true)
    s = check_scores(y_score, y.size, name)
    ids, inv = check_groups(groups, y.size)
    return Checked(y, s, inv, ids)


def check_level(level: float) -> float:
    if not 0 < level < 1:
        raise StatsInputError(f"level {level} must lie strictly between 0 and 1 (e.g. 0.95)")
    return float(level)


def check_n_boot(n_boot: int) -> int:
    if int(n_boot) != n_boot or n_boot < 2:
        raise StatsInputError(f"n_boot {n_boot} must be a whole number of at least 2")
    return int(n_boot)


def seed_labels(seeds, k: int, name: str) -> np.ndarray:
    """The seed number of each of ``k`` score rows (``0..k-1`` when not given)."""
    if seeds is None:
        return np.arange(k)
    out = np.asarray(seeds).reshape(-1)
    if out.size != k:
        raise StatsInputError(f"{name} names {out.size} seeds but its scores have {k} rows")
    if len(np.unique(out)) != out.size:
        raise StatsInputError(f"{name} names a seed twice: one score row per seed")
    return out


def match_seeds(seeds_a, seeds_b) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rows of a and of b that hold the same seed number, in ascending seed order; and the seeds."""
    common = np.intersect1d(seeds_a, seeds_b)
    ia = np.array([int(np.flatnonzero(seeds_a == c)[0]) for c in common], dtype=int)
    ib = np.array([int(np.flatnonzero(seeds_b == c)[0]) for c in common], dtype=int)
    return ia, ib, common
