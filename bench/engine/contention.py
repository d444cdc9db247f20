"""Training speed on a machine that is not idle (``python -m bench.speed --contention``;
docs/engines.md, "Threads on a busy machine").

The same training steps (batch 16, the reference engine and the stacked engine) are timed alone
and beside one and two busy processes of the same priority (``python -c "while True: pass"``),
under each OpenMP waiting rule (:mod:`bench.core.openmp`) and at one thread. Every cell is a fresh
process, since OpenMP reads its waiting rule when it loads. The table gives ms per step, the ratio
to one thread under the same load (the collapse a rule must avoid) and the ratio to the fastest
rule alone (what a rule costs on an idle machine).
"""

from __future__ import annotations

import json
import logging
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone

import pandas as pd

from bench.core.errors import BenchError
from bench.core.openmp import DEFAULT_WAIT, WAIT_VARIABLES
from bench.core.provenance import device_info, package_versions
from bench.engine.spec import REFERENCE
from bench.engine.threads import (
    ENV_FROM,
    ENV_LOAD_AWARE,
    ENV_THREADS,
    LIBRARY_VARIABLES,
    apply_threads,
    resolve_threads,
)

log = logging.getLogger(__name__)

BUSY = "while True: pass"
# libgomp's own spin before it sleeps, when a pool has no more threads than CPUs
LIBGOMP_SPIN = "300000"


@dataclass(frozen=True)
class Rule:
    """A thread count and OpenMP waiting rule to time (``threads`` None: every CPU)."""

    label: str
    threads: int | None  # None: the project's default (chosen by the load at start)
    env: dict[str, str] = field(default_factory=dict)  # empty: the project's default applies


def rules(cpus: int) -> list[Rule]:
    """One thread; every CPU with libgomp's own spin (the rule before the project set one), with
    OpenMP's passive wait and with the project's waiting rule; and the project's default (its
    waiting rule and the thread count it chooses by the load at start)."""
    default = " ".join(f"{k}={v}" for k, v in DEFAULT_WAIT.items())
    return [Rule("1 thread", 1, {"GOMP_SPINCOUNT": LIBGOMP_SPIN}),
            Rule(f"{cpus} threads, libgomp's spin (GOMP_SPINCOUNT={LIBGOMP_SPIN})", cpus,
                 {"GOMP_SPINCOUNT": LIBGOMP_SPIN}),
            Rule(f"{cpus} threads, OMP_WAIT_POLICY=PASSIVE", cpus, {"OMP_WAIT_POLICY": "PASSIVE"}),
            Rule(f"{cpus} threads, {default}", cpus, dict(DEFAULT_WAIT)),
            Rule(f"project default ({default}, threads by the load at start)", None, {})]


@dataclass(frozen=True)
class ContentionOptions:
    """What to time: the model, image size, steps and loads (``python -m bench.speed`` flags)."""

    model: str = REFERENCE
    img_size: int = 64
    steps: int = 20
    warmup: int = 3
    busy: tuple[int, ...] = (0, 1, 2)
    engines: tuple[str, ...] = ("reference", "stacked")
    members: int = 2  # models the stacked engine trains at once
    repeats: int = 3  # each cell timed this often in fresh processes; the median is reported


@contextmanager
def busy_processes(n: int) -> Iterator[None]:
    """``n`` processes that keep one core each busy at this process's priority."""
    procs = [subprocess.Popen([sys.executable, "-c", BUSY]) for _ in range(n)]
    try:
        time.sleep(0.3 if n else 0)  # let them start spinning
        yield
    finally:
        for proc in procs:
            proc.kill()
        for proc in procs:
            proc.wait()


def child_ms_per_step(engine: str, model: str, img_size: int, steps: int, warmup: int,
                      members: int) -> float:
    """ms per optimizer step of ``engine`` in this process (its threads already set)."""
    import torch

    from bench.data.cache import ImageCache
    from bench.engine.speed import time_ours, time_stacked

    gen = torch.Generator().manual_seed(0)
    n = 64
    images = torch.randint(0, 256, (n, 3, img_size, img_size), generator=gen, dtype=torch.uint8)
    cache = ImageCache(images, torch.arange(n) % 2, pd.DataFrame({"path": [""] * n}))
    if engine == "reference":
        return 16 / time_ours(model, cache, "cpu", steps, warmup) * 1000
    return 16 * members / time_stacked(model, cache, "cpu", steps, warmup, members) * 1000


