"""The suite's grid of runs on a cluster or several local processes, through submitit.

Each job is one ``bench.run`` configuration, i.e. one run folder, and the run folder is the unit of
truth: a job whose run is finished does nothing, and a job that died (pre-emption, time limit, a
killed process, a lost node) is submitted again, up to ``retries`` times, and resumes from its
finished stages. A job that fails on bad input (a :class:`models.errors.UserError`: one line, exit
code 2 on the command line) is not retried; its message and log path are reported. Executors:

* ``local``: subprocesses on this machine (submitit's LocalExecutor); with ``gpus_per_job`` each
  job gets its own GPUs (``CUDA_VISIBLE_DEVICES``), so ``--jobs`` defaults to one job per GPU.
* ``slurm``: sbatch jobs (submitit's SlurmExecutor) with partition, GPUs, CPUs, memory, time and
  any extra ``#SBATCH`` parameter.
* ``debug``: in this process, one job at a time (submitit's DebugExecutor), for debugging.

Ctrl-C cancels the jobs that are queued or running. ``submitit`` is the optional extra
``cluster`` (``pip install -e ".[cluster]"``).
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from tqdm.auto import tqdm

from bench.errors import BenchError
from models.errors import UserError

EXECUTORS = ("inline", "local", "slurm", "debug")


@dataclass(frozen=True)
class ClusterConfig:
    """Where and how the suite's jobs run (``bench.suite`` flags or its TOML ``--config``)."""

    executor: str = "inline"
    jobs: int = 0  # at most this many at once; 0: local = one per GPU (or 1), slurm = all
    gpus_per_job: int = 0
    cpus_per_job: int = 2
    mem_gb: float = 16.0
    timeout_min: int = 240
    partition: str = ""
    slurm_extra: tuple[tuple[str, str], ...] = ()
    retries: int = 2
    gpus: tuple[int, ...] = ()  # local: the GPUs to place jobs on (default: all visible)


@dataclass
class JobOutcome:
    """How one job ended."""

    label: str
    status: str  # "ok" | "FAILED"
    seconds: float = 0.0
    run_dir: Path | None = None
    message: str = ""
    log: str = ""
    attempts: int = 0
    started: float = 0.0
    ended: float = 0.0


def run_job(argv: list[str]) -> dict:
    """The job itself (runs on the worker): one ``bench.run`` configuration. Bad input is
    returned, not raised, so it is reported once and never retried."""
    from bench import run

    t0 = time.time()
    try:
        result = run.run(run.options_from_argv(argv))
    except UserError as exc:
        return {"status": "error", "error": str(exc), "started": t0, "ended": time.time()}
    return {"status": "ok" if result.ok else "failed", "run_dir": str(result.run_dir),
            "started": t0, "ended": time.time()}


def _submitit():
    try:
        import submitit
    except ImportError:
        raise BenchError("--executor local/slurm/debug needs submitit: pip install -e "
                         "\".[cluster]\"") from None
    return submitit


def make_executor(cfg: ClusterConfig, log_dir: Path):
    """The submitit executor for ``cfg`` (its logs and job files under ``log_dir``)."""
    submitit = _submitit()
    if cfg.executor == "debug":
        return submitit.DebugExecutor(folder=log_dir)
    if cfg.executor == "local":
        ex = submitit.LocalExecutor(folder=log_dir)
        ex.update_parameters(timeout_min=cfg.timeout_min)
        return ex
    if cfg.executor == "slurm":
        ex = submitit.SlurmExecutor(folder=log_dir)
        ex.update_parameters(**slurm_parameters(cfg))
        return ex
    raise BenchError(f"--executor {cfg.executor!r}: choose from {', '.join(EXECUTORS)}")


