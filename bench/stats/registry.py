"""The metrics that tables and commands list, registered once (docs/protocol.md, Metrics).

One :class:`Metric` per metric: its name (the column and the key of ``metrics.json``), its function
of ``(y_true, y_score)``, the interval a single set of predictions gets, its display name and
digits, whether higher is better, and the :class:`View` s that list it. The report's tables
(held-out per seed and over seeds, Table 3, CV folds, the experiments, external validation) and
``bench.run``'s summary iterate :func:`listed`; none of them names a metric, so registering one
(:func:`register_metric`, or one more row of :data:`METRICS`) adds it to every table of its views.

Every registered metric is computed on each run's test predictions (:func:`evaluate`); a metric
that a run's ``metrics.json`` does not record (one registered after the run) is computed from the
run's saved predictions where a table needs it. The intervals that depend on lesion clusters and
seeds (Table 3's AUC and proportion columns) stay with their sections: they are not one function of
``(y_true, y_score)``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import numpy as np

from bench.core.enums import StrEnum
from bench.stats.metrics import binary_metrics, brier_score, roc_auc
from bench.stats.stats import bootstrap_auc_ci, delong_ci, wilson_ci


class Interval(StrEnum):
    """The 95% interval of a metric on one set of predictions (every image independent)."""

    NONE = "none"  # a point value only (F1, Brier)
    WILSON = "wilson"  # a proportion of image counts: Wilson's score interval on ``counts``
    DELONG = "delong"  # the ROC AUC: DeLong, with the stratified bootstrap beside (``_boot_*``)
    BOOTSTRAP = "bootstrap"  # anything else: percentile bootstrap over images


class View(StrEnum):
    """A table (or command) that lists metrics; a metric appears in those of its ``views``."""

    SUMMARY = "summary"  # held-out test over seeds: Table 3's columns, bench.run's summary
    TABLE3 = "table3"  # the full Table 3 (table3_comparison.tex): mean ± sd [min–max]
    FOLDS = "folds"  # per CV fold: cv_folds.csv, the experiments' tables and Fig. 1
    EXTERNAL = "external"  # internal → external at the unchanged threshold


@dataclass(frozen=True)
class Metric:
    """One metric. ``counts``: a proportion's numerator and denominator as sums of the confusion
    counts (``("tp", "tp+fn")``), for its Wilson interval; ``prevalence_dependent``: its value
    depends on the test set's malignant share (PPV, NPV), which the full Table 3 says;
    ``primary``: the metric the contrasts are made on (AUC), labelled with where it was
    measured where a table shows it twice."""

    name: str
    function: Callable[..., float]
    interval: Interval
    display: str
    digits: int = 3
    higher_is_better: bool = True
    views: frozenset[View] = field(default_factory=frozenset)
    counts: tuple[str, str] | None = None
    prevalence_dependent: bool = False
    primary: bool = False

    @property
    def label(self) -> str:
        """The name in running text and on axes: ``accuracy``, ``AUC``."""
        return self.display if self.display.isupper() else self.display.lower()


def _threshold(name: str) -> Callable[..., float]:
    """The metric ``name`` of :func:`bench.stats.metrics.binary_metrics` (threshold 0.5)."""

    def at_threshold(y_true, y_score) -> float:
        return float(binary_metrics(y_true, y_score)[name])

    at_threshold.__name__ = name
    return at_threshold


_ALL = frozenset({View.SUMMARY, View.TABLE3, View.FOLDS, View.EXTERNAL})

# The metrics of docs/protocol.md, Metrics, in the order every table lists them.
METRICS: dict[str, Metric] = {m.name: m for m in (
    Metric("accuracy", _threshold("accuracy"), Interval.WILSON, "Accuracy", views=_ALL,
           counts=("tp+tn", "n")),
    Metric("sensitivity", _threshold("sensitivity"), Interval.WILSON, "Sensitivity", views=_ALL,
           counts=("tp", "tp+fn")),
    Metric("specificity", _threshold("specificity"), Interval.WILSON, "Specificity", views=_ALL,
           counts=("tn", "tn+fp")),
    Metric("ppv", _threshold("ppv"), Interval.WILSON, "PPV", counts=("tp", "tp+fp"),
           views=frozenset({View.SUMMARY, View.TABLE3, View.EXTERNAL}), prevalence_dependent=True),
    Metric("npv", _threshold("npv"), Interval.WILSON, "NPV", counts=("tn", "tn+fn"),
           views=frozenset({View.SUMMARY, View.TABLE3, View.EXTERNAL}), prevalence_dependent=True),
    Metric("f1", _threshold("f1"), Interval.NONE, "F1", views=frozenset({View.SUMMARY})),
    Metric("auc", roc_auc, Interval.DELONG, "AUC", primary=True,
           views=frozenset({View.SUMMARY, View.TABLE3, View.FOLDS})),
    Metric("brier", brier_score, Interval.NONE, "Brier", higher_is_better=False),
)}


def register_metric(metric: Metric) -> Metric:
    """Add ``metric`` to :data:`METRICS` (after the others); a name already taken is an error."""
    if metric.name in METRICS:
        raise ValueError(f"metric {metric.name!r} is already registered")
    METRICS[metric.name] = metric
    return metric


def listed(*views: View) -> list[Metric]:
    """The metrics of any of ``views`` (every metric for none), in registry order."""
    return [m for m in METRICS.values() if not views or m.views & set(views)]


def names(*views: View) -> tuple[str, ...]:
    """The names of :func:`listed`."""
    return tuple(m.name for m in listed(*views))


def proportions() -> dict[str, tuple[str, str]]:
    """Each proportion's name → its numerator and denominator (``"tp+fn"``)."""
    return {m.name: m.counts for m in METRICS.values() if m.counts is not None}