def child_main(argv: list[str]) -> None:
    """Entry of one timed process: ``ENGINE MODEL IMG_SIZE STEPS WARMUP MEMBERS THREADS``."""
    engine, model, size, steps, warmup, members, threads = argv
    used = apply_threads(resolve_threads(int(threads) if threads != "all" else None))
    ms = child_ms_per_step(engine, model, int(size), int(steps), int(warmup), int(members))
    print(json.dumps({"ms_per_step": ms, "threads": used["threads"],
                      "threads_from": used["threads_from"], "openmp_wait": used["openmp_wait"]}))


def time_cell(rule: Rule, engine: str, o: ContentionOptions) -> dict:
    """One timing of ``rule`` × ``engine`` in a fresh process (the caller sets the load)."""
    drop = {*WAIT_VARIABLES, *LIBRARY_VARIABLES, ENV_THREADS, ENV_FROM, ENV_LOAD_AWARE}
    env = {k: v for k, v in os.environ.items() if k not in drop}
    env.update(rule.env)
    args = [engine, o.model, str(o.img_size), str(o.steps), str(o.warmup), str(o.members),
            str(rule.threads) if rule.threads else "all"]
    code = "import sys; from bench.engine.contention import child_main; child_main(sys.argv[1:])"
    done = subprocess.run([sys.executable, "-c", code, *args], env=env, capture_output=True,
                          text=True, timeout=3600)
    if done.returncode != 0:
        raise BenchError(f"`contention`: the timed process for {rule.label}, {engine} engine "
                         f"failed: {(done.stderr.strip().splitlines() or ['?'])[-1]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def measure_contention(o: ContentionOptions, cpus: int) -> pd.DataFrame:
    """The table: one row per engine × rule × load (median ms per step over ``repeats``)."""
    rows = []
    for busy in o.busy:
        with busy_processes(busy):
            times: dict[tuple[str, str], list[float]] = {}
            threads: dict[tuple[str, str], set[int]] = {}
            for _ in range(o.repeats):  # rules interleaved, so a passing disturbance hits all
                for engine in o.engines:
                    for rule in rules(cpus):
                        cell = time_cell(rule, engine, o)
                        times.setdefault((engine, rule.label), []).append(cell["ms_per_step"])
                        threads.setdefault((engine, rule.label), set()).add(
                            cell.get("threads", rule.threads))
        for (engine, label), values in times.items():
            ms = statistics.median(values)
            log.info(f"{engine:>9} | {busy} busy | {label}: {ms:.0f} ms/step")
            used = ",".join(str(t) for t in sorted(threads[(engine, label)]))
            rows.append({"engine": engine, "rule": label, "busy_processes": busy, "threads": used,
                         "ms_per_step": round(ms, 1), "runs": len(values),
                         "ms_spread": round(max(values) - min(values), 1)})
    table = pd.DataFrame(rows)
    one = table[table.rule == "1 thread"].set_index(["engine", "busy_processes"]).ms_per_step
    table["vs_1_thread"] = [round(r.ms_per_step / one[(r.engine, r.busy_processes)], 2)
                            for r in table.itertuples()]
    alone = table[table.busy_processes == 0].groupby("engine").ms_per_step.min()
    table["vs_fastest_alone"] = [round(r.ms_per_step / alone[r.engine], 2)
                                 if alone.get(r.engine, 0) > 0 else float("nan")
                                 for r in table.itertuples()]
    return table


def contention_header(o: ContentionOptions, cpus: int) -> str:
    info = device_info("cpu")
    return (f"CPU: {info.get('cpu')} ({cpus} CPUs in the affinity mask); torch "
            f"{package_versions()['torch']}; {o.model} at {o.img_size} px, batch 16 (stacked: "
            f"{o.members} models at once), {o.steps} timed steps after {o.warmup} warm-up, median "
            f"of {o.repeats} fresh processes per cell; busy processes: `python -c \"{BUSY}\"` at "
            f"the benchmark's priority (nice {os.nice(0)}); {datetime.now(timezone.utc).date()}")
