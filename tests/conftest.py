"""Shared fixtures: small data sets generated in temporary folders (no large files in git)."""

from __future__ import annotations

import inspect
import os
import resource
import shutil
import time
from pathlib import Path

import pytest

from bench.data.synthetic import PhantomSpec, generate
from tests.helpers import EXECUTOR_SUITE, write_image

# Runs size their thread pools by the load when they start (bench/engine/threads.py); tests compare
# results whose last bits depend on the thread count, so here every run takes all its CPUs (the
# tests of the load rule set the load themselves).
os.environ.setdefault("FUS2BENCH_LOAD_AWARE", "0")


def _worker_threads(environ=os.environ) -> int | None:
    """Under pytest-xdist (``./run_all.sh test`` runs the suite on several workers) each worker's
    runs get an equal share of the CPUs, never all of them: two workers that each spin a pool over
    every core wait for each other at every parallel region (docs/engines.md, "Threads on a busy
    machine"). ``None`` outside xdist."""
    count = environ.get("PYTEST_XDIST_WORKER_COUNT")
    if not environ.get("PYTEST_XDIST_WORKER") or not count:
        return None
    return max(1, len(os.sched_getaffinity(0)) // max(1, int(count)))


if (_share := _worker_threads()) is not None:
    # the executors' own variables (bench.engine.threads): runs and the processes tests start read them
    os.environ.setdefault("FUS2BENCH_THREADS", str(_share))
    os.environ.setdefault("FUS2BENCH_THREADS_FROM", "pytest-xdist worker share")
    for _name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ.setdefault(_name, str(_share))

# shared (module- or session-scoped) fixtures cheap enough for the fast loop; every other shared
# fixture of tests/ builds a data set, trains or starts a service, so only slow tests may use it
CHEAP_SHARED = {"tiny_synthetic", "net"}

# The fast loop's budget (pytest -m "not slow"): a test without the slow mark may spend at most this
# much CPU time (this process and the child processes it waited for) in its own set-up, call and
# tear-down. CPU time, not wall time, so a busy machine does not fail a fast test; a wall-clock
# ceiling far above it catches a test that sleeps or waits. FUS2BENCH_TEST_BUDGET="CPU_S[,WALL_S]"
# changes it, "off" turns it off (a debugger, coverage). 6 s leaves a margin over the ~2 s the slow
# mark names, so a test near the line does not fail on CPU-time noise.
FAST_BUDGET = (6.0, 60.0)


def fast_budget(text: str | None) -> tuple[float, float] | None:
    """The budget ``FUS2BENCH_TEST_BUDGET`` asks for (``None``: off)."""
    text = (text or "").strip()
    if text.lower() == "off":
        return None
    if not text:
        return FAST_BUDGET
    cpu, _, wall = text.partition(",")
    try:
        return float(cpu), float(wall) if wall else FAST_BUDGET[1]
    except ValueError:
        raise pytest.UsageError(f"FUS2BENCH_TEST_BUDGET={text!r}: give CPU seconds, optionally "
                                "',WALL_SECONDS', or 'off'") from None


_BUDGET = pytest.StashKey[tuple[float, float] | None]()


def pytest_configure(config):
    config.stash[_BUDGET] = fast_budget(os.environ.get("FUS2BENCH_TEST_BUDGET"))


def _cpu_seconds() -> float:
    own, children = (resource.getrusage(w) for w in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN))
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


_STARTED = pytest.StashKey[tuple[float, float]]()


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item):
    item.stash[_STARTED] = (_cpu_seconds(), time.perf_counter())


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """An unmarked test whose set-up and call outgrow the fast loop's budget fails, naming what to
    do (mark it ``slow`` or make it cheaper), so ``pytest -m "not slow"`` stays a fast loop."""
    outcome = yield
    report = outcome.get_result()
    budget = item.config.stash.get(_BUDGET, None)
    if (call.when != "call" or not report.passed or budget is None or _STARTED not in item.stash
            or item.get_closest_marker("slow")):
        return
    cpu0, wall0 = item.stash[_STARTED]
    cpu, wall = _cpu_seconds() - cpu0, time.perf_counter() - wall0
    if cpu > budget[0] or wall > budget[1]:
        report.outcome = "failed"
        report.longrepr = (f"{item.nodeid} took {cpu:.1f} s of CPU ({wall:.1f} s wall) without "
                           f"the slow mark (budget {budget[0]:g} s CPU, {budget[1]:g} s wall): "
                           "mark it @pytest.mark.slow or make it cheaper")


# tests that share one expensive session fixture or one service run on one xdist worker
# (``--dist loadgroup``): the inline suite each executor test compares with is then built once, and
# the local SLURM cluster's 2 CPUs serve one test at a time
SERIAL_GROUPS = {"inline_suite": "executors", "slurm_cluster": "executors"}


