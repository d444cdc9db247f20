"""The suite (what ``./run_all.sh`` runs): every comparison model and the paper's experiments on
one data set and profile, then the explanations and the report (docs/protocol.md, Held-out test and cross-validation).

Finished runs with the same configuration are reused, so rerunning only trains what is missing. A
run that fails is reported and the others go on. The library takes a typed
:class:`SuiteSettings` (its command line is :mod:`bench.cli.suite`); the runs are
:class:`bench.jobs.plan.Job` objects, run here one after another or on an executor
(:mod:`bench.jobs.cluster`).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

from bench.data.multisite import site_name
from bench.engine.experiments import BASE, Variant
from bench.engine.runfolder import load_run
from bench.engine.runner import RunResult, build_shared, run
from bench.engine.spec import REFERENCE, RunOptions
from bench.evaluation.explain import explain_run
from bench.evaluation.illustrate import illustrate_run
from bench.evaluation.reliance import reliance_run
from bench.jobs.cluster import ClusterConfig, JobOutcome, run_grid
from bench.jobs.plan import Job, JobStatus, check_evaluations, suite_jobs
from bench.reporting.report import ReportOptions, build_report
from bench.reporting.sections.sites import write_site_matrix
from models import get_model_config
from models.errors import UserError
from models.registry import resolve_weights

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SuiteSettings:
    """One suite: the options every run shares (profile and device resolved, ``out`` = the runs'
    folder), what varies between runs, where they execute, and where the results go."""

    base: RunOptions
    out: Path  # results folder: tables, figures and README; the runs are in base.out
    models: tuple[str, ...]
    seeds: tuple[int, ...]
    experiment_seeds: tuple[int, ...] = ()
    variants: tuple[Variant, ...] = (BASE,)  # more than the base: the experiments run
    external: tuple[str, ...] = ()
    experiment_folds: int | None = None  # CV folds of the Fus2Net runs (None: the base's)
    cluster: ClusterConfig = field(default_factory=ClusterConfig)
    log_dir: Path | None = None  # job logs (None: <out>/logs)
    # heldout (Table 3), and allcv: every image scored once (bench/engine/allimage.py), its own
    # table beside Table 3
    evaluations: tuple[str, ...] = ("heldout",)

    def jobs(self) -> list[Job]:
        return suite_jobs(self.base, self.models, self.seeds, self.experiment_seeds,
                          self.variants, self.external, self.experiment_folds,
                          check_evaluations(self.evaluations))


@dataclass
class SuiteResult:
    """How a suite ended: one outcome per job, the failures (jobs and explanations) and the
    report's warnings."""

    outcomes: list[JobOutcome]
    failures: list[str]
    warnings: list[str]
    seconds: float

    @property
    def ok(self) -> bool:
        return not self.failures


class SuiteObserver:
    """What the suite says while it runs: each finished run, and each run that failed (the
    command line prints summaries and names its flags in the library's messages)."""

    def words(self, message: str) -> str:
        """A library message as the user should read it (here: as it is)."""
        return message

    def finished(self, job: Job, result: RunResult) -> None:
        """A run that ended (complete, failed or reused)."""

    def failed(self, outcome: JobOutcome) -> None:
        """A job without a result: bad input, or a job that died on an executor."""
        if outcome.job_id:  # on an executor: where its log is
            log.warning(f"FAILED {outcome.label}: {self.words(outcome.message) or 'see the log'} "
                        f"(log: {outcome.log}; {outcome.attempts} attempt(s))")
        else:
            log.error(f"error: {self.words(outcome.message)}")


def frozen_without_weights(name: str) -> bool:
    """A frozen-backbone baseline with no ImageNet weights here is no baseline (it would train a
    classifier on random features): the suite leaves it out unless it is asked for by name."""
    cfg = get_model_config(name)
    if cfg.recipe.frozen == "none" or cfg.pretrained != "imagenet":
        return False
    return resolve_weights(name, "auto").provenance == "random"


def run_inline(jobs: list[Job], observer: SuiteObserver) -> list[JobOutcome]:
    """The jobs one after another in this process; bad input of one run is said and the others
    go on."""
    outcomes = []
    for job in jobs:
        log.info(f"\n=== {job.label} ({job.options.profile}) ===")
        t0 = time.perf_counter()
        out = JobOutcome(job.label, attempts=1, started=time.time())
        try:
            result = run(job.options)
        except UserError as exc:  # bad input for this run: said, and the others go on
            out.message = str(exc)
            observer.failed(out)
        else:
            observer.finished(job, result)
            out.status = JobStatus.OK if result.ok else JobStatus.FAILED
            out.run_dir = result.run_dir
        out.seconds, out.ended = time.perf_counter() - t0, time.time()
        outcomes.append(out)
    return outcomes


