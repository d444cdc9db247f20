"""The suite's grid on submitit executors (bench.cluster): concurrency, retries, bad input, SLURM."""

import json
import threading
from pathlib import Path

import pandas as pd
import pytest

pytest.importorskip("submitit")

from bench.cluster import ClusterConfig, job_memory_gb, run_grid, slurm_script  # noqa: E402
from bench.suite import main as suite_main  # noqa: E402
from bench.threads import affinity_cpus  # noqa: E402
from tests.cluster_jobs import PausedRunJob, wait_for  # noqa: E402
from tests.helpers import SMOKE  # noqa: E402

pytestmark = pytest.mark.slow  # starts worker processes that train


def _grid(data, out, models=("fus2net", "zeimarani_cnn"), extra=()):
    return [(m, ["--model", m, "--data", str(data), "--out", str(out), *SMOKE, *extra])
            for m in models]


def test_two_jobs_run_at_once_and_the_report_equals_the_inline_suites(small_synthetic, tmp_path):
    args = ["--data", str(small_synthetic), "--profile", "smoke", "--models",
            "fus2net,zeimarani_cnn", "--no-experiments", "--no-progress", "--test-per-class", "20"]
    # the same thread count as each of the two jobs: on a CPU the summation order, and so the
    # last bits of the weights, depend on it
    share = max(1, affinity_cpus() // 2)  # two jobs at once share the cores
    assert suite_main([*args, "--out", str(tmp_path / "inline"), "--threads", str(share)]) == 0
    assert suite_main([*args, "--out", str(tmp_path / "local"), "--executor", "local",
                       "--jobs", "2"]) == 0
    for name in ("table3_comparison.csv", "table3_per_seed.csv", "roc_points.csv"):
        assert (tmp_path / "inline" / "tables" / name).read_bytes() == \
            (tmp_path / "local" / "tables" / name).read_bytes(), name
    for cfg_path in (tmp_path / "local" / "runs").glob("*/config.json"):
        device = json.loads(cfg_path.read_text())["device"]
        assert (device["threads"], device["interop_threads"], device["threads_from"]) == \
            (share, share, "--cpus-per-job"), cfg_path
    outcomes = run_grid(_grid(small_synthetic, tmp_path / "again"), ClusterConfig(
        executor="local", jobs=2), tmp_path / "logs", progress=False)
    (a, b) = outcomes
    assert a.status == b.status == "ok"
    assert a.started < b.ended and b.started < a.ended  # the two ran at the same time


def test_a_job_killed_mid_run_is_resubmitted_and_resumes(small_synthetic, tmp_path):
    """The job pauses after its first stage (tests/cluster_jobs.py), so the kill always hits a
    running job with a finished stage; the resubmitted job reuses that stage."""
    out = tmp_path / "runs"
    gate = tmp_path / "paused"
    jobs = _grid(small_synthetic, out, models=("fus2net",))
    submitted = []

    def kill_when_paused():
        wait_for(gate)
        submitted[0].cancel(check=False)  # as a pre-emption would

    killer = threading.Thread(target=kill_when_paused, daemon=True)
    killer.start()
    (outcome,) = run_grid(jobs, ClusterConfig(executor="local", retries=2), tmp_path / "logs",
                          progress=False, observe=submitted.append, target=PausedRunJob(gate))
    killer.join(timeout=10)
    assert outcome.status == "ok" and outcome.attempts == 2
    (run_dir,) = out.iterdir()
    cfg = pd.read_json(run_dir / "config.json", typ="series")
    assert cfg["timings"]["stages"]["fold_0"]["status"] == "reused"
    assert "resumed: reused fold_0" in Path(outcome.stdout).read_text()


def test_a_bad_input_job_fails_once_with_its_message(small_synthetic, tmp_path):
    jobs = _grid(small_synthetic, tmp_path / "runs", models=("fus2nett",))
    (outcome,) = run_grid(jobs, ClusterConfig(executor="local", retries=2), tmp_path / "logs",
                          progress=False)
    assert outcome.status == "FAILED" and outcome.attempts == 1
    assert "did you mean fus2net" in outcome.message and outcome.log


def test_debug_executor_runs_in_process(small_synthetic, tmp_path):
    (outcome,) = run_grid(_grid(small_synthetic, tmp_path / "runs", models=("zeimarani_cnn",)),
                          ClusterConfig(executor="debug"), tmp_path / "logs", progress=False)
    assert outcome.status == "ok" and outcome.run_dir.is_dir()


def test_the_slurm_script_carries_partition_gpus_time_and_extra_parameters(tmp_path):
    text = slurm_script(ClusterConfig(executor="slurm", partition="gpu", gpus_per_job=1,
                                      cpus_per_job=8, mem_gb=64, timeout_min=120,
                                      slurm_extra=(("qos", "high"), ("account", "lab"))),
                        tmp_path / "logs")
    for line in ("#SBATCH --partition=gpu", "#SBATCH --gpus-per-node=1", "#SBATCH --time=120",
                 "#SBATCH --cpus-per-task=8", "#SBATCH --mem=64GB", "#SBATCH --qos=high",
                 "#SBATCH --account=lab", "export OMP_NUM_THREADS=8",
                 "export FUS2BENCH_THREADS=8"):
        assert line in text, line


def test_a_vgg19_job_asks_for_more_memory_than_a_fus2net_job():
    assert job_memory_gb("fus2net") == 5 and job_memory_gb("byra_vgg19_ml") == 9
    assert job_memory_gb("fus2nett") == 16  # the job itself reports the bad name, once


def test_a_toml_config_sets_the_suite_and_flags_override_it(small_synthetic, tmp_path, capsys):
    config = tmp_path / "suite.toml"
    config.write_text('executor = "debug"\nmodels = "zeimarani_cnn"\nexperiments = "off"\n'
                      f'data = "{small_synthetic}"\nprofile = "smoke"\n')
    assert suite_main(["--config", str(config), "--out", str(tmp_path / "res"), "--no-progress",
                       "--test-per-class", "20", "--executor", "inline"]) == 0
    assert "jobs on the" not in capsys.readouterr().out  # the flag won over the file
    (tmp_path / "bad.toml").write_text("executor = \n")
    with pytest.raises(SystemExit) as exc:
        suite_main(["--config", str(tmp_path / "bad.toml")])
    assert exc.value.code == 2
