"""The suite's grid of runs on a cluster or several local processes, through submitit.

Each job is one ``bench.engine.runner`` configuration, i.e. one run folder, and the run folder is the unit of
truth: a job whose run is finished does nothing, and a job that died (pre-emption, time limit, a
killed process, a lost node) is submitted again, up to ``retries`` times, and resumes from its
finished stages. A job that fails on bad input (a :class:`models.errors.UserError`: one line, exit
code 2 on the command line) is not retried; its message and log path are reported. Executors:

* ``local``: subprocesses on this machine (submitit's LocalExecutor); with ``gpus_per_job`` each
  job gets its own GPUs (``CUDA_VISIBLE_DEVICES``), so ``--jobs`` defaults to one job per GPU.
* ``slurm``: sbatch jobs (submitit's SlurmExecutor) with partition, GPUs, CPUs, memory, time and
  any extra ``#SBATCH`` parameter.
* ``debug``: in this process, one job at a time (submitit's DebugExecutor), for debugging.

Each job uses as many CPU threads as it was given CPUs (``cpus_per_job``, or ``threads`` set by
hand), never the whole machine: the count is exported (``OMP_NUM_THREADS``, ``MKL_NUM_THREADS``,
``FUS2BENCH_THREADS``, see :mod:`bench.engine.threads`) before the job's Python starts, and the job sizes
torch's pools to it. The local executor's defaults come from the machine's cores: one job with
every core, or ``jobs`` jobs sharing the cores; asking for more than the cores is allowed, with a
warning.

Ctrl-C (SIGINT) or SIGTERM cancels the jobs that are queued or running, then the suite exits
(130). While the grid runs, both signals are the suite's own, even where it was started with
SIGINT ignored (a background job of a script or CI runner): a cancel must never be lost, and the
local executor's job controllers, which are cancelled with SIGINT, must not inherit the ignore.
``submitit`` is the optional extra ``cluster`` (``pip install -e ".[cluster]"``).
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

from tqdm.auto import tqdm

from bench.core.errors import SettingError, console_logging
from bench.engine.spec import RunOptions
from bench.engine.threads import affinity_cpus, setup_lines, thread_environment
from bench.jobs.plan import Job, JobStatus
from models.errors import UserError

log = logging.getLogger(__name__)

EXECUTORS = ("inline", "local", "slurm", "debug")


@dataclass(frozen=True)
class ClusterConfig:
    """Where and how the suite's jobs run (``bench.jobs.suite`` flags or its TOML ``--config``)."""

    executor: str = "inline"
    jobs: int = 0  # at most this many at once; 0: local = one per GPU (or 1), slurm = all
    gpus_per_job: int = 0
    cpus_per_job: int = 0  # 0: local = the cores shared by the jobs at once, slurm = 2, debug = all
    threads: int | None = None  # each job's threads (default: its CPUs)
    mem_gb: float = 0.0  # 0: from the model's size (job_memory_gb)
    timeout_min: int = 240
    signal_delay_s: int = 90  # slurm: USR2 this long before the time limit (checkpoint, requeue)
    partition: str = ""
    slurm_extra: tuple[tuple[str, str], ...] = ()
    retries: int = 2
    gpus: tuple[int, ...] = ()  # local: the GPUs to place jobs on (default: all visible)


@dataclass
class JobOutcome:
    """How one job ended."""

    label: str
    status: JobStatus = JobStatus.FAILED
    seconds: float = 0.0
    run_dir: Path | None = None
    message: str = ""
    log: str = ""  # the job's stderr
    stdout: str = ""
    job_id: str = ""
    attempts: int = 0
    started: float = 0.0
    ended: float = 0.0


SLURM_DEFAULT_CPUS = 2