def build_caches(jobs: list[Job]) -> None:
    """The caches the jobs share (data, split evidence, cleaned copies, external sets), built
    here once before they start (:func:`bench.engine.runner.build_shared`); a problem is left
    for the jobs it concerns to report."""
    keys = {}
    for job in jobs:
        o = job.options
        keys.setdefault((o.data, o.dataset, o.split, o.test_per_class, o.folds, o.profile,
                         o.skip_bad_images, o.annotations, tuple(o.external)), o)
    if keys:
        log.info("building the caches the jobs share (data, split, external sets) ...")
    for o in keys.values():
        try:
            build_shared(o)
        except (UserError, OSError):
            pass  # each job it concerns says it in its own words


def run_on_executor(jobs: list[Job], cluster: ClusterConfig, log_dir: Path, observer: SuiteObserver,
                    progress: bool = True) -> list[JobOutcome]:
    """The jobs on ``cluster``'s executor (``progress``: the grid's bar; the jobs' own bars are
    off, their output goes to their logs); a job that failed is said with its log."""
    log.info(f"{len(jobs)} jobs on the {cluster.executor} executor; logs in {log_dir}")
    build_caches(jobs)
    jobs = [replace(j, options=replace(j.options, progress=False)) for j in jobs]
    outcomes = run_grid(jobs, cluster, log_dir, progress)
    for res in outcomes:
        if res.status is not JobStatus.OK:
            observer.failed(res)
    return outcomes


def print_timings(outcomes: list[JobOutcome], seconds: float) -> None:
    """The wall time and status of every job, then each job's logs (executors)."""
    log.info(f"\n{'run':<48} {'seconds':>9}  status")
    for o in outcomes:
        log.info(f"{o.label:<48} {o.seconds:>9.1f}  {o.status}")
    log.info(f"{'total':<48} {seconds:>9.1f}")
    for o in outcomes:
        if o.job_id:
            log.info(f"job {o.job_id} ({o.label}): stdout {o.stdout}" +
                     (f", stderr {o.log}" if o.log and o.log != o.stdout else ""))


def explain_runs(run_dirs: list[Path], device: str, data: Path | None,
                 observer: SuiteObserver) -> list[str]:
    """Where each comparison model looks (Grad-CAM vs lesion masks), how much it relies on the
    lesion, and Fus2Net's illustrations; a run that cannot be explained is said and the others
    go on. Returns the failures."""
    failures = []
    for run_dir in run_dirs:
        try:
            loaded = load_run(run_dir)
            if loaded is not None:
                explain_run(loaded, device=device, data=data)
                reliance_run(loaded, device=device, data=data)  # bench/evaluation/reliance.py
                if loaded.model == REFERENCE:  # the report's Fig. 5 and Fig. 6 analogues
                    illustrate_run(loaded, data)
        except UserError as exc:
            log.error(f"error: {observer.words(str(exc))}")
            failures.append(f"explain {run_dir.name}")
    return failures


def run_suite(settings: SuiteSettings, observer: SuiteObserver | None = None) -> SuiteResult:
    """Every run of ``settings`` (inline or on its executor), then the explanations of the
    comparison runs and the report in ``settings.out``."""
    observer = observer or SuiteObserver()
    jobs = settings.jobs()
    t_all = time.perf_counter()
    if settings.cluster.executor == "inline":
        outcomes = run_inline(jobs, observer)
    else:
        outcomes = run_on_executor(jobs, settings.cluster,
                                   settings.log_dir or settings.out / "logs", observer,
                                   settings.base.progress)
    print_timings(outcomes, time.perf_counter() - t_all)
    failures = [o.label for o in outcomes if o.status is not JobStatus.OK]
    explained = [o.run_dir for j, o in zip(jobs, outcomes, strict=True)
                 if j.compared and o.status is JobStatus.OK and o.run_dir is not None]
    failures += explain_runs(explained, settings.base.device, settings.base.data, observer)
    report = build_report(settings.base.out, settings.out,
                          ReportOptions(profile=settings.base.profile))
    return SuiteResult(outcomes, failures, list(report.warnings), time.perf_counter() - t_all)


def leave_one_site_out(settings: SuiteSettings, sites: list[Path],
                       observer: SuiteObserver | None = None) -> list[SuiteResult]:
    """For each of ``sites`` in turn, the suite on all the other sites (joined as one training
    set), scoring the left-out site whole as an external set (docs/protocol.md, Several sites);
    each training set's runs and report in ``<settings.out>/trained-on-<sites>/``; then the
    matrix of trained-on × scored-on in ``<settings.out>/tables/site_matrix.*``."""
    results, folders = [], []
    for left in sites:
        train = [p for p in sites if p != left]
        folder = settings.out / ("trained-on-" + "+".join(site_name(p) for p in train))
        log.info(f"\n##### leave one site out: train on {', '.join(map(str, train))}; score "
                 f"{left} whole")
        base = replace(settings.base, data=Path(",".join(map(str, train))), out=folder / "runs")
        results.append(run_suite(replace(settings, base=base, out=folder,
                                         external=(str(left),)), observer))
        folders.append(folder / "runs")
    t = write_site_matrix(folders, settings.out)
    log.info(f"\nwrote the leave-one-site-out matrix ({len(t)} cells) to {settings.out / 'tables'}")
    return results