def count_of(expr: str, values: dict) -> int:
    """``"tp+fn"`` summed from the confusion counts in ``values``."""
    return sum(values[k] for k in expr.split("+"))


def evaluate(y_true, y_score, metrics: Iterable[Metric] | None = None) -> dict:
    """:func:`bench.stats.metrics.binary_metrics` (the confusion counts and ``n`` included) plus
    every registered metric it does not compute, by its function."""
    out: dict = binary_metrics(y_true, y_score)
    for m in (METRICS.values() if metrics is None else metrics):
        if m.name not in out:
            out[m.name] = float(m.function(y_true, y_score))
    return out


def bootstrap_interval(metric: Metric, y_true, y_score, n_boot: int = 2000, seed: int = 0,
                       level: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap interval of ``metric`` over images (replicates where it is undefined
    are dropped); NaN where no replicate defines it."""
    y = np.asarray(y_true)
    s = np.asarray(y_score, dtype=float)
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, len(y), (n_boot, len(y))) if len(y) else np.zeros((0, 0), int)
    values = np.array([metric.function(y[i], s[i]) for i in draws], dtype=float)
    values = values[~np.isnan(values)]
    if not len(values):
        return float("nan"), float("nan")
    alpha = (1 - level) / 2
    lo, hi = np.quantile(values, [alpha, 1 - alpha])
    return float(lo), float(hi)


def interval_columns(metric: Metric, y_true, y_score, values: dict, n_boot: int = 2000,
                     seed: int = 0, prefix: str = "") -> dict:
    """``{prefix}{name}`` with its interval's columns for one set of predictions: ``_lo``/``_hi``
    (Wilson on the counts in ``values``; DeLong, whose estimate is the value, with the stratified
    bootstrap's ``_boot_lo``/``_boot_hi`` beside; or the percentile bootstrap), the value alone for
    :attr:`Interval.NONE`."""
    key = f"{prefix}{metric.name}"
    if metric.interval == Interval.DELONG:
        row = dict(zip((key, f"{key}_lo", f"{key}_hi"), delong_ci(y_true, y_score), strict=True))
        row[f"{key}_boot_lo"], row[f"{key}_boot_hi"] = bootstrap_auc_ci(
            y_true, y_score, n_boot=n_boot, seed=seed)
        return row
    row = {key: values[metric.name]}
    if metric.interval == Interval.WILSON and metric.counts is not None:
        num, den = metric.counts
        row[f"{key}_lo"], row[f"{key}_hi"] = wilson_ci(count_of(num, values),
                                                       count_of(den, values))
    elif metric.interval == Interval.BOOTSTRAP:
        row[f"{key}_lo"], row[f"{key}_hi"] = bootstrap_interval(metric, y_true, y_score, n_boot,
                                                                seed)
    return row