@pytest.hookimpl(tryfirst=True)  # before xdist reads the groups (its hook names them in the ids)
def pytest_collection_modifyitems(config, items):
    """``pytest -m "not slow"`` stays fast: a test not marked ``slow`` that uses an expensive
    shared fixture (directly or through another fixture) stops the collection, naming both.
    Tests of :data:`SERIAL_GROUPS` and those marked ``slurm`` share one xdist worker."""
    here = Path(__file__).resolve().parent
    wrong = []
    for item in items:
        groups = {g for name, g in SERIAL_GROUPS.items() if name in item.fixturenames}
        if item.get_closest_marker("slurm"):
            groups.add("executors")
        info = getattr(item, "_fixtureinfo", None)
        for name in item.fixturenames if info is not None else ():
            for d in (info.name2fixturedefs.get(name) or ())[-1:]:
                if d.scope == "module" and name not in CHEAP_SHARED:
                    groups.add(item.module.__name__)  # its module's fixture is built once
        for group in sorted(groups)[:1]:
            item.add_marker(pytest.mark.xdist_group(group))
        info = getattr(item, "_fixtureinfo", None)
        if info is None or item.get_closest_marker("slow"):
            continue
        for name in item.fixturenames:
            defs = info.name2fixturedefs.get(name) or ()
            for d in defs[-1:]:
                source = Path(inspect.getsourcefile(d.func) or "").resolve()
                if d.scope in ("module", "session") and name not in CHEAP_SHARED \
                        and source.is_relative_to(here):
                    wrong.append(f"{item.nodeid} uses {name}")
    if wrong:
        raise pytest.UsageError("mark these tests @pytest.mark.slow (their shared fixture "
                                "builds data, trains or starts a service):\n  "
                                + "\n  ".join(wrong))


@pytest.fixture(autouse=True)
def _thread_pools_restored():
    """Runs size this process's thread pools (bench.engine.threads); each test leaves them as it found
    them, so one test's ``--threads 1`` never slows the tests after it."""
    import torch

    threads = torch.get_num_threads()
    env = {k: os.environ.get(k) for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS",
                                          "OPENBLAS_NUM_THREADS")}
    yield
    torch.set_num_threads(threads)
    for key, value in env.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@pytest.fixture(scope="session")
def small_synthetic(tmp_path_factory) -> Path:
    """A 60 + 60 image phantom data set (same generator as the default data)."""
    root = tmp_path_factory.mktemp("synthetic") / "phantom"
    generate(PhantomSpec(n_benign=60, n_malignant=60, seed=7), root, workers=2)
    return root


@pytest.fixture(scope="session")
def tiny_synthetic(tmp_path_factory) -> Path:
    """A 16 + 16 image phantom (about 1 s to build, 1 s to split) for the fast tests of option
    checks that need a readable, splittable data set: pass ``TINY`` (``--test-per-class 4``) with
    it. Tests that train use :func:`small_synthetic`."""
    root = tmp_path_factory.mktemp("tiny") / "phantom"
    generate(PhantomSpec(n_benign=16, n_malignant=16, seed=7), root, workers=1)
    return root


@pytest.fixture()
def tiny_copy(tiny_synthetic, tmp_path) -> Path:
    """A writable copy of the tiny phantom, for fast tests that damage it."""
    dst = tmp_path / "data"
    shutil.copytree(tiny_synthetic, dst)
    return dst


@pytest.fixture(scope="session")
def inline_suite(small_synthetic, tmp_path_factory):
    """``inline_suite(threads)``: the results folder of the inline suite's 2-model smoke grid at
    that thread count, run once per count in a session: the executor tests compare their tables
    with it (on a CPU the last bits of the weights depend on the thread count)."""
    from bench.cli.suite import main as suite_main

    made: dict[int, Path] = {}

    def get(threads: int) -> Path:
        if threads not in made:
            out = tmp_path_factory.mktemp(f"inline-{threads}-threads")
            assert suite_main(["--data", str(small_synthetic), *EXECUTOR_SUITE, "--out",
                               str(out), "--threads", str(threads)]) == 0
            made[threads] = out
        return made[threads]

    return get


@pytest.fixture()
def synthetic_copy(small_synthetic, tmp_path) -> Path:
    """A writable copy of the small phantom data set, for tests that damage it."""
    dst = tmp_path / "data"
    shutil.copytree(small_synthetic, dst)
    return dst


@pytest.fixture()
def busi_tree(tmp_path) -> Path:
    """A tiny tree in BUSI's layout: benign/malignant/normal, masks beside images."""
    root = tmp_path / "Dataset_BUSI_with_GT"
    for cls, n in (("benign", 4), ("malignant", 3), ("normal", 2)):
        for i in range(1, n + 1):
            write_image(root / cls / f"{cls} ({i}).png", seed=hash((cls, i)) % 1000)
            write_image(root / cls / f"{cls} ({i})_mask.png", seed=1)
    write_image(root / "benign" / "benign (1)_mask_1.png", seed=2)
    write_image(root / "malignant" / "malignant (2).png", seed=5, mode="RGB")
    return root


@pytest.fixture()
def busbra_tree(tmp_path) -> Path:
    """A tiny tree in BUS-BRA's layout: bus_data.csv, Images/, Masks/, fold files."""
    root = tmp_path / "BUSBRA"
    rows = ["ID,Case,Histology,Pathology,BIRADS,Device,Width,Height,Side,BBOX"]
    for i, (case, path) in enumerate([(1, "benign"), (1, "benign"), (2, "malignant"), (3, "benign"),
                                      (4, "malignant")]):
        image_id = f"bus_{i + 1:04d}-{'l' if i % 2 else 'r'}"
        write_image(root / "Images" / f"{image_id}.png", seed=i)
        write_image(root / "Masks" / f"mask_{image_id.removeprefix('bus_')}.png", seed=9)
        rows.append(f"{image_id},{case},x,{path},4,GE,80,64,left,\"[1, 2, 3, 4]\"")
    (root / "bus_data.csv").write_text("\n".join(rows) + "\n")
    (root / "5-fold-cv.csv").write_text("ID,Pathology,kFold\n")
    return root
