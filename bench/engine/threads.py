"""How many CPU threads a run uses, and setting them before the run does any work.

A run sizes torch's intra-op and inter-op thread pools (and, through the environment, OpenMP's,
MKL's and OpenBLAS's) to the CPUs it was given, never to the whole machine: two jobs that each use
every core of a shared machine spin against each other (on the 2-core development machine a
Fus2Net fit that takes about 90 s alone took over 20 minutes beside one other 2-thread job). The
count comes from, first to last:

1. ``--threads N`` (``bench.engine.runner``, ``bench.jobs.suite``), set by hand;
2. ``FUS2BENCH_THREADS`` in the environment, which the suite's executors set for each job from
   ``--cpus-per-job`` (``FUS2BENCH_THREADS_FROM`` names the origin, recorded with the run);
3. ``SLURM_CPUS_PER_TASK``, the scheduler's allocation (which a cluster without CPU binding,
   ``TaskPlugin=task/none``, does not enforce), at most the CPUs of the affinity mask;
4. the CPUs in the process's affinity mask (``taskset``, cgroups, a binding scheduler).

torch's inter-op pool can be sized only once per process, before any parallel work: the executors
therefore set the environment before the job's Python starts, and :func:`apply_threads` sets the
pools at the start of a job and of a ``bench.engine.runner``; a second run in the same process keeps the
inter-op size the first one set, and the run records the sizes it actually used.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from bench.core.openmp import WAIT_VARIABLES, child_environment, load_average, wait_rule

ENV_THREADS = "FUS2BENCH_THREADS"
ENV_FROM = "FUS2BENCH_THREADS_FROM"
# the thread pools of the native libraries the run loads, read when each starts
LIBRARY_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


@dataclass(frozen=True)
class ThreadCount:
    """The CPU threads a run is to use and where that number came from."""

    threads: int
    source: str  # "--threads", "--cpus-per-job", "SLURM_CPUS_PER_TASK", "affinity", ...


def affinity_cpus() -> int:
    """The CPUs this process may run on (its affinity mask; the CPU count where there is none)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        return os.cpu_count() or 1


def _positive(text: str | None) -> int | None:
    try:
        value = int(str(text).strip())
    except (TypeError, ValueError):
        return None
    return value if value > 0 else None


def resolve_threads(requested: int | None = None, environ: Mapping[str, str] | None = None,
                    cpus: int | None = None, source: str = "--threads") -> ThreadCount:
    """The thread count of a run: ``requested`` (``--threads``, or ``source``), else the executor's
    ``FUS2BENCH_THREADS``, else ``SLURM_CPUS_PER_TASK`` (at most ``cpus``), else ``cpus`` (default:
    the affinity mask's CPUs)."""
    if requested is not None:
        return ThreadCount(int(requested), source)
    env = os.environ if environ is None else environ
    cpus = affinity_cpus() if cpus is None else cpus
    given = _positive(env.get(ENV_THREADS))
    if given is not None:
        return ThreadCount(given, env.get(ENV_FROM) or ENV_THREADS)
    slurm = _positive(env.get("SLURM_CPUS_PER_TASK"))
    if slurm is not None:
        return ThreadCount(min(slurm, cpus), "SLURM_CPUS_PER_TASK")
    return ThreadCount(cpus, "affinity")


def thread_environment(threads: int, source: str) -> dict[str, str]:
    """The environment a job needs before its Python starts: the native libraries' pool sizes
    and the count with its origin for :func:`resolve_threads`."""
    env = {name: str(threads) for name in LIBRARY_VARIABLES}
    env.update({ENV_THREADS: str(threads), ENV_FROM: source, **child_environment()})
    return env


def setup_lines(threads: int, source: str) -> list[str]:
    """``export`` lines setting :func:`thread_environment` (submitit's ``setup`` lines of the
    sbatch script)."""
    return [f"export {k}={v}" for k, v in thread_environment(threads, source).items()]


def capped(count: ThreadCount, cpus: int | None = None) -> ThreadCount:
    """``count``, at most the ``cpus`` this process may run on (default: its affinity mask's),
    said in a note when it is more: more threads than CPUs only spin against each other, and a
    huge count (``--threads 100000``) exhausts memory starting them."""
    cpus = affinity_cpus() if cpus is None else cpus
    if count.threads <= cpus:
        return count
    print(f"note: {count.source} {count.threads} is more than the {cpus} CPU(s) this process may "
          f"run on; using {cpus} thread(s)", flush=True)
    return ThreadCount(cpus, f"{count.source}, capped to the CPUs")


def apply_threads(count: ThreadCount) -> dict:
    """Size this process's thread pools to ``count``, at most the CPUs it may run on
    (:func:`capped`; the environment too, for child processes) and return what it uses:
    ``{"threads", "interop_threads", "threads_from"}``."""
    import torch

    count = capped(count)
    os.environ.update({name: str(count.threads) for name in LIBRARY_VARIABLES})
    torch.set_num_threads(count.threads)
    if torch.get_num_interop_threads() != count.threads:
        try:
            torch.set_num_interop_threads(count.threads)
        except RuntimeError:  # sized once already, or parallel work has started: kept, recorded
            pass
    try:  # numpy's BLAS and OpenMP pools loaded before the environment was set
        from threadpoolctl import threadpool_limits

        threadpool_limits(count.threads)
    except ImportError:  # scikit-learn's dependency; without it only torch's pools are sized
        pass
    return {"threads": torch.get_num_threads(), "interop_threads": torch.get_num_interop_threads(),
            "threads_from": count.source, **wait_rule().record(), "load_at_start": load_average()}


def current_pools() -> dict:
    """This process's pool sizes and thread environment as they are now (a job's view before it
    sets anything: what its executor gave it)."""
    import torch

    return {"threads": torch.get_num_threads(), "interop_threads": torch.get_num_interop_threads(),
            **{name: os.environ.get(name) for name in (*LIBRARY_VARIABLES, ENV_THREADS, ENV_FROM,
                                                       *WAIT_VARIABLES)}}
