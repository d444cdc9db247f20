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
4. the CPUs in the process's affinity mask (``taskset``, cgroups, a binding scheduler), less
   the CPUs other processes keep busy when the run starts (``FUS2BENCH_LOAD_AWARE=0``: all of
   them). A pool that shares a core with another busy program waits for it at every parallel
   region; one thread fewer keeps the run near one-thread speed instead of several times slower
   (``python -m bench.speed --contention``; docs/engines.md, "Threads on a busy machine").

torch's inter-op pool can be sized only once per process, before any parallel work: the executors
therefore set the environment before the job's Python starts, and :func:`apply_threads` sets the
pools at the start of a job and of a ``bench.engine.runner``; a second run in the same process keeps the
inter-op size the first one set, and the run records the sizes it actually used.
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from bench.core.openmp import WAIT_VARIABLES, child_environment, load_average, wait_rule

log = logging.getLogger(__name__)

ENV_THREADS = "FUS2BENCH_THREADS"
ENV_FROM = "FUS2BENCH_THREADS_FROM"
# "0": every CPU of the affinity mask, whatever other processes do (resolve_threads)
ENV_LOAD_AWARE = "FUS2BENCH_LOAD_AWARE"
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
                    cpus: int | None = None, source: str = "--threads",
                    busy: float | None = None) -> ThreadCount:
    """The thread count of a run: ``requested`` (``--threads``, or ``source``), else the executor's
    ``FUS2BENCH_THREADS``, else ``SLURM_CPUS_PER_TASK`` (at most ``cpus``), else ``cpus`` (default:
    the affinity mask's CPUs) less the CPUs other processes keep busy when the run starts
    (``busy``, measured by :func:`busy_elsewhere` when ``cpus`` is this process's own and
    ``FUS2BENCH_LOAD_AWARE`` is not ``0``): a pool that shares a core with a busy program waits for
    it at every parallel region (docs/engines.md, "Threads on a busy machine")."""
    if requested is not None:
        return ThreadCount(int(requested), source)
    env = os.environ if environ is None else environ
    measured = cpus is None
    cpus = affinity_cpus() if cpus is None else cpus
    given = _positive(env.get(ENV_THREADS))
    if given is not None:
        return ThreadCount(given, env.get(ENV_FROM) or ENV_THREADS)
    slurm = _positive(env.get("SLURM_CPUS_PER_TASK"))
    if slurm is not None:
        return ThreadCount(min(slurm, cpus), "SLURM_CPUS_PER_TASK")
    if busy is None and measured and env.get(ENV_LOAD_AWARE, "1") != "0":
        busy = busy_elsewhere()
    if busy is not None and cpus > 1:
        taken = math.floor(busy + 0.5)  # CPUs' worth of other processes' work, rounded
        if taken >= 1:
            return ThreadCount(max(1, cpus - taken),
                               f"affinity, {busy:.1f} of {cpus} CPUs busy at start")
    return ThreadCount(cpus, "affinity")


def _cpu_ticks(cpus: set[int]) -> int | None:
    """Busy clock ticks so far of the CPUs ``cpus`` (``/proc/stat``; None where there is none)."""
    try:
        lines = Path("/proc/stat").read_text().splitlines()
    except OSError:
        return None
    busy = 0
    for line in lines:
        name, *fields = line.split()
        if name.startswith("cpu") and name[3:].isdigit() and int(name[3:]) in cpus:
            user, nice, system, _idle, _iowait, irq, softirq, steal = map(int, fields[:8])
            busy += user + nice + system + irq + softirq + steal
    return busy


def busy_elsewhere(interval: float = 0.25) -> float | None:
    """CPUs' worth of work that other processes do on this process's CPUs, sampled over
    ``interval`` seconds (this process's own CPU time taken out); None where the system does not
    say (no ``/proc/stat``)."""
    try:
        cpus = os.sched_getaffinity(0)
    except (AttributeError, OSError):
        return None
    tick = os.sysconf("SC_CLK_TCK")
    first, own = _cpu_ticks(cpus), os.times()
    time.sleep(interval)
    last, own_after = _cpu_ticks(cpus), os.times()
    if first is None or last is None:
        return None
    mine = (own_after.user + own_after.system) - (own.user + own.system)
    return max(0.0, ((last - first) / tick - mine) / interval)


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
    log.info(f"note: {count.source} {count.threads} is more than the {cpus} CPU(s) this process may "
             f"run on; using {cpus} thread(s)")
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
