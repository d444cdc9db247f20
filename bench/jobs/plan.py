"""The suite's plan as typed objects: every job is one run's :class:`RunOptions`, built with
:func:`dataclasses.replace` from one base (docs/protocol.md, Held-out test and cross-validation: every model trains under the
same protocol; the paper's experiments are Fus2Net variants compared on CV folds).

Nothing here reads or writes a command line: the command (``bench.cli.suite``) builds the base
options from its flags, and executors (:mod:`bench.jobs.cluster`) carry the jobs as they are.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

from bench.core.enums import StrEnum
from bench.core.errors import SettingError
from bench.engine.experiments import BASE, Variant
from bench.engine.spec import REFERENCE, RunOptions


class JobStatus(StrEnum):
    """How a job of the suite ended; the value is what the suite's timings table prints."""

    OK = "ok"
    FAILED = "FAILED"


@dataclass(frozen=True)
class Job:
    """One run of the suite: its label (for people), its options, and whether it belongs to the
    model comparison (scored on the external sets, explained) or to an experiment."""

    label: str
    options: RunOptions
    compared: bool = True


def job_label(options: RunOptions, variant: Variant | None = None) -> str:
    """``fus2net seed 0``, ``fus2net [SGD] seed 1``, ``fus2net seed 0 (every image)``: the
    model, the experiment variant, the seed, and an all-image run said as such."""
    shown = f" [{variant.label}]" if variant is not None and variant is not BASE else ""
    every = " (every image)" if options.evaluation == "allcv" else ""
    return f"{options.model}{shown} seed {options.seed}{every}"


def check_evaluations(values: Sequence[str]) -> tuple[str, ...]:
    """The suite's evaluations: distinct, each heldout or allcv, heldout among them (the
    all-image table stands beside Table 3, never in its place)."""
    values = tuple(values)
    bad = [v for v in values if v not in ("heldout", "allcv")]
    if bad or not values or len(set(values)) != len(values):
        raise SettingError("evaluation", f"{','.join(values) or 'nothing'!r}: give heldout, or "
                           "heldout,allcv (allcv: every image scored once by grouped K-fold)")
    if "heldout" not in values:
        raise SettingError("evaluation", "allcv is reported beside the held-out Table 3: give "
                           "heldout,allcv")
    return values


def suite_jobs(base: RunOptions, models: Sequence[str], seeds: Sequence[int],
               experiment_seeds: Sequence[int] = (), variants: Sequence[Variant] = (BASE,),
               external: Sequence[str] = (), experiment_folds: int | None = None,
               evaluations: Sequence[str] = ("heldout",)) -> list[Job]:
    """The suite's runs, in the order they run: every seed of the comparison (the reference
    model in its base variant first, then ``models``), then every seed of the experiments'
    other ``variants``, then (``evaluations`` with allcv) every seed of the comparison models'
    all-image runs (:mod:`bench.engine.allimage`; no external sets, no explanations: they keep no
    final model). Comparison runs score ``external``; Fus2Net runs use ``experiment_folds`` CV
    folds when given (the experiments are compared on CV folds only, and the base run serves
    both)."""
    fus2net = replace(base, model=REFERENCE)
    if experiment_folds is not None:
        fus2net = replace(fus2net, folds=experiment_folds)
    compared = [variants[0].apply(fus2net)] + [replace(base, model=m) for m in models
                                               if m != REFERENCE]
    jobs = []
    for seed in seeds:
        for o in compared:
            o = replace(o, seed=seed, external=tuple(external))
            jobs.append(Job(job_label(o), o))
    for seed in experiment_seeds:
        for v in variants[1:]:
            # an experiment run scores no external set, so it has no BatchNorm adaptation either
            o = replace(v.apply(fus2net), seed=seed, adapt_bn=("none",))
            jobs.append(Job(job_label(o, v), o, compared=False))
    if "allcv" in evaluations:
        every = [variants[0].apply(replace(base, model=REFERENCE))] + \
            [replace(base, model=m) for m in models if m != REFERENCE]
        for seed in seeds:
            for o in every:
                o = replace(o, seed=seed, external=(), evaluation="allcv")
                jobs.append(Job(job_label(o), o, compared=False))
    return jobs
