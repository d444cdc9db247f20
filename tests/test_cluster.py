"""The suite's grid on submitit executors (bench.jobs.cluster): concurrency, retries, bad input, SLURM."""

import json
import threading
from datetime import datetime
from pathlib import Path

import pandas as pd
import pytest

pytest.importorskip("submitit")

from bench.cli.suite import main as suite_main  # noqa: E402
from bench.engine.threads import affinity_cpus  # noqa: E402
from bench.jobs.cluster import ClusterConfig, job_memory_gb, run_grid, slurm_script  # noqa: E402
from bench.jobs.plan import JobStatus  # noqa: E402
from tests.cluster_jobs import PausedRunJob, pid_alive, smoke_jobs, wait_for  # noqa: E402
from tests.helpers import EXECUTOR_SUITE  # noqa: E402


def _grid(data, out, models=("fus2net", "zeimarani_cnn")):
    return smoke_jobs(data, out, models)


def _job_span(stdout: Path) -> tuple[datetime, datetime]:
    """When submitit started the job's function and when it returned (its log's timestamps)."""
    stamps = {}
    for line in stdout.read_text().splitlines():
        for key, marker in (("start", "Loading pickle"), ("end", "Job completed successfully")):
            if marker in line:
                stamps[key] = datetime.strptime(line.split("(")[1].split(")")[0],
                                                "%Y-%m-%d %H:%M:%S,%f")
    return stamps["start"], stamps["end"]


@pytest.mark.slow
def test_two_jobs_run_at_once_and_the_report_equals_the_inline_suites(small_synthetic, tmp_path,
                                                                      inline_suite, capsys):
    # the same thread count as each of the two jobs: on a CPU the summation order, and so the
    # last bits of the weights, depend on it
    share = max(1, affinity_cpus() // 2)  # two jobs at once share the cores
    inline = inline_suite(share)
    assert suite_main(["--data", str(small_synthetic), *EXECUTOR_SUITE, "--out",
                       str(tmp_path / "local"), "--executor", "local", "--jobs", "2"]) == 0
    for name in ("table3_comparison.csv", "table3_per_seed.csv", "roc_points.csv"):
        assert (inline / "tables" / name).read_bytes() == \
            (tmp_path / "local" / "tables" / name).read_bytes(), name
    for cfg_path in (tmp_path / "local" / "runs").glob("*/config.json"):
        device = json.loads(cfg_path.read_text())["device"]
        assert (device["threads"], device["interop_threads"], device["threads_from"]) == \
            (share, share, "--cpus-per-job"), cfg_path
    # the summary's job logs: the two jobs ran at the same time
    logs = [Path(line.split("stdout ")[1].split(",")[0])
            for line in capsys.readouterr().out.splitlines() if line.startswith("job ")]
    (a_start, a_end), (b_start, b_end) = map(_job_span, logs)
    assert a_start < b_end and b_start < a_end


@pytest.mark.slow
def test_a_job_killed_mid_run_is_resubmitted_and_resumes(small_synthetic, tmp_path):
    """The job pauses after its first stage (tests/cluster_jobs.py) and the test cancels it
    there, as a pre-emption would: the cancel always hits a running job with a finished stage,
    and the resubmitted job reuses that stage. A cancel that does not reach the job fails the
    test within ``wait_s`` (the paused job gives up with an error, never resumes)."""
    out = tmp_path / "runs"
    gate = tmp_path / "paused"
    jobs = _grid(small_synthetic, out, models=("zeimarani_cnn",))
    submitted, errors = [], []
    grid_running = threading.Event()

    def kill_when_paused():
        try:
            paused = wait_for(gate, timeout_s=120, alive=grid_running.is_set)
            (job,) = [j for j in submitted if str(j.job_id) == str(paused["job_id"])]
            job.cancel(check=False)  # SIGINT to the job's controller
        except Exception as exc:  # noqa: BLE001 - reported by the test below
            errors.append(exc)

    killer = threading.Thread(target=kill_when_paused, daemon=True)
    grid_running.set()
    killer.start()
    try:
        (outcome,) = run_grid(jobs, ClusterConfig(executor="local", retries=2),
                              tmp_path / "logs", progress=False, observe=submitted.append,
                              target=PausedRunJob(gate, wait_s=30))
    finally:
        grid_running.clear()
        killer.join(timeout=10)
    assert not killer.is_alive() and not errors, errors
    assert outcome.status is JobStatus.OK and outcome.attempts == 2, outcome.message
    assert not pid_alive(json.loads(gate.read_text())["pid"])  # the first attempt is gone
    (run_dir,) = out.iterdir()
    cfg = pd.read_json(run_dir / "config.json", typ="series")
    assert cfg["timings"]["stages"]["fold_0"]["status"] == "reused"
    assert "resumed: reused fold_0" in Path(outcome.stdout).read_text()


@pytest.mark.slow
def test_a_bad_input_job_fails_once_with_its_message(small_synthetic, tmp_path):
    jobs = _grid(small_synthetic, tmp_path / "runs", models=("fus2nett",))
    (outcome,) = run_grid(jobs, ClusterConfig(executor="local", retries=2), tmp_path / "logs",
                          progress=False)
    assert outcome.status is JobStatus.FAILED and outcome.attempts == 1
    assert "did you mean fus2net" in outcome.message and outcome.log


@pytest.mark.slow
def test_debug_executor_runs_in_process(small_synthetic, tmp_path):
    (outcome,) = run_grid(_grid(small_synthetic, tmp_path / "runs", models=("zeimarani_cnn",)),
                          ClusterConfig(executor="debug"), tmp_path / "logs", progress=False)
    assert outcome.status is JobStatus.OK and outcome.run_dir.is_dir()


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


@pytest.mark.slow
def test_a_toml_config_sets_the_suite_and_flags_override_it(tiny_synthetic, tmp_path, capsys):
    config = tmp_path / "suite.toml"
    config.write_text('executor = "debug"\nmodels = "zeimarani_cnn"\nexperiments = "off"\n'
                      f'data = "{tiny_synthetic}"\nprofile = "smoke"\n')
    assert suite_main(["--config", str(config), "--out", str(tmp_path / "res"), "--no-progress",
                       "--test-per-class", "4", "--executor", "inline"]) == 0
    assert "jobs on the" not in capsys.readouterr().out  # the flag won over the file
    (tmp_path / "bad.toml").write_text("executor = \n")
    with pytest.raises(SystemExit) as exc:
        suite_main(["--config", str(tmp_path / "bad.toml")])
    assert exc.value.code == 2
