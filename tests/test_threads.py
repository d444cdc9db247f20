"""Thread counts (bench.engine.threads, bench.jobs.cluster.plan_layout): every run sizes its thread pools to
the CPUs it was given, never to the whole machine, and records what it used."""

import json
import os
import subprocess
import sys

import pytest

from bench.cli.suite import main as suite_main
from bench.core.errors import console_logging
from bench.engine.threads import (
    ENV_FROM,
    ENV_THREADS,
    ThreadCount,
    affinity_cpus,
    apply_threads,
    resolve_threads,
    setup_lines,
)
from bench.jobs.cluster import ClusterConfig, plan_layout
from tests.helpers import SMOKE, run_cli, run_main


def test_without_any_setting_a_run_uses_the_cpus_of_its_affinity_mask():
    code = ("import os; os.sched_setaffinity(0, {min(os.sched_getaffinity(0))}); "
            "from bench.engine.threads import resolve_threads; t = resolve_threads(environ={}); "
            "print(t.threads, t.source)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         timeout=60).stdout.split()
    assert out == ["1", "affinity"]
    assert resolve_threads(environ={}, cpus=3).threads == 3


def test_cpus_other_processes_keep_busy_at_the_start_are_left_to_them():
    one = resolve_threads(environ={}, cpus=2, busy=1.0)
    assert one.threads == 1 and one.source == "affinity, 1.0 of 2 CPUs busy at start"
    assert resolve_threads(environ={}, cpus=2, busy=0.3) == resolve_threads(environ={}, cpus=2)
    assert resolve_threads(environ={}, cpus=2, busy=2.0).threads == 1  # never below one
    assert resolve_threads(environ={}, cpus=8, busy=2.6).threads == 5
    # a count set by hand, by the executor or by the scheduler is kept whatever the load
    assert resolve_threads(2, environ={}, cpus=2, busy=2.0).threads == 2
    assert resolve_threads(environ={ENV_THREADS: "2"}, cpus=2, busy=2.0).threads == 2
    assert resolve_threads(environ={"SLURM_CPUS_PER_TASK": "2"}, cpus=2, busy=2.0).threads == 2


def test_the_load_is_measured_only_for_this_process_s_own_cpus_and_can_be_turned_off(monkeypatch):
    import bench.engine.threads as threads_mod

    monkeypatch.setattr(threads_mod, "busy_elsewhere", lambda: 5.0)
    monkeypatch.setattr(threads_mod, "affinity_cpus", lambda: 2)
    assert resolve_threads(environ={}).threads == 1  # measured: this process's CPUs
    assert resolve_threads(environ={}, cpus=2).threads == 2  # CPUs given: nothing measured
    assert resolve_threads(environ={"FUS2BENCH_LOAD_AWARE": "0"}).threads == 2


@pytest.mark.slow
def test_a_busy_process_is_seen_as_a_busy_cpu():
    from bench.engine.threads import busy_elsewhere

    busy = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        import time

        time.sleep(0.5)
        assert busy_elsewhere(0.5) >= 0.6
    finally:
        busy.kill()
        busy.wait()


def test_a_slurm_allocation_sets_the_threads_but_never_above_the_affinity_mask():
    assert resolve_threads(environ={"SLURM_CPUS_PER_TASK": "1"}, cpus=2) == \
        resolve_threads(1, source="SLURM_CPUS_PER_TASK")
    assert resolve_threads(environ={"SLURM_CPUS_PER_TASK": "8"}, cpus=2).threads == 2
    assert resolve_threads(environ={"SLURM_CPUS_PER_TASK": "x"}, cpus=2).source == "affinity"


def test_threads_by_hand_win_over_the_executor_and_the_scheduler():
    env = {ENV_THREADS: "1", ENV_FROM: "--cpus-per-job", "SLURM_CPUS_PER_TASK": "2"}
    assert resolve_threads(environ=env, cpus=4) == resolve_threads(1, source="--cpus-per-job")
    assert resolve_threads(3, environ=env, cpus=4) == resolve_threads(3)
    assert resolve_threads(3).source == "--threads"


def test_the_executor_environment_sets_every_native_pool_before_python_starts():
    lines = setup_lines(1, "--cpus-per-job")
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", ENV_THREADS):
        assert f"export {name}=1" in lines
    assert f"export {ENV_FROM}=--cpus-per-job" in lines


@pytest.mark.slow
def test_a_local_job_starts_with_the_threads_of_its_cpus_per_job(tmp_path):
    """A real local-executor job: its pools and environment as it starts, before it sets
    anything itself (the interop pool has no environment variable; the job sets it first)."""
    pytest.importorskip("submitit")
    from bench.engine.threads import current_pools
    from bench.jobs.cluster import make_executor

    cfg = ClusterConfig(executor="local", jobs=2)
    layout = plan_layout(cfg, 2, cores=2)
    job = make_executor(cfg, tmp_path / "logs", layout).submit(current_pools)
    pools = job.result()
    assert pools["threads"] == 1 and pools["OMP_NUM_THREADS"] == "1"
    assert pools["MKL_NUM_THREADS"] == "1" and pools[ENV_FROM] == "--cpus-per-job"


def test_the_local_executor_shares_the_cores_and_warns_when_asked_to_oversubscribe():
    local = ClusterConfig(executor="local")
    one = plan_layout(local, 4, cores=2)
    assert (one.width, one.cpus, one.threads) == (1, 2, 2)  # one job, every core
    jobs2 = plan_layout(ClusterConfig(executor="local", jobs=2), 4, cores=2)
    assert (jobs2.width, jobs2.cpus, jobs2.threads, jobs2.warning) == (2, 1, 1, None)
    cpus1 = plan_layout(ClusterConfig(executor="local", cpus_per_job=1), 4, cores=2)
    assert (cpus1.width, cpus1.cpus) == (2, 1)
    big = plan_layout(ClusterConfig(executor="local", jobs=4), 8, cores=16)
    assert (big.width, big.cpus) == (4, 4)
    over = plan_layout(ClusterConfig(executor="local", jobs=2, cpus_per_job=2), 4, cores=2)
    assert (over.width, over.cpus) == (2, 2) and "4 CPUs on 2 cores" in over.warning
    by_hand = plan_layout(ClusterConfig(executor="local", jobs=2, threads=1), 4, cores=16)
    assert (by_hand.cpus, by_hand.threads, by_hand.source) == (8, 1, "--threads")
    slurm = plan_layout(ClusterConfig(executor="slurm"), 5, cores=2)
    assert (slurm.width, slurm.cpus, slurm.warning) == (5, 2, None)


def test_applying_a_count_sizes_torch_and_the_environment():
    import torch

    used = apply_threads(resolve_threads(1))  # conftest restores the pools after the test
    assert used["threads"] == torch.get_num_threads() == 1
    assert used["interop_threads"] == torch.get_num_interop_threads()
    assert os.environ["OMP_NUM_THREADS"] == "1" and used["threads_from"] == "--threads"


@pytest.mark.slow
def test_a_run_records_the_threads_it_was_given(small_synthetic, tmp_path):
    """In a fresh process, as on the command line: both pools and the origin are recorded."""
    proc = run_cli("--model", "zeimarani_cnn", "--data", str(small_synthetic), "--out",
                   str(tmp_path), *SMOKE, "--folds", "0", "--threads", "1")
    assert proc.returncode == 0, proc.stderr
    (cfg_path,) = tmp_path.glob("*/config.json")
    device = json.loads(cfg_path.read_text())["device"]
    assert (device["threads"], device["interop_threads"], device["threads_from"]) == \
        (1, 1, "--threads")
    assert "1 thread(s) (--threads)" in proc.stdout
    # the OpenMP waiting rule and the load at the start (docs/engines.md)
    assert device["openmp_wait"]["GOMP_SPINCOUNT"] == os.environ["GOMP_SPINCOUNT"]
    assert device["openmp_wait_from"] in ("default", "environment")
    assert "load_at_start" in device and "OpenMP wait: GOMP_SPINCOUNT=" in proc.stdout


def test_a_bad_thread_count_is_one_line_and_exit_2(capsys):
    code, _, err = run_main(capsys, "--threads", "0")
    assert code == 2 and "--threads must be an integer > 0" in err
    with pytest.raises(SystemExit) as exc:
        suite_main(["--threads", "0"])
    assert exc.value.code == 2
    assert capsys.readouterr().err.strip().splitlines() == ["error: --threads must be >= 1, not 0"]



def test_more_threads_than_cpus_are_capped_to_the_cpus_with_a_note(tiny_synthetic, tmp_path,
                                                                   capsys):
    """``--threads 100000`` once exhausted memory starting the pools: any count above the CPUs
    this process may run on is capped to them, said in a note and recorded as capped."""
    from bench.engine.threads import capped

    with console_logging():
        assert capped(ThreadCount(100000, "--threads"), cpus=2) == \
            ThreadCount(2, "--threads, capped to the CPUs")
    assert "--threads 100000 is more than the 2 CPU(s)" in capsys.readouterr().out
    assert capped(ThreadCount(2, "--threads"), cpus=2) == ThreadCount(2, "--threads")
    used = apply_threads(resolve_threads(100000))  # conftest restores the pools after the test
    assert used["threads"] == affinity_cpus() and used["threads_from"].endswith("capped to the CPUs")
    (tmp_path / "file").write_text("")
    code, out, err = run_main(capsys, "--threads", "100000", "--data", str(tiny_synthetic),
                              "--out", str(tmp_path / "file"))  # stops after sizing the pools
    assert code == 2 and f"using {affinity_cpus()} thread(s)" in out
    assert err.strip().splitlines() == [f"error: --out {tmp_path / 'file'}: is a file, not a "
                                        "folder; choose another folder with --out"]