def slurm_parameters(cfg: ClusterConfig) -> dict:
    """submitit's SLURM parameters for one job of ``cfg``."""
    params = {"time": cfg.timeout_min, "cpus_per_task": cfg.cpus_per_job,
              "mem": f"{cfg.mem_gb:g}GB", "job_name": "fus2bench",
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

    return _make_sbatch_string(command="python -u -m submitit.core._submit", folder=log_dir,
                               **slurm_parameters(cfg))


def _gpu_slots(cfg: ClusterConfig) -> list[tuple[int, ...]]:
    if cfg.executor != "local" or not cfg.gpus_per_job:
        return []
    import torch

    gpus = list(cfg.gpus) or list(range(torch.cuda.device_count()))
    if len(gpus) < cfg.gpus_per_job:
        raise BenchError(f"--gpus-per-job {cfg.gpus_per_job}: only {len(gpus)} GPU(s) visible here")
    k = cfg.gpus_per_job
    return [tuple(gpus[i:i + k]) for i in range(0, len(gpus) - k + 1, k)]


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return (text[-1] if text else type(exc).__name__)[:300]


def failed_count(outcomes) -> int:
    """Jobs that ended without a result (the progress bar's ``failed``): a count, never a sum of
    their end times."""
    return sum(1 for o in outcomes if o.status == "FAILED" and o.attempts and o.ended)


def run_grid(jobs: list[tuple[str, list[str]]], cfg: ClusterConfig, log_dir: Path,
             progress: bool = True, observe: Callable[[object], None] | None = None,
             poll_s: float = 0.5) -> list[JobOutcome]:
    """Run ``(label, bench.run argv)`` jobs on ``cfg``'s executor, at most ``cfg.jobs`` at once
    (local: one per GPU slot), resubmitting died jobs; returns one outcome per job, in order.
    ``observe`` is called with every submitted submitit job (e.g. to watch or cancel it)."""
    executor = make_executor(cfg, log_dir)
    slots = _gpu_slots(cfg)
    width = cfg.jobs or (len(slots) if slots else (1 if cfg.executor != "slurm" else len(jobs)))
    if slots:
        width = min(width, len(slots))
    outcomes = {label: JobOutcome(label, "FAILED") for label, _ in jobs}
    pending = deque((label, argv) for label, argv in jobs)
    running: dict = {}  # submitit job -> (label, argv, gpu slot)
    bar = tqdm(total=len(jobs), desc="jobs", unit="job", disable=not progress)

    def postfix() -> None:
        bar.set_postfix(running=len(running), failed=failed_count(outcomes.values()))

    try:
        while pending or running:
            while pending and len(running) < width:
                label, argv = pending.popleft()
                slot = None
                if slots:
                    slot = next(s for s in slots if s not in {v[2] for v in running.values()})
                    executor.update_parameters(visible_gpus=slot, gpus_per_node=len(slot))
                job = executor.submit(run_job, argv)
                outcomes[label].attempts += 1
                running[job] = (label, argv, slot)
                if observe is not None:
                    observe(job)
                postfix()
            finished = list(running) if cfg.executor == "debug" else [j for j in running
                                                                       if j.done()]
            for job in finished:
                label, argv, _ = running.pop(job)
                out = outcomes[label]
                log = str(getattr(job.paths, "stderr", ""))
                try:
                    res = job.result()
                except Exception as exc:  # noqa: BLE001 - the job died: resubmit, it resumes
                    if out.attempts <= cfg.retries:
                        tqdm.write(f"{label}: the job died ({_first_line(exc)}); resubmitting "
                                   f"(attempt {out.attempts + 1} of {cfg.retries + 1}), it "
                                   "resumes from its finished stages")
                        pending.appendleft((label, argv))
                        continue
                    out.message, out.log, out.ended = _first_line(exc), log, time.time()
                    bar.update(1)
                    postfix()
                    continue
                out.started, out.ended = res["started"], res["ended"]
                out.seconds, out.log = res["ended"] - res["started"], log
                if res["status"] == "error":
                    out.message = res["error"]
                else:
                    out.status = "ok" if res["status"] == "ok" else "FAILED"
                    out.run_dir = Path(res["run_dir"])
                bar.update(1)
                postfix()
            if running and cfg.executor != "debug":
                time.sleep(poll_s)
    except KeyboardInterrupt:
        for job in running:
            job.cancel(check=False)
        raise
    finally:
        bar.close()
    return [outcomes[label] for label, _ in jobs]


def read_config(path: Path) -> dict:
    """A TOML file of ``bench.suite`` settings: keys are the flags' names without dashes
    (``executor = "slurm"``, ``partition = "gpu"``, ``slurm_extra = {qos = "high"}``, ...)."""
    try:
        import tomllib
    except ImportError:  # Python 3.10
        import tomli as tomllib  # type: ignore[no-redef]
    try:
        with open(path, "rb") as f:
            data = tomllib.load(f)
    except OSError as exc:
        raise BenchError(f"--config {path}: cannot read it ({exc.strerror})") from None
    except tomllib.TOMLDecodeError as exc:
        raise BenchError(f"--config {path}: not valid TOML ({exc})") from None
    return {k.replace("-", "_"): v for k, v in data.items()}