@dataclass(frozen=True)
class Layout:
    """How the jobs share the CPUs: jobs at once, CPUs per job, and each job's threads."""

    width: int
    cpus: int
    threads: int
    source: str  # where the threads come from, recorded by each run
    warning: str | None = None

    def describe(self, executor: str, cores: int) -> str:
        here = f" ({cores} cores here)" if executor in ("local", "debug") else ""
        return (f"{executor} executor: at most {self.width} job(s) at once, {self.cpus} CPU(s) "
                f"and {self.threads} thread(s) each{here}")


def plan_layout(cfg: ClusterConfig, n_jobs: int, gpu_slots: int = 0,
                cores: int | None = None) -> Layout:
    """Jobs at once and CPUs per job for ``cfg`` on a machine of ``cores`` CPUs (default: this
    process's affinity mask). The local executor never runs more threads than cores unless
    ``jobs`` × ``cpus_per_job`` asks for it, which gets a warning."""
    cores = affinity_cpus() if cores is None else cores
    warning = None
    if cfg.executor == "slurm":
        width, cpus = cfg.jobs or max(1, n_jobs), cfg.cpus_per_job or SLURM_DEFAULT_CPUS
    elif cfg.executor == "debug":
        width, cpus = 1, cfg.cpus_per_job or cores
    else:
        if gpu_slots:
            width = min(cfg.jobs or gpu_slots, gpu_slots)
        elif cfg.jobs:
            width = cfg.jobs
        else:
            width = max(1, cores // cfg.cpus_per_job) if cfg.cpus_per_job else 1
        cpus = cfg.cpus_per_job or max(1, cores // width)
        if width * cpus > cores:
            warning = (f"warning: --jobs {width} x --cpus-per-job {cpus} = {width * cpus} CPUs "
                       f"on {cores} cores: the jobs will compete for the cores and each runs "
                       "slower than its share (leave --jobs or --cpus-per-job out to fit them)")
    threads = cfg.threads or cpus
    return Layout(width, cpus, threads, "--threads" if cfg.threads else "--cpus-per-job",
                  warning)


@dataclass(frozen=True)
class JobResult:
    """What a job returns to the grid (pickled by submitit): how its run ended, its folder, and
    for bad input the one-line message (never retried)."""

    status: JobStatus
    started: float
    ended: float
    run_dir: Path | None = None
    error: str = ""


class RunJob:
    """The job itself (runs on the worker): one run, :func:`bench.engine.runner.run` of the
    job's :class:`RunOptions`, which carry its thread count. Bad input is returned, not raised,
    so it is reported once and never retried. Checkpointable (submitit calls :meth:`checkpoint`
    on the time-limit or pre-emption signal): the job's checkpoint is its run folder's finished
    stages, so it is requeued as it was submitted and resumes from them."""

    def __call__(self, options: RunOptions) -> JobResult:
        from bench.engine.runner import run

        t0 = time.time()
        try:
            with console_logging():  # the job's log shows the run's lines, as bench.run does
                result = run(options)
        except UserError as exc:
            return JobResult(JobStatus.FAILED, t0, time.time(), error=str(exc))
        status = JobStatus.OK if result.ok else JobStatus.FAILED
        return JobResult(status, t0, time.time(), run_dir=Path(result.run_dir))

    def checkpoint(self, *args, **kwargs):
        from submitit.helpers import DelayedSubmission

        with console_logging():
            log.info("checkpoint: requeued; the run resumes from its finished stages")
        return DelayedSubmission(self, *args, **kwargs)


run_job = RunJob()


def job_memory_gb(model: str) -> float:
    """Host memory a job of ``model`` asks for when ``--mem-gb`` is not given: 4 GiB (Python,
    torch, the image cache) plus 32 bytes per parameter (fp32 weights, gradients and Adam's two
    moments, and as much again for activations), rounded up to whole GiB: 5 for Fus2Net, 9 for
    VGG19. A rule of thumb; ``--mem-gb`` overrides it for every job."""
    import math

    from models import create_model
    from models.complexity import count_params

    try:
        params = count_params(create_model(model, pretrained="none"))
    except UserError:  # the job itself says what is wrong with it, once
        return 16.0
    return float(4 + math.ceil(params * 32 / 2**30))


def _submitit():
    try:
        import submitit
    except ImportError:
        raise SettingError("executor", "the local, slurm and debug executors need submitit: "
                           "pip install -e \".[cluster]\"") from None
    return submitit


def make_executor(cfg: ClusterConfig, log_dir: Path, layout: Layout | None = None):
    """The submitit executor for ``cfg`` (its logs and job files under ``log_dir``); each job's
    thread environment is exported before its Python starts."""
    submitit = _submitit()
    layout = layout or plan_layout(cfg, 1)
    setup = setup_lines(layout.threads, layout.source)
    if cfg.executor == "debug":
        return submitit.DebugExecutor(folder=log_dir)
    if cfg.executor == "local":
        # the environment, not setup lines: with setup, submitit starts the job's controller
        # through a shell, and a cancel (SIGINT) would reach that shell instead of the job
        ex = _local_executor(submitit, log_dir, thread_environment(layout.threads, layout.source))
        ex.update_parameters(timeout_min=cfg.timeout_min)
        return ex
    if cfg.executor == "slurm":
        ex = submitit.SlurmExecutor(folder=log_dir)
        ex.update_parameters(**slurm_parameters(cfg, layout), setup=setup)
        return ex
    raise SettingError("executor", f"{cfg.executor!r} is not one of {', '.join(EXECUTORS)}")


def _local_executor(submitit, folder: Path, env: dict[str, str]):
    """submitit's LocalExecutor whose jobs start with ``env`` added to this process's
    environment (set only while a job's controller process is started)."""

    class LocalExecutor(submitit.LocalExecutor):
        def _submit_command(self, command: str):
            saved = {k: os.environ.get(k) for k in env}
            os.environ.update(env)
            try:
                return super()._submit_command(command)
            finally:
                for key, value in saved.items():
                    if value is None:
                        os.environ.pop(key, None)
                    else:
                        os.environ[key] = value

    return LocalExecutor(folder=folder)


def slurm_parameters(cfg: ClusterConfig, layout: Layout | None = None) -> dict:
    """submitit's SLURM parameters for one job of ``cfg``."""
    cpus = layout.cpus if layout is not None else cfg.cpus_per_job or SLURM_DEFAULT_CPUS
    params = {"time": cfg.timeout_min, "cpus_per_task": cpus,
              "mem": f"{cfg.mem_gb or 16:g}GB", "job_name": "fus2bench",
              "signal_delay_s": cfg.signal_delay_s,
              "additional_parameters": dict(cfg.slurm_extra)}
    if cfg.gpus_per_job:
        params["gpus_per_node"] = cfg.gpus_per_job
    if cfg.partition:
        params["partition"] = cfg.partition
    return params


def slurm_script(cfg: ClusterConfig, log_dir: Path) -> str:
    """The sbatch script submitit writes for one job of ``cfg`` (no cluster needed)."""
    _submitit()
    from submitit.slurm.slurm import _make_sbatch_string

    layout = plan_layout(cfg, 1)
    return _make_sbatch_string(command="python -u -m submitit.core._submit", folder=log_dir,
                               setup=setup_lines(layout.threads, layout.source),
                               **slurm_parameters(cfg, layout))


def _gpu_slots(cfg: ClusterConfig) -> list[tuple[int, ...]]:
    if cfg.executor != "local" or not cfg.gpus_per_job:
        return []
    import torch

    gpus = list(cfg.gpus) or list(range(torch.cuda.device_count()))
    if len(gpus) < cfg.gpus_per_job:
        raise SettingError("gpus_per_job", f"{cfg.gpus_per_job} GPUs per job, but only {len(gpus)} "
                           "GPU(s) are visible here")
    k = cfg.gpus_per_job
    return [tuple(gpus[i:i + k]) for i in range(0, len(gpus) - k + 1, k)]


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return (text[-1] if text else type(exc).__name__)[:300]


def failed_count(outcomes) -> int:
    """Jobs that ended without a result (the progress bar's ``failed``): a count, never a sum of
    their end times."""
    return sum(1 for o in outcomes if o.status is JobStatus.FAILED and o.attempts and o.ended)


_GONE = ("BOOT_FAIL", "CANCELLED", "COMPLETED", "DEADLINE", "FAILED", "NODE_FAIL",
         "OUT_OF_MEMORY", "PREEMPTED", "TIMEOUT", "SPECIAL_EXIT")


def slurm_states() -> dict[str, str] | None:
    """Every job SLURM still knows, by id (array tasks as ``<id>_<task>``): its state, from
    squeue (which works without accounting, unlike submitit's sacct); None when squeue fails."""
    import subprocess

    try:
        out = subprocess.run(["squeue", "-h", "-r", "-t", "all", "-o", "%i %T"],
                             capture_output=True, text=True, timeout=30, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return dict(line.split()[:2] for line in out.splitlines() if len(line.split()) >= 2)


def use_squeue_without_accounting() -> bool:
    """Where SLURM accounting is off (no slurmdbd: ``sacct`` fails), point submitit's job-state
    watcher at squeue, which answers from the controller (finished jobs for ``MinJobAge``), in
    the same format; returns True when it did. Without it, submitit warns at every poll and
    cannot see a job that was cancelled or killed before writing its result."""
    import subprocess

    from submitit.slurm.slurm import SlurmJob

    watcher = SlurmJob.watcher
    if getattr(watcher, "_fus2bench_squeue", False):
        return True
    try:
        ok = subprocess.run(["sacct", "-n", "-X", "-j", "1"], capture_output=True,
                            timeout=30).returncode == 0
    except (OSError, subprocess.SubprocessError):
        ok = False
    if ok:
        return False
    query = "echo 'JobID|State|NodeList'; squeue -h -r -t all -o '%i|%T|%N' 2>/dev/null"
    watcher._make_command = lambda: (["sh", "-c", query]
                                     if watcher._registered - watcher._finished else None)
    watcher._fus2bench_squeue = True
    return True


class CancelSignals:
    """SIGINT and SIGTERM as :class:`KeyboardInterrupt` while a grid runs (main thread only: a
    grid run from another thread keeps the process's handlers). Inside :meth:`held` (submitting
    and recording jobs) a signal waits until the jobs are recorded, so every job that was
    submitted is also cancelled; once cancelling, further signals are ignored until it is done."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self) -> None:
        self.holding = False
        self.pending = False

    def _handler(self, signum, frame) -> None:
        if self.holding:
            self.pending = True
            return
        raise KeyboardInterrupt

    @contextmanager
    def installed(self) -> Iterator[CancelSignals]:
        if threading.current_thread() is not threading.main_thread():
            yield self
            return
        saved = {s: signal.getsignal(s) for s in self.SIGNALS}
        for s in self.SIGNALS:
            signal.signal(s, self._handler)
        try:
            yield self
        finally:
            for s, handler in saved.items():
                signal.signal(s, signal.SIG_DFL if handler is None else handler)

    @contextmanager
    def held(self) -> Iterator[None]:
        self.holding = True
        try:
            yield
        except Exception:  # e.g. sbatch killed by the same Ctrl-C (the terminal's process group)
            if self.pending:
                raise KeyboardInterrupt from None
            raise
        finally:
            self.holding = False
        if self.pending:
            raise KeyboardInterrupt

    def cancelling(self) -> None:
        self.holding = True  # a second Ctrl-C must not stop the cancelling half-way


def with_threads(options: RunOptions, layout: Layout) -> RunOptions:
    """A job's options with the thread count its executor gives it (unless set by hand)."""
    if options.threads is not None:
        return options
    return replace(options, threads=layout.threads, threads_from=layout.source)


@dataclass
class _Running:
    """A submitted job: which grid job it runs and on which GPU slot."""

    job: Job
    slot: tuple[int, ...] | None


class _Grid:
    """The state of one :func:`run_grid`: jobs waiting, running and ended, and the progress bar."""

    def __init__(self, jobs: list[Job], cfg: ClusterConfig, log_dir: Path, progress: bool,
                 observe: Callable[[object], None] | None, target: Callable[..., JobResult]):
        self.cfg, self.observe, self.target = cfg, observe, target
        self.slots = _gpu_slots(cfg)
        self.layout = plan_layout(cfg, len(jobs), len(self.slots))
        if self.layout.warning:
            tqdm.write(self.layout.warning)
        if progress:
            tqdm.write(self.layout.describe(cfg.executor, affinity_cpus()))
        self.executor = make_executor(cfg, log_dir, self.layout)
        if cfg.executor == "slurm" and use_squeue_without_accounting() and progress:
            tqdm.write("note: SLURM accounting is off here (sacct fails): job states come from "
                       "squeue")
        self.memory: dict[str, float] = {}
        self.outcomes = {j.label: JobOutcome(j.label) for j in jobs}
        self.pending: deque[Job] = deque(jobs)
        self.running: dict = {}  # submitit job -> _Running
        self.gone_since: dict = {}  # slurm job -> when squeue first showed it ended, no result
        self.signals = CancelSignals()
        self.bar = tqdm(total=len(jobs), desc="jobs", unit="job", disable=not progress)

    def postfix(self) -> None:
        self.bar.set_postfix(running=len(self.running),
                             failed=failed_count(self.outcomes.values()))

    def next_batch(self) -> list[_Running]:
        """Jobs to submit now: as many as fit beside the running ones, each on a free GPU slot."""
        batch: list[_Running] = []
        while self.pending and len(self.running) + len(batch) < self.layout.width:
            slot = None
            if self.slots:
                used = {r.slot for r in self.running.values()} | {b.slot for b in batch}
                slot = next(s for s in self.slots if s not in used)
            batch.append(_Running(self.pending.popleft(), slot))
        return batch

    def resource_key(self, item: _Running) -> object:
        """Jobs with one key share their resources (one submission, a job array on SLURM)."""
        if self.cfg.executor == "slurm" and not self.cfg.mem_gb:
            model = item.job.options.model
            return self.memory.setdefault(model, job_memory_gb(model))
        return item.slot

    def submit(self, batch: list[_Running]) -> None:
        groups: dict = {}
        for item in batch:
            groups.setdefault(self.resource_key(item), []).append(item)
        for key, group in groups.items():
            if self.slots:
                self.executor.update_parameters(visible_gpus=key, gpus_per_node=len(key))
            elif self.cfg.executor == "slurm" and not self.cfg.mem_gb:
                self.executor.update_parameters(mem=f"{key:g}GB")
            with self.signals.held():  # a Ctrl-C now waits until the jobs are recorded
                submitted = self.submit_group(group)
                for item, job in zip(group, submitted, strict=True):
                    if self.cfg.executor == "local":
                        # a local job writes its result before its process ends: no wait
                        # (submitit's 15 s) for a slow shared file system
                        job._results_timeout_s = 1
                    outcome = self.outcomes[item.job.label]
                    outcome.attempts += 1
                    outcome.job_id = str(job.job_id)
                    self.running[job] = item
            for job in submitted if self.observe is not None else ():
                self.observe(job)
        if batch:
            self.postfix()

    def submit_group(self, group: list[_Running]) -> list:
        """Submit jobs that share their resources: one SLURM job array when there are several,
        else one by one."""
        args = [(self.target, with_threads(item.job.options, self.layout)) for item in group]
        if self.cfg.executor == "slurm" and len(group) > 1:
            with self.executor.batch():
                return [self.executor.submit(*a) for a in args]
        return [self.executor.submit(*a) for a in args]

    def died(self, job, why: str) -> None:
        """A job that ended without a result: submitted again (it resumes) while retries last."""
        item = self.running.pop(job)
        out = self.outcomes[item.job.label]
        self.record_logs(job, out)
        if out.attempts <= self.cfg.retries:
            tqdm.write(f"{out.label}: the job died ({why}); resubmitting (attempt "
                       f"{out.attempts + 1} of {self.cfg.retries + 1}), it resumes from its "
                       "finished stages")
            self.pending.appendleft(item.job)
        else:
            out.message, out.ended = why, time.time()
            self.bar.update(1)
        self.postfix()

    @staticmethod
    def record_logs(job, out: JobOutcome) -> None:
        out.log = str(getattr(job.paths, "stderr", ""))
        out.stdout = str(getattr(job.paths, "stdout", ""))

    def left_queue(self) -> list:
        """SLURM jobs that ended without writing a result (seen twice: the result may lag)."""
        states = slurm_states() if self.cfg.executor == "slurm" and self.running else None
        if states is None:
            return []
        gone = []
        for job in self.running:
            state = states.get(str(job.job_id), "gone")
            if (state in _GONE or state == "gone") and not job.paths.result_pickle.exists():
                if job in self.gone_since and time.time() - self.gone_since[job] > 3:
                    gone.append((job, state))
                self.gone_since.setdefault(job, time.time())
            else:
                self.gone_since.pop(job, None)
        return gone

    def finish(self, job) -> None:
        """Record a job that ended: its result, or a death (resubmitted)."""
        try:
            res = job.result()
        except Exception as exc:  # noqa: BLE001 - the job died: resubmit, it resumes
            self.died(job, _first_line(exc))
            return
        item = self.running.pop(job)
        out = self.outcomes[item.job.label]
        self.record_logs(job, out)
        out.started, out.ended, out.seconds = res.started, res.ended, res.ended - res.started
        out.status, out.message, out.run_dir = res.status, res.error, res.run_dir
        self.bar.update(1)
        self.postfix()

    def poll(self) -> None:
        """One round: what ended is recorded, what left the SLURM queue without a result died."""
        finished = list(self.running) if self.cfg.executor == "debug" else [
            j for j in self.running if j.done()]
        for job, state in self.left_queue():
            if job not in finished:
                self.died(job, f"SLURM job {job.job_id} ended {state} without a result")
        for job in finished:
            self.finish(job)

    def cancel(self) -> None:
        self.signals.cancelling()
        for job in self.running:
            job.cancel(check=False)
        if self.running:
            tqdm.write(f"cancelled {len(self.running)} queued or running job(s): "
                       + " ".join(str(j.job_id) for j in self.running))


def run_grid(jobs: list[Job], cfg: ClusterConfig, log_dir: Path, progress: bool = True,
             observe: Callable[[object], None] | None = None, poll_s: float = 0.5,
             target: Callable[..., JobResult] = run_job) -> list[JobOutcome]:
    """Run ``jobs`` on ``cfg``'s executor, at most ``cfg.jobs`` at once (local: one per GPU
    slot), resubmitting died jobs; returns one outcome per job, in order. Each job is submitted
    as its :class:`RunOptions` object (with the executor's thread count unless it sets one).
    ``observe`` is called with every submitted submitit job (e.g. to watch or cancel it);
    ``target`` is what each job runs (``run_job``; tests wrap it). On SLURM the jobs submitted
    together with the same resources form one job array, each asks for memory by its model's
    size unless ``mem_gb`` is set, and a job that leaves the queue without a result (cancelled,
    killed) counts as died even where accounting (sacct) is off."""
    grid = _Grid(list(jobs), cfg, log_dir, progress, observe, target)
    with grid.signals.installed():
        try:
            while grid.pending or grid.running:
                grid.submit(grid.next_batch())
                grid.poll()
                if grid.running and cfg.executor != "debug":
                    time.sleep(poll_s)
        except KeyboardInterrupt:
            grid.cancel()
            raise
        finally:
            grid.bar.close()
    return [grid.outcomes[j.label] for j in jobs]
